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

# Draws `want` accepted assignments (columns) from the design's rule.
# Long searches report progress through progressr: the kernel calls back
# between rounds on the main thread, where it also polls for interrupts.
run_search <- function(spec, want, max_candidates, threshold = spec$threshold,
                       label = NULL, threads = mkt_threads()) {
  if (!is.null(spec$buffer)) {
    return(buffered_search(spec, want, max_candidates, threshold, threads))
  }
  progress <- NULL
  if (!is.null(label)) {
    p <- progressr::progressor(steps = 100L, label = label)
    reported <- 0L
    progress <- function(done) {
      now <- as.integer(floor(100 * done / max_candidates))
      if (now > reported) {
        p(amount = now - reported)
        reported <<- now
      }
      invisible(NULL)
    }
  }
  cpp_rerandomize_search(
    spec$z, spec$units, spec$start, spec$n_small, spec$small_treated,
    spec$crit_type, spec$block_start, threshold, draw_cpp_seed(),
    want, max_candidates, 4096L, threads, progress
  )
}

expected_acceptable <- function(strata, alloc, p_accept) {
  sizes <- as.vector(table(strata))
  exp(sum(lchoose(sizes, alloc))) * p_accept
}

design_hash <- function(des) {
  con <- rawConnection(raw(0), "wb")
  on.exit(close(con))
  parts <- list(des$treated, des$X, as.integer(des$strata), des$n_treated_by_stratum,
                des$threshold, des$tier, nchar(des$criterion), des$spec$z)
  if (!is.null(des$buffer)) {
    parts <- c(parts, list(des$buffer$A, des$arm_prob, des$spec$buffer$A,
                           des$spec$buffer$min_controls, as.integer(des$arm)))
  }
  for (x in parts) {
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
buffered_values <- function(spec, W, threads = mkt_threads()) {
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

# Candidates of the base design (complete randomization within strata) from
# the C++ kernel, with every threshold open. Small requests run on one
# thread: starting a parallel region costs more than they take, and the
# draws do not depend on the thread count.
base_draws <- function(spec, m, threads = mkt_threads()) {
  if (as.numeric(m) * length(spec$units) < 4e6) threads <- 1L
  cpp_rerandomize_search(
    spec$z, spec$units, spec$start, spec$n_small, spec$small_treated,
    spec$crit_type, spec$block_start, rep(Inf, spec$n_blocks), draw_cpp_seed(),
    m, m, 4096L, threads, NULL
  )$assignments
}

# Which buffered candidates pass: admissible (finite values; an open
# threshold of Inf must not admit them) and within every block's threshold.
passes <- function(values, threshold) {
  ok <- is.finite(values[1, ])
  for (k in seq_len(nrow(values))) ok <- ok & values[k, ] <= threshold[k]
  ok
}

# The buffered counterpart of the kernel search: base candidates are drawn
# in C++ in chunks, the buffer and the criterion are applied in R, and the
# first `want` that pass are kept, in the order drawn.
buffered_search <- function(spec, want, max_candidates, threshold, threads = mkt_threads()) {
  cap <- max(256, floor(4e6 / length(spec$units)))
  found <- list()
  vals <- list()
  n_found <- 0
  candidates <- 0
  best <- Inf
  while (n_found < want && candidates < max_candidates) {
    need <- ceiling(1.5 * (want - n_found) / max(spec$buffer$rate, 1e-6)) + 64
    m <- min(cap, max_candidates - candidates, need)
    W <- base_draws(spec, m, threads)
    v <- buffered_values(spec, W)
    total <- colSums(v$values)
    best <- min(best, total)
    ok <- which(passes(v$values, threshold))
    if (length(ok) > want - n_found) {
      ok <- ok[seq_len(want - n_found)]
      m <- max(ok)
    }
    candidates <- candidates + m
    n_found <- n_found + length(ok)
    found[[length(found) + 1L]] <- W[, ok, drop = FALSE]
    vals[[length(vals) + 1L]] <- v$values[, ok, drop = FALSE]
  }
  list(assignments = do.call(cbind, found), values = do.call(cbind, vals),
       candidates = candidates, best = best)
}

# Accepted assignments (columns) of the rule with thresholds `threshold`:
# all of them when enumerating, otherwise `n_draws` drawn on the resampling layer.
# With a buffer the same rule is re-applied to every assignment: the buffer
# is recomputed, inadmissible assignments are dropped, and balance is
# measured against the retained controls (buffered_values()).
reference_pool <- function(spec, threshold, exact, n_draws, chunk_size, rate) {
  if (exact) {
    open <- if (is.null(spec$buffer)) threshold else rep(Inf, length(threshold))
    en <- cpp_rerandomize_enumerate(spec$z, spec$units, spec$start, spec$n_treated,
                                    spec$crit_type, spec$block_start, open)
    if (!is.null(spec$buffer)) {
      keep <- passes(buffered_values(spec, en$assignments)$values, threshold)
      return(list(assignments = en$assignments[, keep, drop = FALSE], candidates = en$total))
    }
    return(list(assignments = en$assignments, candidates = en$total))
  }
  budget <- max(1e6, 100 * chunk_size / max(rate, 1e-12))
  chunks <- resample_chunks(n_draws, function(idx) {
    res <- run_search(spec, want = length(idx), max_candidates = budget,
                      threshold = threshold)
    if (ncol(res$assignments) < length(idx)) {
      abort_mkt("no_acceptable_assignment", c(
        "Drawing reference assignments failed: {ncol(res$assignments)} of {length(idx)} found in {format(budget)} candidates.",
        i = "The rule accepts too rarely; re-create the design with a larger {.arg accept}."
      ))
    }
    res
  }, chunk_size = chunk_size, label = "reference assignments", each = "chunk",
    globals = list())
  list(assignments = do.call(cbind, lapply(chunks, `[[`, "assignments")),
       candidates = sum(vapply(chunks, `[[`, numeric(1), "candidates")))
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

# Design covariates plus stratum indicators, centred at the full-sample mean.
lin_covariates <- function(design) {
  x <- design$X
  if (nlevels(design$strata) > 1L) {
    dummies <- stats::model.matrix(~ design$strata)[, -1, drop = FALSE]
    x <- cbind(x, dummies)
  }
  x <- sweep(x, 2, colMeans(x))
  storage.mode(x) <- "double"
  x
}

# Centred stratum indicators: Lin's regression on them is the
# stratum-weighted difference in means.
strata_covariates <- function(design) {
  if (nlevels(design$strata) < 2L) return(matrix(0, length(design$ids), 0L))
  x <- stats::model.matrix(~ design$strata)[, -1, drop = FALSE]
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

