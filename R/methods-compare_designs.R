# Presentation of compare_designs() results: tables and the power plot.

#' Methods for design comparisons
#'
#' `tidy()` returns the power curves (`what = "power"`) or the one-row
#' summaries (`"summary"`); `glance()` the summaries; `print()` a table of
#' MDE, A/A rate, volume and cost by design; `plot()` the power curves with
#' the A/A point of each design, the nominal level and the target power.
#'
#' @param x,object A comparison from [compare_designs()].
#' @param what Which table `tidy()` returns.
#' @param ... Must be empty.
#' @return `tidy()` and `glance()` data frames, `plot()` a ggplot,
#'   `print()` its argument invisibly.
#' @name design-comparison-methods
NULL

#' @rdname design-comparison-methods
#' @export
tidy.mkt_design_comparison <- function(x, what = c("power", "summary"), ...) {
  check_dots(...)
  what <- check_choice(what)
  if (what == "power") x$power else x$summary
}

#' @rdname design-comparison-methods
#' @export
glance.mkt_design_comparison <- function(x, ...) {
  check_dots(...)
  x$summary
}

#' @rdname design-comparison-methods
#' @export
print.mkt_design_comparison <- function(x, ...) {
  check_dots(...)
  s <- x$summary
  pct <- function(v) ifelse(is.na(v), "not reached", paste0(format_num(100 * v, 3), "%"))
  cat_wrapped(c(
    sprintf("Design comparison: %d treated markets, %d-period test, %d windows (%s to %s)",
            x$n_treated, x$test_length, nrow(x$windows), format(x$windows$start[1]),
            format(utils::tail(x$windows$end, 1))),
    sprintf("  MDE at %s power; A/A = rejection rate at zero effect (nominal %s)",
            pct(x$target_power), format(x$alpha))))
  cat("\n")
  tab <- data.frame(
    design = s$design, share = paste0(format_num(100 * s$share, 3), "%"),
    MDE = ifelse(s$mde_reached, pct(s$mde), paste0(">", pct(max(x$effect)))),
    `A/A (SE)` = sprintf("%s (%s)", format_num(s$aa_rejection, 3), format_num(s$aa_se, 2)),
    sims = s$n_sims, seen = s$windows_seen,
    `incr. at MDE` = format_num(s$incremental_at_mde, 4),
    cost = format_num(s$cost, 4), check.names = FALSE, stringsAsFactors = FALSE)
  print(tab, row.names = FALSE, right = FALSE)
  cat("\nTreated markets:\n")
  cat(paste0(strwrap(paste0(s$design, ": ", s$markets), width = 78, exdent = 4), "\n"), sep = "")
  cat("\nPower by lift:\n")
  p <- x$power
  wide <- stats::reshape(p[, c("design", "effect", "power")], idvar = "effect",
                         timevar = "design", direction = "wide")
  names(wide) <- sub("^power\\.", "", names(wide))
  wide$effect <- paste0(format_num(100 * wide$effect, 3), "%")
  for (d in setdiff(names(wide), "effect")) wide[[d]] <- format_num(wide[[d]], 3)
  print(wide, row.names = FALSE, right = FALSE)
  if (any(s$windows_seen > 0)) {
    cat(paste0(strwrap(sprintf(
      "seen: windows the selection ranked on (its A/A there is optimistic; glance(x$designs$selection) gives the held-out rate)"),
      width = 78), "\n"), sep = "")
  }
  invisible(x)
}

#' @rdname design-comparison-methods
#' @export
plot.mkt_design_comparison <- function(x, ...) {
  autoplot(x, ...)
}

#' @rdname design-comparison-methods
#' @export
autoplot.mkt_design_comparison <- function(object, ...) {
  check_dots(...)
  d <- object$power
  d$effect <- 100 * d$effect
  d$design <- factor(d$design, levels = c("randomized", "selected", "synthetic"))
  aa <- d[d$effect == 0, , drop = FALSE]
  dodge <- ggplot2::position_dodge(width = 0.04 * diff(range(d$effect)))
  cols <- c(randomized = "grey45", selected = mkt_colours[["treated"]],
            synthetic = mkt_colours[["synthetic"]])
  ggplot2::ggplot(d, ggplot2::aes(x = .data$effect, y = .data$power, colour = .data$design)) +
    ggplot2::geom_hline(yintercept = object$target_power, linetype = "dashed", colour = "grey40") +
    ggplot2::geom_hline(yintercept = object$alpha, linetype = "dotted", colour = "grey40") +
    ggplot2::geom_line(linewidth = 0.7, position = dodge) +
    ggplot2::geom_linerange(ggplot2::aes(ymin = pmax(0, .data$power - 2 * .data$mc_se),
                                         ymax = pmin(1, .data$power + 2 * .data$mc_se)),
                            linewidth = 0.5, alpha = 0.6, position = dodge) +
    ggplot2::geom_point(size = 1.6, position = dodge) +
    ggplot2::geom_point(data = aa, shape = 21, size = 3.2, fill = "white", stroke = 1,
                        position = dodge) +
    ggplot2::scale_colour_manual(values = cols, name = NULL) +
    ggplot2::scale_y_continuous(limits = c(0, 1)) +
    ggplot2::labs(x = "lift on the treated markets (%)", y = "power",
                  title = sprintf("Power of %d-market designs on %d historical windows",
                                  object$n_treated, nrow(object$windows)),
                  subtitle = "open circles: A/A rate (effect 0); dotted: nominal level; dashed: target power; bars: 2 MC SE") +
    theme_mkt()
}
