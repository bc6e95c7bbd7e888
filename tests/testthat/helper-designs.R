# Small cluster tables shared by the design and inference tests.
sim_clusters <- function(n = 100, k = 4, seed = 1, lognormal = FALSE) {
  withr::with_seed(seed, {
    x <- matrix(if (lognormal) rlnorm(n * k, 0, 0.75) else rnorm(n * k), n, k)
  })
  colnames(x) <- paste0("x", seq_len(k))
  d <- as.data.frame(x)
  d$id <- sprintf("G%03d", seq_len(n))
  d
}

# Mahalanobis criterion of an assignment, straight from Morgan and Rubin's formula.
direct_mahalanobis <- function(X, w) {
  d <- colMeans(X[w == 1, , drop = FALSE]) - colMeans(X[w == 0, , drop = FALSE])
  n <- nrow(X)
  p <- mean(w)
  drop(n * p * (1 - p) * t(d) %*% solve(stats::cov(X), d))
}
