# Simulated factor-model panels with a known effect, for the synth() tests.
# Untreated outcomes are y_it = a_i + b_t + l_i' f_t + e_it. Treated units
# have loadings and levels that are convex combinations of donors', so a
# synthetic control exists; `effect` is added from each unit's first treated
# period on.
sim_synth_panel <- function(n_donors = 30, n_periods = 40, first_treated = 31,
                             effect = 5, sd = 0.2, seed = 1) {
  withr::with_seed(seed, {
    n_tr <- length(first_treated)
    f <- cbind(cumsum(stats::rnorm(n_periods)), sin(seq_len(n_periods) / 4) * 3)
    L0 <- matrix(stats::rnorm(2 * n_donors), n_donors)
    a0 <- stats::rnorm(n_donors, 10, 2)
    mix <- t(vapply(seq_len(n_tr), function(k) {
      m <- numeric(n_donors)
      m[sample(n_donors, 3)] <- c(0.5, 0.3, 0.2)
      m
    }, numeric(n_donors)))
    L <- rbind(mix %*% L0, L0)
    a <- c(mix %*% a0, a0)
    b <- seq_len(n_periods) * 0.1
    N <- n_tr + n_donors
    y <- a + matrix(b, N, n_periods, byrow = TRUE) + L %*% t(f) +
      matrix(stats::rnorm(N * n_periods, 0, sd), N)
    start <- c(first_treated, rep(Inf, n_donors))
    D <- outer(start, seq_len(n_periods), function(s, t) as.integer(t >= s))
    y <- y + effect * D
    data.frame(unit = rep(sprintf("u%02d", seq_len(N)), n_periods),
               time = rep(seq_len(n_periods), each = N),
               y = as.vector(y), d = as.vector(D), stringsAsFactors = FALSE)
  })
}
