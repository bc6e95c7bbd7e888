# The methods every fit shares (R/methods-fit.R): arguments they do not use
# or cannot honour are refused with classed errors, never ignored.

methods_fit <- local({
  cache <- NULL
  function() {
    if (is.null(cache)) {
      d <- withr::with_seed(1, {
        d <- expand.grid(geo = 1:30, week = 1:6)
        d$dose <- stats::rnorm(nrow(d))
        d$y <- d$geo / 10 + d$week + 0.5 * d$dose + stats::rnorm(nrow(d))
        d
      })
      cache <<- dose_response(y ~ dose | geo + week, d)
    }
    cache
  }
})

test_that("shared methods refuse arguments they do not use", {
  fit <- methods_fit()
  for (f in list(coef, vcov, nobs, glance, summary, tidy, confint)) {
    expect_error(f(fit, foo = 1), class = "mktcausal_error_unknown_argument")
  }
  expect_error(print(fit, foo = 1), class = "mktcausal_error_unknown_argument")
  expect_error(print(summary(fit), foo = 1), class = "mktcausal_error_unknown_argument")
  # broom's and modelsummary's arguments are still taken.
  expect_identical(nrow(tidy(fit, conf.int = TRUE, conf.level = 0.9)), nrow(tidy(fit)))
})

test_that("tidy() refuses a table the fit does not have, even one left empty", {
  fit <- methods_fit()
  expect_error(tidy(fit, "foo"), class = "mktcausal_error_bad_choice")
  expect_error(tidy(fit, NA), class = "mktcausal_error_bad_choice")
  fit$tables["not_computed"] <- list(NULL)
  expect_error(tidy(fit, "not_computed"), class = "mktcausal_error_bad_choice")
})

test_that("levels must lie strictly between 0 and 1, and print settings must be counts", {
  fit <- methods_fit()
  for (level in list(1, 0, 2, NA, c(0.9, 0.95), "0.9")) {
    expect_error(confint(fit, level = level), class = "mktcausal_error_bad_argument")
    expect_error(tidy(fit, conf.level = level), class = "mktcausal_error_bad_argument")
  }
  # Another level rescales the standard errors: the normal interval.
  ci <- confint(fit, level = 0.5)
  td <- tidy(fit)
  crit <- if (is.null(td$df)) stats::qnorm(0.75) else stats::qt(0.75, ifelse(is.na(td$df), Inf, td$df))
  expect_equal(unname(ci[, 2] - ci[, 1]), 2 * crit * td$std.error)
  for (digits in list(-1, 0, "a", NA, 2.5)) {
    expect_error(print(fit, digits = digits), class = "mktcausal_error_bad_argument")
  }
  expect_error(print(fit, max_rows = -1), class = "mktcausal_error_bad_argument")
  expect_output(print(fit, max_rows = 0), "more rows")
})

test_that("table columns share their decimals and huge numbers stay short", {
  format_col <- mktcausal:::format_col
  x <- c(-0.07724, 0.03051, -0.0005631, -0.1373)
  out <- format_col(x)
  expect_identical(out, c("-0.07724", "0.03051", "-0.00056", "-0.13730"))
  expect_length(unique(nchar(sub("^-", "", out))), 1L)
  expect_identical(format_col(c(21.04, 1739.2)), c("21.0", "1,739.2"))
  expect_identical(format_col(c(1e300, -2e299)), c("1.000e+300", "-2.000e+299"))
  expect_identical(format_col(c(1e-12, 3e-12)), c("1.000e-12", "3.000e-12"))
  expect_identical(format_col(c(NA, Inf, 1.5)), c("NA", "Inf", "1.500"))
  expect_identical(mktcausal:::format_num(1e300), "1.000e+300")
  expect_lt(nchar(mktcausal:::format_num(-3.2e200)), 12)
  expect_identical(mktcausal:::format_num(1234.5678), "1,235")
})
