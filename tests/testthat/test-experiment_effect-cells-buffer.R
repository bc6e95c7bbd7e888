# experiment_effect() and randomization_test() with a buffered multi-cell
# design.

buffer_grid <- function(seed = 1, n_side = 8) {
  set.seed(seed)
  g <- expand.grid(row = seq_len(n_side), col = seq_len(n_side))
  g$id <- sprintf("m%03d", seq_len(nrow(g)))
  g$pre <- rnorm(nrow(g), 100, 10)
  g$half <- ifelse(g$col <= n_side / 2, "west", "east")
  d <- as.matrix(stats::dist(g[, c("row", "col")]))
  dimnames(d) <- list(g$id, g$id)
  list(data = g, dist = d, A = (d <= 1 & d > 0) * 1)
}

# The stratum-weighted Hajek difference of each treated cell against the
# kept controls, by hand from the design's arm probabilities.
hand_hajek <- function(y, arm, cells, prob, strata) {
  strata <- factor(strata)
  pi_s <- as.vector(table(strata)) / length(y)
  w <- function(a) 1 / pmax(prob[, a], 0.5 / 2000)
  mean_of <- function(a) {
    sum(vapply(seq_along(levels(strata)), function(s) {
      r <- arm == a & strata == levels(strata)[s]
      pi_s[s] * sum(w(a)[r] * y[r]) / sum(w(a)[r])
    }, numeric(1)))
  }
  vapply(cells[-1], function(a) mean_of(a) - mean_of("control"), numeric(1))
}

test_that("the buffered difference in means is the stratum-weighted Hajek difference; the test re-applies the rule", {
  u <- buffer_grid(4)
  set.seed(21)
  des <- rerandomize(u$data, ~ pre, n_treated = c(a = 6, b = 6), accept = 0.3, id = "id",
                     strata = "half", buffer = u$dist, buffer_radius = 1, n_draws = 2000)
  d <- u$data
  d$cell <- as.character(des$cell)
  d$y <- d$pre + 3 * (d$cell == "a") - 2 * (d$cell == "b") + rnorm(64)
  set.seed(1)
  fit <- experiment_effect(y ~ cell, d, design = des, n_draws = 300)
  dim_rows <- fit$estimates[fit$estimates$estimator == "diff_in_means", ]
  arm <- as.character(des$arm)
  hand <- hand_hajek(d$y, arm, des$cells, des$arm_prob, d$half)
  expect_equal(dim_rows$estimate, unname(hand), tolerance = 1e-8)
  expect_identical(fit$n$buffer, sum(arm == "buffer"))
  expect_identical(fit$n$units, sum(arm != "buffer"))
  expect_true(all(is.na(fit$estimates$p.value_randomization[fit$estimates$estimator == "lin"])))
  expect_true(all(is.finite(dim_rows$p.value_randomization)))
  # The randomization test's observed statistic is the same Hajek difference.
  set.seed(1)
  rt <- randomization_test(y ~ cell, d, design = des, n_draws = 300)
  expect_equal(rt$estimates$estimate, unname(hand), tolerance = 1e-8)
  expect_equal(rt$estimates$p.value, dim_rows$p.value_randomization)
  expect_true(rt$buffered)
  expect_error(randomization_test(y ~ cell, d, design = des, statistic = "lin_t", n_draws = 300),
               class = "mktcausal_error_inference_unsupported")
})

test_that("with spillover onto neighbours the buffered Hajek estimator is unbiased and the unbuffered one is not", {
  skip_on_cran()
  u <- buffer_grid(7, n_side = 10)
  n <- nrow(u$data)
  deg <- rowSums(u$A)
  set.seed(33)
  # Outcomes depend on the number of neighbours, so kept controls (which
  # over-represent isolated clusters) must be reweighted.
  mu <- 50 + 4 * deg + rnorm(n, 0, 3)
  tau <- c(a = 5, b = -3)
  spill <- 6
  des <- rerandomize(u$data, ~ pre, n_treated = c(a = 8, b = 8), accept = 0.3, id = "id",
                     buffer = u$dist, buffer_radius = 1, n_draws = 3000)
  set.seed(8)
  C <- mktcausal:::reference_cells(des, 200)$cells
  w <- mktcausal:::cells_arm_weights(des)
  est <- t(vapply(seq_len(ncol(C)), function(r) {
    cr <- C[, r]
    drawn <- pmax(cr, 0L)
    exposed <- as.vector(u$A %*% as.numeric(drawn > 0)) > 0
    y <- mu + tau["a"] * (drawn == 1) + tau["b"] * (drawn == 2) + spill * (drawn == 0 & exposed)
    hajek <- function(g) {
      keep <- cr == g
      sum(w[keep, g + 1] * y[keep]) / sum(w[keep, g + 1])
    }
    plain <- function(g) mean(y[drawn == g])
    c(buffered = c(hajek(1) - hajek(0), hajek(2) - hajek(0)),
      unbuffered = c(plain(1) - plain(0), plain(2) - plain(0)))
  }, numeric(4)))
  m <- colMeans(est)
  se <- apply(est, 2, stats::sd) / sqrt(nrow(est))
  truth <- c(tau, tau)
  z <- (m - truth) / se
  expect_true(all(abs(z[1:2]) < 3), info = paste(signif(z, 3), collapse = " "))
  expect_true(all(abs(z[3:4]) > 5), info = paste(signif(z, 3), collapse = " "))
  # experiment_effect() on one of these draws gives the same Hajek estimate.
  d <- u$data
  d$cell <- des$cells[as.integer(des$cell)]
  drawn <- as.integer(des$cell) - 1L
  exposed <- as.vector(u$A %*% as.numeric(drawn > 0)) > 0
  d$y <- mu + tau["a"] * (drawn == 1) + tau["b"] * (drawn == 2) + spill * (drawn == 0 & exposed)
  fit <- experiment_effect(y ~ cell, d, design = des, n_draws = 200)
  r <- fit$estimates[fit$estimates$estimator == "diff_in_means", ]
  expect_equal(r$estimate, unname(hand_hajek(d$y, as.character(des$arm), des$cells,
                                             des$arm_prob, rep("all", n))), tolerance = 1e-8)
})
