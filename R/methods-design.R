# Presentation of the design objects, which are not fits: designs
# (rerandomize), strata (stratify), simulated power (design_power) and
# experiment diagnostics. Their plots share the package's look (theme_mkt,
# mkt_colours) and are drawn from their tidy tables.

#' Covariate balance of a re-randomized design
#'
#' For each covariate: the means by arm, the realized standardized
#' difference \eqn{(\bar x_T - \bar x_C) / s_x} (stratum-weighted with
#' strata), and the expected absolute standardized difference before the rule
#' (under complete randomization of the base design) and after it (under the
#' acceptance rule), with the expected variance reduction \eqn{1 - v_a}.
#'
#' @param x A design from [rerandomize()].
#' @param ... Must be empty.
#' @return A data frame with one row per covariate: `term`, `mean_treated`,
#'   `mean_control`, `std_diff`, `expected_abs_std_diff_before`,
#'   `expected_abs_std_diff_after`, `variance_reduction`. For a design with
#'   several cells, one row per covariate per pair of cells (every treated
#'   cell against control, then every pair of treated cells): `cell`,
#'   `versus`, `term`, `mean_cell`, `mean_versus`, `std_diff` (of `cell`
#'   minus `versus`) and the same expected differences and variance
#'   reduction.
#' @examples
#' set.seed(1)
#' d <- data.frame(x1 = rnorm(80), x2 = rexp(80))
#' des <- rerandomize(d, ~ x1 + x2, n_treated = 40, accept = 0.05)
#' balance(des)
#' @export
balance <- function(x, ...) UseMethod("balance")

#' @export
balance.default <- function(x, ...) {
  abort_mkt("bad_argument", c(
    "{.fn balance} needs a design from {.fn rerandomize}.",
    x = "You supplied {.obj_type_friendly {x}}."
  ))
}

#' @rdname balance
#' @export
balance.mkt_design <- function(x, ...) {
  check_dots(...)
  if (isTRUE(x$multi_cell)) return(balance_cells(x))
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

# Balance of a multi-cell design, one row per covariate per pair of cells
# (every treated cell against control, then every pair of treated cells):
# the stratum-weighted difference in means of `cell` minus `versus` in
# standard deviations of the covariate, and its expected absolute value under
# complete randomization within strata and under the rule. The rule accepts a
# ball in the whitened coordinates of the stacked imbalance, so every linear
# contrast of it shrinks its variance by the same factor v_a.
balance_cells <- function(x) {
  X <- x$X
  d <- ncol(X)
  k <- length(x$cells)
  sd_x <- apply(X, 2, stats::sd)
  code <- cells_code(x)
  # With a buffer the control is the retained controls (buffer coded -1).
  if (!is.null(x$arm)) code[x$arm == "buffer"] <- -1L
  tau <- matrix(cells_imbalance(X, x$strata, code, k), d)  # d x (k - 1)
  tau <- cbind(0, tau)  # control's imbalance against itself
  V <- x$spec$cov
  block <- function(a, b) {  # covariance of tau_a and tau_b (0 = control)
    if (a == 0L || b == 0L) return(matrix(0, d, d))
    V[(a - 1L) * d + seq_len(d), (b - 1L) * d + seq_len(d), drop = FALSE]
  }
  pairs <- rbind(cbind(seq_len(k - 1L), 0L),
                 if (k > 2L) t(utils::combn(seq_len(k - 1L), 2L))[, 2:1, drop = FALSE])
  rows <- lapply(seq_len(nrow(pairs)), function(i) {
    a <- pairs[i, 1]
    b <- pairs[i, 2]
    v <- diag(block(a, a) + block(b, b) - block(a, b) - block(b, a))
    before <- sqrt(2 / pi) * sqrt(v) / sd_x
    data.frame(
      cell = x$cells[a + 1L], versus = x$cells[b + 1L], term = colnames(X),
      mean_cell = colMeans(X[code == a, , drop = FALSE]),
      mean_versus = colMeans(X[code == b, , drop = FALSE]),
      std_diff = (tau[, a + 1L] - tau[, b + 1L]) / sd_x,
      expected_abs_std_diff_before = before,
      expected_abs_std_diff_after = before * sqrt(1 - x$variance_reduction),
      variance_reduction = unname(x$variance_reduction),
      row.names = NULL, stringsAsFactors = FALSE
    )
  })
  do.call(rbind, rows)
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
#' A design is not a fit: it records the rule that drew the assignment, which
#' [randomization_test()], [rem_asymptotic()], [experiment_effect()],
#' [design_power()] and [spillover()] condition on. `tidy()` is the balance
#' table of [balance()]. `glance()` gives one row: the criterion of the
#' chosen assignment, the threshold, the acceptance probability asked for
#' and the realized acceptance rate in the calibration draws, the number of
#' candidates drawn, the mean expected variance reduction, and the expected
#' number of distinct acceptable assignments.
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
#' @param x,object A design from [rerandomize()].
#' @param what For `tidy()`: `"balance"` (the balance table of [balance()]),
#'   `"clusters"` (one row per cluster with its arm) or `"criterion"` (the
#'   criterion of each calibration draw under complete randomization and
#'   whether the rule accepts it: the data of the `"criterion"` plot, whose
#'   threshold and chosen value `glance()` gives).
#' @param type For `plot()` and `autoplot()`: `"balance"` (a love plot of
#'   standardized differences, with what complete randomization and the rule
#'   lead one to expect), `"criterion"` (the criterion's distribution under
#'   complete randomization, with the threshold and the chosen assignment
#'   marked) or, for designs with a buffer, `"buffer"`.
#' @param ... Must be empty (for `plot()`: passed to `autoplot()`).
#' @return `tidy()` and `glance()` data frames, `plot()` and `autoplot()` a
#'   ggplot; `print()` returns `x` invisibly.
#' @name design-methods
NULL

#' @rdname design-methods
#' @export
tidy.mkt_design <- function(x, what = c("balance", "clusters", "criterion"), ...) {
  check_dots(...)
  what <- check_choice(what)
  if (what == "balance") return(balance.mkt_design(x))
  if (what == "criterion") {
    return(data.frame(draw = seq_along(x$calibration), criterion = x$calibration,
                      accepted = x$calibration <= sum(x$threshold)))
  }
  if (isTRUE(x$multi_cell)) {
    out <- data.frame(id = x$ids, stratum = as.character(x$strata), cell = x$cell,
                      stringsAsFactors = FALSE)
    if (!is.null(x$buffer)) {
      out$arm <- x$arm
      out$n_neighbours <- x$buffer$degree
      for (a in colnames(x$arm_prob)) out[[paste0("prob_", a)]] <- unname(x$arm_prob[, a])
    }
    return(out)
  }
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
  check_dots(...)
  data.frame(
    criterion = x$criterion_value,
    threshold = sum(x$threshold),
    accept = prod(x$accept),
    acceptance_rate = x$acceptance_rate,
    candidates = x$candidates,
    variance_reduction = mean(x$variance_reduction),
    criterion_type = x$criterion,
    threshold_type = x$threshold_type,
    n_clusters = length(x$cell),
    n_treated = sum(x$cell != "control"),
    n_cells = length(x$cells),
    n_strata = nlevels(x$strata),
    n_acceptable = x$n_acceptable,
    n_control = if (is.null(x$arm)) sum(x$cell == "control") else sum(x$arm == "control"),
    n_buffer = if (is.null(x$arm)) 0L else sum(x$arm == "buffer"),
    admissible_rate = if (is.null(x$buffer)) 1 else x$buffer$admissible_rate,
    stringsAsFactors = FALSE
  )
}

#' @rdname design-methods
#' @export
print.mkt_design <- function(x, ...) {
  check_dots(...)
  if (isTRUE(x$multi_cell)) return(print_design_cells(x))
  g <- glance.mkt_design(x)
  lines <- c(
    sprintf("Re-randomized design (%s criterion, %s threshold)", x$criterion, x$threshold_type),
    sprintf("  %d of %d clusters treated, %d strat%s; covariates: %s", g$n_treated,
            g$n_clusters, g$n_strata, if (g$n_strata == 1L) "um" else "a",
            paste(x$covariates, collapse = ", ")),
    sprintf("  criterion %s <= threshold %s; accept = %s, realized rate %s",
            format_num(g$criterion), format_num(g$threshold), format(signif(g$accept, 3)),
            format(signif(g$acceptance_rate, 3))),
    sprintf("  %s candidates drawn; expected variance reduction %s%%",
            format(g$candidates, big.mark = ","), format(round(100 * g$variance_reduction, 1))),
    sprintf("  about %s distinct assignments pass the rule",
            format(signif(g$n_acceptable, 3), big.mark = ","))
  )
  if (!is.null(x$buffer)) {
    lines <- c(lines, sprintf(
      "  Buffer (%s, %s links): %d untreated neighbours of treated clusters excluded, %d controls kept; balance is treated vs kept controls",
      x$buffer$source, format(x$buffer$n_links), g$n_buffer, g$n_control),
      sprintf("  %s%% of base draws keep %d control%s per stratum; %d cluster%s a control in under 1%% of accepted draws",
              format(signif(100 * g$admissible_rate, 3)), x$min_per_arm,
              if (x$min_per_arm == 1L) "" else "s", sum(x$arm_prob[, "control"] < 0.01),
              if (sum(x$arm_prob[, "control"] < 0.01) == 1L) " is" else "s are"))
  }
  cat_wrapped(lines)
  invisible(x)
}

# The printout of a multi-cell design: its cells, the joint rule and the
# worst pairwise imbalance of each pair of cells.
print_design_cells <- function(x) {
  g <- glance.mkt_design(x)
  sizes <- table(x$cell)
  b <- balance_cells(x)
  b$pair <- paste(b$cell, "vs", b$versus)
  worst <- do.call(rbind, lapply(split(b, factor(b$pair, levels = unique(b$pair))), function(r) {
    r[which.max(abs(r$std_diff)), ]
  }))
  df <- x$spec$block_start[2]
  lines <- c(
    sprintf("Re-randomized design, %d cells (joint Mahalanobis criterion, %s threshold)",
            g$n_cells, x$threshold_type),
    sprintf("  cells: %s (%d clusters, %d strat%s)",
            paste(names(sizes), as.integer(sizes), collapse = ", "), g$n_clusters,
            g$n_strata, if (g$n_strata == 1L) "um" else "a"),
    sprintf("  covariates: %s", paste(x$covariates, collapse = ", ")),
    sprintf("  criterion %s <= threshold %s (%d df: %d contrasts x %d covariates)",
            format_num(g$criterion), format_num(g$threshold), df, g$n_cells - 1L,
            length(x$covariates)),
    sprintf("  accept = %s, realized rate %s; %s candidate%s drawn",
            format(signif(g$accept, 3)), format(signif(g$acceptance_rate, 3)),
            format(g$candidates, big.mark = ","), if (g$candidates == 1) "" else "s"),
    if (is.null(x$buffer)) {
      sprintf("  expected variance reduction %s%% for every covariate in every pair of cells",
              format(round(100 * g$variance_reduction, 1)))
    } else {
      sprintf("  variance reduction of the cell vs kept-control imbalances: %s%% to %s%%",
              format(round(100 * min(x$variance_reduction), 1)),
              format(round(100 * max(x$variance_reduction), 1)))
    },
    sprintf("  about %s distinct assignments pass the rule",
            format(signif(g$n_acceptable, 3), big.mark = ",")),
    if (!is.null(x$buffer)) {
      c(sprintf("  Buffer (%s, %s links): %d controls next to a treated cell excluded, %d controls kept; balance is each cell vs kept controls",
                x$buffer$source, format(x$buffer$n_links), sum(x$arm == "buffer"),
                sum(x$arm == "control")),
        sprintf("  %s%% of base draws keep %d control%s per stratum",
                format(signif(100 * x$buffer$admissible_rate, 3)), x$min_per_arm,
                if (x$min_per_arm == 1L) "" else "s"))
    },
    "  Largest standardized difference by pair of cells:"
  )
  cat_wrapped(lines)
  w <- max(nchar(worst$pair))
  cat(sprintf("    %-*s %7s  (%s)\n", w, worst$pair, formatC(worst$std_diff, 3, format = "f"),
              worst$term), sep = "")
  invisible(x)
}

#' @rdname design-methods
#' @export
plot.mkt_design <- function(x, ...) {
  autoplot(x, ...)
}

#' @rdname design-methods
#' @export
autoplot.mkt_design <- function(object, type = c("balance", "criterion", "buffer"), ...) {
  check_dots(...)
  type <- check_choice(type)
  x <- object
  if (type == "buffer") {
    if (is.null(x$buffer)) {
      abort_mkt("not_available", c(
        "{.code type = \"buffer\"} needs a design with a buffer.",
        i = "Create one with {.code rerandomize(..., buffer = adjacency)}."
      ))
    }
    cl <- tidy.mkt_design(x, what = "clusters")
    return(ggplot2::ggplot(cl, ggplot2::aes(x = .data$n_neighbours, y = .data$prob_control,
                                            colour = .data$arm)) +
      ggplot2::geom_jitter(width = 0.15, height = 0, size = 2, alpha = 0.8) +
      ggplot2::scale_colour_manual(values = c(treated = mkt_colours[["treated"]],
                                              control = mkt_colours[["control"]],
                                              buffer = mkt_colours[["synthetic"]]),
                                   drop = FALSE) +
      ggplot2::labs(x = "number of neighbours", y = "probability of being a control",
                    colour = "realized arm", title = "Buffer zones",
                    subtitle = "clusters with many neighbours are rarely kept as controls") +
      theme_mkt())
  }
  if (type == "balance") {
    b <- balance.mkt_design(x)
    what <- c("expected, complete randomization", "expected, acceptance rule", "realized")
    long <- rbind(
      data.frame(term = b$term, value = b$expected_abs_std_diff_before, what = what[1]),
      data.frame(term = b$term, value = b$expected_abs_std_diff_after, what = what[2]),
      data.frame(term = b$term, value = abs(b$std_diff), what = what[3])
    )
    long$term <- factor(long$term, levels = rev(unique(b$term)))
    long$what <- factor(long$what, levels = what)
    cells <- isTRUE(x$multi_cell)
    if (cells) {
      pair <- paste(b$cell, "vs", b$versus)
      long$pair <- factor(rep(pair, 3L), levels = unique(pair))
    }
    p <- ggplot2::ggplot(long, ggplot2::aes(x = .data$value, y = .data$term,
                                              colour = .data$what, shape = .data$what)) +
      ref_line("x") +
      ggplot2::geom_point(size = 2.5) +
      ggplot2::scale_colour_manual(values = stats::setNames(
        c(mkt_colours[["control"]], mkt_colours[["band"]], mkt_colours[["treated"]]), what)) +
      ggplot2::scale_shape_manual(values = stats::setNames(c(1, 2, 16), what)) +
      ggplot2::labs(x = "absolute standardized difference in means", y = NULL,
                    colour = NULL, shape = NULL,
                    title = if (cells) "Covariate balance by pair of cells" else "Covariate balance",
                    subtitle = "realized imbalance against what each rule leads one to expect") +
      theme_mkt()
    if (cells) p <- p + ggplot2::facet_wrap(~pair, ncol = 1L)
    return(p)
  }
  plot_criterion(x)
}

# The criterion's distribution under complete randomization, the accepted
# region shaded, the threshold (solid red) and the chosen assignment (dashed
# blue, with a marker on the axis), each labelled with its value on its own
# side and height so that the two stay readable when they nearly coincide.
# The threshold sits in the far left tail of a long-tailed distribution, so
# the axis is logarithmic when the draws span more than 20 times it.
plot_criterion <- function(x) {
  cal <- tidy.mkt_design(x, "criterion")
  cal$value <- cal$criterion
  thr <- sum(x$threshold)
  chosen <- x$criterion_value
  log_x <- all(cal$value > 0) && chosen > 0 && thr > 0 && max(cal$value) / thr > 20
  marks <- data.frame(x = c(thr, chosen),
                      label = c(sprintf("threshold %s", format_num(thr, 3)),
                                sprintf("chosen %s", format_num(chosen, 3))),
                      hjust = c(-0.08, 1.08), vjust = c(1.5, 3.5), what = c("threshold", "chosen"))
  left <- if (log_x) min(cal$value, chosen) else -Inf
  p <- ggplot2::ggplot(cal, ggplot2::aes(x = .data$value)) +
    ggplot2::annotate("rect", xmin = left, xmax = thr, ymin = -Inf, ymax = Inf,
                      fill = mkt_colours[["treated"]], alpha = 0.08) +
    ggplot2::geom_histogram(bins = 60, fill = mkt_colours[["band"]], colour = "white") +
    ggplot2::geom_vline(xintercept = thr, colour = mkt_colours[["effect"]], linewidth = 0.8) +
    ggplot2::geom_vline(xintercept = chosen, colour = mkt_colours[["treated"]],
                        linetype = "dashed", linewidth = 0.8) +
    ggplot2::geom_point(ggplot2::aes(x = .data$x, y = 0), data = marks[2, ], shape = 17,
                        size = 3, colour = mkt_colours[["treated"]], inherit.aes = FALSE) +
    ggplot2::geom_label(ggplot2::aes(x = .data$x, y = Inf, label = .data$label,
                                     hjust = .data$hjust, vjust = .data$vjust,
                                     colour = .data$what), data = marks, size = 3.2,
                        label.size = 0, fill = "white", inherit.aes = FALSE,
                        show.legend = FALSE) +
    ggplot2::scale_colour_manual(values = c(threshold = mkt_colours[["effect"]],
                                            chosen = mkt_colours[["treated"]])) +
    ggplot2::labs(x = paste0(if (isTRUE(x$multi_cell)) "joint ", x$criterion, " criterion",
                             if (log_x) " (log scale)"), y = "draws",
                  title = "Criterion under complete randomization",
                  subtitle = sprintf(paste0("shaded: assignments the rule accepts (%s%% of draws)\n",
                                            "red: threshold; blue dashed: chosen assignment"),
                                     format_num(100 * x$acceptance_rate, 2))) +
    theme_mkt()
  if (log_x) {
    p <- p + ggplot2::scale_x_log10(labels = function(b) {
      format(b, scientific = FALSE, drop0trailing = TRUE, trim = TRUE)
    })
  }
  p
}

# --- strata (stratify) ------------------------------------------------------

#' @rdname stratify
#' @param x A [stratify()] object.
#' @export
print.mkt_strata <- function(x, ...) {
  check_dots(...)
  what <- switch(x$method,
    quantile = sprintf("%d quantile bin%s of %s%s", x$bins, if (x$bins == 1) "" else "s",
                       x$size, if (length(x$by)) paste0(" within ", paste(x$by, collapse = " x ")) else ""),
    exact = sprintf("exact strata on %s", paste(x$by, collapse = " x ")),
    matched = sprintf("matched %s on %s",
                      if (x$block_size == 2L) "pairs" else sprintf("blocks of %d", x$block_size),
                      paste(deparse(x$covariates), collapse = " "))
  )
  cat_wrapped(c(
    sprintf("<mkt_strata> %d strata of %d clusters: %s", nlevels(x$stratum),
            length(x$stratum), what),
    if (is.null(x$n_by_stratum)) {
      sprintf("Expected arms at prop_treated = %s (at least %d per arm):",
              format(x$prop_treated), x$min_per_arm)
    } else {
      sprintf("Expected cells at shares %s (at least %d per cell):",
              paste(names(x$prop_treated), format(signif(x$prop_treated, 3)),
                    collapse = ", "), x$min_per_arm)
    },
    if (!is.null(x$buffer)) {
      sprintf("Buffer (%s): untreated neighbours of treated clusters are excluded; about %s clusters per draw",
              x$buffer$source, format(round(sum(x$n_buffer), 1)))
    }
  ))
  print.data.frame(tidy.mkt_strata(x), row.names = FALSE)
  invisible(x)
}

#' Tidy strata: clusters and expected arm sizes per stratum
#'
#' @param x A [stratify()] object.
#' @param ... Must be empty.
#' @return A data frame with one row per stratum: `stratum`, `n` (clusters),
#'   `n_treated` and `n_control` (expected arm sizes at `prop_treated`), and
#'   `n_buffer` (expected buffer clusters) when the strata carry a buffer.
#'   With several treated cells, `n_treated` is their total and a column
#'   `n_<cell>` gives each cell's size, `n_control` first.
#' @examples
#' s <- stratify(data.frame(size = 1:12), size = "size", bins = 2)
#' tidy(s)
#' @export
tidy.mkt_strata <- function(x, ...) {
  check_dots(...)
  out <- data.frame(stratum = names(x$table), n = as.integer(x$table),
                    n_treated = as.integer(x$n_treated), stringsAsFactors = FALSE)
  if (!is.null(x$n_by_stratum)) {
    cells <- x$n_by_stratum
    out <- cbind(out, stats::setNames(as.data.frame(unclass(cells), row.names = NULL),
                                      paste0("n_", colnames(cells))))
    return(out)
  }
  if (is.null(x$buffer)) {
    out$n_control <- as.integer(x$n_control)
  } else {
    out$n_control <- round(unname(x$n_control), 1)
    out$n_buffer <- round(unname(x$n_buffer), 1)
  }
  out
}

# --- simulated power (design_power) -------------------------------------------

#' Tidy, glance, print and plot simulated power
#'
#' `tidy()` gives one row per test length and effect: `power`, its Monte
#' Carlo standard error `mc_se` \eqn{= \sqrt{p(1-p)/n}} over the `n_sims`
#' simulated experiments, and the `bias` and `rmse` of the estimator in
#' percent of the window's mean cluster total (the control mean). With
#' `spend` (budget-first planning), `effect`, `bias` and `rmse` are in iROAS
#' units.
#'
#' `glance()` gives one row per test length:
#' * `mde`: the minimum detectable effect, the smallest effect of the grid
#'   with power at least `target_power`;
#' * `mde_interpolated`: where the linearly interpolated power curve
#'   crosses the target;
#' * `mde_reached`: `TRUE` when some effect of the grid reaches the target.
#'   When it is `FALSE` the MDE is not known, only that it exceeds
#'   `max_effect`, and `mde` and `mde_interpolated` are `NA` (never a number
#'   that would pass for an MDE); widen `effect` or lengthen the test;
#' * `max_effect` and `max_effect_power`: the largest non-negative effect
#'   of the grid and its power, always defined;
#' * `aa_rejection`: the rejection rate at zero effect, which should be
#'   close to `alpha`; `NA` when the grid does not include 0;
#' * `target_power`, `alpha` and `n_sims`.
#'
#' With `spend`, the MDE columns are in iROAS units, and `glance()` adds
#' `spend` (per period, as given), `mde_cost_per_unit` (\eqn{1 / MDE}, the
#' largest detectable cost per incremental unit) and, with a target return
#' (`iroas` or `cost_per_unit`): `target_iroas`, `power_at_target` (the
#' simulated power at that return and the planned spend), `spend_needed`
#' (the spend per period that reaches `target_power` at the target,
#' \eqn{|spend| \cdot MDE / iroas}) and `spend_needed_total` (times the test
#' length); the two spends are `NA` when the MDE is beyond the grid, and
#' `print()` then gives the bound.
#'
#' `print()` names the planned estimator and test, and states each MDE
#' honestly: a percentage when reached, otherwise a bound such as
#' "MDE > 8% (largest effect tried reached 63% power)". `plot()` draws the
#' power curves by test length with the target line, from `tidy()`.
#'
#' @param x,object A result of [design_power()].
#' @param ... Must be empty (for `plot()`: passed to `autoplot()`).
#' @name power-methods
NULL

#' @rdname power-methods
#' @export
tidy.mkt_power <- function(x, ...) {
  check_dots(...)
  x$power
}

#' @rdname power-methods
#' @export
glance.mkt_power <- function(x, ...) {
  check_dots(...)
  x$mde
}

#' @rdname power-methods
#' @export
print.mkt_power <- function(x, ...) {
  check_dots(...)
  g <- x$mde
  estimator <- if (x$method == "lin") "Lin's regression adjustment" else "difference in means"
  why <- if (identical(x$method_chosen_by, "default")) {
    if (x$method == "lin") {
      "  Lin's adjustment is the default with `pre`: the analysis will adjust for the design's covariates."
    } else {
      "  Difference in means is the default without `pre`; `method = \"lin\"` plans the adjusted analysis."
    }
  }
  pct <- function(v) paste0(format_num(100 * v, 3), "%")
  b <- x$budget
  unit <- if (is.null(b)) pct else function(v) paste("iROAS", format_num(v, 3))
  mde <- ifelse(g$mde_reached,
                paste("MDE", unit(g$mde_interpolated), "at", pct(g$target_power), "power"),
                sprintf("MDE > %s at %s power (largest effect tried reached %s power)",
                        unit(g$max_effect), pct(g$target_power), pct(g$max_effect_power)))
  aa <- ifelse(is.na(g$aa_rejection), "A/A not simulated (add 0 to effect)",
               sprintf("A/A rejection %s (alpha %s)", format_num(g$aa_rejection, 3),
                       format(g$alpha)))
  lines <- c(
    sprintf("Simulated power: %s, %s test, %s lift", estimator,
            if (x$inference == "hc2") "HC2 t" else "randomization", x$effect_type),
    why,
    if (!is.null(b)) sprintf(
      "  Budget: %s per period %s the treated arm's spend%s; effects are iROAS (incremental outcome per unit of spend)",
      format_num(abs(b$spend), 4), if (b$spend < 0) "removed from" else "added to",
      if (b$spend < 0) " (go-dark)" else ""),
    sprintf("  %d assignments from the design's rule x %d historical windows = %s experiments per cell",
            x$n_draws, x$n_windows, format(x$n_sims, big.mark = ",")),
    sprintf("  test length %d: %s; %s", g$test_length, mde, aa)
  )
  if (!is.null(b) && !is.na(b$iroas)) {
    target <- if (identical(b$stated_as, "cost_per_unit")) {
      sprintf("cost per unit %s (iROAS %s)", format_num(1 / b$iroas, 3), format_num(b$iroas, 3))
    } else sprintf("iROAS %s", format_num(b$iroas, 3))
    need <- ifelse(g$mde_reached,
                   sprintf("spend %s per period (%s in all)", format_num(g$spend_needed, 3),
                           format_num(g$spend_needed_total, 3)),
                   sprintf("spend above %s per period", format_num(
                     abs(b$spend) * g$max_effect / b$iroas, 3)))
    lines <- c(lines, sprintf("At %s:", target),
               sprintf("  test length %d: power %s at the planned spend; %s reaches %s power",
                       g$test_length, pct(g$power_at_target), need, pct(g$target_power)),
               if (is.na(b$shortest_length)) {
                 sprintf("  No test length tried reaches %s power at the planned spend.",
                         pct(x$target_power))
               } else {
                 sprintf("  Shortest test reaching %s power at the planned spend: %d periods.",
                         pct(x$target_power), b$shortest_length)
               })
  }
  cat_wrapped(lines)
  invisible(x)
}

#' @rdname power-methods
#' @export
plot.mkt_power <- function(x, ...) {
  autoplot(x, ...)
}

#' @rdname power-methods
#' @export
autoplot.mkt_power <- function(object, ...) {
  check_dots(...)
  d <- tidy.mkt_power(object)
  d$test_length <- factor(d$test_length)
  iroas <- !is.null(object$budget)
  if (!iroas) d$effect <- 100 * d$effect
  ggplot2::ggplot(d, ggplot2::aes(x = .data$effect, y = .data$power,
                                  colour = .data$test_length)) +
    power_curve_layers(object$target_power, object$alpha) +
    ggplot2::scale_colour_manual(values = grDevices::colorRampPalette(
      c(mkt_colours[["band"]], mkt_colours[["treated"]]))(nlevels(d$test_length))) +
    ggplot2::scale_y_continuous(limits = c(0, 1)) +
    ggplot2::labs(x = if (iroas) "iROAS" else "effect (% lift)", y = "power", colour = "test length (periods)",
                  title = "Simulated power by test length",
                  subtitle = "dashed: target power; dotted: alpha (A/A rejection at zero effect)") +
    theme_mkt()
}

# --- experiment diagnostics ---------------------------------------------------

#' @rdname experiment_diagnostics
#' @param x A result of `experiment_diagnostics()`.
#' @export
tidy.mkt_diagnostics <- function(x, ...) {
  check_dots(...)
  x$checks
}

#' @rdname experiment_diagnostics
#' @export
print.mkt_diagnostics <- function(x, ...) {
  check_dots(...)
  cat("Experiment diagnostics (tests fail below p = ", format(x$alpha), ")\n", sep = "")
  tab <- x$checks
  for (i in seq_len(nrow(tab))) {
    cat(sprintf("  %-8s %s\n", toupper(tab$verdict[i]), tab$check[i]))
    cat(paste0(strwrap(tab$message[i], width = 80, indent = 11, exdent = 11), "\n"), sep = "")
  }
  invisible(x)
}

# Lines of text, each wrapped to 80 columns (continuations indented).
cat_wrapped <- function(lines, width = 80) {
  for (l in lines) {
    lead <- nchar(l) - nchar(sub("^ +", "", l))
    cat(paste0(strwrap(l, width = width, indent = lead, exdent = lead + 2), "\n"), sep = "")
  }
  invisible()
}
