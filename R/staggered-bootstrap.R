# Inference shared by the staggered-adoption estimators (staggered(), its
# aggregations and the "cs" event study): influence functions summed within
# clusters, the multiplier bootstrap over them and the bands it gives. This
# file calls nothing in the other staggered files, so they can all use it
# without calling each other in a loop.

# Influence functions (n units x K) summed within clusters; `cluster_id`
# numbers each unit's cluster 1..G in order of first appearance.
rowsum_clusters <- function(inf, cluster_id) {
  if (!anyDuplicated(cluster_id)) return(inf)
  rowsum(inf, cluster_id, reorder = FALSE)
}

# Covariance of estimates from their clustered influence sums S (G x K).
# With `blocks` (see bootstrap_blocks()) only the columns each group of rows
# can touch enter its cross-product, which is exact since S is zero
# elsewhere.
influence_vcov <- function(S, n, blocks = NULL) {
  if (is.null(blocks)) return(crossprod(S) / n^2)
  K <- ncol(S)
  V <- matrix(0, K, K)
  for (q in seq_along(blocks$size)) {
    cols <- which(blocks$use[q, ] != 0L)
    if (!length(cols) || blocks$size[q] == 0L) next
    rows <- blocks$order[blocks$start[q] + seq_len(blocks$size[q]) - 1L]
    V[cols, cols] <- V[cols, cols] + crossprod(S[rows, cols, drop = FALSE])
  }
  V / n^2
}

# Multiplier bootstrap draws (n_draws x length(cols)) of the columns `cols`
# of S, the cluster sums of influence functions. Cluster c's multiplier in
# draw b depends only on (seed, c, b) (src/staggered.h), whichever path
# computes the draws, so all paths give the same draws up to rounding:
# * `draws_fun` (a function of `cols` returning a kernel, see
#   cohort_sum_kernel()), when the caller has a cheaper exact path (cohort
#   sums of the outcomes);
# * the block-sparse path, when `blocks` says which cluster rows can be
#   non-zero in which columns (rows grouped by cohort pattern);
# * else the dense product over all rows.
# The draws are computed chunk by chunk through resample_chunks(), which
# reports progress (progressr) and lets an interrupt stop the loop; the
# kernels also poll within a chunk. Chunks hold whole slices of 64 draws, so
# every draw is computed the same way whatever the chunk size, the plan or
# the number of threads.
staggered_boot_draws <- function(S, n, n_draws, seed, cols, draws_fun = NULL, blocks = NULL) {
  kernel <- if (!is.null(draws_fun)) {
    draws_fun(cols)
  } else if (!is.null(blocks)) {
    boot_kernel_blocks(S[, cols, drop = FALSE], n, seed, blocks$order - 1L,
                       blocks$start - 1L, blocks$size, blocks$use[, cols, drop = FALSE])
  } else {
    boot_kernel_dense(S[, cols, drop = FALSE], n, seed)
  }
  # A small bootstrap (a few hundredths of a second) runs on one thread
  # (threads_for()); the kernels read the option where each chunk runs.
  work <- attr(kernel, "work")
  if (!is.null(work) && threads_for(work * n_draws, min_work = 1e8) == 1L) {
    old <- options(mktcausal.threads = 1L)
    on.exit(options(old), add = TRUE)
  }
  chunks <- resample_chunks(n_draws, kernel,
                            chunk_size = boot_chunk_size(attr(kernel, "work"), n_draws),
                            label = "multiplier bootstrap", each = "chunk", globals = list())
  if (length(chunks) == 1L) return(chunks[[1]])
  do.call(rbind, chunks)
}

# The kernels as functions of a chunk's draw indices, with the work of one
# draw (multiply-adds) in attribute "work". Made by these small factories so
# that a function sent to future's workers carries only what it needs.
boot_kernel_dense <- function(S, n, seed) {
  structure(function(idx) {
    cpp_staggered_boot(S, n, idx[1] - 1, length(idx), seed, threads_for())
  }, work = as.double(nrow(S)) * ncol(S))
}

boot_kernel_blocks <- function(S, n, seed, order, start, size, use) {
  structure(function(idx) {
    cpp_staggered_boot_blocks(S, n, idx[1] - 1, length(idx), seed, order, start, size, use,
                              threads_for())
  }, work = sum(as.double(size) * rowSums(use != 0L)))
}

boot_kernel_cohort <- function(Y, w, slot, order, H, cell_time, cell_base, coef, centre,
                               seed) {
  structure(function(idx) {
    cpp_staggered_boot_cohort(Y, w, slot, order, H, cell_time, cell_base, coef, centre,
                              idx[1] - 1, length(idx), seed, threads_for())
  }, work = as.double(nrow(Y)) * (ncol(Y) + 1))
}

# Draws per chunk: whole slices of 64 draws (the kernels' unit of work, so
# that the chunking never changes a draw), at least one slice per thread,
# and about 5e7 multiply-adds of work, a few hundredths of a second: the
# step of the progress bar and the longest an interrupt waits for R.
boot_chunk_size <- function(work, n_draws) {
  slices <- max(mkt_threads(), floor(5e7 / (64 * max(1, work))))
  as.integer(min(64 * slices, 64 * ceiling(n_draws / 64)))
}

# Bootstrap standard errors (interquartile range / 1.349) of every column of
# S with a positive analytic variance, and the sup-t critical value over
# the columns `band` (all by default) at level 1 - alpha. One set of draws
# serves both, so a caller wanting a band over a subset of columns (the
# detail rows of an aggregation) does not draw again. The draws are held in
# memory (n_draws x columns, twice while the chunks are joined): a request
# that cannot fit is refused before any draw is made.
staggered_bootstrap <- function(S, n, n_draws, seed, alpha, draws_fun = NULL, ss = NULL,
                                band = NULL, blocks = NULL, call = rlang::caller_env()) {
  K <- ncol(S)
  se <- rep(NA_real_, K)
  if (n_draws == 0L || K == 0L) return(list(se = se, crit = NA_real_))
  if (is.null(ss)) ss <- colSums(S * S)
  ok <- which(is.finite(ss) & ss > 0)
  if (!length(ok)) return(list(se = se, crit = NA_real_))
  check_memory(
    8 * as.double(n_draws) * (2 * length(ok) + 4),
    sprintf("A multiplier bootstrap of %s draws over %d estimates",
            format(n_draws, big.mark = ",", scientific = FALSE), length(ok)),
    "Use fewer draws: {.code n_draws = 1000} to {.code 10000} is plenty for standard errors and uniform bands.",
    call = call
  )
  draws <- staggered_boot_draws(S, n, n_draws, seed, ok, draws_fun, blocks)
  # Column by column, so that nothing of the size of the draws is copied.
  sig <- vapply(seq_along(ok), function(j) {
    q <- stats::quantile(draws[, j], probs = c(0.25, 0.75), type = 1, names = FALSE)
    (q[2] - q[1]) / (stats::qnorm(0.75) - stats::qnorm(0.25))
  }, numeric(1))
  good <- sig > 0
  se[ok[good]] <- sig[good]
  in_band <- good & (if (is.null(band)) TRUE else ok %in% band)
  crit <- NA_real_
  if (any(in_band)) {
    tmax <- numeric(n_draws)
    for (j in which(in_band)) tmax <- pmax(tmax, abs(draws[, j]) / sig[j])
    crit <- unname(stats::quantile(tmax, 1 - alpha, type = 1))
  }
  list(se = se, crit = crit)
}

# Which cluster rows of S can be non-zero in which columns: a cell's
# influence function lives on its cohort and its controls only, so with the
# clusters grouped by the set of cohorts they contain, the bootstrap needs
# one product per group over the columns that group can touch. NULL when
# grouping would not pay (few groups relative to columns touched, or more
# than 50 cohorts).
bootstrap_blocks <- function(unit_cohort, cluster_id, cell_uses) {
  cohorts <- sort(unique(unit_cohort))
  H <- length(cohorts)
  if (H > 50L) return(NULL)
  slot <- match(unit_cohort, cohorts)
  G <- max(cluster_id)
  member <- matrix(FALSE, G, H)
  member[cbind(cluster_id, slot)] <- TRUE
  key <- drop(member %*% 2^(seq_len(H) - 1L))
  keys <- sort(unique(key))
  group <- match(key, keys)
  first <- match(keys, key)
  # cell_uses: H x K logical, cohort h enters cell k (treated or control).
  use <- (member[first, , drop = FALSE] %*% cell_uses) > 0
  if (sum(use * tabulate(group, length(keys))) > 0.8 * G * ncol(cell_uses)) return(NULL)
  order <- order(group)
  size <- tabulate(group, length(keys))
  list(order = order, start = cumsum(c(1L, size))[seq_along(size)], size = size,
       use = matrix(as.integer(use), nrow(use)))
}

# The bootstrap kernel of the cells `cols` through cohort sums (balanced
# panel, no covariates, unit clusters): the same multipliers as the generic
# path.
cohort_sum_kernel <- function(prep, cells, est, not_yet, cols, seed) {
  cohorts <- sort(unique(prep$cohort))
  slot <- match(prep$cohort, cohorts) - 1L
  H <- length(cohorts)
  K <- length(cols)
  coef <- matrix(0, H, K)
  centre <- matrix(0, H, K)
  n <- prep$n
  for (j in seq_len(K)) {
    k <- cols[j]
    if (est$status[k] != 0L) next
    g <- cells$group_idx[k]
    ctrl <- cohorts == 0L | (not_yet & cohorts > cells$control_after[k] & cohorts != g)
    tr <- cohorts == g
    coef[tr, j] <- n / est$wsum1[k]
    centre[tr, j] <- est$mean1[k]
    coef[ctrl, j] <- -n / est$wsum0[k]
    centre[ctrl, j] <- est$mean0[k]
  }
  boot_kernel_cohort(prep$Y, prep$w, slot, order(slot) - 1L, H, cells$time_idx[cols] - 1L,
                     cells$base_idx[cols] - 1L, coef, centre, seed)
}

# Confidence limits: the uniform band when the bootstrap ran, else pointwise.
band_limits <- function(estimate, se, boot_se, crit, alpha) {
  if (is.na(crit)) {
    z <- stats::qnorm(alpha / 2, lower.tail = FALSE)
    return(list(low = estimate - z * se, high = estimate + z * se))
  }
  list(low = estimate - crit * boot_se, high = estimate + crit * boot_se)
}

# Words for the inference of a staggered fit or aggregation.
staggered_inference_label <- function(cluster_var, n_draws, crit) {
  by <- if (is.null(cluster_var)) "unit" else cluster_var
  bands <- if (n_draws > 0L && !is.na(crit)) {
    sprintf("uniform bands from %s multiplier-bootstrap draws",
            format(n_draws, big.mark = ","))
  } else {
    "pointwise normal intervals"
  }
  sprintf("influence function, clustered by %s; %s", by, bands)
}
