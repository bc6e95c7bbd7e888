# Buffers with several cells: rerandomize() and reference_cells().

grid_units <- function(seed = 1, n_side = 8) {
  set.seed(seed)
  g <- expand.grid(row = seq_len(n_side), col = seq_len(n_side))
  g$id <- sprintf("m%02d", seq_len(nrow(g)))
  g$pre <- rnorm(nrow(g), 100, 10)
  g$x2 <- rnorm(nrow(g))
  g$half <- ifelse(g$col <= n_side / 2, "west", "east")
  d <- as.matrix(stats::dist(g[, c("row", "col")]))
  dimnames(d) <- list(g$id, g$id)
  list(data = g, dist = d)
}

# The criterion by hand: stacked stratum-weighted differences between each
# treated cell's means and the retained controls' means, whitened by the
# base design's covariance (computed here from its definition).
hand_criterion <- function(X, strata, code, A, alloc) {
  strata <- factor(strata)
  s_idx <- as.integer(strata)
  m <- as.vector(table(strata))
  pi_s <- m / length(s_idx)
  k <- ncol(alloc)
  d <- ncol(X)
  exposed <- as.vector(A %*% as.numeric(code > 0)) > 0
  retained <- code == 0 & !exposed
  tau <- matrix(0, d, k - 1)
  V <- matrix(0, d * (k - 1), d * (k - 1))
  for (s in seq_along(m)) {
    rows <- s_idx == s
    m0 <- colMeans(X[rows & retained, , drop = FALSE])
    for (b in seq_len(k - 1)) {
      tau[, b] <- tau[, b] + pi_s[s] * (colMeans(X[rows & code == b, , drop = FALSE]) - m0)
    }
    Ds <- diag(1 / alloc[s, -1], k - 1) + 1 / alloc[s, 1]
    V <- V + pi_s[s]^2 * kronecker(Ds, stats::cov(X[rows, , drop = FALSE]))
  }
  tau <- as.vector(tau)
  sum(tau * solve(V, tau))
}

test_that("every reference draw keeps no control next to any treated cell and passes the rule", {
  u <- grid_units()
  A <- (u$dist <= 1 & u$dist > 0) * 1
  set.seed(11)
  des <- rerandomize(u$data, ~ pre + x2, n_treated = c(a = 6, b = 5), accept = 0.2,
                     id = "id", strata = "half", buffer = u$dist, buffer_radius = 1,
                     n_draws = 4000)
  expect_s3_class(des$arm, "factor")
  expect_identical(levels(des$arm), c("control", "a", "b", "buffer"))
  expect_identical(colnames(des$arm_prob), c("a", "b", "control", "buffer"))
  expect_equal(unname(rowSums(des$arm_prob)), rep(1, 64))
  X <- as.matrix(u$data[, c("pre", "x2")])
  code <- as.integer(des$cell) - 1L
  # The drawn design: its arms and its criterion, by hand.
  exposed <- as.vector(A %*% as.numeric(code > 0)) > 0
  expect_identical(as.character(des$arm) == "buffer", code == 0L & exposed)
  expect_equal(des$criterion_value,
               hand_criterion(X, u$data$half, code, A, des$n_by_stratum), tolerance = 1e-8)
  expect_lte(des$criterion_value, des$threshold)
  set.seed(5)
  ref <- mktcausal:::reference_cells(des, 60, chunk_size = 7)
  C <- ref$cells
  expect_identical(dim(C), c(64L, 60L))
  for (r in seq_len(ncol(C))) {
    cr <- C[, r]
    drawn <- pmax(cr, 0L)
    # Cell sizes per stratum are the design's.
    expect_equal(unname(as.matrix(table(factor(u$data$half, levels = levels(des$strata)),
                                        factor(drawn, 0:2)))),
                 unname(des$n_by_stratum), ignore_attr = TRUE)
    ex <- as.vector(A %*% as.numeric(drawn > 0)) > 0
    expect_false(any(cr == 0L & ex))          # no kept control next to a treated cluster
    expect_true(all((cr == -1L) == (drawn == 0L & ex)))
    expect_true(all(tapply(cr == 0L, u$data$half, sum) >= des$min_per_arm))
    expect_lte(hand_criterion(X, u$data$half, drawn, A, des$n_by_stratum), des$threshold + 1e-9)
  }
  # Same draws for any chunk size.
  set.seed(5)
  ref2 <- mktcausal:::reference_cells(des, 60, chunk_size = 1000)
  expect_identical(ref2$cells, C)
})

test_that("with an empty neighbour graph the buffered criterion is the multi-cell criterion", {
  u <- grid_units(2)
  A0 <- matrix(0, 64, 64, dimnames = dimnames(u$dist))
  set.seed(3)
  des <- rerandomize(u$data, ~ pre + x2, n_treated = c(a = 8, b = 8), accept = 0.1,
                     id = "id", buffer = A0, n_draws = 2000)
  expect_false(any(des$arm == "buffer"))
  # The buffered criterion of the drawn assignment equals the kernel's
  # unbuffered score of the same cells, and both equal the hand value.
  spec <- des$spec
  code <- matrix(as.integer(des$cell) - 1L, ncol = 1L)
  v <- mktcausal:::cells_buffered_values(spec, code)$values
  X <- as.matrix(u$data[, c("pre", "x2")])
  tau <- mktcausal:::cells_imbalance(X, des$strata, code[, 1], 3L)
  expect_equal(v, sum(tau * solve(spec$cov, tau)), tolerance = 1e-10)
  expect_equal(des$criterion_value, v, tolerance = 1e-10)
  # Over many base draws as well.
  C <- mktcausal:::cells_base_draws(spec, 1:200, c(1L, 2L))
  vb <- mktcausal:::cells_buffered_values(spec, C)$values
  vh <- apply(C, 2, function(cc) {
    t <- mktcausal:::cells_imbalance(X, des$strata, cc, 3L)
    sum(t * solve(spec$cov, t))
  })
  expect_equal(vb, vh, tolerance = 1e-10)
  # The rule's accepted share is the empirical accept quantile.
  expect_equal(des$acceptance_rate, 0.1, tolerance = 1e-3)
})

test_that("a buffer that leaves a stratum without controls is a classed error", {
  u <- grid_units(3)
  # Every market neighbours every other market of its half.
  A <- outer(u$data$half, u$data$half, "==") * 1
  diag(A) <- 0
  dimnames(A) <- dimnames(u$dist)
  expect_error(
    rerandomize(u$data, ~ pre, n_treated = c(a = 4, b = 4), strata = "half", id = "id",
                buffer = A, accept = 0.5, n_draws = 500),
    class = "mktcausal_error_buffer_too_wide"
  )
  expect_error(
    stratify(u$data, size = "pre", bins = 2, prop_treated = c(a = 0.1, b = 0.1),
             buffer = A, id = "id"),
    class = "mktcausal_error_buffer_too_wide"
  )
  expect_error(
    rerandomize(u$data, ~ pre, n_treated = c(a = 4, b = 4), id = "id", buffer = u$dist,
                buffer_radius = 1, threshold = "chisq", n_draws = 500),
    class = "mktcausal_error_bad_argument"
  )
})
