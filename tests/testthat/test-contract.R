# The contract test: every estimator's fit, made on shipped data
# (helper-fits.R), goes through every generic and returns the same shapes.
# A new estimator joins by adding its case to contract_cases.

expect_contract <- function(fit, name) {
  label <- function(what) paste0(name, ": ", what)
  expect_s3_class(fit, "mkt_fit")
  expect_match(class(fit)[1], "^mkt_", label = label("class"))
  for (field in c("call", "method", "estimand", "inference", "estimates", "alpha", "n")) {
    expect_true(!is.null(fit[[field]]), label = label(paste("field", field)))
  }

  td <- tidy(fit)
  expect_s3_class(td, "data.frame")
  expect_identical(names(td)[1:7], c("term", "estimate", "std.error", "statistic",
                                     "p.value", "conf.low", "conf.high"),
                   label = label("tidy columns"))
  k <- nrow(td)
  expect_gt(k, 0L)
  expect_false(anyDuplicated(td$term) > 0, label = label("unique terms"))

  b <- coef(fit)
  expect_type(b, "double")
  expect_identical(names(b), td$term, label = label("coef names"))
  expect_false(all(is.na(b)), label = label("coef not all NA"))

  v <- tryCatch(vcov(fit), error = identity)
  if (inherits(v, "error")) {
    expect_s3_class(v, "mktcausal_error_not_available")
  } else {
    expect_identical(dim(v), c(k, k), label = label("vcov dim"))
    expect_identical(dimnames(v), list(td$term, td$term), label = label("vcov names"))
  }

  ci <- tryCatch(confint(fit), error = identity)
  if (inherits(ci, "error")) {
    expect_s3_class(ci, "mktcausal_error_not_available")
  } else {
    expect_identical(dim(ci), c(k, 2L), label = label("confint dim"))
    expect_identical(rownames(ci), td$term)
    ok <- !is.na(ci[, 1]) & !is.na(ci[, 2])
    expect_true(all(ci[ok, 1] <= ci[ok, 2]), label = label("confint order"))
    expect_equal(unname(ci[, 1]), td$conf.low, label = label("confint = tidy"))
    one <- confint(fit, td$term[1])
    expect_identical(dim(one), c(1L, 2L))
  }
  expect_error(confint(fit, "no such term"), class = "mktcausal_error_bad_argument")

  n <- nobs(fit)
  expect_true(is.integer(n) && length(n) == 1L && !is.na(n) && n > 0,
              label = label("nobs is a positive integer"))

  gl <- glance(fit)
  expect_s3_class(gl, "data.frame")
  expect_identical(nrow(gl), 1L)
  expect_identical(names(gl)[1:5], c("nobs", "n_units", "n_periods", "n_treated", "n_clusters"),
                   label = label("glance columns"))
  expect_identical(gl$nobs, n)
  expect_true(all(c("method", "inference", "alpha") %in% names(gl)))

  expect_error(tidy(fit, "no such table"), class = "mktcausal_error_bad_choice")
  for (what in names(fit$tables)) {
    expect_s3_class(tidy(fit, what), "data.frame")
  }

  out <- withr::with_options(list(width = 80), capture.output(print(fit)))
  expect_true(length(out) >= 5L, label = label("print says something"))
  expect_true(all(nchar(out, type = "width") <= 80), label = label("print fits 80 columns"))
  expect_match(out[1], fit$method, fixed = TRUE, label = label("print header"))
  s <- withr::with_options(list(width = 80), capture.output(print(summary(fit))))
  expect_true(all(nchar(s, type = "width") <= 80), label = label("summary fits 80 columns"))

  p <- plot(fit)
  expect_s3_class(p, "ggplot")
  expect_silent(ggplot2::ggplot_build(p))
  expect_s3_class(ggplot2::autoplot(fit), "ggplot")
}

for (case in names(contract_cases)) {
  test_that(paste("the fit contract holds for", case), {
    fit <- suppressWarnings(contract_cases[[case]]())
    expect_contract(fit, case)
  })
}

test_that("every estimator has a case in the contract test", {
  fns <- exported_functions()
  estimators <- names(fns)[vapply(fns, function(f) {
    identical(names(formals(f))[1:2], c("formula", "data"))
  }, logical(1))]
  # Functions that read the formula grammar but return no fit: a panel, a
  # table of clusters, a comparison of clusterings, simulated power, the
  # front door's answer, a market selection and a market backtest.
  not_fits <- c("mkt_panel", "geo_units", "compare_clusterings", "design_power",
                "assignment", "select_markets", "market_backtest")
  # Designs and their comparison (synthetic_design.R, compare_designs.R).
  not_fits <- c(not_fits, "synthetic_design", "compare_designs")
  expect_identical(setdiff(estimators, c(not_fits, names(contract_cases))), character())
})

test_that("a quantity a fit does not have is a classed error that says why", {
  fit <- synth(packspercapita ~ treated | state + year, prop99)
  expect_error(vcov(fit), class = "mktcausal_error_not_available")
  expect_error(confint(fit), class = "mktcausal_error_not_available")
})

test_that("modelsummary renders five estimators side by side", {
  skip_if_not_installed("modelsummary")
  skip_if_not_installed("broom")
  fits <- list(
    experiment = suppressWarnings(contract_cases$experiment_effect()),
    staggered = contract_cases$staggered_aggregate(),
    synth = withr::with_seed(4, synth(packspercapita ~ treated | state + year, prop99,
                                      method = "sdid", inference = "placebo", n_draws = 30)),
    ife = contract_cases$ife(),
    iv = contract_cases$iv_fe()
  )
  tab <- modelsummary::modelsummary(fits, output = "data.frame", statistic = "std.error")
  expect_s3_class(tab, "data.frame")
  expect_identical(names(tab)[-(1:3)], names(fits))
  for (nm in names(fits)) {
    est <- tidy(fits[[nm]])$estimate[1]
    cell <- tab[[nm]][tab$part == "estimates" & tab$statistic == "estimate" &
                        tab$term == tidy(fits[[nm]])$term[1]]
    expect_equal(as.numeric(gsub("[^0-9.eE+-]", "", cell)), est, tolerance = 1e-2,
                 label = paste(nm, "first coefficient in the table"))
  }
  gof <- tab[tab$part == "gof", ]
  expect_true("Num.Obs." %in% gof$term)
})
