# The cluster table of a design with its assignment and an outcome column y.
rt_data <- function(d, des, y) {
  d$treated <- des$treated
  d$y <- y
  d
}

test_that("exact enumeration matches a brute-force randomization test", {
  d <- sim_clusters(12, 2, seed = 30)
  set.seed(30)
  expect_warning(
    des <- rerandomize(d, ~ x1 + x2, n_treated = 6, accept = 0.5, id = "id"),
    class = "mktcausal_warning_granular_inference"
  )
  y <- d$x1 + rnorm(12, sd = 0.5) + des$treated
  rt <- randomization_test(y ~ treated, rt_data(d, des, y), design = des, n_draws = 1000)
  expect_true(rt$exact)
  X <- as.matrix(d[, 1:2])
  combos <- utils::combn(12, 6)
  stats <- crit <- numeric(ncol(combos))
  for (i in seq_len(ncol(combos))) {
    w <- integer(12)
    w[combos[, i]] <- 1L
    crit[i] <- direct_mahalanobis(X, w)
    stats[i] <- mean(y[w == 1]) - mean(y[w == 0])
  }
  keep <- crit <= des$threshold + 1e-12
  obs <- mean(y[des$treated == 1]) - mean(y[des$treated == 0])
  expect_equal(glance(rt)$n_draws, sum(keep))
  expect_equal(tidy(rt)$p.value, mean(abs(stats[keep]) >= abs(obs) - 1e-12), tolerance = 1e-12)
  expect_equal(glance(rt)$p.value_unconditional, mean(abs(stats) >= abs(obs) - 1e-12),
               tolerance = 1e-12)
  expect_equal(coef(rt)[[1]], obs, tolerance = 1e-12)
})

test_that("the interval inverts the test: p > alpha inside, <= alpha just outside", {
  d <- sim_clusters(80, 2, seed = 31)
  set.seed(31)
  des <- rerandomize(d, ~ x1 + x2, n_treated = 40, accept = 0.05, id = "id")
  y <- 2 * d$x1 + rnorm(80) + 1.5 * des$treated
  dd <- rt_data(d, des, y)
  for (stat in c("diff_in_means", "lin_t")) {
    set.seed(32)
    rt <- randomization_test(y ~ treated, dd, design = des, statistic = stat, n_draws = 2000)
    ci <- unname(confint(rt)[1, ])
    expect_true(ci[1] < coef(rt)[[1]] && coef(rt)[[1]] < ci[2])
    set.seed(32)
    lo_in <- randomization_test(y ~ treated, dd, design = des, statistic = stat,
                                n_draws = 2000, null = ci[1] + 1e-4)
    set.seed(32)
    lo_out <- randomization_test(y ~ treated, dd, design = des, statistic = stat,
                                 n_draws = 2000, null = ci[1] - 1e-4)
    expect_gt(tidy(lo_in)$p.value, 0.05)
    expect_lte(tidy(lo_out)$p.value, 0.05)
  }
})

test_that("lin_t's statistic equals Lin's estimate over its HC2 standard error", {
  d <- sim_clusters(50, 2, seed = 33)
  set.seed(33)
  des <- rerandomize(d, ~ x1 + x2, n_treated = 25, accept = 0.2, id = "id")
  y <- d$x1 - d$x2 + rnorm(50) + des$treated
  rt <- randomization_test(y ~ treated, rt_data(d, des, y), design = des, statistic = "lin_t",
                           n_draws = 500)
  xc <- scale(as.matrix(d[, 1:2]), scale = FALSE)
  w <- des$treated
  X <- cbind(1, w, xc, w * xc)
  fit <- lm.fit(X, y)
  bread <- solve(crossprod(X))
  h <- rowSums((X %*% bread) * X)
  V <- bread %*% crossprod(X * (fit$residuals / sqrt(1 - h))) %*% bread
  expect_equal(coef(rt)[[1]], unname(fit$coefficients[2]), tolerance = 1e-10)
  expect_equal(tidy(rt)$std.error, sqrt(V[2, 2]), tolerance = 1e-10)
  expect_equal(tidy(rt)$statistic, unname(fit$coefficients[2]) / sqrt(V[2, 2]),
               tolerance = 1e-10)
})

test_that("under the sharp null the conditional test has its size; ignoring the rule is conservative", {
  # Research note section 7.3: M = 100, k = 4 lognormal covariates, R^2 = 0.5, p_a = 0.01.
  d <- sim_clusters(100, 4, seed = 34, lognormal = TRUE)
  X <- as.matrix(d[, 1:4])
  signal <- as.vector(scale(X %*% c(1, 1, 1, 1)))
  noise <- as.vector(scale(stats::residuals(lm(rnorm(100) ~ X))))
  y <- sqrt(0.5) * signal + sqrt(0.5) * noise
  set.seed(34)
  des <- rerandomize(d, ~ x1 + x2 + x3 + x4, n_treated = 50, accept = 0.01,
                     threshold = "empirical", id = "id")
  n_obs <- 4000
  n_ref <- 20000
  spec <- des$spec
  observed <- mktcausal:::run_search(spec, want = n_obs, max_candidates = 1e9)$assignments
  ref_rule <- mktcausal:::run_search(spec, want = n_ref, max_candidates = 1e9)$assignments
  ref_all <- mktcausal:::run_search(spec, want = n_ref, max_candidates = 1e9,
                                    threshold = Inf)$assignments
  dim_of <- function(W) as.vector(crossprod(W, y)) / 50 - as.vector(crossprod(1 - W, y)) / 50
  t_obs <- abs(dim_of(observed))
  exceed <- function(ref) {
    r <- sort(abs(dim_of(ref)))
    length(r) - findInterval(t_obs, r, left.open = TRUE)
  }
  p_cond <- (1 + exceed(ref_rule)) / (n_ref + 1)
  p_unc <- (1 + exceed(ref_all)) / (n_ref + 1)
  size_cond <- mean(p_cond <= 0.05)
  size_unc <- mean(p_unc <= 0.05)
  # Monte Carlo s.e. of the size over 4000 draws is about 0.0035
  expect_lt(abs(size_cond - 0.05), 0.011)
  expect_lt(size_unc, 0.02)
})

test_that("randomization tests are reproducible, sequentially and on 2 workers", {
  skip_on_cran()
  skip_if_not_installed("future")
  d <- sim_clusters(60, 2, seed = 35)
  set.seed(35)
  des <- rerandomize(d, ~ x1 + x2, n_treated = 30, accept = 0.05, id = "id")
  y <- d$x1 + rnorm(60) + 0.5 * des$treated
  dd <- rt_data(d, des, y)
  set.seed(99)
  a <- randomization_test(y ~ treated, dd, design = des, n_draws = 3000, chunk_size = 500)
  oplan <- future::plan(future::multisession, workers = 2)
  on.exit(future::plan(oplan), add = TRUE)
  set.seed(99)
  b <- randomization_test(y ~ treated, dd, design = des, n_draws = 3000, chunk_size = 500)
  expect_identical(tidy(a)$p.value, tidy(b)$p.value)
  expect_identical(a$reference, b$reference)
  expect_identical(confint(a), confint(b))
})

test_that("outcomes are aligned by name and misaligned outcomes are refused", {
  d <- sim_clusters(40, 2, seed = 36)
  set.seed(36)
  des <- rerandomize(d, ~ x1 + x2, n_treated = 20, accept = 0.2, id = "id")
  dd <- rt_data(d, des, rnorm(40))
  set.seed(1)
  a <- randomization_test(y ~ treated, dd, design = des, n_draws = 500)
  set.seed(1)
  b <- randomization_test(y ~ treated, dd[40:1, ], design = des, n_draws = 500)
  expect_identical(tidy(a)$p.value, tidy(b)$p.value)
  expect_error(randomization_test(y ~ treated, dd[-1, ], design = des),
               class = "mktcausal_error_misaligned")
  other <- dd
  other$id <- paste0("x", 1:40)
  expect_error(randomization_test(y ~ treated, other, design = des),
               class = "mktcausal_error_misaligned")
  expect_error(randomization_test(y ~ treated, rbind(dd, dd[1, ]), design = des),
               class = "mktcausal_error_misaligned")
  na <- dd
  na$y[1] <- NA
  expect_error(randomization_test(y ~ treated, na, design = des),
               class = "mktcausal_error_missing_values")
  chr <- dd
  chr$y <- letters[1:40]
  expect_error(randomization_test(y ~ treated, chr, design = des),
               class = "mktcausal_error_non_numeric")
  flipped <- dd
  flipped$treated <- 1 - flipped$treated
  expect_error(randomization_test(y ~ treated, flipped, design = des),
               class = "mktcausal_error_misaligned")
  expect_error(randomization_test(y ~ treated, dd, design = list()),
               class = "mktcausal_error_bad_design")
  expect_error(randomization_test(y ~ treated, dd), class = "mktcausal_error_bad_design")
  expect_error(randomization_test(y ~ treated, dd, design = des, statistic = "t"),
               class = "mktcausal_error_bad_choice")
})

test_that("tidy, glance and plot report both reference distributions", {
  d <- sim_clusters(50, 2, seed = 37)
  set.seed(37)
  des <- rerandomize(d, ~ x1 + x2, n_treated = 25, accept = 0.05, id = "id")
  y <- 2 * d$x1 + rnorm(50)
  rt <- randomization_test(y ~ treated, rt_data(d, des, y), design = des, n_draws = 1000)
  tb <- tidy(rt)
  expect_named(tb, c("term", "estimate", "std.error", "statistic", "p.value", "conf.low", "conf.high"))
  g <- glance(rt)
  expect_equal(g$n_draws, 1000)
  expect_true(g$p.value_unconditional >= 0 && g$p.value_unconditional <= 1)
  expect_equal(g$mc_se, sqrt(tb$p.value * (1 - tb$p.value) / 1000))
  expect_s3_class(plot(rt), "ggplot")
  expect_length(rt$reference$conditional, 1000)
  ref <- tidy(rt, "reference")
  expect_identical(as.vector(table(ref$reference)), c(1000L, 1000L))
  expect_error(vcov(rt), class = "mktcausal_error_not_available")
  # The p-value function crosses alpha at the interval's ends.
  pv <- ggplot2::ggplot_build(plot(rt, type = "pvalue"))$data[[3]]
  cond <- pv[pv$group == 1, ]
  inside <- cond$x > tb$conf.low + 1e-6 & cond$x < tb$conf.high - 1e-6
  expect_true(all(cond$y[inside] > 0.05))
  expect_true(all(cond$y[!inside & (cond$x < tb$conf.low - 1e-3 | cond$x > tb$conf.high + 1e-3)] <= 0.05))
})

test_that("print states both p-values", {
  d <- sim_clusters(40, 2, seed = 38)
  set.seed(38)
  des <- rerandomize(d, ~ x1 + x2, n_treated = 20, accept = 0.1, id = "id")
  rt <- randomization_test(y ~ treated, rt_data(d, des, d$x1 + rnorm(40)), design = des,
                           n_draws = 500)
  expect_output(print(rt), "conditional on the design's acceptance rule")
  expect_output(print(rt), "Ignoring the rule \\(conservative\\)")
})

# --- buffer zones -----------------------------------------------------------------

# Brute force over every assignment of a small grid: the buffer, admissibility,
# balance against retained controls and the weighted statistic, written out.
brute_buffered <- function(des, sg, y) {
  X <- as.matrix(sg$data[, "x1", drop = FALSE])
  A <- sg$adjacency
  n <- nrow(X)
  n1 <- sum(des$treated)
  V <- stats::cov(X) * (1 / n1 + 1 / (n - n1))
  at <- 1 / pmax(des$arm_prob[, "treated"], 0.5 / 2000)
  ac <- 1 / pmax(des$arm_prob[, "control"], 0.5 / 2000)
  combos <- utils::combn(n, n1)
  out <- apply(combos, 2, function(idx) {
    w <- integer(n)
    w[idx] <- 1L
    ctrl <- w == 0 & as.vector(A %*% w == 0)
    if (sum(ctrl) < des$min_per_arm) return(c(ok = 0, stat = NA))
    d <- colMeans(X[w == 1, , drop = FALSE]) - colMeans(X[ctrl, , drop = FALSE])
    crit <- drop(t(d) %*% solve(V, d))
    stat <- sum(at[w == 1] * y[w == 1]) / sum(at[w == 1]) -
      sum(ac[ctrl] * y[ctrl]) / sum(ac[ctrl])
    c(ok = as.numeric(crit <= des$threshold + 1e-12), stat = stat)
  })
  out[, out["ok", ] == 1, drop = FALSE]["stat", ]
}

test_that("with a buffer, exact enumeration matches a brute-force test that re-applies the rule", {
  sg <- sim_grid(4, 4, seed = 60)
  set.seed(60)
  expect_warning(
    des <- rerandomize(sg$data, ~ x1, n_treated = 4, accept = 0.5, id = "id",
                       buffer = sg$adjacency, n_draws = 500),
    class = "mktcausal_warning_granular_inference"
  )
  y <- 10 + 3 * sg$data$interior + sg$data$x1 + stats::rnorm(16)
  dd <- rt_data(sg$data, des, y)
  rt <- randomization_test(y ~ treated, dd, design = des)
  expect_true(rt$exact)
  stats <- brute_buffered(des, sg, y)
  p <- tidy(rt)$p.value
  expect_equal(glance(rt)$n_draws, length(stats))
  expect_equal(p, mean(abs(stats) >= abs(coef(rt)[[1]]) - 1e-10), tolerance = 1e-12)
  # Drawn rather than enumerated: the same p-value up to Monte Carlo error.
  set.seed(61)
  mc <- randomization_test(y ~ treated, dd, design = des, n_draws = 4000, exact_max = 1)
  expect_false(mc$exact)
  expect_lt(abs(tidy(mc)$p.value - p), 4 * sqrt(p * (1 - p) / 4000) + 1e-3)
  expect_true(mc$buffered)
  expect_identical(mc$n$buffer, sum(des$arm == "buffer"))
  expect_error(randomization_test(y ~ treated, dd, design = des, statistic = "lin_t"),
               class = "mktcausal_error_bad_argument")
  expect_warning(randomization_test(y ~ treated, dd, design = des, null = 1),
                 class = "mktcausal_warning_buffer_null")
})

test_that("under the sharp null, the buffered test rejects at its nominal rate", {
  skip_on_cran()
  sg <- sim_grid(4, 4, seed = 62)
  set.seed(62)
  # Outcomes differ between interior and edge clusters, which the buffer
  # keeps as controls at different rates: the test must still hold its size.
  y <- 10 + 3 * sg$data$interior + sg$data$x1 + stats::rnorm(16)
  p <- vapply(1:150, function(r) {
    des <- suppressWarnings(rerandomize(sg$data, ~ x1, n_treated = 4, accept = 0.5, id = "id",
                                        buffer = sg$adjacency, n_draws = 100))
    tidy(randomization_test(y ~ treated, rt_data(sg$data, des, y), design = des))$p.value
  }, numeric(1))
  rate <- mean(p <= 0.2)
  expect_lt(abs(rate - 0.2), 3 * sqrt(0.2 * 0.8 / 150))
})

# --- matched pairs, chunks, threads and interrupts ---------------------------------

# Lin's regression y ~ t * (x - mean(x)) with HC2 standard errors, by hand.
lin_by_hand <- function(y, w, x) {
  xc <- x - mean(x)
  fit <- stats::lm(y ~ w * xc)
  M <- stats::model.matrix(fit)
  bread <- solve(crossprod(M))
  h <- rowSums((M %*% bread) * M)
  V <- bread %*% crossprod(M * (stats::residuals(fit) / sqrt(1 - h))) %*% bread
  c(estimate = unname(stats::coef(fit)[["w"]]), se = sqrt(V[2, 2]))
}

test_that("a matched-pairs design is analysed with its design: Lin without pair indicators", {
  d <- sim_clusters(30, 1, seed = 81)
  d$pair <- rep(1:15, each = 2)
  set.seed(81)
  des <- withCallingHandlers(
    rerandomize(d, ~ x1, strata = "pair", accept = 0.2, id = "id", n_draws = 1000),
    mktcausal_warning_granular_inference = function(w) invokeRestart("muffleWarning"))
  expect_true(all(tapply(des$treated, d$pair, sum) == 1))
  d$treated <- des$treated
  d$y <- 2 * d$x1 + withr::with_seed(82, stats::rnorm(30)) + d$treated
  # Fifteen pair indicators would leave Lin's regression 16 parameters per
  # arm of 15 clusters: both paths use the covariate alone.
  expect_equal(ncol(mktcausal:::lin_covariates(des)), 1L)
  ref <- lin_by_hand(d$y, d$treated, d$x1)
  rt <- randomization_test(y ~ treated, d, design = des, statistic = "lin_t", n_draws = 500)
  expect_equal(tidy(rt)$estimate, ref[["estimate"]], tolerance = 1e-10)
  expect_equal(tidy(rt)$std.error, ref[["se"]], tolerance = 1e-10)
  expect_equal(tidy(rt)$statistic, ref[["estimate"]] / ref[["se"]], tolerance = 1e-10)
  expect_true(tidy(rt)$p.value > 0 && tidy(rt)$p.value <= 1)
  expect_true(tidy(rt)$conf.low < ref[["estimate"]] && ref[["estimate"]] < tidy(rt)$conf.high)

  fit <- experiment_effect(y ~ treated, d, design = des, n_draws = 500)
  est <- tidy(fit)
  expect_equal(est$estimate[2], ref[["estimate"]], tolerance = 1e-10)
  expect_equal(est$std.error[2], ref[["se"]], tolerance = 1e-10)
  # The pairs' difference in means: mean of the pair differences, with
  # their standard deviation over sqrt(15).
  diffs <- tapply(d$y * (2 * d$treated - 1), d$pair, sum)
  expect_equal(est$estimate[1], mean(diffs), tolerance = 1e-10)
  expect_equal(est$std.error[1], stats::sd(diffs) / sqrt(15), tolerance = 1e-10)
  expect_true(all(is.finite(est$p.value_randomization)))
  # Its Lin row's randomization p-value is the lin_t test's (same draws).
  set.seed(83)
  fit2 <- experiment_effect(y ~ treated, d, design = des, n_draws = 500)
  set.seed(83)
  rt_dim <- randomization_test(y ~ treated, d, design = des, n_draws = 500)
  rt_lin <- randomization_test(y ~ treated, d, design = des, statistic = "lin_t", n_draws = 500)
  expect_equal(tidy(fit2)$p.value_randomization, c(tidy(rt_dim)$p.value, tidy(rt_lin)$p.value))
})

test_that("a statistic that cannot be fitted is a classed error, not NA", {
  d <- sim_clusters(12, 1, seed = 84)
  d$pair <- rep(1:6, each = 2)
  d$z <- c(1, rep(0, 11))
  set.seed(84)
  des <- suppressWarnings(rerandomize(d, ~ x1 + z, strata = "pair", accept = 1, id = "id",
                                     n_draws = 100))
  d$treated <- des$treated
  d$y <- stats::rnorm(12)
  # z is non-zero for one cluster only: in the arm without it, it never varies.
  expect_error(randomization_test(y ~ treated, d, design = des, statistic = "lin_t"),
               class = "mktcausal_error_collinear")
})

test_that("the same seed gives the same p-values for chunk sizes 1, 50 and 1000 and any thread count", {
  d <- sim_clusters(60, 2, seed = 85)
  set.seed(85)
  des <- rerandomize(d, ~ x1 + x2, n_treated = 30, accept = 0.05, id = "id", n_draws = 2000)
  dd <- rt_data(d, des, 2 * d$x1 + withr::with_seed(86, stats::rnorm(60)) + 0.5 * des$treated)
  withr::local_options(mktcausal.threads = NULL)
  out <- list()
  for (statistic in c("diff_in_means", "lin_t")) {
    for (chunk in c(1, 50, 1000)) {
      for (threads in 1:2) {
        mkt_threads(threads)
        set.seed(87)
        rt <- randomization_test(y ~ treated, dd, design = des, statistic = statistic,
                                 n_draws = 2000, chunk_size = chunk)
        out[[paste(statistic, chunk, threads)]] <- list(
          p = c(tidy(rt)$p.value, glance(rt)$p.value_unconditional),
          ci = unname(confint(rt)), reference = rt$reference)
      }
    }
    runs <- out[startsWith(names(out), statistic)]
    for (r in runs[-1]) expect_identical(r, runs[[1]])
  }
  expect_false(identical(out[[1]]$p, out[[length(out)]]$p))
})

test_that("an interrupt stops randomization_test() within a second, even with 1e7 draws", {
  skip_on_cran()
  skip_if_not_installed("processx")
  setup <- paste(
    "set.seed(3); n <- 60",
    "d <- data.frame(id = sprintf('g%02d', 1:n), x1 = rnorm(n), x2 = rnorm(n))",
    "des <- suppressWarnings(rerandomize(d, ~ x1 + x2, n_treated = 30, accept = 0.05,",
    "  id = 'id', n_draws = 1000))",
    "d$treated <- des$treated; d$sales <- d$x1 + rnorm(n) + d$treated", sep = "\n")
  for (n_draws in c("1e6", "1e7")) {
    for (statistic in c("diff_in_means", "lin_t")) {
      took <- seconds_to_stop(sprintf(
        "randomization_test(sales ~ treated, d, design = des, n_draws = %s, statistic = '%s')",
        n_draws, statistic), setup, delay = 2)
      expect_lt(took, 1)
    }
  }
})
