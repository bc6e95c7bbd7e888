# The moment-inequality test of Andrews, Roth and Pakes (2023), as used by
# Rambachan and Roth (2023) for a polyhedral set of trend violations
# {delta : A delta <= d}.
#
# For a candidate value theta of the target l'tau_post, the null is that
# some post-period path tau with l'tau = theta makes A (beta - tau) <= d
# hold for the mean of the event-study estimates beta. Writing
# tau = u theta + N nu (u with l'u = 1, N a basis of l's null space) leaves
# the moment inequalities E[y] - X nu <= 0 with y = A beta - d - A_post u
# theta and X = A_post N. The statistic is the linear program
#   eta = min_{eta, nu} eta  s.t.  y - X nu <= eta * sd(y),
# solved through the vertices of its dual (src/honest.h): eta is the largest
# vertex value, the conditioning interval of the test is read off the lines
# g'(s + b c) of all vertices, and the least-favourable critical value of
# the hybrid test is a maximum over vertices for each draw.

# A nuisance parametrisation of the post-period path for the target l.
honest_target_basis <- function(l) {
  u <- l / sum(l^2)
  # The last columns of a complete QR basis started from l span l's null
  # space; the test does not depend on which basis is used.
  Q <- qr.Q(qr(cbind(l, diag(length(l)))))
  N <- Q[, -1, drop = FALSE]
  list(u = u, N = N)
}

# Everything about one polyhedron that does not depend on theta: the
# moments used by the test (those that involve post-period violations, as
# in Rambachan and Roth's implementation), their covariance and the dual
# vertices.
arp_prepare <- function(A, d, betahat, sigma, n_pre, l) {
  post <- n_pre + seq_along(l)
  rows <- which(rowSums(abs(A[, post, drop = FALSE])) > 0)
  A <- A[rows, , drop = FALSE]
  basis <- honest_target_basis(l)
  A_post <- A[, post, drop = FALSE]
  sigma_y <- A %*% sigma %*% t(A)
  sd <- sqrt(pmax(diag(sigma_y), 0))
  W <- cbind(sd, A_post %*% basis$N)
  n_bases <- choose(nrow(W), ncol(W))
  if (n_bases > 5e6) {
    abort_mkt("honest_input", c(
      sprintf("The relative-magnitudes test would enumerate %s bases for %d post-periods.",
              format(n_bases, big.mark = ","), length(l)),
      i = "Keep fewer post-periods (`max_e` in `event_study()`), at most 10."
    ))
  }
  list(y0 = drop(A %*% betahat - d[rows]), slope = drop(A_post %*% basis$u),
       sigma_y = sigma_y, vertices = cpp_honest_vertices(W, 1e-10))
}

# Least-favourable critical value of the first stage: the 1 - kappa
# quantile of eta under y ~ N(0, Sigma_y), from standard normal draws Z
# (n_draws x rows) mapped through the symmetric square root of Sigma_y.
arp_lf_cv <- function(prep, Z, kappa) {
  G <- prep$vertices
  if (!ncol(G)) return(-Inf)
  check_memory(8 * as.double(nrow(Z)) * (ncol(Z) + 2 * ncol(G)),
               sprintf("The hybrid test's %s draws over %d dual vertices",
                       format(nrow(Z), big.mark = ",", scientific = FALSE), ncol(G)),
               "Use fewer draws ({.arg n_draws}) or fewer post-periods.")
  e <- eigen(prep$sigma_y, symmetric = TRUE)
  root <- e$vectors %*% (t(e$vectors) * sqrt(pmax(e$values, 0)))
  xi <- Z %*% root
  eta <- row_max(xi %*% G)
  unname(stats::quantile(eta, 1 - kappa, names = FALSE))
}

# Accept (TRUE) or reject each theta. `lf_cv` is NULL for the conditional
# test and the first-stage critical value for the hybrid.
arp_accept <- function(prep, theta, alpha, lf_cv = NULL, kappa = alpha / 10) {
  G <- prep$vertices
  if (!ncol(G)) return(rep(TRUE, length(theta)))
  check_memory(8 * as.double(length(theta)) * ncol(G) * 4,
               sprintf("Testing %s values over %d dual vertices",
                       format(length(theta), big.mark = ",", scientific = FALSE), ncol(G)),
               "Use fewer {.arg grid_points} or fewer post-periods.")
  vals <- crossprod(G, prep$y0) %*% rep(1, length(theta)) -
    crossprod(G, prep$slope) %*% t(theta)
  best <- max.col(t(vals), ties.method = "first")
  eta <- vals[cbind(best, seq_along(theta))]
  size <- if (is.null(lf_cv)) alpha else (alpha - kappa) / (1 - kappa)
  accept <- logical(length(theta))
  for (j in unique(best)) {
    at <- which(best == j)
    g <- G[, j]
    s2 <- drop(crossprod(g, prep$sigma_y %*% g))
    if (s2 < .Machine$double.eps) {
      accept[at] <- eta[at] <= 0
      next
    }
    # Along y = s + b c, vertex v has value inter_v + slope_v c, and the
    # chosen vertex stays optimal exactly while no other line exceeds c.
    slope_v <- drop(crossprod(G, prep$sigma_y %*% g)) / s2
    inter <- vals[, at, drop = FALSE] - outer(slope_v, eta[at])
    lower <- slope_v < 1 - 1e-10
    upper <- slope_v > 1 + 1e-10
    vlo <- if (any(lower)) row_max(t(inter[lower, , drop = FALSE] / (1 - slope_v[lower]))) else rep(-Inf, length(at))
    vup <- if (any(upper)) -row_max(t(-inter[upper, , drop = FALSE] / (1 - slope_v[upper]))) else rep(Inf, length(at))
    if (!is.null(lf_cv)) vup <- pmin(vup, lf_cv)
    sb <- sqrt(s2)
    stat <- eta[at] / sb
    zlo <- vlo / sb
    zup <- vup / sb
    inside <- zlo <= stat & stat <= zup
    crit <- pmax(0, qnorm_truncated(1 - size, zlo, zup))
    ok <- !inside | stat <= crit
    if (!is.null(lf_cv)) ok <- ok & eta[at] <= lf_cv
    accept[at] <- ok
  }
  accept
}

# Largest entry of each row, vectorised.
row_max <- function(X) X[cbind(seq_len(nrow(X)), max.col(X, ties.method = "first"))]

# Quantile p of a standard normal truncated to [lo, hi], computed on the
# tail that keeps precision (the far upper tail through upper-tail
# probabilities on the log scale).
qnorm_truncated <- function(p, lo, hi) {
  out <- numeric(length(lo))
  upper_side <- lo > 0
  if (any(!upper_side)) {
    a <- stats::pnorm(lo[!upper_side])
    b <- stats::pnorm(hi[!upper_side])
    out[!upper_side] <- stats::qnorm(a + p * (b - a))
  }
  if (any(upper_side)) {
    la <- stats::pnorm(lo[upper_side], lower.tail = FALSE, log.p = TRUE)
    lb <- stats::pnorm(hi[upper_side], lower.tail = FALSE, log.p = TRUE)
    # log((1 - p) Q(lo) + p Q(hi)), with Q the upper tail.
    lq <- la + log1p(-p + p * exp(lb - la))
    out[upper_side] <- stats::qnorm(lq, lower.tail = FALSE, log.p = TRUE)
  }
  pmin(pmax(out, lo), hi)
}
