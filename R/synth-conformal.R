# Conformal inference for a synthetic control (Chernozhukov, Wuthrich and
# Zhu 2021). Under a null for the post-period effects, the treated outcome
# is adjusted by the hypothesised effect, the weights are refitted on pre-
# and post-period data together, and the residuals are exchangeable over
# time when the null holds. The statistic is the mean absolute post-period
# residual; its p-value compares it with the same statistic over all cyclic
# shifts of the residual series (moving blocks, which keep serial
# dependence). Intervals collect the effects the test does not reject, so
# each p-value and interval come from the same test.

# p-value of H0: effect = theta in the periods `post` (column indices).
conformal_pvalue <- function(y1, Y0, pre, post, theta, method) {
  used <- c(pre, post)
  y <- y1[used]
  y[seq_along(post) + length(pre)] <- y[seq_along(post) + length(pre)] - theta
  X <- t(Y0[, used, drop = FALSE])
  w <- solve_simplex(X, y, 0)$w
  if (method == "asc") {
    aug <- ridge_augment(Y0[, pre, drop = FALSE], y[seq_along(pre)], w,
                         Y0[, post, drop = FALSE])
    w <- w + aug$adjust
  }
  u <- abs(y - drop(X %*% w))
  n <- length(u)
  tail_idx <- seq.int(n - length(post) + 1L, n)
  stat <- vapply(0:(n - 1L), function(j) mean(u[(tail_idx - 1L + j) %% n + 1L]), numeric(1))
  # Ties to rounding count against the null; the tolerance is relative, so
  # that the test is the same in any units of the outcome.
  mean(stat >= stat[1] - 1e-12 * max(abs(stat)))
}

# Interval {theta : p(theta) > alpha}, found on a grid around the estimate
# that widens until both ends reject, with the ends refined by bisection.
conformal_interval <- function(pfun, estimate, scale, alpha) {
  half <- 4 * scale
  for (widen in 1:6) {
    grid <- estimate + seq(-half, half, length.out = 81)
    p <- vapply(grid, pfun, numeric(1))
    if (p[1] <= alpha && p[length(p)] <= alpha) break
    half <- half * 2
  }
  acc <- which(p > alpha)
  if (!length(acc)) return(c(NA_real_, NA_real_))
  refine <- function(inside, outside) {
    for (i in 1:25) {
      mid <- (inside + outside) / 2
      if (pfun(mid) > alpha) inside <- mid else outside <- mid
    }
    inside
  }
  lo <- if (min(acc) > 1L) refine(grid[min(acc)], grid[min(acc) - 1L]) else -Inf
  hi <- if (max(acc) < length(grid)) refine(grid[max(acc)], grid[max(acc) + 1L]) else Inf
  c(lo, hi)
}

# The conformal p-value of a zero effect and the test-inversion intervals,
# for the constant effect over the post-period (the fit's estimate) and for
# each post period alone (the rows of the "period" table).
synth_conformal <- function(setup, f, method, alpha) {
  Y0 <- setup$panel$Y[setup$donors, , drop = FALSE]
  y1 <- f$y1
  Tn <- length(y1)
  pre <- which(seq_len(Tn) < f$t0 & !is.na(y1))
  post_all <- which(seq_len(Tn) >= f$t0 & !is.na(y1))
  scale <- max(f$pre_rmspe, 1e-8 * max(abs(y1), na.rm = TRUE))
  # An outcome that is zero everywhere gives no scale of its own (the fit
  # runs on an outcome of order 1, see outcome_scale()).
  if (!(scale > 0)) scale <- 1
  # Task 0 is the constant effect over all post periods; task k the k-th
  # post period alone.
  tasks <- c(0L, seq_along(post_all))
  res <- resample_chunks(length(tasks), function(i) {
    k <- tasks[i]
    post <- if (k == 0L) post_all else post_all[k]
    est <- mean(f$gap[post])
    pfun <- function(theta) conformal_pvalue(y1, Y0, pre, post, theta, method)
    ci <- conformal_interval(pfun, est, scale, alpha)
    c(estimate = est, conf.low = ci[1], conf.high = ci[2], p.value = pfun(0))
  }, chunk_size = 4L, label = "conformal tests", globals = list())
  m <- do.call(rbind, res)
  list(estimates = list(p.value = unname(m[1, "p.value"]),
                        conf.low = unname(m[1, "conf.low"]),
                        conf.high = unname(m[1, "conf.high"])),
       period = new_df(event_time = post_all - f$t0, conf.low = unname(m[-1, "conf.low"]),
                       conf.high = unname(m[-1, "conf.high"]), p.value = unname(m[-1, "p.value"])),
       label = "conformal test over cyclic shifts of the residuals (Chernozhukov et al. 2021); interval by test inversion",
       no_vcov = "conformal inference gives a test-inversion interval, not a covariance")
}
