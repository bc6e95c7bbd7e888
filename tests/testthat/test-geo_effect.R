# geo_effect(): TBR and GBR against lm() on the same aggregates and the
# papers' variance formulas by hand; Trimmed Match against a brute-force
# solution of its estimating equation at every trim level; coverage of the
# 95% intervals on a heavy-tailed geo population; bad input.

# A geo x week panel: geo sizes lognormal (a few huge geos), sales
# proportional to size times a common weekly factor, noise growing with
# size; treated geos get `iroas` times their spend in the test weeks.
geo_panel <- function(n_geo = 40, n_pre = 20, n_post = 8, iroas = 2, seed = 1,
                      paired = TRUE) {
  withr::with_seed(seed, {
    size <- sort(stats::rlnorm(n_geo, 0, 1.2))
    pair <- rep(seq_len(n_geo / 2), each = 2)
    treat <- if (paired) as.vector(vapply(seq_len(n_geo / 2), function(i) sample(0:1), integer(2))) else
      sample(rep(0:1, n_geo / 2))
    n_t <- n_pre + n_post
    f <- 100 * (1 + 0.3 * sin(seq_len(n_t) / 3) + cumsum(stats::rnorm(n_t, 0, 0.05)))
    d <- expand.grid(week = seq_len(n_t), geo = seq_len(n_geo))
    d$geo_id <- sprintf("G%02d", d$geo)
    d$treated <- treat[d$geo]
    d$pair <- sprintf("P%02d", pair[d$geo])
    post <- d$week > n_pre
    d$spend <- ifelse(post & d$treated == 1, 5 * size[d$geo] * stats::runif(nrow(d), 0.5, 1.5), 0)
    d$sales <- size[d$geo] * f[d$week] + stats::rnorm(nrow(d), 0, 8 * sqrt(size[d$geo])) +
      iroas * d$spend
    d
  })
}

test_that("TBR equals lm() on the group series and the paper's predictive variance", {
  d <- geo_panel()
  expect_warning(
    fit <- geo_effect(sales ~ treated | geo_id + week, d, post = 21:28, spend = "spend"),
    class = "mktcausal_warning_model_based_inference")
  yt <- tapply(d$sales[d$treated == 1], d$week[d$treated == 1], sum)
  yc <- tapply(d$sales[d$treated == 0], d$week[d$treated == 0], sum)
  pre <- 1:20
  post <- 21:28
  m <- lm(y ~ x, data.frame(y = yt[pre], x = yc[pre]))
  pred <- predict(m, data.frame(x = yc[post]))
  delta <- sum(yt[post] - pred)
  # Predictive variance of the sum: m sigma^2 + a' V a, a = (m, sum x_new).
  a <- c(length(post), sum(yc[post]))
  v_lm <- length(post) * sigma(m)^2 + drop(t(a) %*% vcov(m) %*% a)
  # The paper's closed form.
  xbar <- mean(yc[pre])
  v_paper <- sigma(m)^2 * (8 + 8^2 / 20 + 8^2 * (mean(yc[post]) - xbar)^2 /
                             sum((yc[pre] - xbar)^2))
  expect_equal(v_lm, v_paper, tolerance = 1e-10)
  spend <- sum(d$spend[d$treated == 1 & d$week %in% post])
  e <- tidy(fit)
  expect_identical(e$term, "iroas")
  expect_equal(e$incremental, delta, tolerance = 1e-10)
  expect_equal(e$estimate, delta / spend, tolerance = 1e-10)
  expect_equal(e$std.error, sqrt(v_lm) / spend, tolerance = 1e-10)
  q <- qt(0.975, 18)
  expect_equal(c(e$incremental.low, e$incremental.high), delta + c(-1, 1) * q * sqrt(v_lm),
               tolerance = 1e-10)
  expect_equal(e$df, 18)
  expect_equal(tidy(fit, "regression")$estimate, unname(coef(m)), tolerance = 1e-10)
  s <- tidy(fit, "series")
  expect_equal(s$cumulative[28], delta, tolerance = 1e-10)
  expect_equal(s$counterfactual[post], unname(pred), tolerance = 1e-10)
  # Pointwise bands are lm's prediction intervals.
  pi <- predict(m, data.frame(x = yc[post]), interval = "prediction")
  expect_equal(s$conf.low[post], unname(pi[, "lwr"]), tolerance = 1e-10)
  # The truth is an iROAS of 2 (coverage is checked by simulation below).
  expect_lt(abs(e$estimate - 2), 4 * e$std.error)
})

test_that("GBR equals weighted lm() with weights 1 / pre-period total", {
  d <- geo_panel(seed = 2)
  geo <- function(w) tapply(d$sales[d$week %in% w], d$geo_id[d$week %in% w], sum)
  pre_t <- geo(1:20)
  post_t <- geo(21:28)
  tr <- tapply(d$treated, d$geo_id, max)
  sp <- tapply(d$spend * (d$week > 20), d$geo_id, sum)
  m1 <- lm(post_t ~ pre_t + tr, weights = 1 / pre_t)
  f1 <- suppressWarnings(geo_effect(sales ~ treated | geo_id + week, d, method = "gbr",
                                    post = 21:28))
  e1 <- tidy(f1)
  expect_identical(e1$term, "incremental")
  expect_equal(e1$estimate, 20 * coef(m1)[["tr"]], tolerance = 1e-9)
  expect_equal(e1$std.error, 20 * summary(m1)$coefficients["tr", 2], tolerance = 1e-9)
  expect_equal(e1$p.value, summary(m1)$coefficients["tr", 4], tolerance = 1e-9)
  m2 <- lm(post_t ~ pre_t + sp, weights = 1 / pre_t)
  f2 <- suppressWarnings(geo_effect(sales ~ treated | geo_id + week, d, method = "gbr",
                                    post = 21:28, spend = "spend"))
  e2 <- tidy(f2)
  expect_equal(e2$estimate, coef(m2)[["sp"]], tolerance = 1e-9)
  expect_equal(e2$std.error, summary(m2)$coefficients["sp", 2], tolerance = 1e-9)
  expect_equal(c(e2$conf.low, e2$conf.high), unname(confint(m2)["sp", ]), tolerance = 1e-9)
  expect_equal(tidy(f2, "regression")$estimate, unname(coef(m2)), tolerance = 1e-9)
})

# The trimmed estimating equation solved by brute force: between
# consecutive crossings of the residual lines the order is fixed, so sort
# the residuals at each midpoint and keep the roots inside their interval.
tm_brute <- function(y, x, k) {
  n <- length(y)
  cr <- outer(y, y, "-") / outer(x, x, "-")
  cr <- sort(unique(cr[upper.tri(cr) & is.finite(cr)]))
  ends <- c(-Inf, cr, Inf)
  roots <- numeric()
  for (i in seq_len(length(ends) - 1L)) {
    lo <- ends[i]
    hi <- ends[i + 1L]
    mid <- if (is.infinite(lo) && is.infinite(hi)) 0 else if (is.infinite(lo)) hi - 1 - abs(hi) else
      if (is.infinite(hi)) lo + 1 + abs(lo) else (lo + hi) / 2
    body <- order(y - mid * x)[(k + 1):(n - k)]
    r <- sum(y[body]) / sum(x[body])
    if (is.finite(r) && r >= lo && r <= hi) roots <- c(roots, r)
  }
  unique(roots)
}

tm_se <- function(y, x, k, theta) {
  e <- y - theta * x
  o <- order(e)
  n <- length(y)
  body <- o[(k + 1):(n - k)]
  w <- c(rep(e[o[k + 1]], k), e[body], rep(e[o[n - k]], k))
  sqrt(sum(w^2)) / abs(sum(x[body]))
}

test_that("Trimmed Match solves its estimating equation at every trim level", {
  d <- geo_panel(n_geo = 40, seed = 3)
  fit <- geo_effect(sales ~ treated | geo_id + week, d, method = "trimmed_match",
                    post = 21:28, spend = "spend", pairs = "pair") |>
    suppressWarnings()
  pr <- tidy(fit, "pairs")
  y <- pr$delta_outcome
  x <- pr$delta_spend
  trims <- tidy(fit, "trims")
  for (k in trims$trim) {
    roots <- tm_brute(y, x, k)
    expect_gte(length(roots), 1L)
    se <- vapply(roots, function(r) tm_se(y, x, k, r), numeric(1))
    row <- trims[trims$trim == k, ]
    expect_equal(row$estimate, roots[which.min(se)], tolerance = 1e-9)
    expect_equal(row$std.error, min(se), tolerance = 1e-9)
  }
  # Untrimmed: the ratio of sums.
  expect_equal(trims$estimate[1], sum(y) / sum(x), tolerance = 1e-12)
  # The interval's ends are where Yuen's trimmed t equals the t quantile.
  e <- tidy(fit)
  k <- trims$trim[trims$chosen]
  yuen <- function(theta) mktcausal:::yuen_t(y - theta * x, k)
  q <- qt(0.975, 20 - 2 * k - 1)
  expect_equal(abs(yuen(e$conf.low)), q, tolerance = 1e-6)
  expect_equal(abs(yuen(e$conf.high)), q, tolerance = 1e-6)
  grid <- seq(e$conf.low, e$conf.high, length.out = 50)[2:49]
  expect_true(all(abs(vapply(grid, yuen, numeric(1))) <= q))
  width <- e$conf.high - e$conf.low
  expect_gt(abs(yuen(e$conf.low - 0.01 * width)), q)
  expect_gt(abs(yuen(e$conf.high + 0.01 * width)), q)
  # The p-value is the same test at zero.
  expect_equal(e$p.value, 2 * pt(-abs(yuen(0)), 20 - 2 * k - 1), tolerance = 1e-12)
  expect_equal(e$incremental, e$estimate * sum(x), tolerance = 1e-12)
})

test_that("95% intervals cover the true iROAS on a heavy-tailed geo population", {
  skip_on_cran()
  # Pairs of geos of similar (lognormal) size; spend and noise scale with
  # size; iROAS 2. Cores are called on the aggregates, as geo_effect() does.
  reps <- 200
  hits <- matrix(NA, reps, 3, dimnames = list(NULL, c("tbr", "gbr", "trimmed_match")))
  for (r in seq_len(reps)) {
    d <- geo_panel(n_geo = 40, seed = 100 + r)
    wk <- d$week
    tr <- d$treated == 1
    yt <- as.vector(tapply(d$sales[tr], wk[tr], sum))
    yc <- as.vector(tapply(d$sales[!tr], wk[!tr], sum))
    spend_t <- sum(d$spend[tr])
    tb <- mktcausal:::tbr_fit(yt[1:20], yc[1:20], yt[21:28], yc[21:28])
    q <- qt(0.975, 18)
    lim <- (tb$cumulative[8] + c(-1, 1) * q * tb$se_cumulative[8]) / spend_t
    hits[r, "tbr"] <- lim[1] < 2 && lim[2] > 2
    pre_t <- as.vector(tapply(d$sales * (wk <= 20), d$geo, sum))
    post_t <- as.vector(tapply(d$sales * (wk > 20), d$geo, sum))
    sp <- as.vector(tapply(d$spend, d$geo, sum))
    g <- mktcausal:::gbr_wls(cbind(1, pre_t, sp), post_t, 1 / pre_t)
    se <- sqrt(g$vcov[3, 3])
    hits[r, "gbr"] <- abs(g$coefficients[[3]] - 2) < qt(0.975, 37) * se
    trt <- as.vector(tapply(d$treated, d$geo, max))
    pair <- as.vector(tapply(d$pair, d$geo, unique))
    dy <- as.vector(tapply(post_t * (2 * trt - 1), pair, sum))
    dx <- as.vector(tapply(sp * (2 * trt - 1), pair, sum))
    tm <- mktcausal:::trimmed_match_fit(dy, dx, 0.05)
    hits[r, "trimmed_match"] <- tm$conf.low < 2 && tm$conf.high > 2
  }
  cover <- colMeans(hits)
  # 0.95 within three Monte Carlo standard errors (0.046 at 200 draws).
  mc <- 3 * sqrt(0.95 * 0.05 / reps)
  expect_true(all(abs(cover - 0.95) < mc), info = paste(names(cover), cover, collapse = ", "))
})

test_that("a package design is checked, used for pairs, and silences the warning", {
  d <- stats::aggregate(cbind(sales, spend) ~ dma + week, geo_sales, sum)
  d <- d[d$week >= 53 & d$week <= 90, ]
  units <- geo_units(sales ~ 0 | dma + week, d, pre = 53:78)
  pairs <- stratify(units, method = "matched", covariates = ~ outcome_mean)
  des <- withr::with_seed(3, rerandomize(units, ~ outcome_mean, strata = pairs, accept = 0.2))
  d$treated <- as.integer(d$dma %in% des$ids[des$treated == 1])
  d$spend <- ifelse(d$week >= 79 & d$treated == 1, 0.2 * d$sales, 0)
  d$sales <- d$sales + 1.5 * d$spend
  expect_no_warning(
    tm <- geo_effect(sales ~ treated | dma + week, d, method = "trimmed_match",
                     design = des, post = 79:90, spend = "spend"))
  expect_identical(glance(tm)$pairs_from, "design")
  expect_identical(nobs(tm), 200L * 38L)
  pr <- tidy(tm, "pairs")
  expect_identical(nrow(pr), 100L)
  expect_identical(sort(pr$pair), sort(levels(des$strata)))
  expect_true(all(des$strata[match(pr$treated, des$ids)] == des$strata[match(pr$control, des$ids)]))
  e <- tidy(tm)
  expect_true(e$conf.low < 1.5 && e$conf.high > 1.5)
  expect_equal(unname(coef(tm)), e$estimate)
  expect_equal(unname(confint(tm)[1, ]), c(e$conf.low, e$conf.high))
  # The treatment must be the design's.
  d2 <- d
  d2$treated[d2$dma == des$ids[des$treated == 1][1]] <- 0L
  expect_error(geo_effect(sales ~ treated | dma + week, d2, design = des, post = 79:90),
               class = "mktcausal_error_misaligned")
  # Without a design: TBR warns, and so does Trimmed Match pairing by rank.
  expect_warning(geo_effect(sales ~ treated | dma + week, d, post = 79:90),
                 class = "mktcausal_warning_model_based_inference")
  w <- character()
  withCallingHandlers(
    geo_effect(sales ~ treated | dma + week, d, method = "trimmed_match", post = 79:90),
    mktcausal_warning_model_based_inference = function(c) {
      w <<- c(w, conditionMessage(c))
      invokeRestart("muffleWarning")
    })
  expect_length(w, 2L)
  expect_match(w[2], "paired by rank")
})

test_that("bad input gets classed errors that name the argument", {
  d <- geo_panel(n_geo = 20, seed = 4)
  run <- function(...) suppressWarnings(geo_effect(sales ~ treated | geo_id + week, d, ...))
  expect_error(run(method = "synth"), class = "mktcausal_error_bad_choice")
  expect_error(run(post = 21:28, n_boot = 10), class = "mktcausal_error_unknown_argument")
  expect_error(run(post = 21:28, pairs = "pair"), class = "mktcausal_error_bad_argument")
  # The treatment column marks arms in every week: the test window is needed.
  expect_error(run(), class = "mktcausal_error_bad_window")
  neg <- d
  neg$spend[1] <- -1
  expect_error(suppressWarnings(geo_effect(sales ~ treated | geo_id + week, neg, post = 21:28,
                                           spend = "spend")),
               class = "mktcausal_error_bad_spend")
  d0 <- d
  d0$spend <- 0
  expect_error(suppressWarnings(geo_effect(sales ~ treated | geo_id + week, d0, post = 21:28,
                                           spend = "spend")),
               class = "mktcausal_error_bad_spend")
  expect_error(suppressWarnings(geo_effect(sales ~ treated | geo_id + week, d0,
                                           method = "trimmed_match", post = 21:28,
                                           spend = "spend", pairs = "pair")),
               class = "mktcausal_error_bad_spend")
  # Pairs that do not pair: a label on three geos, or two treated geos.
  bad <- d
  bad$pair[bad$geo_id == "G03"] <- "P01"
  expect_error(suppressWarnings(geo_effect(sales ~ treated | geo_id + week, bad,
                                           method = "trimmed_match", post = 21:28,
                                           pairs = "pair")),
               class = "mktcausal_error_bad_pairs")
  # Unequal arms cannot be paired by rank.
  uneq <- d[d$geo_id != "G01", ]
  expect_error(suppressWarnings(geo_effect(sales ~ treated | geo_id + week, uneq,
                                           method = "trimmed_match", post = 21:28)),
               class = "mktcausal_error_bad_pairs")
  expect_error(run(post = 21:28, pre = 19:20), class = "mktcausal_error_too_few_pre_periods")
  gap <- d[!(d$geo_id == "G05" & d$week == 3), ]
  expect_error(suppressWarnings(geo_effect(sales ~ treated | geo_id + week, gap, post = 21:28)),
               class = "mktcausal_error_unbalanced_panel")
})

test_that("with a design, TBR and GBR give randomization p-values conditional on the rule", {
  d <- geo_panel(n_geo = 40, iroas = 0, seed = 11, paired = FALSE)
  units <- geo_units(sales ~ 0 | geo_id + week, d, pre = 1:20)
  des <- withr::with_seed(5, rerandomize(units, ~ outcome_mean, n_treated = 20, accept = 0.2,
                                          n_draws = 2000))
  d$treated <- as.integer(d$geo_id %in% des$ids[des$treated == 1])
  d$spend <- ifelse(d$week > 20 & d$treated == 1, 5, 0)
  tbr <- withr::with_seed(1, geo_effect(sales ~ treated | geo_id + week, d, design = des,
                                        post = 21:28, n_draws = 500))
  gbr <- withr::with_seed(1, geo_effect(sales ~ treated | geo_id + week, d, design = des,
                                        post = 21:28, method = "gbr", n_draws = 500))
  # The statistic of the observed assignment is the fit's own t (TBR) and
  # the t of the treatment indicator in lm(weights = 1 / pre) (GBR).
  geo <- mktcausal:::geo_totals(mktcausal:::as_panel(sales ~ treated | geo_id + week, d),
                                des, NULL, NULL, 21:28, NULL)
  W <- matrix(as.integer(des$treated), ncol = 1L)
  K <- matrix(TRUE, length(des$treated), 1L)
  expect_equal(mktcausal:::tbr_t(geo, W, K), tidy(tbr)$statistic, tolerance = 1e-10)
  g <- data.frame(y = geo$post_total, x = geo$pre_total, z = geo$treat)
  m <- summary(lm(y ~ x + z, g, weights = 1 / x))$coefficients
  expect_equal(mktcausal:::gbr_t(geo, W, K), m["z", "t value"], tolerance = 1e-10)
  # Reference draws come from the rule: the p-value is a share of 500 draws.
  for (f in list(tbr, gbr)) {
    p <- tidy(f)$p.value_randomization
    expect_true(p > 0 && p <= 1)
    expect_equal(round(p * 501) / 501, p, tolerance = 1e-12)
    expect_identical(glance(f)$n_draws, 500L)
  }
  # The same seed gives the same p-value; a spend column leaves GBR's test
  # (of the treatment indicator) unchanged.
  tbr2 <- withr::with_seed(1, geo_effect(sales ~ treated | geo_id + week, d, design = des,
                                         post = 21:28, n_draws = 500))
  expect_identical(tidy(tbr2)$p.value_randomization, tidy(tbr)$p.value_randomization)
  gbr_s <- withr::with_seed(1, geo_effect(sales ~ treated | geo_id + week, d, design = des,
                                          post = 21:28, method = "gbr", spend = "spend",
                                          n_draws = 500))
  expect_identical(tidy(gbr_s)$p.value_randomization, tidy(gbr)$p.value_randomization)
  expect_false("p.value_randomization" %in% names(tidy(suppressWarnings(
    geo_effect(sales ~ treated | geo_id + week, d, post = 21:28)))))
})

test_that("TBR's randomization test holds its size at zero effect (A/A over designs)", {
  skip_on_cran()
  d <- geo_panel(n_geo = 30, iroas = 0, seed = 21, paired = FALSE)
  units <- geo_units(sales ~ 0 | geo_id + week, d, pre = 1:20)
  reps <- 120
  p <- withr::with_seed(8, vapply(seq_len(reps), function(r) {
    des <- rerandomize(units, ~ outcome_mean, n_treated = 15, accept = 0.3, n_draws = 1000)
    d$treated <- as.integer(d$geo_id %in% des$ids[des$treated == 1])
    tidy(geo_effect(sales ~ treated | geo_id + week, d, design = des, post = 21:28,
                    n_draws = 200))$p.value_randomization
  }, numeric(1)))
  # Under the sharp null the p-value is (super-)uniform over designs.
  expect_lt(abs(mean(p <= 0.10) - 0.10), 3 * sqrt(0.1 * 0.9 / reps))
  expect_lt(abs(mean(p) - 0.5), 3 * sqrt(1 / 12 / reps))
})

test_that("a design of several cells: each cell against control, as the two-arm fit on its geos", {
  d <- geo_panel(n_geo = 62, iroas = 2, seed = 31, paired = FALSE)
  units <- geo_units(sales ~ 0 | geo_id + week, d, pre = 1:20)
  blocks <- stratify(units, method = "matched", covariates = ~ outcome_mean, block_size = 3,
                     prop_treated = c(heavy_up = 1 / 3, go_dark = 1 / 3))
  des <- withr::with_seed(4, suppressWarnings(
    rerandomize(units, ~ outcome_mean, strata = blocks, accept = 0.2, n_draws = 2000)))
  cell <- setNames(as.character(des$cell), des$ids)
  d$cell <- cell[d$geo_id]
  d$treated <- as.integer(d$cell != "control")
  base <- 3 * sqrt(ave(d$sales, d$geo_id))
  # Heavy-up adds spend in the test weeks; go-dark removes the spend it had.
  up <- d$cell == "heavy_up" & d$week > 20
  dark <- d$cell == "go_dark"
  d$spend <- base * (up + (dark & d$week <= 20))
  d$sales <- d$sales + 2 * base * (up - (dark & d$week > 20))
  for (m in c("tbr", "gbr")) {
    fit <- geo_effect(sales ~ treated | geo_id + week, d, method = m, design = des,
                      post = 21:28, spend = "spend")
    td <- tidy(fit)
    expect_identical(td$term, c("heavy_up - control", "go_dark - control"))
    sub <- d[d$cell %in% c("control", "heavy_up"), ]
    sub$treated <- as.integer(sub$cell == "heavy_up")
    two <- suppressWarnings(geo_effect(sales ~ treated | geo_id + week, sub, method = m,
                                       post = 21:28, spend = "spend"))
    expect_equal(td$estimate[1], tidy(two)$estimate, tolerance = 1e-10)
    expect_equal(td$std.error[1], tidy(two)$std.error, tolerance = 1e-10)
    expect_error(vcov(fit), class = "mktcausal_error_not_available")
  }
  # Without spend in the go-dark cell, its contrast is the incremental outcome.
  tbr <- geo_effect(sales ~ treated | geo_id + week, d, design = des, post = 21:28)
  expect_true(all(tidy(tbr)$quantity == "incremental"))
  expect_identical(unique(tidy(tbr, "series")$contrast), tidy(tbr)$term)
  # Trimmed Match pairs each cell's geo with the nearest control of its block.
  tm <- geo_effect(sales ~ treated | geo_id + week, d, method = "trimmed_match",
                   design = des, post = 21:28, spend = "spend")
  pr <- tidy(tm, "pairs")
  hu <- pr[pr$contrast == "heavy_up - control", ]
  expect_identical(nrow(hu), nlevels(des$strata))
  blk <- setNames(as.character(des$strata), des$ids)
  expect_identical(unname(blk[hu$treated]), unname(blk[hu$control]))
  sub <- d[d$geo_id %in% c(hu$treated, hu$control), ]
  sub$treated <- as.integer(sub$cell == "heavy_up")
  sub$pair <- blk[sub$geo_id]
  two <- suppressWarnings(geo_effect(sales ~ treated | geo_id + week, sub,
                                     method = "trimmed_match", pairs = "pair",
                                     post = 21:28, spend = "spend"))
  expect_equal(tidy(tm)$estimate[1], tidy(two)$estimate, tolerance = 1e-10)
  expect_true(tidy(tm)$conf.low[1] < 2 && tidy(tm)$conf.high[1] > 2)
  expect_true(all(nchar(capture.output(print(tm))) <= 80))
})
