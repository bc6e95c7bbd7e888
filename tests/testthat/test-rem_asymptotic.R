test_that("the limit law reproduces the research note's numbers (section 7.2)", {
  a <- stats::qchisq(0.01, 4)
  var_l <- stats::integrate(function(x) x^2 * mktcausal:::rem_l_density(x, 4, a),
                            -sqrt(a), sqrt(a))$value
  expect_equal(var_l, 0.048899, tolerance = 1e-4)
  cases <- data.frame(r2 = c(0.2, 0.5, 0.8), ratio = c(0.8098, 0.5244, 0.2391),
                      q = c(1.762, 1.419, 0.958), size = c(0.029, 0.0068, 0.0001))
  for (i in seq_len(nrow(cases))) {
    r2 <- cases$r2[i]
    expect_equal(1 - (1 - mktcausal:::rem_va(a, 4)) * r2, cases$ratio[i], tolerance = 2e-4)
    expect_equal(mktcausal:::rem_quantile(0.025, 4, a, r2), cases$q[i], tolerance = 0.01 / cases$q[i])
    size <- 2 * (1 - mktcausal:::rem_cdf(stats::qnorm(0.975), 4, a, r2))
    expect_lt(abs(size - cases$size[i]), 0.002)
  }
  expect_equal(mktcausal:::rem_quantile(0.025, 4, a, 0.5) / stats::qnorm(0.975), 0.724,
               tolerance = 0.002)
  expect_equal(mktcausal:::rem_quantile(0.025, 4, Inf, 0.5), stats::qnorm(0.975))
})

test_that("rem_asymptotic gives a shorter interval than complete randomization", {
  d <- sim_clusters(200, 2, seed = 20)
  set.seed(20)
  des <- rerandomize(d, ~ x1 + x2, n_treated = 100, accept = 0.01, id = "id")
  y <- 3 * d$x1 + d$x2 + rnorm(200) + 1 * des$treated
  d$treated <- des$treated
  d$y <- y
  fit <- rem_asymptotic(y ~ treated, d, design = des)
  expect_s3_class(fit, c("mkt_rem", "mkt_fit"))
  out <- tidy(fit)
  expect_equal(out$term, c("rerandomization", "complete_randomization"))
  w <- des$treated
  expect_equal(out$estimate[1], mean(y[w == 1]) - mean(y[w == 0]), tolerance = 1e-12)
  se <- sqrt(var(y[w == 1]) / 100 + var(y[w == 0]) / 100)
  expect_equal(out$std.error[2], se, tolerance = 1e-12)
  # The re-randomization row's standard error is its law's standard deviation.
  va <- mktcausal:::rem_va(des$threshold, 2)
  expect_equal(out$std.error[1], se * sqrt(1 - (1 - va) * out$r2[1]), tolerance = 1e-12)
  expect_gt(out$r2[1], 0.8)
  expect_lt(out$quantile[1], 1.2)
  expect_lt(diff(c(out$conf.low[1], out$conf.high[1])), diff(c(out$conf.low[2], out$conf.high[2])))
  expect_true(out$conf.low[1] < 1 && out$conf.high[1] > 1)
  # Other levels use the law's own quantiles, in confint() and tidy() alike.
  ci90 <- confint(fit, level = 0.9)
  q90 <- mktcausal:::rem_quantile(0.05, 2, des$threshold, out$r2[1])
  expect_equal(unname(ci90[1, ]), out$estimate[1] + c(-1, 1) * q90 * se, tolerance = 1e-10)
  expect_equal(unname(ci90[2, ]), out$estimate[1] + c(-1, 1) * qnorm(0.95) * se, tolerance = 1e-10)
  expect_equal(tidy(fit, conf.level = 0.9)$conf.low, unname(ci90[, 1]))
  expect_equal(unname(confint(fit)[, 1]), out$conf.low)
  expect_error(vcov(fit), class = "mktcausal_error_not_available")
  # Extreme levels keep their precision: 1 - 1e-300 rounds to 1, its tail
  # does not.
  tiny <- tidy(rem_asymptotic(y ~ treated, d, design = des, alpha = 1e-300))
  expect_equal(tiny$quantile[2], qnorm(5e-301, lower.tail = FALSE))
  expect_true(all(is.finite(c(tiny$conf.low, tiny$conf.high))))
  expect_lt(tiny$quantile[1], tiny$quantile[2])
  expect_equal(log(mktcausal:::rem_tail(tiny$quantile[1], 2, des$threshold, out$r2[1])),
               log(5e-301), tolerance = 1e-6)
  expect_identical(nobs(fit), 200L)
  expect_s3_class(plot(fit, type = "law"), "ggplot")
  des_t <- suppressWarnings(rerandomize(d, list(~x1, ~x2), n_treated = 100, accept = c(0.1, 0.5)))
  d$treated <- des_t$treated
  expect_error(rem_asymptotic(y ~ treated, d, design = des_t),
               class = "mktcausal_error_unsupported_design")
})

test_that("outcomes near 1e300 and 1e-300 give the scaled answer; a constant one is refused", {
  d <- sim_clusters(200, 2, seed = 21)
  set.seed(21)
  des <- rerandomize(d, ~ x1 + x2, n_treated = 100, accept = 0.01, id = "id")
  d$treated <- des$treated
  d$y <- 3 * d$x1 + d$x2 + rnorm(200) + des$treated
  base <- tidy(rem_asymptotic(y ~ treated, d, design = des))
  for (k in c(1e300, 1e-300)) {
    d$yk <- d$y * k
    out <- tidy(rem_asymptotic(yk ~ treated, d, design = des))
    for (col in c("estimate", "std.error", "conf.low", "conf.high")) {
      expect_equal(out[[col]] / k, base[[col]], tolerance = 1e-12)
    }
    expect_equal(out$p.value, base$p.value, tolerance = 1e-12)
  }
  d$y0 <- 5
  expect_error(rem_asymptotic(y0 ~ treated, d, design = des),
               class = "mktcausal_error_no_variation")
})
