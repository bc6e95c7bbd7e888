fx <- readRDS(test_path("fixtures", "continuous.rds"))
pd <- fx$panel

test_that("the linear TWFE slope equals fixest feols", {
  m <- dose_response(sales ~ dose | geo + week, pd)
  expect_equal(unname(coef(m)), unname(fx$dose_linear$coef), tolerance = 1e-8)
  expect_equal(tidy(m)$std.error, unname(fx$dose_linear$se), tolerance = 1e-8)
  expect_equal(names(coef(m)), "dose")
  m2 <- dose_response(sales ~ dose + price | geo + week, pd)
  expect_equal(unname(coef(m2)), unname(fx$dose_linear_cov$coef[1]), tolerance = 1e-8)
  expect_equal(tidy(m2)$std.error, unname(fx$dose_linear_cov$se[1]), tolerance = 1e-8)
  cv <- tidy(m, "curve")
  expect_equal(cv$estimate, coef(m)[["dose"]] * cv$dose, tolerance = 1e-12)
})

# 2 pre and 2 post periods, 30% of units untreated, doses U(0, 1) otherwise,
# ATT(d) = d^2 so ACRT(d) = 2d and the average ACRT over dosed units is 1.
# TWFE weights the ACRT towards the middle of the dose distribution:
# Cov(D, D^2) / Var(D) = (0.175 - 0.7 / 3 * 0.35) / (0.7 / 3 - 0.35^2) = 0.842.
sim_cdid <- function(n = 3000, seed = 4) {
  set.seed(seed)
  dose <- ifelse(runif(n) < 0.3, 0, runif(n))
  d <- expand.grid(geo = seq_len(n), week = 1:4)
  d$grp <- ifelse(d$week >= 3, dose[d$geo], 0)
  d$sales <- rnorm(n)[d$geo] + d$week / 2 + d$grp^2 + rnorm(nrow(d), sd = 0.3)
  d
}

test_that("continuous DiD recovers ATT(d) and ACRT where TWFE on doses is biased", {
  d <- sim_cdid()
  expect_warning(tw <- dose_response(sales ~ grp | geo + week, d),
                 class = "mktcausal_warning_twfe_dose")
  expect_lt(abs(coef(tw)[["grp"]] - 0.842), 4 * tidy(tw)$std.error)
  expect_gt(abs(coef(tw)[["grp"]] - 1), 6 * tidy(tw)$std.error)
  cg <- dose_response(sales ~ grp | geo + week, d, method = "cgbs", shape = "spline")
  td <- tidy(cg)
  expect_equal(td$term, c("ATT", "ACRT"))
  expect_lt(abs(td$estimate[2] - 1), 4 * td$std.error[2])
  # The average ATT over dosed units is E[D^2 | D > 0] = 1/3.
  expect_lt(abs(td$estimate[1] - 1 / 3), 4 * td$std.error[1])
  cv <- tidy(cg, "curve")
  att <- cv[cv$estimand == "ATT", ]
  mid <- att[abs(att$dose - 0.5) < 0.03, ]
  expect_true(all(abs(mid$estimate - mid$dose^2) < 4 * mid$std.error))
  acrt <- cv[cv$estimand == "ACRT", ]
  mid <- acrt[abs(acrt$dose - 0.5) < 0.03, ]
  expect_true(all(abs(mid$estimate - 2 * mid$dose) < 4 * mid$std.error))
  expect_equal(glance(cg)$twfe_slope, coef(tw)[["grp"]], tolerance = 1e-8)
  # TWFE's weights on ACRT(l) integrate to one; for U(0, 1) doses with 30%
  # zeros they are 0.7 [(1 - l^2) / 2 - 0.35 (1 - l)] / Var(D): positive
  # inside, falling to zero at the largest dose.
  w <- tidy(cg, "twfe_weights")
  area <- sum(diff(w$dose) * (head(w$weight, -1) + tail(w$weight, -1)) / 2)
  expect_equal(area, 1, tolerance = 0.02)
  expect_gt(w$weight[51], w$weight[101])
  # Under strong parallel trends TWFE is the integral of ACRT(l) w(l) = 2 l w(l).
  implied <- sum(diff(w$dose) * (head(2 * w$dose * w$weight, -1) + tail(2 * w$dose * w$weight, -1)) / 2)
  expect_lt(abs(implied - coef(tw)[["grp"]]), 4 * tidy(tw)$std.error)
  # Linear CGBS: ACRT is the slope of the change on the dose among the dosed.
  cl <- dose_response(sales ~ grp | geo + week, d, method = "cgbs")
  expect_lt(abs(coef(cl)[["ACRT"]] - 1), 4 * tidy(cl)$std.error[2])
  expect_s3_class(plot(cg), "ggplot")
})

test_that("binned and spline TWFE curves recover a known dose-response", {
  set.seed(6)
  d <- expand.grid(geo = 1:300, week = 1:6)
  d$grp <- runif(nrow(d), 0, 2) * (runif(nrow(d)) < 0.7)
  d$sales <- d$geo / 100 + sin(d$week) + 3 * sqrt(d$grp) + rnorm(nrow(d), sd = 0.3)
  b <- dose_response(sales ~ grp | geo + week, d, shape = "bins", n_bins = 4)
  cv <- tidy(b, "curve")
  truth <- 3 * sapply(split(d$grp[d$grp > 0], cut(d$grp[d$grp > 0],
    stats::quantile(d$grp[d$grp > 0], 0:4 / 4), include.lowest = TRUE)), function(x) mean(sqrt(x)))
  expect_equal(nrow(tidy(b)), 4L)
  expect_true(all(abs(tidy(b)$estimate - truth) < 4 * tidy(b)$std.error))
  s <- dose_response(sales ~ grp | geo + week, d, shape = "spline", spline_df = 5)
  cv <- tidy(s, "curve")
  pick <- cv[abs(cv$dose - 1) < 0.05, ]
  expect_true(all(abs(pick$estimate - 3 * sqrt(pick$dose)) < 4 * pick$std.error + 0.05))
  expect_s3_class(plot(b), "ggplot")
})

test_that("dose_response rejects a dose without within-unit variation, naming it", {
  d <- expand.grid(geo = 1:20, week = 1:5)
  d$grp <- d$geo / 10
  d$sales <- rnorm(nrow(d))
  expect_error(dose_response(sales ~ grp | geo + week, d),
               class = "mktcausal_error_no_variation")
  expect_error(dose_response(sales ~ grp | geo + week, d), "grp")
  d$grp <- d$grp * (d$week > 2)
  expect_error(dose_response(sales ~ grp | geo + week, d, method = "cgbs"),
               class = "mktcausal_error_not_continuous_did")
  expect_error(dose_response(sales ~ 0 | geo + week, d), class = "mktcausal_error_bad_formula")
})

test_that("a panel can stand in for the formula, and the inference arguments are checked", {
  p <- mkt_panel(sales ~ dose | geo + week, pd, cluster = "region")
  a <- dose_response(p, cluster = "region")
  b <- dose_response(sales ~ dose | geo + week, pd, cluster = "region")
  expect_equal(coef(a), coef(b))
  expect_equal(vcov(a), vcov(b))
  expect_equal(glance(a)$n_clusters, length(unique(pd$region)))
  expect_error(dose_response(p, cluster = "geo"), class = "mktcausal_error_bad_argument")
  expect_error(dose_response(sales ~ dose | geo + week, pd, inference = "heteroskedastic",
                             cluster = "region"), class = "mktcausal_error_bad_argument")
  expect_error(dose_response(sales ~ dose | geo + week, pd, method = "cgbs", cluster = "region"),
               class = "mktcausal_error_inference_unsupported")
  expect_error(dose_response(sales ~ dose | geo + week, pd, estimator = "cgbs"),
               class = "mktcausal_error_unknown_argument")
  expect_error(dose_response(sales ~ dose | geo + week, pd, method = "cgb"),
               class = "mktcausal_error_bad_choice")
})

test_that("a constant outcome and one cluster give classed errors", {
  d <- hard_panel()
  d$y0 <- 5
  expect_error(dose_response(y0 ~ dose | unit + time, d), "y0",
               class = "mktcausal_error_no_variation")
  expect_error(dose_response(y ~ dose | unit + time, d, cluster = "one_cluster"),
               class = "mktcausal_error_too_few_clusters")
  # Continuous DiD: every unit's outcome moves by the same amount.
  dc <- sim_cdid(n = 200)
  dc$y0 <- dc$geo %% 3 + dc$week
  expect_error(dose_response(y0 ~ grp | geo + week, dc, method = "cgbs"), "y0",
               class = "mktcausal_error_no_variation")
})

test_that("outcomes near 1e300 and 1e-300 give the scaled answer", {
  d <- hard_panel()
  fit <- function(y, data) dose_response(y ~ dose + x | unit + time, data, weights = "w")
  expect_outcome_scaled(fit, d)
  expect_outcome_scaled(fit, d, "curve")
  dc <- sim_cdid(n = 300)
  dc$y <- dc$sales
  cg <- function(y, data) dose_response(y ~ grp | geo + week, data, method = "cgbs",
                                        shape = "spline")
  expect_outcome_scaled(cg, dc)
  expect_outcome_scaled(cg, dc, "curve")
})
