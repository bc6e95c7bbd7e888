# The single-fit engine (R/synth-core.R) and its compiled kernels.
f99 <- packspercapita ~ treated | state + year

test_that("the simplex solver meets KKT on a large panel and agrees with itself warm-started", {
  withr::local_seed(3)
  X <- matrix(rnorm(60 * 300), 60) + outer(rnorm(60), rnorm(300))
  y <- X[, 1:4] %*% c(0.4, 0.3, 0.2, 0.1) + rnorm(60, sd = 0.3)
  cold <- cpp_simplex_ls(X, y, 0, numeric(0), 1e-12, 100000L)
  expect_true(cold$converged)
  expect_lt(cold$kkt, 1e-10)
  warm <- cpp_simplex_ls(X, y, 0, cold$w, 1e-12, 100000L)
  expect_lt(max(abs(warm$w - cold$w)), 1e-9)
  expect_lte(warm$iterations, 1L)
  # KKT by hand: the gradient is equal on the support and no smaller off it.
  g <- drop(crossprod(X, X %*% cold$w - y))
  on <- cold$w > 0
  expect_lt(diff(range(g[on])) / max(abs(g)), 1e-8)
  expect_gte(min(g[!on]) - max(g[on]), -1e-8 * max(abs(g)))
})

test_that("an optimiser that stops short raises a classed warning", {
  withr::local_seed(9)
  r <- cpp_simplex_ls(matrix(rnorm(200), 10), rnorm(10), 0, numeric(0), 1e-12, 1L)
  expect_false(r$converged)
  expect_warning(warn_fit_quality(FALSE, r$kkt, NULL, poor_fit = 0.25),
                 class = "mktcausal_warning_not_converged")
})

test_that("the compiled placebo loop gives the same gaps for any thread count", {
  withr::local_seed(13)
  Y <- matrix(rnorm(60 * 30), 60) + outer(rnorm(60), seq_len(30) / 10)
  one <- cpp_synth_placebo(Y, 20L, 1e-12, 100000L, 1L, NULL)
  two <- cpp_synth_placebo(Y, 20L, 1e-12, 100000L, 2L, NULL)
  expect_identical(one$gaps, two$gaps)
  expect_true(all(one$converged == 1L))
  # Column k is unit k fitted from the others on the first 20 periods.
  r <- cpp_simplex_ls(t(Y[-7, 1:20]), Y[7, 1:20], 0, numeric(0), 1e-12, 100000L)
  expect_equal(one$gaps[, 7], Y[7, ] - drop(crossprod(Y[-7, ], r$w)), tolerance = 1e-12)
  # Progress is reported once per round, on the calling thread.
  done <- integer()
  cpp_synth_placebo(Y, 20L, 1e-12, 100000L, 2L, function(k) done <<- c(done, k))
  expect_identical(done, c(8L, 16L, 24L, 32L, 40L, 48L, 56L, 60L))
  # Through synth(), on a donor pool large enough to use the threads.
  d <- sim_synth_panel(n_donors = 200, n_periods = 30, first_treated = 21, seed = 6)
  fit <- withr::with_options(list(mktcausal.threads = 1L),
                             synth(y ~ d | unit + time, d, inference = "placebo"))
  fit2 <- withr::with_options(list(mktcausal.threads = 2L),
                              synth(y ~ d | unit + time, d, inference = "placebo"))
  expect_identical(tidy(fit, "placebo"), tidy(fit2, "placebo"))
  expect_identical(nrow(tidy(fit, "placebo")), 201L)
  expect_equal(tidy(fit)$p.value, 1 / 201)
})
