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
  cl <- ife(y ~ x | unit + time, d, r = 2, se_type = "cluster")
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
  expect_equal(fit_u$nobs, nrow(holes))
  expect_lt(abs(coef(fit_u) - 1.5), 2 * tidy(fit_u)$std.error)
})

test_that("the unit bootstrap is reproducible and close to the analytic standard error", {
  d <- sim_factor_panel(N = 50, Tn = 20, n_treated = 0, seed = 4)
  set.seed(9)
  a <- ife(y ~ x | unit + time, d, r = 2, se = "bootstrap", n_boot = 60)
  set.seed(9)
  b <- ife(y ~ x | unit + time, d, r = 2, se = "bootstrap", n_boot = 60)
  expect_identical(tidy(a), tidy(b))
  an <- ife(y ~ x | unit + time, d, r = 2, se_type = "cluster")
  expect_lt(abs(log(tidy(a)$std.error / tidy(an)$std.error)), log(2))
})

test_that("bad input: r too large, collinear and absorbed regressors, non-convergence", {
  d <- sim_factor_panel(N = 10, Tn = 8, n_treated = 0, seed = 2)
  expect_error(ife(y ~ x | unit + time, d, r = 7), class = "mktcausal_error_r_too_large")
  d$x2 <- 2 * d$x + 1
  expect_error(ife(y ~ x + x2 | unit + time, d, r = 1),
               class = "mktcausal_error_collinear_covariates")
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
