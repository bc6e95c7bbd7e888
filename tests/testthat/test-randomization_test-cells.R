# randomization_test() with a design of several cells: per-contrast and
# family-wise (max-T) p-values conditional on the acceptance rule.

cells_geos <- function(n = 60, seed = 1) {
  set.seed(seed)
  d <- data.frame(geo = sprintf("g%02d", seq_len(n)), pre = rlnorm(n, 5, 0.4), x2 = rnorm(n))
  d
}

cells_design <- function(d, ...) {
  suppressWarnings(rerandomize(d, ~ pre + x2, n_treated = c(heavy_up = 20, go_dark = 20),
                               accept = 0.1, id = "geo", ...))
}

test_that("p-values equal a direct count over the rule's reference draws", {
  d <- cells_geos()
  des <- cells_design(d)
  d$cell <- as.character(des$cell)
  d$sales <- d$pre * (1 + 0.04 * (d$cell == "heavy_up")) + rnorm(60, 0, 3)
  set.seed(11)
  rt <- randomization_test(sales ~ cell, d, design = des, n_draws = 400)
  set.seed(11)
  W <- reference_cells(des, 400)$cells
  # Difference of cell means, each assignment, by hand.
  stat <- function(w, a, b) mean(d$sales[w == a]) - mean(d$sales[w == b])
  tstat <- function(w, a, b) {
    ya <- d$sales[w == a]
    yb <- d$sales[w == b]
    (mean(ya) - mean(yb)) / sqrt(var(ya) / length(ya) + var(yb) / length(yb))
  }
  obs <- as.integer(des$cell) - 1L
  td <- tidy(rt)
  expect_equal(td$term, c("heavy_up - control", "go_dark - control"))
  for (c in 1:2) {
    # Each contrast's test uses its studentized difference.
    expect_equal(td$estimate[c], stat(obs, c, 0), tolerance = 1e-10)
    s_obs <- tstat(obs, c, 0)
    s_ref <- apply(W, 2, tstat, a = c, b = 0)
    expect_equal(td$p.value[c], (1 + sum(abs(s_ref) >= abs(s_obs) - 1e-9)) / 401)
  }
  t_ref <- rbind(apply(W, 2, tstat, a = 1, b = 0), apply(W, 2, tstat, a = 2, b = 0))
  max_t <- apply(abs(t_ref), 2, max)
  t_obs <- c(tstat(obs, 1, 0), tstat(obs, 2, 0))
  expect_equal(td$t, t_obs, tolerance = 1e-10)
  expect_equal(td$p.value_familywise,
               vapply(t_obs, function(t) (1 + sum(max_t >= abs(t) - 1e-9)) / 401, numeric(1)))
  expect_true(all(td$p.value_familywise >= td$p.value))
  # The same seed gives the same p-values for another chunk size.
  set.seed(11)
  rt2 <- randomization_test(sales ~ cell, d, design = des, n_draws = 400, chunk_size = 37)
  expect_equal(tidy(rt2)$p.value, td$p.value)
  # The Lin statistic is experiment_effect()'s Lin t.
  rl <- randomization_test(sales ~ cell, d, design = des, n_draws = 200, statistic = "lin_t")
  fit <- experiment_effect(sales ~ cell, d, design = des, n_draws = 200)
  lin <- tidy(fit)[tidy(fit)$estimator == "lin", ]
  expect_equal(tidy(rl)$t, lin$estimate / lin$std.error, tolerance = 1e-10)
  expect_equal(tidy(rl)$estimate, lin$estimate, tolerance = 1e-10)
  # Contrasts and printout.
  rc <- randomization_test(sales ~ cell, d, design = des, n_draws = 200,
                           contrasts = list(c("heavy_up", "go_dark")))
  expect_equal(tidy(rc)$term[3], "heavy_up - go_dark")
  expect_true(all(nchar(capture.output(print(rc))) <= 80))
  expect_s3_class(plot(rc), "ggplot")
  expect_error(randomization_test(sales ~ cell, d, design = des, n_draws = 200, null = 1),
               class = "mktcausal_error_inference_unsupported")
  expect_error(randomization_test(sales ~ cell, d, design = des, n_draws = 200,
                                  contrasts = list(c("go_dark", "nope"))),
               class = "mktcausal_error_bad_contrast")
})

test_that("size and family-wise error are nominal at zero effect; an effect in one cell is found", {
  skip_on_cran()
  d <- cells_geos(n = 60, seed = 5)
  des <- cells_design(d)
  cells <- des$cells
  pairs <- check_contrasts(list(c("heavy_up", "go_dark")), cells)
  reps <- 300
  set.seed(7)
  # Each replicate: an observed assignment and 199 reference assignments,
  # all drawn independently from the design's rule.
  pool <- reference_cells(des, reps * 200)$cells
  y0 <- d$pre * 10 + rnorm(60, 0, 20)
  rej <- matrix(FALSE, reps, 3)
  fw <- logical(reps)
  found <- logical(reps)
  for (r in seq_len(reps)) {
    cols <- (r - 1) * 200 + 1:200
    w <- pool[, cols[1]]
    des_r <- des
    des_r$cell <- factor(cells[w + 1L], levels = cells)
    y <- y0 + rnorm(60, 0, 20)
    ref <- list(W = pool[, cols[-1]], exact = FALSE)
    res <- randomization_test_cells(des_r, y, "diff_in_means", pairs, 199, reference = ref)
    rej[r, ] <- res$p.value <= 0.05
    fw[r] <- any(res$p.value_familywise <= 0.05)
    # Heavy-up lifts its clusters by 25%; go-dark does nothing.
    y1 <- y + 0.25 * y0 * (w == 1L)
    res1 <- randomization_test_cells(des_r, y1, "diff_in_means", pairs, 199, reference = ref)
    found[r] <- res1$p.value_familywise[1] <= 0.05
  }
  se <- sqrt(0.05 * 0.95 / reps)
  expect_true(all(abs(colMeans(rej) - 0.05) < 3 * se))
  expect_lt(abs(mean(fw) - 0.05), 3 * se)
  expect_gt(mean(found), 0.8)
})
