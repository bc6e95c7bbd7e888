# Hard inputs for the continuous-treatment and factor-model estimators
# (ife, counterfactual, dml, iv_fe, exposure_did, dose_response): a small
# panel with every role filled, and a check that a fit scales with its
# outcome.

# 30 units x 8 periods: outcome y, dose (instrumented by z), covariate x,
# weights w, a unit-level exposure expo, a constant, a one-cluster and a
# two-cluster column.
hard_panel <- function(N = 30, Tn = 8, seed = 1) {
  withr::with_seed(seed, {
    d <- expand.grid(unit = seq_len(N), time = seq_len(Tn))
    d$x <- stats::rnorm(nrow(d))
    d$z <- stats::rnorm(nrow(d))
    d$w <- stats::runif(nrow(d)) + 0.5
    d$dose <- d$z + stats::rnorm(nrow(d))
    d$expo <- stats::runif(N)[d$unit]
    d$y <- d$x + d$dose + 0.5 * d$expo * (d$time >= 5) + stats::rnorm(nrow(d))
  })
  d$const <- 3
  d$one_cluster <- 1
  d$two_clusters <- d$unit %% 2
  d
}

# fit(y, data) on the outcome times 1e300 and times 1e-300 gives the
# estimates, standard errors and intervals of the fit on y times the same
# factor (relative 1e-8) and the same p-values, all finite.
expect_outcome_scaled <- function(fit, data, what = NULL,
                                  cols = c("estimate", "std.error", "conf.low", "conf.high")) {
  pick <- function(f) {
    tab <- if (is.null(what)) tidy(f) else tidy(f, what)
    tab[, intersect(c(cols, "p.value"), names(tab)), drop = FALSE]
  }
  base <- pick(fit(data$y, data))
  for (s in c(1e300, 1e-300)) {
    d <- data
    d$y <- data$y * s
    got <- pick(fit(d$y, d))
    num <- intersect(cols, names(got))
    ok <- !is.na(base[num])
    expect_true(all(is.finite(as.matrix(got[num])[ok])))
    expect_equal(as.matrix(got[num])[ok] / s, as.matrix(base[num])[ok], tolerance = 1e-8)
    if ("p.value" %in% names(got)) expect_equal(got$p.value, base$p.value, tolerance = 1e-8)
  }
}
