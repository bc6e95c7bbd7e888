test_that("thresholds and variance reduction match the research note (section 7.1)", {
  expect_equal(stats::qchisq(0.01, 4), 0.297109, tolerance = 1e-5)
  expect_equal(mktcausal:::rem_va(stats::qchisq(0.01, 4), 4), 0.048899, tolerance = 1e-5)
  expect_equal(mktcausal:::rem_va(stats::qchisq(0.001, 10), 10), 0.120921, tolerance = 1e-5)
  expect_equal(mktcausal:::rem_va(stats::qchisq(0.01, 5), 5), 0.077762, tolerance = 1e-5)

  d <- sim_clusters(200, 4)
  set.seed(1)
  des <- rerandomize(d, ~ x1 + x2 + x3 + x4, n_treated = 100, accept = 0.01, id = "id")
  expect_equal(des$threshold, 0.297109, tolerance = 1e-5)
  expect_equal(unname(des$variance_reduction), rep(1 - 0.048899, 4), tolerance = 1e-5)
  expect_equal(glance(des)$variance_reduction, 1 - 0.048899, tolerance = 1e-5)
})

test_that("the compiled criterion equals Morgan and Rubin's formula", {
  d <- sim_clusters(60, 3, seed = 2)
  set.seed(2)
  des <- rerandomize(d, ~ x1 + x2 + x3, n_treated = 25, accept = 0.2, id = "id")
  X <- as.matrix(d[, 1:3])
  expect_equal(des$criterion_value, direct_mahalanobis(X, des$treated), tolerance = 1e-10)
  expect_lte(des$criterion_value, des$threshold)
  expect_equal(sum(des$treated), 25L)
  expect_identical(names(des$treated), NULL)
})

test_that("E[M] = k under complete randomization, and the acceptance rate is p_a", {
  d <- sim_clusters(210, 6, seed = 3)
  set.seed(3)
  des <- rerandomize(d, ~ x1 + x2 + x3 + x4 + x5 + x6, n_treated = 105,
                     accept = 0.01, n_draws = 2e5, id = "id")
  # sd of the mean of 2e5 chi2_6 draws is about 0.008
  expect_equal(mean(des$calibration), 6, tolerance = 0.04 / 6)
  expect_equal(des$acceptance_rate, 0.01, tolerance = 0.15)
})

test_that("the empirical threshold hits the target acceptance with skewed covariates", {
  d <- sim_clusters(100, 4, seed = 4, lognormal = TRUE)
  set.seed(4)
  emp <- rerandomize(d, ~ x1 + x2 + x3 + x4, n_treated = 50, accept = 0.01,
                     threshold = "empirical", id = "id")
  expect_equal(emp$acceptance_rate, 0.01, tolerance = 0.02)
  set.seed(4)
  chi <- rerandomize(d, ~ x1 + x2 + x3 + x4, n_treated = 50, accept = 0.01, id = "id")
  # chi-square calibration is off with skewed covariates (the note saw 0.0083)
  expect_lt(chi$acceptance_rate, 0.0097)
})

test_that("the realized variance reduction of accepted draws matches 1 - v_a", {
  d <- sim_clusters(200, 4, seed = 5)
  set.seed(5)
  des <- rerandomize(d, ~ x1 + x2 + x3 + x4, n_treated = 100, accept = 0.01, id = "id")
  acc <- mktcausal:::run_search(des$spec, want = 4000, max_candidates = 1e8)
  imb <- crossprod(acc$assignments, as.matrix(d[, 1:4]))
  w_cre <- mktcausal:::run_search(des$spec, want = 4000, max_candidates = 1e8,
                                  threshold = Inf)$assignments
  imb_cre <- crossprod(w_cre, as.matrix(d[, 1:4]))
  ratio <- apply(imb, 2, var) / apply(imb_cre, 2, var)
  expect_equal(unname(ratio), rep(0.0489, 4), tolerance = 0.35)
  expect_true(all(ratio < 0.08))
})

test_that("stratified designs respect arm sizes per stratum and the stratified criterion", {
  d <- sim_clusters(80, 2, seed = 6)
  d$region <- rep(c("N", "S", "E", "W"), each = 20)
  set.seed(6)
  des <- rerandomize(d, ~ x1 + x2, n_treated = 40, strata = "region", accept = 0.1, id = "id")
  expect_equal(as.vector(tapply(des$treated, d$region, sum)), rep(10, 4))
  # Wang, Wang and Liu (2023): tau_x = sum_s pi_s (mean_T - mean_C), Cov = sum pi_s^2 S2_s (1/n1 + 1/n0)
  X <- as.matrix(d[, 1:2])
  tau <- 0
  V <- matrix(0, 2, 2)
  for (s in unique(d$region)) {
    r <- d$region == s
    tau <- tau + 0.25 * (colMeans(X[r & des$treated == 1, ]) - colMeans(X[r & des$treated == 0, ]))
    V <- V + 0.25^2 * cov(X[r, ]) * (1 / 10 + 1 / 10)
  }
  expect_equal(des$criterion_value, drop(t(tau) %*% solve(V, tau)), tolerance = 1e-10)
  b <- balance(des)
  expect_equal(b$std_diff, unname(tau / apply(X, 2, sd)), tolerance = 1e-10)
})

test_that("tiers pass each tier's own threshold and accept the product", {
  d <- sim_clusters(120, 4, seed = 7)
  set.seed(7)
  des <- rerandomize(d, list(~ x1, ~ x2 + x3 + x4), n_treated = 60,
                     accept = c(0.05, 0.5), id = "id")
  expect_equal(des$criterion, "tiers")
  expect_equal(des$threshold, stats::qchisq(c(0.05, 0.5), c(1, 3)))
  expect_true(all(des$criterion_by_tier <= des$threshold))
  expect_equal(glance(des)$accept, 0.025)
  # tier 1 is one covariate: its criterion is its squared t statistic
  X <- as.matrix(d[, 1, drop = FALSE])
  expect_equal(des$criterion_by_tier[1], direct_mahalanobis(X, des$treated), tolerance = 1e-10)
  # the first tier's variance is cut by 1 - v_a(a_1, 1)
  v1 <- mktcausal:::rem_va(stats::qchisq(0.05, 1), 1)
  expect_equal(unname(des$variance_reduction["x1"]), 1 - v1, tolerance = 1e-10)
})

test_that("the max-abs criterion bounds every standardized difference", {
  d <- sim_clusters(100, 3, seed = 8)
  set.seed(8)
  des <- rerandomize(d, ~ x1 + x2 + x3, n_treated = 50, accept = 0.05,
                     criterion = "max_abs", id = "id")
  expect_equal(des$threshold_type, "empirical")
  X <- as.matrix(d[, 1:3])
  diffs <- colMeans(X[des$treated == 1, ]) - colMeans(X[des$treated == 0, ])
  t_stat <- diffs / sqrt(apply(X, 2, var) * (1 / 50 + 1 / 50))
  expect_equal(des$criterion_value, max(abs(t_stat)), tolerance = 1e-10)
  expect_lte(max(abs(t_stat)), des$threshold)
  expect_true(all(des$variance_reduction > 0.3))
  expect_error(rerandomize(d, ~ x1, criterion = "max_abs", threshold = "chisq"),
               class = "mktcausal_error_bad_argument")
})

test_that("designs are reproducible under set.seed whatever the thread count", {
  d <- sim_clusters(150, 5, seed = 9)
  old <- mkt_threads()
  on.exit(mkt_threads(old))
  mkt_threads(1)
  set.seed(11)
  a <- rerandomize(d, ~ x1 + x2 + x3 + x4 + x5, n_treated = 70, accept = 0.001, id = "id")
  mkt_threads(2)
  set.seed(11)
  b <- rerandomize(d, ~ x1 + x2 + x3 + x4 + x5, n_treated = 70, accept = 0.001, id = "id")
  expect_identical(a$treated, b$treated)
  expect_identical(a$candidates, b$candidates)
  expect_identical(a$calibration, b$calibration)
})

test_that("tibbles and data.tables give the same design as a data.frame", {
  d <- sim_clusters(50, 2, seed = 10)
  set.seed(1)
  a <- rerandomize(d, ~ x1 + x2, n_treated = 20, accept = 0.1, id = "id")
  skip_if_not_installed("tibble")
  set.seed(1)
  b <- rerandomize(tibble::as_tibble(d), ~ x1 + x2, n_treated = 20, accept = 0.1, id = "id")
  expect_identical(a$treated, b$treated)
  skip_if_not_installed("data.table")
  set.seed(1)
  c <- rerandomize(data.table::as.data.table(d), ~ x1 + x2, n_treated = 20, accept = 0.1, id = "id")
  expect_identical(a$treated, c$treated)
})

test_that("no acceptable assignment gives a classed error with the count and the best value", {
  d <- sim_clusters(40, 3, seed = 12)
  set.seed(1)
  err <- expect_error(
    rerandomize(d, ~ x1 + x2 + x3, n_treated = 20, accept = 1e-9, max_candidates = 5000,
                n_draws = 1000, id = "id"),
    class = "mktcausal_error_no_acceptable_assignment"
  )
  expect_equal(err$candidates, 5000)
  expect_true(is.finite(err$best) && err$best > 0)
  expect_match(conditionMessage(err), "5,000 candidates")
})

test_that("bad inputs raise classed errors that name the problem", {
  d <- sim_clusters(30, 2, seed = 13)
  expect_error(rerandomize(d, ~ x1 + nope, n_treated = 10), class = "mktcausal_error_missing_column")
  d_chr <- d
  d_chr$x2 <- letters[1:30]
  expect_error(rerandomize(d_chr, ~ x1 + x2, n_treated = 10),
               class = "mktcausal_error_non_numeric")
  d_na <- d
  d_na$x1[3] <- NA
  expect_error(rerandomize(d_na, ~ x1 + x2, n_treated = 10), class = "mktcausal_error_missing_values")
  d_id <- d
  d_id$id[4] <- NA
  expect_error(rerandomize(d_id, ~ x1, n_treated = 10, id = "id"), class = "mktcausal_error_missing_values")
  d_dup <- d
  d_dup$id[2] <- d_dup$id[1]
  expect_error(rerandomize(d_dup, ~ x1, n_treated = 10, id = "id"), class = "mktcausal_error_duplicated_rows")
  d_const <- d
  d_const$k <- 1
  expect_warning(rerandomize(d_const, ~ x1 + k, n_treated = 10, accept = 0.5),
                 class = "mktcausal_warning_dropped_covariate")
  d_col <- d
  d_col$x3 <- 2 * d$x1 - d$x2
  expect_warning(rerandomize(d_col, ~ x1 + x2 + x3, n_treated = 10, accept = 0.5),
                 class = "mktcausal_warning_dropped_covariate")
  expect_error(rerandomize(d, ~ x1, n_treated = 0), class = "mktcausal_error_bad_argument")
  expect_error(rerandomize(d, ~ x1, n_treated = 30), class = "mktcausal_error_bad_argument")
  expect_error(rerandomize(d, ~ x1, n_treated = 10, accept = 0), class = "mktcausal_error_bad_argument")
  expect_error(rerandomize(d, ~ x1, n_treated = 10, accept = 1.5), class = "mktcausal_error_bad_argument")
  tiny <- rep(c("a", "b", "c"), c(26, 2, 2))
  err <- expect_error(rerandomize(d, ~ x1, n_treated = 15, strata = tiny, min_per_arm = 2),
                      class = "mktcausal_error_strata_too_small")
  expect_setequal(err$strata, c("b", "c"))
  expect_error(rerandomize(d, ~ x1, n_treated = 10, strata = tiny[-1]),
               class = "mktcausal_error_bad_strata")
  expect_error(rerandomize(d, "x1", n_treated = 10), class = "mktcausal_error_bad_argument")
})

test_that("an altered design is refused", {
  d <- sim_clusters(40, 2, seed = 14)
  set.seed(1)
  des <- rerandomize(d, ~ x1 + x2, n_treated = 20, accept = 0.2, id = "id")
  expect_silent(mktcausal:::check_design(des))
  bad <- des
  bad$treated[1:2] <- bad$treated[2:1] + 0L
  if (identical(bad$treated, des$treated)) bad$treated <- 1L - des$treated
  dd <- data.frame(id = d$id, treated = des$treated, y = rnorm(40))
  expect_error(randomization_test(y ~ treated, dd, design = bad),
               class = "mktcausal_error_design_modified")
  bad2 <- des
  bad2$threshold <- 100
  expect_error(rem_asymptotic(y ~ treated, dd, design = bad2),
               class = "mktcausal_error_design_modified")
})

test_that("glance, tidy and plots carry the documented columns", {
  d <- sim_clusters(60, 3, seed = 15)
  set.seed(2)
  des <- rerandomize(d, ~ x1 + x2 + x3, n_treated = 30, accept = 0.05, id = "id")
  g <- glance(des)
  expect_true(all(c("criterion", "threshold", "accept", "candidates", "variance_reduction") %in% names(g)))
  expect_equal(g$accept, 0.05)
  expect_equal(g$candidates, des$candidates)
  tb <- tidy(des)
  expect_equal(nrow(tb), 3)
  expect_equal(tb$mean_treated, unname(colMeans(d[des$treated == 1, 1:3])), tolerance = 1e-12)
  expect_true(all(tb$expected_abs_std_diff_after < tb$expected_abs_std_diff_before))
  expect_s3_class(plot(des), "ggplot")
  expect_s3_class(plot(des, type = "criterion"), "ggplot")
  expect_output(print(des), "Re-randomized design")
  expect_equal(des$ids, d$id)
  # A design is not a fit: it has its own methods, and no fit contract.
  expect_identical(class(des), "mkt_design")
  out <- withr::with_options(list(width = 80), capture.output(print(des)))
  expect_true(all(nchar(out) <= 80))
  expect_s3_class(ggplot2::autoplot(des, type = "criterion"), "ggplot")
  expect_error(plot(des, type = "love"), class = "mktcausal_error_bad_choice")
  expect_error(tidy(des, what = "arms"), class = "mktcausal_error_bad_choice")
  expect_error(balance(des, digits = 3), class = "mktcausal_error_unknown_argument")
  err <- tryCatch(rerandomize(d, ~ x1, n_treated = 30, n_calibration = 500), error = identity)
  expect_s3_class(err, "mktcausal_error_unknown_argument")
  expect_match(conditionMessage(err), "n_draws", fixed = TRUE)
})

test_that("a long search reports progress and stops at max_candidates", {
  withr::local_options(progressr.enable = TRUE)
  d <- sim_clusters(40, 3, seed = 16)
  updates <- 0
  set.seed(1)
  withCallingHandlers(
    expect_error(rerandomize(d, ~ x1 + x2 + x3, n_treated = 20, accept = 1e-12,
                             max_candidates = 2e5, n_draws = 1000, id = "id"),
                 class = "mktcausal_error_no_acceptable_assignment"),
    progression = function(cond) {
      if (identical(cond$type, "update")) updates <<- updates + cond$amount
    }
  )
  expect_gte(updates, 90)
})

test_that("both ways of drawing a candidate give complete randomization", {
  # Half-and-half designs draw by coin flips and corrections; small or
  # lopsided strata by a partial shuffle. Either way every cluster is
  # treated with probability n1/n and every pair with n1 (n1 - 1) / (n (n - 1)).
  check_uniform <- function(d, strata, n_treated, coin_flips) {
    # 12 pairs allow only 4096 assignments, which the design warns about
    des <- withCallingHandlers(
      rerandomize(d, ~ x1 + x2, n_treated = n_treated, strata = strata,
                  accept = 1, id = "id"),
      mktcausal_warning_granular_inference = function(w) invokeRestart("muffleWarning")
    )
    out <- mktcausal:::run_search(des$spec, want = 40000, max_candidates = 1e6,
                                  threshold = Inf)
    expect_identical(out$coin_flips, coin_flips)
    W <- out$assignments
    s <- if (is.null(strata)) rep("all", nrow(d)) else d[[strata]]
    for (g in unique(s)) {
      Wg <- W[s == g, , drop = FALSE]
      m <- nrow(Wg)
      t <- sum(Wg[, 1])
      expect_true(all(colSums(Wg) == t))
      expect_lt(max(abs(rowMeans(Wg) - t / m)), 0.012)
      pair <- tcrossprod(Wg) / ncol(Wg)
      expect_lt(max(abs(pair[upper.tri(pair)] - t * (t - 1) / (m * (m - 1)))), 0.011)
    }
  }
  d <- sim_clusters(24, 2, seed = 12)
  set.seed(12)
  check_uniform(d, NULL, 12, coin_flips = TRUE)
  d$pair <- rep(1:12, each = 2)
  check_uniform(d, "pair", 12, coin_flips = FALSE)
  d2 <- sim_clusters(60, 2, seed = 13)
  d2$region <- rep(c("a", "b"), c(36, 24))
  check_uniform(d2, "region", 30, coin_flips = TRUE)
  check_uniform(d2[1:30, ], NULL, 6, coin_flips = FALSE)
})

# --- buffer zones -----------------------------------------------------------------

test_that("a buffer splits clusters into treated, control and buffer by the neighbour rule", {
  sg <- sim_grid(10, 10, seed = 40)
  set.seed(40)
  des <- rerandomize(sg$data, ~ x1 + interior, n_treated = 20, accept = 0.2, id = "id",
                     buffer = sg$dist, buffer_radius = 1, n_draws = 2000)
  w <- des$treated
  exposed <- as.vector(sg$adjacency %*% w > 0)
  expect_identical(as.character(des$arm),
                   ifelse(w == 1, "treated", ifelse(exposed, "buffer", "control")))
  g <- glance(des)
  expect_equal(g$n_treated, 20)
  expect_equal(g$n_buffer, sum(w == 0 & exposed))
  expect_equal(g$n_control, sum(w == 0 & !exposed))
  expect_equal(g$n_treated + g$n_buffer + g$n_control, 100)
  cl <- tidy(des, what = "clusters")
  expect_identical(cl$arm, des$arm)
  expect_equal(cl$n_neighbours, as.vector(rowSums(sg$adjacency)))
  expect_equal(rowSums(des$arm_prob), rep(1, 100), ignore_attr = TRUE, tolerance = 1e-12)
  # 20 of 100 clusters treated: each cluster is treated with probability 0.2,
  # and an interior cluster (4 neighbours) is a control less often than a corner.
  expect_lt(max(abs(des$arm_prob[, "treated"] - 0.2)), 0.05)
  inner <- mean(des$arm_prob[rowSums(sg$adjacency) == 4, "control"])
  corner <- mean(des$arm_prob[rowSums(sg$adjacency) == 2, "control"])
  expect_gt(corner - inner, 0.1)
  expect_s3_class(plot(des, type = "buffer"), "ggplot")
  out <- capture.output(print(des))
  expect_true(any(grepl("Buffer \\(distance <= 1", out)))
})

test_that("balance is measured against the controls the buffer keeps", {
  sg <- sim_grid(8, 8, seed = 41)
  X <- as.matrix(sg$data[, c("x1", "interior")])
  set.seed(41)
  des <- rerandomize(sg$data, ~ x1 + interior, n_treated = 16, accept = 0.1, id = "id",
                     buffer = sg$adjacency, n_draws = 2000)
  w <- des$treated
  ctrl <- des$arm == "control"
  d <- colMeans(X[w == 1, ]) - colMeans(X[ctrl, ])
  # Whitened by the covariance of the difference in means under the base design.
  V <- stats::cov(X) * (1 / 16 + 1 / 48)
  expect_equal(des$criterion_value, drop(t(d) %*% solve(V, d)), tolerance = 1e-10)
  expect_lte(des$criterion_value, des$threshold)
  expect_equal(des$threshold_type, "empirical")
  b <- balance(des)
  expect_equal(b$mean_control, unname(colMeans(X[ctrl, ])), tolerance = 1e-12)
  expect_equal(b$std_diff, unname(d / apply(X, 2, stats::sd)), tolerance = 1e-10)
  expect_true(all(b$variance_reduction > 0.5))
  # With no links, the buffered criterion is the kernel's Morgan-Rubin criterion.
  none <- matrix(0, 64, 64, dimnames = dimnames(sg$adjacency))
  set.seed(42)
  d0 <- rerandomize(sg$data, ~ x1 + interior, n_treated = 16, accept = 0.1, id = "id",
                    buffer = none, n_draws = 500)
  expect_equal(d0$criterion_value, direct_mahalanobis(X, d0$treated), tolerance = 1e-10)
  expect_equal(sum(d0$arm == "buffer"), 0)
})

test_that("buffered designs are reproducible and every input form gives the same rule", {
  sg <- sim_grid(6, 6, seed = 43)
  pairs <- which(sg$adjacency == 1 & upper.tri(sg$adjacency), arr.ind = TRUE)
  pairs <- data.frame(a = sg$data$id[pairs[, 1]], b = sg$data$id[pairs[, 2]])
  make <- function(buffer, ...) {
    set.seed(44)
    rerandomize(sg$data, ~ x1, n_treated = 6, accept = 0.3, id = "id", buffer = buffer,
                n_draws = 500, ...)
  }
  a <- make(sg$adjacency)
  expect_identical(make(sg$adjacency)$arm, a$arm)
  expect_identical(make(sg$adjacency)$arm_prob, a$arm_prob)
  expect_identical(make(sg$dist, buffer_radius = 1)$arm, a$arm)
  expect_identical(make(pairs)$arm, a$arm)
  expect_identical(make(stats::as.dist(sg$dist), buffer_radius = 1.2)$arm, a$arm)
  expect_equal(a$buffer$n_links, nrow(pairs))
  # Group membership: clusters of the same row of the grid are neighbours.
  sg$data$row <- rep(1:6, 6)
  set.seed(45)
  expect_warning(
    g <- rerandomize(sg$data, ~ x1, n_treated = 2, accept = 0.5, id = "id", buffer = "row",
                     n_draws = 500),
    class = "mktcausal_warning_granular_inference"
  )
  treated_rows <- unique(sg$data$row[g$treated == 1])
  expect_true(all(g$arm[sg$data$row %in% treated_rows & g$treated == 0] == "buffer"))
  expect_true(all(g$arm[!sg$data$row %in% treated_rows] == "control"))
})

test_that("buffer errors name the missing clusters and say how many controls remain", {
  sg <- sim_grid(6, 6, seed = 46)
  A <- sg$adjacency[-(1:2), -(1:2)]
  expect_error(rerandomize(sg$data, ~ x1, n_treated = 6, id = "id", buffer = A),
               class = "mktcausal_error_bad_adjacency", regexp = "g001")
  bad_pairs <- data.frame(a = c("g001", "zz9"), b = c("g002", "g003"))
  expect_error(rerandomize(sg$data, ~ x1, n_treated = 6, id = "id", buffer = bad_pairs),
               class = "mktcausal_error_bad_adjacency", regexp = "zz9")
  set.seed(47)
  err <- expect_error(rerandomize(sg$data, ~ x1, n_treated = 12, id = "id",
                                  buffer = sg$dist, buffer_radius = 2.5, n_draws = 500,
                                  min_per_arm = 3),
                      class = "mktcausal_error_buffer_too_wide")
  expect_equal(err$n_untreated, 24)
  expect_lt(err$n_retained, 3)
  expect_error(rerandomize(sg$data, ~ x1, n_treated = 6, id = "id", buffer = sg$adjacency,
                           threshold = "chisq"),
               class = "mktcausal_error_bad_argument")
})

test_that("without a balance rule, the buffer's admissibility still binds every draw", {
  sg <- sim_grid(5, 5, seed = 48)
  set.seed(48)
  des <- rerandomize(sg$data, ~ x1, n_treated = 7, accept = 1, id = "id",
                     buffer = sg$adjacency, min_per_arm = 6, n_draws = 2000)
  expect_equal(des$threshold, Inf)
  # Many base draws keep fewer than 6 controls; none of the design's draws do.
  expect_gt(des$buffer$admissible_rate, 0.05)
  expect_lt(des$buffer$admissible_rate, 0.95)
  expect_gte(sum(des$arm == "control"), 6)
  W <- run_search(des$spec, 500, 1e6)$assignments
  kept <- colSums(W == 0 & sg$adjacency %*% W == 0)
  expect_true(all(kept >= 6))
})

test_that("asymptotic intervals and power simulation refuse buffered designs", {
  sg <- sim_grid(6, 6, seed = 43)
  set.seed(43)
  des <- rerandomize(sg$data, ~ x1, n_treated = 8, accept = 0.2, id = "id",
                     buffer = sg$adjacency, n_draws = 500)
  dd <- data.frame(id = sg$data$id, treated = des$treated, y = stats::rnorm(36))
  expect_error(rem_asymptotic(y ~ treated, dd, design = des),
               class = "mktcausal_error_unsupported_design")
  expect_error(design_power(x1 ~ 0 | id + interior, sg$data, design = des),
               class = "mktcausal_error_unsupported_design")
})

# --- arguments, counts, threads and interrupts ------------------------------------

test_that("degenerate tables and contradictory or unused arguments are classed errors", {
  d <- sim_clusters(30, 2, seed = 90)
  expect_error(rerandomize(d[0, ], ~ x1), class = "mktcausal_error_bad_data")
  expect_error(rerandomize(d[1, ], ~ x1), class = "mktcausal_error_bad_data")
  err <- tryCatch(rerandomize(d, ~ x1, n_treated = 10, prop_treated = 0.5), error = identity)
  expect_s3_class(err, "mktcausal_error_bad_argument")
  expect_match(conditionMessage(err), "not both")
  err <- tryCatch(rerandomize(d, ~ x1 + x2, criterion = "tiers"), error = identity)
  expect_s3_class(err, "mktcausal_error_bad_argument")
  expect_match(conditionMessage(err), "two tiers")
  expect_error(rerandomize(d, list(~ x1), accept = 0.1), class = "mktcausal_error_bad_argument")
  expect_error(rerandomize(d), class = "mktcausal_error_bad_argument")
  expect_error(rerandomize(d, ~ x1, min_per_arm = -1), class = "mktcausal_error_bad_argument")
  expect_error(rerandomize(d, ~ x1, min_per_arm = NA), class = "mktcausal_error_bad_argument")
  expect_error(rerandomize(d, ~ x1, buffer_radius = 1), class = "mktcausal_error_bad_argument")
  expect_error(stratify(d, size = "x1", bins = 2, buffer_radius = 1),
               class = "mktcausal_error_bad_argument")
})

test_that("a distance matrix as buffer needs buffer_radius", {
  sg <- sim_grid(6, 6, seed = 91)
  err <- tryCatch(rerandomize(sg$data, ~ x1, n_treated = 8, id = "id", buffer = sg$dist,
                              n_draws = 500), error = identity)
  expect_s3_class(err, "mktcausal_error_bad_adjacency")
  expect_match(conditionMessage(err), "buffer_radius", fixed = TRUE)
  expect_error(stratify(sg$data, size = "x1", bins = 2, id = "id", buffer = sg$dist),
               class = "mktcausal_error_bad_adjacency")
  expect_error(rerandomize(sg$data, ~ x1, n_treated = 8, id = "id", buffer = sg$adjacency,
                           buffer_radius = 1, n_draws = 500),
               class = "mktcausal_error_bad_argument")
  # With the radius, the buffer is the one the 0/1 adjacency gives.
  set.seed(91)
  a <- rerandomize(sg$data, ~ x1, n_treated = 8, id = "id", buffer = sg$dist,
                   buffer_radius = 1, accept = 0.5, n_draws = 500)
  set.seed(91)
  b <- rerandomize(sg$data, ~ x1, n_treated = 8, id = "id", buffer = sg$adjacency,
                   accept = 0.5, n_draws = 500)
  expect_identical(a$treated, b$treated)
  expect_identical(unname(a$buffer$A), unname(b$buffer$A))
})

test_that("max_candidates = 1e12 searches until the first acceptance and counts as a double", {
  d <- sim_clusters(60, 3, seed = 92)
  set.seed(92)
  des <- rerandomize(d, ~ x1 + x2 + x3, n_treated = 30, accept = 0.001, id = "id",
                     max_candidates = 1e12, n_draws = 1e4)
  expect_type(des$candidates, "double")
  expect_gt(des$candidates, 0)
  expect_lt(des$candidates, 1e7)
  expect_lte(des$criterion_value, des$threshold)
  # The count is the position of the accepted candidate in the stream: the
  # same search with exactly that many candidates finds it, one fewer does not.
  spec <- des$spec
  seed <- c(5L, 6L)
  first <- mktcausal:::cpp_rerandomize_first(
    spec$z, spec$units, spec$start, spec$n_small, spec$small_treated, spec$crit_type,
    spec$block_start, spec$threshold, seed, 1e12, 4096L, 1L, NULL)
  again <- mktcausal:::cpp_rerandomize_first(
    spec$z, spec$units, spec$start, spec$n_small, spec$small_treated, spec$crit_type,
    spec$block_start, spec$threshold, seed, first$candidates, 4096L, 1L, NULL)
  short <- mktcausal:::cpp_rerandomize_first(
    spec$z, spec$units, spec$start, spec$n_small, spec$small_treated, spec$crit_type,
    spec$block_start, spec$threshold, seed, first$candidates - 1, 4096L, 1L, NULL)
  expect_identical(again$assignments, first$assignments)
  expect_identical(ncol(short$assignments), 0L)
  expect_identical(short$candidates, first$candidates - 1)
  err <- tryCatch(rerandomize(d, ~ x1 + x2 + x3, n_treated = 30, accept = 1e-12, id = "id",
                              max_candidates = 3000, n_draws = 1000), error = identity)
  expect_s3_class(err, "mktcausal_error_no_acceptable_assignment")
  expect_identical(err$candidates, 3000)
  expect_match(conditionMessage(err), "3,000 candidates", fixed = TRUE)
})

test_that("searches and draws are identical for 1 and 2 threads", {
  d <- sim_clusters(120, 4, seed = 93)
  d$region <- rep(c("a", "b", "c"), 40)
  withr::local_options(mktcausal.threads = NULL)
  run <- function(threads, strata = NULL, n_treated = 60) {
    mkt_threads(threads)
    set.seed(93)
    des <- rerandomize(d, ~ x1 + x2 + x3 + x4, n_treated = n_treated, strata = strata,
                       accept = 0.001, id = "id", n_draws = 2e4)
    draws <- mktcausal:::draw_assignments(des$spec, 1:3000, c(7L, 8L), budget = 1e6)
    score <- mktcausal:::cpp_rerandomize_score(
      des$spec$z, des$spec$units, des$spec$start, des$spec$n_small, des$spec$small_treated,
      des$spec$crit_type, des$spec$block_start, c(9L, 10L), 2e5, 4096L, threads)
    list(des = des[c("treated", "candidates", "calibration", "threshold")], draws = draws,
         score = score)
  }
  # coin flips (half treated) and partial shuffles (a third treated, strata)
  expect_identical(run(1), run(2))
  expect_identical(run(1, "region", 40), run(2, "region", 40))
})

test_that("reference draws depend on the seed and the replicate's index only", {
  d <- sim_clusters(50, 2, seed = 94)
  set.seed(94)
  des <- rerandomize(d, ~ x1 + x2, n_treated = 20, accept = 0.05, id = "id", n_draws = 2000)
  all <- mktcausal:::draw_assignments(des$spec, 1:400, c(1L, 2L), budget = 1e6)
  some <- mktcausal:::draw_assignments(des$spec, c(7, 300, 51), c(1L, 2L), budget = 1e6)
  expect_identical(some$assignments, all$assignments[, c(7, 300, 51)])
  # every draw passes the rule
  expect_true(all(colSums((des$spec$z %*% all$assignments)^2) <= des$threshold + 1e-9))
  for (chunk in c(1, 50, 1000)) {
    set.seed(95)
    pool <- mktcausal:::reference_pool(des$spec, des$threshold, FALSE, 400, chunk,
                                       des$acceptance_rate)
    if (chunk == 1) first <- pool$assignments else expect_identical(pool$assignments, first)
  }
})

test_that("an interrupt stops a long search within a second", {
  skip_on_cran()
  skip_if_not_installed("processx")
  setup <- paste(
    "set.seed(1); d <- data.frame(id = 1:200, x1 = rnorm(200), x2 = rnorm(200))",
    "spec <- mktcausal:::design_spec(as.matrix(d[, 2:3]), factor(rep('a', 200)), 100L,",
    "  c(1L, 1L), 'mahalanobis')", sep = "\n")
  took <- seconds_to_stop(
    "rerandomize(d, ~ x1 + x2, n_treated = 100, accept = 1e-12, n_draws = 1000, max_candidates = 1e12)",
    setup)
  expect_lt(took, 1)
  took <- seconds_to_stop(
    "mktcausal:::draw_assignments(spec, 1:1e5, c(1L, 2L), budget = 1e6, threshold = 0)",
    setup)
  expect_lt(took, 1)
})

test_that("balance() of something that is not a design is a classed error", {
  expect_error(balance(list()), class = "mktcausal_error_bad_argument")
  expect_error(balance(data.frame(x = 1)), class = "mktcausal_error_bad_argument")
})
