# print, tidy, glance and plot for honest_sensitivity() results.

#' Methods for sensitivity analyses of parallel trends
#'
#' `tidy()` returns one row for the conventional interval (`method =
#' "original"`, `M = NA`) and one per value of `M`, with `term`, `M`,
#' `conf.low`, `conf.high`, `method` and `open` (the set reached the end of
#' its grid). `glance()` gives the target's estimate and standard error, the
#' breakdown value and the settings. `plot()` draws the intervals against
#' `M` from `tidy()`.
#'
#' @param x A result of [honest_sensitivity()].
#' @param ... Unused.
#' @return `tidy()` and `glance()`: data frames; `plot()`: a ggplot.
#' @name mkt_honest-methods
NULL

#' @rdname mkt_honest-methods
#' @export
tidy.mkt_honest <- function(x, ...) {
  x$table
}

#' @rdname mkt_honest-methods
#' @export
glance.mkt_honest <- function(x, ...) {
  data.frame(type = x$type, method = x$method, estimate = x$estimate,
             std.error = x$std.error, breakdown = x$breakdown, n_pre = x$n_pre,
             n_post = x$n_post, alpha = x$alpha, stringsAsFactors = FALSE)
}

#' @rdname mkt_honest-methods
#' @export
print.mkt_honest <- function(x, ...) {
  label <- if (x$type == "smoothness") "smoothness (Delta^SD(M))" else
    "relative magnitudes (Delta^RM(Mbar))"
  cat("Sensitivity to violations of parallel trends:", label, "\n")
  cat(sprintf("Target: %s; %d pre-periods, %d post-periods; %s sets at level %g\n",
              x$table$term[1], x$n_pre, x$n_post, x$method, 1 - x$alpha))
  cat(sprintf("Estimate %.4g (SE %.4g)\n", x$estimate, x$std.error))
  tab <- x$table
  tab$M <- ifelse(is.na(tab$M), "-", format(signif(tab$M, 4)))
  print.data.frame(tab[c("M", "conf.low", "conf.high", "method")], row.names = FALSE,
                   digits = 4)
  bd <- x$breakdown
  cat("Breakdown value:", if (is.na(bd)) "none (the conventional interval already contains 0)" else
    if (is.infinite(bd)) "not reached" else format(signif(bd, 3)), "\n")
  invisible(x)
}

#' @rdname mkt_honest-methods
#' @export
plot.mkt_honest <- function(x, ...) {
  td <- tidy(x)
  step <- if (nrow(td) > 2) min(diff(td$M[-1])) else max(td$M[-1], 1)
  td$position <- ifelse(is.na(td$M), min(td$M, na.rm = TRUE) - step, td$M)
  td$set <- ifelse(td$method == "original", "conventional", "robust")
  xlab <- if (x$type == "smoothness") "M (bound on changes in the slope of the violation)" else
    "Mbar (post-period violations relative to the largest pre-period one)"
  p <- ggplot2::ggplot(td, ggplot2::aes(x = .data$position, colour = .data$set)) +
    ggplot2::geom_hline(yintercept = 0, colour = "grey50") +
    ggplot2::geom_errorbar(ggplot2::aes(ymin = .data$conf.low, ymax = .data$conf.high),
                           width = step / 3, na.rm = TRUE) +
    ggplot2::scale_colour_manual(values = c(conventional = "grey40", robust = "#08519c")) +
    ggplot2::labs(x = xlab, y = td$term[1], colour = NULL,
                  title = "Robust confidence sets (Rambachan and Roth)") +
    ggplot2::theme_minimal()
  if (is.finite(x$breakdown)) {
    p <- p + ggplot2::geom_vline(xintercept = x$breakdown, linetype = "dashed", colour = "#cb181d")
  }
  p
}
