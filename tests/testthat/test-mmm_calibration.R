# mmm_calibration(): a geo-test fit with a known estimate and standard error
# maps to hand-written rows of Robyn's, Meridian's and PyMC-Marketing's
# calibration inputs.

# Eight geos, four treated with spend 2 each: the difference in means is
# 3.5 with Neyman s.e. sqrt((10/3 + 5/3) / 4) = sqrt(1.25), so the
# incremental outcome is 3.5 * 4 = 14 (s.e. 4 * sqrt(1.25)) on an
# incremental spend of 2 * 4 = 8: iROAS 1.75 (s.e. sqrt(1.25) / 2).
heavy_up <- function() {
  d <- data.frame(geo = sprintf("g%d", 1:8), treated = rep(1:0, each = 4),
                  sales = c(12, 14, 11, 15, 10, 9, 11, 8), spend = rep(c(2, 0), each = 4))
  experiment_effect(sales ~ treated, d, spend = "spend")
}
# Go-dark: the treated geos lose their spend of 2 each (incremental spend
# -8) and sell 2.5 less on average (incremental outcome -10): iROAS 1.25.
go_dark <- function() {
  d <- data.frame(geo = sprintf("g%d", 1:8), treated = rep(1:0, each = 4),
                  sales = c(6, 8, 5, 9, 10, 9, 11, 8), spend = rep(c(0, 2), each = 4))
  experiment_effect(sales ~ treated, d, spend = "spend")
}

test_that("a heavy-up test maps to Robyn's calibration_input", {
  fit <- heavy_up()
  got <- mmm_calibration(fit, "robyn", channel = "tv_S", start = "2025-03-03",
                         end = as.Date("2025-03-30"), metric = "revenue")
  # Robyn's demo columns; confidence = 1 - p with the Welch t (df 5.4).
  want <- data.frame(channel = "tv_S", liftStartDate = as.Date("2025-03-03"),
                     liftEndDate = as.Date("2025-03-30"), liftAbs = 14, spend = 8,
                     confidence = 0.9766174421, metric = "revenue",
                     calibration_scope = "immediate", stringsAsFactors = FALSE)
  expect_s3_class(got, "mkt_calibration")
  expect_equal(tidy(got), want, tolerance = 1e-9)
  expect_identical(class(tidy(got)), "data.frame")
  expect_equal(tidy(got)$confidence, 1 - 2 * stats::pt(-3.5 / sqrt(1.25), 5.4))
  g <- glance(got)
  expect_equal(unlist(g[c("estimate", "std.error", "incremental", "std.error_incremental",
                          "spend", "iroas", "std.error_iroas")]),
               c(estimate = 3.5, std.error = sqrt(1.25), incremental = 14,
                 std.error_incremental = 4 * sqrt(1.25), spend = 8, iroas = 1.75,
                 std.error_iroas = sqrt(1.25) / 2))
  # The metric defaults to the outcome column; the scope can be "total".
  got <- mmm_calibration(fit, "robyn", channel = "tv_S", start = "2025-03-03",
                         end = "2025-03-30", calibration_scope = "total")
  expect_identical(tidy(got)$metric, "sales")
  expect_identical(tidy(got)$calibration_scope, "total")
})

test_that("a heavy-up test maps to Meridian's experiment result and ROI prior", {
  got <- mmm_calibration(heavy_up(), "meridian", channel = "tv", start = "2025-03-03",
                         end = "2025-03-30")
  # LogNormal with mean 1.75 and sd sqrt(1.25) / 2 = 0.5590170:
  # sigma^2 = log(1 + (0.5590170 / 1.75)^2), mu = log(1.75) - sigma^2 / 2.
  want <- data.frame(channel = "tv", experiment_start_date = as.Date("2025-03-03"),
                     experiment_end_date = as.Date("2025-03-30"), total_spend = 8,
                     point_estimate = 1.75, standard_error = 0.5590169944,
                     roi_prior_mu = 0.5110339137, roi_prior_sigma = 0.3117110015,
                     stringsAsFactors = FALSE)
  expect_equal(tidy(got), want, tolerance = 1e-9)
  # The LogNormal has the experiment's mean and sd.
  r <- tidy(got)
  expect_equal(exp(r$roi_prior_mu + r$roi_prior_sigma^2 / 2), 1.75)
  expect_equal(sqrt((exp(r$roi_prior_sigma^2) - 1) *
                      exp(2 * r$roi_prior_mu + r$roi_prior_sigma^2)), sqrt(1.25) / 2)
})

test_that("a heavy-up test maps to PyMC-Marketing's df_lift_test per model period", {
  got <- mmm_calibration(heavy_up(), "pymc_marketing", channel = "x1",
                         baseline_spend = 10, test_length = 2)
  want <- data.frame(channel = "x1", x = 10, delta_x = 4, delta_y = 7,
                     sigma = 2.2360679775, stringsAsFactors = FALSE)
  expect_equal(tidy(got), want, tolerance = 1e-9)
})

test_that("a go-dark test gives a positive return and a spend decrease", {
  fit <- go_dark()
  r <- tidy(mmm_calibration(fit, "robyn", channel = "tv_S", start = "2025-03-03",
                            end = "2025-03-30", metric = "revenue"))
  # Removing 8 of spend cost 10 of sales: the spend produced a lift of 10.
  expect_equal(r[c("liftAbs", "spend")], data.frame(liftAbs = 10, spend = 8))
  expect_equal(r$confidence, 1 - 0.07162997585, tolerance = 1e-9)
  m <- tidy(mmm_calibration(fit, "meridian", channel = "tv", start = "2025-03-03",
                            end = "2025-03-30"))
  expect_equal(c(m$total_spend, m$point_estimate, m$standard_error),
               c(8, 1.25, sqrt(1.25) / 2))
  p <- tidy(mmm_calibration(fit, "pymc_marketing", channel = "x1", baseline_spend = 4,
                            test_length = 2))
  expect_equal(p, data.frame(channel = "x1", x = 4, delta_x = -4, delta_y = -5,
                             sigma = sqrt(1.25) * 2, stringsAsFactors = FALSE))
  # Spend cannot fall below zero: the business-as-usual spend must cover it.
  expect_error(mmm_calibration(fit, "pymc_marketing", channel = "x1", baseline_spend = 3,
                               test_length = 2), class = "mktcausal_error_bad_argument")
  # The user's spend overrides the fit's; a go-dark spend is negative.
  r2 <- tidy(mmm_calibration(fit, "robyn", channel = "tv_S", start = "2025-03-03",
                             end = "2025-03-30", spend = -20))
  expect_equal(c(r2$liftAbs, r2$spend), c(10, 20))
})

test_that("the row exported is the only one, or Lin's, or the one named", {
  set.seed(3)
  d <- data.frame(geo = 1:40, pre = rnorm(40, 100, 20))
  d$treated <- rep(0:1, 20)
  d$sales <- d$pre + 5 * d$treated + rnorm(40)
  fit <- experiment_effect(sales ~ treated, d, covariates = ~ pre)
  td <- tidy(fit)
  g <- glance(mmm_calibration(fit, "pymc_marketing", channel = "x1", spend = 100,
                              baseline_spend = 0, test_length = 1))
  expect_identical(g$term, "lin")
  expect_equal(g$incremental, td$incremental[td$term == "lin"])
  expect_equal(g$std.error_incremental, 20 * td$std.error[td$term == "lin"])
  g <- glance(mmm_calibration(fit, "pymc_marketing", channel = "x1", spend = 100,
                              baseline_spend = 0, test_length = 1, term = "diff_in_means"))
  expect_equal(g$incremental, td$incremental[1])
  expect_error(mmm_calibration(fit, "robyn", channel = "a", start = "2025-01-01",
                               end = "2025-01-31", spend = 1, term = "tbr"),
               class = "mktcausal_error_bad_argument")
})

test_that("a fit that reports iROAS but no incremental outcome is read through iROAS", {
  # A future geo-test fit (say Trimmed Match) whose estimate is the iROAS.
  fit <- mktcausal:::new_fit(
    "trimmed_match", data.frame(term = "trimmed_match", estimate = 2, std.error = 0.5,
                                iroas = 2, std.error_iroas = 0.5),
    method = "Trimmed match", estimand = "iROAS", inference = "t", alpha = 0.05,
    n = list(units = 20))
  got <- mmm_calibration(fit, "pymc_marketing", channel = "x1", spend = 1000,
                         baseline_spend = 100, test_length = 4)
  expect_equal(tidy(got), data.frame(channel = "x1", x = 100, delta_x = 250, delta_y = 500,
                                     sigma = 125, stringsAsFactors = FALSE))
  m <- tidy(mmm_calibration(fit, "meridian", channel = "x1", spend = 1000,
                            start = "2025-01-06", end = "2025-02-02"))
  expect_equal(c(m$point_estimate, m$standard_error), c(2, 0.5))
  # Its p-value, missing from the fit, comes from the normal.
  r <- tidy(mmm_calibration(fit, "robyn", channel = "x1", spend = 1000,
                            start = "2025-01-06", end = "2025-02-02", metric = "y"))
  expect_equal(r$confidence, 1 - 2 * stats::pnorm(-4))
  expect_equal(r$liftAbs, 2000)
  # Without a spend, the fit's iROAS cannot become an incremental outcome.
  expect_error(mmm_calibration(fit, "robyn", channel = "x1", start = "2025-01-06",
                               end = "2025-02-02"), class = "mktcausal_error_bad_argument")
})

test_that("missing quantities and bad input get classed errors", {
  bare <- mktcausal:::new_fit(
    "bare", data.frame(term = "effect", estimate = 2, std.error = 0.5),
    method = "Bare", estimand = "an effect", inference = "t", alpha = 0.05, n = list())
  err <- tryCatch(mmm_calibration(bare, "robyn", channel = "a", start = "2025-01-01",
                                  end = "2025-01-31", spend = 10), error = identity)
  expect_s3_class(err, "mktcausal_error_not_available")
  expect_match(conditionMessage(err), "incremental", fixed = TRUE)
  no_se <- mktcausal:::new_fit(
    "bare", data.frame(term = "effect", estimate = 2, incremental = 20),
    method = "Bare", estimand = "an effect", inference = "none", alpha = 0.05, n = list())
  expect_error(mmm_calibration(no_se, "robyn", channel = "a", start = "2025-01-01",
                               end = "2025-01-31", spend = 10),
               class = "mktcausal_error_not_available")

  fit <- heavy_up()
  ok <- list(fit = fit, format = "robyn", channel = "tv_S", start = "2025-03-03",
             end = "2025-03-30")
  call_with <- function(...) do.call(mmm_calibration, utils::modifyList(ok, list(...)))
  expect_error(call_with(format = "lightweight_mmm"), class = "mktcausal_error_bad_choice")
  expect_error(mmm_calibration(tidy(fit), "robyn", channel = "a"),
               class = "mktcausal_error_bad_argument")
  expect_error(call_with(spend = 0), class = "mktcausal_error_bad_argument")
  expect_error(call_with(spend = NA_real_), class = "mktcausal_error_bad_argument")
  expect_error(call_with(start = NULL), class = "mktcausal_error_bad_argument")
  expect_error(call_with(start = "March"), class = "mktcausal_error_bad_argument")
  expect_error(call_with(end = "2025-03-01"), class = "mktcausal_error_bad_argument")
  expect_error(call_with(channel = c("a", "b")), class = "mktcausal_error_bad_argument")
  expect_error(call_with(metric = 3), class = "mktcausal_error_bad_argument")
  # The PyMC period arguments are checked whenever given, whatever the format.
  expect_error(call_with(test_length = -1), regexp = "test_length", class = "mktcausal_error_bad_argument")
  expect_error(call_with(baseline_spend = "a"), regexp = "baseline_spend", class = "mktcausal_error_bad_argument")
  expect_error(call_with(level = 0.9), class = "mktcausal_error_unknown_argument")
  expect_error(mmm_calibration(fit, "pymc_marketing", channel = "x1", baseline_spend = 1),
               class = "mktcausal_error_bad_argument")
  expect_error(mmm_calibration(fit, "pymc_marketing", channel = "x1", test_length = 4),
               class = "mktcausal_error_bad_argument")
  # A fit without spend needs the user's.
  d <- data.frame(geo = 1:8, treated = rep(1:0, each = 4), sales = c(12, 14, 11, 15, 10, 9, 11, 8))
  nospend <- experiment_effect(sales ~ treated, d)
  expect_error(mmm_calibration(nospend, "robyn", channel = "a", start = "2025-01-01",
                               end = "2025-01-31"), class = "mktcausal_error_bad_argument")
})

test_that("Meridian refuses a significantly negative return; a weak one has no prior", {
  fit <- heavy_up()
  # Read as a go-dark test, the positive effect is a significantly negative ROI.
  expect_error(mmm_calibration(fit, "meridian", channel = "tv", start = "2025-03-03",
                               end = "2025-03-30", spend = -8, term = "diff_in_means"),
               class = "mktcausal_error_not_available")
  weak <- mktcausal:::new_fit(
    "bare", data.frame(term = "effect", estimate = -1, std.error = 2, incremental = -10),
    method = "Bare", estimand = "an effect", inference = "t", alpha = 0.05, n = list())
  expect_warning(m <- mmm_calibration(weak, "meridian", channel = "tv", spend = 10,
                                      start = "2025-03-03", end = "2025-03-30"),
                 class = "mktcausal_warning_calibration_prior")
  expect_equal(tidy(m)$point_estimate, -1)
  expect_equal(tidy(m)$standard_error, 2)
  expect_true(is.na(tidy(m)$roi_prior_mu))
})

test_that("the printout fits in 80 columns and shows the mapping", {
  fit <- heavy_up()
  for (f in c("robyn", "meridian", "pymc_marketing")) {
    x <- mmm_calibration(fit, f, channel = "tv_S", start = "2025-03-03", end = "2025-03-30",
                         baseline_spend = 0, test_length = 4)
    out <- utils::capture.output(print(x))
    expect_true(all(nchar(out) <= 80), label = f)
    expect_match(paste(out, collapse = "\n"), "return 1.75", fixed = TRUE)
  }
  expect_error(print(x, digits = 3), class = "mktcausal_error_unknown_argument")
})

test_that("a fit of several cells exports one contrast, Lin's row, with its own spend", {
  set.seed(3)
  n <- 60
  d <- data.frame(cell = rep(c("control", "heavy_up", "go_dark"), n / 3), x = rnorm(n, 100, 10))
  d$spend <- c(control = 10, heavy_up = 20, go_dark = 0)[d$cell]
  d$sales <- d$x + 2 * (d$spend - 10) + rnorm(n)
  fit <- experiment_effect(sales ~ cell, d, covariates = ~ x, spend = "spend")
  lin <- tidy(fit)[tidy(fit)$estimator == "lin", ]
  go <- lin[lin$term == "go_dark - control", ]
  out <- mmm_calibration(fit, "meridian", channel = "tv", term = "go_dark - control",
                         start = "2025-01-06", end = "2025-02-02")
  g <- glance(out)
  expect_equal(g$estimate, go$estimate)
  expect_equal(g$spend, go$spend_incremental)
  expect_lt(g$spend, 0)
  expect_equal(g$incremental, go$incremental)
  # Go-dark: the outcome fell with the spend, a positive return near 2.
  expect_gt(g$iroas, 1.5)
  expect_lt(g$iroas, 2.5)
  expect_error(mmm_calibration(fit, "robyn", channel = "tv_S", start = "2025-01-06",
                               end = "2025-02-02"),
               class = "mktcausal_error_bad_argument")
})
