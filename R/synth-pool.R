# Partially pooled synthetic controls for staggered adoption (Ben-Michael,
# Feller and Rothstein 2022). Separate synthetic controls can each fit their
# own unit well while their errors add up in the average effect; fully
# pooled weights fit the average but may fit no unit. The partially pooled
# weights minimise
#   nu * (pooled pre-period imbalance) + (1 - nu) * (mean unit imbalance),
# where the pooled imbalance is that of the average treated unit over the L
# pre-treatment lags that all units share (aligned in event time) and each
# term is a mean squared error per period. The problem is jointly convex in
# the units' weights, so block coordinate descent, one exact simplex fit per
# unit with the others held fixed, converges to its optimum.

pool_weights <- function(setup, fits, nu, tol = 1e-12, max_sweeps = 5000L) {
  Y <- setup$panel$Y
  Y0 <- Y[setup$donors, , drop = FALSE]
  J <- length(fits)
  pre <- lapply(fits, function(f) which(seq_along(f$y1) < f$t0 & !is.na(f$y1)))
  L <- min(vapply(fits, function(f) f$t0 - 1L, numeric(1)))
  lag_idx <- lapply(fits, function(f) f$t0 - rev(seq_len(L)))
  if (any(vapply(seq_len(J), function(k) anyNA(fits[[k]]$y1[lag_idx[[k]]]), logical(1)))) {
    abort_mkt("bad_argument", c(
      "Partial pooling needs every treated unit observed in the {L} pre-treatment period{?s} they share.",
      i = "Use {.code pool = 0}, or fill the treated units' missing periods."))
  }
  W <- lapply(fits, `[[`, "w")
  resid_lag <- function(k, w) fits[[k]]$y1[lag_idx[[k]]] - drop(crossprod(Y0[, lag_idx[[k]], drop = FALSE], w))
  R <- lapply(seq_len(J), function(k) resid_lag(k, W[[k]]))
  objective <- function() {
    sep <- mean(vapply(seq_len(J), function(k) {
      mean((fits[[k]]$y1[pre[[k]]] - drop(crossprod(Y0[, pre[[k]], drop = FALSE], W[[k]])))^2)
    }, numeric(1)))
    nu * mean((Reduce(`+`, R) / J)^2) + (1 - nu) * sep
  }
  # Stop when a sweep no longer lowers the objective: with nu near 1 the
  # optimal weights need not be unique, so their changes are no criterion.
  converged <- FALSE
  last <- objective()
  for (sweep in seq_len(max_sweeps)) {
    for (j in seq_len(J)) {
      others <- Reduce(`+`, R[-j]) / J
      a <- sqrt(nu / L) / J
      b <- sqrt((1 - nu) / (J * length(pre[[j]])))
      X <- rbind(a * t(Y0[, lag_idx[[j]], drop = FALSE]), b * t(Y0[, pre[[j]], drop = FALSE]))
      y <- c(a * fits[[j]]$y1[lag_idx[[j]]] + sqrt(nu / L) * others, b * fits[[j]]$y1[pre[[j]]])
      r <- solve_simplex(X, y, 0, W[[j]])
      W[[j]] <- r$w
      R[[j]] <- resid_lag(j, W[[j]])
    }
    now <- objective()
    if (last - now <= tol * max(last, .Machine$double.xmin)) {
      converged <- TRUE
      break
    }
    last <- now
  }
  list(W = W, converged = converged, sweeps = sweep, L = L,
       pooled_imbalance = sqrt(mean((Reduce(`+`, R) / J)^2)))
}

# Gaps and summaries of a fit whose weights were replaced.
refit_gaps <- function(setup, f, w) {
  Y0 <- setup$panel$Y[setup$donors, , drop = FALSE]
  synthetic <- drop(crossprod(Y0, w))
  gap <- f$y1 - synthetic
  idx <- seq_along(gap)
  f$w <- stats::setNames(w, names(f$w))
  f$synthetic <- synthetic
  f$gap <- gap
  f$att <- mean(gap[idx >= f$t0], na.rm = TRUE)
  f$pre_rmspe <- sqrt(mean(gap[idx < f$t0]^2, na.rm = TRUE))
  f$post_rmspe <- sqrt(mean(gap[idx >= f$t0]^2, na.rm = TRUE))
  f
}
