# The compiled rule of a design, shared by every function that draws from it:
# rerandomize() makes the rule, randomization_test(), design_power() and
# spillover() draw reference assignments from it, experiment_effect() and
# rem_asymptotic() read its weights and limit law. Nothing here reads user
# data: the inputs are checked in design-input.R first.

# Per-cluster vectors z_j such that the criterion is a function of the sum of
# z_j over treated clusters (see src/rerandomize.h). Works for any strata;
# without strata it reduces to Morgan and Rubin's statistic.
design_spec <- function(X, strata, alloc, tier, criterion) {
  n <- nrow(X)
  lev <- levels(strata)
  s_idx <- as.integer(strata)
  sizes <- as.vector(table(strata))
  n1 <- alloc
  n0 <- sizes - alloc
  pi_s <- sizes / n
  Xc <- X
  cov_sre <- matrix(0, ncol(X), ncol(X))
  for (s in seq_along(lev)) {
    rows <- which(s_idx == s)
    xs <- X[rows, , drop = FALSE]
    Xc[rows, ] <- sweep(xs, 2, colMeans(xs))
    if (length(rows) > 1L) {
      cov_sre <- cov_sre + pi_s[s]^2 * stats::cov(xs) * (1 / n1[s] + 1 / n0[s])
    }
  }
  U <- Xc * (pi_s[s_idx] * sizes[s_idx] / (n1[s_idx] * n0[s_idx]))
  if (criterion == "max_abs") {
    sd_tau <- sqrt(diag(cov_sre))
    Z <- sweep(U, 2, sd_tau, "/")
    L <- diag(sd_tau, ncol(X))
    block_start <- c(0L, ncol(X))
    crit_type <- 1L
  } else {
    # Columns come tier by tier (design_covariates), so the Cholesky factor
    # residualizes each tier on the earlier ones.
    R <- chol(cov_sre)  # cov = R'R; L = R' maps whitened sums to imbalances
    L <- t(R)
    Z <- t(backsolve(R, t(U), transpose = TRUE))
    block_start <- as.integer(c(0L, cumsum(table(factor(tier, levels = unique(tier))))))
    crit_type <- 0L
  }
  units <- unlist(lapply(seq_along(lev), function(s) which(s_idx == s))) - 1L
  list(
    z = t(Z), crit_type = crit_type, block_start = block_start,
    units = as.integer(units), start = as.integer(c(0L, cumsum(sizes))),
    n_small = as.integer(pmin(n1, n0)), small_treated = as.integer(n1 <= n0),
    n_treated = as.integer(n1), L = L, cov = cov_sre, n_blocks = length(block_start) - 1L
  )
}

# Accepted assignments (columns) of the design's rule. One assignment
# (rerandomize()) is the first accepted candidate of one stream, searched on
# all threads; several are one per replicate, each from its own stream
# (draw_assignments()), with `max_candidates` shared out among them. Long
# searches report progress through progressr; the kernel polls for
# interrupts on the main thread.
run_search <- function(spec, want, max_candidates, threshold = spec$threshold,
                       label = NULL, threads = threads_for()) {
  if (want > 1 || !is.null(spec$buffer)) {
    return(draw_assignments(spec, seq_len(want), draw_cpp_seed(),
                            budget = ceiling(max_candidates / want), threshold = threshold,
                            threads = threads))
  }
  progress <- search_progress(label, max_candidates)
  res <- cpp_rerandomize_first(
    spec$z, spec$units, spec$start, spec$n_small, spec$small_treated,
    spec$crit_type, spec$block_start, threshold, draw_cpp_seed(),
    max_candidates, 4096L, threads, progress
  )
  if (!is.null(progress)) progress(res$candidates)
  res
}

# A progress callback for a search of at most `max_candidates`, or NULL.
search_progress <- function(label, max_candidates) {
  if (is.null(label)) return(NULL)
  p <- progressr::progressor(steps = 100L, label = label)
  reported <- 0L
  function(done) {
    now <- as.integer(floor(100 * done / max_candidates))
    if (now > reported) {
      p(amount = now - reported)
      reported <<- now
    }
    invisible(NULL)
  }
}

# One accepted assignment per replicate index in `replicates`, replicate i
# drawing from stream i of `seed` until a candidate passes (at most `budget`
# candidates): the assignment of replicate i depends only on the seed and i,
# so a resampling loop gives the same draws for any chunk size, plan or
# thread count. A design with a buffer re-applies its rule to every
# candidate (unless `buffered = FALSE`: then the base design's candidates).
# Returns the found assignments in replicate order, their criterion values,
# the candidates drawn, the best criterion seen and which replicates found one.
draw_assignments <- function(spec, replicates, seed, budget, threshold = spec$threshold,
                             threads = threads_for(), buffered = !is.null(spec$buffer)) {
  res <- cpp_rerandomize_each(
    spec$z, spec$units, spec$start, spec$n_small, spec$small_treated,
    spec$crit_type, spec$block_start, as.numeric(threshold), seed, as.numeric(replicates),
    budget, threads, if (buffered) buffer_kernel_spec(spec), NULL
  )
  found <- res$found == 1L
  list(assignments = res$assignments[, found, drop = FALSE],
       values = res$values[, found, drop = FALSE], candidates = sum(res$candidates),
       best = min(res$best, Inf), found = found, coin_flips = res$coin_flips)
}

# The buffer rule as the kernel reads it.
buffer_kernel_spec <- function(spec) {
  b <- spec$buffer
  list(X = b$X, L = spec$L, s_idx0 = b$s_idx - 1L, n1 = b$n1, pi_s = b$pi_s,
       nb_start = b$nb_start, nb_idx = b$nb_idx, min_controls = b$min_controls)
}

expected_acceptable <- function(strata, alloc, p_accept) {
  sizes <- as.vector(table(strata))
  exp(sum(lchoose(sizes, alloc))) * p_accept
}

design_hash <- function(des) {
  con <- rawConnection(raw(0), "wb")
  on.exit(close(con))
  parts <- list(des$treated, des$X, as.integer(des$strata), des$n_treated_by_stratum,
                des$threshold, des$tier, nchar(des$criterion), des$spec$z,
                as.integer(des$cell), des$n_by_stratum, des$cells,
                as.integer(isTRUE(des$multi_cell)))
  if (!is.null(des$buffer)) {
    parts <- c(parts, list(des$buffer$A, des$arm_prob, des$spec$buffer$A,
                           des$spec$buffer$min_controls, as.integer(des$arm)))
  }
  for (x in parts) {
    if (is.null(x)) next
    writeBin(as.vector(x), con)
  }
  bytes <- rawConnectionValue(con)
  tmp <- tempfile()
  on.exit(unlink(tmp), add = TRUE)
  writeBin(bytes, tmp)
  unname(tools::md5sum(tmp))
}

check_design <- function(design, call = rlang::caller_env()) {
  if (!inherits(design, "mkt_design")) {
    abort_mkt("bad_design", c(
      "{.arg design} must be a design made by {.fn rerandomize}.",
      x = "It is of class {.cls {class(design)}}."
    ), call = call)
  }
  if (!identical(design_hash(design), design$hash)) {
    abort_mkt("design_modified", c(
      "This design object was altered after {.fn rerandomize} created it.",
      i = "Inference conditional on the acceptance rule needs the rule as it was drawn.",
      i = "Re-create the design with {.fn rerandomize} instead of editing it."
    ), call = call)
  }
  invisible(design)
}

# What the buffered criterion needs besides the kernel specification; the
# neighbour lists also go to C++ in compressed form (0-based).
buffer_spec <- function(rule, X, strata, alloc, min_per_arm) {
  sizes <- as.vector(table(strata))
  list(nb = rule$nb, A = rule$A, s_idx = as.integer(strata), n1 = as.numeric(alloc),
       pi_s = sizes / length(strata), X = X, min_controls = as.integer(min_per_arm),
       nb_start = as.integer(c(0L, cumsum(lengths(rule$nb)))),
       nb_idx = as.integer(unlist(rule$nb) - 1L), rate = 1)
}

# Criterion values of assignments W (N x R) under the buffer: the
# stratum-weighted difference in covariate means between treated and
# retained controls, whitened by the base design's covariance (so that, with
# an empty buffer, it equals the kernel's criterion). Assignments leaving a
# stratum fewer than `min_controls` controls are inadmissible (value Inf).
# Scored in C++ (src/rerandomize.h); `kept` counts retained controls per
# stratum (S x R).
buffered_values <- function(spec, W, threads = threads_for()) {
  b <- spec$buffer
  if (!is.matrix(W) || nrow(W) != nrow(b$X) || anyNA(W)) {
    abort_mkt("bad_argument", "Assignments must be a complete 0/1 matrix with one row per cluster.")
  }
  storage.mode(W) <- "integer"
  if (as.numeric(ncol(W)) * nrow(W) < 4e6) threads <- 1L
  res <- cpp_buffer_values(b$X, b$s_idx - 1L, b$n1, b$pi_s, b$nb_start, b$nb_idx,
                           spec$L, spec$crit_type, spec$block_start, b$min_controls, W,
                           threads)
  res$admissible <- is.finite(res$values[1, ])
  res
}

# Candidates of the base design (complete randomization within strata),
# every threshold open, one per replicate stream.
base_draws <- function(spec, m, threads = threads_for()) {
  draw_assignments(spec, seq_len(m), draw_cpp_seed(), budget = 1,
                   threshold = rep(Inf, spec$n_blocks), threads = threads,
                   buffered = FALSE)$assignments
}

# Which buffered candidates pass: admissible (finite values; an open
# threshold of Inf must not admit them) and within every block's threshold.
passes <- function(values, threshold) {
  ok <- is.finite(values[1, ])
  for (k in seq_len(nrow(values))) ok <- ok & values[k, ] <= threshold[k]
  ok
}

# Accepted assignments of the rule with thresholds `threshold`: all of them
# when enumerating, otherwise `n_draws` drawn on the resampling layer, one
# per replicate from the replicate's own stream (draw_assignments()), so the
# pool is the same for any chunk size, plan and thread count. With a buffer
# the same rule is re-applied to every assignment: the buffer is recomputed,
# inadmissible assignments are dropped, and balance is measured against the
# retained controls.
#
# Without `summarise` the assignments (N x R) are returned. With it, each
# chunk is reduced at once to summarise(W) (columns bound over chunks) and
# the number of times each cluster is treated, so a pool of ten million draws
# never holds their assignments. `rate` is the rule's acceptance rate: each
# replicate may draw 100 / rate candidates (at least a million) before the
# rule is declared too rare.
reference_pool <- function(spec, threshold, exact, n_draws, chunk_size, rate,
                           summarise = NULL, call = rlang::caller_env()) {
  n <- length(spec$units)
  if (exact) {
    n_total <- exp(sum(lchoose(diff(spec$start), spec$n_treated)))
    check_memory(4 * n * n_total, "Enumerating every assignment",
                 "Lower {.arg exact_max} so that the assignments are drawn instead.", call = call)
    open <- if (is.null(spec$buffer)) threshold else rep(Inf, length(threshold))
    en <- cpp_rerandomize_enumerate(spec$z, spec$units, spec$start, spec$n_treated,
                                    spec$crit_type, spec$block_start, open)
    W <- en$assignments
    if (!is.null(spec$buffer)) {
      W <- W[, passes(buffered_values(spec, W)$values, threshold), drop = FALSE]
    }
    if (is.null(summarise)) return(list(assignments = W, candidates = en$total))
    return(list(summaries = summarise(W), row_sums = rowSums(W), n = ncol(W),
                candidates = en$total))
  }
  per_draw <- if (is.null(summarise)) 4 * n else 5 * 8
  check_memory(2 * per_draw * n_draws, "The reference assignments",
               "Use fewer {.arg n_draws}.", call = call)
  budget <- max(1e6, ceiling(100 / max(rate, 1e-12)))
  seed <- draw_cpp_seed()
  chunks <- resample_chunks(n_draws, function(idx) {
    res <- draw_assignments(spec, idx, seed, budget, threshold)
    if (!all(res$found)) {
      abort_mkt("no_acceptable_assignment", c(
        "Drawing reference assignments failed: {sum(!res$found)} of {length(idx)} draws found no accepted assignment in {format(budget, big.mark = ',')} candidates each.",
        i = "The rule accepts too rarely; re-create the design with a larger {.arg accept}."
      ))
    }
    if (is.null(summarise)) {
      return(list(assignments = res$assignments, candidates = res$candidates))
    }
    list(summaries = summarise(res$assignments), row_sums = rowSums(res$assignments),
         candidates = res$candidates)
  }, chunk_size = chunk_size, label = "reference assignments", each = "chunk",
    globals = list())
  candidates <- sum(vapply(chunks, `[[`, numeric(1), "candidates"))
  if (is.null(summarise)) {
    return(list(assignments = do.call(cbind, lapply(chunks, `[[`, "assignments")),
                candidates = candidates))
  }
  list(summaries = do.call(cbind, lapply(chunks, `[[`, "summaries")),
       row_sums = Reduce(`+`, lapply(chunks, `[[`, "row_sums")), n = n_draws,
       candidates = candidates)
}

# Inverse-probability weights of each cluster in the treated and control
# arms under a buffered design. Probabilities are estimated from a finite set
# of accepted draws, so they are floored at half a draw: a cluster that was
# never a control in those draws gets the largest weight, not an infinite one.
arm_weights <- function(design) {
  p <- design$arm_prob
  floor_p <- 0.5 / 2000
  list(treated = 1 / pmax(p[, "treated"], floor_p), control = 1 / pmax(p[, "control"], floor_p))
}

# The regressors of Lin's estimator besides the treatment, decided here
# once for experiment_effect(), randomization_test(statistic = "lin_t") and
# design_power(method = "lin"): the covariates X and, when every stratum
# holds at least two clusters in each arm (`n_treated`, `n_control` per
# stratum), the stratum indicators. Smaller strata (matched pairs) leave
# their indicators out: with them every arm would need a parameter per
# stratum (31 for 15 pairs of 30 clusters), more than it has clusters.
lin_regressors <- function(X, strata, n_treated, n_control) {
  if (!is.null(strata) && nlevels(strata) > 1L && all(n_treated >= 2L & n_control >= 2L)) {
    X <- cbind(X, stats::model.matrix(~ strata)[, -1, drop = FALSE])
  }
  X
}

# Lin's regressors of a design (lin_regressors()), centred at the
# full-sample mean.
lin_covariates <- function(design) {
  alloc <- design$n_treated_by_stratum
  x <- lin_regressors(design$X, design$strata, alloc, as.vector(table(design$strata)) - alloc)
  x <- sweep(x, 2, colMeans(x))
  storage.mode(x) <- "double"
  x
}

# Centred stratum indicators: Lin's regression on them is the
# stratum-weighted difference in means. When strata are too small for them
# (lin_regressors(): matched pairs) they are left out as in the Lin rows of
# experiment_effect(); with pairs, treating one of two in every pair, the
# plain difference in means is the stratum-weighted one.
strata_covariates <- function(design) {
  alloc <- design$n_treated_by_stratum
  x <- lin_regressors(matrix(0, length(design$ids), 0L), design$strata, alloc,
                      as.vector(table(design$strata)) - alloc)
  sweep(x, 2, colMeans(x))
}

# Variance factor v_a of a Mahalanobis rule with k covariates and threshold a
# (Morgan and Rubin 2012): Var under the rule / Var under complete randomization.
rem_va <- function(a, k) {
  ifelse(is.finite(a), stats::pchisq(a, k + 2) / stats::pchisq(a, k), 1)
}

# Accepted assignments of the design (N x R, design order), enumerated when
# there are few enough, as for the randomization test; reference_pool()
# re-applies a design's buffer rule.
exposure_pool <- function(design, n_draws) {
  sizes <- as.vector(table(design$strata))
  n_total <- exp(sum(lchoose(sizes, design$n_treated_by_stratum)))
  reference_pool(design$spec, design$threshold, n_total <= 2e4, n_draws, 500L,
                 design$acceptance_rate)
}

# --- several cells ---------------------------------------------------------------

# Cell codes of a design's assignment: 0 = control, 1.. the treated cells in
# the order of design$cells (a two-arm design's treated clusters are 1).
cells_code <- function(design) {
  as.integer(design$cell) - 1L
}

# Functions that read design$treated and are not extended to several cells
# refuse a multi-cell design here, saying how to analyse one contrast.
check_two_cell <- function(design, what, call = rlang::caller_env()) {
  if (is.null(design) || !isTRUE(design$multi_cell)) return(invisible(design))
  cells <- design$cells
  abort_mkt("multi_cell_unsupported", c(
    "{.fn {what}} works with two-arm designs only; this design has {length(cells)} cells: {.val {cells}}.",
    i = "To analyse one contrast, keep the clusters of two cells, e.g. {.code keep <- design$cell %in% c(\"control\", \"{cells[2]}\")}, and give the treatment as 0/1 without the design.",
    i = "Or use {.fn experiment_effect}, which reports every cell against control."
  ), cells = cells, call = call)
}


# A rule that few assignments pass limits the attainable randomization
# p-values: say so when a design is made.
warn_granular <- function(des) {
  if (des$n_acceptable >= 1e4) return(invisible(des))
  warn_mkt("granular_inference", c(
    "About {format(round(des$n_acceptable))} distinct assignments pass this rule.",
    i = "The smallest attainable randomization p-value is near {signif(1 / des$n_acceptable, 2)}.",
    i = "Raise {.arg accept} or use more clusters for finer inference."
  ))
}
