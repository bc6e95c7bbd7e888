# A 3-unit, 4-period panel built by hand: unit "b" is treated from period 3,
# unit "c" from period 2, unit "a" never; the (a, 2) row has a missing
# outcome and the (c, 4) row is absent.
hand_panel <- function() {
  d <- data.frame(
    unit = c("b", "b", "b", "b", "a", "a", "a", "a", "c", "c", "c"),
    time = c(1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3),
    y = c(10, 11, 15, 16, 1, NA, 3, 4, 20, 25, 26),
    d = c(0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1),
    x = c(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11),
    stringsAsFactors = FALSE
  )
  d
}

test_that("a hand-built panel gives the exact matrices, cohorts and missing cells", {
  p <- mkt_panel(y ~ d + x | unit + time, hand_panel())
  expect_s3_class(p, "mkt_panel")
  expect_identical(p$units, c("a", "b", "c"))
  expect_identical(p$times, c(1, 2, 3, 4))
  Y <- matrix(c(1, NA, 3, 4,
                10, 11, 15, 16,
                20, 25, 26, NA), 3, 4, byrow = TRUE,
              dimnames = list(c("a", "b", "c"), c("1", "2", "3", "4")))
  D <- matrix(c(0, NA, 0, 0,
                0, 0, 1, 1,
                0, 1, 1, NA), 3, 4, byrow = TRUE, dimnames = dimnames(Y))
  X <- matrix(c(5, NA, 7, 8,
                1, 2, 3, 4,
                9, 10, 11, NA), 3, 4, byrow = TRUE, dimnames = dimnames(Y))
  expect_identical(p$Y, Y)
  expect_identical(p$D, D)
  expect_identical(p$X, list(x = X))
  expect_identical(p$observed, !is.na(Y))
  expect_identical(p$cohort, c(a = NA, b = 3, c = 2))
  expect_false(p$balanced)
  expect_true(p$absorbing)
  expect_identical(p$treatment_type, "binary")
  expect_identical(p$vars, list(outcome = "y", treatment = "d", covariates = "x",
                                unit = "unit", time = "time", cluster = NULL,
                                weights = NULL, extra = NULL))
  expect_identical(p$cohort_index, c(a = NA, b = 3L, c = 2L))
  expect_identical(p$dropped$row, 6L)
  expect_identical(p$dropped$unit, "a")
  expect_identical(p$dropped$time, 2)
  expect_identical(p$dropped$reason, "missing outcome")
})

test_that("a dropped outcome does not move the cohort", {
  d <- hand_panel()
  d$y[d$unit == "b" & d$time == 3] <- NA
  p <- mkt_panel(y ~ d | unit + time, d)
  expect_identical(p$cohort[["b"]], 3)
  expect_true(is.na(p$D["b", "3"]))
  expect_identical(sort(p$dropped$row), c(3L, 6L))
})

test_that("a balanced panel, rows in any order, and no treatment", {
  d <- expand.grid(unit = c("u2", "u1"), time = 3:1, stringsAsFactors = FALSE)
  d$y <- seq_len(nrow(d))
  p <- mkt_panel(y ~ 0 | unit + time, d[c(6, 1, 3, 2, 5, 4), ])
  expect_true(p$balanced)
  expect_identical(p$times, 1:3)
  expect_identical(unname(p$Y), matrix(c(6, 4, 2, 5, 3, 1), 2, 3, byrow = TRUE))
  expect_null(p$D)
  expect_identical(p$treatment_type, "none")
  expect_true(all(is.na(p$cohort)))
  expect_identical(nrow(p$dropped), 0L)
  p1 <- mkt_panel(y ~ 1 | unit + time, d)
  expect_identical(p1$Y, p$Y)
})

test_that("continuous and non-absorbing treatments are recognised", {
  d <- expand.grid(unit = 1:2, time = 1:4)
  d$y <- rnorm(8)
  d$dose <- c(0, 0, 0, 1.5, 2, 2, 2, 2)
  p <- mkt_panel(y ~ dose | unit + time, d)
  expect_identical(p$treatment_type, "continuous")
  expect_true(p$absorbing)
  expect_identical(unname(p$cohort), c(3L, 2L))
  d$on <- c(0, 0, 1, 0, 0, 0, 0, 0)
  p2 <- mkt_panel(y ~ on | unit + time, d)
  expect_false(p2$absorbing)
  st <- tidy(p2, "status")
  expect_identical(st$status[st$unit == 1],
                   c("not yet treated", "treated", "no longer treated", "no longer treated"))
})

test_that("Date times keep their class and sort in calendar order", {
  d <- expand.grid(unit = c("a", "b"), week = as.Date("2024-01-01") + c(14, 0, 7))
  d$y <- 1:6
  d$d <- as.integer(d$unit == "a" & d$week >= as.Date("2024-01-08"))
  p <- mkt_panel(y ~ d | unit + week, d)
  expect_s3_class(p$times, "Date")
  expect_identical(p$times, as.Date("2024-01-01") + c(0, 7, 14))
  expect_identical(p$cohort[["a"]], as.Date("2024-01-08"))
})

test_that("tibble and data.table inputs give the same object as a data.frame", {
  d <- hand_panel()
  ref <- mkt_panel(y ~ d + x | unit + time, d)
  skip_if_not_installed("tibble")
  expect_identical(mkt_panel(y ~ d + x | unit + time, tibble::as_tibble(d)), ref)
  skip_if_not_installed("data.table")
  expect_identical(mkt_panel(y ~ d + x | unit + time, data.table::as.data.table(d)), ref)
})

test_that("logical treatment and factor units are accepted", {
  d <- hand_panel()
  d$d <- d$d == 1
  d$unit <- factor(d$unit, levels = c("c", "b", "a"))
  p <- mkt_panel(y ~ d | unit + time, d)
  expect_identical(p$treatment_type, "binary")
  expect_identical(p$units, c("c", "b", "a"))
  expect_identical(p$cohort, c(c = 2, b = 3, a = NA))
})

test_that("bad inputs raise their classed errors", {
  d <- hand_panel()
  expect_error(mkt_panel(y ~ d + x, d), class = "mktcausal_error_bad_formula")
  expect_error(mkt_panel(~ d | unit + time, d), class = "mktcausal_error_bad_formula")
  expect_error(mkt_panel(y ~ d | unit, d), class = "mktcausal_error_bad_formula")
  expect_error(mkt_panel(y ~ d | unit + time + x, d), class = "mktcausal_error_bad_formula")
  expect_error(mkt_panel("y ~ d | unit + time", d), class = "mktcausal_error_bad_formula")
  expect_error(mkt_panel(y ~ d + 2 | unit + time, d), class = "mktcausal_error_bad_formula")
  expect_error(mkt_panel(y ~ d | unit + time, as.matrix(d)), class = "mktcausal_error_bad_data")
  expect_error(mkt_panel(sales ~ d | unit + time, d), class = "mktcausal_error_missing_column")
  expect_error(mkt_panel(y ~ d | store + time, d), "store", class = "mktcausal_error_missing_column")

  dup <- rbind(d, d[c(1, 5), ])
  err <- expect_error(mkt_panel(y ~ d | unit + time, dup),
                      class = "mktcausal_error_duplicated_rows")
  expect_match(conditionMessage(err), "(b, 1)", fixed = TRUE)
  expect_match(conditionMessage(err), "(a, 1)", fixed = TRUE)

  chr <- d
  chr$y <- as.character(chr$y)
  expect_error(mkt_panel(y ~ d | unit + time, chr), class = "mktcausal_error_non_numeric")
  grp <- d
  grp$d <- ifelse(grp$d == 1, "treated", "control")
  expect_error(mkt_panel(y ~ d | unit + time, grp), class = "mktcausal_error_non_numeric")
  cov <- d
  cov$x <- letters[seq_len(nrow(cov))]
  expect_error(mkt_panel(y ~ d + x | unit + time, cov), class = "mktcausal_error_non_numeric")

  na_d <- d
  na_d$d[2] <- NA
  err <- expect_error(mkt_panel(y ~ d | unit + time, na_d), class = "mktcausal_error_missing_values")
  expect_match(conditionMessage(err), "(b, 2)", fixed = TRUE)

  chr_t <- d
  chr_t$time <- paste0("week", chr_t$time)
  expect_error(mkt_panel(y ~ d | unit + time, chr_t), class = "mktcausal_error_time_not_sortable")

  expect_error(mkt_panel(y ~ d | unit + time, d[d$unit == "a", ]),
               class = "mktcausal_error_too_few_units")
  expect_error(mkt_panel(y ~ d | unit + time, d[d$time == 1, ]),
               class = "mktcausal_error_too_few_periods")

  lst <- d
  lst$time <- as.list(lst$time)
  expect_error(mkt_panel(y ~ d | unit + time, lst), class = "mktcausal_error_bad_column_type")

  inf <- d
  inf$y[1] <- Inf
  expect_error(mkt_panel(y ~ d | unit + time, inf), class = "mktcausal_error_non_finite")
  # Every error also carries the family class.
  expect_error(mkt_panel(y ~ d | unit + time, dup), class = "mktcausal_error")
})

test_that("rows with a missing unit or time are dropped with their reason", {
  d <- hand_panel()
  d$unit[1] <- NA
  d$time[9] <- NA
  p <- mkt_panel(y ~ d | unit + time, d)
  expect_identical(p$dropped$row, c(1L, 6L, 9L))
  expect_identical(p$dropped$reason, c("missing unit", "missing outcome", "missing time"))
  expect_identical(sum(p$observed), 8L)
})

test_that("tidy gives the status and the cohorts", {
  p <- mkt_panel(y ~ d | unit + time, hand_panel())
  st <- tidy(p, "status")
  expect_identical(nrow(st), 12L)
  expect_named(st, c("unit", "time", "outcome", "treatment", "observed", "cohort", "status"))
  expect_identical(st$status[st$unit == "c"],
                   c("not yet treated", "treated", "treated", "missing"))
  expect_identical(st$status[st$unit == "a"],
                   c("never treated", "missing", "never treated", "never treated"))
  expect_identical(sum(!st$observed), 2L)
  co <- tidy(p, "cohorts")
  expect_identical(co$cohort, c(2, 3, NA))
  expect_identical(co$n_units, c(1L, 1L, 1L))
})

test_that("as.data.frame returns the observed cells and round-trips", {
  p <- mkt_panel(y ~ d + x | unit + time, hand_panel())
  df <- as.data.frame(p)
  expect_identical(nrow(df), 10L)
  expect_named(df, c("unit", "time", "y", "d", "x"))
  p2 <- mkt_panel(y ~ d + x | unit + time, df)
  expect_identical(p2$Y, p$Y)
  expect_identical(p2$D, p$D)
  expect_identical(p2$cohort, p$cohort)
})

test_that("print and summary report the shape, cohorts and dropped rows", {
  p <- mkt_panel(y ~ d | unit + time, hand_panel())
  expect_output(print(p), "3 units x 4 periods")
  expect_output(print(p), "2 of 12 cells missing")
  expect_output(print(p), "missing outcome \\(1\\)")
  s <- summary(p)
  expect_s3_class(s, "summary.mkt_panel")
  expect_identical(s$dims[["observed"]], 10L)
  expect_identical(s$missing_by_unit, c(a = 1, c = 1))
  expect_output(print(s), "10 of 12 cells observed")
})

test_that("plot_status draws one tile per cell, units ordered by cohort", {
  p <- mkt_panel(y ~ d | unit + time, hand_panel())
  g <- plot_status(p)
  expect_s3_class(g, "ggplot")
  expect_identical(nrow(g$data), 12L)
  # Earliest cohort on top: ggplot draws the first level at the bottom.
  expect_identical(levels(g$data$unit), c("a", "b", "c"))
  g2 <- plot_status(y ~ d | unit + time, hand_panel())
  expect_identical(g2$data, g$data)
  expect_error(plot_status(y ~ d | unit + time), class = "mktcausal_error_bad_argument")
  expect_error(plot_status(1:3), class = "mktcausal_error_bad_argument")

  d <- expand.grid(unit = 1:3, time = 1:5)
  d$y <- 1
  d$dose <- ifelse(d$time > 2, d$unit, 0)
  gc <- plot_status(y ~ dose | unit + time, d)
  expect_identical(nrow(gc$data), 15L)
  expect_s3_class(ggplot2::ggplot_build(gc), "ggplot_built")
})

test_that("infinite covariates and doses are refused where they are", {
  d <- hand_panel()
  d$x[3] <- Inf
  err <- tryCatch(mkt_panel(y ~ d + x | unit + time, d), error = identity)
  expect_s3_class(err, "mktcausal_error_non_finite")
  expect_match(conditionMessage(err), "x", fixed = TRUE)
  d <- hand_panel()
  d$d[d$d == 1][1] <- -Inf
  expect_error(mkt_panel(y ~ d | unit + time, d), class = "mktcausal_error_non_finite")
})

test_that("regressors and weights out of computable scale, and infinite periods, are refused", {
  d <- hard_panel()
  for (k in c(1e150, 1e-150)) {
    big <- transform(d, x = x * k)
    err <- expect_error(mkt_panel(y ~ dose + x | unit + time, big),
                        class = "mktcausal_error_bad_scale")
    expect_match(conditionMessage(err), "covariate x")
    expect_match(conditionMessage(err), "x / 1e6", fixed = TRUE)
  }
  expect_error(mkt_panel(y ~ dose | unit + time, transform(d, dose = dose * 1e200)),
               regexp = "treatment dose", class = "mktcausal_error_bad_scale")
  err <- expect_error(mkt_panel(y ~ dose | unit + time, transform(d, w = w * 1e300),
                                weights = "w"), class = "mktcausal_error_bad_scale")
  expect_match(conditionMessage(err), "do not depend on their scale")
  # Ordinary scales pass, and zeros do not count as tiny.
  expect_silent(mkt_panel(y ~ dose + x | unit + time, transform(d, x = x * 1e90)))
  expect_silent(mkt_panel(y ~ dose + x | unit + time, transform(d, x = (unit > 3) * 1e-90)))
  # An infinite period is not a period.
  inf <- d
  inf$time[1] <- Inf
  expect_error(mkt_panel(y ~ dose | unit + time, inf), regexp = "time column",
               class = "mktcausal_error_non_finite")
  # Estimators reach the same checks: the dose-response and IV fits.
  expect_error(dose_response(y ~ dose + x | unit + time, transform(d, x = x * 1e150)),
               class = "mktcausal_error_bad_scale")
})

test_that("a covariate the fixed effects absorb is named as collinear, not a singular system", {
  d <- hard_panel()
  expect_error(dose_response(y ~ dose + const | unit + time, d), regexp = "const",
               class = "mktcausal_error_collinear")
  expect_error(iv_fe(y ~ const | unit + time | dose ~ z, d), regexp = "const",
               class = "mktcausal_error_collinear")
})

test_that("a cohort whose adoption row is absent is flagged as uncertain", {
  d <- expand.grid(unit = c("a", "b", "c"), time = 1:6, stringsAsFactors = FALSE)
  d$d <- as.integer((d$unit == "a" & d$time >= 3) | (d$unit == "b" & d$time >= 4))
  d$y <- seq_len(nrow(d))
  # b's adoption period (4) is missing: it may have adopted in 3 or 4.
  gap <- d[!(d$unit == "b" & d$time == 3), ]
  p <- mkt_panel(y ~ d | unit + time, gap)
  expect_identical(p$cohort_known, c(a = TRUE, b = FALSE, c = TRUE))
  expect_identical(p$cohort_index[["b"]], 4L)
  # (The line wraps at 80 columns.)
  out <- gsub("\\s+", " ", paste(capture.output(print(p)), collapse = " "))
  expect_match(out, "cohorts: 2 (treated units 2, never treated 1); 1 with an uncertain first period",
               fixed = TRUE)
  # A missing outcome with a known treatment keeps the cohort known.
  d$y[d$unit == "b" & d$time == 3] <- NA
  expect_true(all(mkt_panel(y ~ d | unit + time, d)$cohort_known))
})

test_that("numeric units or periods that print alike are refused, not merged", {
  d <- expand.grid(unit = 1:3, time = 1e15 + 1:4)
  d$y <- seq_len(nrow(d))
  expect_error(mkt_panel(y ~ 0 | unit + time, d), class = "mktcausal_error_bad_data")
  d <- expand.grid(unit = c(0.1 + 0.2, 0.3, 1), time = 1:4)
  d$y <- seq_len(nrow(d))
  err <- tryCatch(mkt_panel(y ~ 0 | unit + time, d), error = identity)
  expect_s3_class(err, "mktcausal_error_bad_data")
  expect_match(conditionMessage(err), "unit", fixed = TRUE)
  # Large but distinguishable periods are fine.
  d <- expand.grid(unit = 1:3, time = 2^31 + 1:4)
  d$y <- seq_len(nrow(d))
  p <- mkt_panel(y ~ 0 | unit + time, d)
  expect_identical(nrow(tidy(p, "status")), 12L)
})

test_that("the panel's and the assignment's methods refuse arguments they do not use", {
  d <- expand.grid(unit = c("a", "b", "c"), time = 1:4)
  d$d <- as.integer(d$unit == "a" & d$time >= 3)
  d$y <- seq_len(nrow(d))
  p <- mkt_panel(y ~ d | unit + time, d)
  expect_error(print(p, digits = 3), class = "mktcausal_error_unknown_argument")
  expect_error(summary(p, foo = 1), class = "mktcausal_error_unknown_argument")
  expect_error(print(summary(p), foo = 1), class = "mktcausal_error_unknown_argument")
  expect_error(tidy(p, "status", conf.level = 0.9), class = "mktcausal_error_unknown_argument")
  expect_identical(nrow(tidy(p, "cohorts")), 2L)
  a <- assignment(y ~ d | unit + time, d)
  expect_error(print(a, foo = 1), class = "mktcausal_error_unknown_argument")
  expect_error(plot(a, type = "status"), class = "mktcausal_error_unknown_argument")
  expect_output(print(a), "Assignment map row")
})

test_that("a panel whose outcome is missing on every row is a classed error", {
  d <- data.frame(unit = rep(1:3, each = 2), time = rep(1:2, 3), y = NA_real_, x = 1:6)
  expect_error(mkt_panel(y ~ x | unit + time, d), class = "mktcausal_error_missing_values")
})
