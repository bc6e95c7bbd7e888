# Market selection: the backtest kernel against independent computations,
# known truth, the size of the test under selection, the search, bad input.

# Markets on two common factors; markets in `easy` have little idiosyncratic
# noise, so the others synthesize them well.
factor_markets <- function(n = 12, n_t = 60, easy = 1:3, noise = 0.03, easy_noise = 0.002,
                           seed = 1) {
  set.seed(seed)
  f <- cbind(cumsum(stats::rnorm(n_t, 0, 0.01)), sin(seq_len(n_t) / 4) * 0.05)
  load <- matrix(stats::runif(2 * n, 0.5, 1.5), n, 2)
  level <- round(stats::runif(n, 50, 500))
  sd <- rep(noise, n)
  sd[easy] <- easy_noise
  y <- level * (1 + load %*% t(f) + sd * matrix(stats::rnorm(n * n_t), n, n_t))
  data.frame(market = rep(sprintf("M%02d", seq_len(n)), n_t),
             week = rep(seq_len(n_t), each = n), sales = as.vector(y))
}

test_that("the synthetic-control window estimate matches a direct fit with synth's solver", {
  d <- factor_markets()
  bt <- market_backtest(sales ~ 0 | market + week, d, treated = c("M04", "M07"),
                        test_length = 2, n_windows = 3)
  w <- tidy(bt, "windows")
  Y <- t(matrix(d$sales, 12, 60))  # weeks x markets
  colnames(Y) <- sprintf("M%02d", 1:12)
  first <- w$start[1] - 1
  level <- colMeans(Y[seq_len(first), ])
  Z <- sweep(Y, 2, level, "/")
  tr <- c(4, 7)
  y1 <- drop(Y[, tr] %*% rep(1, 2)) / sum(level[tr])
  for (k in seq_len(nrow(w))) {
    pre <- seq_len(w$start[k] - 1)
    win <- w$start[k]:w$end[k]
    X <- Z[pre, -tr]
    fit <- mktcausal:::solve_simplex(sweep(X, 2, colMeans(X)), y1[pre] - mean(y1[pre]), 0)
    cf <- mean(y1[pre]) + sweep(Z[win, -tr, drop = FALSE], 2, colMeans(X)) %*% fit$w
    expect_equal(w$estimate[k], sum(y1[win] - cf) / sum(cf), tolerance = 1e-6)
    expect_equal(w$slope[k], sum(y1[win]) / sum(cf), tolerance = 1e-8)
  }
  # One placebo of the last window: refit without block b, predict it.
  det <- mktcausal:::cpp_market_backtest_detail(
    bt$plan$Z, bt$plan$level, bt$plan$block_start, bt$plan$block_len, bt$plan$full,
    bt$plan$window_block, bt$plan$selection, 0L, tr - 1L, 1e-10, 10000L)
  last <- nrow(w)
  pre <- seq_len(w$start[last] - 1)
  ref <- which(bt$plan$full & !bt$plan$selection)  # reference blocks (no partial block here)
  b <- 3  # the third reference block
  blk <- (ref[b] - 1) * 2 + 1:2
  fitp <- setdiff(pre, blk)
  X <- Z[fitp, -tr]
  fit <- mktcausal:::solve_simplex(sweep(X, 2, colMeans(X)), y1[fitp] - mean(y1[fitp]), 0)
  cf <- mean(y1[fitp]) + sweep(Z[blk, -tr, drop = FALSE], 2, colMeans(X)) %*% fit$w
  expect_equal(det$placebo[[last]][b], sum(y1[blk] - cf) / sum(cf), tolerance = 1e-6)
})

test_that("TBR and the difference in means match lm() and direct sums", {
  d <- factor_markets()
  Y <- t(matrix(d$sales, 12, 60))
  tr <- c(2, 5, 9)
  for (m in c("tbr", "diff_in_means")) {
    bt <- market_backtest(sales ~ 0 | market + week, d, treated = sprintf("M%02d", tr),
                          test_length = 2, n_windows = 2, method = m)
    w <- tidy(bt, "windows")
    level <- colMeans(Y[seq_len(w$start[1] - 1), ])
    y1 <- rowSums(Y[, tr]) / sum(level[tr])
    yc <- rowSums(Y[, -tr]) / sum(level[-tr])
    pre <- seq_len(w$start[1] - 1)
    win <- w$start[1]:w$end[1]
    b <- if (m == "tbr") unname(coef(lm(y1[pre] ~ yc[pre]))) else c(mean(y1[pre]) - mean(yc[pre]), 1)
    cf <- b[1] + b[2] * yc[win]
    expect_equal(w$estimate[1], sum(y1[win] - cf) / sum(cf), tolerance = 1e-8)
  }
})

test_that("lin matches lm() on the cluster totals, for the window and a placebo block", {
  d <- factor_markets()
  Y <- t(matrix(d$sales, 12, 60))  # weeks x markets
  tr <- c(2, 5, 9)
  bt <- market_backtest(sales ~ 0 | market + week, d, treated = sprintf("M%02d", tr),
                        test_length = 2, n_windows = 2, method = "lin")
  w <- tidy(bt, "windows")
  # Window total on pre-window total across the untreated markets, in sales.
  lin_lift <- function(fit_weeks, target) {
    cl <- data.frame(x = colSums(Y[fit_weeks, ]), y = colSums(Y[target, , drop = FALSE]))
    cf <- sum(stats::predict(stats::lm(y ~ x, cl[-tr, ]), cl[tr, ]))
    c(estimate = (sum(cl$y[tr]) - cf) / cf, slope = sum(cl$y[tr]) / cf)
  }
  for (k in seq_len(nrow(w))) {
    ref <- lin_lift(seq_len(w$start[k] - 1), w$start[k]:w$end[k])
    expect_equal(w$estimate[k], ref[["estimate"]], tolerance = 1e-8)
    expect_equal(w$slope[k], ref[["slope"]], tolerance = 1e-8)
  }
  # A reference block of the last window: refit without it, predict it.
  det <- mktcausal:::cpp_market_backtest_detail(
    bt$plan$Z, bt$plan$level, bt$plan$block_start, bt$plan$block_len, bt$plan$full,
    bt$plan$window_block, bt$plan$selection, bt$plan$method_code, tr - 1L, 1e-10, 10000L)
  last <- nrow(w)
  ref_blocks <- which(bt$plan$full & !bt$plan$selection)
  blk <- (ref_blocks[4] - 1) * 2 + 1:2
  pl <- lin_lift(setdiff(seq_len(w$start[last] - 1), blk), blk)
  expect_equal(det$placebo[[last]][4], pl[["estimate"]], tolerance = 1e-8)
  # The A/A decision is the planned test's: |estimate| beyond the critical value.
  expect_equal(w$reject_aa, abs(w$estimate) > w$critical)
})

test_that("the sdid window estimate is synth(method = \"sdid\") on the same weeks", {
  d <- factor_markets()
  Y <- t(matrix(d$sales, 12, 60))
  tr <- c(4, 7, 10)
  bt <- market_backtest(sales ~ 0 | market + week, d, treated = sprintf("M%02d", tr),
                        test_length = 2, n_windows = 2, method = "sdid")
  w <- tidy(bt, "windows")
  level <- colMeans(Y[seq_len(w$start[1] - 1), ])
  Z <- sweep(Y, 2, level, "/")
  x1 <- rowSums(Y[, tr]) / sum(level[tr])  # the pooled treated unit
  for (k in seq_len(nrow(w))) {
    weeks <- seq_len(w$end[k])
    win <- w$start[k]:w$end[k]
    long <- data.frame(unit = rep(c("T", sprintf("M%02d", setdiff(1:12, tr))), each = length(weeks)),
                       week = weeks, y = c(x1[weeks], Z[weeks, -tr]))
    long$d <- as.integer(long$unit == "T" & long$week >= w$start[k])
    fit <- suppressWarnings(synth(y ~ d | unit + week, long, method = "sdid"))
    tau <- tidy(fit)$estimate[1]
    cf <- mean(x1[win]) - tau
    expect_equal(w$estimate[k], tau / cf, tolerance = 1e-6)
    expect_equal(w$slope[k], mean(x1[win]) / cf, tolerance = 1e-6)
  }
  expect_true(all(is.finite(w$critical)))
  expect_equal(w$reject_aa, abs(w$estimate) > w$critical)
  # The search runs sdid on the resampling layer: any chunk size, same table.
  small <- d[d$market %in% sprintf("M%02d", 1:7), ]
  s1 <- select_markets(sales ~ 0 | market + week, small, n_treated = 2, test_length = 2,
                       n_windows = 2, method = "sdid", search = "exhaustive")
  s2 <- select_markets(sales ~ 0 | market + week, small, n_treated = 2, test_length = 2,
                       n_windows = 2, method = "sdid", search = "exhaustive", chunk_size = 4)
  expect_equal(nrow(tidy(s1)), choose(7, 2))
  expect_identical(tidy(s1), tidy(s2))
  expect_equal(glance(s1)$method, "sdid")
})

test_that("lin and sdid hold their size at zero effect on factor panels", {
  skip_on_cran()
  # lin: under selection (the chosen pair of 10 markets), as for synth below.
  rej <- unlist(lapply(seq_len(40), function(r) {
    d <- factor_markets(n = 10, n_t = 64, easy = integer(0), seed = 200 + r)
    sel <- suppressWarnings(select_markets(sales ~ 0 | market + week, d, n_treated = 2,
                                           test_length = 2, n_windows = 12, method = "lin",
                                           search = "exhaustive"))
    tidy(sel, "windows")$reject_aa
  }))
  expect_lt(abs(mean(rej) - 0.05), 3 * sqrt(0.05 * 0.95 / length(rej)))
  # sdid: a fixed pair (the factor loadings are drawn at random).
  rej <- unlist(lapply(seq_len(40), function(r) {
    d <- factor_markets(n = 10, n_t = 64, easy = integer(0), seed = 300 + r)
    bt <- suppressWarnings(market_backtest(sales ~ 0 | market + week, d,
                                           treated = c("M01", "M02"), test_length = 2,
                                           n_windows = 12, method = "sdid"))
    tidy(bt, "windows")$reject_aa
  }))
  expect_lt(abs(mean(rej) - 0.05), 3 * sqrt(0.05 * 0.95 / length(rej)))
})

test_that("selection picks the markets that are easy to synthesize", {
  d <- factor_markets(easy = c(3, 8, 11))
  sel <- select_markets(sales ~ 0 | market + week, d, n_treated = 2, test_length = 2,
                        n_windows = 6, search = "exhaustive")
  expect_equal(sel$n_scored, choose(12, 2))
  expect_true(all(sel$chosen %in% c("M03", "M08", "M11")))
  tab <- tidy(sel)
  expect_equal(tab$rank, seq_len(66))
  expect_true(all(diff(tab$noise) >= 0))
  # pairs of easy markets rank far above the rest on average
  easy <- vapply(strsplit(tab$markets, ", "), function(s) all(s %in% c("M03", "M08", "M11")), TRUE)
  expect_lt(mean(tab$rank[easy]), 15)
  # the chosen set detects a 5% lift in every window, the worst set does not
  expect_equal(tab$power_0.050[1], 1)
  expect_lt(tab$mde[1], stats::median(tab$mde))
  expect_equal(nrow(tidy(sel, "windows")), 6L)
  pw <- tidy(sel, "power")
  expect_equal(pw$mc_se[pw$effect == 0], sqrt(0.05 * 0.95 / 6))
  sel_h <- select_markets(sales ~ 0 | market + week, d, n_treated = 2, test_length = 2,
                          n_windows = 6, holdout = 2)
  expect_equal(glance(sel_h)$n_holdout_windows, 2L)
  expect_setequal(tidy(sel_h, "power")$windows, c("backtest", "holdout"))
})

test_that("include, exclude and the volume cap shape the feasible sets", {
  d <- factor_markets(easy = c(3, 8, 11))
  sel <- select_markets(sales ~ 0 | market + week, d, n_treated = 2:3, include = "M05",
                        exclude = "M03", test_length = 2, n_windows = 4)
  tab <- tidy(sel)
  sets <- strsplit(tab$markets, ", ")
  expect_true(all(vapply(sets, function(s) "M05" %in% s && !("M03" %in% s), TRUE)))
  expect_equal(nrow(tab), choose(10, 1) + choose(10, 2))
  share <- sel$share
  cap <- 0.15
  sel2 <- select_markets(sales ~ 0 | market + week, d, n_treated = 2, max_share = cap,
                         test_length = 2, n_windows = 4)
  expect_true(all(tidy(sel2)$share <= cap + 1e-12))
  expect_equal(nrow(tidy(sel2)), sum(combn(12, 2, function(s) sum(share[s]) <= cap)))
})

test_that("greedy and stochastic searches get close to the exhaustive answer", {
  skip_on_cran()
  d <- factor_markets(n = 14, easy = c(2, 6, 13))
  args <- list(sales ~ 0 | market + week, d, n_treated = 3, test_length = 2, n_windows = 5)
  ex <- do.call(select_markets, c(args, search = "exhaustive"))
  gr <- do.call(select_markets, c(args, search = "greedy", n_candidates = 120))
  best <- tidy(ex)$noise[1]
  expect_lt(gr$n_scored, ex$n_scored)
  expect_equal(tidy(gr)$noise[1], best, tolerance = 0.05)
  set.seed(1)
  s1 <- do.call(select_markets, c(args, search = "stochastic", n_candidates = 80))
  set.seed(2)
  s2 <- do.call(select_markets, c(args, search = "stochastic", n_candidates = 80))
  expect_equal(tidy(s1)$noise[1], best, tolerance = 0.1)
  expect_equal(tidy(s2)$noise[1], tidy(s1)$noise[1], tolerance = 0.1)
  # same seed, same answer, for any chunk size
  set.seed(1)
  s3 <- do.call(select_markets, c(args, search = "stochastic", n_candidates = 80, chunk_size = 7))
  expect_identical(tidy(s3), tidy(s1))
})

test_that("the A/A rate of the selected set holds its size on held-out windows", {
  skip_on_cran()
  reps <- 60
  rej <- unlist(lapply(seq_len(reps), function(r) {
    d <- factor_markets(n = 10, n_t = 64, easy = integer(0), seed = 100 + r)
    sel <- suppressWarnings(select_markets(sales ~ 0 | market + week, d, n_treated = 2,
                                           test_length = 2, n_windows = 12,
                                           search = "exhaustive"))
    tidy(sel, "windows")$reject_aa
  }))
  n <- length(rej)
  rate <- mean(rej)
  se <- sqrt(0.05 * 0.95 / n)
  expect_lt(abs(rate - 0.05), 3 * se)
})

test_that("bad input gets classed errors", {
  d <- factor_markets()
  f <- sales ~ 0 | market + week
  expect_error(select_markets(f, d, n_treated = 3, exclude = sprintf("M%02d", 1:10),
                              test_length = 2), class = "mktcausal_error_too_few_markets")
  expect_error(select_markets(f, d, n_treated = 2, include = "M01", exclude = "M01",
                              test_length = 2), class = "mktcausal_error_conflicting_markets")
  expect_error(select_markets(f, d, n_treated = 2, include = c("M01", "M02", "M03"),
                              test_length = 2), class = "mktcausal_error_conflicting_markets")
  expect_error(select_markets(f, d, test_length = 60), class = "mktcausal_error_test_too_long")
  expect_error(select_markets(f, d, test_length = 2, test_start = 51, window_ends = c(50, 54)),
               class = "mktcausal_error_windows_overlap_test")
  expect_error(select_markets(f, d, test_length = 2, method = "bogus"),
               class = "mktcausal_error_bad_choice")
  expect_error(market_backtest(f, d, treated = "M99", test_length = 2),
               class = "mktcausal_error_bad_argument")
  expect_warning(select_markets(f, d, n_treated = 1, test_length = 2, n_windows = 30),
                 class = "mktcausal_warning_few_placebos")
  expect_error(select_markets(f, d, test_length = 2, inference = "placebo"),
               class = "mktcausal_error_too_few_pre_periods")
  few <- d[d$market %in% sprintf("M%02d", 1:5), ]
  expect_warning(market_backtest(f, few, treated = c("M01", "M02"), test_length = 2,
                                 n_windows = 2), class = "mktcausal_warning_few_donors")
})

test_that("the greedy search ranks only sets of the asked size", {
  set.seed(2)
  n <- 14
  d <- expand.grid(week = 1:60, market = sprintf("M%02d", 1:n))
  f <- rnorm(60)
  d$sales <- 100 + 10 * f[d$week] * rep(runif(n, 0.5, 1.5), each = 60) + rnorm(nrow(d))
  sel <- select_markets(sales ~ 0 | market + week, d, n_treated = 3, test_length = 2,
                        search = "greedy", n_candidates = 60, n_windows = 4)
  tb <- tidy(sel)
  expect_true(all(lengths(strsplit(tb$markets, ", ")) == 3L))
  expect_gt(glance(sel)$n_scored, nrow(tb))
})
