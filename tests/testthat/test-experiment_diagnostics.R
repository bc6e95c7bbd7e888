fixtures <- readRDS(test_path("fixtures", "estimatr.rds"))

check_row <- function(x, name) {
  td <- tidy(x)
  td[td$check == name, ]
}

test_that("the Wald complier effect and its SE match estimatr::iv_robust (HC2)", {
  x <- experiment_diagnostics(fixtures$compliers, "assigned", received = "received",
                              outcome = "sales", expected_prop = 0.5)
  got <- unlist(x$complier_effect[names(fixtures$iv)])
  expect_equal(got, fixtures$iv, tolerance = 1e-8)
  expect_equal(x$compliance$share_received, c(0.775, 0))
  row <- check_row(x, "non_compliance")
  expect_equal(row$verdict, "fail")
  expect_match(row$message, "77.5% of treated")
})

test_that("the complier effect recovers a known effect of 3 under one-sided non-compliance", {
  set.seed(21)
  n <- 4000
  d <- data.frame(assigned = rep(0:1, n / 2))
  d$received <- d$assigned * rbinom(n, 1, 0.6)
  d$sales <- 20 + 3 * d$received + rnorm(n)
  x <- experiment_diagnostics(d, "assigned", received = "received", outcome = "sales")
  ce <- x$complier_effect
  expect_lt(abs(ce$estimate - 3), 3 * ce$std.error)
  expect_equal(ce$estimate, 3, tolerance = 0.05)
  itt <- mean(d$sales[d$assigned == 1]) - mean(d$sales[d$assigned == 0])
  fs <- mean(d$received[d$assigned == 1]) - mean(d$received[d$assigned == 0])
  expect_equal(ce$estimate, itt / fs, tolerance = 1e-12)
})

test_that("sample ratio mismatch is the chi-square test against the intended share", {
  d <- data.frame(assigned = c(rep(1, 620), rep(0, 380)))
  x <- experiment_diagnostics(d, "assigned", expected_prop = 0.5)
  row <- check_row(x, "sample_ratio_mismatch")
  ref <- chisq.test(c(620, 380), p = c(0.5, 0.5))
  expect_equal(row$statistic, unname(ref$statistic))
  expect_equal(row$statistic, 57.6)
  expect_equal(row$p.value, ref$p.value)
  expect_equal(row$verdict, "fail")
  ok <- experiment_diagnostics(d, "assigned", expected_prop = 0.62)
  expect_equal(check_row(ok, "sample_ratio_mismatch")$statistic, 0)
  expect_equal(check_row(ok, "sample_ratio_mismatch")$verdict, "pass")
  none <- experiment_diagnostics(d, "assigned")
  expect_equal(check_row(none, "sample_ratio_mismatch")$verdict, "not run")
  expect_equal(tidy(none)$verdict, rep("not run", 4))
})

test_that("the design's allocation is the intended share", {
  set.seed(4)
  d <- data.frame(geo = sprintf("g%02d", 1:30), pre = rnorm(30))
  des <- rerandomize(d, ~ pre, n_treated = 10, accept = 0.5, id = "geo",
                     n_draws = 1000)
  d$assigned <- des$treated
  x <- experiment_diagnostics(d, "assigned", design = des)
  row <- check_row(x, "sample_ratio_mismatch")
  expect_equal(row$statistic, 0)
  expect_match(row$message, "intended 0.333")
})

test_that("differential attrition is Fisher's exact test on missingness by arm", {
  d <- data.frame(assigned = rep(0:1, each = 100), sales = 1)
  d$sales[c(1:2, 101:120)] <- NA
  x <- experiment_diagnostics(d, "assigned", outcome = "sales")
  row <- check_row(x, "attrition")
  ref <- fisher.test(table(d$assigned, is.na(d$sales)))
  expect_equal(row$p.value, ref$p.value)
  expect_equal(row$statistic, 0.20 - 0.02)
  expect_equal(row$verdict, "fail")
  expect_match(row$message, "20.0% of treated and 2.0% of control")
  d$sales <- 1
  clean <- experiment_diagnostics(d, "assigned", outcome = "sales")
  expect_equal(check_row(clean, "attrition")$verdict, "pass")
})

test_that("protocol deviations count units treated outside the window or in control", {
  set.seed(5)
  d <- data.frame(geo = sprintf("g%02d", 1:20), pre = rnorm(20))
  des <- rerandomize(d, ~ pre, n_treated = 10, accept = 0.5, id = "geo",
                     n_draws = 1000)
  long <- merge(data.frame(geo = d$geo, assigned = des$treated), data.frame(week = 1:10))
  long$received <- as.integer(long$assigned == 1 & long$week >= 5 & long$week <= 8)
  clean <- experiment_diagnostics(long, "assigned", received = "received", design = des,
                                  time = "week", window = c(5, 8))
  expect_equal(check_row(clean, "protocol_deviation")$verdict, "pass")
  expect_equal(check_row(clean, "protocol_deviation")$statistic, 0)
  expect_equal(check_row(clean, "non_compliance")$verdict, "pass")
  expect_equal(check_row(clean, "sample_ratio_mismatch")$statistic, 0)
  treated_geo <- d$geo[des$treated == 1][1:2]
  control_geo <- d$geo[des$treated == 0][1]
  bad <- long
  bad$received[bad$geo %in% treated_geo & bad$week == 9] <- 1
  bad$received[bad$geo == control_geo & bad$week == 6] <- 1
  x <- experiment_diagnostics(bad, "assigned", received = "received", design = des,
                              time = "week", window = c(5, 8))
  row <- check_row(x, "protocol_deviation")
  expect_equal(row$statistic, 3)
  expect_equal(row$verdict, "fail")
  expect_match(row$message, "2 received treatment outside the window \\[5, 8\\], 1 control units")
  expect_output(print(x), "FAIL +protocol_deviation")
})

test_that("a missing column gets a classed error that names it", {
  d <- data.frame(assigned = rep(0:1, 10))
  expect_error(experiment_diagnostics(d, "treat"), class = "mktcausal_error_missing_column")
  expect_error(experiment_diagnostics(d, "assigned", outcome = "sales"), "sales")
})

test_that("bad assignment, exposure and window get classed errors", {
  d <- data.frame(assigned = rep(0:1, 10), received = rep(0:1, 10))
  d2 <- d
  d2$assigned[1] <- 3
  expect_error(experiment_diagnostics(d2, "assigned"),
               class = "mktcausal_error_non_binary_treatment")
  d2$assigned[1] <- NA
  expect_error(experiment_diagnostics(d2, "assigned"), class = "mktcausal_error_missing_values")
  expect_error(experiment_diagnostics(d2, "assigned"), "assigned")
  d3 <- d
  d3$received[2] <- 0.5
  expect_error(experiment_diagnostics(d3, "assigned", received = "received"),
               class = "mktcausal_error_non_binary_treatment")
  expect_error(experiment_diagnostics(d3, "assigned", received = "received"), "received")
  expect_error(experiment_diagnostics(d, "assigned", window = c(1, 2)),
               class = "mktcausal_error_bad_argument")
  d$week <- 1:20
  expect_error(experiment_diagnostics(d, "assigned", time = "week", window = c(5, 1)),
               class = "mktcausal_error_bad_argument")
})
