# A simulated staggered rollout with known group-time effects. Cohorts adopt
# in periods 3, 5 and 7 of 8 (plus never-treated units); the effect grows
# with time since adoption and differs by cohort, the pattern that makes
# static two-way fixed effects misleading. With noise = 0 the outcome is unit
# effect + period effect + effect, so every ATT(g,t) is known exactly.
sim_staggered <- function(n = 400, n_periods = 8, noise = 1, seed = 1) {
  withr::with_seed(seed, {
    cohorts <- c(3, 5, 7, 0)
    cohort <- sample(cohorts, n, replace = TRUE, prob = c(0.2, 0.25, 0.25, 0.3))
    unit_fe <- stats::rnorm(n, 0, 2) + 0.5 * (cohort == 3)
    time_fe <- cumsum(stats::rnorm(n_periods, 0.3, 0.5))
    d <- expand.grid(time = seq_len(n_periods), unit = seq_len(n))[, c("unit", "time")]
    d$cohort <- cohort[d$unit]
    d$post <- as.integer(d$cohort > 0 & d$time >= d$cohort)
    d$event <- ifelse(d$cohort > 0, d$time - d$cohort, NA)
    # Effects: cohort 3 starts at 1 and gains 1 per period, cohort 5 starts at
    # 2 and gains 0.5, cohort 7 is flat at 0.5.
    slope <- c(`3` = 1, `5` = 0.5, `7` = 0, `0` = 0)[as.character(d$cohort)]
    level <- c(`3` = 1, `5` = 2, `7` = 0.5, `0` = 0)[as.character(d$cohort)]
    d$effect <- ifelse(d$post == 1, level + slope * d$event, 0)
    d$y <- unit_fe[d$unit] + time_fe[d$time] + d$effect + noise * stats::rnorm(nrow(d))
    d$market <- (d$unit - 1) %/% 4
    d$pop <- stats::runif(n, 1, 5)[d$unit]
    d
  })
}

# Moore-Penrose inverse of a symmetric matrix, for direct formula checks.
ginv_sym <- function(A, tol = 1e-10) {
  e <- eigen(A, symmetric = TRUE)
  keep <- e$values > tol * max(e$values)
  e$vectors[, keep] %*% (t(e$vectors[, keep]) / e$values[keep])
}

# sim_staggered() with a share `absent` of its rows removed at random: some
# units then lose the row of their adoption period (or the one before), so
# their first treated period is unknown.
sim_staggered_absent <- function(n = 400, absent = 0.1, seed = 1) {
  d <- sim_staggered(n = n, noise = 1, seed = seed)
  withr::with_seed(seed + 1e5, d[stats::runif(nrow(d)) >= absent, ])
}

# Whether the uniform band of a staggered() fit on sim_staggered_absent()
# data covers every cell's true ATT(g,t) (0 before adoption, and for any
# cohort that sim_staggered() does not have).
staggered_band_covers <- function(seed, n = 400, absent = 0.1, n_draws = 199) {
  d <- sim_staggered_absent(n, absent, seed)
  set.seed(seed)
  fit <- suppressWarnings(staggered(y ~ post | unit + time, d, n_draws = n_draws))
  td <- tidy(fit)
  level <- c(`3` = 1, `5` = 2, `7` = 0.5)
  slope <- c(`3` = 1, `5` = 0.5, `7` = 0)
  g <- as.character(td$group)
  truth <- ifelse(td$time >= td$group & g %in% names(level),
                  level[g] + slope[g] * (td$time - td$group), 0)
  ok <- !is.na(td$estimate) & !is.na(td$conf.low)
  all(td$conf.low[ok] <= truth[ok] & truth[ok] <= td$conf.high[ok])
}
