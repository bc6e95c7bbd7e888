# randomization_test() for a design with several cells. The sharp null is
# that no cell has any effect on any cluster: every cluster's outcome would
# be the same in every cell. It fixes every outcome under every assignment,
# so each reference assignment of the design's rule (reference_cells(), in
# design-core.R) gives the statistic of every contrast. Each contrast gets
# its own p-value, and a family-wise one by max-T (Westfall and Young 1993):
# in each reference draw the largest |t| over the contrasts, and the adjusted
# p-value of contrast c is the share of draws whose maximum reaches c's
# observed |t|. The t of a contrast is its estimate over its standard error
# (Neyman, stratum-weighted, for the difference in means; HC2 for Lin), so
# contrasts of different precision compete on one scale.

# The accepted reference assignments of a design as cell codes (N x R), with
# whether they are every accepted assignment.
cells_reference <- function(design, n_draws, chunk_size = 1000L) {
  res <- reference_cells(design, n_draws, chunk_size)
  W <- res$cells
  storage.mode(W) <- "integer"
  list(W = W, exact = isTRUE(res$exact))
}

# Statistics of the contrasts `pairs` (rows: cell, versus; 1-based) under
# the assignments W (N x R cell codes 0..k-1): `estimate` and `t` (contrasts
# x R). "diff_in_means": the stratum-weighted difference of cell means and
# its Neyman standard error; "lin_t": the difference of Lin's
# covariate-adjusted cell means (the regressors `x`, centred at the
# full-sample mean: design covariates and stratum indicators) and its HC2
# standard error.
cells_statistics <- function(y, W, k, pairs, strata, statistic, x = NULL, weights = NULL) {
  y <- y - mean(y)
  R <- ncol(W)
  a <- pairs[, 1]
  b <- pairs[, 2]
  if (!is.null(weights)) {
    return(cells_statistics_buffered(y, W, k, pairs, strata, weights))
  }
  if (statistic == "diff_in_means" && is_matched_cells(strata, W[, 1], k)) {
    # Matched blocks: the size-weighted mean of the block differences of
    # cell means and their spread (experiment_effect()'s block estimator).
    # Cell counts per block are fixed by the design, so the observed
    # assignment's counts serve every draw.
    s_idx <- as.integer(strata)
    S <- nlevels(strata)
    ind <- outer(s_idx, seq_len(S), "==") * 1
    w_s <- block_weights(strata)
    B <- lapply(seq_len(k), function(g) {
      n_g <- tabulate(s_idx[W[, 1] == g - 1L], S)
      crossprod(ind, (W == g - 1L) * y) / n_g  # S x R
    })
    est <- se <- matrix(0, nrow(pairs), R)
    for (c in seq_len(nrow(pairs))) {
      wD <- (B[[a[c]]] - B[[b[c]]]) * w_s
      est[c, ] <- colSums(wD)
      se[c, ] <- sqrt(pmax(colSums(sweep(wD, 2, est[c, ] / S)^2) * S / (S - 1), 0))
    }
    return(list(estimate = est, se = se, t = est / se))
  }
  if (statistic == "diff_in_means") {
    s_idx <- as.integer(strata)
    S <- nlevels(strata)
    pi_s <- tabulate(s_idx, S) / length(y)
    mu <- V <- matrix(0, k, R)
    for (s in seq_len(S)) {
      rows <- which(s_idx == s)
      ys <- y[rows]
      Ws <- W[rows, , drop = FALSE]
      for (g in seq_len(k)) {
        I <- (Ws == g - 1L) * 1
        n <- colSums(I)
        m <- as.vector(crossprod(I, ys)) / n
        ss <- as.vector(crossprod(I, ys^2)) - n * m^2
        v <- ifelse(n > 1, pmax(ss, 0) / (n - 1), 0)
        mu[g, ] <- mu[g, ] + pi_s[s] * m
        V[g, ] <- V[g, ] + pi_s[s]^2 * v / n
      }
    }
  } else {
    mu <- V <- matrix(0, k, R)
    X1 <- cbind(1, x)
    for (r in seq_len(R)) {
      for (g in seq_len(k)) {
        rows <- which(W[, r] == g - 1L)
        f <- cell_lin(y[rows], X1[rows, , drop = FALSE])
        mu[g, r] <- f[1]
        V[g, r] <- f[2]
      }
    }
  }
  est <- mu[a, , drop = FALSE] - mu[b, , drop = FALSE]
  se <- sqrt(V[a, , drop = FALSE] + V[b, , drop = FALSE])
  list(estimate = est, se = se, t = est / se)
}

# The difference-in-means statistics of a buffered design: W codes buffer
# clusters -1 (left out); each cell's mean in each stratum is its Hajek mean
# with the cluster weights `weights` (N x k, one column per cell, control
# first), and the stratum means are weighted by the stratum shares of every
# designed cluster, as experiment_effect() estimates them. The standard
# error is the linearized (sandwich) variance of those weighted means.
cells_statistics_buffered <- function(y, W, k, pairs, strata, weights) {
  R <- ncol(W)
  s_idx <- as.integer(strata)
  S <- nlevels(strata)
  pi_s <- tabulate(s_idx, S) / length(y)
  mu <- V <- matrix(0, k, R)
  for (s in seq_len(S)) {
    rows <- which(s_idx == s)
    ys <- y[rows]
    Ws <- W[rows, , drop = FALSE]
    for (g in seq_len(k)) {
      I <- (Ws == g - 1L) * weights[rows, g]
      sw <- colSums(I)
      m <- as.vector(crossprod(I, ys)) / sw
      n <- colSums(Ws == g - 1L)
      e2 <- (matrix(ys, length(ys), R) - rep(m, each = length(ys)))^2
      v <- colSums(I^2 * e2) / sw^2 * ifelse(n > 1, n / (n - 1), 1)
      mu[g, ] <- mu[g, ] + pi_s[s] * m
      V[g, ] <- V[g, ] + pi_s[s]^2 * v
    }
  }
  est <- mu[pairs[, 1], , drop = FALSE] - mu[pairs[, 2], , drop = FALSE]
  se <- sqrt(V[pairs[, 1], , drop = FALSE] + V[pairs[, 2], , drop = FALSE])
  list(estimate = est, se = se, t = est / se)
}

# The intercept of the regression of y on X1 (intercept first) and its HC2
# variance; NA when the regression is rank deficient or a point has all
# the leverage.
cell_lin <- function(y, X1) {
  qx <- qr(X1)
  p <- ncol(X1)
  if (qx$rank < p) return(c(NA_real_, NA_real_))
  Q <- qr.Q(qx)
  e <- as.vector(y - Q %*% crossprod(Q, y))
  h <- rowSums(Q^2)
  if (any(h > 1 - 1e-10)) return(c(NA_real_, NA_real_))
  Rinv <- backsolve(qr.R(qx), diag(p))
  A <- Q %*% t(Rinv)[, order(qx$pivot), drop = FALSE]  # rows: bread %*% t(X1)
  beta <- as.vector(crossprod(A, y))
  c(beta[1], sum(A[, 1]^2 * e^2 / (1 - h)))
}

# The test on the outcome vector `y` of a checked design (design row order).
# `reference` reuses the draws of an earlier call (the same pool for both
# estimators of experiment_effect()).
randomization_test_cells <- function(design, y, statistic, pairs, n_draws,
                                     chunk_size = 1000L, reference = NULL,
                                     call = rlang::caller_env()) {
  cells <- design_cells(design)
  k <- length(cells)
  code <- design_cell_codes(design)
  strata <- design$strata
  x <- NULL
  weights <- NULL
  if (!is.null(design$buffer)) {
    # The buffer is part of the rule: the observed assignment's buffer
    # clusters are coded -1, as reference_cells() codes every draw's.
    code[design$arm == "buffer"] <- -1L
    weights <- cells_arm_weights(design)
  }
  if (statistic == "lin_t") {
    x <- cells_regressors(design$X, strata, code, k, call = call)
    x <- sweep(x, 2, colMeans(x))
  }
  obs <- cells_statistics(y, matrix(code, ncol = 1L), k, pairs, strata, statistic, x, weights)
  if (is.null(reference)) reference <- cells_reference(design, n_draws, chunk_size)
  ref <- cells_statistics(y, reference$W, k, pairs, strata, statistic, x, weights)
  if (anyNA(obs$t) || anyNA(ref$t) || any(!is.finite(ref$t))) {
    abort_mkt("collinear", c(
      "A contrast's statistic cannot be computed under some reference assignment: a cell has fewer clusters than regressors, or a covariate that does not vary within it.",
      i = "Balance on fewer covariates in {.fn rerandomize}, or use {.code statistic = \"diff_in_means\"}."
    ), call = call)
  }
  # Every contrast is tested with its studentized statistic, the one max-T
  # maximises: the family-wise p-value is then never below the contrast's
  # own, and a noisy contrast (a cell holding the largest clusters) does not
  # dominate the maximum.
  stat_obs <- obs$t[, 1]
  stat_ref <- ref$t
  n_ref <- ncol(stat_ref)
  exact <- reference$exact
  pval <- function(hits) if (exact) hits / n_ref else (1 + hits) / (n_ref + 1)
  tol <- function(v) 1e-10 * max(1, abs(v))
  p <- vapply(seq_len(nrow(pairs)), function(c) {
    pval(sum(abs(stat_ref[c, ]) >= abs(stat_obs[c]) - tol(stat_obs[c])))
  }, numeric(1))
  max_t <- apply(abs(ref$t), 2, max)
  t_obs <- obs$t[, 1]
  p_fw <- vapply(seq_len(nrow(pairs)), function(c) {
    pval(sum(max_t >= abs(t_obs[c]) - tol(t_obs[c])))
  }, numeric(1))
  list(estimate = obs$estimate[, 1], se = obs$se[, 1], statistic = stat_obs, t = t_obs,
       p.value = p, p.value_familywise = p_fw, reference = stat_ref, max_t = max_t,
       n_ref = n_ref, exact = exact, reference_draws = reference)
}

# randomization_test() for a multi-cell design, from its checked inputs.
randomization_test_cells_front <- function(formula, data, design, statistic, alternative,
                                           null, n_draws, chunk_size, alpha, contrasts,
                                           call) {
  if (alternative != "two.sided" || null != 0) {
    abort_mkt("inference_unsupported", c(
      "With several cells, {.fn randomization_test} tests the sharp null of no effect in any cell, two-sided.",
      i = "Leave {.arg null} at 0 and {.arg alternative} at {.val two.sided}; for a one-sided or shifted null on one contrast, keep that contrast's two cells and test them as a 0/1 treatment."
    ), call = call)
  }
  if (!is.null(design$buffer) && statistic == "lin_t") {
    abort_mkt("inference_unsupported", c(
      "{.code statistic = \"lin_t\"} is not available for a design with several cells and a buffer.",
      i = "Use {.code statistic = \"diff_in_means\"}, which compares each cell with the controls each assignment leaves outside the buffer."
    ), call = call)
  }
  alpha <- check_alpha(alpha, call = call)
  n_draws <- check_count(n_draws, "n_draws", min = 100, max = 1e7, call = call)
  chunk_size <- check_count(chunk_size, "chunk_size", min = 1, call = call)
  data <- check_data_frame(data, call = call)
  vars <- effect_formula(formula, call = call)
  check_columns(data, vars$outcome, "formula", call = call)
  check_columns(data, vars$treatment, "formula", call = call)
  cl <- check_cells_treatment(data[[vars$treatment]], vars$treatment, design, call = call)
  cells <- cl$cells
  pairs <- check_contrasts(contrasts, cells, call = call)
  y <- check_numeric_column(data, vars$outcome, "outcome", call = call)
  units <- list(y = y, cell = cl$code, key = effect_keys(data, design, NULL))
  pos <- align_design_cells(units, design, vars$treatment, cells, call = call)
  if (anyDuplicated(pos)) {
    abort_mkt("misaligned", c(
      "Some designed clusters have several rows in {.arg data}.",
      i = "Give one row per cluster (sum finer rows first)."
    ), call = call)
  }
  out <- numeric(length(design$ids))
  out[pos] <- y
  res <- randomization_test_cells(design, out, statistic, pairs, n_draws, chunk_size,
                                  call = call)
  terms <- contrast_terms(pairs, cells)
  est <- data.frame(term = terms, estimate = res$estimate, std.error = res$se,
                    statistic = res$statistic, p.value = res$p.value,
                    conf.low = NA_real_, conf.high = NA_real_,
                    t = res$t, p.value_familywise = res$p.value_familywise,
                    stringsAsFactors = FALSE)
  mc_se <- if (res$exact) 0 else sqrt(res$p.value * (1 - res$p.value) / res$n_ref)
  reference <- rbind(
    do.call(rbind, lapply(seq_along(terms), function(c) {
      data.frame(contrast = terms[c], statistic = res$reference[c, ], stringsAsFactors = FALSE)
    })),
    data.frame(contrast = "max |t|", statistic = res$max_t, stringsAsFactors = FALSE))
  code <- design_cell_codes(design)
  n_strata <- nlevels(design$strata)
  new_fit(
    "randomization_test", est,
    method = sprintf("Randomization test of %d contrasts conditional on the design's acceptance rule",
                     length(terms)),
    estimand = paste0(
      "sharp null of no effect in any cell on any cluster; estimate: ",
      if (!is.null(design$buffer)) "stratum-weighted Hajek difference between each cell and the controls outside the buffer (buffer re-applied to every draw), statistic its t" else
      if (statistic == "lin_t") "difference of Lin's adjusted cell means, statistic its HC2 t" else
        if (n_strata > 1L) "stratum-weighted difference in means, statistic its t" else
        "difference in means, statistic its Neyman t"),
    inference = sprintf("Fisher test, %s %s assignments of the rule; family-wise p-values by max-T",
                        format(res$n_ref, big.mark = ","),
                        if (res$exact) "(every one)" else "drawn"),
    alpha = alpha,
    n = list(obs = length(out), units = length(out), treated = sum(code != 0L),
             strata = if (n_strata > 1L) n_strata else NA_integer_,
             buffer = if (is.null(design$buffer)) NA_integer_ else sum(design$arm == "buffer"),
             cells = length(cells)),
    call = call,
    no_vcov = "a randomization test gives p-values, not a covariance",
    vars = c(vars, id = design$id_name),
    glance = list(n_draws = as.integer(res$n_ref), exact = res$exact,
                  mc_se = max(mc_se), null = 0, alternative = "two.sided",
                  n_contrasts = length(terms)),
    tables = list(
      reference = reference,
      clusters = data.frame(id = design$ids, stratum = as.character(design$strata),
                            cell = cells[code + 1L], outcome = out, stringsAsFactors = FALSE)),
    print_columns = c(p.value_familywise = "p (max-T)"),
    exact = res$exact, statistic_name = statistic, null = 0, alternative = "two.sided",
    buffered = !is.null(design$buffer), mc_se = mc_se, multi_cell = TRUE, cells = cells
  )
}
