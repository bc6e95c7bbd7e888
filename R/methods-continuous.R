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
#'   response), `"twfe_weights"` (continuous DiD: the weights TWFE puts on
#'   each dose's causal response), `"event_study"` (exposure DiD) or `"ar"`
#'   (the Anderson-Rubin statistic over a grid, IV).
#' @param parm Coefficients to report (names or positions); all by default.
#' @param level Confidence level.
#' @param ... Unused.
#' @name continuous-methods
NULL

fit_tidy <- function(x, what = "coefficients") {
  switch(what,
    coefficients = x$estimates,
    curve = x$curve %||% abort_mkt("bad_argument", "This fit has no curve; use {.code tidy(fit)}."),
    event_study = x$event_study %||% abort_mkt("bad_argument", if (is.null(x$factors)) {
      "This fit has no event study; use {.code event_study = TRUE}."
    } else {
      "Fits with {.arg factors} have no event study; refit without {.arg factors} for one."
    }),
    abort_mkt("bad_argument", c(
      "{.arg what} must be {.val coefficients}, {.val curve} or {.val event_study}.",
      x = "You supplied {.val {what}}."
    ))
  )
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

# --- iv_fe ------------------------------------------------------------------

#' @rdname continuous-methods
#' @export
tidy.mkt_iv_fe <- function(x, what = "coefficients", ...) {
  if (identical(what, "ar")) {
    if (is.null(x$ar_parts)) {
      abort_mkt("bad_argument", "The Anderson-Rubin set is computed with one endogenous variable only.")
    }
    return(ar_curve(x))
  }
  fit_tidy(x, what)
}

#' @rdname continuous-methods
#' @export
plot.mkt_iv_fe <- function(x, ...) {
  ar <- tidy.mkt_iv_fe(x, "ar")
  ar$accepted <- ar$statistic <= ar$critical
  ggplot2::ggplot(ar, ggplot2::aes(x = .data$effect, y = .data$statistic)) +
    ggplot2::geom_line(colour = "#08519c", linewidth = 0.8) +
    ggplot2::geom_hline(yintercept = ar$critical[1], colour = "firebrick", linetype = "dashed") +
    ggplot2::geom_vline(xintercept = x$estimates$estimate[1], colour = "grey50") +
    ggplot2::geom_point(data = ar[ar$accepted, , drop = FALSE], colour = "#08519c", size = 0.6) +
    ggplot2::labs(x = paste("hypothesised effect of", x$estimates$term[1]),
                  y = "Anderson-Rubin statistic / instruments",
                  title = "Anderson-Rubin test inversion",
                  subtitle = sprintf("%g%% set where the curve is below the dashed line: %s; grey: 2SLS",
                                     100 * (1 - x$alpha), format_ar_set(x$ar_set))) +
    ggplot2::theme_minimal()
}

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

# --- dose_response ------------------------------------------------------------

#' @rdname continuous-methods
#' @export
tidy.mkt_dose_response <- function(x, what = "coefficients", ...) {
  if (identical(what, "twfe_weights")) {
    return(x$twfe_weights %||% abort_mkt("bad_argument",
      "TWFE weights are reported by {.code estimator = \"cgbs\"} fits."))
  }
  fit_tidy(x, what)
}

#' @rdname continuous-methods
#' @export
glance.mkt_dose_response <- function(x, ...) {
  data.frame(estimator = x$estimator, shape = x$shape, n = x$n, n_units = x$n_units,
             n_periods = x$n_periods, n_clusters = x$n_clusters, se_type = x$se_type,
             reference_dose = x$reference, twfe_slope = x$twfe_slope, alpha = x$alpha,
             stringsAsFactors = FALSE)
}

#' @rdname continuous-methods
#' @export
coef.mkt_dose_response <- function(object, ...) fit_coef(object)

#' @rdname continuous-methods
#' @export
vcov.mkt_dose_response <- function(object, ...) object$vcov

#' @rdname continuous-methods
#' @export
confint.mkt_dose_response <- function(object, parm, level = 1 - object$alpha, ...) {
  fit_confint(object, if (missing(parm)) NULL else parm, level)
}

#' @rdname continuous-methods
#' @export
print.mkt_dose_response <- function(x, ...) {
  if (x$estimator == "cgbs") {
    say("{.strong Continuous difference-in-differences} (Callaway, Goodman-Bacon and Sant'Anna), {x$shape} curve")
    say("{x$n_treated} dosed and {x$n_untreated} untreated units; TWFE slope on the same data: {signif(x$twfe_slope, 4)}")
  } else {
    say("{.strong Dose-response with unit and time fixed effects} ({x$shape}, {x$se_type} standard errors, {x$n_clusters} cluster{?s})")
    say("{x$n} observations, {x$n_units} units x {x$n_periods} periods; curve relative to dose {signif(x$reference, 4)}")
  }
  cat("\n")
  fit_print_table(x)
  invisible(x)
}

#' @rdname continuous-methods
#' @export
summary.mkt_dose_response <- function(object, ...) print.mkt_dose_response(object, ...)

#' @rdname continuous-methods
#' @export
plot.mkt_dose_response <- function(x, ...) {
  cv <- tidy.mkt_dose_response(x, "curve")
  p <- ggplot2::ggplot(cv, ggplot2::aes(x = .data$dose, y = .data$estimate)) +
    ggplot2::geom_hline(yintercept = 0, colour = "grey60")
  if (x$shape == "bins") {
    p <- p + ggplot2::geom_pointrange(ggplot2::aes(ymin = .data$conf.low, ymax = .data$conf.high))
  } else {
    p <- p + ggplot2::geom_ribbon(ggplot2::aes(ymin = .data$conf.low, ymax = .data$conf.high),
                                  fill = "grey80") +
      ggplot2::geom_line(colour = "#08519c", linewidth = 0.8)
  }
  if (length(unique(cv$estimand)) > 1L) {
    p <- p + ggplot2::facet_wrap(~ estimand, scales = "free_y")
  }
  p + ggplot2::labs(x = x$panel$vars$treatment, y = "effect",
                    title = if (x$estimator == "cgbs") "ATT(d) and ACRT(d)" else
                      "Dose-response (two-way fixed effects)",
                    subtitle = sprintf("%g%% pointwise confidence band", 100 * (1 - x$alpha))) +
    ggplot2::theme_minimal()
}

# --- exposure_did -------------------------------------------------------------

#' @rdname continuous-methods
#' @export
tidy.mkt_exposure_did <- function(x, what = "coefficients", ...) fit_tidy(x, what)

#' @rdname continuous-methods
#' @export
glance.mkt_exposure_did <- function(x, ...) {
  data.frame(n = x$n, n_units = x$n_units, n_periods = x$n_periods,
             n_clusters = x$n_clusters, se_type = x$se_type,
             first_post = format(x$first_post),
             pretrend_stat = x$pretrend[["stat"]], pretrend_df = x$pretrend[["df1"]],
             pretrend_p.value = x$pretrend[["p"]], alpha = x$alpha,
             stringsAsFactors = FALSE)
}

#' @rdname continuous-methods
#' @export
coef.mkt_exposure_did <- function(object, ...) fit_coef(object)

#' @rdname continuous-methods
#' @export
vcov.mkt_exposure_did <- function(object, ...) object$vcov

#' @rdname continuous-methods
#' @export
confint.mkt_exposure_did <- function(object, parm, level = 1 - object$alpha, ...) {
  fit_confint(object, if (missing(parm)) NULL else parm, level)
}

#' @rdname continuous-methods
#' @export
print.mkt_exposure_did <- function(x, ...) {
  say("{.strong Exposure difference-in-differences} ({x$se_type} standard errors, {x$n_clusters} cluster{?s})")
  say("{x$n} observations, {x$n_units} units x {x$n_periods} periods; shock from {format(x$first_post)}")
  cat("\n")
  fit_print_table(x)
  if (!is.na(x$pretrend[["stat"]])) {
    say("\nPre-trend test (event-study coefficients before the shock = 0): F = {signif(x$pretrend[['stat']], 3)} on {x$pretrend[['df1']]} df, p = {format.pval(x$pretrend[['p']], digits = 2)}")
  }
  invisible(x)
}

#' @rdname continuous-methods
#' @export
summary.mkt_exposure_did <- function(object, ...) print.mkt_exposure_did(object, ...)

#' @rdname continuous-methods
#' @export
plot.mkt_exposure_did <- function(x, ...) {
  es <- tidy.mkt_exposure_did(x, "event_study")
  ggplot2::ggplot(es, ggplot2::aes(x = .data$relative_period, y = .data$estimate)) +
    ggplot2::geom_hline(yintercept = 0, colour = "grey60") +
    ggplot2::geom_vline(xintercept = -0.5, colour = "firebrick", linetype = "dashed") +
    ggplot2::geom_pointrange(ggplot2::aes(ymin = .data$conf.low, ymax = .data$conf.high),
                             colour = "#08519c") +
    ggplot2::labs(x = "periods since the shock", y = "effect of one unit of exposure",
                  title = "Exposure event study",
                  subtitle = sprintf("%g%% confidence intervals; base period at 0",
                                     100 * (1 - x$alpha))) +
    ggplot2::theme_minimal()
}

# --- dml ------------------------------------------------------------------------

#' @rdname continuous-methods
#' @export
tidy.mkt_dml <- function(x, what = "coefficients", ...) fit_tidy(x, what)

#' @rdname continuous-methods
#' @export
glance.mkt_dml <- function(x, ...) {
  data.frame(n = x$n, n_units = x$n_units, n_periods = x$n_periods,
             n_folds = x$n_folds, n_rep = x$n_rep,
             learner_outcome = x$learner[1], learner_treatment = x$learner[2],
             se_type = x$se_type, estimate_spread = diff(range(x$repetitions$estimate)),
             alpha = x$alpha, stringsAsFactors = FALSE)
}

#' @rdname continuous-methods
#' @export
coef.mkt_dml <- function(object, ...) fit_coef(object)

#' @rdname continuous-methods
#' @export
vcov.mkt_dml <- function(object, ...) object$vcov

#' @rdname continuous-methods
#' @export
confint.mkt_dml <- function(object, parm, level = 1 - object$alpha, ...) {
  fit_confint(object, if (missing(parm)) NULL else parm, level)
}

#' @rdname continuous-methods
#' @export
print.mkt_dml <- function(x, ...) {
  say("{.strong Double machine learning}, partially linear panel model with unit and time fixed effects")
  say("{x$n} observations, {x$n_units} units x {x$n_periods} periods; learners: {x$learner[1]} (outcome), {x$learner[2]} (treatment)")
  say("{x$n_folds} folds of units, median of {x$n_rep} cross-fit{?s}; {x$se_type} standard errors")
  cat("\n")
  fit_print_table(x)
  invisible(x)
}

#' @rdname continuous-methods
#' @export
summary.mkt_dml <- function(object, ...) print.mkt_dml(object, ...)

#' @rdname continuous-methods
#' @export
plot.mkt_dml <- function(x, ...) {
  reps <- x$repetitions
  reps$repetition <- seq_len(nrow(reps))
  crit <- stats::qnorm(1 - x$alpha / 2)
  ggplot2::ggplot(reps, ggplot2::aes(x = .data$repetition, y = .data$estimate)) +
    ggplot2::geom_hline(yintercept = x$estimates$estimate, colour = "firebrick") +
    ggplot2::geom_pointrange(ggplot2::aes(ymin = .data$estimate - crit * .data$std.error,
                                          ymax = .data$estimate + crit * .data$std.error)) +
    ggplot2::labs(x = "cross-fit repetition", y = x$estimates$term,
                  title = "Estimates across cross-fitting splits",
                  subtitle = "red: median (the reported estimate)") +
    ggplot2::theme_minimal()
}
