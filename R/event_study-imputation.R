# The imputation event study of event_study() (Borusyak, Jaravel and Spiess
# 2024): unit and period effects fitted on untreated cells, imputed
# untreated outcomes for treated cells, the conservative variance of their
# Theorem 3, and pre-trend leads from a regression on untreated cells.

# Unit and period effects fitted on the cells flagged `use` by Gauss-Seidel
# sweeps; returns a (units) and b (periods), NA where a unit or period has
# no such cell.
fit_2way_effects <- function(y, unit, time, use, n_units, n_periods, w, tol = 1e-13,
                             max_iter = 10000L) {
  u <- unit[use]
  t <- time[use]
  yy <- y[use]
  ww <- w[use]
  nu <- rowsum_full(ww, u, n_units)
  nt <- rowsum_full(ww, t, n_periods)
  a <- numeric(n_units)
  b <- numeric(n_periods)
  for (it in seq_len(max_iter)) {
    b_new <- rowsum_full(ww * (yy - a[u]), t, n_periods) / nt
    a_new <- rowsum_full(ww * (yy - b_new[t]), u, n_units) / nu
    a_new[nu == 0] <- 0
    b_new[nt == 0] <- 0
    done <- max(abs(c(a_new - a, b_new - b))) < tol
    a <- a_new
    b <- b_new
    if (done) break
  }
  a[nu == 0] <- NA_real_
  b[nt == 0] <- NA_real_
  list(a = a, b = b)
}

# Solves the weighted normal equations Z0'W0 Z0 (a, b) = Z1'w of unit and
# period effects, where Z0 are the untreated cells (with weights W0) and w
# lives on the treated ones,
# by Gauss-Seidel sweeps (the minimum-norm solution is not needed: only the
# fitted a_i + b_t on untreated cells enters, and it is unique).
project_2way <- function(w, unit, time, untreated, n_units, n_periods, omega,
                         tol = 1e-14, max_iter = 10000L) {
  u0 <- unit[untreated]
  t0 <- time[untreated]
  o0 <- omega[untreated]
  r <- rowsum_full(w[!untreated], unit[!untreated], n_units)
  s <- rowsum_full(w[!untreated], time[!untreated], n_periods)
  nu <- rowsum_full(o0, u0, n_units)
  nt <- rowsum_full(o0, t0, n_periods)
  a <- numeric(n_units)
  b <- numeric(n_periods)
  for (it in seq_len(max_iter)) {
    b_new <- ifelse(nt > 0, (s - rowsum_full(o0 * a[u0], t0, n_periods)) / ifelse(nt > 0, nt, 1), 0)
    a_new <- ifelse(nu > 0, (r - rowsum_full(o0 * b_new[t0], u0, n_units)) / ifelse(nu > 0, nu, 1), 0)
    done <- max(abs(c(a_new - a, b_new - b))) < tol
    a <- a_new
    b <- b_new
    if (done) break
  }
  list(a = a, b = b)
}

rowsum_full <- function(x, g, n) {
  out <- numeric(n)
  s <- rowsum(x, g, reorder = TRUE)
  out[as.integer(rownames(s))] <- s
  out
}

es_imputation <- function(prep, call = NULL) {
  L <- es_long(prep)
  N <- prep$n
  Tn <- prep$n_periods
  treated <- !is.na(L$event) & L$event >= 0
  fe <- fit_2way_effects(L$y, L$unit, L$time, !treated, N, Tn, L$w)
  y0hat <- fe$a[L$unit] + fe$b[L$time]
  tau <- L$y - y0hat
  usable <- treated & is.finite(tau)
  events <- sort(unique(L$event[usable]))
  # Every treated cell lies in a period no untreated cell shares (all units
  # adopt at once, for example): no untreated outcome can be imputed.
  if (!length(events)) {
    abort_mkt("no_post_cells", c(
      "No treated cell has an imputed untreated outcome: in every treated period no unit is still untreated.",
      i = "The imputation estimator needs units untreated in the periods it estimates (never-treated or later adopters); keep some, or use a design with a control group."
    ), call = call)
  }
  # Weights of each event-time estimand on treated cells, and their
  # projection onto untreated cells (BJS Theorem 3: v0 = -Z0 (Z0'Z0)^-1 Z1'w1).
  W <- vapply(events, function(e) {
    w <- as.numeric(usable & L$event == e) * L$w
    w / sum(w)
  }, numeric(length(L$y)))
  W <- matrix(W, ncol = length(events))
  estimate <- colSums(W * ifelse(usable, tau, 0))
  V <- W
  for (k in seq_along(events)) {
    p <- project_2way(W[, k], L$unit, L$time, !treated, N, Tn, L$w)
    V[!treated, k] <- -L$w[!treated] * (p$a[L$unit[!treated]] + p$b[L$time[!treated]])
  }
  # Residuals: untreated cells from the fitted effects, treated cells net of
  # their cohort x event-time mean effect.
  eps <- L$y - y0hat
  key <- paste(L$cohort, L$event)
  cell_mean <- rowsum_full(ifelse(usable, L$w * tau, 0), match(key, unique(key)), length(unique(key))) /
    rowsum_full(ifelse(usable, L$w, 0), match(key, unique(key)), length(unique(key)))
  cell_mean <- cell_mean[match(key, unique(key))]
  eps[usable] <- tau[usable] - cell_mean[usable]
  eps[treated & !usable] <- 0
  eps[!is.finite(eps)] <- 0
  S <- rowsum(V * eps, L$cluster)
  post <- list(event = events, estimate = estimate, vcov = crossprod(S))

  # Pre-trend leads on untreated cells only (BJS's test), relative to the
  # earliest pre-treatment periods.
  pre_e <- L$event[!treated & !is.na(L$event)]
  deepest <- if (length(pre_e)) max(min(pre_e) + 1L, -(Tn - 2L)) else 0L
  # With two periods (or one pre-period) there is no lead to test.
  leads <- if (deepest <= -1L) seq.int(-1L, deepest, by = -1L) else integer()
  leads <- sort(leads[leads >= min(pre_e, 0) + 1L])
  if (length(leads)) {
    u0 <- !treated
    X <- vapply(leads, function(e) as.numeric(!is.na(L$event[u0]) & L$event[u0] == e),
                numeric(sum(u0)))
    L0 <- lapply(L[c("y", "unit", "time", "w", "cluster")], function(v) v[u0])
    fit <- es_dummy_fit(matrix(X, ncol = length(leads)), L0)
    b <- fit$coef
    Vp <- fit$vcov
  } else {
    b <- numeric()
    Vp <- matrix(0, 0, 0)
  }
  K <- length(leads) + length(events)
  Vall <- matrix(0, K, K)
  if (length(leads)) {
    Vall[seq_along(leads), seq_along(leads)] <- Vp
    # Leads and effects use the same untreated cells: their covariance from
    # the per-cluster scores of both, with the leads' G/(G-1).
    SL <- es_lead_scores(matrix(X, ncol = length(leads)), L0, b)
    SP <- matrix(0, nrow(SL), length(events), dimnames = list(rownames(SL), NULL))
    common <- intersect(rownames(S), rownames(SL))
    SP[common, ] <- S[common, , drop = FALSE]
    G <- nrow(SL)
    cross <- sqrt(G / (G - 1)) * crossprod(SL, SP)
    Vall[seq_along(leads), length(leads) + seq_along(events)] <- cross
    Vall[length(leads) + seq_along(events), seq_along(leads)] <- t(cross)
  }
  Vall[length(leads) + seq_along(events), length(leads) + seq_along(events)] <- post$vcov
  # The weight each effect puts on the untreated cells of each pre-adoption
  # event time (summed over cells; minus these sum to one): how a violation
  # of parallel trends that depends on event time biases the effect.
  # honest_sensitivity() uses them to restate the effects against event
  # time -1.
  ref <- if (length(pre_e)) min(pre_e) else NA_integer_
  pre_weights <- if (length(pre_e)) {
    at <- !treated & !is.na(L$event)
    Wk <- rowsum(V[at, , drop = FALSE], L$event[at])
    out <- matrix(0, length(events), -ref, dimnames = list(events, ref:-1))
    out[, rownames(Wk)] <- -t(Wk)
    out
  }
  list(event = c(leads, events), estimate = c(b, estimate), vcov = Vall,
       honest = list(event = c(leads, events), estimate = c(b, estimate), vcov = Vall,
                     leads = leads, events = events, ref = ref, pre_weights = pre_weights))
}

# Per-cluster scores of the lead coefficients b (NA where collinear, a zero
# column) of the regression on untreated cells L0, such that
# crossprod(scores) * G / (G - 1) is their covariance.
es_lead_scores <- function(X, L0, b) {
  ok <- !is.na(b)
  clusters <- sort(unique(L0$cluster))
  S <- matrix(0, length(clusters), length(b), dimnames = list(clusters, NULL))
  if (!any(ok)) return(S)
  Xd <- demean_2way(X[, ok, drop = FALSE], L0$unit, L0$time, L0$w)
  yd <- demean_2way(L0$y, L0$unit, L0$time, L0$w)
  XtXi <- chol2inv(qr.R(qr(Xd * sqrt(L0$w))))
  u <- drop(yd - Xd %*% b[ok])
  Sk <- rowsum(Xd * (L0$w * u), L0$cluster) %*% XtXi
  S[rownames(Sk), ok] <- Sk
  S
}
