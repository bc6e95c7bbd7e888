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
  for (force in c("two-way", "unit", "time")) {
    r <- c("two-way" = 2, unit = 3, time = 3)[[force]]
    fit <- ife(y ~ x | unit + time, d, r = r, force = force)
    expect_lt(abs(coef(fit) - 1.5), 3 * tidy(fit)$std.error)
  }
  # A grand mean with r factors tends to two-way effects with r - 1 factors
  # (the grand mean growing against a factor), and with two-way effects in
  # the data that edge fits better: the least-squares fit does not exist.
  expect_error(ife(y ~ x | unit + time, d, r = 4, force = "none"),
               class = "mktcausal_error_fit_not_attained")
  set.seed(2)
  holes <- d[-sample(nrow(d), 50), ]
  fit_u <- ife(y ~ x | unit + time, holes, r = 2)
  expect_equal(nobs(fit_u), nrow(holes))
  expect_lt(abs(coef(fit_u) - 1.5), 2 * tidy(fit_u)$std.error)
})

# The grand-mean model by plain alternating least squares: given the
# factors, the grand mean and beta by least squares with the loadings
# profiled out (Y M_F on 11' M_F and X M_F); given those, the factors by SVD.
plain_none <- function(Y, X, r, tol = 1e-12, max_iter = 20000) {
  J <- matrix(1, nrow(Y), ncol(Y))
  mu <- mean(Y)
  b <- 0
  path <- numeric(0)
  for (i in seq_len(max_iter)) {
    V <- svd(Y - mu - b * X, nu = 0, nv = r)$v
    MF <- function(M) as.vector(M - M %*% V %*% t(V))
    co <- unname(qr.coef(qr(cbind(MF(J), MF(X))), MF(Y)))
    done <- max(abs(co - c(mu, b))) < tol
    mu <- co[1]
    b <- co[2]
    E <- Y - mu - b * X
    path <- c(path, sum((E - E %*% V %*% t(V))^2))
    if (done) break
  }
  list(mu = mu, beta = b, ssr = path[length(path)], path = path)
}

prop99_logs <- function() {
  d <- prop99[order(prop99$year, prop99$state), ]
  d$lsales <- log(d$packspercapita)
  d$lprice <- log(d$retprice)
  d
}

test_that("force = \"none\" is the joint least-squares fit of the grand mean, beta and factors", {
  d <- prop99_logs()
  N <- 39
  Tn <- 31
  Y <- matrix(d$lsales, N, Tn)
  X <- matrix(d$lprice, N, Tn)
  ref <- plain_none(Y, X, r = 2)
  fit <- ife(lsales ~ lprice | state + year, d, r = 2, force = "none", tol = 1e-13,
             max_iter = 20000)
  fv <- fit$intercept + coef(fit)[[1]] * X + fit$loadings %*% t(fit$factors)
  ssr <- sum((Y - fv)^2)
  # Subtracting the grand mean once and fitting factors to the rest stopped
  # at beta -0.7587, SSR 2.362 (not converged after 1000 iterations).
  expect_equal(ssr, ref$ssr, tolerance = 1e-9)
  expect_equal(ssr, 2.2538122, tolerance = 1e-7)
  expect_equal(unname(coef(fit)), ref$beta, tolerance = 1e-7)
  expect_equal(fit$intercept, ref$mu, tolerance = 1e-7)
  expect_true(fit$converged)
  # The homoskedastic variance: sigma^2 over what is left of x once every
  # nuisance direction is projected out -- the grand mean, each loading
  # (a column of F in its unit's row) and each factor (a column of L in
  # its period's column), from the Jacobian of the fitted values.
  r <- 2
  cols <- list(rep(1, N * Tn))
  for (k in seq_len(r)) {
    for (i in seq_len(N)) {
      m <- matrix(0, N, Tn)
      m[i, ] <- fit$factors[, k]
      cols[[length(cols) + 1L]] <- as.vector(m)
    }
    for (t in seq_len(Tn)) {
      m <- matrix(0, N, Tn)
      m[, t] <- fit$loadings[, k]
      cols[[length(cols) + 1L]] <- as.vector(m)
    }
  }
  h <- sum(qr.resid(qr(do.call(cbind, cols)), as.vector(X))^2)
  sigma2 <- ssr / (N * Tn - 2 - r * (N + Tn - r))
  expect_equal(tidy(fit)$std.error, sqrt(sigma2 / h), tolerance = 1e-6)
})

test_that("force = \"none\" matches plain least squares on a grand-mean panel and refuses an unattained fit", {
  set.seed(1)
  N <- 40
  Tn <- 25
  l <- stats::rnorm(N, 1)
  f <- stats::rnorm(Tn, 1)
  X <- matrix(stats::rnorm(N * Tn), N) + outer(l, f)
  Y <- 3 + 1.5 * X + outer(l, f) + matrix(stats::rnorm(N * Tn, sd = 0.5), N)
  d <- data.frame(unit = rep(seq_len(N), Tn), time = rep(seq_len(Tn), each = N),
                  y = as.vector(Y), x = as.vector(X))
  # The other plain algorithm: the product L F' held fixed while the mean
  # and beta are regressed, then the factors of what is left.
  mu <- mean(Y)
  b <- 0
  for (i in 1:5000) {
    s <- svd(Y - mu - b * X, nu = 1, nv = 1)
    LF <- s$d[1] * s$u %*% t(s$v)
    co <- unname(stats::lm.fit(cbind(1, as.vector(X)), as.vector(Y - LF))$coefficients)
    done <- max(abs(co - c(mu, b))) < 1e-13
    mu <- co[1]
    b <- co[2]
    if (done) break
  }
  fit <- ife(y ~ x | unit + time, d, r = 1, force = "none", tol = 1e-13, max_iter = 20000)
  expect_equal(unname(coef(fit)), b, tolerance = 1e-8)
  expect_equal(fit$intercept, mu, tolerance = 1e-8)
  fv <- fit$intercept + coef(fit)[[1]] * X + fit$loadings %*% t(fit$factors)
  expect_equal(sum((Y - fv)^2), sum((Y - mu - b * X - LF)^2), tolerance = 1e-10)

  # On prop99 with one factor the fit is not attained: the plain iterations
  # keep lowering the SSR as the grand mean grows, towards the two-way
  # fixed-effects regression without factors (lm()).
  d <- prop99_logs()
  path <- plain_none(matrix(d$lsales, 39, 31), matrix(d$lprice, 39, 31), r = 1,
                     max_iter = 300)
  edge <- sum(stats::resid(stats::lm(lsales ~ lprice + factor(state) + factor(year), d))^2)
  expect_true(all(diff(path$path) < 0))
  expect_true(all(path$path > edge))
  expect_lt(path$ssr - edge, 0.1)
  expect_gt(path$mu, 20)
  expect_error(ife(lsales ~ lprice | state + year, d, r = 1, force = "none"),
               class = "mktcausal_error_fit_not_attained")
  expect_error(counterfactual(lsales ~ treated + lprice | state + year, d, r = 1, force = "none"),
               class = "mktcausal_error_fit_not_attained")
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

test_that("an outcome the additive effects fit exactly gives a classed error, not 0/0", {
  d <- hard_panel()
  d$y0 <- 2 + d$unit / 10 + d$time
  expect_error(ife(y0 ~ x | unit + time, d, r = 1), "y0", class = "mktcausal_error_no_variation")
  expect_error(ife(y0 ~ x | unit + time, d, r = 1, bias_correction = "bai"),
               class = "mktcausal_error_no_variation")
  d$y1 <- 7
  expect_error(ife(y1 ~ x | unit + time, d, r = 1, force = "none"), "y1",
               class = "mktcausal_error_no_variation")
})

test_that("outcomes near 1e300 and 1e-300 give the scaled answer", {
  d <- hard_panel()
  expect_outcome_scaled(function(y, data) ife(y ~ dose + x | unit + time, data, r = 1), d)
  expect_outcome_scaled(function(y, data) {
    ife(y ~ dose + x | unit + time, data, r = 1, inference = "cluster", bias_correction = "bai")
  }, d, "bias", cols = c("uncorrected", "cross_section", "time", "total", "corrected"))
  expect_outcome_scaled(function(y, data) {
    set.seed(3)
    ife(y ~ dose + x | unit + time, data, r = 1, inference = "bootstrap", n_draws = 20)
  }, d)
  expect_outcome_scaled(function(y, data) ife(y ~ dose + x | unit + time, data, r = 0,
                                              force = "none"), d)
  # r chosen by Bai and Ng: the same r, and the criteria move by log(s^2).
  big <- d
  big$y <- d$y * 1e300
  a <- ife(y ~ dose + x | unit + time, d, r_max = 3)
  b <- ife(y ~ dose + x | unit + time, big, r_max = 3)
  expect_equal(b$r, a$r)
  expect_equal(tidy(b, "ic")$IC_p1, tidy(a, "ic")$IC_p1 + 2 * log(1e300), tolerance = 1e-12)
  expect_equal(unname(b$loadings) / 1e300, unname(a$loadings), tolerance = 1e-8)
})

test_that("the bootstrap does not depend on the chunk size or the number of threads", {
  d <- sim_factor_panel(N = 40, Tn = 15, n_treated = 0, seed = 6)
  old <- mkt_threads()
  on.exit(mkt_threads(old), add = TRUE)
  fits <- list()
  for (cs in c(1, 50, 1000)) {
    for (th in 1:2) {
      mkt_threads(th)
      set.seed(11)
      fits[[paste(cs, th)]] <- ife(y ~ x | unit + time, d, r = 2, inference = "bootstrap",
                                   n_draws = 60, chunk_size = cs)
    }
  }
  for (f in fits[-1]) expect_identical(tidy(f), tidy(fits[[1]]))
  expect_error(ife(y ~ x | unit + time, d, r = 2, chunk_size = 0),
               class = "mktcausal_error_bad_argument")
})

test_that("an interrupt stops the bootstrap and the iterations of a large fit within a second", {
  skip_on_cran()
  skip_if_not_installed("processx")
  setup <- function(N, Tn) {
    sprintf(paste("d <- expand.grid(unit = 1:%d, time = 1:%d); set.seed(1);",
                  "lf <- rnorm(%d)[d$unit] * rnorm(%d)[d$time];",
                  "d$x <- rnorm(nrow(d)) + lf; d$y <- d$x + lf + rnorm(nrow(d))"),
            N, Tn, N, Tn)
  }
  boot <- seconds_to_stop(
    "ife(y ~ x | unit + time, d, r = 1, inference = 'bootstrap', n_draws = 1e6)",
    setup = setup(60, 20))
  expect_lt(boot, 1)
  # 10,000 x 300 cells: iterations of a few tenths of a second, so the old
  # poll every 20 iterations took 6 to 10 seconds to answer.
  als <- seconds_to_stop("ife(p, r = 3, tol = 1e-15, max_iter = 1e6)",
                         setup = paste(setup(10000, 300), "; p <- mkt_panel(y ~ x | unit + time, d)"),
                         delay = 4, timeout = 300)
  expect_lt(als, 1)
})
