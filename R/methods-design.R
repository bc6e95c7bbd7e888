# Presentation of designs (rerandomize) and randomization tests.

#' Covariate balance of a re-randomized design
#'
#' For each covariate: the means by arm, the realized standardized
#' difference \eqn{(\bar x_T - \bar x_C) / s_x} (stratum-weighted with
#' strata), and the expected absolute standardized difference before the rule
#' (under complete randomization of the base design) and after it (under the
#' acceptance rule), with the expected variance reduction \eqn{1 - v_a}.
#'
#' @param x A design from [rerandomize()].
#' @param ... Unused.
#' @return A data frame with one row per covariate: `term`, `mean_treated`,
#'   `mean_control`, `std_diff`, `expected_abs_std_diff_before`,
#'   `expected_abs_std_diff_after`, `variance_reduction`.
#' @examples
#' set.seed(1)
#' d <- data.frame(x1 = rnorm(80), x2 = rexp(80))
#' des <- rerandomize(d, ~ x1 + x2, n_treated = 40, accept = 0.05)
#' balance(des)
#' @export
balance <- function(x, ...) UseMethod("balance")

#' @rdname balance
#' @export
balance.mkt_design <- function(x, ...) {
  if (!is.null(x$buffer)) return(balance_buffered(x))
  X <- x$X
  w <- x$treated
  sd_x <- apply(X, 2, stats::sd)
  imbalance <- as.vector(x$spec$L %*% colSums(t(x$spec$z)[w == 1, , drop = FALSE]))
  sd_before <- sqrt(diag(x$spec$cov)) / sd_x
  expected_abs <- sqrt(2 / pi) * sd_before
  data.frame(
    term = colnames(X),
    mean_treated = colMeans(X[w == 1, , drop = FALSE]),
    mean_control = colMeans(X[w == 0, , drop = FALSE]),
    std_diff = imbalance / sd_x,
    expected_abs_std_diff_before = expected_abs,
    expected_abs_std_diff_after = expected_abs * sqrt(1 - x$variance_reduction),
    variance_reduction = unname(x$variance_reduction),
    row.names = NULL, stringsAsFactors = FALSE
  )
}

# Balance of a buffered design: treated against retained controls, with the
# spread of the imbalance measured over the calibration draws (admissible
# draws before the rule, accepted ones after it).
balance_buffered <- function(x) {
  X <- x$X
  sd_x <- apply(X, 2, stats::sd)
  v <- buffered_values(x$spec, matrix(as.integer(x$treated), ncol = 1L))
  control <- x$arm == "control"
  sdv <- x$buffer$imbalance_sd
  data.frame(
    term = colnames(X),
    mean_treated = colMeans(X[x$treated == 1, , drop = FALSE]),
    mean_control = colMeans(X[control, , drop = FALSE]),
    std_diff = as.vector(v$tau) / sd_x,
    expected_abs_std_diff_before = sqrt(2 / pi) * sdv["before", ] / sd_x,
    expected_abs_std_diff_after = sqrt(2 / pi) * sdv["after", ] / sd_x,
    variance_reduction = unname(x$variance_reduction),
    row.names = NULL, stringsAsFactors = FALSE
  )
}

#' Tidy, glance, print and plot a re-randomized design
#'
#' `tidy()` is the balance table of [balance()]. `glance()` gives one row:
#' the criterion of the chosen assignment, the threshold, the acceptance
#' probability asked for and the realized acceptance rate in the calibration
#' draws, the number of candidates drawn, the mean expected variance
#' reduction, and the expected number of distinct acceptable assignments.
#'
#' With a buffer (see [rerandomize()]), the balance table compares treated
#' clusters with the retained controls, `glance()` adds `n_control`,
#' `n_buffer` and the share of base draws the buffer leaves admissible,
#' `print()` shows the buffer, and `tidy(x, what = "clusters")` gives one row
#' per cluster with its `arm` (`"treated"`, `"control"` or `"buffer"`), its
#' number of neighbours and its probability of each arm under the rule.
#' `plot(x, type = "buffer")` draws those probabilities of being a control
#' against the number of neighbours, marking each cluster's realized arm.
#'
#' @param x A design from [rerandomize()].
#' @param what For `tidy()`: `"balance"` (the balance table of [balance()])
#'   or `"clusters"` (one row per cluster with its arm).
#' @param type For `plot()`: `"balance"` (a love plot of standardized
#'   differences, with what complete randomization and the rule lead one to
#'   expect), `"criterion"` (the criterion's distribution under complete
#'   randomization, with the threshold and the chosen assignment marked) or,
#'   for designs with a buffer, `"buffer"`.
#' @param ... Unused.
#' @name design-methods
NULL

#' @rdname design-methods
#' @export
tidy.mkt_design <- function(x, what = c("balance", "clusters"), ...) {
  what <- match.arg(what)
  if (what == "balance") return(balance.mkt_design(x))
  arm <- x$arm
  if (is.null(arm)) {
    arm <- factor(ifelse(x$treated == 1, "treated", "control"),
                  levels = c("treated", "control", "buffer"))
  }
  out <- data.frame(id = x$ids, stratum = as.character(x$strata), treated = x$treated,
                    arm = arm, stringsAsFactors = FALSE)
  if (!is.null(x$buffer)) {
    out$n_neighbours <- x$buffer$degree
    out$prob_treated <- unname(x$arm_prob[, "treated"])
    out$prob_control <- unname(x$arm_prob[, "control"])
    out$prob_buffer <- unname(x$arm_prob[, "buffer"])
  }
  out
}

#' @rdname design-methods
#' @export
glance.mkt_design <- function(x, ...) {
  data.frame(
    criterion = x$criterion_value,
    threshold = sum(x$threshold),
    accept = prod(x$accept),
    acceptance_rate = x$acceptance_rate,
    candidates = x$candidates,
    variance_reduction = mean(x$variance_reduction),
    criterion_type = x$criterion,
    threshold_type = x$threshold_type,
    n_clusters = length(x$treated),
    n_treated = sum(x$treated),
    n_strata = nlevels(x$strata),
    n_acceptable = x$n_acceptable,
    n_control = if (is.null(x$arm)) sum(x$treated == 0) else sum(x$arm == "control"),
    n_buffer = if (is.null(x$arm)) 0L else sum(x$arm == "buffer"),
    admissible_rate = if (is.null(x$buffer)) 1 else x$buffer$admissible_rate,
    stringsAsFactors = FALSE
  )
}

#' @rdname design-methods
#' @export
print.mkt_design <- function(x, ...) {
  g <- glance.mkt_design(x)
  say("{.strong Re-randomized design} ({x$criterion} criterion, {x$threshold_type} threshold)")
  say("{g$n_treated} of {g$n_clusters} clusters treated, {g$n_strata} strat{?um/a}; covariates: {.field {x$covariates}}")
  say("Criterion {signif(g$criterion, 4)} <= threshold {signif(g$threshold, 4)}; accept = {signif(g$accept, 3)}, realized rate {signif(g$acceptance_rate, 3)}")
  say("Candidates drawn: {format(g$candidates, big.mark = ',')}; expected variance reduction {round(100 * g$variance_reduction, 1)}%")
  say("About {format(signif(g$n_acceptable, 3))} distinct assignments pass the rule.")
  if (!is.null(x$buffer)) {
    say("Buffer ({x$buffer$source}, {x$buffer$n_links} link{?s}): {g$n_buffer} untreated neighbour{?s} of treated clusters excluded, {g$n_control} control{?s} kept; balance is treated vs kept controls")
    say("{signif(100 * g$admissible_rate, 3)}% of base draws keep {x$min_per_arm} control{?s} per stratum; {sum(x$arm_prob[, 'control'] < 0.01)} cluster{?s} {?is/are} a control in under 1% of accepted draws")
  }
  invisible(x)
}

#' @rdname design-methods
#' @export
plot.mkt_design <- function(x, type = c("balance", "criterion", "buffer"), ...) {
  type <- match.arg(type)
  if (type == "buffer") {
    if (is.null(x$buffer)) {
      abort_mkt("bad_argument", c(
        "{.code type = \"buffer\"} needs a design with a buffer.",
        i = "Create one with {.code rerandomize(..., buffer = adjacency)}."
      ))
    }
    cl <- tidy.mkt_design(x, what = "clusters")
    return(ggplot2::ggplot(cl, ggplot2::aes(x = .data$n_neighbours, y = .data$prob_control,
                                            colour = .data$arm)) +
      ggplot2::geom_jitter(width = 0.15, height = 0, size = 2, alpha = 0.8) +
      ggplot2::labs(x = "number of neighbours", y = "probability of being a control",
                    colour = "realized arm", title = "Buffer zones",
                    subtitle = "clusters with many neighbours are rarely kept as controls") +
      ggplot2::theme_minimal())
  }
  if (type == "balance") {
    b <- balance.mkt_design(x)
    long <- rbind(
      data.frame(term = b$term, value = b$expected_abs_std_diff_before,
                 what = "expected |std. diff.|, complete randomization"),
      data.frame(term = b$term, value = b$expected_abs_std_diff_after,
                 what = "expected |std. diff.|, acceptance rule"),
      data.frame(term = b$term, value = abs(b$std_diff), what = "realized |std. diff.|")
    )
    long$term <- factor(long$term, levels = rev(b$term))
    return(ggplot2::ggplot(long, ggplot2::aes(x = .data$value, y = .data$term,
                                              colour = .data$what, shape = .data$what)) +
      ggplot2::geom_vline(xintercept = 0, colour = "grey60") +
      ggplot2::geom_point(size = 2.5) +
      ggplot2::labs(x = "absolute standardized difference in means", y = NULL,
                    colour = NULL, shape = NULL, title = "Covariate balance") +
      ggplot2::theme_minimal() +
      ggplot2::theme(legend.position = "bottom", legend.direction = "vertical"))
  }
  cal <- data.frame(value = x$calibration)
  ggplot2::ggplot(cal, ggplot2::aes(x = .data$value)) +
    ggplot2::geom_histogram(bins = 60, fill = "grey70", colour = "white") +
    ggplot2::geom_vline(xintercept = sum(x$threshold), colour = "firebrick", linewidth = 0.8) +
    ggplot2::geom_vline(xintercept = x$criterion_value, colour = "steelblue",
                        linetype = "dashed", linewidth = 0.8) +
    ggplot2::labs(x = paste(x$criterion, "criterion"), y = "draws",
                  title = "Criterion under complete randomization",
                  subtitle = "red: acceptance threshold; blue dashed: chosen assignment") +
    ggplot2::theme_minimal()
}

#' Tidy, glance, print and plot a randomization test
#'
#' `tidy()` gives one row: the estimate, the observed statistic, the p-value
#' conditional on the acceptance rule and the interval from inverting it.
#' `glance()` adds the p-value and interval that ignore the rule
#' (`p.value_unconditional`), the number of reference draws, whether they
#' were enumerated, and the Monte Carlo standard error of the p-value.
#' `plot()` shows both reference distributions of the statistic under the
#' null and the observed value.
#'
#' @param x A result of [randomization_test()].
#' @param ... Unused.
#' @name randomization-test-methods
NULL

#' @rdname randomization-test-methods
#' @export
tidy.mkt_randomization_test <- function(x, ...) {
  data.frame(
    term = x$statistic_name, estimate = x$estimate, std.error = x$std.error,
    statistic = x$statistic, p.value = x$p.value,
    conf.low = x$conf.int[1], conf.high = x$conf.int[2],
    stringsAsFactors = FALSE
  )
}

#' @rdname randomization-test-methods
#' @export
glance.mkt_randomization_test <- function(x, ...) {
  data.frame(
    p.value = x$p.value, p.value_unconditional = x$p.value_unconditional,
    conf.low_unconditional = x$conf.int_unconditional[1],
    conf.high_unconditional = x$conf.int_unconditional[2],
    n_draws = x$n_draws[["conditional"]],
    n_draws_unconditional = x$n_draws[["unconditional"]],
    exact = x$exact, mc_se = x$mc_se[[1]], null = x$null,
    alternative = x$alternative, n_assignments = x$n_assignments,
    stringsAsFactors = FALSE
  )
}

#' @rdname randomization-test-methods
#' @export
print.mkt_randomization_test <- function(x, ...) {
  how <- if (x$exact) "exact enumeration" else
    paste(format(x$n_draws[["conditional"]], big.mark = ","), "draws")
  say("{.strong Randomization test} of a constant effect = {x$null} ({x$alternative}; {x$statistic_name}; {how})")
  say("Estimate {signif(x$estimate, 4)}; {round(100 * (1 - x$alpha))}% interval [{signif(x$conf.int[1], 4)}, {signif(x$conf.int[2], 4)}]")
  say("p-value conditional on the acceptance rule: {format.pval(x$p.value, digits = 3)}{if (!x$exact) paste0(' (MC s.e. ', signif(x$mc_se[[1]], 2), ')') else ''}")
  say("Ignoring the rule (conservative): p = {format.pval(x$p.value_unconditional, digits = 3)}, interval [{signif(x$conf.int_unconditional[1], 4)}, {signif(x$conf.int_unconditional[2], 4)}]")
  if (isTRUE(x$buffer)) {
    say("Buffer re-applied to every reference assignment; the p-value for no effect at all is exact under any spillover, the interval assumes none")
  }
  drift <- x$assignment_prob
  p <- mean(x$design$treated)
  off <- abs(drift - p) > 0.1
  if (!x$exact && any(off)) {
    say("{sum(off)} cluster{?s} {?is/are} treated with probability outside [{round(p - 0.1, 2)}, {round(p + 0.1, 2)}] under the rule: {.val {utils::head(names(drift)[off], 5)}}")
  }
  invisible(x)
}

#' @rdname randomization-test-methods
#' @export
plot.mkt_randomization_test <- function(x, ...) {
  ref <- rbind(
    data.frame(statistic = x$reference$conditional, reference = "conditional on the acceptance rule"),
    data.frame(statistic = x$reference$unconditional, reference = "ignoring the rule")
  )
  ggplot2::ggplot(ref, ggplot2::aes(x = .data$statistic, colour = .data$reference,
                                    fill = .data$reference)) +
    ggplot2::geom_density(alpha = 0.2) +
    ggplot2::geom_vline(xintercept = x$statistic, linewidth = 0.8) +
    ggplot2::labs(x = paste(x$statistic_name, "under the null"), y = "density",
                  colour = "reference distribution", fill = "reference distribution",
                  title = "Randomization distribution", subtitle = "vertical line: observed statistic") +
    ggplot2::theme_minimal() +
    ggplot2::theme(legend.position = "bottom")
}

