# Buffer zones for multi-cell designs. Every candidate of the base design
# (complete randomization of the cells within strata) gets its own buffer:
# the control clusters with a neighbour in ANY treated cell. A candidate is
# admissible only if every stratum keeps `min_controls` retained controls;
# its criterion is the joint Mahalanobis distance of the stacked
# (stratum-weighted) differences between each treated cell's covariate means
# and the retained controls' means, whitened by the base design's covariance
# (cells_spec()), so that with an empty buffer it is the multi-cell
# criterion. The rule is applied here in R, vectorised over a chunk of
# candidates drawn by the multi-cell kernel with an open threshold.
#
# Reproducibility: attempt t (0, 1, ...) of replicate i is the first
# candidate of kernel stream i + t * 2^32 of the pool's seed, and replicate i
# keeps its first passing attempt, so its draw depends only on the seed and
# i, never on the chunk size, the plan or how many attempts a round makes.

cells_stream_step <- 2^32

# What the buffered criterion needs besides the kernel specification.
cells_buffer_spec <- function(rule, X, strata, alloc, min_per_arm) {
  m <- as.vector(table(strata))
  list(nb = rule$nb, A = rule$A, s_idx = as.integer(strata), X = X, alloc = alloc,
       pi_s = m / length(strata), min_controls = as.integer(min_per_arm), rate = 1)
}

# Criterion values of cell codes C (N x R, 0 = control) under the buffer:
# `values` (Inf where a stratum keeps fewer than `min_controls` controls),
# the stacked imbalances `tau` (D x R, cell-major as in cells_imbalance()),
# retained controls per stratum `kept` (S x R) and the buffer indicator
# `buffer` (N x R).
cells_buffered_values <- function(spec, C) {
  b <- spec$buffer
  storage.mode(C) <- "integer"
  treated <- C > 0L
  storage.mode(treated) <- "integer"
  exposed <- treated_neighbour(b$nb, treated)
  buffer <- C == 0L & exposed
  retained <- C == 0L & !exposed
  kept <- rowsum(retained * 1, b$s_idx, reorder = TRUE)
  admissible <- colSums(kept >= b$min_controls) == nrow(kept)
  kept_safe <- pmax(kept, 1)
  pi_j <- b$pi_s[b$s_idx]
  Wc <- retained * (pi_j / kept_safe[b$s_idx, , drop = FALSE])
  alloc <- b$alloc
  tau <- do.call(rbind, lapply(seq_len(ncol(alloc) - 1L), function(c) {
    Wb <- (C == c) * (pi_j / alloc[b$s_idx, c + 1L])
    crossprod(b$X, Wb - Wc)
  }))
  Z <- backsolve(t(spec$L), tau, transpose = TRUE)
  values <- colSums(Z^2)
  values[!admissible] <- Inf
  list(values = values, tau = tau, kept = kept, buffer = buffer, admissible = admissible)
}

# Candidates of the base multi-cell design for kernel streams `streams`
# (cell codes, N x length(streams)).
cells_base_draws <- function(spec, streams, seed, threads = threads_for()) {
  res <- cpp_cells_each(spec, Inf, seed, as.numeric(streams), 1, threads, NULL)
  res$assignments
}

# One accepted buffered multi-cell assignment per replicate index in
# `replicates` (see the reproducibility note above), each trying at most
# `budget` candidates. Returns the cell codes (N x found, replicate order),
# their buffers, criterion values, the candidates drawn, the best value seen
# and which replicates found one.
draw_cells_buffered <- function(spec, replicates, seed, budget, threshold) {
  n <- length(spec$units)
  R <- length(replicates)
  codes <- matrix(0L, n, R)
  buffer <- matrix(FALSE, n, R)
  values <- rep(NA_real_, R)
  found <- rep(FALSE, R)
  tried <- numeric(R)
  best <- Inf
  t0 <- 0
  rate <- max(spec$buffer$rate, 1e-6)
  while (any(!found) && t0 < budget) {
    todo <- which(!found)
    K <- min(ceiling(2 / rate), max(1, floor(2e6 / (n * length(todo)))), budget - t0)
    streams <- as.vector(outer(t0 + seq_len(K) - 1, replicates[todo],
                               function(t, i) i + t * cells_stream_step))
    C <- cells_base_draws(spec, streams, seed)
    v <- cells_buffered_values(spec, C)
    ok <- matrix(v$admissible & v$values <= threshold, K)
    best <- min(best, v$values)
    first <- apply(ok, 2, function(o) if (any(o)) which(o)[1] else NA_integer_)
    hit <- !is.na(first)
    tried[todo] <- tried[todo] + ifelse(hit, first, K)
    if (any(hit)) {
      col <- (which(hit) - 1L) * K + first[hit]
      codes[, todo[hit]] <- C[, col, drop = FALSE]
      buffer[, todo[hit]] <- v$buffer[, col, drop = FALSE]
      values[todo[hit]] <- v$values[col]
      found[todo[hit]] <- TRUE
    }
    t0 <- t0 + K
  }
  list(assignments = codes[, found, drop = FALSE], buffer = buffer[, found, drop = FALSE],
       values = values[found], candidates = sum(tried), best = best, found = found)
}

# Calibration of the buffered rule over `n_draws` base candidates:
# admissibility (classed error when under 1% of draws keep `min_controls`
# controls in every stratum), the empirical `accept` quantile of the
# admissible values, and the spread of each covariate's imbalance before
# and after the rule.
calibrate_cells_buffered <- function(spec, accept, n_draws, strata,
                                     call = rlang::caller_env()) {
  seed <- draw_cpp_seed()
  n <- length(spec$units)
  cap <- max(256, floor(2e6 / n))
  values <- list()
  tau <- list()
  kept <- list()
  done <- 0
  while (done < n_draws) {
    m <- min(cap, n_draws - done)
    v <- cells_buffered_values(spec, cells_base_draws(spec, done + seq_len(m), seed))
    values[[length(values) + 1L]] <- v$values
    tau[[length(tau) + 1L]] <- v$tau
    kept[[length(kept) + 1L]] <- v$kept
    done <- done + m
  }
  values <- unlist(values)
  tau <- do.call(cbind, tau)
  kept <- do.call(cbind, kept)
  admissible <- is.finite(values)
  if (mean(admissible) < 0.01) {
    short <- rowSums(kept < spec$buffer$min_controls)
    worst <- which.max(short)
    n_control <- sum(spec$n_by_stratum[, 1L])
    n_kept <- stats::median(colSums(kept))
    abort_mkt("buffer_too_wide", c(
      "The buffer leaves too few controls: a typical assignment keeps {n_kept} of {n_control} control cluster{?s} and buffers the rest (neighbours of any treated cell).",
      x = "Only {signif(100 * mean(admissible), 2)}% of draws keep {spec$buffer$min_controls} control{?s} in every stratum; stratum {.val {levels(strata)[worst]}} falls short in {round(100 * short[worst] / n_draws)}% of them.",
      i = "Use a narrower buffer (smaller {.arg buffer_radius} or fewer neighbour links), make the treated cells smaller ({.arg n_treated}), or merge strata."
    ), n_retained = n_kept, n_untreated = n_control, call = call)
  }
  a <- if (accept >= 1) Inf else stats::quantile(values[admissible], accept, type = 1, names = FALSE)
  pass <- admissible & values <= a
  sd_before <- apply(tau[, admissible, drop = FALSE], 1, stats::sd)
  sd_after <- if (sum(pass) > 2) apply(tau[, pass, drop = FALSE], 1, stats::sd) else sd_before
  # One reduction per covariate: the mean over the treated cells.
  d <- ncol(spec$buffer$X)
  red <- 1 - colMeans(matrix(sd_after^2 / sd_before^2, ncol = d, byrow = TRUE))
  names(red) <- colnames(spec$buffer$X)
  list(threshold = a, acceptance_rate = mean(pass), admissible_rate = mean(admissible),
       values = values[admissible], variance_reduction = red,
       imbalance_sd = rbind(before = sd_before, after = sd_after))
}

# Each cluster's probability of each treated cell, of retained control and
# of buffer under the whole rule, from `n` accepted draws (columns: the
# treated cells, "control" = retained control, "buffer").
cells_arm_probabilities <- function(spec, threshold, ids, cells, n = 2000L) {
  budget <- max(1e6, ceiling(100 / max(spec$buffer$rate, 1e-9)))
  res <- draw_cells_buffered(spec, seq_len(n), draw_cpp_seed(), budget, threshold)
  C <- res$assignments
  p <- vapply(seq_along(cells)[-1L], function(c) rowMeans(C == c - 1L), numeric(nrow(C)))
  p <- matrix(p, nrow(C))
  p <- cbind(p, rowMeans(C == 0L & !res$buffer), rowMeans(res$buffer))
  dimnames(p) <- list(plain_ids(ids), c(cells[-1L], "control", "buffer"))
  p
}

# Arm of each cluster of a buffered multi-cell assignment: its cell, or
# "buffer" for a control cluster with a neighbour in any treated cell.
cells_buffer_arm <- function(nb, code, cells) {
  exposed <- as.vector(treated_neighbour(nb, matrix(as.integer(code > 0L), ncol = 1L)))
  arm <- cells[code + 1L]
  arm[code == 0L & exposed] <- "buffer"
  factor(arm, levels = c(cells, "buffer"))
}
