#' Methods for synthetic designs
#'
#' `print()` shows the treated markets, the largest control weights and the
#' fit; `tidy()` returns the weights of every market (`what = "weights"`),
#' the treated, control and population paths (`"series"`) or the value
#' reached from each start of the swap search (`"search"`); `glance()` one
#' row of counts, objectives and RMSEs; `plot()` the paths over the fit and
#' blank periods (`type = "paths"`) or the weights (`type = "weights"`).
#'
#' @param x,object A design from [synthetic_design()].
#' @param what Which table `tidy()` returns.
#' @param type Which plot.
#' @param ... Must be empty.
#' @return `tidy()` and `glance()` data frames, `plot()` a ggplot,
#'   `print()` its argument invisibly.
#' @name synthetic_design-methods
NULL

#' @rdname synthetic_design-methods
#' @export
tidy.mkt_synthetic_design <- function(x, what = c("weights", "series", "search"), ...) {
  check_dots(...)
  what <- check_choice(what)
  switch(what,
    weights = x$weights,
    series = x$series,
    search = {
      if (is.null(x$search$starts)) {
        abort_mkt("not_available", c(
          "The design was found by an exhaustive search, which has no starts.",
          i = "{.code tidy(design, \"search\")} lists the swap search's starts; {.code glance(design)} gives the number of sets scored."
        ))
      }
      x$search$starts
    })
}

#' @rdname synthetic_design-methods
#' @export
glance.mkt_synthetic_design <- function(x, ...) {
  check_dots(...)
  wt <- x$weights
  data.frame(n_markets = x$n_markets, n_treated = sum(wt$w > 0),
             n_controls = sum(wt$v > 0), n_fit = length(x$fit_periods),
             n_blank = length(x$blank_periods), test_length = x$test_length,
             objective = unname(x$objective["total"]),
             objective_treated = unname(x$objective["treated"]),
             objective_control = unname(x$objective["control"]),
             rmse_fit = unname(x$rmse["fit"]), rmse_blank = unname(x$rmse["blank"]),
             search = x$search$method, n_scored = x$search$n_scored,
             alpha = x$alpha, stringsAsFactors = FALSE)
}

#' @rdname synthetic_design-methods
#' @export
print.mkt_synthetic_design <- function(x, ...) {
  check_dots(...)
  g <- glance.mkt_synthetic_design(x)
  wt <- x$weights
  tr <- wt[wt$w > 0, , drop = FALSE]
  ct <- wt[wt$v > 0, , drop = FALSE]
  items <- function(d, col, k = 8L) {
    top <- utils::head(d, k)
    out <- paste0(top$market, "\u00a0", formatC(top[[col]], format = "f", digits = 3))
    if (nrow(d) > k) out <- c(out, sprintf("(+%d\u00a0more)", nrow(d) - k))
    paste(out, collapse = ", ")
  }
  how <- if (g$search == "exhaustive") {
    sprintf("exhaustive search over %s treated sets", format(g$n_scored, big.mark = ","))
  } else {
    sprintf("swap search, %d starts, %s sets scored", nrow(x$search$starts),
            format(g$n_scored, big.mark = ","))
  }
  lines <- c(
    sprintf("Synthetic design (Abadie-Zhao): %d of %d markets treated, at most %d",
            g$n_treated, g$n_markets, x$n_treated),
    paste("  Treated weights:", items(tr, "w")),
    paste0("  Control weights (", g$n_controls, " markets): ", items(ct, "v")),
    sprintf("  Fit on %d periods (%s to %s); %d blank periods kept for inference",
            g$n_fit, format(x$fit_periods[1]), format(utils::tail(x$fit_periods, 1)),
            g$n_blank),
    sprintf("  RMSE of treated minus control: %s over the fit, %s over the blank periods (outcome mean %s)",
            format_num(g$rmse_fit), format_num(g$rmse_blank), format_num(x$scale[["outcome_mean"]])),
    sprintf("  Objective %s (treated %s, control %s); %s", obj_num(g$objective),
            obj_num(g$objective_treated), obj_num(g$objective_control), how)
  )
  out <- unlist(lapply(seq_along(lines), function(i) {
    s <- if (i == 1L) lines[i] else strwrap(trimws(lines[i]), width = 78, initial = "  ", prefix = "    ")
    gsub("\u00a0", " ", s, fixed = TRUE)
  }))
  cat(out, sep = "\n")
  invisible(x)
}

# An objective for print(): a control fit that is exact to rounding shows
# as such, not as a string of zeros.
obj_num <- function(x) {
  if (x != 0 && abs(x) < 1e-6) formatC(x, digits = 2, format = "e") else format_num(x)
}

#' @rdname synthetic_design-methods
#' @export
plot.mkt_synthetic_design <- function(x, ...) {
  autoplot(x, ...)
}

#' @rdname synthetic_design-methods
#' @export
autoplot.mkt_synthetic_design <- function(object, type = c("paths", "weights"), ...) {
  check_dots(...)
  type <- check_choice(type)
  if (type == "weights") {
    wt <- object$weights
    d <- rbind(data.frame(market = wt$market[wt$w > 0], weight = wt$w[wt$w > 0], arm = "treated"),
               data.frame(market = wt$market[wt$v > 0], weight = wt$v[wt$v > 0], arm = "control"))
    d$market <- factor(d$market, levels = rev(unique(d$market)))
    return(ggplot2::ggplot(d, ggplot2::aes(x = .data$weight, y = .data$market, fill = .data$arm)) +
      ggplot2::geom_col() +
      ggplot2::scale_fill_manual(values = c(treated = mkt_colours[["treated"]],
                                            control = mkt_colours[["synthetic"]]), name = NULL) +
      ggplot2::scale_y_discrete(breaks = thin_labels(rev(levels(d$market)), 30L)) +
      ggplot2::labs(x = "weight", y = NULL, title = "Synthetic design: market weights") +
      theme_mkt())
  }
  s <- object$series
  n <- nrow(s)
  d <- data.frame(time = rep(s$time, 3L), value = c(s$treated, s$control, s$population),
                  series = factor(rep(c("treated (w)", "synthetic control (v)", "population average"),
                                      each = n),
                                  levels = c("treated (w)", "synthetic control (v)", "population average")))
  cut <- start_between(s$time, object$blank_periods[1])
  ggplot2::ggplot(d, ggplot2::aes(x = .data$time, y = .data$value, colour = .data$series,
                                  linetype = .data$series)) +
    ggplot2::geom_vline(xintercept = cut, colour = mkt_colours[["reference"]],
                        linetype = "dashed", linewidth = 0.4) +
    ggplot2::geom_line(linewidth = 0.6) +
    ggplot2::scale_colour_manual(values = c(mkt_colours[["treated"]], mkt_colours[["synthetic"]],
                                            "grey40"), name = NULL) +
    ggplot2::scale_linetype_manual(values = c("solid", "solid", "dotted"), name = NULL) +
    ggplot2::labs(x = object$vars$time, y = object$vars$outcome,
                  title = "Synthetic design: treated and synthetic control paths",
                  subtitle = sprintf("RMSE %s over the fit, %s over the blank periods (right of the dashed line)",
                                     format_num(object$rmse[["fit"]]), format_num(object$rmse[["blank"]]))) +
    theme_mkt()
}

#' @export
autoplot.mkt_synthetic_design_effect <- function(object, ...) {
  check_dots(...)
  plot_effect_over_time(object$tables$effect_over_time, x_lab = object$vars$time,
                        y_lab = object$vars$outcome,
                        title = "Effect over time: synthetic design", alpha = object$alpha,
                        observed_label = "treated (w)",
                        counterfactual_label = "synthetic control (v)",
                        band_note = "placebo in time over the blank periods")
}

#' @export
print_details.mkt_synthetic_design_effect <- function(x, summary = FALSE, digits = 4, ...) {
  tr <- x$tables$weights
  tr <- tr[tr$w > 0, , drop = FALSE]
  items <- paste0(tr$market, "\u00a0", formatC(tr$w, format = "f", digits = 3))
  l <- strwrap(paste("Treated markets:", paste(items, collapse = ", ")), width = 78, exdent = 2)
  cat("\n", paste0(gsub("\u00a0", " ", l, fixed = TRUE), "\n"), sep = "")
  cat(sprintf("Design RMSE (treated minus control): %s fit, %s blank\n",
              format_num(x$glance$rmse_fit, digits), format_num(x$glance$rmse_blank, digits)))
  invisible(x)
}
