# Degenerate inputs found by the robustness sweep (tools/robustness-sweep.R),
# each now a finite answer or a classed error that names the fix.

test_that("one cluster is refused by every staggered and event-study method", {
  d <- rb_data("stag")
  d$one <- "all"
  for (m in c("cs", "sa", "twfe", "imputation")) {
    expect_error(event_study(y ~ d | unit + time, d, method = m, cluster = "one"),
                 regexp = "at least two clusters", class = "mktcausal_error_too_few_clusters",
                 label = m)
  }
  expect_error(staggered(y ~ d | unit + time, d, cluster = "one"),
               class = "mktcausal_error_too_few_clusters")
})

test_that("units of weight zero are left out and listed, not turned into NaN", {
  d <- rb_data("stag")
  ids <- unique(d$unit)
  d$w01 <- d$unit %in% ids[c(TRUE, FALSE, TRUE)]
  fit <- event_study(y ~ d | unit + time, d, method = "imputation", weights = "w01")
  expect_true(all(is.finite(tidy(fit)$std.error)))
  # The same fit on the units of weight one, with unit weights.
  kept <- d[d$w01, ]
  same <- event_study(y ~ d | unit + time, kept, method = "imputation")
  expect_equal(tidy(fit)$estimate, tidy(same)$estimate, tolerance = 1e-10)
  cs <- staggered(y ~ d | unit + time, d, weights = "w01", n_draws = 0)
  dropped <- tidy(cs, "dropped_units")
  expect_setequal(as.character(dropped$unit), as.character(setdiff(ids, unique(kept$unit))))
  expect_true(all(dropped$reason == "weight zero"))
})

test_that("an outcome near 1e300 keeps a finite or infinite covariance, never NaN", {
  d <- rb_data("stag")
  d$y <- d$y * 1e300
  fit <- event_study(y ~ d | unit + time, d, method = "imputation")
  expect_false(anyNA(vcov(fit)))
  expect_true(all(is.finite(tidy(fit)$estimate)))
})

test_that("alpha near zero gives finite intervals, not 1 - alpha rounded to 1", {
  d <- rb_data("dose")
  dr <- dose_response(y ~ dose | unit + time, d, alpha = 1e-300)
  expect_true(all(is.finite(unlist(tidy(dr, "curve")[c("conf.low", "conf.high")]))))
  iv <- iv_fe(y ~ x1 | unit + time | dose ~ z, d, alpha = 1e-300)
  expect_true(all(is.finite(tidy(iv)$conf.low)))
  expect_equal(confint(iv)[, 1], tidy(iv)$conf.low, ignore_attr = TRUE)
})

test_that("a control never observed is named", {
  d <- rb_data("dose")
  d$x1 <- NA_real_
  expect_error(dml(y ~ dose + x1 | unit + time, d, n_folds = 2, n_draws = 1),
               regexp = "x1", class = "mktcausal_error_missing_values")
})

test_that("a staggered fit with no estimable group-time effect is an error that says why", {
  d <- expand.grid(unit = 1:2, time = 1:6)
  d$d <- as.integer(d$unit == 1 & d$time >= 4)
  d$xu <- c(0.3, -1)[d$unit]
  d$y <- d$time + d$unit + rnorm(nrow(d))
  expect_error(staggered(y ~ d + xu | unit + time, d, n_draws = 0),
               regexp = "too few units to fit the covariates",
               class = "mktcausal_error_too_few_units")
  # Without the covariate the same two units give an estimate.
  expect_true(is.finite(coef(aggregate(staggered(y ~ d | unit + time, d, n_draws = 0)))[1]))
})

test_that("a smoothness bound far beyond the data gives finite, nested sets", {
  # The folded-normal quantile at a bias bound of 1e300: t + q rounds to t.
  q <- mktcausal:::folded_normal_quantile(1e300, 0.05)
  expect_identical(q, 1e300)
  expect_equal(mktcausal:::folded_normal_quantile(0, 0.05), qnorm(0.975), tolerance = 1e-8)
})

test_that("the imputation event study on two periods or with every unit adopting at once", {
  d <- expand.grid(unit = 1:20, time = 1:2)
  d$d <- as.integer(d$unit <= 10 & d$time == 2)
  d$y <- d$unit / 10 + d$time + 0.5 * d$d + rnorm(nrow(d), sd = 0.1)
  fit <- event_study(y ~ d | unit + time, d, method = "imputation")
  # No lead to test with one pre-period; the effect at event time 0 alone.
  expect_identical(tidy(fit)$event, 0L)
  expect_true(is.finite(tidy(fit)$std.error))
  d3 <- expand.grid(unit = 1:20, time = 1:6)
  d3$d <- as.integer(d3$time >= 4)
  d3$y <- d3$unit / 10 + d3$time + rnorm(nrow(d3))
  expect_error(event_study(y ~ d | unit + time, d3, method = "imputation"),
               class = "mktcausal_error_no_post_cells")
})
