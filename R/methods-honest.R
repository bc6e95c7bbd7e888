# Presentation of honest_sensitivity() fits: the details print() adds after
# the shared header and estimates, and the plot. Everything else is the
# shared mkt_fit method (methods-fit.R).

#' Plot of a sensitivity analysis of parallel trends
#'
#' `plot()` and `autoplot()` of an [honest_sensitivity()] fit draw the
#' conventional interval and the robust set at each `M` from `tidy()`, with
#' a reference line at zero and the breakdown value as a dashed line.
#'
#' @param object A result of [honest_sensitivity()].
#' @param ... Must be empty.
#' @return A ggplot.
#' @examples
#' mpdta$post <- as.integer(mpdta$first.treat > 0 & mpdta$year >= mpdta$first.treat)
#' es <- event_study(lemp ~ post | countyreal + year, mpdta, method = "sa")
#' plot(honest_sensitivity(es, "smoothness", M = c(0, 0.01, 0.02)))
#' @name mkt_honest-plot
NULL

#' @rdname mkt_honest-plot
#' @export
autoplot.mkt_honest <- function(object, ...) {
  check_dots(...)
  td <- object$estimates
  m <- td$M[!is.na(td$M)]
  step <- if (length(m) > 1L) min(diff(m)) else max(m, 1)
  td$position <- ifelse(is.na(td$M), min(m) - step, td$M)
  td$set <- ifelse(td$method == "original", "conventional", "robust")
  xlab <- if (object$type == "smoothness") "M (bound on changes in the slope of the violation)" else
    "Mbar (post-period violations relative to the largest pre-period one)"
  p <- ggplot2::ggplot(td, ggplot2::aes(x = .data$position, colour = .data$set)) +
    ref_line("y") +
    ggplot2::geom_errorbar(ggplot2::aes(ymin = .data$conf.low, ymax = .data$conf.high),
                           width = step / 3, na.rm = TRUE) +
    ggplot2::scale_colour_manual(values = c(conventional = mkt_colours[["pre"]],
                                            robust = mkt_colours[["post"]])) +
    ggplot2::labs(x = xlab, y = td$target[1], colour = NULL,
                  title = "Robust confidence sets (Rambachan and Roth)",
                  subtitle = interval_caption(object)) +
    theme_mkt()
  if (is.finite(object$breakdown)) {
    p <- p + ggplot2::geom_vline(xintercept = object$breakdown, linetype = "dashed",
                                 colour = mkt_colours[["effect"]])
  }
  p
}

#' @export
print_details.mkt_honest <- function(x, summary = FALSE, digits = 4, ...) {
  bd <- x$breakdown
  cat(sprintf("\nTarget: %s; %d pre-periods, %d post-periods.\n", x$estimates$target[1],
              x$n_pre, x$n_post))
  if (!is.null(x$restated)) {
    cat(sprintf("%s restated against event time -1 (?honest_sensitivity).\n",
                x$restated))
  }
  cat("Breakdown value: ", if (is.na(bd)) {
    "none (the conventional interval already contains 0)"
  } else if (is.infinite(bd)) {
    "not reached"
  } else {
    format_num(bd, 3)
  }, "\n", sep = "")
  if (any(x$estimates$open)) {
    cat("Some sets reach the end of their grid (column open): widen grid_lb/grid_ub.\n")
  }
  invisible(x)
}
