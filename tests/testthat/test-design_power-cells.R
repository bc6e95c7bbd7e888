# design_power() with a design of several cells: power and MDE of each cell
# against control, A/A rows, effects per cell, and budget-first planning with
# a spend per cell.

cells_panel <- function(n = 90, weeks = 60, seed = 3) {
  set.seed(seed)
  mu <- rlnorm(n, 6, 0.3)
  panel <- expand.grid(geo = sprintf("g%02d", seq_len(n)), week = seq_len(weeks),
                       stringsAsFactors = FALSE)
  panel$sales <- mu[match(panel$geo, sprintf("g%02d", seq_len(n)))] *
    (1 + 0.1 * sin(panel$week / 8)) + rnorm(nrow(panel), 0, 40)
  panel
}

cells_power_design <- function(panel, seed = 4) {
  units <- geo_units(sales ~ 0 | geo + week, panel, pre = 1:30)
  set.seed(seed)
  des <- suppressWarnings(rerandomize(units, ~ outcome_mean, accept = 0.2,
                                      n_treated = c(heavy_up = 30, go_dark = 30)))
  list(units = units, design = des)
}

test_that("power table, A/A rows per cell, per-cell grids and MDE on each cell's side", {
  panel <- cells_panel()
  u <- cells_power_design(panel)
  set.seed(1)
  pw <- design_power(sales ~ 0 | geo + week, panel, design = u$design,
                     effect = list(heavy_up = c(0.01, 0.03), go_dark = c(-0.01, -0.03)),
                     test_length = c(2, 4), n_windows = 3, pre = 1:30, n_draws = 30,
                     chunk_size = 7)
  expect_s3_class(pw, "mkt_power_cells")
  tab <- tidy(pw)
  expect_equal(unique(tab$contrast), c("heavy_up - control", "go_dark - control"))
  expect_equal(tab$effect[tab$contrast == "go_dark - control" & tab$test_length == 2],
               c(0, -0.01, -0.03))
  expect_equal(tab$mc_se, sqrt(tab$power * (1 - tab$power) / tab$n_sims))
  g <- glance(pw)
  expect_equal(nrow(g), 4L)
  expect_equal(g$aa_rejection, tab$power[tab$effect == 0])
  expect_true(all(g$mde_interpolated[g$cell == "go_dark"] < 0, na.rm = TRUE))
  expect_true(all(g$mde_interpolated[g$cell == "heavy_up"] > 0, na.rm = TRUE))
  # The same seed gives the same simulation for any chunk size.
  set.seed(1)
  pw2 <- design_power(sales ~ 0 | geo + week, panel, design = u$design,
                      effect = list(heavy_up = c(0.01, 0.03), go_dark = c(-0.01, -0.03)),
                      test_length = c(2, 4), n_windows = 3, pre = 1:30, n_draws = 30,
                      chunk_size = 30)
  expect_equal(tidy(pw2), tab)
  out <- capture.output(print(pw))
  expect_true(all(nchar(out) <= 80))
  expect_s3_class(plot(pw), "ggplot")
})

test_that("budget arguments per cell get classed errors", {
  panel <- cells_panel(weeks = 40)
  u <- cells_power_design(panel)
  run <- function(...) design_power(sales ~ 0 | geo + week, panel, design = u$design,
                                    test_length = 2, n_windows = 2, n_draws = 5, ...)
  expect_error(run(spend = 100, iroas = 2), class = "mktcausal_error_bad_spend")
  expect_error(run(spend = c(heavy_up = 100), iroas = 2), class = "mktcausal_error_bad_spend")
  expect_error(run(spend = c(heavy_up = 100), iroas = 2), "go_dark")
  expect_error(run(spend = c(heavy_up = 100, go_dark = 0), iroas = 2),
               class = "mktcausal_error_bad_spend")
  expect_error(run(spend = c(heavy_up = 100, dark = -5), iroas = 2),
               class = "mktcausal_error_bad_spend")
  expect_error(run(spend = c(heavy_up = 100, go_dark = -100), effect = c(-1, 1)),
               class = "mktcausal_error_bad_argument")
  expect_error(run(inference = "randomization"),
               class = "mktcausal_error_inference_unsupported")
  expect_error(run(effect = list(heavy_up = 0.02)), class = "mktcausal_error_bad_argument")
})

test_that("at the planned budget an independent simulation realizes the planned power; at zero effect the nominal rate", {
  skip_on_cran()
  panel <- cells_panel()
  u <- cells_power_design(panel)
  des <- u$design
  spend <- c(heavy_up = 400, go_dark = -400)
  set.seed(2)
  plan <- design_power(sales ~ 0 | geo + week, panel, design = des, test_length = 4,
                       n_windows = 6, pre = 1:30, n_draws = 150, spend = spend, iroas = 1.2,
                       effect = c(0, 0.6, 1.2))
  g <- glance(plan)
  # Independent simulation: fresh assignments from the rule, a window of the
  # plan, the effect injected by hand, and experiment_effect()'s Lin row.
  Y <- tapply(panel$sales, list(panel$geo, panel$week), sum)[des$ids, ]
  ends <- plan$windows$end_index
  reps <- 400
  set.seed(9)
  W <- reference_cells(des, reps)$cells
  cells <- des$cells
  rej <- rej0 <- matrix(FALSE, reps, 2, dimnames = list(NULL, cells[-1]))
  for (r in seq_len(reps)) {
    e <- ends[(r - 1) %% length(ends) + 1]
    y <- rowSums(Y[, (e - 3):e])
    cell <- cells[W[, r] + 1L]
    delta <- 1.2 * spend * 4 / (30 * mean(y))
    y1 <- y * (1 + ifelse(cell == "control", 0, delta[cell]))
    d <- data.frame(cell = factor(cell, levels = cells), sales = y1, sales0 = y,
                    outcome_mean = u$units$outcome_mean)
    td <- tidy(experiment_effect(sales ~ cell, d, covariates = ~ outcome_mean))
    td0 <- tidy(experiment_effect(sales0 ~ cell, d, covariates = ~ outcome_mean))
    lin <- td$estimator == "lin"
    rej[r, ] <- td$p.value[lin] <= 0.05
    rej0[r, ] <- td0$p.value[lin] <= 0.05
  }
  for (cl in cells[-1]) {
    planned <- g$power_at_target[g$cell == cl]
    realized <- mean(rej[, cl])
    se <- sqrt(planned * (1 - planned) / plan$n_sims + realized * (1 - realized) / reps)
    expect_lt(abs(realized - planned), 3 * se)
    expect_gt(planned, 0.5)
    expect_lt(planned, 0.95)
    expect_lt(abs(mean(rej0[, cl]) - 0.05), 3 * sqrt(0.05 * 0.95 / reps))
    aa <- g$aa_rejection[g$cell == cl]
    expect_lt(abs(aa - 0.05), 3 * sqrt(0.05 * 0.95 / plan$n_sims))
  }
  # Go-dark: spend removed, outcome falls, iROAS positive; spend needed.
  expect_equal(g$spend_needed, abs(spend[g$cell]) * g$mde_interpolated / 1.2, ignore_attr = TRUE)
})

test_that("one simulated experiment equals experiment_effect() on the same outcomes (Lin, matched blocks)", {
  set.seed(21)
  n <- 60
  d <- data.frame(id = sprintf("g%02d", 1:n), x1 = rnorm(n), x2 = rnorm(n))
  y <- 100 + 20 * d$x1 + rnorm(n, 0, 5)
  s <- stratify(d, method = "matched", covariates = ~ x1 + x2, block_size = 3,
                prop_treated = c(heavy_up = 1 / 3, go_dark = 1 / 3))
  des <- suppressWarnings(rerandomize(d, ~ x1 + x2, strata = s, id = "id", accept = 0.2,
                                      n_draws = 2000))
  code <- as.integer(des$cell) - 1L
  grids <- list(heavy_up = c(0, 0.05), go_dark = c(0, -0.04))
  mult <- matrix(1, 1, 2)
  w <- list(list(y = y, mean = mean(y), test_length = 1L))
  cells <- des$cells
  check <- function(res, estimator, x_cov) {
    for (c in 1:2) {
      for (e in 1:2) {
        delta <- grids[[c]][e]
        y1 <- y * (1 + delta * (code == c))
        dd <- data.frame(id = d$id, cell = cells[code + 1L], sales = y1, x1 = d$x1, x2 = d$x2)
        fit <- if (x_cov) {
          experiment_effect(sales ~ cell, dd, covariates = ~ x1 + x2)
        } else {
          experiment_effect(sales ~ cell, dd, design = des, n_draws = 100)
        }
        td <- tidy(fit)
        row <- td[td$estimator == estimator & td$term == paste(cells[c + 1], "- control"), ]
        expect_equal(res[[1]]$estimate[[c]][e], row$estimate / mean(y), tolerance = 1e-10)
        expect_equal(res[[1]]$reject[[c]][e], row$p.value <= 0.05)
      }
    }
  }
  # Lin on the covariates without strata (the design's X, centred).
  x <- scale(des$X, scale = FALSE)
  res <- power_fits_cells(code, w, grids, mult, "multiplicative", NULL, x, FALSE, 0.05)
  check(res, "lin", TRUE)
  # Difference in means in matched blocks.
  res_m <- power_fits_cells(code, w, grids, mult, "multiplicative", NULL, NULL, FALSE, 0.05,
                            strata = des$strata)
  check(res_m, "diff_in_means", FALSE)
})

test_that("a contrast between treated cells: its power equals experiment_effect()'s test, and design_power() plans it", {
  set.seed(22)
  n <- 60
  d <- data.frame(id = sprintf("g%02d", 1:n), x1 = rnorm(n))
  y <- 100 + 20 * d$x1 + rnorm(n, 0, 5)
  des <- suppressWarnings(rerandomize(d, ~ x1, id = "id", accept = 0.2,
                                      n_treated = c(heavy_up = 20, go_dark = 20)))
  code <- as.integer(des$cell) - 1L
  cells <- des$cells
  pairs <- rbind(c(2L, 3L))
  res <- power_fits_cells(code, list(list(y = y, mean = mean(y))), list(c(0, 0.03)),
                          matrix(1, 1, 1), "multiplicative", NULL, NULL, TRUE, 0.05,
                          pairs = pairs, k = 3L)
  for (e in 1:2) {
    delta <- c(0, 0.03)[e]
    dd <- data.frame(cell = cells[code + 1L], sales = y * (1 + delta * (code == 1L)))
    td <- tidy(experiment_effect(sales ~ cell, dd, contrasts = list(c("heavy_up", "go_dark"))))
    row <- td[td$term == "heavy_up - go_dark", ]
    expect_equal(res[[1]]$estimate[[1]][e], row$estimate / mean(y), tolerance = 1e-10)
    expect_equal(res[[1]]$reject[[1]][e], row$p.value <= 0.05)
  }
  panel <- cells_panel(weeks = 40)
  u <- cells_power_design(panel)
  set.seed(3)
  pw <- design_power(sales ~ 0 | geo + week, panel, design = u$design, effect = c(0.02, 0.05),
                     test_length = 2, n_windows = 2, pre = 1:30, n_draws = 10,
                     contrasts = list(c("heavy_up", "go_dark")))
  expect_equal(unique(tidy(pw)$contrast),
               c("heavy_up - control", "go_dark - control", "heavy_up - go_dark"))
  expect_equal(glance(pw)$cell, c("heavy_up", "go_dark", "heavy_up"))
  expect_error(design_power(sales ~ 0 | geo + week, panel, design = u$design, test_length = 2,
                            n_windows = 2, n_draws = 5, contrasts = list(c("heavy_up", "x"))),
               class = "mktcausal_error_bad_contrast")
  expect_error(design_power(sales ~ 0 | geo + week, panel, design = u$design, test_length = 2,
                            n_windows = 2, n_draws = 5, spend = c(heavy_up = 1, go_dark = -1),
                            iroas = 1, contrasts = list(c("heavy_up", "go_dark"))),
               class = "mktcausal_error_bad_contrast")
})
