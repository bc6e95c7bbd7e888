# The fixed-effects engine shared by every estimator with absorbed effects.
# Two entry points:
# * demean_fe() removes any number of fixed effects given as group codes
#   from long columns, by alternating projections (the method of von Neumann
#   and Halperin), which converges to the projection onto the intersection
#   of the complements; on a balanced panel one sweep is exact for unit +
#   time. event_study() and spillover() use it. Columns run in parallel on
#   mkt_threads() threads in the C++ kernel src/demean.h.
# * fe_grid() removes unit and time effects from a panel's N x T matrices in
#   one C++ pass over the used cells (solving for the effects through the
#   smaller dimension), and the fe_*() helpers below it run every regression
#   of iv_fe(), dose_response(), exposure_did() and dml() from the Gram
#   matrices of the demeaned columns. Both agree with fixest on the same
#   data.

# M: n x k numeric matrix (or vector); fe: list of integer group codes, each
# of length n (1..G); weights: NULL or positive weights (the projection is then
# orthogonal in the weighted inner product, as weighted least squares needs).
# Returns M with every fixed effect swept out, with attributes `iterations`
# and `converged`.
demean_fe <- function(M, fe, weights = NULL, tol = 1e-13, max_iter = 10000L) {
  vec <- is.null(dim(M))
  M <- as.matrix(M)
  storage.mode(M) <- "double"
  n <- nrow(M)
  if (!length(fe) || !ncol(M)) {
    return(structure(if (vec) M[, 1] else M, iterations = 0L, converged = TRUE))
  }
  # The kernel (src/demean.h) takes 0-based codes 0..G-1 per factor.
  codes <- lapply(fe, function(g) match(g, sort(unique(g))) - 1L)
  n_groups <- vapply(codes, function(g) max(g) + 1L, integer(1))
  w <- if (is.null(weights)) numeric(0) else as.numeric(weights)
  if (anyNA(M) || anyNA(w) || (length(w) && length(w) != n)) {
    abort_mkt("bad_data", "Fixed effects can only be removed from complete columns and weights.")
  }
  dn <- dimnames(M)
  res <- cpp_demean(M, codes, n_groups, w, tol, as.integer(max_iter), threads_for())
  M <- res$x
  dimnames(M) <- dn
  if (vec) M <- M[, 1]
  structure(M, iterations = res$iterations, converged = res$converged)
}

# Number of parameters the fixed effects absorb: the levels of each factor,
# less one per extra factor for the shared constant (exact for unit + time on
# a connected panel, which is what the panel layer produces).
fe_dof <- function(fe) {
  sizes <- vapply(fe, function(g) length(unique(g)), integer(1))
  sum(sizes) - (length(fe) - 1L)
}

# The long form of the observed cells of a mkt_panel(): unit and time codes
# and the outcome, treatment and covariate values, one element per cell
# (ordered by unit, then time). Extra N x T matrices (instruments,
# endogenous variables) come along by name.
panel_cells <- function(panel, extra = list()) {
  obs <- which(panel$observed, arr.ind = TRUE)
  obs <- obs[order(obs[, 1], obs[, 2]), , drop = FALSE]
  out <- list(unit = obs[, 1], time = obs[, 2], y = panel$Y[obs],
              d = if (is.null(panel$D)) NULL else panel$D[obs])
  out$X <- vapply(panel$X, function(m) m[obs], numeric(nrow(obs)))
  if (!is.matrix(out$X)) out$X <- matrix(out$X, nrow = nrow(obs),
                                         dimnames = list(NULL, names(panel$X)))
  out$extra <- lapply(extra, function(m) m[obs])
  out$n <- nrow(obs)
  out
}

# Demeans a named list of columns (or a matrix) by unit and time codes and
# stops with a classed error if the projections failed to converge.
within_transform <- function(M, fe, weights = NULL, call = rlang::caller_env()) {
  out <- demean_fe(M, fe, weights = weights)
  if (!isTRUE(attr(out, "converged"))) {
    abort_mkt("fe_not_converged", c(
      "Removing the fixed effects did not converge in {attr(out, 'iterations')} sweeps.",
      i = "The panel may be split into disconnected pieces; check which units share periods."
    ), call = call)
  }
  out
}

# Absorbed fixed-effect parameters that count in the small-sample correction:
# as fixest does by default, a factor nested in the clusters (every level
# inside one cluster) is not counted, and then no level of the others is
# dropped for the shared constant either (the nested factor held it).
fe_absorbed <- function(fe, cluster) {
  if (is.null(cluster)) return(fe_dof(fe))
  cl <- match(cluster, unique(cluster))
  # Nested: no level of the factor meets two clusters.
  nested <- vapply(fe, function(g) {
    length(unique(as.numeric(g) * (length(cl) + 1) + cl)) == length(unique(g))
  }, logical(1))
  if (!any(nested)) return(fe_dof(fe))
  sum(vapply(fe[!nested], function(g) length(unique(g)), integer(1)))
}

# The broom columns for coefficients with a t reference distribution.
fe_estimates <- function(beta, vcov, df, alpha, terms = names(beta)) {
  se <- sqrt(diag(vcov))[terms]
  est <- beta[terms]
  df <- rep_len(df, length(terms))
  stat <- est / se
  crit <- stats::qt(alpha / 2, df, lower.tail = FALSE)
  data.frame(term = terms, estimate = unname(est), std.error = unname(se),
             statistic = unname(stat), p.value = unname(2 * stats::pt(-abs(stat), df)),
             conf.low = unname(est - crit * se), conf.high = unname(est + crit * se),
             df = unname(df), stringsAsFactors = FALSE, row.names = NULL)
}

# --- regressions on the panel's grid ------------------------------------------
#
# The estimators of this family (iv_fe, dose_response, exposure_did, dml)
# regress on unit and time fixed effects of a panel. fe_grid() removes the
# effects from columns held as N x T matrices in one C++ pass over the grid
# (src/demean.h: the Schur complement of the smaller dimension, solved by
# conjugate gradients for all columns at once) and returns the used cells as
# an n x m matrix A. Every regression after that is a small computation:
# with the Gram matrix A'A and, for clustered errors, the Gram matrix of
# each cluster's rows, any least-squares fit whose regressors are linear
# combinations of A's columns (X = A Gamma) and whose residual is one too
# (e = A c) has its coefficients and its clustered sandwich without another
# pass over the n rows. First stages, reduced forms, two-stage least squares
# and the Anderson-Rubin pieces of iv_fe() all share one pair of passes.

# cols: named list of N x T matrices (the first is usually the outcome);
# weights: NULL or an N x T matrix; cluster: NULL (each unit its own
# cluster) or N x T integer codes. A cell is used when observed, every
# column is known there and its weight is positive. With weights the columns
# come back multiplied by sqrt(weight), so ordinary least squares on them is
# weighted least squares.
fe_grid <- function(panel, cols, weights = NULL, cluster = NULL, tol = 1e-12,
                    max_iter = 10000L, call = rlang::caller_env()) {
  cols <- lapply(cols, function(x) {
    if (!is.double(x)) storage.mode(x) <- "double"
    x
  })
  threads <- threads_for()
  res <- cpp_demean_grid(panel$observed, unname(cols),
                         if (is.null(weights)) numeric(0) else as.double(weights),
                         if (is.null(cluster)) integer(0) else as.integer(cluster),
                         TRUE, tol, as.integer(max_iter), threads)
  if (!isTRUE(res$converged)) {
    abort_mkt("fe_not_converged", c(
      "Removing the fixed effects did not converge in {res$iterations} iterations.",
      i = "The panel may be split into disconnected pieces; check which units share periods."
    ), call = call)
  }
  colnames(res$x) <- names(cols)
  # Each column's largest raw value on the used cells (times the largest
  # square-root weight, as the columns come back scaled): fe_moments()
  # measures what the fixed effects left against it.
  wmax <- if (is.null(weights)) 1 else sqrt(max(weights[panel$observed], na.rm = TRUE))
  res$size <- vapply(cols, function(x) {
    v <- suppressWarnings(max(abs(x[panel$observed]), na.rm = TRUE))
    if (is.finite(v)) v else 0
  }, numeric(1)) * wmax
  res$n <- nrow(res$x)
  res$weighted <- !is.null(weights)
  res$threads <- threads
  res
}

# Weights of the used cells of an fe_grid(), in its row order.
fe_grid_values <- function(fg, m) {
  m[cbind(fg$unit, fg$time)]
}

# An N x T matrix holding `values` on the used cells of an fe_grid() and NA
# elsewhere (to bring columns built on the cells back to the grid).
fe_grid_matrix <- function(fg, panel, values) {
  out <- matrix(NA_real_, length(panel$units), length(panel$times))
  out[cbind(fg$unit, fg$time)] <- values
  out
}

# The moments every regression on A needs: its Gram matrix and, for
# clustered errors, the per-cluster Gram matrices (stacked as G*m x m, see
# cpp_cluster_gram) and the number of non-empty clusters, of which a
# clustered variance needs two (`by` names the clusters in the error).
fe_moments <- function(fg, clustered, by = NULL, call = rlang::caller_env()) {
  A <- fg$x
  # A column the fixed effects absorb (a constant covariate, a unit-level
  # one) comes back as rounding noise, not zeros, and would pass the rank
  # check as a regressor of pure noise: such columns are set to exactly zero,
  # so that fe_check_rank() names them as collinear with the effects.
  if (!is.null(fg$size) && nrow(A)) {
    absorbed <- sqrt(colSums(A^2) / nrow(A)) <= 1e-10 * fg$size
    A[, absorbed] <- 0
  }
  out <- list(A = A, gram = crossprod(A), n = nrow(A), m = ncol(A), clustered = clustered,
              cols = colnames(A))
  if (clustered) {
    G_all <- max(fg$cluster)
    cg <- cpp_cluster_gram(A, fg$cluster, G_all, fg$threads)
    out$cgram <- cg$gram
    out$G_all <- G_all
    out$G <- sum(cg$count > 0L)
    if (out$G < 2L) {
      abort_mkt("too_few_clusters", c(
        "Clustered standard errors need at least two clusters; the cells used lie in {out$G} cluster{?s} of {.field {by %||% 'the clusters'}}.",
        i = "Cluster by a finer grouping, or use {.code inference = \"heteroskedastic\"}."
      ), call = call)
    }
  } else {
    out$G <- out$n
  }
  out
}

# TRUE for each of `cols` with nothing left once the unit and time effects
# are removed (constant, or a sum of a unit and a period effect), relative to
# the largest absolute value of its raw N x T matrix (times the largest
# square-root weight, as fe_grid() scales the columns).
fe_flat <- function(mom, cols, raw, weights = NULL) {
  left <- sqrt(pmax(diag(mom$gram)[cols], 0) / mom$n)
  size <- vapply(raw, function(x) suppressWarnings(max(abs(x), na.rm = TRUE)), numeric(1))
  size[!is.finite(size)] <- 0
  wmax <- if (is.null(weights)) 1 else sqrt(max(weights, na.rm = TRUE))
  left <= 1e-10 * size * wmax
}

# An outcome with no variation left after the fixed effects makes every
# coefficient exactly zero (or the fit exact) with no sampling error: the
# standard errors would be zero and the tests 0/0.
fe_check_outcome <- function(mom, col, Y, name, weights = NULL, call = rlang::caller_env()) {
  if (fe_flat(mom, col, list(Y), weights)) {
    abort_mkt("no_variation", c(
      "The outcome {.field {name}} has no variation left once unit and time fixed effects are removed: it is constant, or the sum of a unit and a period effect.",
      i = "Every effect on it is exactly zero, with no sampling error to test against; check that {.field {name}} is the outcome you meant."
    ), call = call)
  }
  invisible(TRUE)
}

# A regression from ols_robust() fitted on the outcome divided by s, back
# on the outcome's scale (coefficients times s, variances times s^2; the
# variances of an outcome near 1e300 are then infinite, never NaN).
unscale_ols <- function(fit, s) {
  if (s == 1) return(fit)
  fit$coefficients <- fit$coefficients * s
  fit$vcov <- unscale_variance(fit$vcov, s)
  for (nm in intersect(c("residuals", "fitted.values"), names(fit))) fit[[nm]] <- fit[[nm]] * s
  fit
}

# The outcome-scaled columns of an estimates (or curve) table back on the
# outcome's scale.
unscale_table <- function(tab, s, cols = c("estimate", "std.error", "conf.low", "conf.high")) {
  if (s == 1 || is.null(tab)) return(tab)
  for (cl in intersect(cols, names(tab))) tab[[cl]] <- tab[[cl]] * s
  tab
}

# Absorbed fixed-effect parameters counted in the small-sample correction,
# as fe_absorbed() counts them: a factor nested in the clusters is not
# counted, and then no level is dropped for the shared constant.
fe_grid_absorbed <- function(fg, clustered) {
  levels <- c(fg$n_units, fg$n_periods)
  if (!clustered) return(sum(levels) - 1L)
  nested <- c(fg$unit_nested, fg$time_nested)
  if (!any(nested)) return(sum(levels) - 1L)
  sum(levels[!nested])
}

# Selection of columns of A as a coefficient matrix (m x length(cols)).
fe_select <- function(mom, cols) {
  out <- matrix(0, mom$m, length(cols), dimnames = list(mom$cols, cols))
  out[cbind(match(cols, mom$cols), seq_along(cols))] <- 1
  out
}

# Least squares of the target A t on the regressors A Gamma, from the Gram
# matrix: coefficients, the residual as coefficients on A's columns, and
# the inverse of X'X (the bread).
fe_ls <- function(mom, Gamma, target, call = rlang::caller_env()) {
  XtX <- crossprod(Gamma, mom$gram %*% Gamma)
  fe_check_rank(XtX, colnames(Gamma), call = call)
  bread <- solve(XtX)
  beta <- drop(bread %*% crossprod(Gamma, mom$gram %*% target))
  names(beta) <- colnames(Gamma)
  dimnames(bread) <- list(colnames(Gamma), colnames(Gamma))
  list(coefficients = beta, resid = drop(target - Gamma %*% beta), bread = bread,
       Gamma = Gamma)
}

# Rank check on X'X: the columns scaled to unit length, then a pivoted
# Cholesky; the error names the aliased columns as ols_robust() does.
fe_check_rank <- function(XtX, names, call = rlang::caller_env()) {
  p <- ncol(XtX)
  d <- sqrt(pmax(diag(XtX), 0))
  bad <- names[d <= 0]
  if (!length(bad) && p > 1L) {
    C <- XtX / outer(d, d)
    ch <- suppressWarnings(chol(C, pivot = TRUE, tol = 1e-12))
    rk <- attr(ch, "rank")
    if (rk < p) bad <- names[attr(ch, "pivot")[seq.int(rk + 1L, p)]]
  }
  if (length(bad)) {
    abort_mkt("collinear", c(
      "The regression is rank deficient: {.field {bad}} {?is/are} collinear with other terms or the fixed effects.",
      i = "Drop redundant covariates, or terms that the unit and time effects absorb."
    ), call = call)
  }
  invisible(TRUE)
}

# The score sums of a fit with regressors A Gamma and residual A c: one row
# per cluster (or per row without clusters), one column per regressor.
fe_scores <- function(mom, Gamma, c) {
  if (mom$clustered) {
    Cc <- matrix(mom$cgram %*% c, nrow = mom$G_all, ncol = mom$m)
    return(Cc %*% Gamma)
  }
  e <- drop(mom$A %*% c)
  (mom$A %*% Gamma) * e
}

# The CR1 (clustered) or HC1 sandwich of a fit, with fixest's small-sample
# correction: G/(G-1) (n-1)/(n-K) and G - 1 degrees of freedom, or n/(n-K)
# and n - K, where K counts the regressors and the absorbed effects.
fe_vcov <- function(mom, fit, n_abs) {
  n <- mom$n
  p <- ncol(fit$Gamma)
  K <- p + n_abs
  S <- fe_scores(mom, fit$Gamma, fit$resid)
  if (mom$clustered) {
    G <- mom$G
    adj <- G / (G - 1) * (n - 1) / (n - K)
    df <- G - 1
  } else {
    adj <- n / (n - K)
    df <- n - K
  }
  V <- adj * fit$bread %*% crossprod(S) %*% fit$bread
  dimnames(V) <- dimnames(fit$bread)
  list(vcov = V, df = stats::setNames(rep(df, p), colnames(fit$Gamma)))
}

# Residual sum of squares of a fit (on the sqrt-weighted scale).
fe_rss <- function(mom, fit) {
  as.numeric(crossprod(fit$resid, mom$gram %*% fit$resid))
}

# An ordinary least-squares fit of column `y` on columns `x` with its
# sandwich, as ols_robust(se_type = "CR1" / "HC1") gives it.
fe_ols <- function(mom, y, x, n_abs, call = rlang::caller_env()) {
  fit <- fe_ls(mom, fe_select(mom, x), fe_select(mom, y)[, 1], call = call)
  c(fit, fe_vcov(mom, fit, n_abs))
}

# The clusters of a fit: `inference` "cluster" with cluster = NULL clusters
# by unit, with a column name by panel$cluster; "heteroskedastic" has none.
fe_cluster_codes <- function(panel, inference, cluster) {
  if (inference != "cluster" || is.null(cluster)) return(NULL)
  panel$cluster
}

# `cluster` names a column of clusters and means clustered errors.
check_fe_inference <- function(inference, cluster, call = rlang::caller_env()) {
  if (inference != "cluster" && !is.null(cluster)) {
    abort_mkt("bad_argument", c(
      "{.arg cluster} is given but {.code inference = \"{inference}\"} does not cluster.",
      i = "Use {.code inference = \"cluster\"} (the default) with {.arg cluster}."
    ), call = call)
  }
  invisible(TRUE)
}

fe_inference_label <- function(inference, panel, cluster, G) {
  if (inference == "heteroskedastic") return("HC1 (heteroskedasticity-robust)")
  by <- if (is.null(cluster)) panel$vars$unit else cluster
  sprintf("CR1 clustered by %s (%s clusters)", by, format(G, big.mark = ","))
}
