fx <- readRDS(test_path("fixtures", "continuous.rds"))
pd <- fx$panel

test_that("iv_fe equals fixest feols IV with fixed effects (coefficients and SEs)", {
  m <- iv_fe(sales ~ price | geo + week | grp ~ cost + cost2, pd)
  expect_equal(unname(coef(m)), unname(fx$iv_cluster_unit$coef), tolerance = 1e-8)
  expect_equal(unname(sqrt(diag(vcov(m)))), unname(fx$iv_cluster_unit$se), tolerance = 1e-8)
  expect_equal(tidy(m, "first_stage")$f_robust, fx$iv_wald_first_stage, tolerance = 1e-8)
  m2 <- iv_fe(sales ~ price | geo + week | grp ~ cost, pd, cluster = "region")
  expect_equal(unname(coef(m2)), unname(fx$iv_cluster_region$coef), tolerance = 1e-8)
  expect_equal(unname(tidy(m2)$std.error), unname(fx$iv_cluster_region$se), tolerance = 1e-8)
  m3 <- iv_fe(sales ~ price | geo + week | grp ~ cost, pd, inference = "heteroskedastic",
              weights = "w")
  expect_equal(unname(coef(m3)), unname(fx$iv_hetero_weights$coef), tolerance = 1e-8)
  expect_equal(unname(tidy(m3)$std.error), unname(fx$iv_hetero_weights$se), tolerance = 1e-8)
  m4 <- iv_fe(sales2 ~ price | geo + week | grp + search ~ cost + cost2 + cost3, pd)
  expect_equal(unname(coef(m4)), unname(fx$iv_two_endogenous$coef), tolerance = 1e-8)
  expect_equal(unname(tidy(m4)$std.error), unname(fx$iv_two_endogenous$se), tolerance = 1e-8)
  expect_equal(nrow(tidy(m4, "first_stage")), 2L)
  expect_error(tidy(m4, "ar_set"), class = "mktcausal_error_bad_choice")
  # tibble and data.table input give the same fit.
  skip_if_not_installed("tibble")
  mt <- iv_fe(sales ~ price | geo + week | grp ~ cost + cost2, tibble::as_tibble(pd))
  expect_equal(coef(mt), coef(m))
})

test_that("iv_fe recovers a known effect and its AR set covers it", {
  set.seed(5)
  d <- expand.grid(geo = 1:80, week = 1:10)
  n <- nrow(d)
  d$z <- rnorm(n)
  u <- rnorm(n)
  d$grp <- d$z + u + rnorm(n) + d$geo / 40
  d$sales <- 3 * d$grp + d$geo / 10 + d$week + 2 * u + rnorm(n)
  m <- iv_fe(sales ~ 1 | geo + week | grp ~ z, d)
  expect_lt(abs(coef(m)[["grp"]] - 3), 3 * tidy(m)$std.error[1])
  expect_gt(tidy(m, "first_stage")$f_effective, 100)
  ar_set <- tidy(m, "ar_set")
  expect_equal(nrow(ar_set), 1L)
  expect_true(ar_set$conf.low < 3 && ar_set$conf.high > 3)
  # With one strong instrument the AR set is close to the Wald interval.
  expect_equal(unlist(ar_set), c(conf.low = tidy(m)$conf.low, conf.high = tidy(m)$conf.high),
               tolerance = 0.05)
  # OLS is biased upwards by the confounder u; 2SLS is not.
  ols <- stats::lm(sales ~ grp + factor(geo) + factor(week), d)
  expect_gt(coef(ols)[["grp"]], 3.5)
  g <- glance(m)
  expect_equal(g$nobs, 800L)
  expect_equal(confint(m)[1, ], c(tidy(m)$conf.low, tidy(m)$conf.high), ignore_attr = TRUE)
})

test_that("the AR set with several instruments ends where its statistic hits the critical value", {
  m <- iv_fe(sales ~ price | geo + week | grp ~ cost + cost2, pd)
  ar_set <- tidy(m, "ar_set")
  expect_equal(nrow(ar_set), 1L)
  fe <- list(pd$geo, pd$week)
  M <- demean_fe(cbind(pd$sales, pd$grp, pd$price, pd$cost, pd$cost2), fe)
  Zf <- cbind(price = M[, 3], cost = M[, 4], cost2 = M[, 5])
  wald_at <- function(b) {
    f <- ols_robust(Zf, M[, 1] - b * M[, 2], cluster = pd$geo, se_type = "CR1",
                    n_absorbed = fe_absorbed(fe, pd$geo))
    g <- f$coefficients[c("cost", "cost2")]
    as.numeric(t(g) %*% solve(f$vcov[c("cost", "cost2"), c("cost", "cost2")], g))
  }
  crit <- 2 * stats::qf(0.95, 2, 59)
  expect_equal(wald_at(ar_set$conf.low), crit, tolerance = 1e-6)
  expect_equal(wald_at(ar_set$conf.high), crit, tolerance = 1e-6)
  expect_lt(wald_at(coef(m)[["grp"]]), crit)
  # tidy(fit, "ar") is the same statistic (over the number of instruments).
  ar <- tidy(m, "ar")
  expect_equal(ar$statistic[c(1, 201, 401)] * 2,
               vapply(ar$effect[c(1, 201, 401)], wald_at, numeric(1)), tolerance = 1e-8)
  inside <- ar$effect[ar$statistic <= ar$critical]
  expect_true(min(inside) >= ar_set$conf.low && max(inside) <= ar_set$conf.high)
  expect_s3_class(plot(m), "ggplot")
})

test_that("weak instruments warn with the AR set, which can be unbounded", {
  set.seed(8)
  d <- expand.grid(geo = 1:40, week = 1:6)
  n <- nrow(d)
  d$z <- rnorm(n)
  u <- rnorm(n)
  d$grp <- 0.02 * d$z + u + rnorm(n)
  d$sales <- d$grp + 2 * u + rnorm(n)
  expect_warning(m <- iv_fe(sales ~ 1 | geo + week | grp ~ z, d),
                 class = "mktcausal_warning_weak_instruments")
  expect_lt(tidy(m, "first_stage")$f_effective, 10)
  expect_true(any(is.infinite(unlist(tidy(m, "ar_set")))))
  expect_match(glance(m)$ar_set, "Inf")
})

test_that("the complier effect agrees with experiment_diagnostics()", {
  set.seed(9)
  n_geo <- 60
  geo <- data.frame(geo = 1:n_geo, assigned = rep(0:1, each = n_geo / 2))
  geo$received <- geo$assigned * rbinom(n_geo, 1, 0.7)
  geo$pre <- rnorm(n_geo, 100, 10)
  geo$post <- geo$pre + 2 + 5 * geo$received + rnorm(n_geo)
  long <- rbind(data.frame(geo = geo$geo, period = 1, sales = geo$pre, z = 0, d = 0),
                data.frame(geo = geo$geo, period = 2, sales = geo$post,
                           z = geo$assigned, d = geo$received))
  m <- iv_fe(sales ~ 1 | geo + period | d ~ z, long)
  geo$change <- geo$post - geo$pre
  diag <- experiment_diagnostics(geo, "assigned", received = "received", outcome = "change")
  expect_equal(coef(m)[["d"]], diag$complier_effect$estimate, tolerance = 1e-10)
  # Clustered CR1 on the two-period panel versus HC2 on the differences:
  # the same sandwich up to the small-sample factors.
  expect_equal(tidy(m)$std.error, diag$complier_effect$std.error, tolerance = 1e-3)
  expect_lt(abs(coef(m)[["d"]] - 5), 4 * tidy(m)$std.error)
})

test_that("iv_fe rejects bad formulas and absorbed instruments with classed errors", {
  expect_error(iv_fe(sales ~ price | geo + week, pd), class = "mktcausal_error_bad_formula")
  expect_error(iv_fe(sales ~ price | geo + week | grp + price ~ cost, pd),
               class = "mktcausal_error_bad_formula")
  pd$unit_z <- pd$geo %% 2
  expect_error(iv_fe(sales ~ 1 | geo + week | grp ~ unit_z, pd),
               class = "mktcausal_error_instrument_absorbed")
  expect_error(iv_fe(sales ~ 1 | geo + week | grp ~ nope, pd),
               class = "mktcausal_error_missing_column")
  expect_error(iv_fe(sales ~ 1 | geo + week | grp ~ cost, pd, cluster = "nope"),
               class = "mktcausal_error_missing_column")
})

test_that("iv_fe checks its inference arguments and returns the contract's fields", {
  expect_error(iv_fe(sales ~ price | geo + week | grp ~ cost, pd, inference = "heteroskedastic",
                     cluster = "region"), class = "mktcausal_error_bad_argument")
  expect_error(iv_fe(sales ~ price | geo + week | grp ~ cost, pd, inference = "hc1"),
               class = "mktcausal_error_bad_choice")
  expect_error(iv_fe(sales ~ price | geo + week | grp ~ cost, pd, se = "cluster"),
               class = "mktcausal_error_unknown_argument")
  m <- iv_fe(sales ~ price | geo + week | grp ~ cost, pd, cluster = "region")
  expect_identical(names(coef(m)), c("grp", "price"))
  expect_equal(nobs(m), nrow(pd))
  expect_equal(glance(m)$n_clusters, length(unique(pd$region)))
  expect_equal(glance(m)$f_robust, tidy(m, "first_stage")$f_robust)
  expect_s3_class(ggplot2::autoplot(m, "estimates"), "ggplot")
  out <- capture.output(print(m))
  expect_true(any(grepl("First stage of grp", out)))
  expect_true(any(grepl("Anderson-Rubin", out)))
})

test_that("degenerate endogenous variables, outcomes, exogenous columns and clusters give classed errors", {
  d <- hard_panel()
  expect_error(iv_fe(y ~ 1 | unit + time | const ~ z, d), "const",
               class = "mktcausal_error_no_variation")
  # Constant within units: the unit effects absorb it.
  expect_error(iv_fe(y ~ 1 | unit + time | expo ~ z, d), "expo",
               class = "mktcausal_error_no_variation")
  d$y0 <- 5
  expect_error(iv_fe(y0 ~ 1 | unit + time | dose ~ z, d), "y0",
               class = "mktcausal_error_no_variation")
  d$x2 <- 2 * d$x
  expect_error(iv_fe(y ~ x + x2 | unit + time | dose ~ z, d), "x2",
               class = "mktcausal_error_collinear")
  expect_error(iv_fe(y ~ 1 | unit + time | dose ~ z, d, cluster = "one_cluster"),
               class = "mktcausal_error_too_few_clusters")
  # Two clusters cannot estimate the covariance of three first-stage
  # coefficients.
  d$z2 <- stats::rnorm(nrow(d))
  d$z3 <- stats::rnorm(nrow(d))
  expect_error(suppressWarnings(iv_fe(y ~ 1 | unit + time | dose ~ z + z2 + z3, d,
                                      cluster = "two_clusters")),
               class = "mktcausal_error_too_few_clusters")
  # An exact first stage has an infinite first-stage F and a 2SLS equal to
  # least squares.
  d$dz <- 2 * d$z
  m <- iv_fe(y ~ 1 | unit + time | dz ~ z, d)
  expect_true(all(is.finite(tidy(m)$std.error)))
  expect_gt(tidy(m, "first_stage")$f_robust, 1e10)
})

test_that("outcomes near 1e300 and 1e-300 give the scaled answer", {
  d <- hard_panel()
  fit <- function(y, data) iv_fe(y ~ x | unit + time | dose ~ z, data, weights = "w")
  expect_outcome_scaled(fit, d)
  expect_outcome_scaled(fit, d, "ar_set")
  big <- d
  big$y <- d$y * 1e300
  expect_equal(tidy(fit(big$y, big), "first_stage")$f_effective,
               tidy(fit(d$y, d), "first_stage")$f_effective, tolerance = 1e-10)
})
