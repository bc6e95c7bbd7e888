#' Weights and plots of a synthetic control fit
#'
#' A [synth()] fit has every method shared by the package's fits
#' ([mkt_fit]: `coef()`, `vcov()`, `confint()`, `nobs()`, `tidy()`,
#' `glance()`, `print()`, `summary()`); these are the ones of its own.
#'
#' * `weights()`: named donor weights summing to 1 (averaged over treated
#'   units when there are several, weighted by their number); `type =
#'   "time"` gives the pre-period time weights of `"sdid"` and `"did"`.
#' * `plot()` and `autoplot()`: `type = "trajectory"` (treated and
#'   synthetic outcome), `"gap"` (treated minus synthetic), `"placebo"` (the
#'   treated unit's gap drawn over the placebos' gaps; needs `inference =
#'   "placebo"` with `"sc"` or `"asc"`), `"weights"` or `"ratio"` (post/pre
#'   RMSPE ratios of the treated unit and the placebos). Each plot is drawn
#'   from a table that `tidy(fit, what)` returns (`"series"`, `"weights"`,
#'   `"effect_over_time"`, `"placebo_series"`, `"placebo"`), so it can be restyled or redrawn.
#'   In the placebo plot the treated unit is drawn last, on top, and the
#'   placebos whose pre-period MSPE is more than `drop_poor_placebos` (5)
#'   times the treated unit's are left out (Abadie et al. 2010); the caption
#'   says how many. `"effect_over_time"` draws the treated and synthetic
#'   paths above the cumulative effect with its band, from
#'   `tidy(fit, "effect_over_time")` (columns `fit`, `time`, `event_time`,
#'   `post`, `observed`, `counterfactual`, `effect`, `cumulative`,
#'   `conf.low`, `conf.high`); the band, with `inference = "placebo"`, is
#'   the cumulative gap minus the `alpha/2` and `1 - alpha/2` quantiles of
#'   the kept placebos' cumulative gaps (the inverted permutation test of a
#'   constant cumulative effect), `NA` with other inference.
#' * `summary()` prints, after the estimate, the ATT of each treated unit or
#'   cohort and the balance table of Abadie et al. (2010, Table 1): treated,
#'   synthetic and donor average of each predictor.
#'
#' @param object A [synth()] fit.
#' @param type For `weights()`: `"unit"` or `"time"`. For `autoplot()` (and
#'   `plot()`): see above.
#' @param ... Must be empty.
#' @return `weights()` a named numeric vector; `autoplot()` a ggplot.
#' @examples
#' fit <- synth(packspercapita ~ treated | state + year, prop99)
#' head(sort(weights(fit), decreasing = TRUE))
#' tidy(fit, "weights")[1:5, ]
#' glance(fit)
#' plot(fit, "gap")
#' plot(fit, "effect_over_time")
#' @name synth-methods
NULL

#' @rdname synth-methods
#' @importFrom stats weights
#' @export
weights.mkt_synth <- function(object, type = c("unit", "time"), ...) {
  check_dots(...)
  type <- check_choice(type)
  if (type == "unit") return(object$weights)
  if (is.null(object$time_weights)) {
    abort_mkt("not_available", c(
      "A {.code method = \"{object$spec$method}\"} fit has no time weights.",
      i = "Time weights come with {.code method = \"sdid\"} or {.code \"did\"}."))
  }
  object$time_weights
}

#' @export
print_details.mkt_synth <- function(x, summary = FALSE, digits = 4, ...) {
  gl <- x$glance
  cat(sprintf("\nPre-period RMSPE %s, post-period RMSPE %s%s\n", format_num(gl$pre_rmspe, digits),
              format_num(gl$post_rmspe, digits), if (gl$converged) "" else " (not converged)"))
  if (x$spec$method != "did") {
    w <- x$weights[abs(x$weights) > 1e-6]
    w <- w[order(-abs(w))]
    top <- utils::head(w, 8)
    items <- paste0(names(top), "\u00a0", formatC(top, format = "f", digits = 3))
    items[-length(items)] <- paste0(items[-length(items)], ",")
    if (length(w) > 8) items <- c(items, sprintf("(+%d\u00a0more)", length(w) - 8))
    lines <- strwrap(paste(c("Donor weights:", items), collapse = " "), width = 78, exdent = 2)
    cat(paste0(gsub("\u00a0", " ", lines, fixed = TRUE), "\n"), sep = "")
  }
  if (!is.null(x$ridge_lambda)) {
    if (all(is.na(x$ridge_lambda))) {
      cat("Ridge penalty: none (the donors' pre-period outcomes do not differ)\n")
    } else {
      cat(sprintf("Ridge penalty (leave-one-donor-out): %s\n",
                  paste(format_num(x$ridge_lambda, digits), collapse = ", ")))
    }
  }
  if (!is.null(x$pooled_imbalance)) {
    cat(sprintf("Pooled pre-period imbalance (RMSE of the average): %s\n",
                format_num(x$pooled_imbalance, digits)))
  }
  if (!is.na(gl$v_loss)) {
    cat(sprintf("Nested V search: pre-period MSPE %s%s\n", format_num(gl$v_loss, digits + 1L),
                if (isFALSE(gl$v_converged)) ", not converged" else ""))
    if (isFALSE(gl$v_converged)) {
      cat(sprintf("  (stopped at its cap of %d evaluations a run; raise max_iter)\n",
                  as.integer(x$v_search$max_eval)))
    }
  }
  if (summary) {
    fits <- x$tables$fits
    if (nrow(fits) > 1L) {
      cat("\nATT by fit:\n")
      print.data.frame(fits, row.names = FALSE, digits = digits)
    }
    cat("\nBalance (treated, synthetic, donor average):\n")
    print.data.frame(x$tables$balance, row.names = FALSE, digits = digits)
  }
  invisible(x)
}

#' @rdname synth-methods
#' @param drop_poor_placebos For `type = "placebo"`: placebos whose
#'   pre-period MSPE is more than this multiple of the treated unit's are
#'   left out of the plot (Abadie et al. 2010 show 20, 5 and 2; `Inf` draws
#'   every placebo the fit kept). The caption says how many were left out.
#' @export
autoplot.mkt_synth <- function(object, type = c("trajectory", "gap", "effect_over_time",
                                                "placebo", "weights", "ratio"),
                               drop_poor_placebos = 5, ...) {
  check_dots(...)
  type <- check_choice(type)
  x <- object
  if (type %in% c("trajectory", "gap")) return(plot_synth_series(x, type))
  if (type == "effect_over_time") {
    tab <- tidy(x, "effect_over_time")
    note <- if (is.null(x$tables$placebo)) {
      paste("no band: it needs placebos in space (method = \"sc\" or \"asc\" with",
            "inference = \"placebo\" and one treated unit)")
    } else {
      "inverting the permutation test over the placebos' cumulative gaps"
    }
    return(plot_effect_over_time(tab, x_lab = x$vars$time, y_lab = x$vars$outcome,
                                 title = paste("Effect over time:", x$method), alpha = x$alpha,
                                 observed_label = "treated",
                                 counterfactual_label = "synthetic", band_note = note))
  }
  if (type == "weights") {
    w <- x$tables$weights
    w <- w[w$estimate > 1e-6, , drop = FALSE]
    w$term <- factor(w$term, levels = rev(w$term))
    return(ggplot2::ggplot(w, ggplot2::aes(x = .data$estimate, y = .data$term)) +
      ggplot2::geom_col(fill = mkt_colours[["synthetic"]]) +
      ggplot2::scale_y_discrete(breaks = thin_labels(rev(levels(w$term)), 25L)) +
      ggplot2::labs(x = "donor weight", y = NULL, title = "Donor weights",
                    subtitle = x$method) +
      theme_mkt())
  }
  if (is.null(x$tables$placebo)) {
    abort_mkt("not_available", c(
      "{.code type = \"{type}\"} needs placebos in space.",
      i = "Refit with {.code method = \"sc\", inference = \"placebo\"}."))
  }
  p_text <- sprintf("permutation p = %s", format_num(x$estimates$p.value[1], 3))
  if (type == "placebo") {
    check_multiple(drop_poor_placebos, "drop_poor_placebos")
    return(plot_synth_placebo(x, p_text, drop_poor_placebos))
  }
  pl <- x$tables$placebo
  pl <- pl[pl$kept, , drop = FALSE]
  pl$unit <- factor(pl$unit, levels = pl$unit[order(pl$ratio)])
  pl$arm <- ifelse(pl$treated, "treated", "control")
  ggplot2::ggplot(pl, ggplot2::aes(x = .data$ratio, y = .data$unit, fill = .data$arm)) +
    ggplot2::geom_col() +
    ggplot2::scale_fill_manual(values = arm_colours(), guide = "none") +
    ggplot2::scale_y_discrete(breaks = union(thin_labels(levels(pl$unit), 25L),
                                             as.character(pl$unit[pl$treated]))) +
    ggplot2::labs(x = "post/pre-period RMSPE ratio", y = NULL, title = "RMSPE ratios",
                  subtitle = p_text) +
    theme_mkt()
}

plot_synth_series <- function(x, type) {
  s <- x$tables$series
  start <- start_between(s$time, min(s$time[s$event_time == 0]))
  several <- length(unique(s$fit)) > 1L
  facet <- if (several) ggplot2::facet_wrap(ggplot2::vars(.data$fit))
  if (type == "gap") {
    return(ggplot2::ggplot(s, ggplot2::aes(x = .data$time, y = .data$gap)) +
      ref_line("y") + start_line(start) +
      ggplot2::geom_line(colour = mkt_colours[["effect"]]) + facet +
      ggplot2::labs(x = x$vars$time, y = paste("gap in", x$vars$outcome),
                    title = "Treated minus synthetic", subtitle = x$method) +
      theme_mkt())
  }
  n <- nrow(s)
  long <- new_df(fit = rep(s$fit, 2L), time = rep(s$time, 2L),
                 value = c(s$treated, s$synthetic),
                 series = rep(c("treated", "synthetic"), each = n))
  ggplot2::ggplot(long, ggplot2::aes(x = .data$time, y = .data$value, colour = .data$series,
                                     linetype = .data$series)) +
    start_line(start) + ggplot2::geom_line() + facet +
    ggplot2::scale_colour_manual(values = mkt_colours[c("treated", "synthetic")]) +
    ggplot2::scale_linetype_manual(values = c(treated = "solid", synthetic = "dashed")) +
    ggplot2::labs(x = x$vars$time, y = x$vars$outcome, colour = NULL, linetype = NULL,
                  title = "Treated and synthetic trajectories", subtitle = x$method) +
    theme_mkt()
}

# The placebo gaps in grey with the treated unit's gap drawn last, on top.
# Placebos whose pre-period MSPE is more than `drop` times the treated
# unit's are left out (Abadie et al. 2010): their post-period gaps say
# nothing about the effect and would set the scale. The caption counts them.
plot_synth_placebo <- function(x, p_text, drop = 5) {
  tab <- x$tables$placebo
  ps <- x$tables$placebo_series
  tr <- tab$unit[tab$treated]
  tr_mspe <- tab$pre_rmspe[tab$treated]^2
  candidates <- tab[tab$kept & !tab$treated, , drop = FALSE]
  shown <- candidates$unit[candidates$pre_rmspe^2 <= drop * tr_mspe]
  n_out <- nrow(candidates) - length(shown)
  treated <- ps[ps$treated, , drop = FALSE]
  placebos <- ps[!ps$treated & ps$unit %in% shown, , drop = FALSE]
  rule <- if (is.infinite(drop)) "every placebo the fit kept is drawn" else
    sprintf("%d of %d placebos left out: pre-period MSPE over %sx %s's (drop_poor_placebos = %s)",
            n_out, nrow(candidates), format(drop), tr, format(drop))
  ggplot2::ggplot(placebos, ggplot2::aes(x = .data$time, y = .data$gap, group = .data$unit)) +
    ref_line("y") +
    start_line(start_between(ps$time, min(ps$time[ps$event_time == 0]))) +
    ggplot2::geom_line(colour = mkt_colours[["control"]], linewidth = 0.3, alpha = 0.7) +
    ggplot2::geom_line(data = treated, colour = mkt_colours[["treated"]], linewidth = 1) +
    ggplot2::labs(x = x$vars$time, y = paste("gap in", x$vars$outcome),
                  title = sprintf("Placebos in space: %s (blue) and %d placebos (grey)",
                                  tr, length(shown)),
                  subtitle = p_text, caption = paste(strwrap(rule, 90), collapse = "\n")) +
    theme_mkt()
}
