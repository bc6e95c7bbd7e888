f_sim <- Y ~ D + X1 + X2 | id + time

test_that("counterfactual fits: tidy, glance, coef and plot give the documented shapes", {
  simdata <- gsynth_simdata
  fit <- counterfactual(f_sim, simdata, r = 2)
  expect_named(tidy(fit), c("term", "estimate", "std.error", "statistic", "p.value",
                            "conf.low", "conf.high", "n_cells"))
  expect_equal(tidy(fit)$term, c("ATT", "X1", "X2"))
  expect_equal(nrow(tidy(fit, "event")), 30L)
  expect_equal(tidy(fit, "period")$period, 21:30)
  expect_equal(tidy(fit, "unit")$unit, 101:105)
  expect_equal(sum(tidy(fit, "unit")$n_cells), 50L)
  expect_equal(nrow(tidy(fit, "factors")), 60L)
  lo <- tidy(fit, "loadings")
  expect_equal(nrow(lo), 100L)
  expect_equal(sum(lo$treated), 10L)
  expect_equal(nrow(tidy(fit, "cv")), 0L)
  cp <- tidy(fit, "counterfactual")
  expect_equal(mean(cp$observed[cp$event_time >= 0] - cp$counterfactual[cp$event_time >= 0]),
               coef(fit)[["ATT"]], tolerance = 1e-10)
  g <- glance(fit)
  expect_true(all(c("r", "pre_mspe", "r_rule") %in% names(g)))
  expect_equal(g$r, 2L)
  for (type in c("gap", "counterfactual", "factors", "loadings", "status")) {
    expect_s3_class(plot(fit, type), "ggplot")
  }
  expect_error(plot(fit, "cv"), class = "mktcausal_error_bad_argument")
  expect_output(print(fit), "ATT = 5.5433")
  expect_output(print(summary(fit)), "event time")
})

test_that("ife fits: tidy, glance, coef, vcov, summary and plot", {
  d <- sim_factor_panel(N = 30, Tn = 15, n_treated = 0, seed = 7)
  fit <- ife(y ~ x | unit + time, d, r_max = 3)
  expect_named(tidy(fit), c("term", "estimate", "std.error", "statistic", "p.value",
                            "conf.low", "conf.high"))
  expect_equal(nrow(tidy(fit, "factors")), 15L * fit$r)
  expect_equal(nrow(tidy(fit, "loadings")), 30L * fit$r)
  expect_equal(nrow(tidy(fit, "ic")), 4L)
  expect_equal(names(coef(fit)), "x")
  expect_equal(sqrt(diag(vcov(fit))), tidy(fit)$std.error, ignore_attr = TRUE)
  g <- glance(fit)
  expect_equal(g$r, fit$r)
  expect_equal(g$nobs, 450)
  for (type in c("factors", "loadings", "ic")) expect_s3_class(plot(fit, type), "ggplot")
  expect_output(print(summary(fit)), "Bai and Ng")
  fixed <- ife(y ~ x | unit + time, d, r = 0)
  expect_error(plot(fixed, "factors"), class = "mktcausal_error_bad_argument")
})

test_that("the fixed effects of ife and counterfactual fits are named unit_effects and time_effects", {
  fit <- ife(Y ~ D + X1 + X2 | id + time, gsynth_simdata, r = 2)
  expect_equal(fit$alpha, 0.05)
  expect_length(fit$unit_effects, 50L)
  expect_identical(names(fit$unit_effects), as.character(101:150))
  expect_length(fit$time_effects, 30L)
  # The fitted model reproduces the fitted cells: mu + alpha_i + xi_t + x'beta + lambda_i'f_t.
  d <- gsynth_simdata
  lf <- rowSums(fit$loadings[as.character(d$id), ] * fit$factors[as.character(d$time), ])
  fitted <- fit$intercept + fit$unit_effects[as.character(d$id)] +
    fit$time_effects[as.character(d$time)] + as.matrix(d[, c("D", "X1", "X2")]) %*% coef(fit) + lf
  expect_lt(sqrt(mean((d$Y - fitted)^2)), 1.2)
  none <- ife(Y ~ D + X1 + X2 | id + time, gsynth_simdata, r = 2, inference = "none")
  expect_error(vcov(none), class = "mktcausal_error_not_available")
  expect_equal(coef(none), coef(fit))
  cf <- counterfactual(Y ~ D + X1 + X2 | id + time, gsynth_simdata, r = 2, em = TRUE)
  expect_equal(cf$alpha, 0.05)
  expect_length(cf$unit_effects, 50L)
  expect_error(vcov(cf), class = "mktcausal_error_not_available")
  expect_error(confint(cf), class = "mktcausal_error_not_available")
})
