test_that("Bai's beta equals an independent plain-R alternating least squares to 1e-8", {
  d <- sim_factor_panel(N = 40, Tn = 20, n_treated = 0, seed = 11)
  d$z <- stats::rnorm(nrow(d))
  fit <- ife(y ~ x + z | unit + time, d, r = 2, tol = 1e-13, max_iter = 20000)
  Y <- matrix(d$y, 40, 20)
  X <- list(matrix(d$x, 40, 20), matrix(d$z, 40, 20))
  ref <- plain_als(Y, X, r = 2)
  expect_equal(unname(coef(fit)), ref, tolerance = 1e-8)
  expect_true(fit$converged)
  expect_equal(dim(fit$factors), c(20L, 2L))
  expect_equal(crossprod(fit$factors) / 20, diag(2), tolerance = 1e-8, ignore_attr = TRUE)
})

test_that("the known beta lies within two standard errors; two-way FE without factors is biased", {
  d <- sim_factor_panel(N = 60, Tn = 25, n_treated = 0, beta = 1.5, seed = 3)
  fit <- ife(y ~ x | unit + time, d, r = 2)
  b <- tidy(fit)
  expect_lt(abs(b$estimate - 1.5), 2 * b$std.error)
  twfe <- ife(y ~ x | unit + time, d, r = 0)
  expect_gt(abs(coef(twfe) - 1.5), 10 * tidy(twfe)$std.error)
  cl <- ife(y ~ x | unit + time, d, r = 2, inference = "cluster")
  expect_lt(abs(coef(cl) - 1.5), 2 * tidy(cl)$std.error)
})

test_that("Bai and Ng criteria choose the true number of factors and report the table", {
  d <- sim_factor_panel(N = 60, Tn = 30, r = 2, n_treated = 0, sd = 0.3, seed = 5)
  fit <- ife(y ~ x | unit + time, d, r_max = 5)
  expect_equal(fit$r, 2L)
  ic <- tidy(fit, "ic")
  expect_equal(ic$r, 0:5)
  expect_equal(ic$r[ic$selected], 2L)
  expect_equal(ic$r[which.min(ic$IC_p2)], 2L)
  expect_true(all(diff(ic$V) < 0))
})

test_that("every force option recovers beta, and unbalanced panels are handled by EM", {
  d <- sim_factor_panel(N = 50, Tn = 20, n_treated = 0, seed = 8)
  # A missing additive effect costs one factor: xi_t is a factor with equal
  # loadings, alpha_i a loading on a constant factor.
  for (force in c("two-way", "unit", "time", "none")) {
    r <- c("two-way" = 2, unit = 3, time = 3, none = 4)[[force]]
    fit <- ife(y ~ x | unit + time, d, r = r, force = force)
    expect_lt(abs(coef(fit) - 1.5), 3 * tidy(fit)$std.error)
  }
  set.seed(2)
  holes <- d[-sample(nrow(d), 50), ]
  fit_u <- ife(y ~ x | unit + time, holes, r = 2)
  expect_equal(nobs(fit_u), nrow(holes))
  expect_lt(abs(coef(fit_u) - 1.5), 2 * tidy(fit_u)$std.error)
})

test_that("the unit bootstrap is reproducible and close to the analytic standard error", {
  d <- sim_factor_panel(N = 50, Tn = 20, n_treated = 0, seed = 4)
  set.seed(9)
  a <- ife(y ~ x | unit + time, d, r = 2, inference = "bootstrap", n_draws = 60)
  set.seed(9)
  b <- ife(y ~ x | unit + time, d, r = 2, inference = "bootstrap", n_draws = 60)
  expect_identical(tidy(a), tidy(b))
  an <- ife(y ~ x | unit + time, d, r = 2, inference = "cluster")
  expect_lt(abs(log(tidy(a)$std.error / tidy(an)$std.error)), log(2))
})

test_that("bad input: r too large, collinear and absorbed regressors, non-convergence", {
  d <- sim_factor_panel(N = 10, Tn = 8, n_treated = 0, seed = 2)
  expect_error(ife(y ~ x | unit + time, d, r = 7), class = "mktcausal_error_r_too_large")
  d$x2 <- 2 * d$x + 1
  expect_error(ife(y ~ x + x2 | unit + time, d, r = 1),
               class = "mktcausal_error_collinear")
  d$size <- d$unit %% 3
  expect_message(fit <- ife(y ~ x + size | unit + time, d, r = 1), "absorbed")
  expect_equal(fit$absorbed, "size")
  expect_equal(names(coef(fit)), "x")
  d <- sim_factor_panel(N = 30, Tn = 20, n_treated = 0, seed = 2)
  expect_warning(ife(y ~ x | unit + time, d, r = 3, max_iter = 3),
                 "after 3 iterations", class = "mktcausal_warning_not_converged")
  expect_error(ife(y ~ x | unit + time, d, r = 1, tol = 0), class = "mktcausal_error_bad_argument")
})

test_that("tibble and data.table input give the same fit", {
  skip_if_not_installed("tibble")
  skip_if_not_installed("data.table")
  d <- sim_factor_panel(N = 20, Tn = 10, n_treated = 0, seed = 6)
  ref <- coef(ife(y ~ x | unit + time, d, r = 1))
  expect_equal(coef(ife(y ~ x | unit + time, tibble::as_tibble(d), r = 1)), ref)
  expect_equal(coef(ife(y ~ x | unit + time, data.table::as.data.table(d), r = 1)), ref)
})

# --- bias correction ----------------------------------------------------------

# A dynamic panel with one factor: y_it = rho y_i,t-1 + x_it + a_i + xi_t +
# lambda_i f_t + e_it, started `burn` periods early so the lag is stationary.
sim_dynamic_panel <- function(N, Tn, rho = 0.5, r = 1, burn = 20, seed = 1) {
  withr::with_seed(seed, {
    TT <- Tn + burn + 1
    f <- matrix(stats::rnorm(TT * r), TT, r)
    lam <- matrix(stats::rnorm(N * r), N, r)
    a <- stats::rnorm(N)
    xi <- stats::rnorm(TT)
    x <- matrix(stats::rnorm(N * TT), N, TT) + 0.5 * lam[, 1] %o% f[, 1]
    y <- matrix(0, N, TT)
    for (t in 2:TT) {
      y[, t] <- rho * y[, t - 1] + x[, t] + a + xi[t] + drop(lam %*% f[t, ]) + stats::rnorm(N)
    }
  })
  keep <- (burn + 2):TT
  data.frame(unit = rep(seq_len(N), Tn), time = rep(seq_len(Tn), each = N),
             y = as.vector(y[, keep]), ylag = as.vector(y[, keep - 1]), x = as.vector(x[, keep]))
}

test_that("bias terms agree with xtife's Moon-Weidner terms", {
  fx <- readRDS(test_path("fixtures", "ife_bias.rds"))
  for (force in c("time", "two-way")) {
    ref <- fx[[if (force == "time") "time" else "two_way"]]
    fit <- ife(y ~ ylag + x | unit + time, fx$panel, r = 1, force = force, tol = 1e-13,
               max_iter = 1e5, bias_correction = "dynamic", bias_lags = fx$lags)
    b <- tidy(fit, "bias")
    expect_equal(b$uncorrected, ref$uncorrected, tolerance = 1e-8)
    expect_equal(b$cross_section, ref$cross_section, tolerance = 1e-7)
    expect_equal(b$time, ref$time, tolerance = 1e-7)
    if (force == "time") {
      expect_equal(b$predetermined, ref$predetermined, tolerance = 1e-7)
      expect_equal(unname(coef(fit)), ref$corrected, tolerance = 1e-8)
    } else {
      # Under unit effects our predetermined term also projects on the
      # constant factor (the Nickell bias), which xtife leaves out.
      expect_lt(b$predetermined[1], ref$predetermined[1] - 0.02)
    }
    expect_equal(b$corrected, b$uncorrected - b$total)
    expect_equal(tidy(fit)$estimate, b$corrected)
  }
})

test_that("the cross-section and time terms swap when the panel is transposed", {
  d <- sim_factor_panel(N = 30, Tn = 12, n_treated = 0, seed = 6)
  d$y <- d$y + stats::rnorm(nrow(d), sd = 0.3 + d$unit / 20) + stats::rnorm(nrow(d), sd = d$time / 6)
  a <- ife(y ~ x | unit + time, d, r = 2, tol = 1e-12, max_iter = 1e5, bias_correction = "bai")
  b <- ife(y ~ x | time + unit, d, r = 2, tol = 1e-12, max_iter = 1e5, bias_correction = "bai")
  ba <- tidy(a, "bias")
  bb <- tidy(b, "bias")
  expect_equal(ba$uncorrected, bb$uncorrected, tolerance = 1e-8)
  expect_equal(ba$cross_section, bb$time, tolerance = 1e-7)
  expect_equal(ba$time, bb$cross_section, tolerance = 1e-7)
  expect_true(is.na(ba$predetermined))
})

test_that("the predetermined term removes most of the Nickell bias of the within estimator", {
  # r = 0 with unit effects is the within estimator of an AR(1); its bias is
  # about -(1 + rho) / T, here -0.08.
  d <- withr::with_seed(8, {
    N <- 500
    Tn <- 20
    a <- stats::rnorm(N)
    y <- matrix(0, N, Tn + 21)
    for (t in 2:ncol(y)) y[, t] <- 0.5 * y[, t - 1] + a + stats::rnorm(N)
    keep <- 22:ncol(y)
    data.frame(unit = rep(seq_len(N), Tn), time = rep(seq_len(Tn), each = N),
               y = as.vector(y[, keep]), ylag = as.vector(y[, keep - 1]))
  })
  fit0 <- ife(y ~ ylag | unit + time, d, r = 0, force = "unit", bias_correction = "dynamic")
  b <- tidy(fit0, "bias")
  expect_lt(b$uncorrected - 0.5, -0.06)
  expect_lt(abs(b$corrected - 0.5), 0.45 * abs(b$uncorrected - 0.5))
  expect_equal(c(b$cross_section, b$time), c(0, 0))
})

test_that("Monte Carlo: the corrections shrink the bias of a lagged outcome and of time heteroskedasticity", {
  skip_on_cran()
  est <- vapply(1:25, function(s) {
    d <- sim_dynamic_panel(N = 60, Tn = 15, seed = 100 + s)
    fit <- ife(y ~ ylag + x | unit + time, d, r = 1, inference = "none",
               bias_correction = "dynamic")
    b <- tidy(fit, "bias")
    c(b$uncorrected[1], b$corrected[1])
  }, numeric(2))
  bias <- rowMeans(est) - 0.5
  expect_lt(bias[1], -0.04)
  expect_lt(abs(bias[2]), 0.5 * abs(bias[1]))

  # Error variance that rises with the factor, and a regressor that loads on
  # a second time pattern: the 1/T term of Bai (2009).
  sim_het <- function(N, Tn, seed) {
    withr::with_seed(seed, {
      f <- stats::rnorm(Tn)
      lam <- stats::rnorm(N)
      x <- lam %o% (f^2 - 1 + f) + matrix(stats::rnorm(N * Tn), N, Tn)
      y <- x + 3 * lam %o% f + matrix(stats::rnorm(N * Tn), N, Tn) * rep(exp(0.6 * f), each = N)
    })
    data.frame(unit = rep(seq_len(N), Tn), time = rep(seq_len(Tn), each = N),
               y = as.vector(y), x = as.vector(x))
  }
  est <- vapply(1:12, function(s) {
    fit <- ife(y ~ x | unit + time, sim_het(200, 40, s), r = 1, force = "none",
               inference = "none", bias_correction = "bai")
    b <- tidy(fit, "bias")
    c(b$uncorrected, b$corrected)
  }, numeric(2))
  bias <- rowMeans(est) - 1
  expect_lt(bias[1], -0.015)
  expect_lt(abs(bias[2]), 0.5 * abs(bias[1]))
})

test_that("bias correction: heteroskedastic standard errors and bad input", {
  d <- sim_factor_panel(N = 40, Tn = 15, n_treated = 0, seed = 3)
  homo <- ife(y ~ x | unit + time, d, r = 2)
  het <- ife(y ~ x | unit + time, d, r = 2, inference = "heteroskedastic",
             bias_correction = "bai")
  expect_lt(abs(log(tidy(het)$std.error / tidy(homo)$std.error)), log(1.3))
  expect_equal(het$options$inference, "heteroskedastic")
  expect_output(print(het), "Bias-corrected")
  expect_equal(nrow(tidy(homo, "bias")), 0L)
  expect_error(ife(y ~ x | unit + time, d[-1, ], r = 2, bias_correction = "bai"),
               class = "mktcausal_error_unbalanced_panel")
  expect_error(ife(y ~ x | unit + time, d, r = 2, inference = "bootstrap",
                   bias_correction = "bai"),
               class = "mktcausal_error_bad_argument")
  expect_error(ife(y ~ x | unit + time, d, r = 2, bias_correction = "dynamic", bias_lags = 0),
               class = "mktcausal_error_bad_argument")
})
