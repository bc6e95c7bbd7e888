# Randomization p-values of geo_effect() conditional on the design's
# acceptance rule. Under the sharp null that the test changed no geo's
# outcome, every geo's series is what it would have been under any other
# assignment, so the method's studentized statistic can be recomputed for
# reference assignments drawn from exactly the rule that drew the observed
# one (reference_pool(); a buffer is re-applied to each draw). TBR uses its
# t of the cumulative effect; GBR the t of the treatment indicator (also
# when the reported estimate is the spend coefficient: with spend set by the
# assignment, "no incremental outcome" is the same null whichever regressor
# carries it). Trimmed Match is left out: its own interval already rests on
# the coin flips within pairs.

geo_randomization <- function(geo, design, method, n_draws, chunk_size = 500L) {
  spec <- design$spec
  sizes <- as.vector(table(design$strata))
  n_total <- exp(sum(lchoose(sizes, design$n_treated_by_stratum)))
  exact <- n_total <= 2e4
  statistic <- geo_statistic(geo, design, method)
  obs <- statistic(matrix(as.integer(design$treated), ncol = 1L))
  pool <- reference_pool(spec, design$threshold, exact, n_draws, chunk_size,
                         design$acceptance_rate, summarise = statistic)
  ref <- pool$summaries
  ref <- ref[, is.finite(ref["A", ]), drop = FALSE]
  list(p.value = randomization_p(0, obs, ref, "two.sided", exact),
       n_draws = ncol(ref), exact = exact, statistic = unname(obs["A", 1]))
}

# A function mapping assignments W (geos x draws, design order) to the
# method's statistic in the one-row summary form of randomization_p()
# (row A; B = 0 so that stat_at(0, .) is A itself).
geo_statistic <- function(geo, design, method) {
  nb <- if (!is.null(design$spec$buffer)) design$spec$buffer$nb
  analysed <- function(W) {
    if (is.null(nb)) return(matrix(TRUE, nrow(W), ncol(W)))
    W == 1L | !treated_neighbour(nb, W)
  }
  stat <- switch(method,
    tbr = function(W, K) tbr_t(geo, W, K),
    gbr = function(W, K) gbr_t(geo, W, K)
  )
  function(W) {
    t <- stat(W, analysed(W))
    rbind(A = t, B = 0, P = NA_real_, Q = NA_real_, S = NA_real_)
  }
}

# TBR's t of the cumulative effect for every assignment at once: the treated
# and retained control series are sums of geo series, the regression of
# one on the other has closed forms in their moments (tbr_fit()).
tbr_t <- function(geo, W, K) {
  Y <- geo$Y[, c(geo$pre_idx, geo$post_idx), drop = FALSE]
  n <- length(geo$pre_idx)
  m <- length(geo$post_idx)
  pre <- seq_len(n)
  post <- n + seq_len(m)
  Yt <- crossprod(W * 1, Y)
  Yc <- crossprod((W == 0L & K) * 1, Y)
  x <- Yc[, pre, drop = FALSE]
  y <- Yt[, pre, drop = FALSE]
  xbar <- rowMeans(x)
  ybar <- rowMeans(y)
  xc <- x - xbar
  yc <- y - ybar
  sxx <- rowSums(xc^2)
  b <- rowSums(xc * yc) / sxx
  a <- ybar - b * xbar
  sigma2 <- pmax(rowSums(yc^2) - b^2 * sxx, 0) / (n - 2L)
  x_new <- rowSums(Yc[, post, drop = FALSE])
  cum <- rowSums(Yt[, post, drop = FALSE]) - m * a - b * x_new
  var_cum <- sigma2 * (m + m^2 / n + (x_new - m * xbar)^2 / sxx)
  t <- cum / sqrt(var_cum)
  t[!is.finite(t)] <- NA_real_
  unname(t)
}

# GBR's t of the treatment indicator for every assignment: the weighted
# least squares of the test-window total on (1, pre-period total, treated)
# over the analysed geos, from its 3 x 3 normal equations per draw.
gbr_t <- function(geo, W, K) {
  x <- geo$pre_total
  y <- geo$post_total
  w <- 1 / x
  R <- ncol(W)
  Kw <- (K * 1) * w
  Zw <- (W * 1) * w
  s <- function(M, v) as.vector(crossprod(M, v))
  S1 <- s(Kw, rep(1, length(x))); Sx <- s(Kw, x); Sxx <- s(Kw, x^2)
  Sy <- s(Kw, y); Sxy <- s(Kw, x * y); Syy <- s(Kw, y^2)
  Sz <- s(Zw, rep(1, length(x))); Sxz <- s(Zw, x); Szy <- s(Zw, y)
  M <- colSums(K)
  t <- rep(NA_real_, R)
  for (r in seq_len(R)) {
    A <- matrix(c(S1[r], Sx[r], Sz[r], Sx[r], Sxx[r], Sxz[r], Sz[r], Sxz[r], Sz[r]), 3L)
    rhs <- c(Sy[r], Sxy[r], Szy[r])
    inv <- tryCatch(solve(A), error = function(e) NULL)
    if (is.null(inv) || M[r] < 4L) next
    coef <- inv %*% rhs
    ssr <- Syy[r] - sum(coef * rhs)
    sigma2 <- max(ssr, 0) / (M[r] - 3L)
    t[r] <- coef[3] / sqrt(sigma2 * inv[3, 3])
  }
  t[!is.finite(t)] <- NA_real_
  t
}
