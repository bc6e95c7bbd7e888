# Presentation of the staggered-adoption fits: the details print() adds
# after the shared header and estimates, and the plots. Everything else
# (coef, vcov, confint, nobs, tidy, glance, print, summary) is the shared
# mkt_fit method (methods-fit.R).

#' Plots of staggered-adoption fits
#'
#' `plot()` and `autoplot()` of [staggered()], [aggregate()][aggregate.mkt_staggered],
#' [event_study()] and [bacon()] fits, drawn from `tidy()` so the same data can
#' be restyled:
#'
#' * a [staggered()] fit: the ATT(g,t) by period, one panel per cohort, with
#'   the uniform (or pointwise) band, pre-treatment cells in grey and a
#'   reference line at zero;
#' * an aggregation: the event-time, cohort or period effects with their
#'   band (the overall effect alone for `"simple"`), a reference line at zero
#'   and, for event times, a dashed line before adoption;
#' * an event study: the effects by event time with pointwise (thick) and
#'   uniform (thin) bands, a reference line at zero and a dashed line before
#'   adoption;
#' * a Bacon decomposition: each 2x2 estimate against its weight, by type of
#'   comparison, with the TWFE coefficient as a dashed line.
#'
#' @param object A fit.
#' @param ... Must be empty.
#' @return A ggplot.
#' @examples
#' mpdta$post <- as.integer(mpdta$first.treat > 0 & mpdta$year >= mpdta$first.treat)
#' fit <- staggered(lemp ~ post | countyreal + year, mpdta, n_draws = 0)
#' plot(fit)
#' plot(aggregate(fit, "event"))
#' @name staggered-plots
NULL

#' @rdname staggered-plots
#' @export
autoplot.mkt_staggered <- function(object, ...) {
  check_dots(...)
  td <- object$estimates
  td$phase <- ifelse(td$event >= 0, "post", "pre")
  td$group <- factor(format(td$group))
  ggplot2::ggplot(td, ggplot2::aes(x = .data$time, y = .data$estimate, colour = .data$phase)) +
    ref_line("y") +
    ggplot2::geom_pointrange(ggplot2::aes(ymin = .data$conf.low, ymax = .data$conf.high),
                             na.rm = TRUE) +
    ggplot2::facet_wrap(~group, ncol = 1, labeller = ggplot2::label_both) +
    ggplot2::scale_colour_manual(values = c(pre = mkt_colours[["pre"]],
                                            post = mkt_colours[["post"]])) +
    ggplot2::labs(x = object$vars$time, y = "ATT(g,t)", colour = NULL,
                  title = object$method, subtitle = interval_caption(object)) +
    theme_mkt()
}

#' @rdname staggered-plots
#' @export
autoplot.mkt_staggered_agg <- function(object, ...) {
  check_dots(...)
  td <- object$estimates
  if (nrow(td) > 1L) td <- td[-1, , drop = FALSE]
  xcol <- switch(object$type, event = "event", group = "group", calendar = "time",
                 simple = NULL)
  if (is.null(xcol)) {
    td$x <- td$term
    xlab <- NULL
  } else {
    td$x <- td[[xcol]]
    xlab <- switch(xcol, event = "periods since adoption", group = "cohort (first treated period)",
                   time = object$vars$time %||% "period")
  }
  td$phase <- factor(if (object$type == "event") ifelse(td$event >= 0, "post", "pre") else "post",
                     levels = c("pre", "post"))
  p <- ggplot2::ggplot(td, ggplot2::aes(x = .data$x, y = .data$estimate, colour = .data$phase)) +
    ref_line("y")
  if (object$type == "event") {
    p <- p + start_line(-0.5) + event_time_axis()
  }
  p +
    ggplot2::geom_pointrange(ggplot2::aes(ymin = .data$conf.low, ymax = .data$conf.high),
                             na.rm = TRUE) +
    ggplot2::scale_colour_manual(values = c(pre = mkt_colours[["pre"]],
                                            post = mkt_colours[["post"]]),
                                 guide = if (object$type == "event") "legend" else "none") +
    ggplot2::labs(x = xlab, y = "ATT", colour = NULL, title = object$method,
                  subtitle = interval_caption(object)) +
    theme_mkt()
}

#' @rdname staggered-plots
#' @export
autoplot.mkt_event_study <- function(object, ...) {
  check_dots(...)
  td <- object$estimates
  td$phase <- factor(ifelse(td$event >= 0, "post", "pre"), levels = c("pre", "post"))
  ggplot2::ggplot(td, ggplot2::aes(x = .data$event, y = .data$estimate, colour = .data$phase)) +
    ref_line("y") +
    start_line(-0.5) +
    ggplot2::geom_linerange(ggplot2::aes(ymin = .data$conf.low.uniform,
                                         ymax = .data$conf.high.uniform), na.rm = TRUE) +
    ggplot2::geom_linerange(ggplot2::aes(ymin = .data$conf.low, ymax = .data$conf.high),
                            linewidth = 1.2, na.rm = TRUE) +
    ggplot2::geom_point(size = 2, na.rm = TRUE) +
    event_time_axis() +
    ggplot2::scale_colour_manual(values = c(pre = mkt_colours[["pre"]],
                                            post = mkt_colours[["post"]])) +
    ggplot2::labs(x = "periods since adoption", y = "effect", colour = NULL,
                  title = object$method,
                  caption = "thick: pointwise band; thin: uniform band") +
    theme_mkt()
}

#' @rdname staggered-plots
#' @export
autoplot.mkt_bacon <- function(object, ...) {
  check_dots(...)
  td <- object$tables$comparisons
  ggplot2::ggplot(td, ggplot2::aes(x = .data$weight, y = .data$estimate, colour = .data$type,
                                   shape = .data$type)) +
    ggplot2::geom_hline(yintercept = object$twfe, linetype = "dashed") +
    ref_line("y") +
    ggplot2::geom_point(size = 2.5) +
    # Clean comparisons in the treated blue, the ones that use already
    # treated units as controls in red and orange.
    ggplot2::scale_colour_manual(values = c(
      `Treated vs Untreated` = mkt_colours[["treated"]],
      `Earlier vs Later Treated` = mkt_colours[["band"]],
      `Later vs Earlier Treated` = mkt_colours[["effect"]],
      `Later vs Always Treated` = mkt_colours[["synthetic"]])) +
    ggplot2::labs(x = "weight", y = "2x2 estimate", colour = NULL, shape = NULL,
                  title = object$method,
                  caption = sprintf("dashed line: TWFE = %s", format_num(object$twfe, 4))) +
    theme_mkt()
}

# --- printed details ------------------------------------------------------------

# The headline of a staggered() fit: its overall ATT, pointwise from the
# influence functions.
#' @export
print_headline.mkt_staggered <- function(x, digits = 4, ...) {
  o <- tryCatch(staggered_aggregate_fit(x, "simple", n_draws = 0L)$estimates,
                error = function(e) NULL)
  if (is.null(o) || is.na(o$estimate[1])) return(invisible(x))
  like <- c(o$estimate[1], o$conf.low[1], o$conf.high[1])
  cat(sprintf("\nOverall ATT (simple): %s (SE %s), %g%% interval [%s, %s]\n",
              format_col(o$estimate[1], digits, like = like),
              format_num(o$std.error[1], digits - 1L), 100 * (1 - x$alpha),
              format_col(o$conf.low[1], digits, like = like),
              format_col(o$conf.high[1], digits, like = like)))
  invisible(x)
}

# summary() of a staggered() fit: the cells aggregated by cohort and by
# event time (pointwise intervals from the influence functions), not the
# cells themselves.
#' @export
print_summary_estimates.mkt_staggered <- function(x, digits = 4, max_rows = 25, ...) {
  blocks <- list(group = "By cohort", event = "By event time")
  first <- TRUE
  for (type in names(blocks)) {
    agg <- tryCatch(staggered_aggregate_fit(x, type, n_draws = 0L), error = function(e) NULL)
    if (is.null(agg)) next
    agg$estimates <- agg$estimates[-1, , drop = FALSE]
    if (!first) cat("\n")
    first <- FALSE
    cat(sprintf("%s (aggregate(fit, \"%s\"); pointwise intervals):\n", blocks[[type]], type))
    print_estimates(agg, digits = digits, max_rows = max_rows)
  }
  invisible(x)
}

#' @export
print_details.mkt_staggered <- function(x, summary = FALSE, digits = 4, ...) {
  cat("\n")
  if (!is.na(x$crit)) {
    cat(sprintf("Uniform bands: sup-t critical value %s over %d cells.\n",
                format_num(x$crit, digits), sum(!is.na(x$boot_se))))
  }
  cells <- x$estimates
  na <- is.na(cells$estimate)
  if (any(na)) {
    cat(sprintf("%d cell%s NA: see the note column of tidy().\n", sum(na),
                if (sum(na) > 1L) "s are" else " is"))
  }
  if (length(x$dropped_units)) {
    why <- table(x$tables$dropped_units$reason)
    cat(sprintf("Units dropped: %s (tidy(fit, \"dropped_units\")).\n",
                paste0(as.integer(why), " ", names(why), collapse = "; ")))
  }
  if (summary) {
    cat(sprintf("Group-time cells: %d over %d cohorts, %d NA (tidy(fit) has them).\n",
                nrow(cells), x$n$cohorts, sum(na)))
    notes <- unique(cells$note[nzchar(cells$note)])
    for (nt in notes) {
      cat(strwrap(sprintf("%s: %s", nt, paste(cells$term[cells$note == nt], collapse = ", ")),
                  width = 78, exdent = 2), sep = "\n")
    }
  }
  invisible(x)
}

#' @export
print_details.mkt_staggered_agg <- function(x, summary = FALSE, digits = 4, ...) {
  if (!is.na(x$crit)) {
    cat(sprintf("\nDetail rows: uniform band, sup-t critical value %s; overall: pointwise.\n",
                format_num(x$crit, digits)))
  }
  invisible(x)
}

#' @export
print_details.mkt_event_study <- function(x, summary = FALSE, digits = 4, ...) {
  cat("\n")
  pt <- x$pretest
  if (pt$df > 0) {
    how <- if (identical(pt$method, "chi2")) "chi-squared reference" else
      sprintf("%s, %s draws", pt$method, format(pt$n_draws, big.mark = ","))
    text <- sprintf("Pre-trend Wald test: chi2(%d) = %s, %s by %s.", pt$df,
                    format_num(pt$statistic, digits), p_phrase(pt$p.value), how)
    # The chi-squared reference rejects too often once leads are not few
    # against clusters (see ?event_study, Pre-trend test).
    G <- x$n$clusters %||% NA
    if (identical(pt$method, "chi2") && is.finite(G) && pt$df > G / 20) {
      text <- paste(text, sprintf(paste(
        "With %d leads from %s clusters this p-value is too small under the null;",
        "method = \"imputation\", \"sa\" or \"twfe\" tests them by a wild cluster",
        "bootstrap."),
        pt$df, format(G, big.mark = ",")))
    }
    cat(strwrap(text, width = 80, exdent = 2), sep = "\n")
  } else {
    cat("Pre-trend Wald test: no pre-period estimate.\n")
  }
  if (!is.na(x$crit)) {
    cat(sprintf("Uniform band: sup-t critical value %s (conf.low.uniform, conf.high.uniform).\n",
                format_num(x$crit, digits)))
  }
  w <- x$window
  if (!is.null(w) && length(w$dropped)) {
    text <- sprintf(paste(
      "Event times %s left out: fewer than %s of the treated units are observed",
      "at each; min_e = -Inf, max_e = Inf keeps them."),
      format_runs(w$dropped), sprintf("%g%%", 100 * w$share))
    cat(strwrap(text, width = 80), sep = "\n")
  }
  invisible(x)
}

#' @export
print_details.mkt_bacon <- function(x, summary = FALSE, digits = 4, ...) {
  g <- x$glance
  cat(sprintf("\nTWFE = %s from %d 2x2 comparisons (tidy(fit, \"comparisons\")).\n",
              format_num(g$twfe, digits), g$n_comparisons))
  cat(sprintf("Weight on comparisons with already-treated controls: %s.\n",
              format_num(g$weight_already_treated_controls, digits)))
  if (g$n_dropped_units) {
    cat(sprintf("%d units with missing periods dropped.\n", g$n_dropped_units))
  }
  invisible(x)
}
