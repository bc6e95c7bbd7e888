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

# Clusters on a rows x cols grid with their distance matrix: at radius 1,
# each cluster's neighbours are the (up to four) adjacent cells.
sim_grid <- function(rows = 10, cols = 10, seed = 1) {
  g <- expand.grid(r = seq_len(rows), c = seq_len(cols))
  ids <- sprintf("g%03d", seq_len(nrow(g)))
  D <- as.matrix(stats::dist(g))
  dimnames(D) <- list(ids, ids)
  withr::with_seed(seed, x1 <- stats::rnorm(nrow(g)))
  d <- data.frame(id = ids, x1 = x1,
                  interior = as.numeric(g$r %in% 2:(rows - 1) & g$c %in% 2:(cols - 1)),
                  stringsAsFactors = FALSE)
  list(data = d, dist = D, adjacency = (D == 1) * 1)
}

# An iid panel: cluster totals over any window are independent of the
# pre-period and of each other, so the closed form is exact up to Monte Carlo.
sim_iid_panel <- function(n = 60, n_t = 40, mu = 100, sigma = 10, seed = 1) {
  withr::with_seed(seed, {
    d <- expand.grid(cluster = sprintf("C%02d", seq_len(n)), week = seq_len(n_t),
                     stringsAsFactors = FALSE)
    d$sales <- mu + stats::rnorm(nrow(d), sd = sigma)
  })
  d
}
