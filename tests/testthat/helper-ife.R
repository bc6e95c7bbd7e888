# Simulated factor panels with known effects for the ife and counterfactual
# tests. Covariate x loads on the first factor's loading, so two-way fixed
# effects without factors is biased.
sim_factor_panel <- function(N = 40, Tn = 20, r = 2, n_treated = 8, T0 = 14, effect = 3,
                             dynamic = 0, staggered = FALSE, beta = 1.5, sd = 0.5,
                             seed = 1) {
  withr::with_seed(seed, {
    # The first factor trends, so units with larger loadings drift apart
    # and parallel trends fails.
    Fm <- matrix(stats::rnorm(Tn * r), Tn, r)
    Fm[, 1] <- Fm[, 1] + seq(-2, 2, length.out = Tn)
    Lm <- matrix(stats::rnorm(N * r), N, r)
    # Treated units load more on the factors: selection on loadings.
    Lm[seq_len(n_treated), ] <- Lm[seq_len(n_treated), ] + 1
    alpha <- stats::rnorm(N)
    xi <- stats::rnorm(Tn)
    x <- matrix(stats::rnorm(N * Tn), N, Tn) + Lm[, 1] %o% Fm[, 1]
    first <- rep(NA_integer_, N)
    first[seq_len(n_treated)] <- if (staggered) {
      rep_len(c(T0 - 3L, T0, T0 + 2L), n_treated)
    } else T0 + 1L
    ev <- col(x) - first
    D <- (!is.na(ev) & ev >= 0) * 1
    tau <- ifelse(D == 1, effect + dynamic * ev, 0)
    Y <- 5 + alpha + rep(xi, each = N) + beta * x + Lm %*% t(Fm) + tau +
      matrix(stats::rnorm(N * Tn, sd = sd), N, Tn)
  })
  data.frame(unit = rep(seq_len(N), Tn), time = rep(seq_len(Tn), each = N),
             y = as.vector(Y), d = as.vector(D), x = as.vector(x), tau = as.vector(tau))
}

# Plain-R alternating least squares for the two-way interactive fixed effects
# model on a balanced panel: an independent reference for Bai's estimator.
plain_als <- function(Y, X, r, tol = 1e-13, max_iter = 20000) {
  dm <- function(Z) Z - rowMeans(Z) - rep(colMeans(Z), each = nrow(Z)) + mean(Z)
  Xd <- lapply(X, dm)
  H <- outer(seq_along(X), seq_along(X), Vectorize(function(k, l) sum(Xd[[k]] * Xd[[l]])))
  solve_b <- function(Z) solve(H, vapply(Xd, function(x) sum(x * Z), numeric(1)))
  b <- solve_b(Y)
  for (i in seq_len(max_iter)) {
    U <- Y
    for (k in seq_along(X)) U <- U - b[k] * X[[k]]
    s <- svd(dm(U), nu = r, nv = r)
    LF <- s$u %*% (s$d[seq_len(r)] * t(s$v))
    b_new <- solve_b(Y - LF)
    if (max(abs(b_new - b)) < tol) return(b_new)
    b <- b_new
  }
  b
}

# The ATT row of a counterfactual() fit's estimates.
att_row <- function(fit) {
  td <- tidy(fit)
  td[td$term == "ATT", , drop = FALSE]
}
