# synthetic_design() and synthetic_design_effect(): the search against an
# independent brute force, size and recovery by simulation, bad input.

sd_sim_panel <- function(J = 12, Tn = 60, r = 2, rho = 0.5, rho_e = 0.3) {
  F <- matrix(0, Tn, r)
  for (t in 2:Tn) F[t, ] <- rho * F[t - 1, ] + stats::rnorm(r)
  lam <- matrix(stats::rnorm(J * r), J, r)
  e <- matrix(0, J, Tn)
  e[, 1] <- stats::rnorm(J)
  for (t in 2:Tn) e[, t] <- rho_e * e[, t - 1] + stats::rnorm(J, sd = sqrt(1 - rho_e^2))
  Y <- 50 + 5 * stats::rnorm(J) + 3 * lam %*% t(F) + e
  dimnames(Y) <- list(sprintf("m%02d", seq_len(J)), seq_len(Tn))
  Y
}

sd_long <- function(Y) {
  data.frame(market = rep(rownames(Y), ncol(Y)), week = rep(seq_len(ncol(Y)), each = nrow(Y)),
             y = as.vector(Y), stringsAsFactors = FALSE)
}

# An independent solver: projected gradient on the simplex (sort-based
# projection of Duchi et al. 2008), many small steps.
sd_proj_simplex <- function(u) {
  s <- sort(u, decreasing = TRUE)
  css <- cumsum(s)
  k <- max(which(s - (css - 1) / seq_along(s) > 0))
  pmax(u - (css[k] - 1) / k, 0)
}
# Accelerated (FISTA) projected gradient, many steps.
sd_pg <- function(X, y, iters = 20000) {
  G <- crossprod(X)
  b <- crossprod(X, y)[, 1]
  w <- z <- rep(1 / ncol(X), ncol(X))
  step <- 1 / (2 * max(eigen(G, only.values = TRUE)$values))
  tk <- 1
  for (i in seq_len(iters)) {
    w_new <- sd_proj_simplex(z - step * 2 * (drop(G %*% z) - b))
    t_new <- (1 + sqrt(1 + 4 * tk^2)) / 2
    z <- w_new + (tk - 1) / t_new * (w_new - w)
    w <- w_new
    tk <- t_new
  }
  sum((y - X %*% w)^2)
}

# The designs of small histories warn that their blank periods are too few
# for a test at 5%; these tests look at the search, not the test.
quiet_blank <- function(expr) {
  withCallingHandlers(expr, mktcausal_warning_granular_inference = function(w) {
    invokeRestart("muffleWarning")
  })
}

test_that("the exhaustive optimum matches an independent brute force", {
  set.seed(11)
  Y <- sd_sim_panel(J = 8, Tn = 40)
  des <- quiet_blank(synthetic_design(y ~ 0 | market + week, sd_long(Y), n_treated = 2,
                                      test_length = 2, n_blank = 10, search = "exhaustive"))
  X <- t(Y[, 1:30])
  xbar <- rowMeans(X)
  sets <- utils::combn(8, 2)
  brute <- apply(sets, 2, function(s) sd_pg(X[, s, drop = FALSE], xbar) + sd_pg(X[, -s], xbar))
  expect_equal(unname(des$objective["total"]), min(brute), tolerance = 1e-6)
  expect_setequal(des$treated, rownames(Y)[sets[, which.min(brute)]])
  # The stored objective is the design's own weights put into the formula.
  w <- des$weights$w[match(rownames(Y), des$weights$market)]
  v <- des$weights$v[match(rownames(Y), des$weights$market)]
  expect_equal(unname(des$objective["total"]),
               sum((xbar - X %*% w)^2) + sum((xbar - X %*% v)^2), tolerance = 1e-10)
  expect_equal(sum(w), 1)
  expect_equal(sum(v), 1)
  expect_true(all(w >= 0 & v >= 0))
  expect_true(all(w * v == 0))
  expect_lte(sum(w > 0), 2L)
  # RMSE of the weighted difference over the fit periods, from the weights.
  expect_equal(unname(des$rmse["fit"]), sqrt(mean((crossprod(Y[, 1:30], w - v))^2)))
})

test_that("the swap search reaches the exhaustive optimum on small panels", {
  hits <- 0L
  gaps <- numeric(0)
  for (seed in 1:6) {
    set.seed(seed)
    Y <- sd_sim_panel(J = 14, Tn = 50)
    d <- sd_long(Y)
    for (m in 2:3) {
      ex <- quiet_blank(synthetic_design(y ~ 0 | market + week, d, n_treated = m,
                                         test_length = 4, n_blank = 12, search = "exhaustive"))
      sw <- quiet_blank(synthetic_design(y ~ 0 | market + week, d, n_treated = m,
                                         test_length = 4, n_blank = 12, search = "swap",
                                         n_starts = 5))
      gaps <- c(gaps, sw$objective[["total"]] / ex$objective[["total"]] - 1)
      hits <- hits + setequal(sw$treated, ex$treated)
    }
  }
  # Never below the exact optimum; equal to it in every case here.
  expect_true(all(gaps > -1e-8))
  expect_lt(max(gaps), 1e-8)
  expect_equal(hits, 12L)
})

test_that("include and exclude are honoured", {
  set.seed(3)
  Y <- sd_sim_panel(J = 10, Tn = 50)
  d <- sd_long(Y)
  des <- quiet_blank(synthetic_design(y ~ 0 | market + week, d, n_treated = 3,
                                      test_length = 4, n_blank = 12, include = "m01",
                                      exclude = c("m02", "m03")))
  expect_false(any(c("m02", "m03") %in% des$treated))
  # m01 is in the searched set; it is treated unless its weight is zero.
  expect_true("m01" %in% des$weights$market[des$weights$role %in% c("treated", "set, zero weight")])
  free <- quiet_blank(synthetic_design(y ~ 0 | market + week, d, n_treated = 3,
                                       test_length = 4, n_blank = 12))
  expect_gte(des$objective[["total"]], free$objective[["total"]] - 1e-8)
})

test_that("the effect is the weighted difference of the paths, recovered when injected", {
  set.seed(5)
  Y <- sd_sim_panel(J = 12, Tn = 48 + 76 + 4)
  d <- sd_long(Y)
  hist <- d[d$week <= 124, ]
  des <- synthetic_design(y ~ 0 | market + week, hist, n_treated = 2, test_length = 4)
  expect_equal(length(des$blank_periods), 76L)
  inj <- d
  hit <- inj$market %in% des$treated & inj$week > 124
  inj$y[hit] <- inj$y[hit] + 4
  fit <- synthetic_design_effect(y ~ 0 | market + week, inj, design = des)
  est <- tidy(fit)
  w <- des$weights$w[match(rownames(Y), des$weights$market)]
  v <- des$weights$v[match(rownames(Y), des$weights$market)]
  Yi <- Y
  Yi[w > 0, 125:128] <- Yi[w > 0, 125:128] + 4
  gap <- drop(crossprod(Yi[, 125:128], w - v))
  expect_equal(est$estimate[est$term == "average"], mean(gap))
  expect_equal(est$estimate[est$term == "cumulative"], sum(gap))
  expect_equal(est$estimate[grepl("^period_", est$term)], unname(gap))
  expect_equal(est$estimate[est$term == "lift"], sum(gap) / sum(crossprod(Yi[, 125:128], v)))
  row <- est[est$term == "average", ]
  expect_true(row$conf.low <= 4 && 4 <= row$conf.high)
  expect_lte(row$p.value, 0.05)
  # The interval inverts the test: at its ends the p-value crosses alpha.
  ref <- tidy(fit, "reference")$mean_gap
  expect_equal(length(ref), 19L)
  expect_equal(row$conf.high - row$estimate, max(abs(ref)))
  expect_equal(row$p.value, (1 + sum(abs(ref) >= abs(row$estimate))) / 20)
  eot <- tidy(fit, "effect_over_time")
  expect_equal(eot$cumulative[eot$post], unname(cumsum(gap)))
  expect_s3_class(plot(fit), "ggplot")
  expect_s3_class(plot(des), "ggplot")
})

test_that("the test holds its size at zero effect and covers a known effect", {
  skip_on_cran()
  set.seed(20261203)
  R <- 300
  L <- 4
  res <- t(replicate(R, {
    Y <- sd_sim_panel(J = 12, Tn = 48 + 76 + L)
    H <- 48 + 76
    hist <- list(Y = Y[, 1:H], times = 1:H, vars = list(outcome = "y", unit = "m", time = "t"))
    des <- mktcausal:::sd_design_fit(hist, 2L, L, NULL, NULL, NULL, "exhaustive", 1e5, 1L, 0.05)
    w <- des$weights$w[match(rownames(Y), des$weights$market)]
    v <- des$weights$v[match(rownames(Y), des$weights$market)]
    bl <- match(des$blank_periods, 1:H)
    post <- (H + 1):(H + L)
    gap <- drop(crossprod(Y, w - v))
    ct <- drop(crossprod(Y, v))
    a <- mktcausal:::sd_effect_core(gap[bl], gap[post] + ct[post], ct[post], 0.05)$estimates
    b <- mktcausal:::sd_effect_core(gap[bl], gap[post] + 3 + ct[post], ct[post], 0.05)$estimates
    c(size = a$p.value[1] <= 0.05, cover = b$conf.low[1] <= 3 && 3 <= b$conf.high[1],
      est = b$estimate[1])
  }))
  se <- sqrt(0.05 * 0.95 / R)
  expect_lt(abs(mean(res[, "size"]) - 0.05), 2.5 * se)
  expect_gt(mean(res[, "cover"]), 0.95 - 2.5 * se)
  expect_lt(abs(mean(res[, "est"]) - 3), 0.1)
})

test_that("bad input gets classed errors", {
  set.seed(1)
  Y <- sd_sim_panel(J = 6, Tn = 40)
  d <- sd_long(Y)
  expect_error(synthetic_design(y ~ 0 | market + week, d, n_treated = 6, test_length = 4),
               class = "mktcausal_error_too_few_controls")
  expect_error(synthetic_design(y ~ 0 | market + week, d, n_treated = 2, test_length = 40),
               class = "mktcausal_error_bad_argument", regexp = "test_length")
  d$tr <- 0
  expect_error(synthetic_design(y ~ tr | market + week, d, n_treated = 2, test_length = 4),
               class = "mktcausal_error_bad_formula")
  expect_error(synthetic_design(y ~ 0 | market + week, d, n_treated = 2, test_length = 4,
                                include = "m01", exclude = "m01"),
               class = "mktcausal_error_bad_argument")
  expect_error(synthetic_design(y ~ 0 | market + week, d, n_treated = 2, test_length = 4,
                                include = "nope"),
               class = "mktcausal_error_bad_argument", regexp = "include")
  expect_error(quiet_blank(synthetic_design(y ~ 0 | market + week, d, n_treated = 3,
                                            test_length = 4, search = "exhaustive",
                                            max_sets = 5)),
               class = "mktcausal_error_too_large")
  expect_warning(des <- synthetic_design(y ~ 0 | market + week, d, n_treated = 2,
                                         test_length = 4),
                 class = "mktcausal_warning_granular_inference")
  expect_error(synthetic_design_effect(y ~ 0 | market + week, d, design = list()),
               class = "mktcausal_error_bad_argument")
  expect_error(synthetic_design_effect(y ~ 0 | market + week, d, design = des),
               class = "mktcausal_error_bad_window")
})
