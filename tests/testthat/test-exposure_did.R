fx <- readRDS(test_path("fixtures", "continuous.rds"))
pd <- fx$panel

test_that("exposure_did equals fixest for the static and event-study models", {
  m <- exposure_did(y_exp ~ exposure | geo + week, pd, post = 8)
  expect_equal(unname(coef(m)), unname(fx$exposure$coef), tolerance = 1e-8)
  expect_equal(tidy(m)$std.error, unname(fx$exposure$se), tolerance = 1e-8)
  es <- tidy(m, "event_study")
  es <- es[es$time != 7, ]
  expect_equal(es$estimate, unname(fx$exposure_es$coef), tolerance = 1e-8)
  expect_equal(es$std.error, unname(fx$exposure_es$se), tolerance = 1e-8)
  # A post column gives the same fit as the first post period.
  m2 <- exposure_did(y_exp ~ exposure | geo + week, pd, post = "post", event_study = FALSE)
  expect_equal(coef(m2), coef(m))
})

test_that("exposure_did recovers a known effect and passes the pre-trend test", {
  set.seed(12)
  d <- expand.grid(dma = 1:120, week = 1:10)
  grp <- runif(120, 0, 3)
  d$grp <- grp[d$dma]
  d$sales <- d$dma / 10 + sin(d$week) + 0.7 * d$grp * (d$week >= 6) + rnorm(nrow(d))
  m <- exposure_did(sales ~ grp | dma + week, d, post = 6)
  expect_lt(abs(coef(m)[[1]] - 0.7), 4 * tidy(m)$std.error)
  es <- tidy(m, "event_study")
  expect_equal(nrow(es), 10L)
  expect_equal(es$estimate[es$relative_period == -1], 0)
  post <- es[es$relative_period >= 0, ]
  expect_true(all(abs(post$estimate - 0.7) < 4 * post$std.error))
  expect_gt(glance(m)$pretrend_p.value, 0.001)
  expect_equal(glance(m)$pretrend_df, 4)
  # A differential pre-trend is caught.
  d$sales2 <- d$sales + 0.3 * d$grp * d$week
  m2 <- exposure_did(sales2 ~ grp | dma + week, d, post = 6)
  expect_lt(glance(m2)$pretrend_p.value, 1e-6)
  expect_s3_class(plot(m), "ggplot")
})

test_that("exposure_did rejects exposures that vary and bad post arguments", {
  expect_error(exposure_did(sales ~ price | geo + week, pd, post = 8),
               class = "mktcausal_error_varies_within_unit")
  expect_error(exposure_did(y_exp ~ exposure | geo + week, pd, post = 99),
               class = "mktcausal_error_bad_argument")
  expect_error(exposure_did(y_exp ~ exposure | geo + week, pd),
               class = "mktcausal_error_bad_argument")
  expect_error(exposure_did(y_exp ~ exposure | geo + week, pd, post = 8, base = 40),
               class = "mktcausal_error_bad_argument")
})

test_that("exposure_did takes a data.table", {
  skip_if_not_installed("data.table")
  m <- exposure_did(y_exp ~ exposure | geo + week, pd, post = 8, event_study = FALSE)
  md <- exposure_did(y_exp ~ exposure | geo + week, data.table::as.data.table(pd), post = 8,
                     event_study = FALSE)
  expect_equal(coef(md), coef(m))
})

test_that("an exposure switched on at the shock gives the same fit without post", {
  set.seed(31)
  d <- expand.grid(dma = 1:40, week = 1:10)
  grp <- runif(40, 0, 3)
  d$grp <- grp[d$dma]
  d$sales <- d$dma / 10 + d$week / 4 + 0.5 * d$grp * (d$week >= 6) + rnorm(nrow(d))
  d$grp_on <- d$grp * (d$week >= 6)
  a <- exposure_did(sales ~ grp | dma + week, d, post = 6)
  b <- exposure_did(sales ~ grp_on | dma + week, d)
  expect_equal(a$estimates$estimate, b$estimates$estimate, tolerance = 1e-12)
  expect_equal(a$estimates$std.error, b$estimates$std.error, tolerance = 1e-12)
  expect_equal(b$first_post, 6L)
  expect_equal(tidy(b, "event_study")$estimate, tidy(a, "event_study")$estimate,
               tolerance = 1e-12)
})

test_that("with factors, exposure_did() survives a shock that loads on exposure", {
  set.seed(32)
  n <- 60
  n_t <- 20
  lambda <- rnorm(n)
  grp <- pmax(0.2, 1 + 0.8 * lambda + rnorm(n, 0, 0.5))  # exposure tracks the loading
  f <- cumsum(rnorm(n_t, 0, 0.4)) + seq_len(n_t) / 5     # a trending common factor
  d <- expand.grid(dma = seq_len(n), week = seq_len(n_t))
  d$grp <- grp[d$dma]
  d$sales <- 5 + d$dma / 20 + lambda[d$dma] * f[d$week] + 0.5 * d$grp * (d$week >= 12) +
    rnorm(nrow(d), 0, 0.3)
  plain <- exposure_did(sales ~ grp | dma + week, d, post = 12, event_study = FALSE)
  fac <- exposure_did(sales ~ grp | dma + week, d, post = 12, factors = 1)
  # parallel trends fails: the plain estimate is far from 0.5, the factor one is not
  expect_gt(abs(plain$estimates$estimate - 0.5), 5 * plain$estimates$std.error)
  expect_lt(abs(fac$estimates$estimate - 0.5), 3 * fac$estimates$std.error)
  expect_identical(fac$estimates$term, "grp:post")
  expect_equal(unname(coef(fac)), fac$estimates$estimate)
  expect_equal(fac$ife$r, 1L)
  expect_error(exposure_did(sales ~ grp | dma + week, d, post = 12, factors = -1),
               class = "mktcausal_error_bad_argument")
})

test_that("a panel carrying the post column gives the same fit", {
  p <- mkt_panel(y_exp ~ exposure | geo + week, pd, extra = "post")
  a <- exposure_did(p, post = "post", event_study = FALSE)
  b <- exposure_did(y_exp ~ exposure | geo + week, pd, post = 8, event_study = FALSE)
  expect_equal(coef(a), coef(b))
  expect_equal(vcov(a), vcov(b))
  h <- exposure_did(y_exp ~ exposure | geo + week, pd, post = 8, event_study = FALSE,
                    inference = "heteroskedastic")
  expect_equal(coef(h), coef(b))
  expect_true(is.na(glance(h)$n_clusters))
})

test_that("a constant outcome or exposure, collinear covariates and one cluster give classed errors", {
  d <- hard_panel()
  d$y0 <- 5
  expect_error(exposure_did(y0 ~ expo | unit + time, d, post = 5), "y0",
               class = "mktcausal_error_no_variation")
  expect_error(exposure_did(y0 ~ expo | unit + time, d, post = 5, factors = 1), "y0",
               class = "mktcausal_error_no_variation")
  d$flat <- 1
  expect_error(exposure_did(y ~ flat | unit + time, d, post = 5), "flat",
               class = "mktcausal_error_no_variation")
  expect_error(exposure_did(y ~ flat | unit + time, d, post = 5, factors = 1), "flat",
               class = "mktcausal_error_no_variation")
  d$x2 <- 2 * d$x
  expect_error(exposure_did(y ~ expo + x + x2 | unit + time, d, post = 5), "x2",
               class = "mktcausal_error_collinear")
  expect_error(exposure_did(y ~ expo | unit + time, d, post = 5, cluster = "one_cluster"),
               class = "mktcausal_error_too_few_clusters")
})

test_that("with fewer clusters than pre-periods the pre-trend test uses the directions it can test", {
  d <- hard_panel()
  m <- exposure_did(y ~ expo | unit + time, d, post = 5, cluster = "two_clusters")
  g <- glance(m)
  es <- tidy(m, "event_study")
  pre <- es[es$relative_period < -1, ]
  # Two clusters: the clustered covariance of the three pre-period
  # coefficients has rank one.
  expect_equal(nrow(pre), 3L)
  expect_equal(g$pretrend_df, 1)
  expect_true(is.finite(g$pretrend_stat) && g$pretrend_stat >= 0)
  expect_true(g$pretrend_p.value >= 0 && g$pretrend_p.value <= 1)
})

test_that("outcomes near 1e300 and 1e-300 give the scaled answer", {
  d <- hard_panel()
  fit <- function(y, data) exposure_did(y ~ expo + x | unit + time, data, post = 5,
                                        weights = "w")
  expect_outcome_scaled(fit, d)
  expect_outcome_scaled(fit, d, "event_study")
  expect_outcome_scaled(function(y, data) {
    exposure_did(y ~ expo + x | unit + time, data, post = 5, factors = 1)
  }, d)
})
