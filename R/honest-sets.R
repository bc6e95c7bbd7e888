# The two restrictions on trend violations of Rambachan and Roth (2023) and
# the confidence sets they support. Event times are indexed as in their
# paper: pre-periods -n_pre..-1, the reference period 0 (its violation is
# normalised to zero) and post-periods 1..n_post; delta stacks the pre- and
# post-period violations without the reference period.

# Delta^RM_{s,+/-}(Mbar): every first difference of delta is bounded by the
# pre-period first difference ending at s (s in -(n_pre - 1)..0), scaled by
# Mbar after the reference period. Delta^RM(Mbar) is the union over s and
# the sign.
rm_polyhedron <- function(n_pre, n_post, Mbar, s, positive) {
  n <- n_pre + n_post
  D <- matrix(0, n, n + 1)
  for (r in seq_len(n)) D[r, c(r, r + 1)] <- c(-1, 1)
  ref <- D[n_pre + s, ] * if (positive) 1 else -1
  bound <- c(rep(1, n_pre), rep(Mbar, n_post))
  A <- rbind(D - bound %o% ref, -D - bound %o% ref)
  A <- A[rowSums(A^2) > 1e-10, -(n_pre + 1), drop = FALSE]
  list(A = A, d = rep(0, nrow(A)))
}

# Acceptance function of the relative-magnitudes set at one Mbar: the union
# of the ARP tests over the 2 * n_pre polyhedra. A value accepted by one
# test is not tested again, and each polyhedron's test (with its
# least-favourable critical value) is prepared only when some value still
# needs it; the union is the same.
rm_acceptance <- function(betahat, sigma, n_pre, l, Mbar, alpha, hybrid, Z, solver = "auto") {
  specs <- expand.grid(positive = c(TRUE, FALSE), s = seq(-(n_pre - 1), 0))
  tests <- vector("list", nrow(specs))
  test <- function(i) {
    if (is.null(tests[[i]])) {
      poly <- rm_polyhedron(n_pre, length(l), Mbar, specs$s[i], specs$positive[i])
      prep <- arp_prepare(poly$A, poly$d, betahat, sigma, n_pre, l, solver)
      prep$lf_cv <- if (hybrid) arp_lf_cv(prep, Z, alpha / 10) else NULL
      tests[[i]] <<- prep
    }
    tests[[i]]
  }
  function(theta) {
    acc <- logical(length(theta))
    for (i in seq_len(nrow(specs))) {
      todo <- which(!acc)
      if (!length(todo)) break
      prep <- test(i)
      acc[todo] <- arp_accept(prep, theta[todo], alpha, prep$lf_cv)
    }
    acc
  }
}

# Bounds of an acceptance region on a grid of theta. Refinement zooms into
# the grid cell where each outermost accepted value meets its rejected
# neighbour, testing a fine sub-grid of the cell at once, twice (each zoom
# divides the cell by `n`); `open` flags a set that reaches the end of the
# grid.
grid_interval <- function(accept, lb, ub, n, refine) {
  theta <- seq(lb, ub, length.out = n)
  acc <- accept(theta)
  if (!any(acc)) return(list(conf.low = NA_real_, conf.high = NA_real_, open = FALSE))
  i <- range(which(acc))
  zoom <- function(inside, outside) {
    for (round in 1:2) {
      sub <- seq(outside, inside, length.out = n)
      first_in <- which(accept(sub))[1]
      if (is.na(first_in) || first_in == 1) break
      inside <- sub[first_in]
      outside <- sub[first_in - 1]
    }
    inside
  }
  lo <- theta[i[1]]
  hi <- theta[i[2]]
  if (refine && i[1] > 1) lo <- zoom(lo, theta[i[1] - 1])
  if (refine && i[2] < n) hi <- zoom(hi, theta[i[2] + 1])
  list(conf.low = lo, conf.high = hi, open = i[1] == 1 || i[2] == n)
}

# Fixed-length confidence interval under Delta^SD(M): second differences of
# delta bounded by M. An affine estimator v'beta with v = (v_pre, l) is
# unbiased for linear violations when sum_t t v_t = 0; its worst-case bias is
# M (K + ||a||_1), with a the pre-period part of the second-difference
# loadings and K the post-period part. Writing v_pre in terms of a turns the
# search over estimators into a lasso path in a; along that path the
# half-length sd * cv_alpha(bias / sd) is unimodal (it is convex in the bias
# bound), so a one-dimensional search over the penalty finds the optimum.
sd_flci <- function(betahat, sigma, n_pre, l, M, alpha) {
  n_post <- length(l)
  pre <- seq_len(n_pre)
  post <- n_pre + seq_len(n_post)
  t_pre <- seq(-n_pre, -1)
  t_post <- seq_len(n_post)
  K <- sum(vapply(seq(0, n_post - 1), function(u) {
    abs(sum((t_post[t_post > u] - u) * l[t_post > u]))
  }, numeric(1)))
  # v_pre = P a + q; a_k = sum_{i < k} (k - i) v_i for k = 2..n_pre and the
  # last pre-period weight closes the linear-trend constraint.
  k <- n_pre - 1
  if (k > 0) {
    D <- outer(seq(2, n_pre), seq_len(k), function(r, i) ifelse(i < r, r - i, 0))
    Dinv <- solve(D)
    P <- rbind(Dinv, t_pre[seq_len(k)] %*% Dinv)
  } else {
    P <- matrix(0, 1, 0)
  }
  q <- c(rep(0, k), sum(t_post * l))
  S_pp <- sigma[pre, pre, drop = FALSE]
  S_pq <- sigma[pre, post, drop = FALSE]
  Q <- crossprod(P, S_pp %*% P)
  cvec <- drop(crossprod(P, S_pp %*% q + S_pq %*% l))
  var_of <- function(a) {
    v <- drop(P %*% a) + q
    drop(crossprod(v, S_pp %*% v) + 2 * crossprod(v, S_pq %*% l) +
           crossprod(l, sigma[post, post, drop = FALSE] %*% l))
  }
  # Each point of the path starts from the last one found: the search
  # visits nearby penalties, where coordinate descent from zero is slow
  # (small M puts the optimum near the ill-conditioned unpenalised end).
  last <- numeric(length(cvec))
  path <- function(lambda) {
    last <<- lasso_quadratic(Q, cvec, lambda, start = last)
    last
  }
  half_length <- function(a) {
    s <- sqrt(max(var_of(a), 0))
    s * folded_normal_quantile(M * (K + sum(abs(a))) / s, alpha)
  }
  if (k == 0) {
    a <- numeric(0)
  } else if (M == 0) {
    a <- path(0)
  } else {
    lambda_max <- 2 * max(abs(cvec))
    best <- stats::optimize(function(lam) half_length(path(lam)), c(0, lambda_max),
                            tol = 1e-12 * max(lambda_max, 1e-300))
    a <- path(best$minimum)
    # The ends of the path are candidates the search may only approach.
    for (cand in list(path(0), path(lambda_max))) {
      if (half_length(cand) < half_length(a)) a <- cand
    }
  }
  v <- c(drop(P %*% a) + q, l)
  h <- half_length(a)
  centre <- sum(v * betahat)
  list(conf.low = centre - h, conf.high = centre + h, centre = centre, half_length = h,
       weights = v, bias = M * (K + sum(abs(a))), sd = sqrt(max(var_of(a), 0)))
}

# Minimiser of a'Q a + 2 c'a + lambda ||a||_1 by cyclic coordinate descent;
# the problems here have a handful of coordinates.
lasso_quadratic <- function(Q, cvec, lambda, tol = 1e-15, max_iter = 10000L,
                            start = numeric(length(cvec))) {
  a <- start
  for (it in seq_len(max_iter)) {
    change <- 0
    for (j in seq_along(a)) {
      r <- -(cvec[j] + sum(Q[j, -j] * a[-j]))
      new <- sign(r) * max(abs(r) - lambda / 2, 0) / Q[j, j]
      change <- max(change, abs(new - a[j]))
      a[j] <- new
    }
    if (change <= tol * max(1, max(abs(a)))) break
    # Once the support and signs have settled, the minimiser solves a
    # linear system on the support; take it when it meets the optimality
    # conditions (coordinate descent crawls when Q is ill-conditioned).
    if (it %% 20 == 0) {
      exact <- lasso_on_support(Q, cvec, lambda, a)
      if (!is.null(exact)) return(exact)
    }
  }
  a
}

# The lasso minimiser with the support and signs of `a`, or NULL when that
# support does not satisfy the optimality conditions.
lasso_on_support <- function(Q, cvec, lambda, a) {
  act <- which(a != 0)
  out <- numeric(length(a))
  if (length(act)) {
    sg <- sign(a[act])
    sol <- tryCatch(solve(Q[act, act, drop = FALSE], -(cvec[act] + lambda / 2 * sg)),
                    error = function(e) NULL)
    if (is.null(sol) || any(sign(sol) != sg)) return(NULL)
    out[act] <- sol
  }
  grad <- drop(Q %*% out) + cvec
  slack <- 1e-12 * max(1, abs(cvec), lambda)
  if (any(abs(grad[setdiff(seq_along(a), act)]) > lambda / 2 + slack)) return(NULL)
  out
}

# The 1 - alpha quantile of |N(t, 1)|, which lies between t + z_{1-alpha}
# and t + z_{1-alpha/2}.
folded_normal_quantile <- function(t, alpha) {
  t <- abs(t)
  f <- function(q) stats::pnorm(q - t) - stats::pnorm(-q - t) - (1 - alpha)
  lo <- t + stats::qnorm(1 - alpha)
  hi <- t + stats::qnorm(1 - alpha / 2)
  if (f(lo) >= 0) return(lo)
  # For a bias bound t far beyond the normal's quantiles (M = 1e300) the
  # bracket collapses in floating point: t + q rounds to t, the answer.
  if (!(hi > lo)) return(lo)
  stats::uniroot(f, c(lo, hi), tol = 1e-14)$root
}
