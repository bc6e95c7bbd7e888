# A constant outcome carries no information on any effect: the estimators
# that would report a 0/0 statistic refuse it with one class.
test_that("design_power() refuses an outcome that never varies", {
  d <- expand.grid(cluster = sprintf("C%02d", 1:20), week = 1:12, stringsAsFactors = FALSE)
  d$sales <- 0
  units <- geo_units(sales ~ 0 | cluster + week, transform(d, sales = rnorm(nrow(d))),
                     pre = 1:8)
  set.seed(1)
  des <- rerandomize(units, ~ outcome_mean, n_treated = 10, accept = 0.5)
  expect_error(design_power(sales ~ 0 | cluster + week, d, design = des, effect = c(0, 0.1),
                            test_length = 2, n_windows = 2, pre = 1:8, n_draws = 10),
               regexp = "sales.*every observed cell", class = "mktcausal_error_no_variation")
})
