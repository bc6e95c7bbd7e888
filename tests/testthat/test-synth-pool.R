pool_objective <- function(fit, nu, s = tidy(fit, "series")) {
  # Recompute the partially pooled objective from the fit's own series.
  L <- min(tidy(fit, "fits")$first_treated) - 1L
  lags <- do.call(cbind, lapply(split(s, s$fit)[unique(s$fit)], function(d) {
    d$gap[d$event_time < 0 & d$event_time >= -L]
  }))
  sep <- mean(vapply(split(s, s$fit), function(d) mean(d$gap[d$event_time < 0]^2), numeric(1)))
  nu * mean(rowMeans(lags)^2) + (1 - nu) * sep
}

test_that("pool = 0 is the separate fit and pooling lowers the pooled imbalance", {
  d <- sim_synth_panel(n_donors = 20, n_periods = 30, first_treated = c(20, 22, 24),
                        effect = 2, sd = 0.5, seed = 12)
  sep <- synth(y ~ d | unit + time, d)
  expect_identical(weights(synth(y ~ d | unit + time, d, pool = 0)), weights(sep))
  half <- synth(y ~ d | unit + time, d, pool = 0.5)
  # Fitting only the average leaves single units poorly fitted, by design.
  full <- suppressWarnings(synth(y ~ d | unit + time, d, pool = 1), classes = "mktcausal_warning_poor_fit")
  expect_true(glance(full)$converged)
  expect_true(glance(half)$converged)
  expect_lte(pool_objective(half, 0.5), pool_objective(sep, 0.5) + 1e-10)
  expect_lte(pool_objective(full, 1), pool_objective(half, 1) + 1e-10)
  expect_lte(pool_objective(half, 1), pool_objective(sep, 1) + 1e-10)
  expect_equal(half$pooled_imbalance^2, pool_objective(half, 1), tolerance = 1e-8)
  # Each unit's weights stay on the simplex.
  expect_equal(unname(colSums(half$weight_matrix)), rep(1, 3), tolerance = 1e-12)
  expect_true(all(half$weight_matrix >= 0))
  # The block optimum: no single unit's weights can lower the objective.
  obj <- pool_objective(half, 0.5)
  for (k in 1:3) {
    alt <- half
    alt_w <- half$weight_matrix
    alt_w[, k] <- sep$weight_matrix[, k]
    f2 <- synth(y ~ d | unit + time, d)
    s2 <- tidy(f2, "series")
    hs <- tidy(half, "series")
    s2$gap <- unlist(lapply(1:3, function(j) {
      s <- hs[hs$fit == unique(hs$fit)[j], ]
      Y0 <- unclass(stats::xtabs(y ~ unit + time, d))[rownames(alt_w), ]
      s$treated - drop(crossprod(Y0, alt_w[, j]))
    }))
    expect_gte(pool_objective(f2, 0.5, s2), obj - 1e-10)
  }
  expect_equal(coef(half)[["att"]], 2, tolerance = 0.15)
})

test_that("pool is checked", {
  d <- sim_synth_panel(first_treated = c(30, 32), seed = 3)
  expect_error(synth(y ~ d | unit + time, d, pool = 2), class = "mktcausal_error_bad_argument")
  expect_error(synth(y ~ d | unit + time, d, pool = c(0.1, 0.2)),
               class = "mktcausal_error_bad_argument")
  expect_error(synth(y ~ d | unit + time, d, method = "sdid", pool = 0.5),
               class = "mktcausal_error_bad_argument")
  expect_error(synth(y ~ d | unit + time, d, pool = 0.5, inference = "placebo"),
               class = "mktcausal_error_inference_unsupported")
})
