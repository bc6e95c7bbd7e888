# Multi-cell designs: k cells, a shared control ("control") and k - 1
# treated cells with fixed sizes in every stratum. rerandomize() reads the
# cell sizes here, shares them out across strata, builds the kernel's
# specification (src/rerandomize.h, CellSpec) and draws. The criterion is the
# joint Mahalanobis distance of the stacked stratum-weighted covariate mean
# differences of every treated cell against control, whitened by their
# covariance under complete randomization within strata: chi-squared with
# (k - 1) d degrees of freedom under the base design, and the same whichever
# cell is the reference, so it bounds the imbalance of every pair of cells.

# The treated cells' sizes from `n_treated` or `prop_treated`: NULL for a
# two-arm design (one unnamed value, or neither given), otherwise a named
# integer vector (names are the treated cells, in the order given).
design_cell_sizes <- function(n_treated, prop_treated, n, call = rlang::caller_env()) {
  given <- if (!is.null(n_treated)) n_treated else prop_treated
  arg <- if (!is.null(n_treated)) "n_treated" else "prop_treated"
  if (is.null(given) || (length(given) == 1L && is.null(names(given)))) return(NULL)
  if (!is.null(n_treated) && !is.null(prop_treated)) {
    abort_mkt("bad_argument", c(
      "Give {.arg n_treated} or {.arg prop_treated}, not both.",
      i = "For several cells, name their sizes in one of them, e.g. {.code n_treated = c(heavy_up = 20, go_dark = 20)}."
    ), call = call)
  }
  nm <- names(given)
  if (is.null(nm) || anyNA(nm) || any(!nzchar(trimws(nm)))) {
    abort_mkt("bad_argument", c(
      "Several cells in {.arg {arg}} need a name each.",
      x = if (is.null(nm)) "{.arg {arg}} has {length(given)} unnamed values." else
        "{sum(is.na(nm) | !nzchar(trimws(nm)))} of them {?has/have} an empty name.",
      i = "Name the treated cells, e.g. {.code {arg} = c(heavy_up = 20, go_dark = 20)}; the rest of the clusters form the shared control."
    ), call = call)
  }
  if (length(given) == 1L) {
    abort_mkt("bad_argument", c(
      "One named cell in {.arg {arg}} is a two-arm design.",
      i = "Give the size unnamed ({.code {arg} = {unname(given)}}) for treated vs control, or name two or more treated cells."
    ), call = call)
  }
  if (anyDuplicated(nm)) {
    abort_mkt("bad_argument", c(
      "Cell names in {.arg {arg}} must be distinct.",
      x = "{.val {unique(nm[duplicated(nm)])}} appear{?s} more than once."
    ), call = call)
  }
  if ("control" %in% nm) {
    abort_mkt("bad_argument", c(
      "{.val control} is the name of the shared control cell; a treated cell cannot be called that.",
      i = "Name only the treated cells in {.arg {arg}}: the clusters left over form the control."
    ), call = call)
  }
  if (!is.numeric(given) || anyNA(given) || any(!is.finite(given))) {
    abort_mkt("bad_argument", c(
      "{.arg {arg}} must hold one number per treated cell.",
      x = "You supplied {.val {format(given)}}."
    ), call = call)
  }
  if (arg == "n_treated") {
    bad <- given < 1 | given != round(given)
    if (any(bad)) {
      abort_mkt("bad_argument", c(
        "Cell sizes in {.arg n_treated} must be whole numbers of at least 1.",
        x = "{.val {nm[bad]}} {?has/have} size{?s} {.val {format(given[bad])}}."
      ), call = call)
    }
    sizes <- given
  } else {
    bad <- given <= 0 | given >= 1
    if (any(bad)) {
      abort_mkt("bad_argument", c(
        "Cell shares in {.arg prop_treated} must lie strictly between 0 and 1.",
        x = "{.val {nm[bad]}} {?has/have} share{?s} {.val {format(given[bad])}}."
      ), call = call)
    }
    sizes <- round(given * n)
    if (any(sizes < 1)) {
      abort_mkt("bad_argument", c(
        "{.arg prop_treated} leaves cell{?s} {.val {nm[sizes < 1]}} empty with {n} clusters.",
        i = "Raise the share{?s}, or give sizes in {.arg n_treated}."
      ), call = call)
    }
  }
  if (sum(sizes) >= n) {
    abort_mkt("bad_argument", c(
      "The treated cells in {.arg {arg}} take {sum(sizes)} cluster{?s}, but there are {n}.",
      x = "The shared control cell needs at least one of them.",
      i = "Lower the cell sizes so that they sum to less than {n}."
    ), call = call)
  }
  stats::setNames(as.integer(sizes), nm)
}

# Cell sizes per stratum (integer matrix, strata x cells, control first):
# each treated cell's size is shared out across strata in proportion to the
# stratum sizes with largest-remainder rounding (ties going to the strata
# with fewest treated clusters so far, so that rounding does not pile up in
# one stratum); the control takes the rest.
allocate_cells <- function(strata, n, sizes) {
  m <- as.vector(table(strata))
  S <- length(m)
  alloc <- matrix(0L, S, length(sizes) + 1L,
                  dimnames = list(levels(strata), c("control", names(sizes))))
  load <- numeric(S)
  for (c in seq_along(sizes)) {
    raw <- m * sizes[[c]] / n
    a <- floor(raw)
    left <- sizes[[c]] - sum(a)
    if (left > 0) {
      ord <- order(-(raw - a), load / m, seq_len(S))
      a[ord[seq_len(left)]] <- a[ord[seq_len(left)]] + 1
    }
    alloc[, c + 1L] <- as.integer(a)
    load <- load + a
  }
  alloc[, 1L] <- as.integer(m - rowSums(alloc[, -1L, drop = FALSE]))
  alloc
}

# Every cell, control included, needs `min_per_arm` clusters in every
# stratum.
check_cell_strata <- function(strata, alloc, min_per_arm, arg, call = rlang::caller_env()) {
  m <- as.vector(table(strata))
  bad <- apply(alloc < min_per_arm, 1, any)
  if (any(bad)) {
    nm <- levels(strata)[bad]
    k <- ncol(alloc)
    abort_mkt("strata_too_small", c(
      "The {k} cells cannot fit in {sum(bad)} strat{?um/a}: {.val {utils::head(nm, 8)}}.",
      x = "Each stratum needs {min_per_arm} cluster{?s} in every cell ({k * min_per_arm} in all); shared out in proportion to stratum size, {.arg {arg}} gives {paste0(utils::head(nm, 3), ' (', utils::head(m[bad], 3), ' clusters): ', apply(alloc[bad, , drop = FALSE][seq_len(min(3, sum(bad))), , drop = FALSE], 1, function(r) paste(colnames(alloc), r, sep = ' = ', collapse = ', ')), collapse = '; ')}.",
      i = "Merge small {.arg strata} (or use coarser bins, or matched blocks of {k} in {.fn stratify}), enlarge the cells in {.arg {arg}}, or lower {.arg min_per_arm}."
    ), strata = nm, call = call)
  }
  invisible(TRUE)
}

# The kernel specification of a multi-cell design. With T = k - 1 treated
# cells and d covariates, the stacked imbalance tau = (tau_1, ..., tau_T),
# tau_a = sum_s pi_s (mean_{a,s} x - mean_{0,s} x), is a sum over clusters of
# u[j, cell(j)], where for cluster j of stratum s in treated cell b
# u[j, b] = pi_s (e_b / n_{s,b} + 1 / n_{s,0}) (x) xc_j (xc centred within
# the stratum; the control's terms are folded in since the stratum's xc sum
# to zero) and u[j, 0] = 0. Its covariance under complete randomization
# within strata is V = sum_s pi_s^2 D_s (x) S_s, D_s = diag(1 / n_{s,b}) +
# 1 / n_{s,0}, S_s the stratum's covariance of x. With V = R'R, z = R'^{-1} u
# and the criterion is |sum_j z[j, cell(j)]|^2. In each stratum the z of its
# largest cell is subtracted from every cell's (see src/rerandomize.h).
cells_spec <- function(X, strata, alloc) {
  n <- nrow(X)
  d <- ncol(X)
  k <- ncol(alloc)
  Tn <- k - 1L
  D <- Tn * d
  s_idx <- as.integer(strata)
  m <- as.vector(table(strata))
  pi_s <- m / n
  V <- matrix(0, D, D)
  Xc <- X
  for (s in seq_along(m)) {
    rows <- which(s_idx == s)
    xs <- X[rows, , drop = FALSE]
    Xc[rows, ] <- sweep(xs, 2, colMeans(xs))
    Ds <- diag(1 / alloc[s, -1L], Tn) + 1 / alloc[s, 1L]
    if (length(rows) > 1L) V <- V + pi_s[s]^2 * kronecker(Ds, stats::cov(xs))
  }
  R <- chol(V)
  # u for every (cluster, treated cell): D x (n * T), then whitened.
  U <- array(0, c(D, k, n))
  for (j in seq_len(n)) {
    s <- s_idx[j]
    for (b in seq_len(Tn)) {
      w <- rep(1 / alloc[s, 1L], Tn)
      w[b] <- w[b] + 1 / alloc[s, b + 1L]
      U[, b + 1L, j] <- pi_s[s] * kronecker(w, Xc[j, ])
    }
  }
  Z <- backsolve(R, matrix(U, D), transpose = TRUE)
  Z <- array(Z, c(D, k, n))
  implicit <- apply(alloc, 1, which.max)  # 1-based cell of the undrawn clusters
  for (j in seq_len(n)) {
    Z[, , j] <- Z[, , j] - Z[, implicit[s_idx[j]], j]
  }
  draw_cell <- integer()
  draw_count <- integer()
  draw_start <- 0L
  for (s in seq_along(m)) {
    cells <- setdiff(seq_len(k), implicit[s])
    draw_cell <- c(draw_cell, cells - 1L)
    draw_count <- c(draw_count, alloc[s, cells])
    draw_start <- c(draw_start, length(draw_cell))
  }
  units <- unlist(lapply(seq_along(m), function(s) which(s_idx == s))) - 1L
  list(
    multi_cell = TRUE, z = matrix(Z, D), n_cells = as.integer(k), d = d,
    units = as.integer(units), start = as.integer(c(0L, cumsum(m))),
    draw_start = as.integer(draw_start), draw_cell = as.integer(draw_cell),
    draw_count = as.integer(draw_count), implicit = as.integer(implicit - 1L),
    n_by_stratum = alloc, L = t(R), cov = V, crit_type = 0L,
    block_start = c(0L, as.integer(D)), n_blocks = 1L
  )
}

# The stacked imbalance tau (D) of cell codes `code` (0 = control), computed
# directly from the stratum means.
cells_imbalance <- function(X, strata, code, k) {
  s_idx <- as.integer(strata)
  m <- as.vector(table(strata))
  pi_s <- m / length(s_idx)
  out <- matrix(0, ncol(X), k - 1L)
  for (s in seq_along(m)) {
    rows <- s_idx == s
    mean0 <- colMeans(X[rows & code == 0L, , drop = FALSE])
    for (b in seq_len(k - 1L)) {
      out[, b] <- out[, b] + pi_s[s] * (colMeans(X[rows & code == b, , drop = FALSE]) - mean0)
    }
  }
  as.vector(out)
}

# Criterion values under the base design, for empirical thresholds and the
# criterion plot.
calibrate_cells <- function(spec, accept, threshold, n_draws) {
  values <- cpp_cells_score(spec, draw_cpp_seed(), n_draws, 4096L, threads_for())
  D <- spec$block_start[2]
  a <- if (threshold == "chisq") {
    stats::qchisq(accept, D)
  } else {
    stats::quantile(values, accept, type = 1, names = FALSE)
  }
  if (accept >= 1) a <- Inf
  list(threshold = a, acceptance_rate = mean(values <= a), values = values)
}

# Accepted multi-cell assignments (cell codes, N x R), one per replicate
# index in `replicates` from its own stream of `seed`.
draw_cells <- function(spec, replicates, seed, budget, threshold, threads = threads_for()) {
  res <- cpp_cells_each(spec, as.numeric(threshold), seed, as.numeric(replicates), budget,
                        threads, NULL)
  found <- res$found == 1L
  list(assignments = res$assignments[, found, drop = FALSE],
       values = res$values[, found, drop = FALSE], candidates = sum(res$candidates),
       best = min(res$best, Inf), found = found)
}

# The multi-cell branch of rerandomize(): everything after the inputs are
# read.
rerandomize_cells <- function(call, data, ids, cov, strata, sizes, accept, threshold,
                              max_candidates, n_draws, min_per_arm, arg, rule = NULL) {
  X <- cov$X
  alloc <- allocate_cells(strata, nrow(data), sizes)
  check_cell_strata(strata, alloc, min_per_arm, arg)
  spec <- cells_spec(X, strata, alloc)
  if (is.null(rule)) {
    calib <- calibrate_cells(spec, accept, threshold, n_draws)
    spec$threshold <- calib$threshold
    progress <- search_progress("candidates", max_candidates)
    res <- cpp_cells_first(spec, calib$threshold, draw_cpp_seed(), max_candidates, 4096L,
                           threads_for(), progress)
    if (!is.null(progress)) progress(res$candidates)
  } else {
    spec$buffer <- cells_buffer_spec(rule, X, strata, alloc, min_per_arm)
    calib <- calibrate_cells_buffered(spec, accept, n_draws, strata)
    spec$buffer$rate <- calib$acceptance_rate
    spec$threshold <- calib$threshold
    found <- draw_cells_buffered(spec, 1, draw_cpp_seed(), max_candidates, calib$threshold)
    res <- list(assignments = found$assignments, values = matrix(found$values, 1L),
                candidates = found$candidates, best = found$best)
  }
  if (ncol(res$assignments) < 1L) {
    abort_mkt("no_acceptable_assignment", c(
      "No assignment passed the balance rule in {format(res$candidates, big.mark = ',')} candidates.",
      i = "The best criterion seen was {signif(res$best, 4)}; the threshold is {signif(calib$threshold, 4)}.",
      i = "Raise {.arg accept}, balance fewer covariates, or raise {.arg max_candidates}."
    ), candidates = res$candidates, best = res$best)
  }
  code <- as.integer(res$assignments[, 1])
  cells <- colnames(alloc)
  D <- spec$block_start[2]
  va <- rem_va(calib$threshold, D)
  m <- as.vector(table(strata))
  des <- structure(list(
    call = call,
    ids = plain_ids(ids),
    id_name = attr(ids, "id_name"),
    treated = NULL,
    multi_cell = TRUE,
    cells = cells,
    cell = factor(cells[code + 1L], levels = cells),
    n_by_stratum = alloc,
    covariates = colnames(X),
    X = X,
    tier = cov$tier,
    strata = strata,
    n_treated_by_stratum = NULL,
    criterion = "mahalanobis",
    criterion_value = res$values[1, 1],
    criterion_by_tier = NULL,
    accept = accept,
    threshold_type = threshold,
    threshold = calib$threshold,
    candidates = res$candidates,
    acceptance_rate = calib$acceptance_rate,
    calibration = calib$values,
    n_acceptable = exp(sum(lfactorial(m)) - sum(lfactorial(alloc))) * accept *
      if (is.null(rule)) 1 else calib$admissible_rate,
    variance_reduction = if (is.null(rule)) {
      stats::setNames(rep(1 - va, ncol(X)), colnames(X))
    } else {
      calib$variance_reduction
    },
    min_per_arm = min_per_arm,
    spec = spec
  ), class = "mkt_design")
  if (!is.null(rule)) {
    des$arm <- cells_buffer_arm(rule$nb, code, cells)
    des$buffer <- list(A = rule$A, source = rule$source, radius = rule$radius,
                       n_links = rule$n_links, degree = rule$degree,
                       admissible_rate = calib$admissible_rate,
                       imbalance_sd = calib$imbalance_sd)
    des$arm_prob <- cells_arm_probabilities(spec, calib$threshold, ids, cells)
  }
  des$hash <- design_hash(des)
  warn_granular(des)
  des
}

# Accepted assignments of a design's rule as cell codes: `cells` is an
# N x R integer matrix (0 = control, 1.. the treated cells of design$cells,
# rows in the design's order). Multi-cell designs draw on the resampling
# layer with one stream per replicate, from exactly the design's rule (same
# criterion, threshold, strata and cell sizes), so the same set.seed() gives
# the same matrix for any chunk size, plan or thread count. A two-arm design
# gives its reference pool (enumerated when it has at most 2e4 assignments,
# as for the randomization test; `exact` says so), recoded.
# A multi-cell design with a buffer draws from exactly its rule
# (draw_cells_buffered(): the buffer of every candidate recomputed, only
# admissible candidates within the threshold kept, attempt t of replicate i
# from stream i + t * 2^32) and codes buffer clusters -1 in `cells`: -1 =
# buffer, 0 = retained control, 1.. the treated cells.
reference_cells <- function(design, n_draws, chunk_size = 1000L) {
  check_design(design)
  n_draws <- check_count(n_draws, "n_draws", min = 1)
  chunk_size <- check_count(chunk_size, "chunk_size", min = 1)
  if (!isTRUE(design$multi_cell)) {
    sizes <- as.vector(table(design$strata))
    n_total <- exp(sum(lchoose(sizes, design$n_treated_by_stratum)))
    exact <- n_total <= 2e4
    pool <- reference_pool(design$spec, design$threshold, exact, n_draws, chunk_size,
                           design$acceptance_rate)
    W <- pool$assignments
    storage.mode(W) <- "integer"
    return(list(cells = W, candidates = pool$candidates, exact = exact))
  }
  spec <- design$spec
  check_memory(2 * 4 * length(design$ids) * n_draws, "The reference assignments",
               "Use fewer {.arg n_draws}.")
  budget <- max(1e6, ceiling(100 / max(design$acceptance_rate, 1e-12)))
  seed <- draw_cpp_seed()
  threshold <- design$threshold
  buffered <- !is.null(spec$buffer)
  chunks <- resample_chunks(n_draws, function(idx) {
    res <- if (buffered) {
      draw_cells_buffered(spec, idx, seed, budget, threshold)
    } else {
      draw_cells(spec, idx, seed, budget, threshold)
    }
    if (!all(res$found)) {
      abort_mkt("no_acceptable_assignment", c(
        "Drawing reference assignments failed: {sum(!res$found)} of {length(idx)} draws found no accepted assignment in {format(budget, big.mark = ',')} candidates each.",
        i = "The rule accepts too rarely; re-create the design with a larger {.arg accept}."
      ))
    }
    codes <- res$assignments
    if (buffered) codes[res$buffer] <- -1L
    list(cells = codes, candidates = res$candidates)
  }, chunk_size = chunk_size, label = "reference assignments", each = "chunk",
    globals = list())
  list(cells = do.call(cbind, lapply(chunks, `[[`, "cells")),
       candidates = sum(vapply(chunks, `[[`, numeric(1), "candidates")),
       exact = FALSE)
}
