# Presentation of the fits of randomized experiments: experiment_effect(),
# randomization_test(), rem_asymptotic() and spillover(). The shared methods
# of methods-fit.R print, tidy and glance them; these add what differs: each
# class's plots (autoplot), its printed details (print_details) and, for the
# non-normal law of rem_asymptotic(), intervals at other levels.

# --- experiment_effect() --------------------------------------------------------

#' @rdname experiment_effect
#' @param object A fit from `experiment_effect()`.
#' @param type For `plot()` and `autoplot()`: `"estimates"` (each estimator
#'   with its design-based interval, its randomization interval when there is
#'   a design, and its lift), `"outcomes"` (the analysed outcomes by arm,
#'   with the treated arm's counterfactual mean) or `"effect_over_time"`
#'   (for a fit on a [geo_units()] table made with `post`, which carries
#'   each cluster's total by period: the treated arm's total and its
#'   counterfactual by period, above the cumulative incremental outcome with
#'   its band). That plot is drawn from `tidy(fit, "effect_over_time")`:
#'   `term` (the estimator used: `"lin"` when the fit has covariates, else
#'   `"diff_in_means"`), `time`, `event_time`, `post`, `observed` (the
#'   treated arm's total), `counterfactual` (`observed` minus the treated
#'   clusters times that period's estimated effect: the controls'
#'   prediction), `effect`, `cumulative` (the estimator on each cluster's
#'   total over the test window up to `time`, times the treated clusters: at
#'   the end of the window the `incremental` of that row), `conf.low`,
#'   `conf.high` (its t interval).
#' @export
autoplot.mkt_effect <- function(object, type = c("estimates", "outcomes", "effect_over_time"),
                                ...) {
  check_dots(...)
  type <- check_choice(type)
  outcome <- object$vars$outcome
  if (!is.null(object$cells) && type != "effect_over_time") {
    return(if (type == "outcomes") effect_outcome_plot_cells(object, outcome) else
      autoplot_effect_cells(object))
  }
  if (type == "outcomes") return(effect_outcome_plot(object, outcome))
  if (type == "effect_over_time") {
    if (is.null(object$tables$effect_over_time)) {
      abort_mkt("not_available", c(
        "This fit has no outcome series, so it has no effect over time.",
        i = paste("Fit it on a {.fn geo_units} table made with {.arg post} (one row per",
                  "cluster, {.code estimand = \"total\"}, no {.arg cluster}): the table",
                  "carries each cluster's outcome by period.")))
    }
    tab <- tidy(object, "effect_over_time")
    return(plot_effect_over_time(
      tab, x_lab = attr(tab, "time_name") %||% "period",
      y_lab = "treated arm's total", alpha = object$alpha,
      title = "Effect over time: the treated arm and its control-based counterfactual",
      observed_label = "treated arm", counterfactual_label = "counterfactual (controls)",
      band_note = sprintf("%s on cumulative totals, times the treated clusters",
                          if (tab$term[1] == "lin") "Lin regression adjustment" else
                            "difference in means")))
  }
  td <- object$estimates
  k <- nrow(td)
  kinds <- c("design-based (t)", "randomization (conditional on the rule)")
  ints <- data.frame(y = rev(seq_len(k)) + 0.1, estimate = td$estimate,
                     low = td$conf.low, high = td$conf.high, interval = kinds[1])
  if (!is.null(td$conf.low_randomization)) {
    ints$y <- ints$y + 0.05
    ints <- rbind(ints, data.frame(y = rev(seq_len(k)) - 0.15, estimate = td$estimate,
                                   low = td$conf.low_randomization,
                                   high = td$conf.high_randomization, interval = kinds[2]))
  }
  ints <- ints[!is.na(ints$low) & !is.na(ints$high), , drop = FALSE]
  ints$interval <- factor(ints$interval, levels = kinds)
  labels <- data.frame(y = rev(seq_len(k)) + 0.38, estimate = td$estimate,
                       label = sprintf("%s, lift %s%%", format_num(td$estimate, 3),
                                       format_num(td$lift_pct, 3)))
  ggplot2::ggplot(ints, ggplot2::aes(y = .data$y)) +
    ref_line("x") +
    ggplot2::geom_errorbar(ggplot2::aes(xmin = .data$low, xmax = .data$high,
                                        colour = .data$interval),
                           width = 0.12, linewidth = 0.8, orientation = "y") +
    ggplot2::geom_point(ggplot2::aes(x = .data$estimate), colour = mkt_colours[["effect"]],
                        size = 2.5, data = data.frame(y = rev(seq_len(k)), estimate = td$estimate)) +
    ggplot2::geom_text(ggplot2::aes(x = .data$estimate, label = .data$label), data = labels,
                       size = 3.2, colour = "grey25") +
    ggplot2::scale_colour_manual(values = stats::setNames(
      c(mkt_colours[["treated"]], mkt_colours[["synthetic"]]), kinds), drop = TRUE) +
    ggplot2::scale_y_continuous(breaks = rev(seq_len(k)), labels = td$term,
                                expand = ggplot2::expansion(add = 0.5)) +
    ggplot2::labs(x = sprintf("effect on %s", outcome), y = NULL, colour = NULL,
                  title = object$method,
                  subtitle = paste(strwrap(sprintf("%g%% intervals; %s", 100 * (1 - object$alpha),
                                                   object$estimand), 75), collapse = "\n")) +
    theme_mkt()
}

effect_outcome_plot <- function(object, outcome) {
  d <- tidy(object, "outcomes")
  d$arm <- factor(ifelse(d$treated == 1, "treated", "control"), levels = c("control", "treated"))
  means <- vapply(split(d, d$arm), function(a) stats::weighted.mean(a$outcome, a$weight),
                  numeric(1))
  est <- object$estimates$estimate[1]
  lines <- data.frame(
    x = c(1, 2, 2), what = c("arm mean", "arm mean", "counterfactual mean"),
    y = c(means[["control"]], means[["treated"]], means[["treated"]] - est))
  # Cluster totals are heavy-tailed: over two orders of magnitude, a log
  # scale keeps the small clusters visible.
  log_scale <- all(d$outcome > 0) && max(d$outcome) / min(d$outcome) > 100
  p <- ggplot2::ggplot(d, ggplot2::aes(x = as.numeric(.data$arm), y = .data$outcome)) +
    ggplot2::geom_jitter(ggplot2::aes(colour = .data$arm), width = 0.12, height = 0,
                         alpha = 0.6, size = 1.6) +
    ggplot2::geom_segment(ggplot2::aes(x = .data$x - 0.3, xend = .data$x + 0.3,
                                       y = .data$y, yend = .data$y, linetype = .data$what),
                          data = lines, linewidth = 0.9, inherit.aes = FALSE) +
    ggplot2::scale_colour_manual(values = c(control = mkt_colours[["control"]],
                                            treated = mkt_colours[["treated"]]), guide = "none") +
    ggplot2::scale_linetype_manual(values = c(`arm mean` = "solid",
                                              `counterfactual mean` = "dashed")) +
    ggplot2::scale_x_continuous(breaks = 1:2, labels = c("control", "treated")) +
    ggplot2::labs(x = NULL, y = outcome, linetype = NULL,
                  title = "Outcomes by arm",
                  subtitle = sprintf("the gap between the treated mean and its counterfactual is the %s estimate%s",
                                     object$estimates$term[1], if (log_scale) " (log scale)" else "")) +
    theme_mkt()
  if (log_scale) p <- p + ggplot2::scale_y_log10()
  p
}

#' @export
print_details.mkt_effect <- function(x, summary = FALSE, digits = 4, ...) {
  if (!is.null(x$cells)) return(print_details_cells(x, summary, digits))
  est <- x$estimates
  g <- x$glance
  lines <- sprintf("Incremental outcome: %s.", paste(sprintf("%s (%s)",
    format_num(est$incremental, digits), est$term), collapse = ", "))
  if (!is.na(g$spend_incremental)) {
    lines <- c(lines, sprintf("iROAS on an incremental spend of %s: %s.",
                              format_num(g$spend_incremental, digits),
                              paste(sprintf("%s (%s)", format_num(est$iroas, 3), est$term),
                                    collapse = ", ")))
  }
  if (!is.null(est$conf.low_randomization) && any(!is.na(est$conf.low_randomization))) {
    ok <- !is.na(est$conf.low_randomization)
    lines <- c(lines, sprintf("Randomization interval%s (conditional on the rule): %s.",
                              if (sum(ok) > 1L) "s" else "",
                              paste(sprintf("%s [%s, %s]", est$term[ok],
                                            format_num(est$conf.low_randomization[ok], digits),
                                            format_num(est$conf.high_randomization[ok], digits)),
                                    collapse = "; ")))
  }
  if (!is.na(x$n$buffer)) {
    lines <- c(lines, sprintf(
      "%d buffer clusters left out; each cluster weighted by one over its probability of its arm.",
      x$n$buffer))
  }
  if (summary) {
    lines <- c(lines,
      "lift %: the estimate over the treated arm's counterfactual mean (treated mean minus the estimate).",
      "Incremental: the estimate times the treated clusters (\"total\") or population (\"mean\").")
  }
  cat("\n")
  cat(paste0(strwrap(lines, width = 80, exdent = 2), "\n"), sep = "")
  invisible(x)
}

# --- randomization_test() -------------------------------------------------------

#' @rdname randomization_test
#' @param object A fit from `randomization_test()`.
#' @param type For `plot()` and `autoplot()`: `"reference"` (the reference
#'   distributions of the statistic under the null, conditional on the rule
#'   and ignoring it, with the observed value) or `"pvalue"` (both p-values as
#'   functions of the null effect, with `alpha`).
#' @export
autoplot.mkt_randomization_test <- function(object, type = c("reference", "pvalue"), ...) {
  check_dots(...)
  if (isTRUE(object$multi_cell)) return(autoplot_test_cells(object, type))
  type <- check_choice(type)
  labels <- c(conditional = "conditional on the acceptance rule",
              unconditional = "ignoring the rule")
  colours <- stats::setNames(c(mkt_colours[["treated"]], mkt_colours[["control"]]), labels)
  if (type == "pvalue") {
    est <- object$estimates
    curves <- tidy(object, "pvalue")
    curves$reference <- labels[curves$reference]
    return(ggplot2::ggplot(curves, ggplot2::aes(x = .data$null, y = .data$p.value,
                                                colour = .data$reference)) +
      ggplot2::geom_hline(yintercept = object$alpha, linetype = "dashed", colour = "grey40") +
      ggplot2::geom_vline(xintercept = c(est$conf.low, est$conf.high), colour = "grey70") +
      ggplot2::geom_step(linewidth = 0.7) +
      ggplot2::scale_colour_manual(values = colours) +
      ggplot2::labs(x = "constant effect under the null", y = "p-value", colour = NULL,
                    title = "p-value function of the randomization test",
                    subtitle = sprintf("the interval is where the conditional p-value exceeds alpha = %s",
                                       format(object$alpha))) +
      theme_mkt())
  }
  ref <- tidy(object, "reference")
  ref$reference <- labels[ref$reference]
  ggplot2::ggplot(ref, ggplot2::aes(x = .data$statistic, colour = .data$reference,
                                    fill = .data$reference)) +
    ggplot2::geom_density(alpha = 0.2) +
    ggplot2::geom_vline(xintercept = object$estimates$statistic, linewidth = 0.8,
                        colour = mkt_colours[["effect"]]) +
    ggplot2::scale_colour_manual(values = colours) +
    ggplot2::scale_fill_manual(values = colours) +
    ggplot2::labs(x = paste(object$statistic_name, "under the null"), y = "density",
                  colour = "reference distribution", fill = "reference distribution",
                  title = "Randomization distribution",
                  subtitle = "vertical line: observed statistic") +
    theme_mkt()
}

#' @export
print_details.mkt_randomization_test <- function(x, summary = FALSE, digits = 4, ...) {
  if (isTRUE(x$multi_cell)) return(print_details_test_cells(x, summary))
  g <- x$glance
  lines <- c(
    if (!x$exact) sprintf("Monte Carlo s.e. of the p-value: %s.", format_num(g$mc_se, 2)),
    sprintf("Ignoring the rule (conservative): p = %s, interval [%s, %s].",
            format_p(g$p.value_unconditional), format_num(g$conf.low_unconditional, digits),
            format_num(g$conf.high_unconditional, digits)),
    if (isTRUE(x$buffered)) paste(
      "Buffer re-applied to every reference assignment: the p-value for no effect at all",
      "is exact under any spillover; the interval assumes none.")
  )
  cl <- x$tables$clusters
  p <- mean(cl$treated)
  off <- abs(cl$prob_treated - p) > 0.1
  if (!x$exact && any(off)) {
    lines <- c(lines, sprintf(
      "%d cluster%s treated with probability outside [%s, %s] under the rule, e.g. %s.",
      sum(off), if (sum(off) == 1L) " is" else "s are", format(round(p - 0.1, 2)),
      format(round(p + 0.1, 2)), paste(utils::head(cl$id[off], 3), collapse = ", ")))
  }
  cat("\n")
  cat(paste0(strwrap(lines, width = 80, exdent = 2), "\n"), sep = "")
  invisible(x)
}

# --- rem_asymptotic() --------------------------------------------------------------

#' @rdname rem_asymptotic
#' @param x A fit from `rem_asymptotic()`.
#' @param what,conf.int,conf.level As for [tidy()][mkt_fit]; at another
#'   `conf.level` the intervals use the law's quantiles.
#' @export
tidy.mkt_rem <- function(x, what = "estimates", conf.int = TRUE, conf.level = 1 - x$alpha,
                         ...) {
  check_dots(...)
  # The laws' densities are computed when asked for (a few hundred
  # integrals), not with every fit.
  what <- check_choice(what, c("estimates", "law"))
  if (what == "law") return(rem_law_table(x))
  out <- tidy.mkt_fit(x, what = what, conf.int = conf.int)
  if (identical(what, "estimates") && !missing(conf.level) &&
      !isTRUE(all.equal(conf.level, 1 - x$alpha))) {
    lim <- rem_limits(x, out, check_probability(conf.level, "conf.level"))
    out$conf.low <- lim$low
    out$conf.high <- lim$high
  }
  out
}

#' @rdname rem_asymptotic
#' @param type For `plot()` and `autoplot()`: `"intervals"` (both intervals)
#'   or `"law"` (the densities of the two laws on the effect's scale).
#' @export
autoplot.mkt_rem <- function(object, type = c("intervals", "law"), ...) {
  check_dots(...)
  type <- check_choice(type)
  if (type == "intervals") return(autoplot.mkt_fit(object))
  law <- object$law
  est <- object$estimates
  labels <- c("re-randomization", "complete randomization")
  d <- tidy(object, "law")
  d$law <- labels[match(d$law, c("rerandomization", "complete_randomization"))]
  d$law <- factor(d$law, levels = labels)
  ends <- data.frame(x = c(est$conf.low, est$conf.high), law = factor(rep(labels, 2), levels = labels))
  colours <- stats::setNames(c(mkt_colours[["treated"]], mkt_colours[["control"]]), labels)
  ggplot2::ggplot(d, ggplot2::aes(x = .data$effect, y = .data$density, colour = .data$law)) +
    ggplot2::geom_line(linewidth = 0.8) +
    ggplot2::geom_vline(ggplot2::aes(xintercept = .data$x, colour = .data$law), data = ends,
                        linetype = "dashed") +
    ggplot2::scale_colour_manual(values = colours) +
    ggplot2::labs(x = "difference in means", y = "density", colour = NULL,
                  title = "Limit laws of the difference in means",
                  subtitle = sprintf("R2 = %s on %d covariates; dashed: %g%% interval ends",
                                     format_num(law$r2, 3), law$k, 100 * (1 - object$alpha))) +
    theme_mkt()
}

#' @export
print_details.mkt_rem <- function(x, summary = FALSE, digits = 4, ...) {
  law <- x$law
  est <- x$estimates
  lines <- sprintf(paste(
    "The rule (Mahalanobis threshold %s on %d covariate%s) removes %s%% of the",
    "variance of the difference in means through R2 = %s: its critical value is",
    "%s complete-randomization standard errors, against %s."),
    format_num(law$a, 3), law$k, if (law$k == 1L) "" else "s",
    format_num(100 * (1 - rem_va(law$a, law$k)) * law$r2, 3), format_num(law$r2, 3),
    format_num(est$quantile[1], 3), format_num(est$quantile[2], 3))
  cat("\n")
  cat(paste0(strwrap(lines, width = 80, exdent = 2), "\n"), sep = "")
  invisible(x)
}

# --- spillover() ----------------------------------------------------------------

#' @rdname spillover
#' @param object A fit from `spillover()`.
#' @param type For `plot()` and `autoplot()`: `"estimates"` (each estimator
#'   of each effect with its interval) or `"exposure"` (outcomes against
#'   exposure, by own treatment).
#' @export
autoplot.mkt_spillover <- function(object, type = c("estimates", "exposure"), ...) {
  check_dots(...)
  type <- check_choice(type)
  if (type == "exposure") {
    d <- tidy(object, "exposure")
    d$arm <- factor(ifelse(d$treated == 1, "treated", "control"), levels = c("control", "treated"))
    return(ggplot2::ggplot(d, ggplot2::aes(x = .data$exposure, y = .data$outcome,
                                           colour = .data$arm)) +
      ggplot2::geom_jitter(width = 0.01 * diff(range(d$exposure)), height = 0,
                           alpha = 0.5, size = 1.4) +
      ggplot2::geom_smooth(method = "lm", formula = y ~ x, se = FALSE, linewidth = 0.8) +
      ggplot2::scale_colour_manual(values = c(control = mkt_colours[["control"]],
                                              treated = mkt_colours[["treated"]])) +
      ggplot2::labs(x = sprintf("exposure (%s of treated neighbours)", object$exposure_type),
                    y = object$vars$outcome, colour = "own treatment",
                    title = "Outcomes by exposure to treated neighbours") +
      theme_mkt())
  }
  est <- object$estimates[!is.na(object$estimates$estimate), , drop = FALSE]
  est$effect <- factor(est$effect, levels = unique(est$effect))
  est$estimator <- factor(est$estimator, levels = rev(unique(est$estimator)))
  ggplot2::ggplot(est, ggplot2::aes(x = .data$estimate, y = .data$estimator)) +
    ref_line("x") +
    ggplot2::geom_pointrange(ggplot2::aes(xmin = .data$conf.low, xmax = .data$conf.high),
                             colour = mkt_colours[["effect"]]) +
    ggplot2::facet_wrap(~ effect, scales = "free_x") +
    ggplot2::labs(x = sprintf("effect (%g%% interval)", 100 * (1 - object$alpha)), y = NULL,
                  title = object$method) +
    theme_mkt()
}

#' @export
print_details.mkt_spillover <- function(x, summary = FALSE, ...) {
  counts <- table(x$exposure$condition)
  what <- if (is.null(x$exposure$time)) "Units" else "Cells"
  cat("\n")
  cat(paste0(strwrap(sprintf("%s by exposure condition: %s.", what,
                             paste(sprintf("%d %s", as.vector(counts),
                                           gsub("_", " ", names(counts))), collapse = ", ")),
                     width = 80, exdent = 2), "\n"), sep = "")
  invisible(x)
}
