# design_power() for a design with several cells: each treated cell
# against the shared control. For each window and each assignment drawn from
# the design's rule (reference_cells()'s kernel, one stream per simulated
# experiment), an effect is injected into each treated cell, and each
# contrast is estimated as experiment_effect() would: the cell-indicator
# regression (with centred stratum indicators interacted with every cell),
# or Lin's fully interacted regression on the design's covariates, with HC2
# standard errors. A contrast's estimate depends only on its two cells, and
# its HC2 variance is quadratic in the effect injected into its treated
# cell, so one set of per-cell fits gives every effect of the grid.
#
# Budget first: `spend` gives each treated cell's change in spend per period
# (negative for a go-dark cell), `effect` a grid of iROAS values theta > 0,
# and a test of T periods injects theta * spend_c * T into cell c (relative
# effect theta * spend_c * T / (n_c * ybar) in a window of mean cluster total
# ybar): a go-dark cell's outcome falls when theta > 0.

design_power_cells <- function(formula, data, design, randomize_by, size, effect,
                               effect_missing, test_length, n_windows, pre, method,
                               effect_type, inference, n_draws, chunk_size, target_power,
                               alpha, spend, iroas, cost_per_unit, contrasts, call) {
  check_design(design, call = call)
  if (!is.null(design$buffer)) {
    abort_mkt("unsupported_design", c(
      "Power simulation counts every untreated cluster as a control, so it does not support buffered designs.",
      i = "Simulate power on the design without {.arg buffer}, then add the buffer at assignment time."
    ), call = call)
  }
  cells <- design$cells
  treated <- cells[-1]
  if (!identical(inference, "hc2") && !identical(inference, c("hc2", "randomization"))) {
    abort_mkt("inference_unsupported", c(
      "With several cells, {.fn design_power} simulates the HC2 t-test of each contrast.",
      i = "Use {.code inference = \"hc2\"}; the randomization test of each contrast has about the same power with Lin's estimator."
    ), call = call)
  }
  method_chosen_by <- if (is.null(method)) "default" else "user"
  method <- if (is.null(method)) {
    if (is.null(pre)) "diff_in_means" else "lin"
  } else {
    check_choice(method, c("lin", "diff_in_means"), call = call)
  }
  effect_type <- check_choice(effect_type, c("multiplicative", "additive"), call = call)
  alpha <- check_alpha(alpha, call = call)
  check_probability(target_power, "target_power", call = call)
  if (length(target_power) != 1L || target_power >= 1) {
    abort_mkt("bad_argument", "{.arg target_power} must be one number strictly between 0 and 1.",
              call = call)
  }
  budget <- cells_budget_args(spend, iroas, cost_per_unit, treated, call = call)
  grids <- cells_effect_grid(effect, effect_missing, treated, budget, call = call)
  pairs <- check_contrasts(contrasts, cells, call = call)
  if (!is.null(budget) && any(pairs[, 2] != 1L)) {
    abort_mkt("bad_contrast", c(
      "With {.arg spend}, {.fn design_power} plans each treated cell against control; {.arg contrasts} between treated cells are planned in lift units.",
      i = "Leave out {.arg spend} to plan {.arg contrasts}, or leave out {.arg contrasts}."
    ), call = call)
  }
  n_windows <- check_count(n_windows, "n_windows", min = 1, call = call)
  n_draws <- check_count(n_draws, "n_draws", min = 2, call = call)
  chunk_size <- check_count(chunk_size, "chunk_size", min = 1, call = call)
  if (!is.numeric(test_length) || !length(test_length) || anyNA(test_length) ||
      any(!is.finite(test_length)) || any(test_length < 1) ||
      any(test_length != round(test_length))) {
    abort_mkt("bad_argument", c(
      "{.arg test_length} must be whole numbers of periods, at least 1 and no longer than the panel.",
      x = "You supplied {.val {format(test_length)}}."
    ), call = call)
  }
  test_length <- sort(unique(as.integer(test_length)))
  if (!is.null(randomize_by)) check_name(randomize_by, "randomize_by", call = call)
  if (!is.null(size)) check_name(size, "size", call = call)
  if (is.data.frame(data)) {
    check_columns(data, randomize_by, "randomize_by", call = call)
    check_columns(data, size, "size", call = call)
  }
  panel <- as_panel(formula, data, extra = unique(c(randomize_by, size)), call = call)
  require_varying_outcome(panel$Y[panel$observed], panel$vars$outcome)

  hist <- power_panel(design, panel, randomize_by, size, call = call)
  n_t <- ncol(hist$Y)
  if (max(test_length) > n_t) {
    abort_mkt("bad_argument", c(
      "{.arg test_length} {max(test_length)} is longer than the data allow: {n_t} period{?s}.",
      i = "Use test lengths of at most {n_t} periods, or give a longer panel."
    ), call = call)
  }
  ends <- power_window_ends(n_t, max(test_length), n_windows, hist$times, pre,
                            panel$vars$time, call = call)
  windows <- power_window_totals(hist, ends, test_length, panel$vars$time, call = call)
  n_cell <- colSums(design$n_by_stratum)
  # Per window and treated cell, the multiplier from the grid to the
  # relative effect injected (1 without a budget).
  mult <- vapply(treated, function(cl) {
    if (is.null(budget)) return(rep(1, length(windows)))
    vapply(windows, function(w) budget$spend[[cl]] * w$test_length / (n_cell[[cl]] * w$mean),
           numeric(1))
  }, numeric(length(windows)))
  mult <- matrix(mult, length(windows), length(treated), dimnames = list(NULL, treated))
  if (effect_type == "multiplicative") {
    worst <- min(vapply(treated, function(cl) min(outer(mult[, cl], grids[[cl]])), numeric(1)))
    if (worst <= -1) {
      abort_mkt("bad_argument", c(
        "Some effect of the grid removes {format_num(-100 * worst, 3)}% of a cell's outcome in some window: more than it has.",
        i = "Use a smaller grid in {.arg effect}, a smaller go-dark {.arg spend}, or {.code effect_type = \"additive\"}."
      ), call = call)
    }
  }
  # Each contrast injects the grid of its first cell into that cell.
  first <- cells[pairs[, 1]]
  cgrids <- grids[first]
  cmult <- mult[, first, drop = FALSE]
  strata <- design$strata
  x_fit <- if (method == "lin") design$X else NULL
  welch <- method == "diff_in_means" && nlevels(strata) < 2L
  spec <- design$spec
  cap <- max(1e6, ceiling(100 / max(design$acceptance_rate, 1e-12)))
  seed <- draw_cpp_seed()
  threshold <- design$threshold
  k <- length(cells)

  chunks <- resample_chunks(n_draws, function(idx) {
    res <- draw_cells(spec, idx, seed, cap, threshold)
    if (!all(res$found)) {
      abort_mkt("no_acceptable_assignment", c(
        "Drawing assignments failed: {sum(!res$found)} of {length(idx)} draws found no accepted assignment in {format(cap, big.mark = ',')} candidates each.",
        i = "The rule accepts too rarely; re-create the design with a larger {.arg accept}."
      ))
    }
    lapply(seq_len(ncol(res$assignments)), function(i) {
      code <- as.integer(res$assignments[, i])
      x <- cells_regressors(x_fit, strata, code, k)
      if (!is.null(x)) x <- sweep(x, 2, colMeans(x))
      power_fits_cells(code, windows, cgrids, cmult, effect_type, hist$size, x, welch, alpha,
                       strata, pairs, k)
    })
  }, chunk_size = chunk_size, label = "simulated experiments", each = "chunk",
    globals = list())
  sims <- unlist(chunks, recursive = FALSE)

  scale <- if (is.null(budget)) 100 else 1
  terms <- contrast_terms(pairs, cells)
  power_tab <- do.call(rbind, lapply(seq_len(nrow(pairs)), function(c) {
    one <- lapply(sims, function(s) lapply(s, function(w) {
      list(estimate = w$estimate[[c]], reject = w$reject[[c]])
    }))
    tab <- power_summarise(one, windows, cgrids[[c]], test_length, scale = scale)
    cbind(contrast = terms[c], cell = first[c], tab, stringsAsFactors = FALSE)
  }))
  rownames(power_tab) <- NULL
  mde <- cells_power_mde(power_tab, target_power, alpha, budget)
  aa <- mde$aa_rejection
  if (any(!is.na(aa) & aa > alpha + 3 * mde$aa_mc_se)) {
    warn_mkt("aa_rejection", c(
      "At zero effect the test rejects in {.val {signif(max(aa, na.rm = TRUE), 3)}} of simulations, above {.arg alpha} = {alpha}.",
      i = "The HC2 test is anti-conservative on these windows; use more clusters per cell."
    ))
  }
  shortest <- NULL
  if (!is.null(budget) && !is.null(budget$iroas)) {
    shortest <- vapply(split(mde, factor(mde$contrast, levels = unique(mde$contrast))),
                       power_budget_shortest, integer(1), target_power = target_power)
  }
  structure(list(
    power = power_tab, mde = mde,
    windows = data.frame(end_index = ends, end_time = hist$times[ends]),
    n_sims = n_draws * length(ends), n_draws = n_draws, n_windows = length(ends),
    method = method, method_chosen_by = method_chosen_by, inference = "hc2",
    effect_type = effect_type, alpha = alpha, target_power = target_power,
    reference_draws = NA_integer_, design = design, cells = cells,
    budget = if (!is.null(budget)) {
      list(spend = budget$spend, iroas = budget$iroas %||% NA_real_,
           stated_as = budget$stated_as, shortest_length = shortest)
    }
  ), class = c("mkt_power_cells", "mkt_power"))
}

# Spend per treated cell: a named vector with one finite, non-zero change per
# period for every treated cell (negative for go-dark); NULL without spend.
cells_budget_args <- function(spend, iroas, cost_per_unit, treated, call = rlang::caller_env()) {
  if (is.null(spend)) return(power_budget_args(NULL, iroas, cost_per_unit, call = call))
  nm <- names(spend)
  if (!is.numeric(spend) || is.null(nm) || anyNA(spend) || any(!is.finite(spend))) {
    abort_mkt("bad_spend", c(
      "With several cells, {.arg spend} must be a named numeric vector: each treated cell's change in spend per period.",
      i = "For example {.code spend = c({treated[1]} = 20000{if (length(treated) > 1) paste0(', ', treated[2], ' = -10000')})}; negative for a go-dark cell."
    ), call = call)
  }
  miss <- setdiff(treated, nm)
  extra <- setdiff(nm, treated)
  if (length(miss) || length(extra)) {
    abort_mkt("bad_spend", c(
      "{.arg spend} must name every treated cell once: {.val {treated}}.",
      x = if (length(miss)) "No spend for {.val {miss}}.",
      x = if (length(extra)) "Not a treated cell: {.val {extra}}.",
      i = "A cell whose spend does not change has no iROAS; plan it in lift units, without {.arg spend}."
    ), call = call)
  }
  zero <- nm[spend == 0]
  if (length(zero)) {
    abort_mkt("bad_spend", c(
      "{.arg spend} is zero for {.val {zero}}, so an iROAS cannot be planned for {cli::qty(length(zero))}{?it/them}.",
      i = "Give the change in spend per period (negative for go-dark), or plan in lift units without {.arg spend}."
    ), call = call)
  }
  b <- power_budget_args(1, iroas, cost_per_unit, call = call)
  b$spend <- spend[treated]
  b
}

# The grid of effects of each treated cell (a named list), each with 0 for
# the A/A row. A numeric grid serves every cell; a named list or named
# vector gives each cell its own (a go-dark cell's lift may be negative).
# With a budget the grid is of iROAS values, common to every cell.
cells_effect_grid <- function(effect, effect_missing, treated, budget,
                              call = rlang::caller_env()) {
  if (!is.null(budget) && effect_missing) effect <- power_budget_grid(budget, call = call)
  ok_grid <- function(v) is.numeric(v) && length(v) && all(is.finite(v))
  per_cell <- !is.null(names(effect)) && all(names(effect) %in% treated)
  if (per_cell) {
    if (!is.null(budget)) {
      abort_mkt("bad_argument", c(
        "With {.arg spend}, {.arg effect} is one grid of iROAS values for every cell.",
        i = "Give each cell's spend in {.arg spend} and a common grid, e.g. {.code effect = seq(0, 4, by = 0.5)}."
      ), call = call)
    }
    effect <- as.list(effect)
    if (!all(vapply(effect, ok_grid, logical(1))) || !setequal(names(effect), treated)) {
      abort_mkt("bad_argument", c(
        "{.arg effect} per cell must give a numeric grid for every treated cell: {.val {treated}}.",
        i = "For example {.code effect = list({treated[1]} = c(0.02, 0.05){if (length(treated) > 1) paste0(', ', treated[2], ' = c(-0.03, -0.08)')})}."
      ), call = call)
    }
    grids <- effect[treated]
  } else {
    if (!ok_grid(effect) || !is.null(names(effect))) {
      abort_mkt("bad_argument", c(
        "{.arg effect} must be a numeric grid for every cell, or a list naming each treated cell ({.val {treated}}).",
        i = "For example {.code effect = seq(0, 0.1, by = 0.02)}."
      ), call = call)
    }
    if (!is.null(budget) && any(effect < 0)) {
      abort_mkt("bad_argument", c(
        "With {.arg spend}, {.arg effect} is a grid of iROAS values, which are positive for a working channel whether spend is added or removed.",
        i = "A go-dark cell takes a negative {.arg spend}, not a negative iROAS."
      ), call = call)
    }
    grids <- rep(list(as.numeric(effect)), length(treated))
    names(grids) <- treated
  }
  if (!is.null(budget$iroas)) grids <- lapply(grids, c, budget$iroas)
  lapply(grids, function(v) {
    v <- sort(unique(c(0, as.numeric(v))))
    if (all(v <= 0)) rev(v) else v
  })
}

# Estimates (relative to the window's mean, or in the grid's units with a
# budget) and rejections of each treated cell against control over its
# grid, for one assignment (cell codes) and every window (a list over
# windows). Each cell's regression depends on the assignment only, so it is
# decomposed once and applied to the outcomes of every window at once.
power_fits_cells <- function(code, windows, grids, mult, effect_type, size, x, welch, alpha,
                             strata = NULL, pairs = NULL, k = length(grids) + 1L) {
  # Contrast c compares cell pairs[c, 1] (into which grids[[c]] is
  # injected, times mult[, c]) with cell pairs[c, 2] (1-based).
  if (is.null(pairs)) pairs <- cbind(seq_len(k - 1L) + 1L, 1L)
  Y <- vapply(windows, `[[`, numeric(length(code)), "y")
  Y <- matrix(Y, length(code))
  means <- vapply(windows, `[[`, numeric(1), "mean")
  G <- if (effect_type == "multiplicative") Y
       else if (is.null(size)) matrix(means, nrow(Y), ncol(Y), byrow = TRUE)
       else outer(size / mean(size), means)
  if (is.null(x) && !is.null(strata) && is_matched_cells(strata, code, k)) {
    return(power_fits_matched(code, strata, Y, G, means, grids, mult, alpha, pairs, k))
  }
  fits <- lapply(seq_len(k) - 1L, function(cl) {
    rows <- which(code == cl)
    X1 <- if (is.null(x)) matrix(1, length(rows), 1L) else cbind(1, x[rows, , drop = FALSE])
    qx <- qr(X1)
    Q <- qr.Q(qx)
    h <- rowSums(Q^2)
    Rinv <- backsolve(qr.R(qx), diag(ncol(X1)))
    a1 <- as.vector(Q %*% t(Rinv)[, order(qx$pivot), drop = FALSE][, 1])
    cw <- a1^2 / (1 - h)
    Yr <- Y[rows, , drop = FALSE]
    Gr <- G[rows, , drop = FALSE]
    Ey <- Yr - Q %*% crossprod(Q, Yr)
    Eg <- Gr - Q %*% crossprod(Q, Gr)
    list(mu_y = colSums(a1 * Yr), mu_g = colSums(a1 * Gr), v0 = colSums(cw * Ey^2),
         v1 = colSums(cw * Ey * Eg), v2 = colSums(cw * Eg^2), n = length(rows),
         p = ncol(X1))
  })
  df_res <- length(code) - sum(vapply(fits, `[[`, numeric(1), "p"))
  lapply(seq_along(windows), function(j) {
    out_est <- out_rej <- vector("list", nrow(pairs))
    for (c in seq_len(nrow(pairs))) {
      f <- fits[[pairs[c, 1]]]
      f0 <- fits[[pairs[c, 2]]]
      delta <- grids[[c]] * mult[j, c]
      est <- f$mu_y[j] + delta * f$mu_g[j] - f0$mu_y[j]
      vc <- pmax(f$v0[j] + 2 * delta * f$v1[j] + delta^2 * f$v2[j], 0)
      v <- vc + f0$v0[j]
      df <- if (welch) v^2 / (vc^2 / (f$n - 1) + f0$v0[j]^2 / (f0$n - 1)) else df_res
      p <- 2 * stats::pt(-abs(est) / sqrt(pmax(v, 1e-300)), df)
      out_est[[c]] <- est / means[j] / mult[j, c]
      out_rej[[c]] <- p <= alpha
    }
    list(estimate = out_est, reject = out_rej)
  })
}

# power_fits_cells() for matched blocks (one cluster of every cell per
# stratum) and the difference in means: each contrast is the mean of its
# block differences, with their spread as variance and S - 1 degrees of
# freedom; both are linear and quadratic in the injected effect.
power_fits_matched <- function(code, strata, Y, G, means, grids, mult, alpha, pairs, k) {
  S <- nlevels(strata)
  w_s <- block_weights(strata)
  lapply(seq_along(means), function(j) {
    out_est <- out_rej <- vector("list", nrow(pairs))
    My <- block_cell_means(Y[, j], strata, code, k)
    Mg <- block_cell_means(G[, j], strata, code, k)
    for (c in seq_len(nrow(pairs))) {
      # Weighted block differences of cell means; the effect is injected
      # into the first cell of the contrast only.
      dy <- w_s * (My[, pairs[c, 1]] - My[, pairs[c, 2]])
      dg <- w_s * Mg[, pairs[c, 1]]
      delta <- grids[[c]] * mult[j, c]
      est <- sum(dy) + delta * sum(dg)
      cy <- dy - mean(dy)
      cg <- dg - mean(dg)
      v <- pmax(sum(cy^2) + 2 * delta * sum(cy * cg) + delta^2 * sum(cg^2), 0) * S / (S - 1)
      p <- 2 * stats::pt(-abs(est) / sqrt(pmax(v, 1e-300)), S - 1)
      out_est[[c]] <- est / means[j] / mult[j, c]
      out_rej[[c]] <- p <= alpha
    }
    list(estimate = out_est, reject = out_rej)
  })
}

# The MDE of each contrast and test length, on the side of its grid (the
# smallest |effect| whose power reaches the target, and where the
# interpolated power curve crosses it), with the A/A rejection rate and its
# Monte Carlo error; with a budget, in iROAS units with the spend needed.
cells_power_mde <- function(tab, target_power, alpha, budget) {
  keys <- unique(tab[c("contrast", "cell", "test_length")])
  rows <- lapply(seq_len(nrow(keys)), function(i) {
    d <- tab[tab$contrast == keys$contrast[i] & tab$test_length == keys$test_length[i], ]
    side <- if (all(d$effect <= 0)) -1 else 1
    dp <- d[side * d$effect >= 0, ]
    dp <- dp[order(abs(dp$effect)), ]
    hit <- which(dp$power >= target_power)
    mde <- mde_i <- NA_real_
    if (length(hit)) {
      j <- hit[1]
      mde <- mde_i <- dp$effect[j]
      if (j > 1L) {
        p0 <- dp$power[j - 1]
        mde_i <- dp$effect[j - 1] + (target_power - p0) / (dp$power[j] - p0) *
          (dp$effect[j] - dp$effect[j - 1])
      }
    }
    top <- nrow(dp)
    aa <- d$power[d$effect == 0]
    out <- data.frame(contrast = keys$contrast[i], cell = keys$cell[i],
                      test_length = keys$test_length[i], mde = mde, mde_interpolated = mde_i,
                      mde_reached = length(hit) > 0L, max_effect = dp$effect[top],
                      max_effect_power = dp$power[top], target_power = target_power,
                      aa_rejection = aa, aa_mc_se = sqrt(aa * (1 - aa) / d$n_sims[1]),
                      alpha = alpha, n_sims = d$n_sims[1], stringsAsFactors = FALSE)
    if (!is.null(budget)) {
      s <- budget$spend[[keys$cell[i]]]
      out$spend <- s
      out$mde_cost_per_unit <- 1 / mde_i
      if (!is.null(budget$iroas)) {
        out$target_iroas <- budget$iroas
        out$power_at_target <- d$power[match(budget$iroas, d$effect)]
        out$spend_needed <- abs(s) * mde_i / budget$iroas
        out$spend_needed_total <- out$spend_needed * out$test_length
      }
    }
    out
  })
  out <- do.call(rbind, rows)
  rownames(out) <- NULL
  out
}
