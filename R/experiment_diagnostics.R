#' Check that an experiment ran as designed
#'
#' Runs the checks that should precede any effect estimate: was the
#' intended share of units assigned to treatment (sample ratio mismatch),
#' are outcomes missing more in one arm (differential attrition), did units
#' receive the treatment they were assigned (non-compliance, with the
#' complier effect), and was treatment delivered only inside the test window
#' and only to treated units (protocol deviations). A failed check does not
#' stop the analysis but changes what [experiment_effect()] estimates: an
#' intention-to-treat effect under non-compliance, a possibly biased one
#' under differential attrition or a sample ratio mismatch.
#'
#' @section Checks:
#' * `sample_ratio_mismatch`: chi-square goodness-of-fit test of the arm
#'   counts against the intended treated share (`expected_prop`, or the
#'   design's allocation). `statistic` is the chi-square statistic.
#' * `attrition`: Fisher's exact test of missing `outcome` by arm.
#'   `statistic` is the missing share in treatment minus that in control.
#' * `non_compliance`: share of assigned-treated units that received
#'   treatment and of controls that did. `statistic` is the first-stage
#'   F statistic (HC2) of received on assigned, `p.value` its p-value; the
#'   verdict is `"fail"` when compliance is not perfect. With `outcome`, the
#'   Wald (IV) complier effect = ITT on outcome / ITT on received is returned
#'   in `$complier_effect`, with a delta-method HC2 standard error (the HC2
#'   variance of the ITT on \eqn{y - \hat\beta d}, divided by the squared
#'   first stage) and residual degrees of freedom.
#' * `protocol_deviation`: with `time` and `window`, rows (unit-periods, data
#'   in long form) where treatment was received outside the window or by a
#'   unit assigned to control. `statistic` is the number of such units (rows
#'   when units cannot be identified).
#'
#' A check that lacks its inputs has verdict `"not run"` and says what it
#' needs. A verdict is `"fail"` when `p.value < alpha` for the tests, or
#' when any deviation is found.
#'
#' @param data A data frame with one row per unit, or in long form (one row
#'   per unit and period) when `time` is given. In long form units are
#'   identified by the design's id column when it is in `data`.
#' @param assigned Name of the 0/1 column of assigned treatment.
#' @param received Optional name of the 0/1 column of treatment actually
#'   received.
#' @param outcome Optional name of the outcome column (missing values mark
#'   attrition).
#' @param expected_prop Intended share of treated units; taken from
#'   `design` when `NULL`.
#' @param design Optional design from [rerandomize()].
#' @param time Optional name of the period column of long data.
#' @param window The test window, `c(start, end)`, on the scale of `time`.
#' @param alpha Level below which a test's p-value fails the check. The
#'   default 0.01 keeps false alarms rare when all checks are run.
#' @param ... Must be empty.
#' @return An object of class `mkt_diagnostics`: `$checks` (also from
#'   [tidy()][tidy.mkt_diagnostics]) with one row per check and columns `check`,
#'   `statistic`, `p.value`, `verdict` and `message`; `$compliance` (share
#'   receiving treatment by arm) and `$complier_effect` (one row: `estimate`,
#'   `std.error`, `statistic`, `p.value`, `conf.low`, `conf.high`, `df`)
#'   when they could be computed.
#' @examples
#' set.seed(2)
#' d <- data.frame(assigned = rep(0:1, each = 50))
#' d$received <- ifelse(d$assigned == 1, rbinom(100, 1, 0.8), 0)
#' d$sales <- 100 + 5 * d$received + rnorm(100)
#' d$sales[sample(100, 3)] <- NA
#' diag <- experiment_diagnostics(d, "assigned", received = "received",
#'                                outcome = "sales", expected_prop = 0.5)
#' diag
#' tidy(diag)
#' @export
experiment_diagnostics <- function(data, assigned, received = NULL, outcome = NULL,
                                   expected_prop = NULL, design = NULL, time = NULL,
                                   window = NULL, alpha = 0.01, ...) {
  check_dots(...)
  data <- check_data_frame(data)
  alpha <- check_probability(alpha, "alpha")
  for (arg in c("assigned", "received", "outcome", "time")) {
    value <- get(arg)
    if (is.null(value) && arg == "assigned") {
      abort_mkt("bad_argument", c(
        "{.arg assigned} must name the column of the assigned arm (0/1).",
        i = "For example {.code experiment_diagnostics(units, assigned = \"treated\")}."
      ))
    }
    if (is.null(value)) next
    if (!is.character(value) || length(value) != 1L) {
      abort_mkt("bad_argument", "{.arg {arg}} must be the name of one column of {.arg data}.")
    }
    check_columns(data, value, arg)
  }
  if (!is.null(design)) check_design(design)
  check_two_cell(design, "experiment_diagnostics")
  if (!is.null(expected_prop)) {
    check_probability(expected_prop, "expected_prop")
  } else if (!is.null(design)) {
    expected_prop <- mean(design$treated)
  }
  z <- check_treatment(data[[assigned]], assigned)
  d <- if (!is.null(received)) check_binary_received(data[[received]], received)
  y <- if (!is.null(outcome)) data[[outcome]]
  if (!is.null(y) && !is.numeric(y)) {
    abort_mkt("non_numeric", "The outcome column {.field {outcome}} must be numeric.",
              column = outcome)
  }
  unit <- if (!is.null(design) && !is.null(design$id_name) && design$id_name %in% names(data)) {
    as.character(data[[design$id_name]])
  }
  if (is.null(time)) {
    if (!is.null(window)) {
      abort_mkt("bad_argument", "{.arg window} needs {.arg time}, the period column.")
    }
    in_window <- rep(TRUE, nrow(data))
  } else {
    window <- check_window(window, data[[time]])
    tt <- data[[time]]
    in_window <- tt >= window[1] & tt <= window[2]
  }

  first <- if (!is.null(unit)) !duplicated(unit) else rep(TRUE, nrow(data))
  long_without_id <- !is.null(time) && is.null(unit)
  checks <- list(
    check_sample_ratio(z[first], expected_prop, long_without_id, alpha),
    check_attrition(z[in_window], y[in_window], alpha),
    compliance_check(z[in_window], d[in_window], y[in_window]),
    check_protocol(z, d, in_window, unit, time, window)
  )
  tab <- do.call(rbind, lapply(checks, `[[`, "row"))
  compliance <- checks[[3]]$compliance
  structure(list(
    checks = tab,
    compliance = compliance,
    complier_effect = checks[[3]]$complier_effect,
    alpha = alpha,
    n = nrow(data)
  ), class = "mkt_diagnostics")
}

check_binary_received <- function(x, name, call = rlang::caller_env()) {
  if (is.logical(x)) x <- as.integer(x)
  if (!is.numeric(x) || anyNA(x) || !all(x %in% c(0, 1))) {
    abort_mkt("non_binary_treatment", c(
      "Received-treatment column {.field {name}} must be 0/1 (or logical) without missing values.",
      i = "Code exposure as 1 for units that got the treatment, 0 otherwise."
    ), column = name, call = call)
  }
  as.integer(x)
}

check_window <- function(window, time, call = rlang::caller_env()) {
  ok <- length(window) == 2L && !anyNA(window) &&
    tryCatch(window[1] <= window[2], error = function(e) FALSE)
  if (!ok) {
    abort_mkt("bad_argument", c(
      "{.arg window} must be {.code c(start, end)} on the scale of {.arg time}, with start <= end.",
      i = "For weeks 53 to 60: {.code window = c(53, 60)}."
    ), call = call)
  }
  if (anyNA(time)) {
    abort_mkt("missing_values", "The time column has {sum(is.na(time))} missing value{?s}.",
              call = call)
  }
  window
}

diag_row <- function(check, statistic = NA_real_, p.value = NA_real_, verdict, message) {
  data.frame(check = check, statistic = statistic, p.value = p.value,
             verdict = verdict, message = message, stringsAsFactors = FALSE)
}

check_sample_ratio <- function(z, p, long_without_id, alpha) {
  if (long_without_id) {
    return(list(row = diag_row("sample_ratio_mismatch", verdict = "not run",
      message = "Long data without unit ids: give a design whose id column is in the data.")))
  }
  if (is.null(p)) {
    return(list(row = diag_row("sample_ratio_mismatch", verdict = "not run",
      message = "Give expected_prop (or the design) to compare the arm sizes with the plan.")))
  }
  counts <- c(sum(z == 1), sum(z == 0))
  test <- suppressWarnings(stats::chisq.test(counts, p = c(p, 1 - p)))
  verdict <- if (test$p.value < alpha) "fail" else "pass"
  msg <- sprintf("%d treated of %d units (share %.3f) against an intended %.3f: %s.",
                 counts[1], sum(counts), counts[1] / sum(counts), p,
                 if (verdict == "fail") "sample ratio mismatch, check how units entered the data"
                 else "consistent with the plan")
  list(row = diag_row("sample_ratio_mismatch", unname(test$statistic), test$p.value,
                      verdict, msg))
}

check_attrition <- function(z, y, alpha) {
  if (is.null(y)) {
    return(list(row = diag_row("attrition", verdict = "not run",
      message = "Give outcome to check for missing outcomes by arm.")))
  }
  miss <- is.na(y)
  share <- c(mean(miss[z == 1]), mean(miss[z == 0]))
  if (!any(miss)) {
    return(list(row = diag_row("attrition", 0, 1, "pass", "No missing outcomes in either arm.")))
  }
  test <- stats::fisher.test(table(factor(z, 0:1), factor(miss, c(FALSE, TRUE))))
  verdict <- if (test$p.value < alpha) "fail" else "pass"
  msg <- sprintf("Outcome missing for %.1f%% of treated and %.1f%% of control units: %s.",
                 100 * share[1], 100 * share[2],
                 if (verdict == "fail") "differential attrition, the effect on observed units may be biased"
                 else "no evidence of differential attrition")
  list(row = diag_row("attrition", share[1] - share[2], test$p.value, verdict, msg))
}

compliance_check <- function(z, d, y) {
  if (is.null(d)) {
    return(list(row = diag_row("non_compliance", verdict = "not run",
      message = "Give received to compare assigned and received treatment.")))
  }
  rate <- c(treated = mean(d[z == 1]), control = mean(d[z == 0]))
  compliance <- data.frame(arm = c("treated", "control"), n = c(sum(z == 1), sum(z == 0)),
                           share_received = unname(rate))
  if (rate[["treated"]] == 1 && rate[["control"]] == 0) {
    return(list(compliance = compliance, row = diag_row("non_compliance", NA_real_, NA_real_,
      "pass", "Every treated unit received treatment and no control unit did.")))
  }
  Z <- cbind(`(Intercept)` = 1, assigned = z)
  first <- ols_robust(Z, d)
  itt_d <- first$coefficients[["assigned"]]
  if (abs(itt_d) < sqrt(.Machine$double.eps)) {
    return(list(compliance = compliance, row = diag_row("non_compliance", 0, 1, "fail",
      sprintf("Assignment did not change exposure: %.1f%% of treated and %.1f%% of control units received treatment.",
              100 * rate[["treated"]], 100 * rate[["control"]]))))
  }
  f_stat <- itt_d^2 / first$vcov["assigned", "assigned"]
  p_first <- stats::pf(f_stat, 1, first$df[["assigned"]], lower.tail = FALSE)
  msg <- sprintf("%.1f%% of treated and %.1f%% of control units received treatment; the ITT is diluted by a first stage of %.3f.",
                 100 * rate[["treated"]], 100 * rate[["control"]], itt_d)
  complier <- NULL
  if (!is.null(y)) {
    keep <- !is.na(y)
    Zk <- Z[keep, , drop = FALSE]
    itt_y <- ols_robust(Zk, y[keep])$coefficients[["assigned"]]
    itt_dk <- ols_robust(Zk, d[keep])$coefficients[["assigned"]]
    beta <- itt_y / itt_dk
    # Delta method: the ITT on y - beta * d is zero at beta-hat, and its HC2
    # variance over the squared first stage is the variance of the Wald ratio.
    combined <- ols_robust(Zk, y[keep] - beta * d[keep])
    se <- sqrt(combined$vcov["assigned", "assigned"]) / abs(itt_dk)
    complier <- robust_row(beta, se, combined$df[["assigned"]], 0.05)
    msg <- paste0(msg, sprintf(" Complier effect (Wald) %s, 95%% CI [%s, %s].",
                               signif(beta, 4), signif(complier$conf.low, 4),
                               signif(complier$conf.high, 4)))
  }
  if (isTRUE(f_stat < 10)) msg <- paste0(msg, " The first stage is weak (F < 10): the complier effect is unreliable.")
  list(compliance = compliance, complier_effect = complier,
       row = diag_row("non_compliance", f_stat, p_first, "fail", msg))
}

check_protocol <- function(z, d, in_window, unit, time, window) {
  if (is.null(d) || is.null(time)) {
    return(list(row = diag_row("protocol_deviation", verdict = "not run",
      message = "Give received, time and window (long data) to find treatment outside the plan.")))
  }
  outside <- d == 1 & !in_window
  control <- d == 1 & z == 0
  count <- function(rows) if (is.null(unit)) sum(rows) else length(unique(unit[rows]))
  what <- if (is.null(unit)) "rows" else "units"
  n_dev <- count(outside | control)
  verdict <- if (n_dev > 0) "fail" else "pass"
  msg <- if (n_dev > 0) {
    sprintf("%d %s deviate: %d received treatment outside the window [%s, %s], %d control %s were treated.",
            n_dev, what, count(outside), format(window[1]), format(window[2]),
            count(control), what)
  } else {
    sprintf("Treatment was received only inside the window [%s, %s] and only by treated units.",
            format(window[1]), format(window[2]))
  }
  list(row = diag_row("protocol_deviation", n_dev, NA_real_, verdict, msg))
}
