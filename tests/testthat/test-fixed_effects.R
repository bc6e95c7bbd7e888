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

test_that("the grid kernel equals the dummy-variable residuals, weighted or not, either way round", {
  set.seed(11)
  for (shape in list(c(30, 8), c(8, 30))) {
    d <- expand.grid(u = seq_len(shape[1]), t = seq_len(shape[2]))
    d$x <- rnorm(nrow(d))
    d$z <- rexp(nrow(d)) * 1e4
    d$w <- runif(nrow(d), 0.5, 2)
    d <- d[-sample(nrow(d), round(0.2 * nrow(d))), ]
    p <- mkt_panel(x ~ 0 + z | u + t, d, weights = "w")
    # The kernel returns the cells period by period, units within periods.
    dd <- d[order(d$t, d$u), ]
    M <- stats::model.matrix(~ factor(u) + factor(t), dd)
    fg <- fe_grid(p, list(x = p$Y, z = p$X$z))
    ref <- stats::lm.fit(M, cbind(dd$x, dd$z))$residuals
    expect_lt(max(abs(fg$x - ref) / c(1, 1e4)[col(ref)]), 1e-10)
    expect_identical(fg$unit, dd$u)
    expect_identical(fg$time, dd$t)
    fw <- fe_grid(p, list(x = p$Y, z = p$X$z), weights = p$weights)
    refw <- (cbind(dd$x, dd$z) - stats::lm.wfit(M, cbind(dd$x, dd$z), dd$w)$fitted.values) *
      sqrt(dd$w)
    expect_lt(max(abs(fw$x - refw) / c(1, 1e4)[col(refw)]), 1e-10)
    expect_equal(c(fg$n_units, fg$n_periods), shape)
  }
})

test_that("the grid kernel is exact in one iteration on a balanced panel and handles disconnected pieces", {
  d <- expand.grid(u = 1:50, t = 1:7)
  d$x <- sin(seq_len(nrow(d)))
  p <- mkt_panel(x ~ 0 | u + t, d)
  fg <- fe_grid(p, list(x = p$Y))
  expect_equal(fg$iterations, 1L)
  ref <- stats::lm.fit(stats::model.matrix(~ factor(u) + factor(t), d), d$x)$residuals
  expect_lt(max(abs(fg$x[, 1] - ref)), 1e-12)
  two <- rbind(expand.grid(u = 1:5, t = 1:4), expand.grid(u = 6:10, t = 5:8))
  two$x <- cos(seq_len(nrow(two)))
  p <- mkt_panel(x ~ 0 | u + t, two)
  fg <- fe_grid(p, list(x = p$Y))
  dd <- two[order(two$t, two$u), ]
  ref <- stats::lm.fit(stats::model.matrix(~ factor(u) + factor(t), dd), dd$x)$residuals
  expect_lt(max(abs(fg$x[, 1] - ref)), 1e-12)
})

test_that("regressions from the Gram matrices equal ols_robust()'s CR1 and HC1 fits", {
  set.seed(5)
  d <- expand.grid(u = 1:40, t = 1:6)
  d <- d[-sample(nrow(d), 30), ]
  d$a <- rnorm(nrow(d))
  d$b <- rnorm(nrow(d)) + d$a
  d$y <- d$a - 2 * d$b + d$u / 10 + rnorm(nrow(d))
  d$region <- d$u %% 7
  p <- mkt_panel(y ~ 0 + a + b | u + t, d, cluster = "region")
  for (clustered in c(TRUE, FALSE)) {
    fg <- fe_grid(p, list(y = p$Y, a = p$X$a, b = p$X$b),
                  cluster = if (clustered) p$cluster)
    mom <- fe_moments(fg, clustered)
    fit <- fe_ols(mom, "y", c("a", "b"), fe_grid_absorbed(fg, clustered))
    cl <- if (clustered) fg$cluster
    n_abs <- fe_absorbed(list(fg$unit, fg$time), cl)
    ref <- ols_robust(fg$x[, c("a", "b")], fg$x[, "y"], cluster = cl,
                      se_type = if (clustered) "CR1" else "HC1", n_absorbed = n_abs)
    expect_equal(fit$coefficients, ref$coefficients, tolerance = 1e-12)
    expect_equal(fit$vcov, ref$vcov, tolerance = 1e-10)
    expect_equal(fit$df, ref$df)
  }
  # The per-cluster cross-products are sums of the rows' outer products.
  fg <- fe_grid(p, list(y = p$Y, a = p$X$a), cluster = p$cluster)
  cg <- cpp_cluster_gram(fg$x, fg$cluster, max(fg$cluster), 1L)
  G <- max(fg$cluster)
  ref <- rowsum(fg$x[, 1] * fg$x[, 2], fg$cluster)
  expect_equal(cg$gram[G + sort(unique(fg$cluster)), 1], ref[, 1], ignore_attr = TRUE)
  expect_equal(sum(cg$count), nrow(fg$x))
})

test_that("results do not depend on the number of threads", {
  set.seed(3)
  d <- expand.grid(u = 1:60, t = 1:12)
  d <- d[-sample(nrow(d), 100), ]
  x <- cbind(rnorm(nrow(d)), rnorm(nrow(d)), rnorm(nrow(d)))
  old <- mkt_threads()
  on.exit(mkt_threads(old), add = TRUE)
  mkt_threads(1)
  one <- demean_fe(x, list(d$u, d$t))
  mkt_threads(2)
  two <- demean_fe(x, list(d$u, d$t))
  expect_identical(one, two)
  # Columns of more than 2^20 rows run on the threads.
  n <- 2^20 + 5
  fe <- list(sample(5000, n, TRUE), sample(300, n, TRUE))
  big <- matrix(rnorm(2 * n), n)
  mkt_threads(1)
  one <- demean_fe(big, fe, tol = 1e-10)
  mkt_threads(2)
  two <- demean_fe(big, fe, tol = 1e-10)
  expect_identical(one, two)
  cg <- list(cpp_cluster_gram(x, d$u, 60L, 1L), cpp_cluster_gram(x, d$u, 60L, 2L))
  expect_identical(cg[[1]], cg[[2]])
})

test_that("the grid kernel gives the same bits on one and two threads above its threshold", {
  skip_on_cran()
  # 4,200 x 1,000 cells, 4 columns: just over the 2^24 cell-columns from
  # which the grid kernel uses threads; 10% of cells missing.
  set.seed(5)
  N <- 4200
  Tn <- 1000
  obs <- matrix(stats::runif(N * Tn) > 0.1, N, Tn)
  cols <- lapply(1:4, function(k) matrix(stats::rnorm(N * Tn), N, Tn))
  one <- cpp_demean_grid(obs, cols, numeric(0), integer(0), TRUE, 1e-12, 10000L, 1L)
  two <- cpp_demean_grid(obs, cols, numeric(0), integer(0), TRUE, 1e-12, 10000L, 2L)
  expect_identical(one, two)
})

test_that("Inf and NaN in every role of the panel estimators: a classed error or a finite fit", {
  d <- hard_panel()
  calls <- list(
    ife = function(dd) ife(y ~ dose + x | unit + time, dd, r = 1),
    dml = function(dd) dml(y ~ dose + x | unit + time, dd, n_draws = 1),
    iv_fe = function(dd) iv_fe(y ~ x | unit + time | dose ~ z, dd, weights = "w"),
    exposure_did = function(dd) exposure_did(y ~ expo + x | unit + time, dd, post = 5,
                                             weights = "w"),
    dose_response = function(dd) dose_response(y ~ dose + x | unit + time, dd, weights = "w")
  )
  # The columns each call reads (outcome, treatment or dose, instrument,
  # covariate, weights): an infinite value there is refused.
  used <- list(ife = c("y", "dose", "x"), dml = c("y", "dose", "x"),
               iv_fe = c("y", "dose", "x", "z", "w"), exposure_did = c("y", "expo", "x", "w"),
               dose_response = c("y", "dose", "x", "w"))
  quiet <- function(expr) {
    withCallingHandlers(expr, mktcausal_warning = function(w) invokeRestart("muffleWarning"),
                        message = function(m) invokeRestart("muffleMessage"))
  }
  for (nm in names(calls)) {
    for (col in c("y", "dose", "x", "z", "w", "expo")) {
      for (bad in c(Inf, -Inf, NaN)) {
        dd <- d
        dd[[col]][c(5, 77)] <- bad
        res <- tryCatch(quiet(calls[[nm]](dd)), mktcausal_error = function(e) e)
        label <- paste(nm, col, bad)
        if (is.infinite(bad) && col %in% used[[nm]]) {
          expect_true(inherits(res, c("mktcausal_error_non_finite", "mktcausal_error_bad_weights")),
                      label = label)
          expect_match(conditionMessage(res), col, fixed = TRUE)
        } else if (!inherits(res, "mktcausal_error")) {
          td <- tidy(res)
          expect_true(all(is.finite(c(td$estimate, td$std.error))), label = label)
        }
      }
    }
  }
})

test_that("an interrupt stops the alternating projections within a second, and stops them", {
  skip_on_cran()
  skip_if_not_installed("processx")
  # Before, the kernel asked R every 64 sweeps and then returned its
  # unfinished columns as if done: R went on with them.
  took <- seconds_to_stop(
    "r <- mktcausal:::demean_fe(M, fe, tol = 1e-300, max_iter = 1e5); Sys.sleep(30)",
    setup = paste("set.seed(1); n <- 1e6; M <- matrix(rnorm(2 * n), n);",
                  "fe <- list(sample(5e4, n, TRUE), sample(5e4, n, TRUE), sample(100, n, TRUE))"))
  expect_lt(took, 1)
})
