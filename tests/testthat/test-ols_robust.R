fixtures <- readRDS(test_path("fixtures", "estimatr.rds"))

test_that("HC2 matches estimatr::lm_robust on cluster-level data", {
  d <- fixtures$clusters
  X <- cbind(`(Intercept)` = 1, treated = d$treated, pre_sales = d$pre_sales,
             income = d$income)
  fit <- ols_robust(X, d$sales)
  ref <- fixtures$hc2
  expect_equal(fit$coefficients, ref$coefficients, tolerance = 1e-8)
  expect_equal(fit$vcov, ref$vcov, tolerance = 1e-8)
  expect_equal(unname(fit$df), unname(ref$df), tolerance = 1e-8)
  expect_equal(fit$se_type, "HC2")
})

test_that("CR2 and its Bell-McCaffrey df match estimatr::lm_robust on finer rows", {
  s <- fixtures$stores
  X <- cbind(`(Intercept)` = 1, treated = s$treated, pre_sales = s$pre_sales)
  fit <- ols_robust(X, s$sales, cluster = s$geo)
  ref <- fixtures$cr2_full
  expect_equal(fit$coefficients, ref$coefficients, tolerance = 1e-8)
  expect_equal(fit$vcov, ref$vcov, tolerance = 1e-8)
  expect_equal(fit$df, ref$df, tolerance = 1e-8)
  expect_equal(fit$n_clusters, 60L)
})

test_that("weighted HC2 matches estimatr::lm_robust with weights", {
  s <- fixtures$stores
  X <- cbind(`(Intercept)` = 1, treated = s$treated, pre_sales = s$pre_sales)
  fit <- ols_robust(X, s$sales, weights = s$w)
  ref <- fixtures$hc2_weighted
  expect_equal(fit$coefficients, ref$coefficients, tolerance = 1e-8)
  expect_equal(fit$vcov, ref$vcov, tolerance = 1e-8)
})

test_that("HC2 of the regression on treatment is the Neyman variance", {
  set.seed(3)
  t <- rep(0:1, c(12, 18))
  y <- rnorm(30, 5 + 2 * t, 1 + t)
  fit <- ols_robust(cbind(`(Intercept)` = 1, t = t), y)
  neyman <- var(y[t == 1]) / 18 + var(y[t == 0]) / 12
  expect_equal(fit$vcov["t", "t"], neyman, tolerance = 1e-12)
  expect_equal(fit$coefficients[["t"]], mean(y[t == 1]) - mean(y[t == 0]), tolerance = 1e-12)
})

test_that("rank deficiency, leverage one and bad weights get classed errors", {
  X <- cbind(`(Intercept)` = 1, a = 1:10, b = 2 * (1:10))
  expect_error(ols_robust(X, rnorm(10)), class = "mktcausal_error_collinear")
  expect_error(ols_robust(X, rnorm(10)), "b")
  t <- c(1, rep(0, 9))
  expect_error(ols_robust(cbind(`(Intercept)` = 1, t = t), rnorm(10)),
               class = "mktcausal_error_saturated_design")
  expect_error(ols_robust(cbind(`(Intercept)` = 1, t = rep(0:1, 5)), rnorm(10),
                          weights = c(-1, rep(1, 9))),
               class = "mktcausal_error_bad_weights")
})

test_that("CR1 and HC1 apply fixest's small-sample factors to the sandwich", {
  set.seed(3)
  n <- 60
  X <- cbind(a = rnorm(n), b = rnorm(n))
  y <- X %*% c(1, -1) + rnorm(n)
  cl <- rep(1:12, each = 5)
  fit <- ols_robust(X, y, cluster = cl, se_type = "CR1", n_absorbed = 3)
  e <- as.vector(y - X %*% fit$coefficients)
  bread <- solve(crossprod(X))
  S <- rowsum(X * e, cl)
  manual <- 12 / 11 * (n - 1) / (n - 5) * bread %*% crossprod(S) %*% bread
  expect_equal(unname(fit$vcov), unname(manual), tolerance = 1e-12)
  expect_equal(unname(fit$df), c(11, 11))
  h <- ols_robust(X, y, se_type = "HC1", n_absorbed = 3)
  manual_h <- n / (n - 5) * bread %*% crossprod(X * e) %*% bread
  expect_equal(unname(h$vcov), unname(manual_h), tolerance = 1e-12)
  expect_equal(unname(h$df), c(55, 55))
  expect_error(ols_robust(X, y, cluster = rep(1, n), se_type = "CR1"),
               class = "mktcausal_error_bad_cluster")
})
