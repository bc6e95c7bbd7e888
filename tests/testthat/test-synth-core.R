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
  one <- cpp_synth_placebo(Y, 20L, 1e-12, 100000L, 1L, 0.1, NULL)
  # A negative serial_seconds: two threads whatever the loop's length.
  two <- cpp_synth_placebo(Y, 20L, 1e-12, 100000L, 2L, -1, NULL)
  expect_identical(two$threads, 2L)
  expect_identical(one$gaps, two$gaps)
  expect_identical(one$converged, two$converged)
  expect_true(all(one$converged == 1L))
  # Column k is unit k fitted from the others on the first 20 periods.
  r <- cpp_simplex_ls(t(Y[-7, 1:20]), Y[7, 1:20], 0, numeric(0), 1e-12, 100000L)
  expect_equal(one$gaps[, 7], Y[7, ] - drop(crossprod(Y[-7, ], r$w)), tolerance = 1e-12)
  # Progress is reported after each parallel region, on the calling thread,
  # up to the number of problems; a loop this short is one region or a few.
  done <- integer()
  cpp_synth_placebo(Y, 20L, 1e-12, 100000L, 2L, -1, function(k) done <<- c(done, k))
  expect_identical(done[length(done)], 60L)
  expect_true(all(diff(done) > 0))
  expect_lte(length(done), 59L)
  # A loop shorter than serial_seconds stays on one thread.
  expect_identical(cpp_synth_placebo(Y, 20L, 1e-12, 100000L, 2L, 60, NULL)$threads, 1L)
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

test_that("the nested V search flags a stop at its evaluation cap", {
  adh <- list(lnincome = 1980:1988, retprice = 1980:1988, age15to24 = 1980:1988,
              beer = 1984:1988, packspercapita = 1975, packspercapita = 1980,
              packspercapita = 1988)
  # Ten evaluations per Nelder-Mead run: each of the three starts stops there.
  w <- expect_warning(capped <- synth(f99, prop99, predictors = adh, max_iter = 10),
                      class = "mktcausal_warning_not_converged")
  expect_match(conditionMessage(w), "max_iter")
  expect_false(glance(capped)$v_converged)
  expect_false(glance(capped)$converged)
  expect_identical(capped$v_search$max_eval, 10L)
  expect_identical(capped$v_search$capped, 3L)
  out <- paste(capture.output(print(capped)), collapse = "\n")
  expect_match(out, "not converged")
  expect_match(out, "stopped at its cap of 10 evaluations a run; raise max_iter")
  # Three starts, two rounds each, at most 10 evaluations a round (a shrink
  # step may finish past the cap), plus the first evaluation of each start.
  expect_lte(capped$fits[[1]]$convergence$iterations, 3 * (1 + 2 * (10 + 7)))
  # The default cap (200 per predictor) lets every start converge.
  fit <- expect_no_warning(synth(f99, prop99, predictors = adh))
  expect_true(glance(fit)$v_converged)
  expect_identical(fit$v_search$max_eval, 1400L)
  expect_identical(fit$v_search$capped, 0L)
  # Outcome-only fits have no V search.
  expect_true(is.na(glance(synth(f99, prop99))$v_converged))
  # Placebos in space refit the V search: those that stop at the cap are
  # counted in the inference label and flagged in the placebo table.
  pl <- suppressWarnings(synth(f99, prop99, predictors = adh, inference = "placebo",
                               max_iter = 10))
  flag <- tidy(pl, "placebo")$converged
  expect_false(flag[1])
  expect_match(pl$inference, sprintf("the V search of %d placebos stopped at max_iter",
                                     sum(!flag[-1])))
  expect_gt(sum(!flag[-1]), 30L)
  ok <- synth(f99, prop99, predictors = adh, inference = "placebo")
  expect_identical(tidy(ok, "placebo")$converged[1], TRUE)
})

test_that("an interrupt stops the compiled synth loops within a second", {
  skip_on_cran()
  skip_if_not_installed("processx")
  panel <- paste(
    "set.seed(1); J <- 2000; Tn <- 80;",
    "Y <- matrix(rnorm(J * Tn), J) + outer(rnorm(J), cumsum(rnorm(Tn)));",
    "d <- data.frame(unit = rep(seq_len(J), Tn), time = rep(seq_len(Tn), each = J),",
    "y = as.vector(Y), d = as.integer(rep(seq_len(J), Tn) == 1 & rep(seq_len(Tn), each = J) > 60))")
  # Placebos in space of the outcome-only fit: one compiled call on two threads.
  took <- seconds_to_stop("synth(y ~ d | unit + time, d, inference = 'placebo')",
                          setup = paste(panel, "; mkt_threads(2)"))
  expect_lt(took, 1)
  # The nested V search: 40 predictors over 1,999 donors, a generous cap.
  took <- seconds_to_stop(
    "synth(y ~ d | unit + time, d, predictors = setNames(as.list(1:40), rep('y', 40)), max_iter = 1e6)",
    setup = panel)
  expect_lt(took, 1)
  # One large weight problem (about 20 s): the solver polls between its steps.
  took <- seconds_to_stop(
    "mktcausal:::cpp_simplex_ls(X, drop(X %*% rep(1 / 8000, 8000)), 0, numeric(0), 1e-12, 100000L)",
    setup = "set.seed(1); X <- matrix(rnorm(400 * 8000), 400)")
  expect_lt(took, 1)
})
