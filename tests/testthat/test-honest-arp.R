# The relative-magnitudes test by listed dual vertices and by the simplex
# method (R/honest-arp.R, src/honest.h).

# A random event study with n_pre pre-periods and n_post post-periods.
random_es <- function(n_pre, n_post, seed) {
  withr::with_seed(seed, {
    k <- n_pre + n_post
    R <- matrix(stats::rnorm(k * k), k)
    sigma <- 0.01 * (crossprod(R) / k + diag(k))
    beta <- c(cumsum(stats::rnorm(n_pre, 0, 0.05)), 0.1 + cumsum(stats::rnorm(n_post, 0, 0.05)))
    Z <- matrix(stats::rnorm(300 * 2 * n_post), 300, byrow = TRUE)
    list(beta = beta, sigma = sigma, Z = Z)
  })
}

rm_set <- function(es, n_pre, l, Mbar, hybrid, solver, n = 200) {
  post <- n_pre + seq_along(l)
  est <- sum(l * es$beta[post])
  se <- sqrt(drop(crossprod(l, es$sigma[post, post] %*% l)))
  acc <- rm_acceptance(es$beta, es$sigma, n_pre, l, Mbar, 0.05, hybrid, es$Z, solver = solver)
  grid_interval(acc, est - 20 * se, est + 20 * se, n, TRUE)
}

test_that("the simplex solves small programs exactly and reports infeasibility", {
  # max x1 + 2 x2 s.t. x1 + x2 + x3 = 4, x1 - x2 + x4 = 1: optimum 8 at x2 = 4.
  A <- rbind(c(1, 1, 1, 0), c(1, -1, 0, 1))
  res <- cpp_honest_lp(A, c(4, 1), cbind(c(1, 2, 0, 0), c(3, 1, 0, 0)), TRUE, TRUE, 1e-11)
  expect_equal(res$status, c(0L, 0L))
  # The second objective is best at x1 = 2.5, x2 = 1.5: 3 * 2.5 + 1.5 = 9.
  expect_equal(res$value, c(8, 9), tolerance = 1e-12)
  expect_equal(res$solution[, 1], c(0, 4, 0, 5), tolerance = 1e-12)
  expect_equal(res$solution[, 2], c(2.5, 1.5, 0, 0), tolerance = 1e-12)
  expect_equal(res$group, c(1L, 2L))
  # Minimising, and a redundant equality row.
  res <- cpp_honest_lp(rbind(A, A[1, ] + A[2, ]), c(4, 1, 5), cbind(c(1, 2, 0, 0)), FALSE,
                       FALSE, 1e-11)
  expect_equal(res$value, 0, tolerance = 1e-12)
  # x1 + x2 = -1 has no non-negative solution.
  res <- cpp_honest_lp(matrix(c(1, 1), 1), -1, cbind(c(1, 1)), TRUE, FALSE, 1e-11)
  expect_equal(res$status, 1L)
})

test_that("listed vertices and the simplex give the same sets where both run", {
  cases <- expand.grid(n_post = c(1, 2, 4, 6), n_pre = c(2, 4), seed = 1:2)
  gaps <- numeric()
  for (i in seq_len(nrow(cases))) {
    cs <- cases[i, ]
    es <- random_es(cs$n_pre, cs$n_post, 100 * cs$n_post + 10 * cs$n_pre + cs$seed)
    l <- if (cs$seed == 1) c(1, rep(0, cs$n_post - 1)) else rep(1 / cs$n_post, cs$n_post)
    for (hybrid in c(TRUE, FALSE)) {
      for (Mbar in c(0, 0.7)) {
        v <- rm_set(es, cs$n_pre, l, Mbar, hybrid, "vertices")
        p <- rm_set(es, cs$n_pre, l, Mbar, hybrid, "lp")
        expect_true(is.finite(v$conf.low) && is.finite(v$conf.high))
        gaps <- c(gaps, abs(v$conf.low - p$conf.low), abs(v$conf.high - p$conf.high))
      }
    }
  }
  # 64 sets, each end the same to 1e-8 (in fact identical: the tests agree
  # on every grid value).
  expect_length(gaps, 128)
  expect_lt(max(gaps), 1e-8)
  # And the published HonestDiD sets of the other test file, by the simplex.
  fx <- readRDS(test_path("fixtures", "honest.rds"))
  ref <- fx$mpdta_rm[1, ]
  l <- if (ref$target == "first") c(1, 0, 0, 0) else rep(0.25, 4)
  set.seed(0)
  Z <- matrix(stats::rnorm(1000 * 8), 1000, 8, byrow = TRUE)
  for (solver in c("vertices", "lp")) {
    acc <- rm_acceptance(fx$mpdta$betahat, fx$mpdta$sigma, 3, l, ref$Mbar, 0.05,
                         ref$method == "C-LF", Z, solver = solver)
    got <- grid_interval(acc, ref$grid_lb, ref$grid_ub, 1000, FALSE)
    expect_lt(abs(got$conf.low - ref$lb) + abs(got$conf.high - ref$ub), 1e-10)
  }
})

test_that("24 post-periods and 8 pre-periods give finite, sensible sets for every restriction", {
  skip_on_cran()
  n_pre <- 8
  n_post <- 24
  times <- c(-n_pre:-1, 1:n_post)
  sigma <- 0.0004 * (0.5^abs(outer(times, times, "-")) + 0.5 * diag(n_pre + n_post))
  beta <- withr::with_seed(7, c(0.004 * (-n_pre:-1) + stats::rnorm(n_pre, 0, 0.01),
                                0.1 + 0.004 * (1:n_post) + stats::rnorm(n_post, 0, 0.01)))
  # On 8aee15d: "would enumerate 32,247,603,683,100 bases for 24 post-periods".
  for (target in c("first", "average")) {
    for (inference in c("hybrid", "conditional")) {
      set.seed(1)
      hs <- honest_sensitivity(beta, sigma = sigma, n_pre = n_pre, M = c(0, 0.5, 1),
                               target = target, inference = inference, n_draws = 300,
                               grid_points = 200, breakdown = FALSE)
      td <- tidy(hs)
      expect_true(all(is.finite(c(td$conf.low, td$conf.high))))
      expect_false(any(td$open))
      # Every set holds the estimate, and grows with Mbar.
      expect_true(all(td$conf.low < td$estimate & td$estimate < td$conf.high))
      expect_true(all(diff(td$conf.low[-1]) < 0 & diff(td$conf.high[-1]) > 0))
      # Mbar = 0 is the conventional interval, up to the hybrid's size
      # alpha - kappa and the grid step.
      width <- td$conf.high[1] - td$conf.low[1]
      expect_lt(abs(td$conf.low[2] - td$conf.low[1]), 0.02 * width)
      expect_lt(abs(td$conf.high[2] - td$conf.high[1]), 0.02 * width)
    }
  }
  sm <- honest_sensitivity(beta, sigma = sigma, n_pre = n_pre, type = "smoothness",
                           M = c(0, 0.001, 0.002), target = "average", breakdown = FALSE)
  td <- tidy(sm)
  expect_true(all(is.finite(c(td$conf.low, td$conf.high))))
  expect_true(all(diff(td$conf.high[-1] - td$conf.low[-1]) > 0))
  # M = 0 extrapolates a linear trend over 24 periods: wider than the
  # conventional interval, yet finite.
  expect_gt(td$conf.high[2] - td$conf.low[2], td$conf.high[1] - td$conf.low[1])
})
