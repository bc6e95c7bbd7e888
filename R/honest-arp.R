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
# solved through its dual max g'y s.t. g >= 0, W'g = e1 (W = [sd, X]; see
# src/honest.h) in one of two exact ways. With few post-periods the dual's
# vertices are listed once: eta is the largest vertex value, the
# conditioning interval of the test is read off the lines g'(s + b c) of all
# vertices, and the least-favourable critical value of the hybrid test is a
# maximum over vertices for each draw. Their number grows like
# choose(2 n_post, n_post), so beyond that each program (eta at a value or
# a draw, and each end of a conditioning interval) is solved by a simplex
# method warm-started from the previous one.

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
# in Rambachan and Roth's implementation), their covariance, and either the
# dual vertices or what the linear programs need. `solver = "auto"` lists
# the vertices while their bases are few (then every later program is a
# matrix product, which is cheaper) and solves the programs by the simplex
# method otherwise; both give the same test.
arp_prepare <- function(A, d, betahat, sigma, n_pre, l,
                        solver = c("auto", "vertices", "lp")) {
  solver <- check_choice(solver)
  post <- n_pre + seq_along(l)
  rows <- which(rowSums(abs(A[, post, drop = FALSE])) > 0)
  A <- A[rows, , drop = FALSE]
  basis <- honest_target_basis(l)
  A_post <- A[, post, drop = FALSE]
  sigma_y <- A %*% sigma %*% t(A)
  sd <- sqrt(pmax(diag(sigma_y), 0))
  X <- A_post %*% basis$N
  W <- cbind(sd, X)
  n_bases <- choose(nrow(W), ncol(W))
  if (solver == "auto") solver <- if (n_bases <= arp_max_bases) "vertices" else "lp"
  prep <- list(y0 = drop(A %*% betahat - d[rows]), slope = drop(A_post %*% basis$u),
               sigma_y = sigma_y, solver = solver)
  if (solver == "vertices") {
    prep$vertices <- cpp_honest_vertices(W, 1e-10)
  } else {
    # The programs are solved in units of the largest moment's standard
    # deviation, where the moments and their constraints are of order one.
    unit <- max(sd)
    if (!(unit > 0)) unit <- 1
    prep$unit <- unit
    prep$sd <- sd / unit
    prep$X <- X
  }
  prep
}

# Bases up to which the vertices are listed rather than the programs solved.
# Measured on random problems with 2 or 4 pre-periods and a 300-point grid,
# the two take about the same time up to 3 post-periods (20 bases) and the
# simplex is faster beyond (5: 3.0 s vs 1.1 s over 16 problems; 8: 27.5 s
# vs 0.5 s), so the vertices are kept for 1 or 2 post-periods only.
arp_max_bases <- 10

# The test statistic eta of the columns of Y (moments x values) by the
# simplex method, with the optimal dual vertices when asked. An infeasible
# dual (no vertex) means eta = -Inf: the moments cannot be violated.
arp_lp_eta <- function(prep, Y, solutions = FALSE) {
  p <- 1L + ncol(prep$X)
  res <- cpp_honest_lp(t(cbind(prep$sd, prep$X)), c(1, rep(0, p - 1L)), Y / prep$unit,
                       TRUE, solutions, 1e-11)
  arp_lp_check(res$status)
  value <- res$value
  value[res$status == 1L] <- -Inf
  # Dual solutions in the moments' units: g'y with g = g_unit / unit.
  list(value = value, G = res$solution / prep$unit, group = res$group,
       infeasible = all(res$status == 1L))
}

# The ends of the conditioning interval of the test for the values of the
# statistic `eta` attained at the dual vertex g, along y = s + b c with
# b = Sigma_y g / g'Sigma_y g: the smallest and largest c at which the
# statistic stays equal to c, that is min and max of c over
#   (b - sd) c - X nu <= -s,
# solved through their duals (an infeasible dual means an unbounded end).
arp_lp_vlims <- function(prep, S, b) {
  A <- rbind(b / prep$unit - prep$sd, t(prep$X))
  R <- -S / prep$unit
  rhs <- c(1, rep(0, nrow(A) - 1L))
  up <- cpp_honest_lp(A, rhs, R, FALSE, FALSE, 1e-11)
  lo <- cpp_honest_lp(A, -rhs, R, FALSE, FALSE, 1e-11)
  arp_lp_check(c(up$status, lo$status))
  list(vup = ifelse(up$status == 1L, Inf, up$value),
       vlo = ifelse(lo$status == 1L, -Inf, -lo$value))
}

arp_lp_check <- function(status) {
  if (any(status >= 2L)) {
    abort_mkt("fit_failed", c(
      "The linear programs of the relative-magnitudes test did not reach an optimum.",
      i = "Check that {.arg sigma} is a covariance of the coefficients on a sensible scale, or use {.code type = \"smoothness\"}."
    ))
  }
}

# Least-favourable critical value of the first stage: the 1 - kappa
# quantile of eta under y ~ N(0, Sigma_y), from standard normal draws Z
# (n_draws x rows) mapped through the symmetric square root of Sigma_y.
arp_lf_cv <- function(prep, Z, kappa) {
  if (prep$solver == "vertices") {
    G <- prep$vertices
    if (!ncol(G)) return(-Inf)
    check_memory(8 * as.double(nrow(Z)) * (ncol(Z) + 2 * ncol(G)),
                 sprintf("The hybrid test's %s draws over %d dual vertices",
                         format(nrow(Z), big.mark = ",", scientific = FALSE), ncol(G)),
                 "Use fewer draws ({.arg n_draws}) or fewer post-periods.")
  }
  e <- eigen(prep$sigma_y, symmetric = TRUE)
  root <- e$vectors %*% (t(e$vectors) * sqrt(pmax(e$values, 0)))
  xi <- Z[, seq_len(nrow(root)), drop = FALSE] %*% root
  eta <- if (prep$solver == "vertices") row_max(xi %*% G) else arp_lp_eta(prep, t(xi))$value
  unname(stats::quantile(eta, 1 - kappa, names = FALSE))
}

# The statistic, its conditioning interval [vlo, vup] and the variance s2
# of the optimal vertex's moment combination at each theta, from the list of
# dual vertices.
arp_conditioning_vertices <- function(prep, theta) {
  G <- prep$vertices
  check_memory(8 * as.double(length(theta)) * ncol(G) * 4,
               sprintf("Testing %s values over %d dual vertices",
                       format(length(theta), big.mark = ",", scientific = FALSE), ncol(G)),
               "Use fewer {.arg grid_points} or fewer post-periods.")
  vals <- crossprod(G, prep$y0) %*% rep(1, length(theta)) -
    crossprod(G, prep$slope) %*% t(theta)
  best <- max.col(t(vals), ties.method = "first")
  eta <- vals[cbind(best, seq_along(theta))]
  vlo <- vup <- s2 <- numeric(length(theta))
  for (j in unique(best)) {
    at <- which(best == j)
    g <- G[, j]
    s2[at] <- drop(crossprod(g, prep$sigma_y %*% g))
    if (s2[at[1]] < .Machine$double.eps) next
    # Along y = s + b c, vertex v has value inter_v + slope_v c, and the
    # chosen vertex stays optimal exactly while no other line exceeds c.
    slope_v <- drop(crossprod(G, prep$sigma_y %*% g)) / s2[at[1]]
    inter <- vals[, at, drop = FALSE] - outer(slope_v, eta[at])
    lower <- slope_v < 1 - 1e-10
    upper <- slope_v > 1 + 1e-10
    vlo[at] <- if (any(lower)) row_max(t(inter[lower, , drop = FALSE] / (1 - slope_v[lower]))) else -Inf
    vup[at] <- if (any(upper)) -row_max(t(-inter[upper, , drop = FALSE] / (1 - slope_v[upper]))) else Inf
  }
  list(eta = eta, vlo = vlo, vup = vup, s2 = s2)
}

# The same from linear programs: eta and its optimal vertex for every theta
# at once (warm-started along the grid), then the conditioning interval once
# per run of theta values that share their optimal vertex.
arp_conditioning_lp <- function(prep, theta) {
  Y <- prep$y0 - outer(prep$slope, theta)
  res <- arp_lp_eta(prep, Y, solutions = TRUE)
  eta <- res$value
  vlo <- vup <- s2 <- numeric(length(theta))
  for (j in unique(res$group)) {
    at <- which(res$group == j)
    g <- res$G[, at[1]]
    s2[at] <- drop(crossprod(g, prep$sigma_y %*% g))
    if (s2[at[1]] < .Machine$double.eps) next
    b <- drop(prep$sigma_y %*% g) / s2[at[1]]
    lim <- arp_lp_vlims(prep, Y[, at, drop = FALSE] - outer(b, eta[at]), b)
    vlo[at] <- lim$vlo
    vup[at] <- lim$vup
  }
  list(eta = eta, vlo = vlo, vup = vup, s2 = s2)
}

# Accept (TRUE) or reject each theta. `lf_cv` is NULL for the conditional
# test and the first-stage critical value for the hybrid.
arp_accept <- function(prep, theta, alpha, lf_cv = NULL, kappa = alpha / 10) {
  if (prep$solver == "vertices") {
    if (!ncol(prep$vertices)) return(rep(TRUE, length(theta)))
    cond <- arp_conditioning_vertices(prep, theta)
  } else {
    cond <- arp_conditioning_lp(prep, theta)
    if (all(cond$eta == -Inf)) return(rep(TRUE, length(theta)))
  }
  eta <- cond$eta
  size <- if (is.null(lf_cv)) alpha else (alpha - kappa) / (1 - kappa)
  # A vertex whose moment combination has no variance: the statistic is
  # known, and the test accepts exactly when it is not positive.
  flat <- cond$s2 < .Machine$double.eps
  ok <- eta <= 0
  at <- which(!flat)
  if (length(at)) {
    vup <- cond$vup[at]
    if (!is.null(lf_cv)) vup <- pmin(vup, lf_cv)
    sb <- sqrt(cond$s2[at])
    stat <- eta[at] / sb
    zlo <- cond$vlo[at] / sb
    zup <- vup / sb
    inside <- zlo <= stat & stat <= zup
    crit <- pmax(0, qnorm_truncated(1 - size, zlo, zup))
    ok[at] <- !inside | stat <= crit
    if (!is.null(lf_cv)) ok[at] <- ok[at] & eta[at] <= lf_cv
  }
  ok
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
