# Presentation of experiment_effect() fits with several cells: the
# estimates table printed one estimator at a time (so that it stays within
# 80 columns), the incremental outcome and iROAS of each contrast below it,
# and the plot of every contrast's estimate with its interval, one panel per
# estimator. Two-arm fits keep the methods of methods-experiment.R.

#' @export
print.mkt_effect <- function(x, digits = 4, max_rows = 12, ...) {
  if (is.null(x$cells)) return(NextMethod())
  if (!called_from_package(parent.frame())) check_dots(...)
  digits <- check_count(digits, "digits", min = 1, max = 15)
  print_header(x)
  print_cells_estimates(x, digits)
  print_details(x, summary = FALSE, digits = digits)
  invisible(x)
}

#' @export
print_summary_estimates.mkt_effect <- function(x, digits = 4, max_rows = 25, ...) {
  if (is.null(x$cells)) return(NextMethod())
  # print.summary.mkt_fit has printed a blank line already.
  print_cells_estimates(x, digits, lead = FALSE)
}

cells_estimator_labels <- c(diff_in_means = "Difference in means",
                            lin = "Lin regression adjustment")

print_cells_estimates <- function(x, digits, lead = TRUE) {
  est <- x$estimates
  for (e in unique(est$estimator)) {
    sub <- x
    sub$estimates <- est[est$estimator == e, , drop = FALSE]
    sub$print_columns <- c(lift_pct = "lift %")
    label <- cells_estimator_labels[[e]]
    if (e == "lin" && length(x$vars$covariates)) {
      label <- sprintf("%s (on %s)", label, paste(x$vars$covariates, collapse = ", "))
    }
    if (lead || e != est$estimator[1]) cat("\n")
    cat(strwrap(label, width = 80), sep = "\n")
    print_estimates(sub, digits = digits, max_rows = 50)
  }
}

print_details_cells <- function(x, summary, digits) {
  est <- x$estimates
  # The most precise estimator's rows: Lin's when the fit has it.
  e <- if ("lin" %in% est$estimator) "lin" else "diff_in_means"
  rows <- est[est$estimator == e, , drop = FALSE]
  show <- data.frame(term = format_term(rows$term), stringsAsFactors = FALSE)
  show$incremental <- format_col(rows$incremental, digits)
  if (!all(is.na(rows$spend_incremental))) {
    show$spend <- format_col(rows$spend_incremental, digits)
    show$iROAS <- format_col(rows$iroas, 3)
  }
  names(show)[1] <- ""
  cat(sprintf("\nIncremental outcome%s (%s):\n",
              if (!is.null(show$iROAS)) ", incremental spend and iROAS" else "",
              tolower(cells_estimator_labels[[e]])))
  print_wide_table(show)
  if (!is.null(est$p.value_familywise)) {
    rand <- data.frame(term = format_term(rows$term), stringsAsFactors = FALSE)
    for (e2 in unique(est$estimator)) {
      r2 <- est[est$estimator == e2, , drop = FALSE]
      short <- c(diff_in_means = "DiM", lin = "Lin")[[e2]]
      rand[[paste(short, "p")]] <- format_p(r2$p.value_randomization)
      rand[[paste(short, "max-T")]] <- format_p(r2$p.value_familywise)
    }
    names(rand)[1] <- ""
    cat("\nRandomization p-values conditional on the design's rule (each contrast; max-T):\n")
    print_wide_table(rand)
  }
  lines <- character()
  if (summary) {
    lines <- c(lines,
      "lift %: the estimate over the first cell's counterfactual mean (its mean minus the estimate).",
      "Incremental: the estimate times the first cell's clusters (\"total\") or population (\"mean\"); spend likewise, from the difference in mean spend.",
      "vcov(fit, estimator = ) gives the joint covariance of one estimator's contrasts.")
  }
  if (!is.null(est$p.value_familywise) && summary) {
    lines <- c(lines, paste(
      "Randomization p-values test the sharp null of no effect in any cell; max-T",
      "adjusts them for testing every contrast (family-wise error at most alpha)."))
  }
  if (length(lines)) {
    cat("\n")
    cat(paste0(strwrap(lines, width = 80, exdent = 2), "\n"), sep = "")
  }
  invisible(x)
}

# The estimates of every contrast with their design-based intervals, one
# panel per estimator, labelled with the lift.
autoplot_effect_cells <- function(object) {
  td <- object$estimates
  terms <- unique(td$term)
  td$y <- match(td$term, rev(terms))
  td$panel <- factor(cells_estimator_labels[td$estimator],
                     levels = cells_estimator_labels[unique(td$estimator)])
  td$label <- sprintf("%s (%s%%)", format_num(td$estimate, 3), format_num(td$lift_pct, 3))
  td$versus <- factor(object$cells[object$contrasts[match(td$term, terms), 2]],
                      levels = object$cells)
  ggplot2::ggplot(td, ggplot2::aes(y = .data$y, x = .data$estimate)) +
    ref_line("x") +
    ggplot2::geom_errorbar(ggplot2::aes(xmin = .data$conf.low, xmax = .data$conf.high,
                                        colour = .data$versus),
                           width = 0.15, linewidth = 0.8, orientation = "y") +
    ggplot2::geom_point(colour = mkt_colours[["effect"]], size = 2.5) +
    ggplot2::geom_text(ggplot2::aes(label = .data$label), nudge_y = 0.3, size = 3.1,
                       colour = "grey25") +
    ggplot2::facet_wrap(~ panel, ncol = 1, scales = "free_x") +
    ggplot2::scale_y_continuous(breaks = seq_along(terms), labels = rev(terms),
                                expand = ggplot2::expansion(add = 0.6)) +
    ggplot2::scale_colour_manual(values = stats::setNames(
      c(mkt_colours[["control"]], mkt_colours[["treated"]], mkt_colours[["synthetic"]],
        "#31a354", "#756bb1", "#636363")[seq_along(object$cells)], object$cells),
      guide = if (length(unique(td$versus)) > 1L) "legend" else "none") +
    ggplot2::labs(x = sprintf("effect on %s (lift %%)", object$vars$outcome), y = NULL,
                  colour = "compared with",
                  title = object$method,
                  subtitle = sprintf("%g%% design-based intervals; each contrast is the first cell minus the second",
                                     100 * (1 - object$alpha))) +
    theme_mkt()
}

# The analysed outcomes by cell, with each cell's mean.
effect_outcome_plot_cells <- function(object, outcome) {
  d <- tidy(object, "outcomes")
  cells <- object$cells
  means <- data.frame(x = seq_along(cells),
                      y = vapply(cells, function(cl) mean(d$outcome[d$cell == cl]), numeric(1)))
  log_scale <- all(d$outcome > 0) && max(d$outcome) / min(d$outcome) > 100
  p <- ggplot2::ggplot(d, ggplot2::aes(x = as.numeric(.data$cell), y = .data$outcome)) +
    ggplot2::geom_jitter(ggplot2::aes(colour = .data$cell), width = 0.12, height = 0,
                         alpha = 0.6, size = 1.6) +
    ggplot2::geom_segment(ggplot2::aes(x = .data$x - 0.3, xend = .data$x + 0.3,
                                       y = .data$y, yend = .data$y),
                          data = means, linewidth = 0.9, inherit.aes = FALSE) +
    ggplot2::scale_colour_manual(values = stats::setNames(
      c(mkt_colours[["control"]], mkt_colours[["treated"]], mkt_colours[["synthetic"]],
        "#31a354", "#756bb1", "#636363")[seq_along(cells)], cells), guide = "none") +
    ggplot2::scale_x_continuous(breaks = seq_along(cells), labels = cells) +
    ggplot2::labs(x = NULL, y = outcome, title = "Outcomes by cell",
                  subtitle = sprintf("bars: cell means%s", if (log_scale) " (log scale)" else "")) +
    theme_mkt()
  if (log_scale) p <- p + ggplot2::scale_y_log10()
  p
}

# --- randomization_test() with several cells -----------------------------------

print_details_test_cells <- function(x, summary) {
  g <- x$glance
  lines <- c(
    if (!x$exact) sprintf("Monte Carlo s.e. of the p-values: at most %s.", format_num(g$mc_se, 2)),
    paste("p.value: each contrast's own test of the sharp null of no effect in any cell;",
          "p (max-T): adjusted for testing every contrast (family-wise error at most alpha)."),
    if (summary) paste(
      "A shifted or one-sided null on one contrast: keep that contrast's two cells and test",
      "them as a 0/1 treatment.")
  )
  cat("\n")
  cat(paste0(strwrap(lines, width = 80, exdent = 2), "\n"), sep = "")
  invisible(x)
}

# The reference distribution of each contrast's statistic under the rule,
# and of the largest |t| over the contrasts, with the observed values.
autoplot_test_cells <- function(object, type) {
  type <- check_choice(type, c("reference", "pvalue"), arg = "type")
  if (type == "pvalue") {
    abort_mkt("not_available", c(
      "A test of several cells tests only the null of no effect, so it has no p-value function.",
      i = "Use {.code plot(fit)} for the reference distributions of the contrasts."
    ))
  }
  ref <- tidy(object, "reference")
  est <- object$estimates
  panels <- c(est$term, "max |t|")
  ref$contrast <- factor(ref$contrast, levels = panels)
  obs <- data.frame(contrast = factor(panels, levels = panels),
                    value = c(est$statistic, rep(NA_real_, 1L)))
  obs_t <- data.frame(contrast = factor(rep("max |t|", nrow(est)), levels = panels),
                      value = abs(est$t), term = est$term)
  ggplot2::ggplot(ref, ggplot2::aes(x = .data$statistic)) +
    ggplot2::geom_histogram(bins = 40, fill = mkt_colours[["band"]], colour = "white",
                            linewidth = 0.2) +
    ggplot2::geom_vline(ggplot2::aes(xintercept = .data$value), data = obs[!is.na(obs$value), ],
                        colour = mkt_colours[["effect"]], linewidth = 0.8) +
    ggplot2::geom_vline(ggplot2::aes(xintercept = .data$value), data = obs_t,
                        colour = mkt_colours[["effect"]], linewidth = 0.5, linetype = "dashed") +
    ggplot2::facet_wrap(~ contrast, scales = "free") +
    ggplot2::labs(x = sprintf("%s under the null (max |t|: largest |t| over the contrasts)",
                              object$statistic_name),
                  y = "reference draws",
                  title = "Randomization distributions conditional on the acceptance rule",
                  subtitle = "lines: observed statistics (dashed: each contrast's |t| against the max-T law)") +
    theme_mkt()
}

# --- design_power() with several cells -------------------------------------------

#' @export
print.mkt_power_cells <- function(x, ...) {
  check_dots(...)
  g <- x$mde
  estimator <- if (x$method == "lin") "Lin's regression adjustment" else "difference in means"
  pct <- function(v) paste0(format_num(100 * v, 3), "%")
  b <- x$budget
  unit <- if (is.null(b)) pct else function(v) paste("iROAS", format_num(v, 3))
  mde <- ifelse(g$mde_reached,
                paste("MDE", unit(g$mde_interpolated)),
                sprintf("MDE beyond %s (power %s there)", unit(g$max_effect),
                        pct(g$max_effect_power)))
  aa <- sprintf("A/A %s (s.e. %s)", format_num(g$aa_rejection, 2), format_num(g$aa_mc_se, 1))
  lines <- c(
    sprintf("Simulated power of %d contrasts: %s, HC2 t test, %s effect",
            length(unique(g$contrast)), estimator, x$effect_type),
    if (identical(x$method_chosen_by, "default")) sprintf(
      "  %s is the default %s `pre`.", if (x$method == "lin") "Lin's adjustment" else
        "The difference in means", if (x$method == "lin") "with" else "without"),
    sprintf("  %d assignments from the design's rule x %d historical windows = %s experiments; target power %s, alpha %s",
            x$n_draws, x$n_windows, format(x$n_sims, big.mark = ","), pct(x$target_power),
            format(x$alpha)),
    if (!is.null(b)) paste0("  Budget per period: ", paste(sprintf(
      "%s %s %s", names(b$spend), ifelse(b$spend < 0, "removes", "adds"),
      format_num(abs(b$spend), 4)), collapse = "; "),
      ". Effects are iROAS (incremental outcome per unit of spend).")
  )
  for (ct in unique(g$contrast)) {
    r <- g[g$contrast == ct, ]
    lines <- c(lines, paste0(ct, ":"),
               sprintf("  length %d: %s; %s", r$test_length, mde[g$contrast == ct],
                       aa[g$contrast == ct]))
    if (!is.null(b) && !is.na(b$iroas)) {
      need <- ifelse(r$mde_reached, sprintf("needs %s per period (%s in all)",
                                            format_num(r$spend_needed, 3),
                                            format_num(r$spend_needed_total, 3)),
                     "needs more spend than the grid tried")
      lines <- c(lines, sprintf("  length %d at iROAS %s: power %s at the planned spend; %s power %s",
                                r$test_length, format_num(b$iroas, 3), pct(r$power_at_target),
                                pct(x$target_power), need))
    }
  }
  cat_wrapped(lines)
  invisible(x)
}

#' @export
autoplot.mkt_power_cells <- function(object, ...) {
  check_dots(...)
  d <- object$power
  d$test_length <- factor(d$test_length)
  d$contrast <- factor(d$contrast, levels = unique(d$contrast))
  iroas <- !is.null(object$budget)
  if (!iroas) d$effect <- 100 * d$effect
  ggplot2::ggplot(d, ggplot2::aes(x = .data$effect, y = .data$power,
                                  colour = .data$test_length)) +
    power_curve_layers(object$target_power, object$alpha) +
    ggplot2::facet_wrap(~ contrast, scales = "free_x") +
    ggplot2::scale_colour_manual(values = grDevices::colorRampPalette(
      c(mkt_colours[["band"]], mkt_colours[["treated"]]))(nlevels(d$test_length))) +
    ggplot2::scale_y_continuous(limits = c(0, 1)) +
    ggplot2::labs(x = if (iroas) "iROAS" else "effect on the cell (% lift)", y = "power",
                  colour = "test length (periods)",
                  title = "Simulated power of each cell against control",
                  subtitle = "dashed: target power; dotted: alpha (A/A rejection at zero effect)") +
    theme_mkt()
}
