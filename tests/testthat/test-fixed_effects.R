test_that("demean_fe equals the residuals of the dummy-variable regression", {
  set.seed(11)
  d <- expand.grid(u = 1:15, t = 1:8)
  d <- d[-sample(nrow(d), 20), ]
  x <- cbind(a = rnorm(nrow(d)), b = rexp(nrow(d)) * 1e4)
  w <- runif(nrow(d), 0.5, 2)
  dm <- demean_fe(x, list(d$u, d$t))
  ref <- stats::lm.fit(stats::model.matrix(~ factor(u) + factor(t), d), x)$residuals
  expect_true(attr(dm, "converged"))
  expect_lt(max(abs(dm - ref) / c(1, 1e4)[col(ref)]), 1e-10)
  dw <- demean_fe(x, list(d$u, d$t), weights = w)
  refw <- x - stats::lm.wfit(stats::model.matrix(~ factor(u) + factor(t), d), x, w)$fitted.values
  expect_lt(max(abs(dw - refw) / c(1, 1e4)[col(refw)]), 1e-10)
  # A third factor (region x time) is swept out too.
  reg <- (d$u %% 3) * 100 + d$t
  d3 <- demean_fe(x[, 1], list(d$u, d$t, reg))
  ref3 <- stats::lm.fit(stats::model.matrix(~ factor(u) + factor(t) + factor(reg), d), x[, 1])$residuals
  expect_lt(max(abs(d3 - ref3)), 1e-10)
})

test_that("one sweep is exact on a balanced panel and absorbed counts follow fixest", {
  d <- expand.grid(u = 1:5, t = 1:4)
  x <- d$u * 2 + d$t^2 + sin(seq_len(20))
  dm <- demean_fe(x, list(d$u, d$t))
  expect_equal(attr(dm, "iterations"), 2L)
  expect_equal(fe_dof(list(d$u, d$t)), 8L)
  expect_equal(fe_absorbed(list(d$u, d$t), d$u), 4L)
  expect_equal(fe_absorbed(list(d$u, d$t), NULL), 8L)
  # Periods nested in clusters of periods: only the 5 unit levels count.
  expect_equal(fe_absorbed(list(d$u, d$t), d$u * 0 + (d$t > 2)), 5L)
})

test_that("non-convergence is reported, and becomes a classed error in estimators", {
  set.seed(2)
  d <- expand.grid(u = 1:30, t = 1:10)
  d <- d[-sample(nrow(d), 100), ]
  x <- rnorm(nrow(d))
  out <- demean_fe(x, list(d$u, d$t), max_iter = 1L)
  expect_false(attr(out, "converged"))
  expect_equal(attr(out, "iterations"), 1L)
  expect_error(demean_fe(c(x[-1], NA), list(d$u, d$t)), class = "mktcausal_error_bad_data")
  # A single factor is one exact sweep: group demeaning.
  one <- demean_fe(x, list(d$u))
  expect_equal(one, x - ave(x, d$u), ignore_attr = TRUE, tolerance = 1e-14)
})
