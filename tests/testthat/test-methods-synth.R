f99 <- packspercapita ~ treated | state + year
adh <- list(lnincome = 1980:1988, retprice = 1980:1988, age15to24 = 1980:1988,
            beer = 1984:1988, packspercapita = 1975, packspercapita = 1980,
            packspercapita = 1988)

test_that("coef, weights, tidy and glance agree with the fit", {
  fit <- synth(f99, prop99)
  s <- tidy(fit, "series")
  expect_equal(coef(fit)[["att"]], mean(s$gap[s$post]))
  expect_equal(s$gap, s$treated - s$synthetic)
  expect_equal(glance(fit)$pre_rmspe, sqrt(mean(s$gap[!s$post]^2)))
  expect_equal(glance(fit)$post_rmspe, sqrt(mean(s$gap[s$post]^2)))
  expect_true(is.na(tidy(fit)$p.value))
  expect_named(tidy(fit), c("term", "estimate", "std.error", "statistic", "p.value",
                            "conf.low", "conf.high"))
  expect_identical(names(glance(fit))[-(1:9)],
                   c("pre_rmspe", "post_rmspe", "v_loss", "converged", "v_converged"))
  expect_true(is.na(glance(fit)$v_converged))
  tw <- tidy(fit, "weights")
  expect_equal(sum(tw$estimate), 1, tolerance = 1e-12)
  expect_identical(tw$term[1], "Utah")
  per <- tidy(fit, "period")
  expect_identical(nrow(per), 31L)
  expect_equal(mean(per$estimate[per$post]), coef(fit)[["att"]])
  expect_error(weights(fit, type = "time"), class = "mktcausal_error_not_available")
  expect_error(weights(fit, type = "tim"), class = "mktcausal_error_bad_choice")
  expect_error(tidy(fit, "placebo"), class = "mktcausal_error_bad_choice")
  expect_error(plot(fit, "placebo"), class = "mktcausal_error_not_available")
})

test_that("summary holds the ADH balance table: treated, synthetic and donor average", {
  fit <- synth(f99, prop99, predictors = adh)
  sm <- summary(fit)
  b <- tidy(fit, "balance")
  expect_named(b, c("term", "treated", "synthetic", "donor_mean", "v"))
  Y <- unclass(stats::xtabs(packspercapita ~ state + year, prop99))
  expect_equal(b$donor_mean[b$term == "packspercapita (1975)"],
               mean(Y[rownames(Y) != "California", "1975"]))
  expect_equal(b$synthetic[b$term == "packspercapita (1975)"],
               sum(weights(fit) * Y[names(weights(fit)), "1975"]))
  # Synthetic California matches California's cigarette price closely (ADH Table 1).
  expect_lt(abs(b$treated[2] - b$synthetic[2]), 0.5)
  out <- capture.output(print(sm))
  expect_true(any(grepl("Balance", out)))
  expect_true(any(grepl("Nested V search", out)))
  plain <- tidy(synth(f99, prop99), "balance")
  expect_equal(plain$treated[1], mean(Y["California", as.character(1970:1988)]))
})

test_that("every plot type builds from tidy data", {
  fit <- synth(f99, prop99, inference = "placebo")
  for (type in c("trajectory", "gap", "effect_over_time", "placebo", "weights", "ratio")) {
    p <- plot(fit, type)
    expect_s3_class(p, "ggplot")
    expect_gt(nrow(ggplot2::layer_data(p, length(p$layers))), 0)
  }
  expect_identical(nrow(plot(fit, "weights")$data), sum(weights(fit) > 1e-6))
  expect_output(print(fit), "att +-19.51")
  expect_error(plot(fit, "gapp"), class = "mktcausal_error_bad_choice")
  expect_error(plot(fit, "gap", colour = "red"), class = "mktcausal_error_unknown_argument")
  # The treated gap is drawn last, over the placebos fitted at most 5 times
  # worse (the rule and its count are tested in test-plots.R).
  p <- plot(fit, "placebo")
  last <- ggplot2::layer_data(p, length(p$layers))
  expect_equal(last$y, tidy(fit, "series")$gap)
})

test_that("sdid time weights are returned by weights(type = 'time')", {
  fit <- synth(f99, prop99, method = "sdid")
  lam <- weights(fit, "time")
  expect_identical(names(lam), as.character(1970:2000))
  expect_equal(sum(lam), 1, tolerance = 1e-12)
  s <- tidy(fit, "series")
  # The sdid gap is net of the time-weighted pre-period gap.
  raw <- s$treated - s$synthetic
  expect_equal(sum(lam * raw), 0, tolerance = 1e-10)
})
