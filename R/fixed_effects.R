# The fixed-effects engine shared by every estimator with absorbed effects
# (iv_fe, dose_response, exposure_did, dml). One piece of code removes unit,
# time (and any further) fixed effects, so that every estimator partials them
# out the same way and agrees with fixest on the same data.
#
# The within transformation is the projection onto the orthogonal complement
# of the span of the fixed-effect indicators. With one factor it is a group
# demeaning; with several on an unbalanced panel there is no closed form, so
# we alternate the one-factor projections (the method of alternating
# projections, von Neumann / Halperin), which converges to the projection onto
# the intersection of the complements. On a balanced panel without weights
# one sweep is exact for unit + time. The sweeps run in the C++ kernel
# src/demean.h (column by column, interrupts polled on the main thread);
# this file prepares its inputs and checks them.

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
  res <- cpp_demean(M, codes, n_groups, w, tol, as.integer(max_iter))
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

# One value per observed cell of a column that is not part of the formula
# (a cluster label, weights): matched to the panel's cells through the unit
# and time columns, so that the row order of `data` does not matter.
panel_side_column <- function(panel, data, column, arg, call = rlang::caller_env()) {
  data <- check_data_frame(data)
  if (!is.character(column) || length(column) != 1L) {
    abort_mkt("bad_argument", c(
      "{.arg {arg}} must be the name of one column of {.arg data}.",
      x = "You supplied {.obj_type_friendly {column}}."
    ), call = call)
  }
  check_columns(data, column, arg, call = call)
  i <- match(as.character(data[[panel$vars$unit]]), as.character(panel$units))
  t <- match(as.character(data[[panel$vars$time]]), as.character(panel$times))
  ok <- !is.na(i) & !is.na(t)
  m <- matrix(NA, length(panel$units), length(panel$times))
  m[cbind(i[ok], t[ok])] <- as.character(data[[column]][ok])
  m
}

# The clusters of a fixed-effects fit: NULL means the unit (fixest's default
# with unit fixed effects first), FALSE means none (HC1), a string names a
# column. Returns the label of each kept cell, or NULL for HC1.
fe_cluster <- function(cluster, panel, data, cells, keep, call = rlang::caller_env()) {
  if (is.null(cluster)) return(cells$unit[keep])
  if (isFALSE(cluster)) return(NULL)
  m <- panel_side_column(panel, data, cluster, "cluster", call = call)
  lab <- m[cbind(cells$unit, cells$time)][keep]
  if (anyNA(lab)) {
    abort_mkt("bad_cluster", c(
      "The cluster column {.field {cluster}} is missing on {sum(is.na(lab))} observed cell{?s}.",
      i = "Fill it in, or cluster by the unit (the default, {.code cluster = NULL})."
    ), call = call)
  }
  lab
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
  crit <- stats::qt(1 - alpha / 2, df)
  data.frame(term = terms, estimate = unname(est), std.error = unname(se),
             statistic = unname(stat), p.value = unname(2 * stats::pt(-abs(stat), df)),
             conf.low = unname(est - crit * se), conf.high = unname(est + crit * se),
             df = unname(df), stringsAsFactors = FALSE, row.names = NULL)
}

check_weights_column <- function(weights, panel, data, cells, call = rlang::caller_env()) {
  if (is.null(weights)) return(NULL)
  m <- panel_side_column(panel, data, weights, "weights", call = call)
  w <- suppressWarnings(as.numeric(m[cbind(cells$unit, cells$time)]))
  if (anyNA(w) || any(w <= 0)) {
    abort_mkt("bad_weights", c(
      "The weights column {.field {weights}} must be positive and complete on observed cells.",
      i = "Drop the cells with zero or missing weight first."
    ), call = call)
  }
  w
}
