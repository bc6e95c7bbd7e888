gs <- readRDS(test_path("fixtures", "gsynth.rds"))
simdata <- gsynth_simdata
turnout <- gsynth_turnout
f_sim <- Y ~ D + X1 + X2 | id + time
f_turn <- turnout ~ policy_edr + policy_mail_in + policy_motor | abb + year

test_that("ATT and beta equal gsynth's at r = 2 (simdata and turnout, both algorithms)", {
  tight <- list(r = 2, tol = 1e-12, max_iter = 1e5)
  cases <- list(
    list(f_sim, simdata, FALSE, gs$simdata_gsynth),
    list(f_sim, simdata, TRUE, gs$simdata_ife),
    list(f_turn, turnout, FALSE, gs$turnout_gsynth),
    list(f_turn, turnout, TRUE, gs$turnout_ife))
  for (cs in cases) {
    fit <- do.call(counterfactual, c(list(cs[[1]], cs[[2]], em = cs[[3]]), tight))
    expect_equal(unname(coef(fit)[1]), cs[[4]]$att, tolerance = 1e-6)
    expect_equal(unname(coef(fit)[-1]), cs[[4]]$beta, tolerance = 1e-6)
  }
  # Xu (2017): 5.5435 on simdata (gsynth's looser default tolerance) and
  # 4.8958 on turnout.
  fit <- counterfactual(f_sim, simdata, r = 2)
  expect_equal(coef(fit)[["ATT"]], 5.5433, tolerance = 1e-4)
  fit <- counterfactual(f_turn, turnout, r = 2)
  expect_equal(coef(fit)[["ATT"]], 4.8958, tolerance = 1e-4)
})

test_that("cross-validation picks r = 2 on simdata, the same under any seed, and the SE covers the truth", {
  set.seed(1)
  a <- counterfactual(f_sim, simdata, inference = "bootstrap", n_draws = 100)
  set.seed(12345)
  b <- counterfactual(f_sim, simdata, inference = "bootstrap", n_draws = 20)
  expect_equal(a$r, 2L)
  expect_identical(tidy(a, "cv"), tidy(b, "cv"))
  cv <- tidy(a, "cv")
  expect_equal(cv$r, 0:5)
  expect_equal(cv$r[which.min(cv$mspe)], 2L)
  truth <- mean(simdata$eff[simdata$D == 1])
  expect_equal(truth, 5.462032, tolerance = 1e-6)
  g <- att_row(a)
  expect_lt(abs(g$estimate - truth), g$std.error)
  expect_true(g$conf.low < truth && truth < g$conf.high)
})

test_that("homogeneous, dynamic and staggered effects are recovered where two-way FE fails", {
  set.seed(3)
  for (spec in list(list(dynamic = 0, staggered = FALSE), list(dynamic = 0.5, staggered = FALSE),
                    list(dynamic = 0.3, staggered = TRUE))) {
    d <- sim_factor_panel(N = 50, Tn = 24, n_treated = 10, T0 = 16, effect = 3,
                          dynamic = spec$dynamic, staggered = spec$staggered, seed = 21)
    truth <- mean(d$tau[d$d == 1])
    for (em in c(FALSE, TRUE)) {
      fit <- counterfactual(y ~ d + x | unit + time, d, r = 2, em = em,
                            inference = "bootstrap", n_draws = 40)
      g <- att_row(fit)
      expect_lt(abs(g$estimate - truth), 2 * g$std.error)
      ev <- tidy(fit, "event")
      post <- ev[ev$event_time >= 0, ]
      true_ev <- tapply(d$tau[d$d == 1], (d$time - ave(ifelse(d$d == 1, d$time, Inf), d$unit,
                                                            FUN = min))[d$d == 1], mean)
      expect_equal(post$event_time, as.integer(names(true_ev)))
      expect_lt(max(abs(post$estimate - true_ev)), 1.5)
    }
    fe <- counterfactual(y ~ d + x | unit + time, d, method = "fe", inference = "jackknife")
    expect_gt(abs(att_row(fe)$estimate - truth), 2 * att_row(fe)$std.error)
  }
})

test_that("the fe method equals two-way FE imputation from lm() on untreated cells", {
  d <- sim_factor_panel(N = 20, Tn = 10, n_treated = 4, T0 = 6, staggered = TRUE, seed = 5)
  fit <- counterfactual(y ~ d + x | unit + time, d, method = "fe", tol = 1e-13, max_iter = 1e5)
  m <- stats::lm(y ~ x + factor(unit) + factor(time), d[d$d == 0, ])
  tr <- d[d$d == 1, ]
  ref <- mean(tr$y - stats::predict(m, tr))
  expect_equal(coef(fit)[["ATT"]], ref, tolerance = 1e-8)
  expect_equal(coef(fit)[["x"]], unname(stats::coef(m)["x"]), tolerance = 1e-8)
})

test_that("matrix completion recovers a low-rank counterfactual and chooses lambda by CV", {
  d <- sim_factor_panel(N = 50, Tn = 24, n_treated = 10, T0 = 16, effect = 3, beta = 0,
                        sd = 0.3, seed = 8)
  fit <- counterfactual(y ~ d | unit + time, d, method = "mc")
  truth <- mean(d$tau[d$d == 1])
  # Shrinkage leaves some bias, far less than parallel trends' bias.
  expect_lt(abs(coef(fit)[["ATT"]] - truth), 1)
  cv <- tidy(fit, "cv")
  expect_equal(nrow(cv), 10L)
  expect_equal(fit$lambda, cv$lambda[which.min(cv$mspe)])
  twfe <- counterfactual(y ~ d | unit + time, d, method = "fe")
  expect_lt(3 * abs(coef(fit)[["ATT"]] - truth), abs(coef(twfe)[["ATT"]] - truth))
})

test_that("bootstrap intervals cover the truth at about their nominal rate", {
  skip_on_cran()
  hits <- vapply(1:30, function(s) {
    d <- sim_factor_panel(N = 30, Tn = 15, n_treated = 6, T0 = 10, effect = 2, seed = 100 + s)
    set.seed(s)
    g <- att_row(counterfactual(y ~ d + x | unit + time, d, r = 2, inference = "bootstrap",
                                n_draws = 49))
    g$conf.low <= 2 && 2 <= g$conf.high
  }, logical(1))
  expect_gte(mean(hits), 0.8)
})

test_that("bad input: r too large, too few controls, no pre-periods, non-convergence, collinear", {
  d <- sim_factor_panel(N = 20, Tn = 10, n_treated = 4, T0 = 4, seed = 2)
  expect_error(counterfactual(y ~ d + x | unit + time, d, r = 4),
               class = "mktcausal_error_r_too_large")
  few <- d[d$unit <= 5, ]
  expect_error(counterfactual(y ~ d + x | unit + time, few, r = 0),
               class = "mktcausal_error_too_few_controls")
  nopre <- d
  nopre$d[nopre$unit == 1] <- 1
  expect_error(counterfactual(y ~ d + x | unit + time, nopre, r = 1),
               "no observed pre-treatment period", class = "mktcausal_error_too_few_pre_periods")
  expect_warning(counterfactual(y ~ d + x | unit + time, d, r = 2, em = TRUE, max_iter = 2),
                 "after 2 iterations", class = "mktcausal_warning_not_converged")
  d$x2 <- 3 * d$x
  expect_error(counterfactual(y ~ d + x + x2 | unit + time, d, r = 1),
               class = "mktcausal_error_collinear")
  cont <- d
  cont$d <- cont$d * 0.5
  expect_error(counterfactual(y ~ d | unit + time, cont), class = "mktcausal_error_non_binary_treatment")
})

test_that("unbalanced panels and time-invariant covariates are handled, not refused", {
  d <- sim_factor_panel(N = 40, Tn = 20, n_treated = 8, T0 = 14, effect = 3, seed = 9)
  set.seed(4)
  holes <- d[-sample(which(d$d == 0), 60), ]
  d$region <- d$unit %% 4
  for (em in c(FALSE, TRUE)) {
    fit <- counterfactual(y ~ d + x | unit + time, holes, r = 2, em = em,
                          inference = "jackknife")
    expect_lt(abs(att_row(fit)$estimate - 3), 2 * att_row(fit)$std.error)
  }
  expect_message(fit <- counterfactual(y ~ d + x + region | unit + time, d, r = 2), "absorbed")
  expect_equal(names(coef(fit)), c("ATT", "x"))
})


test_that("placebo periods: near zero under the factor model, not under two-way FE; TOST p-values", {
  d <- sim_factor_panel(N = 50, Tn = 24, n_treated = 10, T0 = 16, seed = 21)
  fit <- counterfactual(y ~ d + x | unit + time, d, r = 2, placebo = 3,
                        inference = "jackknife", equivalence_bound = 1)
  pl <- tidy(fit, "placebo")
  expect_equal(pl$n_cells, 30L)
  expect_gt(pl$p.value, 0.05)
  eq <- tidy(fit, "equivalence")
  expect_equal(eq$event_time, -3:-1)
  ev <- tidy(fit, "event")
  ev <- ev[match(eq$event_time, ev$event_time), ]
  p_ref <- pmax(stats::pnorm((ev$estimate + 1) / ev$std.error, lower.tail = FALSE),
                stats::pnorm((ev$estimate - 1) / ev$std.error))
  expect_equal(eq$p.value, p_ref)
  expect_lt(glance(fit)$equivalence_p.value, 0.05)
  expect_equal(glance(fit)$equivalence_p.value, max(eq$p.value))
  fe <- counterfactual(y ~ d + x | unit + time, d, method = "fe", placebo = 3,
                       inference = "jackknife")
  expect_lt(tidy(fe, "placebo")$p.value, 0.05)
  expect_error(counterfactual(y ~ d + x | unit + time, d, r = 2, placebo = 16),
               class = "mktcausal_error_too_few_pre_periods")
})

test_that("Xu's parametric bootstrap: reproducible, covers the truth, refused with EM", {
  d <- sim_factor_panel(N = 40, Tn = 20, n_treated = 6, T0 = 14, effect = 3, seed = 31)
  set.seed(5)
  a <- counterfactual(y ~ d + x | unit + time, d, r = 2, inference = "parametric",
                      n_draws = 60)
  set.seed(5)
  b <- counterfactual(y ~ d + x | unit + time, d, r = 2, inference = "parametric",
                      n_draws = 60)
  expect_identical(tidy(a), tidy(b))
  g <- att_row(a)
  expect_equal(a$options$inference, "parametric")
  expect_lt(abs(g$estimate - 3), 2 * g$std.error)
  expect_true(g$conf.low < 3 && 3 < g$conf.high)
  # The replicates estimate data with no effect: centred near zero.
  expect_lt(abs(mean(a$replicates$att)), g$std.error)
  expect_error(counterfactual(y ~ d + x | unit + time, d, r = 2, em = TRUE,
                              inference = "parametric"),
               class = "mktcausal_error_bad_argument")
})

test_that("r can be chosen by a Bai and Ng criterion, with the table and the rule reported", {
  fit <- counterfactual(f_sim, simdata, criterion = "IC_p2")
  ic <- tidy(fit, "ic")
  expect_equal(ic$r, 0:5)
  expect_equal(fit$r, ic$r[which.min(ic$IC_p2)])
  expect_equal(glance(fit)$r_rule, "IC_p2")
  expect_equal(nrow(tidy(fit, "cv")), 0L)
  cv <- counterfactual(f_sim, simdata)
  expect_equal(glance(cv)$r_rule, "cross-validation (smallest MSPE)")
  expect_equal(glance(counterfactual(f_sim, simdata, r = 1))$r_rule, "given")
})

test_that("replicates run in C++: a jackknife replicate is the refit without its unit, and draws do not depend on chunks", {
  # Leave-one-out replicate b must equal counterfactual() on the data
  # without unit b (replicates stop at a relative change of 1e-6).
  d <- sim_factor_panel(N = 30, Tn = 16, n_treated = 6, T0 = 11, effect = 3, seed = 41)
  for (em in c(FALSE, TRUE)) {
    jk <- counterfactual(y ~ d + x | unit + time, d, r = 2, em = em, inference = "jackknife")
    for (b in c(2L, 20L)) {
      refit <- counterfactual(y ~ d + x | unit + time, d[d$unit != b, ], r = 2, em = em)
      expect_equal(unname(jk$replicates$att[b, "ATT"]), coef(refit)[["ATT"]], tolerance = 1e-4)
      ev <- tidy(refit, "event")
      expect_equal(unname(jk$replicates$event[b, as.character(ev$event_time)]), ev$estimate,
                   tolerance = 1e-4)
    }
  }
  # Replicate b draws from its own stream: with the same seed the first 60
  # of 100 replicates are the 60 of a shorter run, although chunks of 50
  # cut the two runs differently.
  for (inference in c("bootstrap", "parametric")) {
    set.seed(7)
    short <- counterfactual(y ~ d + x | unit + time, d, r = 2, inference = inference,
                            n_draws = 60)
    set.seed(7)
    long <- counterfactual(y ~ d + x | unit + time, d, r = 2, inference = inference,
                           n_draws = 100)
    if (inference == "bootstrap") {
      expect_identical(short$replicates$att, long$replicates$att[1:60, , drop = FALSE])
      expect_identical(short$replicates$unit, long$replicates$unit[1:60, , drop = FALSE])
    } else {
      # The parametric step 2 draws from the pool of all step-1 errors,
      # which grows with n_draws: only the spread is comparable.
      expect_lt(abs(log(sd(short$replicates$att) / sd(long$replicates$att))), log(1.5))
    }
  }
})

test_that("a constant outcome gives a classed error rather than a misleading one", {
  d <- sim_factor_panel(N = 20, Tn = 12, n_treated = 4, T0 = 8, seed = 3)
  d$y <- 4
  expect_error(counterfactual(y ~ d | unit + time, d, r = 1), "y",
               class = "mktcausal_error_no_variation")
  expect_error(counterfactual(y ~ d | unit + time, d, method = "mc"),
               class = "mktcausal_error_no_variation")
})

test_that("outcomes near 1e300 and 1e-300 give the scaled answer", {
  d <- sim_factor_panel(N = 30, Tn = 16, n_treated = 6, T0 = 11, effect = 3, seed = 41)
  for (inference in c("bootstrap", "jackknife", "parametric")) {
    fit <- function(y, data) {
      set.seed(5)
      counterfactual(y ~ d + x | unit + time, data, r = 2, inference = inference,
                     n_draws = 20, placebo = 1)
    }
    expect_outcome_scaled(fit, d)
    expect_outcome_scaled(fit, d, "event")
  }
  expect_outcome_scaled(function(y, data) {
    counterfactual(y ~ d + x | unit + time, data, method = "mc", n_lambda = 3)
  }, d, "event")
  big <- d
  big$y <- d$y * 1e300
  a <- counterfactual(y ~ d + x | unit + time, d, method = "mc", n_lambda = 3)
  b <- counterfactual(y ~ d + x | unit + time, big, method = "mc", n_lambda = 3)
  expect_equal(b$lambda / 1e300, a$lambda, tolerance = 1e-10)
})

test_that("replicates do not depend on the chunk size or the number of threads", {
  d <- sim_factor_panel(N = 30, Tn = 16, n_treated = 6, T0 = 11, effect = 3, seed = 41)
  old <- mkt_threads()
  on.exit(mkt_threads(old), add = TRUE)
  for (inference in c("bootstrap", "parametric")) {
    fits <- list()
    for (cs in c(1, 50, 1000)) {
      for (th in 1:2) {
        mkt_threads(th)
        set.seed(8)
        fits[[paste(cs, th)]] <- counterfactual(y ~ d + x | unit + time, d, r = 2,
                                                inference = inference, n_draws = 40,
                                                chunk_size = cs)
      }
    }
    for (f in fits[-1]) {
      expect_identical(f$replicates, fits[[1]]$replicates)
      expect_identical(tidy(f, "event"), tidy(fits[[1]], "event"))
    }
  }
  mkt_threads(1)
  one <- counterfactual(y ~ d + x | unit + time, d, r = 2, em = TRUE, inference = "jackknife")
  mkt_threads(2)
  two <- counterfactual(y ~ d + x | unit + time, d, r = 2, em = TRUE, inference = "jackknife",
                        chunk_size = 7)
  expect_identical(one$replicates, two$replicates)
})

test_that("an interrupt stops the bootstrap and the parametric bootstrap within a second", {
  skip_on_cran()
  skip_if_not_installed("processx")
  setup <- paste("d <- expand.grid(unit = 1:60, time = 1:20); set.seed(1);",
                 "lf <- rnorm(60)[d$unit] * rnorm(20)[d$time]; d$x <- rnorm(nrow(d));",
                 "d$d <- as.integer(d$unit <= 6 & d$time > 14); d$y <- d$x + lf + rnorm(nrow(d))")
  for (inference in c("bootstrap", "parametric")) {
    took <- seconds_to_stop(
      sprintf("counterfactual(y ~ d + x | unit + time, d, r = 1, inference = '%s', n_draws = 1e6)",
              inference), setup = setup)
    expect_lt(took, 1)
  }
})

test_that("replicates whose fit fails are reported, not silently dropped", {
  d <- sim_factor_panel(N = 30, Tn = 16, n_treated = 6, T0 = 11, effect = 3, seed = 41)
  # A covariate that moves for one never-treated cell only: a resample
  # without that unit has it all zero, and the fit refuses it as collinear.
  d$rare <- as.numeric(d$unit == 20 & d$time == 3)
  set.seed(4)
  expect_warning(fit <- counterfactual(y ~ d + x + rare | unit + time, d, r = 1,
                                       inference = "bootstrap", n_draws = 40),
                 class = "mktcausal_warning_bootstrap_failed")
  expect_true(is.finite(tidy(fit)$std.error[1]))
  expect_gt(sum(!is.finite(fit$replicates$att)), 0)
})
