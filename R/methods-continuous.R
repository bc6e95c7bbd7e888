# Presentation of the estimators for continuous treatments, exposures and
# instruments (iv_fe, dose_response, exposure_did, dml). coef, vcov,
# confint, nobs, tidy, glance, print and summary are the shared methods of
# mkt_fit (methods-fit.R); here are only each class's plots and the lines it
# prints after its estimates.

#' Plots and printed details of fits for continuous treatments
#'
#' [iv_fe()], [dose_response()], [exposure_did()] and [dml()] fits use the
#' methods shared by every fit ([mkt_fit]); their further tables are reached
#' with `tidy(fit, what)`: `"first_stage"`, `"ar_set"` and `"ar"` for
#' [iv_fe()]; `"curve"` (and `"twfe_weights"` for `method = "cgbs"`) for
#' [dose_response()]; `"event_study"` (and `"factors"`, `"loadings"` with
#' factors) for [exposure_did()]; `"splits"` for [dml()]. `autoplot()` (and
#' `plot()`) draws:
#' * [iv_fe()]: `"ar"`, the Anderson-Rubin statistic over hypothesised
#'   effects (one endogenous variable), or `"estimates"`;
#' * [dose_response()]: `"curve"`, the dose-response curve with its
#'   pointwise band, or `"estimates"`;
#' * [exposure_did()]: `"event_study"`, the coefficients of exposure by
#'   period, or `"estimates"`;
#' * [dml()]: `"splits"`, the estimate of each random sample split, or
#'   `"estimates"`.
#'
#' @param object A fit.
#' @param type Which plot; the first is the default.
#' @param ... Must be empty.
#' @return A ggplot.
#' @examples
#' set.seed(1)
#' d <- expand.grid(dma = 1:50, week = 1:12)
#' grp <- runif(50, 0, 3)
#' d$grp <- grp[d$dma]
#' d$sales <- d$dma / 10 + d$week / 4 + 0.5 * d$grp * (d$week >= 8) + rnorm(nrow(d))
#' fit <- exposure_did(sales ~ grp | dma + week, d, post = 8)
#' ggplot2::autoplot(fit)
#' @name continuous-plots
NULL

# --- iv_fe ------------------------------------------------------------------

#' @rdname continuous-plots
#' @export
autoplot.mkt_iv_fe <- function(object, type = c("ar", "estimates"), ...) {
  check_dots(...)
  if (missing(type) && is.null(object$tables$ar)) type <- "estimates"
  type <- check_choice(type)
  if (type == "estimates") return(autoplot.mkt_fit(object))
  if (is.null(object$tables$ar)) {
    abort_mkt("not_available", c(
      "The Anderson-Rubin statistic is computed with one endogenous variable only.",
      i = "Use {.code type = \"estimates\"}."
    ))
  }
  ar <- object$tables$ar
  ar$accepted <- ar$statistic <= ar$critical
  est <- object$estimates
  ggplot2::ggplot(ar, ggplot2::aes(x = .data$effect, y = .data$statistic)) +
    ggplot2::geom_line(colour = mkt_colours[["treated"]], linewidth = 0.8) +
    ggplot2::geom_hline(yintercept = ar$critical[1], colour = mkt_colours[["effect"]],
                        linetype = "dashed") +
    ggplot2::geom_vline(xintercept = est$estimate[1], colour = mkt_colours[["control"]]) +
    ggplot2::geom_point(data = ar[ar$accepted, , drop = FALSE],
                        colour = mkt_colours[["treated"]], size = 0.6) +
    ggplot2::labs(x = paste("hypothesised effect of", est$term[1]),
                  y = "Anderson-Rubin statistic / instruments",
                  title = "Anderson-Rubin test inversion",
                  subtitle = sprintf("%g%% set where the curve is below the dashed line: %s; grey: 2SLS",
                                     100 * (1 - object$alpha),
                                     format_ar_set(object$tables$ar_set))) +
    theme_mkt()
}

#' @export
print_details.mkt_iv_fe <- function(x, summary = FALSE, ...) {
  fs <- x$tables$first_stage
  cat("\n")
  for (i in seq_len(nrow(fs))) {
    wrap_line(sprintf("First stage of %s: F = %s, robust Wald F = %s, effective F = %s (%d instrument%s)",
                      fs$endogenous[i], format_num(fs$f_stat[i], 4),
                      format_num(fs$f_robust[i], 4), format_num(fs$f_effective[i], 4),
                      fs$n_instruments[i], if (fs$n_instruments[i] == 1L) "" else "s"))
  }
  if (!is.null(x$tables$ar_set)) {
    wrap_line(sprintf("Anderson-Rubin %g%% set (valid with weak instruments): %s",
                      100 * (1 - x$alpha), format_ar_set(x$tables$ar_set)))
  }
  invisible(x)
}

# "p = 0.123" or "p < 0.001".
p_phrase <- function(p) {
  if (is.na(p)) return("p = NA")
  if (p < 0.001) "p < 0.001" else sprintf("p = %.3f", p)
}

# One line of printed text, wrapped within 80 columns.
wrap_line <- function(text, indent = 2L) {
  lines <- strwrap(text, width = 78, exdent = indent)
  cat(lines, sep = "\n")
}

# --- dose_response ------------------------------------------------------------

#' @rdname continuous-plots
#' @export
autoplot.mkt_dose_response <- function(object, type = c("curve", "estimates"), ...) {
  check_dots(...)
  type <- check_choice(type)
  if (type == "estimates") return(autoplot.mkt_fit(object))
  cv <- object$tables$curve
  p <- ggplot2::ggplot(cv, ggplot2::aes(x = .data$dose, y = .data$estimate)) +
    ref_line("y")
  if (object$shape == "bins") {
    p <- p + ggplot2::geom_pointrange(ggplot2::aes(ymin = .data$conf.low, ymax = .data$conf.high),
                                      colour = mkt_colours[["treated"]])
  } else {
    p <- p + ggplot2::geom_ribbon(ggplot2::aes(ymin = .data$conf.low, ymax = .data$conf.high),
                                  fill = mkt_colours[["band"]], alpha = 0.6) +
      ggplot2::geom_line(colour = mkt_colours[["treated"]], linewidth = 0.8)
  }
  if (length(unique(cv$estimand)) > 1L) {
    p <- p + ggplot2::facet_wrap(~ estimand, scales = "free_y")
  }
  p + ggplot2::labs(x = object$vars$treatment, y = "effect",
                    title = if (object$options$method == "cgbs") "ATT(d) and ACRT(d)" else
                      "Dose-response (two-way fixed effects)",
                    subtitle = sprintf("%g%% pointwise confidence band", 100 * (1 - object$alpha))) +
    theme_mkt()
}

#' @export
print_details.mkt_dose_response <- function(x, summary = FALSE, ...) {
  cat("\n")
  if (x$options$method == "cgbs") {
    wrap_line(sprintf("TWFE slope on the same units: %s (it weights ACRT(d) towards the middle of the dose distribution; tidy(fit, \"twfe_weights\"))",
                      format_num(x$glance$twfe_slope, 4)))
  } else {
    wrap_line(sprintf("Curve relative to dose %s: tidy(fit, \"curve\")", format_num(x$reference, 4)))
  }
  invisible(x)
}

# --- exposure_did -------------------------------------------------------------

#' @rdname continuous-plots
#' @export
autoplot.mkt_exposure_did <- function(object, type = c("event_study", "estimates"), ...) {
  check_dots(...)
  if (missing(type) && is.null(object$tables$event_study)) type <- "estimates"
  type <- check_choice(type)
  if (type == "estimates") return(autoplot.mkt_fit(object))
  es <- object$tables$event_study
  if (is.null(es)) {
    abort_mkt("not_available", c(
      "This fit has no event study.",
      i = if (is.null(object$factors)) "Refit with {.code event_study = TRUE}." else
        "Fits with {.arg factors} have none; refit without {.arg factors} for one."
    ))
  }
  ggplot2::ggplot(es, ggplot2::aes(x = .data$relative_period, y = .data$estimate)) +
    ref_line("y") +
    start_line(-0.5) +
    ggplot2::geom_pointrange(ggplot2::aes(ymin = .data$conf.low, ymax = .data$conf.high),
                             colour = mkt_colours[["treated"]]) +
    event_time_axis() +
    ggplot2::labs(x = "periods since the shock", y = "effect of one unit of exposure",
                  title = "Exposure event study",
                  subtitle = sprintf("%g%% confidence intervals; base period at 0",
                                     100 * (1 - object$alpha))) +
    theme_mkt()
}

#' @export
print_details.mkt_exposure_did <- function(x, summary = FALSE, ...) {
  g <- x$glance
  if (!is.na(g$pretrend_stat)) {
    cat("\n")
    how <- if (identical(g$pretrend_method, "F")) "F reference" else
      sprintf("%s, %s draws", g$pretrend_method,
              format(g$pretrend_n_draws, big.mark = ","))
    wrap_line(sprintf("Pre-trend test (event-study coefficients before the shock = 0): F = %s on %d df, %s by %s",
                      format_num(g$pretrend_stat, 3), as.integer(g$pretrend_df),
                      p_phrase(g$pretrend_p.value), how))
  }
  if (summary && !is.null(x$tables$event_study)) {
    cat("\nEvent study (base period at 0):\n")
    es <- x$tables$event_study
    show <- data.frame(period = format(es$time), relative = es$relative_period,
                       estimate = format_num(es$estimate, 4),
                       std.error = format_num(es$std.error, 3),
                       p.value = format_p(es$p.value))
    print.data.frame(show, row.names = FALSE)
  }
  invisible(x)
}

# --- dml ------------------------------------------------------------------------

#' @rdname continuous-plots
#' @export
autoplot.mkt_dml <- function(object, type = c("splits", "estimates"), ...) {
  check_dots(...)
  type <- check_choice(type)
  if (type == "estimates") return(autoplot.mkt_fit(object))
  reps <- object$tables$splits
  crit <- stats::qnorm(object$alpha / 2, lower.tail = FALSE)
  ggplot2::ggplot(reps, ggplot2::aes(x = .data$split, y = .data$estimate)) +
    ggplot2::geom_hline(yintercept = object$estimates$estimate, colour = mkt_colours[["effect"]]) +
    ggplot2::geom_pointrange(ggplot2::aes(ymin = .data$estimate - crit * .data$std.error,
                                          ymax = .data$estimate + crit * .data$std.error),
                             colour = mkt_colours[["treated"]]) +
    ggplot2::labs(x = "random sample split", y = object$estimates$term,
                  title = "Estimates across cross-fitting splits",
                  subtitle = "red: median (the reported estimate)") +
    theme_mkt()
}

#' @export
print_details.mkt_dml <- function(x, summary = FALSE, ...) {
  sp <- x$tables$splits
  cat("\n")
  wrap_line(sprintf("Learners: %s (outcome), %s (treatment); %d folds of units%s",
                    x$learner[1], x$learner[2], x$n_folds,
                    if (nrow(sp) > 1L) sprintf("; the %d splits' estimates range from %s to %s",
                                              nrow(sp), format_num(min(sp$estimate), 4),
                                              format_num(max(sp$estimate), 4)) else ""))
  invisible(x)
}
