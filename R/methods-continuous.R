# Presentation of the fixed-effects estimators for continuous treatments and
# instruments (iv_fe, dose_response, exposure_did, dml). Their fits share one
# shape -- `estimates` (broom columns), `vcov`, `alpha` -- so one set of
# helpers serves every class and each method is a one-line binding.

#' Tidy, glance, print and plot fixed-effects fits
#'
#' Methods shared by [iv_fe()], [dose_response()], [exposure_did()] and
#' [dml()]. `tidy()` returns the coefficient table with broom's columns
#' (`term`, `estimate`, `std.error`, `statistic`, `p.value`, `conf.low`,
#' `conf.high`, plus `df`); for [dose_response()] and [exposure_did()],
#' `tidy(x, "curve")` and `tidy(x, "event_study")` give the data behind
#' their plots. `glance()` gives one row describing the fit. `coef()`,
#' `vcov()` and `confint()` work as usual (`confint()` uses the same t
#' reference distribution as `tidy()`).
#'
#' @param x,object A fit from [iv_fe()], [dose_response()], [exposure_did()]
#'   or [dml()].
#' @param what What to tidy: `"coefficients"` (default), `"curve"` (dose
#'   response) or `"event_study"` (exposure DiD).
#' @param parm Coefficients to report (names or positions); all by default.
#' @param level Confidence level.
#' @param ... Unused.
#' @name continuous-methods
NULL

fit_tidy <- function(x, what = "coefficients") {
  switch(what,
    coefficients = x$estimates,
    curve = x$curve %||% abort_mkt("bad_argument", "This fit has no curve; use {.code tidy(fit)}."),
    event_study = x$event_study %||% abort_mkt("bad_argument", "This fit has no event study; use {.code event_study = TRUE}."),
    abort_mkt("bad_argument", c(
      "{.arg what} must be {.val coefficients}, {.val curve} or {.val event_study}.",
      x = "You supplied {.val {what}}."
    ))
  )
}

fit_coef <- function(object) stats::setNames(object$estimates$estimate, object$estimates$term)

fit_confint <- function(object, parm, level) {
  est <- object$estimates
  if (missing(parm) || is.null(parm)) parm <- est$term
  if (is.numeric(parm)) parm <- est$term[parm]
  est <- est[match(parm, est$term), , drop = FALSE]
  crit <- stats::qt(1 - (1 - level) / 2, est$df)
  out <- cbind(est$estimate - crit * est$std.error, est$estimate + crit * est$std.error)
  pct <- paste(format(100 * c((1 - level) / 2, 1 - (1 - level) / 2), trim = TRUE,
                      scientific = FALSE, digits = 3), "%")
  dimnames(out) <- list(est$term, pct)
  out
}

fit_print_table <- function(x) {
  est <- x$estimates
  show <- data.frame(
    term = est$term,
    estimate = signif(est$estimate, 4),
    std.error = signif(est$std.error, 3),
    ci = sprintf("[%s, %s]", signif(est$conf.low, 4), signif(est$conf.high, 4)),
    p.value = format.pval(est$p.value, digits = 2)
  )
  names(show)[4] <- sprintf("%g%% CI", 100 * (1 - x$alpha))
  print.data.frame(show, row.names = FALSE)
}

`%||%` <- function(a, b) if (is.null(a)) b else a

# --- iv_fe ------------------------------------------------------------------

#' @rdname continuous-methods
#' @export
tidy.mkt_iv_fe <- function(x, what = "coefficients", ...) fit_tidy(x, what)

#' @rdname continuous-methods
#' @export
glance.mkt_iv_fe <- function(x, ...) {
  fs <- x$first_stage
  data.frame(n = x$n, n_units = x$n_units, n_periods = x$n_periods,
             n_clusters = x$n_clusters, se_type = x$se_type,
             n_endogenous = nrow(fs), n_instruments = fs$n_instruments[1],
             f_effective = min(fs$f_effective), f_robust = min(fs$f_robust),
             ar_set = format_ar_set(x$ar_set), alpha = x$alpha,
             stringsAsFactors = FALSE)
}

#' @rdname continuous-methods
#' @export
coef.mkt_iv_fe <- function(object, ...) fit_coef(object)

#' @rdname continuous-methods
#' @export
vcov.mkt_iv_fe <- function(object, ...) object$vcov

#' @rdname continuous-methods
#' @export
confint.mkt_iv_fe <- function(object, parm, level = 1 - object$alpha, ...) {
  fit_confint(object, if (missing(parm)) NULL else parm, level)
}

#' @rdname continuous-methods
#' @export
print.mkt_iv_fe <- function(x, ...) {
  say("{.strong 2SLS with unit and time fixed effects} ({x$se_type} standard errors, {x$n_clusters} cluster{?s})")
  say("{x$n} observations, {x$n_units} units x {x$n_periods} periods; endogenous: {.field {x$spec$endogenous}}; instruments: {.field {x$spec$instruments}}")
  cat("\n")
  fit_print_table(x)
  fs <- x$first_stage
  cat("\nFirst stage:\n")
  for (i in seq_len(nrow(fs))) {
    say("  {fs$endogenous[i]}: F = {signif(fs$f_stat[i], 4)}, robust Wald F = {signif(fs$f_robust[i], 4)}, effective F = {signif(fs$f_effective[i], 4)}")
  }
  if (!is.null(x$ar_set)) {
    say("Anderson-Rubin {100 * (1 - x$alpha)}% set: {format_ar_set(x$ar_set)}")
  }
  invisible(x)
}

#' @rdname continuous-methods
#' @export
summary.mkt_iv_fe <- function(object, ...) print.mkt_iv_fe(object, ...)
