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
#'   `"placebo_series"`, `"placebo"`), so it can be restyled or redrawn.
#'   In the placebo plot the vertical scale is set by the treated unit and
#'   the placebos whose pre-period MSPE is at most five times the treated
#'   unit's (Abadie et al. 2010); worse-fitted placebos run off the plot.
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
#' @export
autoplot.mkt_synth <- function(object, type = c("trajectory", "gap", "placebo", "weights", "ratio"),
                               ...) {
  check_dots(...)
  type <- check_choice(type)
  x <- object
  if (type %in% c("trajectory", "gap")) return(plot_synth_series(x, type))
  if (type == "weights") {
    w <- x$tables$weights
    w <- w[w$estimate > 1e-6, , drop = FALSE]
    w$term <- factor(w$term, levels = rev(w$term))
    return(ggplot2::ggplot(w, ggplot2::aes(x = .data$estimate, y = .data$term)) +
      ggplot2::geom_col(fill = mkt_colours[["synthetic"]]) +
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
  if (type == "placebo") return(plot_synth_placebo(x, p_text))
  pl <- x$tables$placebo
  pl <- pl[pl$kept, , drop = FALSE]
  pl$unit <- factor(pl$unit, levels = pl$unit[order(pl$ratio)])
  ggplot2::ggplot(pl, ggplot2::aes(x = .data$ratio, y = .data$unit, fill = .data$treated)) +
    ggplot2::geom_col() +
    ggplot2::scale_fill_manual(values = c(`FALSE` = mkt_colours[["control"]],
                                          `TRUE` = mkt_colours[["effect"]]), guide = "none") +
    ggplot2::labs(x = "post/pre-period RMSPE ratio", y = NULL, title = "RMSPE ratios",
                  subtitle = p_text) +
    theme_mkt()
}

plot_synth_series <- function(x, type) {
  s <- x$tables$series
  start <- unique(s$time[s$event_time == 0])
  several <- length(unique(s$fit)) > 1L
  vline <- ggplot2::geom_vline(xintercept = start, linetype = "dashed",
                               colour = mkt_colours[["pre"]])
  facet <- if (several) ggplot2::facet_wrap(ggplot2::vars(.data$fit))
  if (type == "gap") {
    return(ggplot2::ggplot(s, ggplot2::aes(x = .data$time, y = .data$gap)) +
      ggplot2::geom_hline(yintercept = 0, colour = mkt_colours[["control"]]) + vline +
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
    vline + ggplot2::geom_line() + facet +
    ggplot2::scale_colour_manual(values = mkt_colours[c("treated", "synthetic")]) +
    ggplot2::scale_linetype_manual(values = c(treated = "solid", synthetic = "dashed")) +
    ggplot2::labs(x = x$vars$time, y = x$vars$outcome, colour = NULL, linetype = NULL,
                  title = "Treated and synthetic trajectories", subtitle = x$method) +
    theme_mkt()
}

# The placebo gaps in grey with the treated unit's gap drawn last, on top.
# The vertical range is that of the treated gap and of the placebos fitted
# at most five times worse (in pre-period MSPE) than the treated unit, so a
# few badly fitted placebos do not flatten the picture.
plot_synth_placebo <- function(x, p_text) {
  tab <- x$tables$placebo
  ps <- x$tables$placebo_series
  ps <- ps[ps$kept, , drop = FALSE]
  tr_mspe <- tab$pre_rmspe[tab$treated]^2
  close <- tab$unit[tab$kept & tab$pre_rmspe^2 <= 5 * tr_mspe]
  lim <- range(ps$gap[ps$unit %in% close], na.rm = TRUE)
  n_out <- sum(tab$kept) - length(close)
  sub <- if (n_out > 0) {
    sprintf("%s; %d placebo%s fitted over 5x worse before treatment run off the scale",
            p_text, n_out, if (n_out > 1) "s" else "")
  } else {
    p_text
  }
  treated <- ps[ps$treated, , drop = FALSE]
  placebos <- ps[!ps$treated, , drop = FALSE]
  ggplot2::ggplot(placebos, ggplot2::aes(x = .data$time, y = .data$gap, group = .data$unit)) +
    ggplot2::geom_hline(yintercept = 0, colour = mkt_colours[["pre"]]) +
    ggplot2::geom_vline(xintercept = unique(ps$time[ps$event_time == 0]), linetype = "dashed",
                        colour = mkt_colours[["pre"]]) +
    ggplot2::geom_line(colour = mkt_colours[["control"]], linewidth = 0.3, alpha = 0.7) +
    ggplot2::geom_line(data = treated, colour = mkt_colours[["effect"]], linewidth = 0.9) +
    ggplot2::coord_cartesian(ylim = lim) +
    ggplot2::labs(x = x$vars$time, y = paste("gap in", x$vars$outcome),
                  title = sprintf("Placebos in space: %s (red) and %d placebos",
                                  tab$unit[tab$treated], length(unique(placebos$unit))),
                  subtitle = paste(strwrap(sub, 75), collapse = "\n")) +
    theme_mkt()
}
