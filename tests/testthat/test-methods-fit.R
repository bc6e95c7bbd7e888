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

# A long rollout: 104 weekly periods, six waves of adoption (two of them
# small), so that event times run from -94 to 84 and a staggered() fit has
# 618 group-time cells.
long_rollout <- function() {
  withr::with_seed(1, {
    n <- 200
    wave <- sample(c(20, 40, 50, 60, 70, 95, 0), n, replace = TRUE,
                   prob = c(0.03, 0.18, 0.18, 0.18, 0.18, 0.03, 0.22))
    d <- expand.grid(time = 1:104, unit = seq_len(n))[, c("unit", "time")]
    d$post <- as.integer(wave[d$unit] > 0 & d$time >= wave[d$unit])
    d$y <- stats::rnorm(n)[d$unit] + 0.01 * d$time + d$post +
      stats::rnorm(nrow(d), sd = 0.5)
    d
  })
}

test_that("printouts of long fits are compact, fit in 80 columns and announce hidden rows", {
  withr::local_options(width = 80)
  d <- long_rollout()
  fit <- staggered(y ~ post | unit + time, d, n_draws = 0)
  n_cells <- nrow(tidy(fit))
  expect_gt(n_cells, 600)
  out <- capture.output(print(fit))
  expect_lte(max(nchar(out)), 80L)
  expect_lte(length(out), 35L)
  # The headline, then 12 cells around adoption, then the foot line.
  expect_match(out[grep("^Overall ATT", out)], "Overall ATT \\(simple\\): .* \\(SE .*\\), 95% interval \\[")
  expect_length(grep("^ ATT\\(", out), 12L)
  expect_true(any(out == sprintf("# %d more rows: tidy() returns all %d", n_cells - 12L, n_cells)))
  # summary(): aggregates by cohort and event time, not the cells.
  out <- capture.output(print(summary(fit)))
  expect_lte(max(nchar(out)), 80L)
  expect_lte(length(out), 60L)
  expect_length(grep("^ ATT\\(", out), 0L)
  expect_length(grep("^ group ", out), length(unique(fit$estimates$group)))
  expect_length(grep("^ event ", out), 25L)
  expect_true(any(grepl("^# [0-9]+ more rows \\(event .*\\): tidy\\(\\) returns all", out)))
  # aggregate(fit, "event"): the overall row and the 11 event times nearest
  # adoption, -3 to 7.
  ag <- aggregate(fit, "event")
  n_ev <- nrow(tidy(ag))
  out <- capture.output(print(ag))
  expect_lte(max(nchar(out)), 80L)
  rows <- grep("^ (overall|event )", out, value = TRUE)
  expect_identical(sub("^ (overall|event -?[0-9]+) .*", "\\1", rows),
                   c("overall", paste("event", -3:7)))
  lo <- min(tidy(ag)$event, na.rm = TRUE)
  hi <- max(tidy(ag)$event, na.rm = TRUE)
  expect_true(any(out == sprintf("# %d more rows (event %d to -4, 8 to %d): tidy() returns all %d",
                                 n_ev - 12L, lo, hi, n_ev)))
  # max_rows shows more; every row with max_rows = Inf-like counts.
  out <- capture.output(print(ag, max_rows = n_ev))
  expect_length(grep("^ (overall|event )", out), n_ev)
  expect_false(any(grepl("more rows", out)))
})

test_that("a table wider than 80 columns prints in parts that repeat the term column", {
  withr::local_options(width = 80)
  show <- data.frame(term = c("diff_in_means", "lin"),
                     estimate = c("-7,873,864", "3,486,516"),
                     std.error = c("17,858,175", "2,848,434"),
                     interval = c("[-43,106,101, 27,358,373]", "[-2,130,998, 9,104,029]"),
                     p.value = c("0.660", "0.222"), lift = c("-6.824", "3.352"),
                     p.rand = c("0.305", "0.228"))
  names(show)[1] <- ""
  out <- capture.output(mktcausal:::print_wide_table(show))
  expect_lte(max(nchar(out)), 80L)
  expect_length(grep("^ diff_in_means", out), 2L)
  expect_true(any(grepl("p.rand", out)))
})

test_that("format_col() is not stretched by one tiny entry and prints no -0", {
  format_col <- mktcausal:::format_col
  expect_identical(format_col(c(1.234, -2.5, 1e-13)), c("1.234", "-2.500", "0.000"))
  # Two more decimals are allowed for the smallest entry.
  expect_identical(format_col(c(1.234, -2.5, 0.00012)), c("1.2340", "-2.5000", "0.0001"))
  expect_identical(format_col(c(1.234, 2.5, -1e-13)), c("1.234", "2.500", "0.000"))
})
