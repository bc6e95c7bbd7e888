f99 <- packspercapita ~ treated | state + year
adh <- list(lnincome = 1980:1988, retprice = 1980:1988, age15to24 = 1980:1988,
            beer = 1984:1988, packspercapita = 1975, packspercapita = 1980,
            packspercapita = 1988)

test_that("placebo in space with the ADH specification gives p = 1/39", {
  fit <- synth(f99, prop99, predictors = adh, inference = "placebo")
  expect_equal(fit$p.value, 1 / 39)
  pl <- tidy(fit, "placebo")
  expect_identical(nrow(pl), 39L)
  expect_identical(pl$rank[pl$treated], 1L)
  expect_equal(pl$ratio, pl$post_rmspe / pl$pre_rmspe)
  expect_identical(glance(fit)$p.value, 1 / 39)
  # Dropping placebos whose pre-MSPE exceeds twice California's shrinks the
  # reference set, and the p-value is the rank among those kept.
  fit2 <- synth(f99, prop99, predictors = adh, inference = "placebo", drop_poor_placebos = 2)
  kept <- tidy(fit2, "placebo")$kept
  expect_lt(sum(kept), 39L)
  expect_equal(fit2$p.value, 1 / sum(kept))
})

test_that("outcome-only placebo p-value is the rank of the RMSPE ratio", {
  fit <- synth(f99, prop99, inference = "placebo")
  pl <- fit$placebo
  expect_equal(fit$p.value, mean(pl$ratio >= pl$ratio[pl$treated]))
  # Each placebo is an exact outcome-only fit from the other donors.
  Y <- unclass(stats::xtabs(packspercapita ~ state + year, prop99))
  dn <- setdiff(rownames(Y), c("California", "Alabama"))
  r <- cpp_simplex_ls(t(Y[dn, 1:19]), Y["Alabama", 1:19], 0, numeric(0), 1e-12, 1e5L)
  gap <- Y["Alabama", ] - drop(crossprod(Y[dn, ], r$w))
  expect_equal(pl$pre_rmspe[pl$unit == "Alabama"], sqrt(mean(gap[1:19]^2)), tolerance = 1e-10)
})

test_that("sdid and did placebo standard errors are near Table 1 and reproducible", {
  set.seed(42)
  sdid <- synth(f99, prop99, method = "sdid", inference = "placebo", n_draws = 200)
  set.seed(42)
  again <- synth(f99, prop99, method = "sdid", inference = "placebo", n_draws = 200)
  expect_identical(sdid$std.error, again$std.error)
  expect_equal(sdid$std.error, 8.4, tolerance = 0.15)
  set.seed(42)
  did <- synth(f99, prop99, method = "did", inference = "placebo", n_draws = 200)
  expect_equal(did$std.error, 17.7, tolerance = 0.15)
  n <- length(did$draws)
  expect_equal(did$std.error, sqrt((n - 1) / n) * sd(did$draws))
  td <- tidy(sdid)
  expect_equal(td$conf.high - td$conf.low, 2 * qnorm(0.975) * sdid$std.error)
  expect_equal(td$p.value, 2 * pnorm(-abs(td$estimate / td$std.error)))
  expect_identical(td$inference, "placebo")
})

test_that("jackknife and bootstrap work with several treated units and cover the truth", {
  d <- sim_synth_panel(n_donors = 25, first_treated = c(31, 31, 31, 31), effect = 2,
                        sd = 0.5, seed = 8)
  jk <- synth(y ~ d | unit + time, d, method = "sdid", inference = "jackknife")
  expect_identical(length(jk$draws), 29L)
  expect_gt(jk$std.error, 0)
  expect_lt(abs(coef(jk)[["att"]] - 2), 3 * jk$std.error)
  set.seed(1)
  bs <- synth(y ~ d | unit + time, d, method = "did", inference = "bootstrap", n_draws = 50)
  expect_gt(bs$std.error, 0)
  expect_lt(abs(coef(bs)[["att"]] - 2), 3 * bs$std.error)
})

test_that("inference that does not apply raises a classed error", {
  expect_error(synth(f99, prop99, method = "sdid", inference = "jackknife"),
               class = "mktcausal_error_inference_unsupported")
  expect_error(synth(f99, prop99, inference = "bootstrap"),
               class = "mktcausal_error_inference_unsupported")
  d <- sim_synth_panel(first_treated = c(30, 32), seed = 3)
  expect_error(synth(y ~ d | unit + time, d, inference = "placebo"),
               class = "mktcausal_error_inference_unsupported")
})
