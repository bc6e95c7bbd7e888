# Presentation of the factor-model fits (ife, counterfactual). coef, vcov,
# confint, nobs, tidy, glance, print and summary are the shared methods of
# mkt_fit (methods-fit.R); here are only each class's plots, drawn from its
# tables, and the lines it prints after its estimates.

#' Plots and printed details of interactive fixed effects fits
#'
#' [ife()] and [counterfactual()] fits use the methods shared by every fit
#' ([mkt_fit]); their further tables are reached with `tidy(fit, what)` (see
#' the Value sections of [ife()] and [counterfactual()]). `autoplot()` (and
#' `plot()`) draws from those tables:
#' * [counterfactual()]: `"gap"` (event-time gaps with intervals, the
#'   default), `"counterfactual"` (observed and imputed means of the treated
#'   units), `"effect_over_time"` (those means above the cumulative effect
#'   with its band, from `tidy(fit, "effect_over_time")`: columns `time` and
#'   `event_time` (both event time), `post`, `observed`, `counterfactual`,
#'   `effect`, `cumulative` (the mean gap summed over event times 0 to
#'   `time`), `conf.low`, `conf.high` (its band from the fit's replicates,
#'   by the rule of its other intervals; `NA` with `inference = "none"`)),
#'   `"factors"`, `"loadings"`, `"cv"` and `"status"` (the treatment
#'   pattern);
#' * [ife()]: `"factors"` (the default when r > 0), `"loadings"`, `"ic"`
#'   (the Bai and Ng criteria by r) and `"estimates"`.
#'
#' @param object A fit from [ife()] or [counterfactual()].
#' @param type Which plot; see Description.
#' @param ... Must be empty.
#' @return A ggplot.
#' @examples
#' set.seed(2)
#' d <- expand.grid(store = 1:30, week = 1:20)
#' lambda <- rnorm(30)[d$store]
#' d$promo <- as.integer(d$store <= 5 & d$week > 14)
#' d$sales <- 10 + lambda * cos(d$week / 4) + 2 * d$promo + rnorm(nrow(d), sd = 0.2)
#' fit <- counterfactual(sales ~ promo | store + week, d)
#' glance(fit)
#' tidy(fit, "cv")
#' plot(fit, "gap")
#' @name ife-plots
NULL

# --- counterfactual -------------------------------------------------------

#' @rdname ife-plots
#' @export
autoplot.mkt_counterfactual <- function(object, type = c("gap", "counterfactual",
                                                         "effect_over_time", "factors",
                                                         "loadings", "cv", "status"), ...) {
  check_dots(...)
  type <- check_choice(type)
  tabs <- object$tables
  switch(type,
    gap = {
      ev <- tabs$event
      p <- ggplot2::ggplot(ev, ggplot2::aes(x = .data$event_time, y = .data$estimate)) +
        ref_line("y") +
        start_line(-0.5)
      if (any(is.finite(ev$conf.low))) {
        p <- p + ggplot2::geom_ribbon(ggplot2::aes(ymin = .data$conf.low, ymax = .data$conf.high),
                                      fill = mkt_colours[["band"]], alpha = 0.5)
      }
      p + ggplot2::geom_line(colour = mkt_colours[["treated"]]) + event_time_axis() +
        ggplot2::geom_point(colour = mkt_colours[["treated"]]) +
        ggplot2::labs(x = "event time (0 = first treated period)", y = "Y - Y(0)",
                      title = "Gap between observed and imputed outcomes",
                      subtitle = interval_caption(object)) +
        theme_mkt()
    },
    counterfactual = {
      cp <- tabs$counterfactual
      long <- rbind(data.frame(event_time = cp$event_time, value = cp$observed, series = "observed"),
                    data.frame(event_time = cp$event_time, value = cp$counterfactual,
                               series = "imputed Y(0)"))
      long$series <- factor(long$series, levels = c("observed", "imputed Y(0)"))
      ggplot2::ggplot(long, ggplot2::aes(x = .data$event_time, y = .data$value,
                                         colour = .data$series, linetype = .data$series)) +
        start_line(-0.5) +
        ggplot2::geom_line() +
        ggplot2::scale_colour_manual(values = c(observed = mkt_colours[["treated"]],
                                                `imputed Y(0)` = mkt_colours[["synthetic"]])) +
        ggplot2::scale_linetype_manual(values = c(observed = "solid", `imputed Y(0)` = "dashed")) +
        ggplot2::labs(x = "event time", y = object$vars$outcome, colour = NULL, linetype = NULL,
                      title = "Treated units: observed and counterfactual means") +
        theme_mkt()
    },
    effect_over_time = plot_effect_over_time(
      tidy(object, "effect_over_time"), x_lab = "event time (0 = first treated period)",
      y_lab = paste("mean", object$vars$outcome), alpha = object$alpha,
      title = "Effect over time: treated units' mean and its counterfactual",
      counterfactual_label = "imputed Y(0)",
      band_note = if (object$options$inference == "none") {
        "no band: refit with inference = \"bootstrap\""
      } else {
        sprintf("from the %s replicates", object$options$inference)
      }),
    factors = plot_factors(tabs$factors, object$vars$time),
    loadings = plot_loadings(tabs$loadings),
    cv = plot_cv(tabs$cv),
    status = plot_status(object$panel)
  )
}

#' @export
print_details.mkt_counterfactual <- function(x, summary = FALSE, digits = 4, ...) {
  g <- x$glance
  att <- x$estimates[x$estimates$term == "ATT", ]
  tuning <- if (x$options$method == "mc") sprintf("lambda = %s", format_num(x$lambda, 4)) else
    sprintf("r = %d", x$r)
  cat("\n")
  rule <- if (identical(g$r_rule, "given")) "" else paste(" chosen by", g$r_rule)
  wrap_line(sprintf("ATT = %s over %d treated cells; %s%s; pre-period MSPE %s",
                    format(signif(att$estimate, 5)), as.integer(att$n_cells), tuning,
                    rule, format_num(g$pre_mspe, 4)))
  if (nrow(x$tables$placebo)) {
    wrap_line(sprintf("Placebo test (%d pre-period%s held out): mean gap %s%s",
                      x$options$placebo, if (x$options$placebo == 1L) "" else "s",
                      format_num(g$placebo_estimate, 3),
                      if (is.na(g$placebo_p.value)) "" else
                        paste0(", ", p_phrase(g$placebo_p.value))))
  }
  if (nrow(x$tables$equivalence)) {
    wrap_line(sprintf("Equivalence test (bound +/- %s): %s",
                      format_num(x$tables$equivalence$bound[1], 3),
                      p_phrase(g$equivalence_p.value)))
  }
  if (summary) {
    cat("\nBy event time (0 = first treated period):\n")
    print_table(x$tables$event, digits)
    if (nrow(x$tables$cv)) {
      cat("\nCross-validation (leave-block-out on pre-periods; smallest MSPE chosen):\n")
      print_table(x$tables$cv, digits)
    }
  }
  invisible(x)
}

# A data frame printed with numbers in fixed notation.
print_table <- function(df, digits = 4) {
  show <- df
  for (k in names(show)) {
    if (is.double(show[[k]])) show[[k]] <- format_num(show[[k]], digits)
  }
  print.data.frame(show, row.names = FALSE)
}

plot_factors <- function(df, time_name) {
  if (!nrow(df)) {
    abort_mkt("bad_argument", "The fit has no factors to plot (r = 0).")
  }
  ggplot2::ggplot(df, ggplot2::aes(x = .data$time, y = .data$value, colour = .data$factor)) +
    ggplot2::geom_line() +
    ggplot2::scale_colour_manual(values = series_colours(length(unique(df$factor)))) +
    ggplot2::labs(x = time_name, y = "factor value", colour = NULL, title = "Estimated factors") +
    theme_mkt()
}

plot_loadings <- function(df) {
  if (!nrow(df)) {
    abort_mkt("bad_argument", "The fit has no loadings to plot (r = 0).")
  }
  # Units of an ife() fit have no arm: one colour, no legend.
  arms <- "treated" %in% names(df) && any(df$treated)
  if (!arms) df$treated <- FALSE
  df$arm <- factor(ifelse(df$treated, "treated", "control"), levels = c("control", "treated"))
  wide <- stats::reshape(df[, c("unit", "factor", "value", "arm")], idvar = c("unit", "arm"),
                         timevar = "factor", direction = "wide")
  if (ncol(wide) < 4) {
    return(ggplot2::ggplot(df, ggplot2::aes(x = .data$value, fill = .data$arm)) +
      ggplot2::geom_histogram(bins = 30, alpha = 0.7, position = "identity") +
      ggplot2::scale_fill_manual(values = arm_colours(), drop = TRUE,
                                 guide = if (arms) "legend" else "none") +
      ggplot2::labs(x = "loading on f1", fill = NULL, title = "Estimated loadings") +
      theme_mkt())
  }
  # Treated units drawn last, on top of the controls.
  wide <- wide[order(wide$arm), , drop = FALSE]
  ggplot2::ggplot(wide, ggplot2::aes(x = .data$value.f1, y = .data$value.f2,
                                     colour = .data$arm)) +
    ggplot2::geom_point() +
    ggplot2::scale_colour_manual(values = arm_colours(), drop = TRUE,
                                 guide = if (arms) "legend" else "none") +
    ggplot2::labs(x = "loading on f1", y = "loading on f2", colour = NULL,
                  title = "Estimated loadings") +
    theme_mkt()
}

plot_cv <- function(cv) {
  if (!nrow(cv)) {
    abort_mkt("bad_argument", c("The fit has no cross-validation table.",
                                i = "Refit with {.code r = NULL} (or {.code lambda = NULL})."))
  }
  xv <- names(cv)[1]
  p <- ggplot2::ggplot(cv, ggplot2::aes(x = .data[[xv]], y = .data$mspe)) +
    ggplot2::geom_line() + ggplot2::geom_point(ggplot2::aes(colour = .data$selected), size = 2.5) +
    ggplot2::scale_colour_manual(values = c(`FALSE` = "grey40", `TRUE` = mkt_colours[["effect"]])) +
    ggplot2::labs(x = xv, y = "MSPE (held-out pre-period cells)", colour = "chosen",
                  title = "Cross-validation") +
    theme_mkt()
  if (xv == "lambda") p <- p + ggplot2::scale_x_log10()
  p
}

# --- ife -------------------------------------------------------------------

#' @rdname ife-plots
#' @export
autoplot.mkt_ife <- function(object, type = c("factors", "loadings", "ic", "estimates"), ...) {
  check_dots(...)
  if (missing(type) && object$r == 0L) type <- "estimates"
  type <- check_choice(type)
  switch(type,
    estimates = autoplot.mkt_fit(object),
    factors = plot_factors(object$tables$factors, object$vars$time),
    loadings = plot_loadings(object$tables$loadings),
    ic = {
      ic <- object$tables$ic
      if (!nrow(ic)) abort_mkt("bad_argument", "The fit was given r, so it has no criteria table.")
      long <- rbind(data.frame(r = ic$r, value = ic$IC_p1, criterion = "IC_p1"),
                    data.frame(r = ic$r, value = ic$IC_p2, criterion = "IC_p2"))
      ggplot2::ggplot(long, ggplot2::aes(x = .data$r, y = .data$value, colour = .data$criterion)) +
        ggplot2::geom_line() + ggplot2::geom_point() +
        ggplot2::scale_colour_manual(values = series_colours(2L)) +
        ggplot2::labs(x = "number of factors", y = "criterion", colour = NULL,
                      title = "Bai and Ng criteria") +
        theme_mkt()
    })
}

#' @export
print_details.mkt_ife <- function(x, summary = FALSE, digits = 4, ...) {
  g <- x$glance
  cat("\n")
  wrap_line(sprintf("r = %d (%s); sigma^2 = %s; %d iteration%s%s", x$r, g$r_rule,
                    format_num(x$sigma2, 4), x$iterations, if (x$iterations == 1L) "" else "s",
                    if (x$converged) "" else " (not converged)"))
  if (x$bias_correction != "none") {
    wrap_line(sprintf("Bias-corrected (%s): tidy(fit, \"bias\") gives the terms removed.",
                      x$bias_correction))
  }
  if (length(x$absorbed)) {
    wrap_line(sprintf("Absorbed by the fixed effects and dropped: %s",
                      paste(x$absorbed, collapse = ", ")))
  }
  if (summary && nrow(x$tables$ic)) {
    cat("\nBai and Ng (2002) criteria:\n")
    print_table(x$tables$ic, digits)
  }
  invisible(x)
}
