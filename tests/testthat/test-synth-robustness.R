f99 <- packspercapita ~ treated | state + year

test_that("placebo in time backdates the treatment and refits on earlier data", {
  fit <- synth(f99, prop99)
  pt <- synth_placebo_time(fit, shift = 8)
  expect_s3_class(pt, "mkt_synth")
  expect_match(pt$inference, "placebo in time")
  expect_identical(tidy(pt, "fits")$first_treated, 1981L)
  expect_error(vcov(pt), class = "mktcausal_error_not_available")
  s <- tidy(pt, "series")
  expect_identical(range(s$time), c(1970L, 1988L))
  # The outcome-only fit on 1970-1980 by hand.
  Y <- unclass(stats::xtabs(packspercapita ~ state + year, prop99))
  dn <- setdiff(rownames(Y), "California")
  r <- cpp_simplex_ls(t(Y[dn, 1:11]), Y["California", 1:11], 0, numeric(0), 1e-12, 1e5L)
  gap <- Y["California", 12:19] - drop(crossprod(Y[dn, 12:19], r$w))
  expect_equal(coef(pt)[["att"]], mean(gap), tolerance = 1e-10)
  # No real effect before 1989: the backdated gap is small next to the real one.
  expect_lt(abs(coef(pt)[["att"]]), abs(coef(fit)[["att"]]) / 3)
  expect_error(synth_placebo_time(fit, shift = 19), class = "mktcausal_error_bad_argument")
  adh <- list(retprice = 1975:1980, packspercapita = 1975, packspercapita = 1980)
  expect_error(synth_placebo_time(synth(f99, prop99, predictors = c(adh, list(beer = 1985))), 10),
               class = "mktcausal_error_bad_predictors")
  ok <- synth_placebo_time(synth(f99, prop99, predictors = adh), 8)
  expect_equal(sum(weights(ok)), 1, tolerance = 1e-12)
})

test_that("leave-one-out donors refits without each weighted donor", {
  fit <- synth(f99, prop99)
  loo <- synth_loo(fit)
  expect_identical(nrow(loo), sum(weights(fit) >= 1e-6))
  expect_identical(loo$term[1], "Utah")
  Y <- unclass(stats::xtabs(packspercapita ~ state + year, prop99))
  dn <- setdiff(rownames(Y), c("California", "Utah"))
  r <- cpp_simplex_ls(t(Y[dn, 1:19]), Y["California", 1:19], 0, numeric(0), 1e-12, 1e5L)
  att <- mean(Y["California", 20:31] - drop(crossprod(Y[dn, 20:31], r$w)))
  expect_equal(loo$estimate[1], att, tolerance = 1e-10)
  expect_error(synth_loo(synth(f99, prop99, method = "did")), class = "mktcausal_error_bad_argument")
  expect_error(synth_loo(list()), class = "mktcausal_error_bad_argument")
  expect_error(synth_loo(fit, min_wieght = 0.1), class = "mktcausal_error_unknown_argument")
})

test_that("robustness checks refuse arguments they cannot use", {
  fit <- synth(f99, prop99)
  for (bad in list(2, -1, NA, "a", c(0.1, 0.2))) {
    expect_error(synth_loo(fit, min_weight = bad), class = "mktcausal_error_bad_argument")
  }
  # A threshold above every weight names the largest weight, not n_draws.
  err <- expect_error(synth_loo(fit, min_weight = 0.9), class = "mktcausal_error_bad_argument")
  expect_match(conditionMessage(err), "min_weight")
  # Outcome-only sc needs two pre-periods after the move: at most 17 of 19.
  expect_s3_class(synth_placebo_time(fit, shift = 17), "mkt_synth")
  expect_error(synth_placebo_time(fit, shift = 18), class = "mktcausal_error_bad_argument")
  expect_error(synth_placebo_time(fit, shift = 1e12), class = "mktcausal_error_bad_argument")
  sdid <- synth(f99, prop99, method = "sdid")
  expect_error(synth_placebo_time(sdid, shift = 5, predictors = list(retprice = 1975:1980)),
               class = "mktcausal_error_bad_argument")
  expect_error(synth_placebo_time(fit, shift = 5, fit_periods = 1975:1980),
               class = "mktcausal_error_bad_argument")
  # A predictor whose column did not come with the fit's panel.
  err <- expect_error(synth_placebo_time(fit, shift = 5, predictors = list(beer = 1984)),
                      class = "mktcausal_error_missing_column")
  expect_match(conditionMessage(err), "beer")
  # A fit with too few pre-periods to move the date back at all.
  short <- synth(f99, prop99[prop99$year >= 1987, ])
  expect_error(synth_placebo_time(short, shift = 1), class = "mktcausal_error_too_few_pre_periods")
})

test_that("robustness checks of an outcome near 1e300 are the scaled ones", {
  big <- prop99
  big$packspercapita <- big$packspercapita * 1e300
  a <- synth(f99, big)
  b <- synth(f99, prop99)
  la <- synth_loo(a)
  lb <- synth_loo(b)
  expect_identical(la$term, lb$term)
  expect_equal(la$estimate / 1e300, lb$estimate, tolerance = 1e-8)
  expect_equal(la$pre_rmspe / 1e300, lb$pre_rmspe, tolerance = 1e-8)
  pa <- synth_placebo_time(a, shift = 8)
  pb <- synth_placebo_time(b, shift = 8)
  expect_equal(coef(pa) / 1e300, coef(pb), tolerance = 1e-8)
  expect_equal(glance(pa)$pre_rmspe / 1e300, glance(pb)$pre_rmspe, tolerance = 1e-8)
})
