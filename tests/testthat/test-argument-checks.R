# Arguments are checked whether or not the option that uses them is on: a
# bad value is refused, never silently ignored (found by the full
# robustness sweep of 2026-12-03).
test_that("options that are off are still checked", {
  bad <- function(expr) expect_error(expr, class = "mktcausal_error_bad_argument")
  fac <- rb_data("factor")
  bad(ife(y ~ x1 | unit + time, fac, r = 1, n_draws = -1))
  bad(ife(y ~ x1 | unit + time, fac, r = 1, n_draws = "10"))
  bad(counterfactual(y ~ d + x1 | unit + time, fac, r = 1, n_draws = 2.5))
  bad(counterfactual(y ~ d + x1 | unit + time, fac, r = 1, lambda = "a"))
  dose <- rb_data("dose")
  bad(exposure_did(y ~ grp | unit + time, dose, post = 5, event_study = NA))
  bad(exposure_did(y ~ grp | unit + time, dose, post = 5, event_study = "yes"))
  bad(dml(y ~ dose + x1 | unit + time, dose, n_folds = 2, n_draws = 1, basis = c(TRUE, FALSE)))
  cs <- rb_data("cs")
  bad(stratify(cs, by = "region", size = "pop", bins = 2, block_size = NA))
  bad(stratify(cs, by = "region", size = "pop", bins = 2, prop_treated = NULL))
  bad(stratify(cs, by = "region", size = "pop", bins = 2, covariates = ~ x1))
  spill <- rb_data("spill")
  bad(spillover(sales ~ treated, spill, adjacency = rb_object("spill_dist"), radius = 0.15,
                n_draws = Inf))
})

test_that("print methods of designs, strata, power and diagnostics refuse unused arguments", {
  des <- withr::with_seed(1, rerandomize(rb_data("cs"), ~ x1 + x2, n_treated = 20,
                                         accept = 0.2, id = "id", n_draws = 2000))
  expect_error(print(des, foo = 1), class = "mktcausal_error_unknown_argument")
  expect_output(print(des), "assignment", ignore.case = TRUE)
  st <- stratify(rb_data("cs"), by = "region", size = "pop", bins = 2)
  expect_error(print(st, digits = -1), class = "mktcausal_error_unknown_argument")
})

test_that("design_power() refuses test lengths that are infinite or past 2^31", {
  geo <- rb_data("geo")
  des <- rb_object("geo_design")
  for (bad in list(Inf, 2^31, 1e12)) {
    expect_error(design_power(y ~ 0 | zone + week, geo, design = des, randomize_by = "dma",
                              effect = c(0, 0.05), test_length = bad, n_windows = 2,
                              pre = 1:8, n_draws = 5),
                 class = "mktcausal_error_bad_argument")
  }
})

test_that("honest_sensitivity() on coefficients refuses a NULL covariance", {
  expect_error(honest_sensitivity(c(0.1, 0.2, 0.3), sigma = NULL, n_pre = 1),
               class = "mktcausal_error_honest_input")
  expect_error(honest_sensitivity(c(0.1, 0.2, 0.3), sigma = diag(3), n_pre = NULL),
               class = "mktcausal_error_honest_input")
})

test_that("experiment_diagnostics() needs the assigned column; design_effect() finite sizes", {
  d <- data.frame(treated = rep(0:1, 10))
  expect_error(experiment_diagnostics(d, assigned = NULL), class = "mktcausal_error_bad_argument")
  expect_error(design_effect(c(1, Inf), icc = 0.1), class = "mktcausal_error_bad_argument")
})

test_that("list columns and list windows are classed errors", {
  cs <- rb_data("cs")
  cs$region_list <- as.list(as.character(cs$region))
  expect_error(stratify(cs, by = "region_list"), class = "mktcausal_error_bad_argument")
  expect_error(rerandomize(cs, ~ x1 + x2, n_treated = 20, id = "id", strata = "region_list"),
               class = "mktcausal_error_bad_strata")
  expect_error(geo_units(y ~ 0 | zone + week, rb_data("geo"), pre = list(1)),
               class = "mktcausal_error_bad_window")
  expect_error(geo_units(y ~ 0 | zone + week, rb_data("geo"), post = list(9)),
               class = "mktcausal_error_bad_window")
})
