# Presentation of geo_effect() fits: the printed details of each method and
# its plot, drawn from the fit's tidy tables (tidy(fit, "series"),
# tidy(fit, "fitted"), tidy(fit, "trims"), tidy(fit, "pairs")).

#' @rdname geo_effect
#' @param object A fit from `geo_effect()`.
#' @param type For `plot()` and `autoplot()`: `NULL` for the method's own
#'   plot (`"series"` for TBR, `"geos"` for GBR, `"trims"` for Trimmed
#'   Match), `"pairs"` (Trimmed Match: pair differences of outcome against
#'   spend, with the estimated slope and the trimmed pairs marked) or
#'   `"estimates"` (the estimates with their intervals).
#' @export
autoplot.mkt_geo_effect <- function(object, type = NULL, ...) {
  check_dots(...)
  own <- c(tbr = "series", gbr = "geos", trimmed_match = "trims")[[object$geo_method]]
  choices <- unique(c(own, if (object$geo_method == "trimmed_match") "pairs", "estimates"))
  # With several cells each method's own table holds one block per contrast:
  # the estimates, one row per contrast, are the picture.
  if (isTRUE(object$multi_cell)) own <- choices <- "estimates"
  type <- if (is.null(type)) own else check_choice(type, choices)
  switch(type,
    series = geo_series_plot(object),
    geos = geo_gbr_plot(object),
    trims = geo_trims_plot(object),
    pairs = geo_pairs_plot(object),
    estimates = autoplot.mkt_fit(object)
  )
}

geo_series_plot <- function(object) {
  s <- tidy(object, "series")
  outcome <- object$vars$outcome
  test_start <- s$time[s$period == "test"][1]
  top <- "treated geos: observed and counterfactual"
  bottom <- "cumulative incremental outcome"
  lines <- rbind(
    data.frame(time = s$time, value = s$treated, series = "observed", panel = top),
    data.frame(time = s$time, value = s$counterfactual, series = "counterfactual (TBR)",
               panel = top),
    data.frame(time = s$time, value = s$cumulative, series = "cumulative effect",
               panel = bottom)
  )
  lines <- lines[!is.na(lines$value), , drop = FALSE]
  bands <- rbind(
    data.frame(time = s$time, low = s$conf.low, high = s$conf.high, panel = top),
    data.frame(time = s$time, low = s$cumulative.low, high = s$cumulative.high, panel = bottom)
  )
  bands <- bands[!is.na(bands$low), , drop = FALSE]
  panels <- c(top, bottom)
  lines$panel <- factor(lines$panel, levels = panels)
  bands$panel <- factor(bands$panel, levels = panels)
  zero <- data.frame(y = 0, panel = factor(bottom, levels = panels))
  ggplot2::ggplot(lines, ggplot2::aes(x = .data$time)) +
    ggplot2::geom_ribbon(ggplot2::aes(ymin = .data$low, ymax = .data$high), data = bands,
                         fill = mkt_colours[["band"]], alpha = 0.6) +
    ggplot2::geom_hline(ggplot2::aes(yintercept = .data$y), data = zero, colour = "grey60") +
    ggplot2::geom_vline(xintercept = as.numeric(test_start), linetype = "dashed",
                        colour = "grey40") +
    ggplot2::geom_line(ggplot2::aes(y = .data$value, colour = .data$series,
                                    linetype = .data$series), linewidth = 0.7) +
    ggplot2::facet_wrap(~ panel, ncol = 1, scales = "free_y") +
    ggplot2::scale_colour_manual(values = c(observed = mkt_colours[["treated"]],
                                            `counterfactual (TBR)` = mkt_colours[["synthetic"]],
                                            `cumulative effect` = mkt_colours[["effect"]])) +
    ggplot2::scale_linetype_manual(values = c(observed = "solid",
                                              `counterfactual (TBR)` = "dashed",
                                              `cumulative effect` = "solid")) +
    ggplot2::labs(x = object$vars$time, y = outcome, colour = NULL, linetype = NULL,
                  title = object$method,
                  subtitle = sprintf("%g%% predictive bands; the test starts at the dashed line",
                                     100 * (1 - object$alpha))) +
    theme_mkt()
}

geo_gbr_plot <- function(object) {
  d <- tidy(object, "fitted")
  d$arm <- factor(ifelse(d$treated == 1, "treated", "control"), levels = c("control", "treated"))
  base <- d[order(d$pre), c("pre", "baseline")]
  log_scale <- all(d$test > 0) && max(d$pre) / min(d$pre) > 100
  p <- ggplot2::ggplot(d, ggplot2::aes(x = .data$pre, y = .data$test)) +
    ggplot2::geom_line(ggplot2::aes(y = .data$baseline), data = base, colour = "grey40",
                       linetype = "dashed") +
    ggplot2::geom_point(ggplot2::aes(colour = .data$arm), alpha = 0.75, size = 1.8) +
    ggplot2::scale_colour_manual(values = c(control = mkt_colours[["control"]],
                                            treated = mkt_colours[["treated"]]))
  if (log_scale) p <- p + ggplot2::scale_x_log10() + ggplot2::scale_y_log10()
  p + ggplot2::labs(x = "pre-period total", y = "test-window total", colour = NULL,
                    title = object$method,
                    subtitle = paste0("dashed: fitted outcome without treatment",
                                      if (log_scale) "; log scales")) +
    theme_mkt()
}

geo_trims_plot <- function(object) {
  d <- tidy(object, "trims")
  d <- d[is.finite(d$estimate), , drop = FALSE]
  d$choice <- ifelse(d$chosen, "chosen trim", "other trims")
  what <- if (object$estimates$term[1] == "iroas") "iROAS" else "effect per pair"
  ggplot2::ggplot(d, ggplot2::aes(x = .data$trim_rate, y = .data$estimate)) +
    ggplot2::geom_hline(yintercept = 0, colour = "grey60") +
    ggplot2::geom_errorbar(ggplot2::aes(ymin = .data$conf.low, ymax = .data$conf.high,
                                        colour = .data$choice), width = 0) +
    ggplot2::geom_point(ggplot2::aes(colour = .data$choice), size = 2) +
    ggplot2::scale_colour_manual(values = c(`chosen trim` = mkt_colours[["effect"]],
                                            `other trims` = mkt_colours[["control"]])) +
    ggplot2::labs(x = "trim rate (share of pairs trimmed from each tail)", y = what,
                  colour = NULL, title = object$method,
                  subtitle = sprintf("%g%% intervals at every trim level",
                                     100 * (1 - object$alpha))) +
    theme_mkt()
}

geo_pairs_plot <- function(object) {
  d <- tidy(object, "pairs")
  spend <- !all(is.na(d$delta_spend))
  d$x <- if (spend) d$delta_spend else seq_len(nrow(d))
  d$status <- ifelse(d$trimmed, "trimmed", "kept")
  trims <- tidy(object, "trims")
  theta <- trims$estimate[trims$chosen]
  p <- ggplot2::ggplot(d, ggplot2::aes(x = .data$x, y = .data$delta_outcome)) +
    ggplot2::geom_hline(yintercept = 0, colour = "grey60")
  p <- if (spend) {
    p + ggplot2::geom_abline(intercept = 0, slope = theta, colour = mkt_colours[["effect"]])
  } else {
    p + ggplot2::geom_hline(yintercept = theta, colour = mkt_colours[["effect"]])
  }
  p + ggplot2::geom_point(ggplot2::aes(colour = .data$status), size = 2) +
    ggplot2::scale_colour_manual(values = c(kept = mkt_colours[["treated"]],
                                            trimmed = mkt_colours[["synthetic"]])) +
    ggplot2::labs(x = if (spend) "incremental spend difference (treated - control)" else "pair",
                  y = "outcome difference (treated - control)", colour = NULL,
                  title = object$method,
                  subtitle = if (spend) "line: the trimmed iROAS through the origin" else
                    "line: the trimmed mean effect per pair") +
    theme_mkt()
}

#' @export
print_details.mkt_geo_effect <- function(x, summary = FALSE, digits = 4, ...) {
  g <- x$glance
  num <- function(v) format_num(v, digits)
  if (isTRUE(x$multi_cell)) return(print_geo_cells(x, num))
  lines <- switch(x$geo_method,
    tbr = {
      r <- x$tables$regression
      c(sprintf("Pre-period fit: treated = %s + %s x control (R^2 %s, sigma %s)",
                num(r$estimate[1]), num(r$estimate[2]), num(g$pre_r2), num(g$sigma)),
        sprintf("Geos: %d treated, %d control; %d pre and %d test periods.",
                g$n_treated_geos, g$n_control_geos, x$n$pre_periods, x$n$test_periods))
    },
    gbr = {
      r <- x$tables$regression
      c(sprintf("Regression weights 1 / pre-period total; coefficient of %s %s (s.e. %s).",
                r$term[3], num(r$estimate[3]), num(r$std.error[3])),
        sprintf("Geos: %d treated, %d control.", g$n_treated_geos, g$n_control_geos))
    },
    trimmed_match = c(
      sprintf("Trim: %d of %d pairs trimmed (trim rate %s per tail); pairs from %s.",
              g$n_trimmed, x$n$pairs, num(g$trim_rate), g$pairs_from),
      "tidy(fit, \"trims\") has every trim level; tidy(fit, \"pairs\") the pairs.")
  )
  e <- x$estimates
  lines <- c(lines, sprintf("Incremental outcome: %s, %g%% interval [%s, %s].",
                            num(e$incremental[1]), 100 * (1 - x$alpha),
                            num(e$incremental.low[1]), num(e$incremental.high[1])))
  if (!is.na(g$spend_incremental)) {
    lines <- c(lines, sprintf("Incremental spend (taken as known): %s.",
                              num(g$spend_incremental)))
  }
  cat("\n", paste0(unlist(lapply(lines, strwrap, width = 78)), collapse = "\n"), "\n", sep = "")
  invisible(x)
}

# The foot of a fit of several cells: each contrast's incremental outcome
# and spend, and where the method's tables are.
print_geo_cells <- function(x, num) {
  e <- x$estimates
  lines <- vapply(seq_len(nrow(e)), function(i) {
    sprintf("%s: incremental outcome %s [%s, %s]%s.", e$term[i], num(e$incremental[i]),
            num(e$incremental.low[i]), num(e$incremental.high[i]),
            if (is.finite(e$spend_incremental[i])) {
              sprintf(", incremental spend %s", num(e$spend_incremental[i]))
            } else "")
  }, character(1))
  lines <- c(lines, sprintf("Each treated cell against the shared control; the method's tables (%s) have a contrast column.",
                            paste0("\"", setdiff(names(x$tables), "geos"), "\"", collapse = ", ")))
  cat("\n", paste0(unlist(lapply(lines, strwrap, width = 78)), collapse = "\n"), "\n", sep = "")
  invisible(x)
}
