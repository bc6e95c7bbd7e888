f99 <- packspercapita ~ treated | state + year

test_that("the conformal p-value is the rank of the statistic over cyclic shifts", {
  fit <- synth(f99, prop99, inference = "conformal")
  Y <- unclass(stats::xtabs(packspercapita ~ state + year, prop99))
  dn <- setdiff(rownames(Y), "California")
  # Null of no effect: refit on all 31 years, residuals, all 31 shifts.
  r <- cpp_simplex_ls(t(Y[dn, ]), Y["California", ], 0, numeric(0), 1e-12, 1e5L)
  u <- abs(Y["California", ] - drop(crossprod(Y[dn, ], r$w)))
  stat <- vapply(0:30, function(j) mean(u[(20:31 - 1 + j) %% 31 + 1]), numeric(1))
  expect_equal(tidy(fit)$p.value, mean(stat >= stat[1]))
  td <- tidy(fit)
  expect_match(fit$inference, "conformal")
  expect_identical(td$p.value, tidy(fit)$p.value)
  expect_error(vcov(fit), class = "mktcausal_error_not_available")
  expect_equal(unname(confint(fit)[1, ]), c(td$conf.low, td$conf.high))
  # The interval is where the same test does not reject at alpha.
  p_at <- function(theta) conformal_pvalue(Y["California", ], Y[dn, ], 1:19, 20:31, theta, "sc")
  expect_gt(p_at(td$conf.high - 1e-3), 0.05)
  expect_lte(p_at(td$conf.high + 1e-2), 0.05)
  expect_gt(p_at(td$conf.low + 1e-3), 0.05)
  expect_identical(td$p.value > 0.05, td$conf.low < 0 & td$conf.high > 0)
  per <- tidy(fit, "period")
  post <- per[per$post, ]
  expect_identical(nrow(post), 12L)
  expect_true(all(post$conf.low <= post$estimate & post$estimate <= post$conf.high))
  # With 20 periods per test the smallest possible p-value is 1/20.
  expect_true(all(post$p.value >= 1 / 20 - 1e-12))
  expect_equal(post$p.value[1], p_at_period <- {
    p1 <- conformal_pvalue(Y["California", ], Y[dn, ], 1:19, 20L, 0, "sc")
    p1
  })
})

test_that("conformal intervals cover a known effect in a factor model", {
  d <- sim_synth_panel(n_periods = 40, first_treated = 31, effect = 3, sd = 0.3, seed = 4)
  fit <- synth(y ~ d | unit + time, d, inference = "conformal")
  expect_lt(tidy(fit)$conf.low, 3)
  expect_gt(tidy(fit)$conf.high, 3)
  per <- tidy(fit, "period")
  per <- per[per$post, ]
  expect_gte(mean(per$conf.low <= 3 & 3 <= per$conf.high), 0.8)
  # Each period alone rejects a zero effect at the smallest attainable p.
  expect_equal(per$p.value, rep(1 / 31, 10))
  asc <- synth(y ~ d | unit + time, d, method = "asc", inference = "conformal")
  expect_lt(tidy(asc)$conf.low, 3)
  expect_gt(tidy(asc)$conf.high, 3)
})

test_that("conformal inference refuses what it does not cover", {
  expect_error(synth(f99, prop99, method = "sdid", inference = "conformal"),
               class = "mktcausal_error_inference_unsupported")
  expect_error(suppressWarnings(synth(f99, prop99, predictors = list(retprice = 1980:1988),
                                      inference = "conformal")),
               class = "mktcausal_error_inference_unsupported")
  d <- sim_synth_panel(first_treated = c(30, 32), seed = 3)
  expect_error(synth(y ~ d | unit + time, d, inference = "conformal"),
               class = "mktcausal_error_inference_unsupported")
})
