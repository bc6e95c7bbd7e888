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
