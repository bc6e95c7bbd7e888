#' Turn a geo-test result into the calibration input of a media-mix model
#'
#' Maps the result of a geo experiment (a fit of [experiment_effect()], with
#' or without a design, or any fit that reports the columns listed under
#' "What is read from the fit") to the calibration input that Robyn, Google
#' Meridian or PyMC-Marketing documents. What the fit cannot know (the
#' model's name for the channel, the test dates, the spend as the model sees
#' it, the model's metric) is given by you.
#'
#' @section What is read from the fit:
#' The row `term` of `tidy(fit)`, and:
#' * `estimate` and `std.error`, and `p.value` (computed from the two, with
#'   `df` when there is one, if it is missing);
#' * the incremental outcome: column `incremental` or, failing it,
#'   `iroas` times the spend;
#' * its standard error: column `std.error_incremental` if the fit reports
#'   one, else `std.error_iroas` times the absolute spend, else `std.error`
#'   scaled as `incremental` is scaled from `estimate` (for
#'   [experiment_effect()], times the treated clusters or population);
#' * the incremental spend, when `spend` is `NULL`: `spend_incremental` of
#'   `glance(fit)`.
#'
#' A quantity that is missing is an error of class
#' `mktcausal_error_not_available` that says which column was looked for.
#'
#' @section Sign and spend:
#' `spend` is the change in spend that the test made in the treated cells
#' over the test: positive for a heavy-up or a new channel, negative for a
#' go-dark test (spend removed, whose effect is a fall in the outcome). The
#' return is \eqn{\mathrm{incremental} / \mathrm{spend}} in both cases, so a
#' working channel has a positive return whether it was switched on or off;
#' its standard error treats the spend as known:
#' \eqn{\mathrm{se}(\mathrm{incremental}) / |\mathrm{spend}|}.
#'
#' @section Formats:
#' * `"robyn"`: the `calibration_input` data frame of `Robyn::robyn_inputs()`,
#'   one row with `channel`, `liftStartDate`, `liftEndDate`, `liftAbs` (the
#'   outcome the tested spend produced: `incremental` times the sign of
#'   `spend`, so a go-dark test gives a positive lift for a working
#'   channel), `spend` (its absolute value), `confidence` (one minus the
#'   two-sided p-value, as Robyn's guide suggests for a frequentist test;
#'   Robyn warns below 0.8), `metric` (Robyn requires the model's `dep_var`)
#'   and `calibration_scope` (`"immediate"`, Robyn's advice for lift tests,
#'   or `"total"`).
#' * `"meridian"`: one row with what Meridian's calibration takes from a
#'   generic experiment (its `ExperimentInfo` and `ExperimentResult`):
#'   `channel`, `experiment_start_date`, `experiment_end_date`,
#'   `total_spend` (absolute spend), `point_estimate` (the ROI, or the
#'   incremental outcome per unit of cost for a non-revenue KPI) and
#'   `standard_error`; and, for setting the `roi_m` prior by hand,
#'   `roi_prior_mu` and `roi_prior_sigma`, the parameters of the LogNormal
#'   with that mean and standard deviation (what
#'   `prior_distribution.lognormal_dist_from_mean_std()` builds:
#'   \eqn{\sigma^2 = \log(1 + s^2/m^2)}, \eqn{\mu = \log m - \sigma^2/2}).
#'   Meridian refuses a result whose 95% interval lies below zero, and so
#'   does this function; a non-positive ROI that is not significant gives
#'   no LogNormal (its columns are `NA`, with a warning of class
#'   `mktcausal_warning_calibration_prior`).
#' * `"pymc_marketing"`: the `df_lift_test` of
#'   `MMM.add_lift_test_measurements()`: `channel`, `x` (`baseline_spend`:
#'   the channel's spend per model period before the test), `delta_x` (the
#'   spend change per model period, `spend / test_length`), `delta_y` (the
#'   incremental outcome per model period) and `sigma` (its standard error
#'   per model period). The model's saturation curve is evaluated on the
#'   spend of one period, so totals over the test are divided by
#'   `test_length`, the number of model periods the test lasted.
#'
#' All amounts are in the scope of the test (the treated cells); if the
#' model's channel column covers more (a national series), scale them as the
#' target tool's documentation asks.
#'
#' @param fit A geo-test fit: from [experiment_effect()], or any fit of the
#'   package whose `tidy()` and `glance()` report the columns listed above.
#' @param format `"robyn"`, `"meridian"` or `"pymc_marketing"`.
#' @param channel The model's name of the tested channel (for Robyn, one of
#'   its `paid_media_spends`; `"a+b"` for a joint test).
#' @param start,end First and last day of the test (`Date`, or text such as
#'   `"2025-03-03"`); not used by `"pymc_marketing"`.
#' @param spend The change in spend the test made, over the whole test, in
#'   the model's currency; negative for go-dark. `NULL` takes the fit's
#'   incremental spend (`glance(fit)$spend_incremental`).
#' @param metric Robyn's `metric`, which must equal the model's `dep_var`;
#'   `NULL` uses the fit's outcome column name.
#' @param term The row of `tidy(fit)` to export. `NULL` takes the only row,
#'   or `"lin"` (the regression-adjusted estimate) when the fit has it. For
#'   a fit of several cells, the contrast (e.g. `"heavy_up - control"`),
#'   from Lin's rows when the fit has them; its incremental spend is the
#'   contrast's `spend_incremental`.
#' @param baseline_spend For `"pymc_marketing"`: the channel's spend per
#'   model period before the test (PyMC-Marketing's `x`); for go-dark it
#'   must be at least the spend removed per period.
#' @param test_length For `"pymc_marketing"`: the number of model periods
#'   (weeks of a weekly model) the test lasted.
#' @param calibration_scope For `"robyn"`: `"immediate"` or `"total"`.
#' @param ... Must be empty.
#' @return A data frame of class `mkt_calibration` with one row in the
#'   format's columns, ready to pass to the tool (`as.data.frame()` drops
#'   the class). `print()` shows it with the mapping; `tidy()` returns the
#'   plain data frame; `glance()` one row with what was read from the fit:
#'   `format`, `term`, `estimate`, `std.error`, `p.value`, `incremental`,
#'   `std.error_incremental`, `spend`, `iroas`, `std.error_iroas`.
#' @seealso [experiment_effect()]
#' @export
#' @examples
#' set.seed(1)
#' geos <- data.frame(geo = 1:40, pop = round(runif(40, 1e4, 1e5)))
#' geos$pre_sales <- geos$pop * rnorm(40, 2, 0.2)
#' geos$treated <- sample(rep(0:1, 20))
#' geos$spend <- 500 * geos$treated
#' geos$sales <- 1.05 * geos$pre_sales + 3000 * geos$treated + rnorm(40, 0, 2000)
#' fit <- experiment_effect(sales ~ treated, geos, covariates = ~ pre_sales,
#'                          spend = "spend")
#' mmm_calibration(fit, "robyn", channel = "tv_S", start = "2025-03-03",
#'                 end = "2025-03-30", metric = "revenue")
#' mmm_calibration(fit, "meridian", channel = "tv", start = "2025-03-03",
#'                 end = "2025-03-30")
#' mmm_calibration(fit, "pymc_marketing", channel = "tv",
#'                 baseline_spend = 0, test_length = 4)
mmm_calibration <- function(fit, format = c("robyn", "meridian", "pymc_marketing"),
                            channel, start = NULL, end = NULL, spend = NULL,
                            metric = NULL, term = NULL, baseline_spend = NULL,
                            test_length = NULL,
                            calibration_scope = c("immediate", "total"), ...) {
  check_dots(...)
  if (missing(fit) || !inherits(fit, "mkt_fit")) {
    abort_mkt("bad_argument", c(
      "{.arg fit} must be a geo-test fit of the package, such as one from {.fn experiment_effect}.",
      x = if (missing(fit)) "It is missing." else "You supplied {.obj_type_friendly {fit}}."
    ))
  }
  format <- check_choice(format)
  calibration_scope <- check_choice(calibration_scope)
  if (missing(channel)) channel <- NULL
  check_string(channel, "channel", "the model's name of the tested channel, e.g. {.code channel = \"tv_S\"}")
  check_pymc_periods(baseline_spend, test_length, required = FALSE)
  q <- calibration_quantities(fit, term, spend)
  out <- switch(format,
    robyn = calibration_robyn(fit, q, channel, start, end, metric, calibration_scope),
    meridian = calibration_meridian(q, channel, start, end),
    pymc_marketing = calibration_pymc(q, channel, baseline_spend, test_length)
  )
  rownames(out) <- NULL
  structure(out, class = c("mkt_calibration", "data.frame"),
            calibration = c(list(format = format, method = fit$method), q))
}

# What the export reads from the fit: one row of its estimates, its
# incremental outcome and spend, and their standard errors (see "What is
# read from the fit").
calibration_quantities <- function(fit, term, spend, call = rlang::caller_env()) {
  est <- tidy(fit)
  if (!is.null(est$estimator)) {
    # A fit of several cells has one row per contrast and estimator: the
    # regression-adjusted one when there is one, as for two arms.
    use <- if ("lin" %in% est$estimator) "lin" else est$estimator[1]
    est <- est[est$estimator == use, , drop = FALSE]
  }
  terms <- est$term
  if (is.null(term)) {
    term <- if (length(terms) == 1L) terms else if ("lin" %in% terms) "lin" else {
      abort_mkt("bad_argument", c(
        "{.arg term} must name the row of the fit to export: it has {length(terms)} rows.",
        i = "Its terms are {.val {terms}}; for example {.code term = {deparse(terms[1])}}."
      ), call = call)
    }
  }
  check_string(term, "term", "one of the fit's terms: {.val {terms}}", call = call)
  if (!term %in% terms) {
    abort_mkt("bad_argument", c(
      "{.arg term} {.val {term}} is not a row of the fit.",
      i = "Its terms are {.val {terms}}."
    ), call = call)
  }
  row <- as.list(est[match(term, terms), , drop = FALSE])
  col <- function(name) {
    v <- row[[name]]
    if (is.null(v) || !is.numeric(v) || !is.finite(v)) NA_real_ else as.numeric(v)
  }
  missing_quantity <- function(what, looked) {
    abort_mkt("not_available", c(
      "The fit ({fit$method}) reports no {what} for {.val {term}}, which the calibration input needs.",
      i = "Looked for {looked}."
    ), call = call)
  }
  estimate <- col("estimate")
  se <- col("std.error")
  if (is.na(estimate)) missing_quantity("finite estimate", "column {.field estimate} of {.code tidy(fit)}")
  if (is.na(se) || se <= 0) {
    missing_quantity("positive standard error", "column {.field std.error} of {.code tidy(fit)}")
  }

  if (is.null(spend)) {
    g <- glance(fit)
    spend <- if (!is.na(col("spend_incremental"))) col("spend_incremental") else
      if (!is.null(g$spend_incremental)) g$spend_incremental[1] else NA_real_
    if (!is.numeric(spend) || !is.finite(spend)) {
      abort_mkt("bad_argument", c(
        "{.arg spend} is needed: the fit does not know what the test spent.",
        i = "Give the change in spend over the test, e.g. {.code spend = 25000} (negative for a go-dark test), or fit with {.code spend = \"<spend column>\"}."
      ), call = call)
    }
  }
  if (!is.numeric(spend) || length(spend) != 1L || !is.finite(spend)) {
    abort_mkt("bad_argument", c(
      "{.arg spend} must be one finite number: the change in spend over the test.",
      x = "You supplied {.val {format(spend)}}."
    ), call = call)
  }
  if (spend == 0) {
    abort_mkt("bad_argument", c(
      "{.arg spend} is 0: a test that changed no spend has no return to calibrate with.",
      i = "Give the spend added (positive) or removed (negative, go-dark) in the treated cells."
    ), call = call)
  }

  incremental <- col("incremental")
  iroas_col <- col("iroas")
  from_iroas <- is.na(incremental) && !is.na(iroas_col)
  if (from_iroas) incremental <- iroas_col * spend
  if (is.na(incremental)) {
    missing_quantity("incremental outcome", "columns {.field incremental} and {.field iroas} of {.code tidy(fit)}")
  }
  se_inc <- col("std.error_incremental")
  if (is.na(se_inc) && from_iroas && !is.na(col("std.error_iroas"))) {
    se_inc <- col("std.error_iroas") * abs(spend)
  }
  if (is.na(se_inc)) {
    if (from_iroas || estimate == 0) {
      missing_quantity("standard error of the incremental outcome",
                       "column {.field std.error_incremental} (or {.field std.error_iroas}), and a non-zero {.field estimate} to scale {.field std.error} by")
    }
    se_inc <- se * abs(incremental / estimate)
  }
  p <- col("p.value")
  if (is.na(p)) {
    df <- col("df")
    t <- abs(estimate / se)
    p <- if (is.na(df)) 2 * stats::pnorm(-t) else 2 * stats::pt(-t, df)
  }
  list(term = term, estimate = estimate, std.error = se, p.value = p,
       incremental = incremental, std.error_incremental = se_inc, spend = spend,
       iroas = incremental / spend, std.error_iroas = se_inc / abs(spend))
}

calibration_robyn <- function(fit, q, channel, start, end, metric, scope,
                              call = rlang::caller_env()) {
  dates <- calibration_dates(start, end, call = call)
  if (is.null(metric)) metric <- fit$vars$outcome
  check_string(metric, "metric", "the model's {.code dep_var}, e.g. {.code metric = \"revenue\"}",
               call = call)
  data.frame(channel = channel, liftStartDate = dates$start, liftEndDate = dates$end,
             liftAbs = q$incremental * sign(q$spend), spend = abs(q$spend),
             confidence = 1 - q$p.value, metric = metric, calibration_scope = scope,
             stringsAsFactors = FALSE)
}

calibration_meridian <- function(q, channel, start, end, call = rlang::caller_env()) {
  dates <- calibration_dates(start, end, call = call)
  m <- q$iroas
  s <- q$std.error_iroas
  if (m + stats::qnorm(0.975) * s < 0) {
    abort_mkt("not_available", c(
      "The return is significantly negative (ROI {format_num(m, 3)}, 95% upper bound {format_num(m + stats::qnorm(0.975) * s, 3)}): Meridian refuses such an experiment result.",
      i = "Check the sign of {.arg spend} (negative for go-dark) and of the fit's estimate."
    ), call = call)
  }
  mu <- sigma <- NA_real_
  if (m > 0) {
    sigma <- sqrt(log1p((s / m)^2))
    mu <- log(m) - sigma^2 / 2
  } else {
    warn_mkt("calibration_prior", c(
      "The ROI is not positive ({format_num(m, 3)}), so no LogNormal ROI prior has it as mean: {.field roi_prior_mu} and {.field roi_prior_sigma} are NA.",
      i = "Meridian's calibration builder takes {.field point_estimate} and {.field standard_error} as they are."
    ))
  }
  data.frame(channel = channel, experiment_start_date = dates$start,
             experiment_end_date = dates$end, total_spend = abs(q$spend),
             point_estimate = m, standard_error = s, roi_prior_mu = mu,
             roi_prior_sigma = sigma, stringsAsFactors = FALSE)
}

# PyMC-Marketing's period arguments: required for that format, and checked
# whenever given (a wrong value is refused even where it is not used).
check_pymc_periods <- function(baseline_spend, test_length, required,
                               call = rlang::caller_env()) {
  bad_length <- is.null(test_length) || !is.numeric(test_length) ||
    length(test_length) != 1L || !is.finite(test_length) || test_length <= 0
  if ((required || !is.null(test_length)) && bad_length) {
    abort_mkt("bad_argument", c(
      "{.arg test_length} must be one positive number: the model periods the test lasted.",
      x = if (is.null(test_length)) "It is missing." else "You supplied {.val {format(test_length)}}.",
      i = "PyMC-Marketing's lift is per model period; for a 4-week test in a weekly model, {.code test_length = 4}."
    ), call = call)
  }
  bad_base <- is.null(baseline_spend) || !is.numeric(baseline_spend) ||
    length(baseline_spend) != 1L || !is.finite(baseline_spend) || baseline_spend < 0
  if ((required || !is.null(baseline_spend)) && bad_base) {
    abort_mkt("bad_argument", c(
      "{.arg baseline_spend} must be one non-negative number: the channel's spend per model period before the test (PyMC-Marketing's {.field x}).",
      x = if (is.null(baseline_spend)) "It is missing." else "You supplied {.val {format(baseline_spend)}}.",
      i = "Use {.code baseline_spend = 0} for a channel that was off before the test."
    ), call = call)
  }
  invisible()
}

calibration_pymc <- function(q, channel, baseline_spend, test_length,
                             call = rlang::caller_env()) {
  check_pymc_periods(baseline_spend, test_length, required = TRUE, call = call)
  delta_x <- q$spend / test_length
  if (baseline_spend + delta_x < 0) {
    abort_mkt("bad_argument", c(
      "{.arg baseline_spend} {format_num(baseline_spend)} is below the spend removed per period ({format_num(-delta_x)}): spend cannot fall below zero.",
      i = "For a go-dark test, {.arg baseline_spend} is the business-as-usual spend per period that was switched off."
    ), call = call)
  }
  data.frame(channel = channel, x = baseline_spend, delta_x = delta_x,
             delta_y = q$incremental / test_length,
             sigma = q$std.error_incremental / test_length, stringsAsFactors = FALSE)
}

calibration_dates <- function(start, end, call = rlang::caller_env()) {
  as_day <- function(x, arg) {
    d <- if (length(x) == 1L && !is.na(x) &&
             (inherits(x, c("Date", "POSIXt")) || is.character(x))) {
      tryCatch(as.Date(x), error = function(e) as.Date(NA))
    } else {
      as.Date(NA)
    }
    if (is.na(d)) {
      abort_mkt("bad_argument", c(
        "{.arg {arg}} must be one date, such as {.code as.Date(\"2025-03-03\")} or {.code \"2025-03-03\"}.",
        x = if (is.null(x)) "It is missing." else "You supplied {.val {format(x)}}."
      ), call = call)
    }
    d
  }
  s <- as_day(start, "start")
  e <- as_day(end, "end")
  if (e < s) {
    abort_mkt("bad_argument", c(
      "{.arg end} ({format(e)}) is before {.arg start} ({format(s)}).",
      i = "Give the first and the last day of the test."
    ), call = call)
  }
  list(start = s, end = e)
}

# One non-empty string, or a classed error that says what is expected.
check_string <- function(x, arg, what, call = rlang::caller_env()) {
  if (!(is.character(x) && length(x) == 1L && !is.na(x) && nzchar(x))) {
    what <- cli::format_inline(what, .envir = parent.frame())
    abort_mkt("bad_argument", c(
      "{.arg {arg}} must be one non-empty string: {what}.",
      x = if (is.null(x)) "It is missing." else "You supplied {.obj_type_friendly {x}}."
    ), call = call, .envir = environment())
  }
  invisible(x)
}
