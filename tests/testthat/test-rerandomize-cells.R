# Multi-cell designs: rerandomize() with several named treated cells.

cells_data <- function(n = 90, seed = 1) {
  set.seed(seed)
  data.frame(id = sprintf("g%03d", seq_len(n)), x1 = rnorm(n), x2 = rexp(n),
             x3 = runif(n), region = rep(c("a", "b", "c"), length.out = n))
}

# Covariance of the stacked imbalance tau under complete randomization
# within strata, from the covariances of the cell indicators (not from the
# package's Kronecker form): for clusters i != j of a stratum of m with cells
# of sizes n_c, P(i in a, j in b) = n_a (n_b - [a == b]) / (m (m - 1)).
stacked_cov <- function(X, strata, alloc) {
  k <- ncol(alloc)
  d <- ncol(X)
  strata <- as.factor(strata)
  N <- nrow(X)
  V <- matrix(0, (k - 1) * d, (k - 1) * d)
  for (s in seq_len(nlevels(strata))) {
    rows <- which(as.integer(strata) == s)
    m <- length(rows)
    ns <- alloc[s, ]
    pi_s <- m / N
    p <- ns / m
    # covariance of indicators of cells a, b for units i, j
    ind_cov <- function(a, b, same) {
      if (same) return((a == b) * p[a] - p[a] * p[b])
      ns[a] * (ns[b] - (a == b)) / (m * (m - 1)) - p[a] * p[b]
    }
    # tau_a = pi_s sum_j x_j (1{j in a} / n_a - 1{j in 0} / n_0)
    coef <- function(a) {  # coefficients of indicators (cell index, weight)
      list(c(a + 1, 1 / ns[a + 1]), c(1, -1 / ns[1]))
    }
    for (a in seq_len(k - 1)) for (b in seq_len(k - 1)) {
      block <- matrix(0, d, d)
      for (ca in coef(a)) for (cb in coef(b)) {
        for (ii in seq_len(m)) for (jj in seq_len(m)) {
          cv <- ind_cov(ca[1], cb[1], ii == jj)
          if (cv != 0) block <- block + ca[2] * cb[2] * cv * tcrossprod(X[rows[ii], ], X[rows[jj], ])
        }
      }
      ia <- (a - 1) * d + seq_len(d)
      ib <- (b - 1) * d + seq_len(d)
      V[ia, ib] <- V[ia, ib] + pi_s^2 * block
    }
  }
  V
}

stacked_tau <- function(X, strata, code, k) {
  strata <- as.factor(strata)
  out <- NULL
  for (b in seq_len(k - 1)) {
    t_b <- 0
    for (s in levels(strata)) {
      r <- strata == s
      t_b <- t_b + mean(r) * (colMeans(X[r & code == b, , drop = FALSE]) -
                                colMeans(X[r & code == 0, , drop = FALSE]))
    }
    out <- c(out, t_b)
  }
  out
}

test_that("two-arm designs carry cells, a cell factor and sizes by stratum", {
  d <- cells_data(40)
  set.seed(2)
  des <- rerandomize(d, ~ x1 + x2, n_treated = 15, strata = "region", accept = 0.2,
                     id = "id", n_draws = 1000)
  expect_false(des$multi_cell)
  expect_identical(des$cells, c("control", "treated"))
  expect_identical(levels(des$cell), des$cells)
  expect_identical(mktcausal:::cells_code(des), des$treated)
  expect_identical(unname(des$n_by_stratum[, "treated"]), unname(des$n_treated_by_stratum))
  expect_identical(unclass(table(des$strata, des$cell)), des$n_by_stratum,
                   ignore_attr = TRUE)
})

test_that("cell sizes are exact in every stratum and shared in proportion", {
  d <- cells_data(90)
  set.seed(3)
  des <- rerandomize(d, ~ x1 + x2 + x3, n_treated = c(heavy_up = 20, go_dark = 31),
                     strata = "region", accept = 0.1, id = "id", n_draws = 2000)
  expect_true(des$multi_cell)
  expect_null(des$treated)
  expect_identical(des$cells, c("control", "heavy_up", "go_dark"))
  expect_identical(levels(des$cell), des$cells)
  expect_length(des$cell, 90L)
  tab <- table(des$strata, des$cell)
  expect_identical(as.vector(tab), as.vector(des$n_by_stratum))
  expect_identical(colSums(des$n_by_stratum)[-1], c(heavy_up = 20, go_dark = 31))
  # 30 clusters a stratum: 20 -> 7, 7, 6 and 31 -> 10, 10, 11, with the rounding
  # of the second cell going to the stratum that got less of the first.
  expect_identical(unname(des$n_by_stratum[, "heavy_up"]), c(7L, 7L, 6L))
  expect_identical(unname(des$n_by_stratum[, "go_dark"]), c(10L, 10L, 11L))
  expect_identical(mktcausal:::cells_code(des), as.integer(des$cell) - 1L)
})

test_that("the returned criterion equals an independent computation", {
  d <- cells_data(24)
  set.seed(4)
  des <- rerandomize(d, ~ x1 + x2, n_treated = c(a = 6, b = 9), strata = "region",
                     accept = 0.1, id = "id", n_draws = 1000)
  X <- as.matrix(d[, c("x1", "x2")])
  code <- mktcausal:::cells_code(des)
  tau <- stacked_tau(X, d$region, code, 3)
  V <- stacked_cov(X, d$region, des$n_by_stratum)
  expect_equal(des$spec$cov, V, tolerance = 1e-10)
  expect_equal(des$criterion_value, drop(crossprod(tau, solve(V, tau))), tolerance = 1e-8)
  expect_lte(des$criterion_value, des$threshold)
  # Invariant to the reference cell: with cell b as reference.
  tau_b <- c(tau[3:4], tau[3:4] - tau[1:2])  # (0 - b, a - b) up to sign
  J <- rbind(cbind(0 * diag(2), -diag(2)), cbind(diag(2), -diag(2)))
  expect_equal(drop(crossprod(J %*% tau, solve(J %*% V %*% t(J), J %*% tau))),
               des$criterion_value, tolerance = 1e-8)
})

test_that("under accept = 1 the joint criterion has mean (k - 1) d", {
  d <- cells_data(60)
  set.seed(5)
  des <- rerandomize(d, ~ x1 + x2 + x3, n_treated = c(a = 15, b = 15, c = 10),
                     accept = 1, id = "id", n_draws = 20000)
  expect_identical(des$threshold, Inf)
  expect_identical(des$acceptance_rate, 1)
  # E[M] = trace(V^-1 V) = (k - 1) d = 9 exactly; Var(M) is about 2 * 9.
  se <- sqrt(18 / 20000)
  expect_lt(abs(mean(des$calibration) - 9), 4 * se)
})

test_that("the chi-squared threshold accepts about `accept` of the base design", {
  d <- cells_data(210)
  set.seed(6)
  des <- rerandomize(d, ~ x1 + x2 + x3, n_treated = c(heavy_up = 70, go_dark = 70),
                     accept = 0.1, id = "id", n_draws = 2000)
  expect_equal(des$threshold, stats::qchisq(0.1, 6))
  expect_lt(abs(des$acceptance_rate - 0.1), 3 * sqrt(0.1 * 0.9 / 2000))
  # The base-design draws scored by the kernel agree with an independent
  # computation of the criterion on assignments drawn in R.
  X <- as.matrix(d[, c("x1", "x2", "x3")])
  V <- stacked_cov(X[1:30, ], rep(1, 30), matrix(c(10, 10, 10), 1))
  expect_equal(V, mktcausal:::cells_spec(X[1:30, ], factor(rep(1, 30)),
                                         matrix(c(10L, 10L, 10L), 1))$cov, tolerance = 1e-10)
})

test_that("reference_cells() follows the rule for any chunk size", {
  d <- cells_data(45)
  set.seed(7)
  des <- rerandomize(d, ~ x1 + x2, n_treated = c(a = 9, b = 12), strata = "region",
                     accept = 0.2, id = "id", n_draws = 2000)
  set.seed(70)
  r1 <- mktcausal:::reference_cells(des, 300, chunk_size = 100)
  set.seed(70)
  r2 <- mktcausal:::reference_cells(des, 300, chunk_size = 1000)
  expect_identical(r1$cells, r2$cells)
  expect_identical(r1$candidates, r2$candidates)
  expect_false(r1$exact)
  expect_identical(dim(r1$cells), c(45L, 300L))
  expect_true(is.integer(r1$cells))
  X <- des$X
  crit <- apply(r1$cells, 2, function(code) {
    tau <- stacked_tau(X, d$region, code, 3)
    drop(crossprod(tau, solve(des$spec$cov, tau)))
  })
  expect_true(all(crit <= des$threshold + 1e-9))
  for (r in seq_len(ncol(r1$cells))) {
    expect_identical(as.vector(table(factor(d$region), factor(r1$cells[, r], 0:2))),
                     as.vector(des$n_by_stratum))
  }
  # About 1 / 0.2 candidates per accepted draw.
  expect_lt(abs(r1$candidates / 300 - 5), 1.5)
})

test_that("each cluster falls in each cell with its size share under the rule", {
  skip_on_cran()
  set.seed(8)
  d <- data.frame(x1 = rnorm(60), x2 = rnorm(60))
  des <- rerandomize(d, ~ x1 + x2, n_treated = c(a = 20, b = 20), accept = 0.05,
                     n_draws = 5000)
  set.seed(80)
  W <- mktcausal:::reference_cells(des, 3000)$cells
  p <- sapply(0:2, function(c) rowMeans(W == c))
  se <- sqrt(1 / 3 * 2 / 3 / 3000)
  expect_lt(max(abs(p - 1 / 3)), 5 * se)
  expect_equal(colMeans(p), rep(1 / 3, 3), tolerance = 1e-12)
})

test_that("a two-arm design's reference cells are its reference pool", {
  d <- cells_data(40)
  set.seed(9)
  des <- rerandomize(d, ~ x1 + x2, n_treated = 20, accept = 0.2, id = "id", n_draws = 1000)
  set.seed(90)
  r <- mktcausal:::reference_cells(des, 200, chunk_size = 50)
  expect_identical(dim(r$cells), c(40L, 200L))
  expect_true(all(colSums(r$cells) == 20L))
  expect_false(r$exact)
  set.seed(90)
  expect_identical(mktcausal:::reference_cells(des, 200, chunk_size = 1000)$cells, r$cells)
})

test_that("bad cells get classed errors naming the argument", {
  d <- cells_data(30)
  rr <- function(...) rerandomize(d, ~ x1 + x2, id = "id", n_draws = 500, ...)
  expect_error(rr(n_treated = c(a = 5, a = 5)), class = "mktcausal_error_bad_argument",
               regexp = "distinct")
  expect_error(rr(n_treated = c(control = 5, b = 5)), class = "mktcausal_error_bad_argument",
               regexp = "control")
  expect_error(rr(n_treated = c(5, 5)), class = "mktcausal_error_bad_argument",
               regexp = "name")
  expect_error(rr(n_treated = stats::setNames(c(5, 5), c("a", ""))),
               class = "mktcausal_error_bad_argument", regexp = "empty name")
  expect_error(rr(n_treated = c(a = 20, b = 15)), class = "mktcausal_error_bad_argument",
               regexp = "35 clusters")
  expect_error(rr(n_treated = c(a = -2, b = 5)), class = "mktcausal_error_bad_argument",
               regexp = "whole numbers")
  expect_error(rr(n_treated = c(a = 2.5, b = 5)), class = "mktcausal_error_bad_argument",
               regexp = "whole numbers")
  expect_error(rr(prop_treated = c(a = 0.6, b = 0.5)), class = "mktcausal_error_bad_argument",
               regexp = "n_treated|prop_treated")
  expect_error(rr(n_treated = c(a = 5)), class = "mktcausal_error_bad_argument",
               regexp = "two-arm")
  # 10 clusters a stratum cannot hold 2 per cell of 6 cells
  err <- tryCatch(rr(n_treated = c(a = 3, b = 3, c = 3, d = 3, e = 3), strata = "region",
                     min_per_arm = 2), error = identity)
  expect_s3_class(err, "mktcausal_error_strata_too_small")
  expect_match(conditionMessage(err), "n_treated")
  expect_match(conditionMessage(err), "strata")
  expect_error(rr(n_treated = c(a = 5, b = 5), criterion = "max_abs"),
               class = "mktcausal_error_bad_argument")
})

test_that("prop_treated with named shares makes cells", {
  d <- cells_data(60)
  set.seed(10)
  des <- rerandomize(d, ~ x1, prop_treated = c(a = 0.25, b = 0.25), accept = 0.2,
                     id = "id", n_draws = 1000)
  expect_identical(as.vector(table(des$cell)), c(30L, 15L, 15L))
})

test_that("a multi-cell design refuses to be edited", {
  d <- cells_data(30)
  set.seed(11)
  des <- rerandomize(d, ~ x1, n_treated = c(a = 10, b = 10), accept = 0.2, id = "id",
                     n_draws = 500)
  expect_silent(mktcausal:::check_design(des))
  bad <- des
  bad$cell <- factor(rev(as.character(des$cell)), levels = des$cells)
  expect_error(mktcausal:::check_design(bad), class = "mktcausal_error_design_modified")
})

test_that("functions not extended to cells refuse a multi-cell design", {
  d <- cells_data(30)
  set.seed(12)
  des <- rerandomize(d, ~ x1 + x2, n_treated = c(heavy_up = 10, go_dark = 10), accept = 0.2,
                     id = "id", n_draws = 500)
  d$treated <- as.integer(des$cell != "control")
  d$y <- d$x1 + rnorm(30)
  A <- matrix(0, 30, 30, dimnames = list(d$id, d$id))
  A[cbind(1:29, 2:30)] <- 1
  A <- A + t(A)
  panel <- data.frame(id = rep(d$id, each = 4), week = rep(1:4, 30),
                      treated = rep(d$treated, each = 4), y = rnorm(120))
  cls <- "mktcausal_error_multi_cell_unsupported"
  expect_error(spillover(y ~ treated, d, A, design = des), class = cls, regexp = "spillover")
  expect_error(rem_asymptotic(y ~ treated, d, design = des), class = cls,
               regexp = "rem_asymptotic")
  expect_error(experiment_diagnostics(d, "treated", design = des), class = cls,
               regexp = "experiment_diagnostics")
  expect_error(assignment(y ~ treated | id + week, panel, design = des), class = cls,
               regexp = "assignment")
  err <- tryCatch(rem_asymptotic(y ~ treated, d, design = des), error = identity)
  expect_match(conditionMessage(err), "heavy_up")
  expect_match(conditionMessage(err), "0/1 without the design")
})

test_that("buffers with several cells keep every cell's neighbours out of the control", {
  d <- cells_data(30)
  A <- matrix(0, 30, 30, dimnames = list(d$id, d$id))
  A[cbind(1:29, 2:30)] <- 1
  A <- A + t(A)
  set.seed(2)
  des <- rerandomize(d, ~ x1, n_treated = c(a = 5, b = 5), id = "id", buffer = A,
                     accept = 0.2, n_draws = 500)
  code <- as.integer(des$cell) - 1L
  next_to_treated <- as.vector(A %*% (code > 0)) > 0
  expect_identical(as.character(des$arm) == "buffer", code == 0L & next_to_treated)
  expect_true(all(nchar(capture.output(print(des))) <= 80))
  expect_true(all(c("arm", "prob_a", "prob_b", "prob_control", "prob_buffer") %in%
                    names(tidy(des, what = "clusters"))))
  expect_error(design_power(x1 ~ 0 | id, d, design = des),
               class = "mktcausal_error_unsupported_design")
})

test_that("balance, tidy, glance and print describe every pair of cells", {
  d <- cells_data(60)
  set.seed(13)
  des <- rerandomize(d, ~ x1 + x2, n_treated = c(heavy_up = 15, go_dark = 20),
                     strata = "region", accept = 0.1, id = "id", n_draws = 2000)
  b <- balance(des)
  expect_identical(nrow(b), 6L)
  expect_identical(paste(b$cell, b$versus)[c(1, 3, 5)],
                   c("heavy_up control", "go_dark control", "go_dark heavy_up"))
  X <- as.matrix(d[, c("x1", "x2")])
  code <- mktcausal:::cells_code(des)
  tau <- matrix(stacked_tau(X, d$region, code, 3), 2)
  sd_x <- apply(X, 2, sd)
  expect_equal(b$std_diff, c(tau[, 1] / sd_x, tau[, 2] / sd_x, (tau[, 2] - tau[, 1]) / sd_x),
               ignore_attr = TRUE, tolerance = 1e-10)
  expect_equal(b$mean_cell[1], mean(d$x1[des$cell == "heavy_up"]))
  expect_equal(b$mean_versus[5], mean(d$x1[des$cell == "heavy_up"]))
  # expected |std diff| before the rule from the covariance of the pair's contrast
  V <- stacked_cov(X, d$region, des$n_by_stratum)
  v_pair <- V[1, 1] + V[3, 3] - 2 * V[1, 3]
  expect_equal(b$expected_abs_std_diff_before[5], sqrt(2 / pi * v_pair) / sd_x[[1]])
  expect_equal(b$expected_abs_std_diff_after / b$expected_abs_std_diff_before,
               rep(sqrt(1 - des$variance_reduction[[1]]), 6))
  expect_identical(tidy(des), b)
  cl <- tidy(des, what = "clusters")
  expect_named(cl, c("id", "stratum", "cell"))
  expect_identical(cl$cell, des$cell)
  g <- glance(des)
  expect_identical(g$n_cells, 3L)
  expect_identical(g$n_treated, 35L)
  expect_identical(g$n_control, 25L)
  out <- capture.output(print(des))
  expect_true(all(nchar(out) <= 80))
  expect_match(out[1], "3 cells")
  expect_true(any(grepl("control 25, heavy_up 15, go_dark 20", out)))
  expect_true(any(grepl("go_dark vs heavy_up", out)))
  expect_s3_class(plot(des), "ggplot")
  expect_s3_class(plot(des, type = "criterion"), "ggplot")
})

test_that("matched blocks of one cluster per cell feed a multi-cell design", {
  set.seed(14)
  d <- data.frame(id = sprintf("g%02d", 1:60), x1 = rnorm(60), x2 = rnorm(60))
  s <- stratify(d, method = "matched", covariates = ~ x1 + x2, block_size = 3,
                prop_treated = c(heavy_up = 1 / 3, go_dark = 1 / 3))
  expect_identical(nlevels(s$stratum), 20L)
  expect_true(all(s$n_by_stratum == 1L))
  tb <- tidy(s)
  expect_named(tb, c("stratum", "n", "n_treated", "n_control", "n_heavy_up", "n_go_dark"))
  expect_identical(tb$n_treated, rep(2L, 20))
  out <- capture.output(print(s))
  expect_true(any(grepl("shares heavy_up 0.333, go_dark 0.333", out)))
  expect_true(all(nchar(out) <= 80))
  # The strata bring their cells; each block gets one cluster of each cell.
  des <- rerandomize(d, ~ x1 + x2, strata = s, id = "id", accept = 0.1, n_draws = 2000)
  expect_identical(des$cells, c("control", "heavy_up", "go_dark"))
  expect_true(all(table(des$strata, des$cell) == 1L))
  same <- rerandomize(d, ~ x1 + x2, strata = s, id = "id", accept = 0.1, n_draws = 2000,
                      n_treated = c(heavy_up = 20, go_dark = 20))
  expect_identical(same$n_by_stratum, des$n_by_stratum)
  # The criterion with blocks equals the independent stratum-weighted one.
  X <- as.matrix(d[, c("x1", "x2")])
  tau <- stacked_tau(X, s$stratum, mktcausal:::cells_code(des), 3)
  V <- stacked_cov(X, s$stratum, des$n_by_stratum)
  expect_equal(des$criterion_value, drop(crossprod(tau, solve(V, tau))), tolerance = 1e-8)
  set.seed(15)
  W <- mktcausal:::reference_cells(des, 200)$cells
  expect_true(all(apply(W, 2, function(w) all(table(s$stratum, w) == 1L))))
  # Leftover clusters join a block: 61 clusters make one block of 4.
  d61 <- rbind(d, data.frame(id = "g61", x1 = 0, x2 = 0))
  s61 <- stratify(d61, method = "matched", covariates = ~ x1 + x2, block_size = 3,
                  prop_treated = c(heavy_up = 1 / 3, go_dark = 1 / 3))
  expect_identical(sum(s61$n_by_stratum), 61L)
  expect_true(all(s61$n_by_stratum >= 1L))
  # Blocks too small for the cells
  expect_error(stratify(d, method = "matched", covariates = ~ x1 + x2, block_size = 2,
                        prop_treated = c(a = 1 / 3, b = 1 / 3)),
               class = "mktcausal_error_strata_too_small", regexp = "prop_treated")
})

test_that("multi-cell draws do not depend on the number of threads", {
  d <- cells_data(90)
  old <- options(mktcausal.threads = 1L)
  on.exit(options(old))
  set.seed(16)
  one <- rerandomize(d, ~ x1 + x2 + x3, n_treated = c(a = 30, b = 30), accept = 0.001,
                     id = "id", n_draws = 2000, max_candidates = 1e7)
  set.seed(17)
  ref_one <- mktcausal:::reference_cells(one, 100)
  options(mktcausal.threads = 2L)
  set.seed(16)
  two <- rerandomize(d, ~ x1 + x2 + x3, n_treated = c(a = 30, b = 30), accept = 0.001,
                     id = "id", n_draws = 2000, max_candidates = 1e7)
  set.seed(17)
  ref_two <- mktcausal:::reference_cells(two, 100)
  expect_identical(one$cell, two$cell)
  expect_identical(one$candidates, two$candidates)
  expect_identical(one$calibration, two$calibration)
  expect_identical(ref_one, ref_two)
  # The kernel itself, with small blocks so that both threads search.
  first <- function(threads) {
    mktcausal:::cpp_cells_first(one$spec, stats::qchisq(1e-4, 6), c(3L, 4L), 1e6, 64L,
                                threads, NULL)
  }
  expect_identical(first(1L), first(2L))
  each <- function(threads) {
    mktcausal:::cpp_cells_each(one$spec, one$threshold, c(5L, 6L), as.numeric(1:64), 1e6,
                               threads, NULL)
  }
  expect_identical(each(1L), each(2L))
  expect_identical(mktcausal:::cpp_cells_score(one$spec, c(7L, 8L), 5000, 256L, 1L),
                   mktcausal:::cpp_cells_score(one$spec, c(7L, 8L), 5000, 256L, 2L))
})

test_that("both multi-cell draws are complete randomization within strata", {
  skip_on_cran()
  set.seed(18)
  n <- 48
  X <- cbind(rnorm(n), rexp(n))
  strata <- factor(rep(c("s1", "s2"), c(30, 18)))
  alloc <- matrix(c(12L, 6L, 9L, 6L, 9L, 6L), 2, dimnames = list(c("s1", "s2"), c("control", "a", "b")))
  spec <- mktcausal:::cells_spec(X, strata, alloc)
  R <- 20000
  for (force in 1:2) {
    spec$force <- force
    res <- mktcausal:::cpp_cells_each(spec, Inf, c(11L, 12L), as.numeric(seq_len(R)), 1, 1L,
                                      NULL)
    W <- res$assignments
    # every draw has the stratum's cell sizes
    expect_true(all(apply(W, 2, function(w) all(table(strata, factor(w, 0:2)) == alloc))))
    # each cluster's cell probabilities are its stratum's shares
    share <- alloc[as.integer(strata), ] / as.vector(table(strata))[as.integer(strata)]
    p <- sapply(0:2, function(c) rowMeans(W == c))
    z <- (p - share) / sqrt(share * (1 - share) / R)
    expect_lt(max(abs(z)), 5)
    # pairs within a stratum are in cell a together with probability
    # n_a (n_a - 1) / (m (m - 1))
    both <- tcrossprod(W[1:30, ] == 1L) / R
    expected <- 9 * 8 / (30 * 29)
    off <- both[upper.tri(both)]
    expect_lt(max(abs(off - expected) / sqrt(expected * (1 - expected) / R)), 5.5)
    # the kernel's criterion of each draw equals the independent one
    tau <- apply(W[, 1:50], 2, function(w) stacked_tau(X, strata, w, 3))
    crit <- colSums(tau * solve(spec$cov, tau))
    expect_equal(res$values[1, 1:50], crit, tolerance = 1e-8)
  }
})

test_that("the empirical threshold is the accept quantile of the base draws", {
  d <- cells_data(30)
  s <- stratify(d, by = "region", method = "exact",
                prop_treated = c(heavy_up = 0.3, go_dark = 0.3))
  expect_identical(unname(s$n_by_stratum[, "heavy_up"]), c(3L, 3L, 3L))
  set.seed(19)
  des <- rerandomize(d, ~ x1 + x2, strata = s, threshold = "empirical", accept = 0.1,
                     n_draws = 5000, id = "id")
  expect_identical(des$threshold_type, "empirical")
  expect_equal(des$threshold, stats::quantile(des$calibration, 0.1, type = 1, names = FALSE))
  expect_equal(des$acceptance_rate, mean(des$calibration <= des$threshold))
  expect_lte(des$criterion_value, des$threshold)
  # variance reduction from the realized threshold, as for chi-squared rules
  expect_equal(unname(des$variance_reduction),
               rep(1 - stats::pchisq(des$threshold, 6) / stats::pchisq(des$threshold, 4), 2))
})
