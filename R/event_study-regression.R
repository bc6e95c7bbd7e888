# The regression event studies of event_study(): Sun and Abraham's
# interaction-weighted estimator and the dynamic two-way fixed effects
# regression, both weighted least squares of the outcome on indicator
# columns with unit and period effects, clustered by unit (or cluster) with
# a G/(G-1) correction.
#
# On a balanced panel (with weights constant within units) the regressions
# never form their design: every indicator is a sum of cohort x period
# indicators, and after removing unit and period effects a cohort x period
# indicator depends on the unit only through its cohort,
#   (1{G_i = h} - pi_h) (1{s = t} - 1/T),   pi_h = cohort h's share of weight.
# So the normal equations need only the cohort-by-period sums of the
# outcome, and the clustered scores, linear in each cluster's cohort sums,
# need only the second moments of those sums (one pass over the units in
# C++). Unbalanced panels take the general path: the design on the observed
# cells, demeaned by the package's fixed-effects engine.

es_regression <- function(prep, method, call = rlang::caller_env()) {
  if (method == "sa" && !any(prep$cohort == 0L)) {
    abort_mkt("no_never_treated", c(
      "Sun and Abraham's estimator needs never-treated units as the control cohort.",
      i = "Drop the periods after the last cohort adopts and use it as control, or use {.code method = \"cs\"} with {.code control = \"not_yet\"}."
    ), call = call)
  }
  if (!anyNA(prep$Y)) es_regression_balanced(prep, method) else es_regression_design(prep, method)
}

# The general path: the indicator design on the observed cells.
es_regression_design <- function(prep, method) {
  L <- es_long(prep)
  ev <- L$event
  events <- sort(unique(ev[!is.na(ev) & ev != -1L]))
  if (method == "twfe") {
    X <- vapply(events, function(e) as.numeric(!is.na(ev) & ev == e), numeric(length(ev)))
    fit <- es_dummy_fit(matrix(X, ncol = length(events)), L)
    return(list(event = events, estimate = fit$coef, vcov = fit$vcov))
  }
  cells <- unique(data.frame(g = L$cohort, e = ev)[!is.na(ev) & ev != -1L, ])
  cells <- cells[order(cells$e, cells$g), ]
  key <- paste(L$cohort, ev)
  X <- vapply(paste(cells$g, cells$e), function(k) as.numeric(key == k), numeric(length(ev)))
  X <- matrix(X, ncol = nrow(cells))
  fit <- es_dummy_fit(X, L)
  sa_average(cells, fit$coef, fit$vcov, colSums(X * L$w), events)
}

# Sun and Abraham's interaction weights: each cohort's (weighted) share of
# the observations at event e, applied to the cohort x event coefficients.
sa_average <- function(cells, beta, Vb, cell_weight, events) {
  Vb[is.na(Vb)] <- 0
  W <- vapply(events, function(e) ifelse(cells$e == e & !is.na(beta), cell_weight, 0),
              numeric(nrow(cells)))
  W <- matrix(W, ncol = length(events))
  W <- sweep(W, 2, colSums(W), "/")
  beta0 <- ifelse(is.na(beta), 0, beta)
  list(event = events, estimate = drop(crossprod(W, beta0)), vcov = crossprod(W, Vb %*% W))
}

# --- balanced panels: the cell structure ------------------------------------

es_regression_balanced <- function(prep, method) {
  Y <- prep$Y
  N <- nrow(Y)
  Tn <- ncol(Y)
  w <- prep$w
  coh <- prep$cohort
  treated <- sort(unique(coh[coh > 0L]))
  all_coh <- sort(unique(coh))
  H1 <- length(treated)
  H <- length(all_coh)
  slot <- match(coh, all_coh)
  tslot <- match(treated, all_coh)

  # Basis: treated cohort j (major) x period s (minor).
  basis_g <- rep(treated, each = Tn)
  basis_s <- rep(seq_len(Tn), times = H1)
  Kb <- H1 * Tn
  if (method == "twfe") {
    events <- sort(setdiff(unique(basis_s - basis_g), -1L))
    R <- vapply(events, function(e) as.numeric(basis_s - basis_g == e), numeric(Kb))
  } else {
    cells <- data.frame(g = basis_g, e = basis_s - basis_g)
    cells <- cells[cells$e != -1L, ]
    cells <- cells[order(cells$e, cells$g), ]
    rownames(cells) <- NULL
    events <- sort(unique(cells$e))
    R <- matrix(0, Kb, nrow(cells))
    R[cbind((match(cells$g, treated) - 1L) * Tn + cells$g + cells$e, seq_len(nrow(cells)))] <- 1
  }
  R <- matrix(R, nrow = Kb)

  # Weighted cohort-by-period outcome sums and cohort weights.
  Wh <- as.numeric(rowsum(w, slot, reorder = TRUE))
  Ysum <- rowsum(w * Y, slot, reorder = TRUE)
  Wtot <- sum(Wh)
  pi <- Wh[tslot] / Wtot
  Ytot <- colSums(Ysum)
  P <- diag(Tn) - 1 / Tn

  # Normal equations in the basis: X'WX = A (x) P, X'Wy from the sums.
  A <- Wtot * (diag(pi, H1) - tcrossprod(pi))
  e <- eigen(A, symmetric = TRUE)
  A_half <- e$vectors %*% (sqrt(pmax(e$values, 0)) * t(e$vectors))
  Xty_b <- as.vector(t((Ysum[tslot, , drop = FALSE] - outer(pi, Ytot)) %*% P))
  # B'B = X'WX: the same pivoted QR as on the full weighted design, so the
  # same columns are dropped as collinear.
  B <- kronecker(A_half, P) %*% R
  qb <- qr(B)
  keep <- qb$pivot[seq_len(qb$rank)]
  XtXi <- chol2inv(qr.R(qr(B[, keep, drop = FALSE])))
  b <- drop(XtXi %*% crossprod(R[, keep, drop = FALSE], Xty_b))

  # Clustered scores: S_c = L z_c, with z_c the cluster's cohort sums.
  beta_b <- matrix(drop(R[, keep, drop = FALSE] %*% b), H1, Tn, byrow = TRUE)
  mu <- matrix(0, H, Tn)
  mu[tslot, ] <- beta_b
  mu <- mu - rep(1, H) %o% drop(crossprod(pi, beta_b))
  ybar <- Ytot / Wtot
  width <- Tn + 1L
  Lmat <- matrix(0, Kb, H * width)
  for (h in seq_len(H)) {
    Gh <- cbind(P, -drop(P %*% (ybar + mu[h, ])))
    cols <- (h - 1L) * width + seq_len(width)
    for (j in seq_len(H1)) {
      coef <- (tslot[j] == h) - pi[j]
      if (coef != 0) Lmat[(j - 1L) * Tn + seq_len(Tn), cols] <- coef * Gh
    }
  }
  cl <- prep$cluster_id
  Q <- cpp_cluster_cohort_moments(Y, w, slot - 1L, H, order(cl) - 1L, cl)
  meat_b <- Lmat %*% Q %*% t(Lmat)
  Rk <- R[, keep, drop = FALSE]
  meat <- crossprod(Rk, meat_b %*% Rk)
  G <- max(cl)
  Vk <- XtXi %*% meat %*% XtXi * G / (G - 1)

  K <- ncol(R)
  coef <- rep(NA_real_, K)
  coef[keep] <- b
  V <- matrix(NA_real_, K, K)
  V[keep, keep] <- Vk
  if (method == "twfe") return(list(event = events, estimate = coef, vcov = V))
  sa_average(cells, coef, V, Wh[match(cells$g, all_coh)], events)
}

# --- general path: the design on the observed cells ---------------------------

# Long vectors of observed cells with unit/time indices, event time and cohort.
es_long <- function(prep) {
  obs <- which(!is.na(prep$Y), arr.ind = TRUE)
  unit <- obs[, 1]
  time <- obs[, 2]
  g <- prep$cohort[unit]
  list(y = prep$Y[obs], unit = unit, time = time, cohort = g, w = prep$w[unit],
       event = ifelse(g > 0, time - g, NA_integer_), cluster = prep$cluster_id[unit])
}

# Two-way (weighted) demeaning through the package's fixed-effects engine.
demean_2way <- function(M, unit, time, w) {
  demean_fe(as.matrix(M), list(unit, time), weights = w)
}

# Cluster-robust weighted least squares on demeaned data with a G/(G-1)
# correction.
cluster_ols <- function(X, y, cluster, w) {
  sw <- sqrt(w)
  qx <- qr(X * sw)
  keep <- qx$pivot[seq_len(qx$rank)]
  X <- X[, keep, drop = FALSE]
  XtXi <- chol2inv(qr.R(qr(X * sw)))
  b <- drop(XtXi %*% crossprod(X, w * y))
  u <- drop(y - X %*% b)
  S <- rowsum(X * (w * u), cluster)
  G <- nrow(S)
  V <- XtXi %*% crossprod(S) %*% XtXi * G / (G - 1)
  list(coef = b, vcov = V, keep = keep)
}

# Weighted two-way FE regression of the outcome on indicator columns X, with
# coefficients and covariance padded with NA where a column was collinear.
es_dummy_fit <- function(X, L) {
  Xd <- demean_2way(X, L$unit, L$time, L$w)
  yd <- demean_2way(L$y, L$unit, L$time, L$w)
  fit <- cluster_ols(Xd, yd, L$cluster, L$w)
  k <- ncol(X)
  coef <- rep(NA_real_, k)
  coef[fit$keep] <- fit$coef
  V <- matrix(NA_real_, k, k)
  V[fit$keep, fit$keep] <- fit$vcov
  list(coef = coef, vcov = V)
}

# --- the pre-trend test's bootstrap (R/pretrend_test.R) ------------------------

# The moments of the regression "sa" or "twfe" on the observed cells (the
# design the balanced path avoids forming: one N x T column per event time,
# or per cohort x event cell), or of the imputation method's leads
# regression on the untreated cells (one column per lead of `all_leads`,
# from es_imputation()), for the wild cluster bootstrap of the pre-trend
# test. `leads`: the pre-period event times tested. NULL when the design
# would not fit in `max_bytes` (its per-cluster Gram matrices grow as
# clusters x columns^2): the test then keeps its chi-squared reference.
es_pretrend_setup <- function(prep, method, leads, all_leads = NULL, max_bytes = 2^28) {
  Y <- prep$Y
  N <- nrow(Y)
  Tn <- ncol(Y)
  obs <- !is.na(Y)
  g <- prep$cohort
  E <- matrix(seq_len(Tn), N, Tn, byrow = TRUE) - g
  E[g == 0L, ] <- NA
  if (method == "imputation") obs <- obs & (is.na(E) | E < 0L)
  E[!obs] <- NA
  cells <- if (method == "twfe") {
    data.frame(g = NA_integer_, e = sort(setdiff(unique(E[!is.na(E)]), -1L)))
  } else if (method == "imputation") {
    data.frame(g = NA_integer_, e = sort(all_leads))
  } else {
    key <- unique(data.frame(g = g[row(E)[!is.na(E)]], e = E[!is.na(E)]))
    key <- key[key$e != -1L, ]
    key[order(key$e, key$g), ]
  }
  m <- nrow(cells) + 1
  G <- max(prep$cluster_id)
  if (8 * (G * m^2 + as.double(N) * Tn * m) > max_bytes) return(NULL)
  cols <- lapply(seq_len(nrow(cells)), function(j) {
    hit <- !is.na(E) & E == cells$e[j]
    if (method == "sa") hit <- hit & g == cells$g[j]
    hit[is.na(hit)] <- FALSE
    hit + 0
  })
  names(cols) <- paste0(".c", seq_along(cols))
  Y0 <- Y
  Y0[!obs] <- 0
  fg <- fe_grid(list(observed = obs), c(list(.outcome = Y0), cols),
                weights = matrix(prep$w, N, Tn), cluster = matrix(prep$cluster_id, N, Tn))
  mom <- fe_moments(fg, TRUE)
  # Columns collinear with the others and the effects are left out, as the
  # pivoted QR of the estimator leaves them out.
  x <- names(cols)
  XtX <- mom$gram[x, x, drop = FALSE]
  d <- sqrt(pmax(diag(XtX), 0))
  live <- d > 0
  q <- qr(XtX[live, live, drop = FALSE] / outer(d[live], d[live]), tol = 1e-9)
  x <- x[live][sort(q$pivot[seq_len(q$rank)])]
  cells <- cells[match(x, names(cols)), , drop = FALSE]
  if (method != "sa") {
    L <- diag(length(x))[match(leads, cells$e), , drop = FALSE]
  } else {
    # Sun and Abraham's average: cells weighted by their weighted count.
    size <- vapply(match(x, names(cols)), function(j) sum(cols[[j]] * prep$w), numeric(1))
    L <- t(vapply(leads, function(e) ifelse(cells$e == e, size, 0), numeric(length(x))))
    L <- matrix(L, nrow = length(leads))
    L <- L / rowSums(L)
  }
  if (anyNA(L) || any(rowSums(abs(L)) == 0)) return(NULL)
  pretrend_setup(mom, ".outcome", x, L, fe_grid_absorbed(fg, TRUE), cluster = fg$cluster)
}
