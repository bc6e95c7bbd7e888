fixtures <- readRDS(test_path("fixtures", "estimatr.rds"))
cols <- c("estimate", "std.error", "df", "conf.low", "conf.high", "p.value")

row_of <- function(fit, term) {
  td <- tidy(fit)
  unlist(td[td$term == term, cols])
}

sim_geos <- function(n = 80, effect = 3, seed = 1) {
  set.seed(seed)
  d <- data.frame(geo = sprintf("g%03d", seq_len(n)), pop = runif(n, 1, 3))
  d$pre <- rnorm(n, 50, 10)
  d$treated <- sample(rep(0:1, n / 2))
  d$y <- d$pre + effect * d$treated + rnorm(n, 0, 2)
  d
}

test_that("difference in means matches estimatr::difference_in_means (Welch df)", {
  fit <- experiment_effect(sales ~ treated, fixtures$clusters)
  expect_equal(row_of(fit, "diff_in_means"), fixtures$dim, tolerance = 1e-8)
  expect_equal(nrow(tidy(fit)), 1L)
})

test_that("Lin matches estimatr::lm_lin, with and without the pre-period covariate alone", {
  d <- fixtures$clusters
  fit <- experiment_effect(sales ~ treated, d, covariates = ~ pre_sales + income)
  expect_equal(row_of(fit, "lin"), fixtures$lin, tolerance = 1e-8)
  expect_equal(row_of(fit, "diff_in_means"), fixtures$dim, tolerance = 1e-8)
  ancova <- experiment_effect(sales ~ treated, d, covariates = ~ pre_sales)
  expect_equal(row_of(ancova, "lin"), fixtures$lin_pre, tolerance = 1e-8)
})

test_that("stratum-weighted difference in means matches estimatr with blocks", {
  d <- fixtures$clusters
  units <- list(y = d$sales, treat = d$treated, cluster = NULL)
  got <- unlist(fit_diff_in_means(units, factor(d$stratum), 0.05)[cols])
  expect_equal(got, fixtures$dim_blocked, tolerance = 1e-8)
})

test_that("finer rows with cluster give estimatr's CR2 numbers", {
  s <- fixtures$stores
  fit <- experiment_effect(sales ~ treated, s, cluster = "geo")
  expect_equal(row_of(fit, "diff_in_means"), fixtures$cr2, tolerance = 1e-8)
  lin <- experiment_effect(sales ~ treated, s, cluster = "geo", covariates = ~ pre_sales)
  expect_equal(row_of(lin, "lin"), fixtures$cr2_lin, tolerance = 1e-8)
  g <- glance(fit)
  expect_equal(g$n_clusters, 60L)
  expect_equal(g$n_rows, 300L)
  expect_equal(g$nobs, 300L)
  expect_match(g$inference, "^CR2 clustered by geo")
  expect_equal(tidy(fit)$incremental, tidy(fit)$estimate * sum(s$treated))
})

test_that("estimand = 'mean' is the difference in per-capita means, each cluster once", {
  d <- fixtures$clusters
  fit <- experiment_effect(sales ~ treated, d, estimand = "mean", size = "pop")
  expect_equal(row_of(fit, "diff_in_means"), fixtures$dim_mean, tolerance = 1e-8)
  expect_equal(tidy(fit)$incremental,
               tidy(fit)$estimate * sum(d$pop[d$treated == 1]), tolerance = 1e-12)
  # Finer rows are summed to clusters first: same answer from store-level rows.
  s <- fixtures$stores
  s$pop <- rep(d$pop / 5, each = 5)
  s$sales <- rep(d$sales / 5, each = 5)
  fine <- experiment_effect(sales ~ treated, s, estimand = "mean", size = "pop",
                            cluster = "geo")
  expect_equal(row_of(fine, "diff_in_means"), fixtures$dim_mean, tolerance = 1e-8)
})

test_that("a fixed effect of 3 is recovered and Lin shrinks the standard error", {
  d <- sim_geos(n = 2000, effect = 3, seed = 11)
  fit <- experiment_effect(y ~ treated, d, covariates = ~ pre)
  td <- tidy(fit)
  expect_equal(td$estimate[td$term == "lin"], 3, tolerance = 0.1)
  expect_lt(abs(td$estimate[td$term == "lin"] - 3), 3 * td$std.error[td$term == "lin"])
  expect_lt(abs(td$estimate[td$term == "diff_in_means"] - 3), 4 * td$std.error[1])
  expect_lt(td$std.error[td$term == "lin"], td$std.error[td$term == "diff_in_means"] / 3)
  expect_true(td$conf.low[2] < 3 && td$conf.high[2] > 3)
})

test_that("CI coverage of Lin is near nominal by simulation", {
  skip_on_cran()
  covered <- vapply(1:200, function(r) {
    d <- sim_geos(n = 40, effect = 3, seed = 100 + r)
    ci <- confint(experiment_effect(y ~ treated, d, covariates = ~ pre), "lin")
    ci[1] < 3 && ci[2] > 3
  }, logical(1))
  expect_gt(mean(covered), 0.9)
})

test_that("lift, incremental and iROAS follow their definitions", {
  d <- sim_geos(n = 40, effect = 3, seed = 5)
  d$spend <- 2 * d$treated
  fit <- experiment_effect(y ~ treated, d, spend = "spend")
  td <- tidy(fit)
  tau <- mean(d$y[d$treated == 1]) - mean(d$y[d$treated == 0])
  expect_equal(td$estimate, tau)
  expect_equal(td$lift_pct, 100 * tau / mean(d$y[d$treated == 0]))
  expect_equal(td$incremental, tau * 20)
  expect_equal(td$iroas, tau * 20 / 40)
  expect_equal(glance(fit)$spend_incremental, 40)
})

test_that("coef, vcov and confint agree with tidy", {
  d <- sim_geos(n = 40, seed = 2)
  fit <- experiment_effect(y ~ treated, d, covariates = ~ pre, alpha = 0.1)
  td <- tidy(fit)
  expect_equal(unname(coef(fit)), td$estimate)
  expect_equal(names(coef(fit)), c("diff_in_means", "lin"))
  # Two estimators of one effect have no joint covariance; one estimator has
  # its variance.
  expect_error(vcov(fit), class = "mktcausal_error_not_available")
  one <- experiment_effect(y ~ treated, d, alpha = 0.1)
  expect_equal(unname(sqrt(diag(vcov(one)))), td$std.error[1])
  expect_identical(dimnames(vcov(one)), list("diff_in_means", "diff_in_means"))
  expect_equal(unname(confint(fit)[, 1]), td$conf.low)
  expect_equal(unname(confint(fit)[, 2]), td$conf.high)
  expect_equal(colnames(confint(fit)), c("5 %", "95 %"))
  ci99 <- confint(fit, "lin", level = 0.99)
  expect_equal(unname(ci99[1]), td$estimate[2] - qt(0.995, td$df[2]) * td$std.error[2])
  expect_output(print(fit), "lin")
  expect_output(print(summary(fit)), "40 units, 20 treated")
  expect_identical(nobs(fit), 40L)
})

test_that("a missing column gets a classed error that names it", {
  d <- sim_geos(n = 20)
  expect_error(experiment_effect(sales ~ treated, d),
               class = "mktcausal_error_missing_column")
  expect_error(experiment_effect(sales ~ treated, d), "sales")
  expect_error(experiment_effect(y ~ treated, d, covariates = ~ income),
               class = "mktcausal_error_missing_column")
  expect_error(experiment_effect(y ~ treated, d, spend = "spend"), "spend")
})

test_that("bad treatment, outcome and arguments get classed errors", {
  d <- sim_geos(n = 20)
  d2 <- d
  d2$treated[3] <- 2
  expect_error(experiment_effect(y ~ treated, d2),
               class = "mktcausal_error_non_binary_treatment")
  expect_error(experiment_effect(y ~ treated, d2), "treated")
  d3 <- d
  d3$treated[3] <- NA
  expect_error(experiment_effect(y ~ treated, d3), class = "mktcausal_error_missing_values")
  expect_error(experiment_effect(y ~ treated, d3), "treated")
  d4 <- d
  d4$y[1] <- NA
  expect_error(experiment_effect(y ~ treated, d4), class = "mktcausal_error_missing_values")
  expect_error(experiment_effect(y ~ treated + pre, d), class = "mktcausal_error_bad_formula")
  expect_error(experiment_effect(y ~ treated, d, estimand = "mean"),
               class = "mktcausal_error_bad_argument")
  s <- fixtures$stores
  s$treated[1] <- 1 - s$treated[1]
  expect_error(experiment_effect(sales ~ treated, s, cluster = "geo"),
               class = "mktcausal_error_treatment_varies_within_cluster")
})

test_that("a design is checked against the data's treatment", {
  d <- sim_geos(n = 40, seed = 8)
  set.seed(9)
  des <- rerandomize(d, ~ pre, n_treated = 20, accept = 0.5, id = "geo",
                     n_draws = 1000)
  d$treated <- des$treated
  fit <- experiment_effect(y ~ treated, d, design = des)
  expect_equal(tidy(fit)$term, c("diff_in_means", "lin"))
  expect_equal(tidy(fit)$estimate[2],
               tidy(experiment_effect(y ~ treated, d, covariates = ~ pre))$estimate[2])
  # Rows in another order are aligned through the id column.
  shuffled <- d[sample(nrow(d)), ]
  expect_equal(tidy(experiment_effect(y ~ treated, shuffled, design = des))$estimate,
               tidy(fit)$estimate)
  # Without the id column, row order must match the design.
  no_id <- shuffled[setdiff(names(shuffled), "geo")]
  expect_error(experiment_effect(y ~ treated, no_id, design = des),
               class = "mktcausal_error_misaligned")
  wrong <- d
  wrong$treated <- 1 - wrong$treated
  expect_error(experiment_effect(y ~ treated, wrong, design = des),
               class = "mktcausal_error_misaligned")
  expect_error(experiment_effect(y ~ treated, wrong, design = des), "treated")
  expect_error(experiment_effect(y ~ treated, d[-1, ], design = des),
               class = "mktcausal_error_misaligned")
  expect_error(experiment_effect(y ~ treated, d, design = list(treated = d$treated)),
               class = "mktcausal_error_bad_design")
})

test_that("a stratified design gives the stratum-weighted estimator", {
  d <- sim_geos(n = 40, seed = 12)
  d$region <- rep(c("n", "s"), each = 20)
  d$y <- d$y + 10 * (d$region == "s")
  set.seed(13)
  des <- rerandomize(d, ~ pre, n_treated = 20, strata = "region", accept = 0.5,
                     id = "geo", n_draws = 1000)
  d$treated <- des$treated
  fit <- experiment_effect(y ~ treated, d, design = des, covariates = ~ pre)
  by_stratum <- vapply(split(d, d$region), function(s)
    mean(s$y[s$treated == 1]) - mean(s$y[s$treated == 0]), numeric(1))
  expect_equal(tidy(fit)$estimate[1], mean(by_stratum), tolerance = 1e-12)
  expect_equal(tidy(fit)$df[1], 40 - 2 * 2)
  expect_equal(glance(fit)$n_strata, 2L)
})

test_that("randomization columns come from randomization_test()", {
  d <- sim_geos(n = 40, seed = 8)
  set.seed(9)
  des <- rerandomize(d, ~ pre, n_treated = 20, accept = 0.5, id = "geo",
                     n_draws = 1000)
  d$treated <- des$treated
  set.seed(10)
  fit <- experiment_effect(y ~ treated, d, design = des, n_draws = 500)
  td <- tidy(fit)
  expect_true(all(c("p.value_randomization", "conf.low_randomization",
                    "conf.high_randomization") %in% names(td)))
  expect_true(all(td$p.value_randomization > 0 & td$p.value_randomization <= 1))
  expect_true(all(td$conf.low_randomization <= td$conf.high_randomization))
  # the first row's columns are exactly randomization_test()'s, same seed
  set.seed(10)
  direct <- tidy(randomization_test(y ~ treated, d, design = des, statistic = "diff_in_means",
                                    n_draws = 500))
  expect_equal(td$p.value_randomization[1], direct$p.value)
  expect_equal(td$conf.low_randomization[1], direct$conf.low)
  expect_equal(td$conf.high_randomization[1], direct$conf.high)
  expect_true(td$conf.low_randomization[1] < td$estimate[1] &&
                td$estimate[1] < td$conf.high_randomization[1])
})

# --- buffer zones -----------------------------------------------------------------

test_that("a buffer removes the bias that spillovers onto adjacent controls cause", {
  sg <- sim_grid(10, 10, seed = 70)
  d <- sg$data
  A <- sg$adjacency
  set.seed(70)
  des <- rerandomize(d, ~ x1, n_treated = 20, accept = 0.5, id = "id", buffer = A,
                     n_draws = 2000)
  # Truth: a direct effect of 2; untreated neighbours of treated clusters
  # gain 1.5 (contamination); interior clusters sell 5 more, and they are
  # kept as controls less often than edge clusters.
  y0 <- 10 + 5 * d$interior + d$x1 + withr::with_seed(71, stats::rnorm(100))
  outcome <- function(w) y0 + 2 * w + 1.5 * (1 - w) * as.vector(A %*% w > 0)
  d$treated <- des$treated
  d$y <- outcome(des$treated)
  set.seed(5)
  fit <- experiment_effect(y ~ treated, d, design = des, covariates = ~ x1 + interior,
                           n_draws = 200)
  ctrl <- des$arm == "control"
  at <- 1 / des$arm_prob[, "treated"]
  ac <- 1 / pmax(des$arm_prob[, "control"], 0.5 / 2000)
  hajek <- sum((at * d$y)[d$treated == 1]) / sum(at[d$treated == 1]) -
    sum((ac * d$y)[ctrl]) / sum(ac[ctrl])
  expect_equal(coef(fit)[["diff_in_means"]], unname(hajek), tolerance = 1e-10)
  expect_equal(glance(fit)$n_buffer, sum(des$arm == "buffer"))
  expect_equal(fit$n$units, 100 - sum(des$arm == "buffer"))
  expect_true(is.na(tidy(fit)$p.value_randomization[2]))
  # The randomization column is the test with the buffer re-applied to
  # every reference draw.
  set.seed(5)
  rt <- randomization_test(y ~ treated, d, design = des, n_draws = 200)
  expect_equal(tidy(fit)$p.value_randomization[1], tidy(rt)$p.value)
  expect_equal(tidy(fit)$conf.low_randomization[1], tidy(rt)$conf.low)

  # Over 1000 assignments of the same rule: the naive difference (all
  # untreated as controls) is pulled toward zero by contamination, the
  # unweighted buffered difference is pushed up by which clusters the buffer
  # keeps, and the weighted (Hajek) estimator is centred on the truth.
  set.seed(72)
  W <- run_search(des$spec, 1000, 1e7)$assignments
  est <- apply(W, 2, function(w) {
    y <- outcome(w)
    ctrl <- w == 0 & as.vector(A %*% w == 0)
    c(naive = mean(y[w == 1]) - mean(y[w == 0]),
      unweighted = mean(y[w == 1]) - mean(y[ctrl]),
      hajek = sum((at * y)[w == 1]) / sum(at[w == 1]) - sum((ac * y)[ctrl]) / sum(ac[ctrl]))
  })
  m <- rowMeans(est)
  se <- apply(est, 1, stats::sd) / sqrt(ncol(est))
  expect_lt(m[["naive"]], 1.4)
  expect_gt(m[["unweighted"]], 2.15)
  expect_lt(abs(m[["hajek"]] - 2), 3 * se[["hajek"]] + 0.02)
})

test_that("with strata and a buffer, the estimate is the randomization test's weighted statistic", {
  sg <- sim_grid(8, 8, seed = 73)
  d <- sg$data
  d$half <- rep(c("a", "b"), each = 32)
  set.seed(73)
  des <- rerandomize(d, ~ x1, n_treated = 16, strata = "half", accept = 0.3, id = "id",
                     buffer = sg$adjacency, n_draws = 1000, min_per_arm = 2)
  d$treated <- des$treated
  d$y <- 5 + d$x1 + 3 * (d$half == "b") + des$treated + withr::with_seed(74, stats::rnorm(64))
  fit <- experiment_effect(y ~ treated, d, design = des, n_draws = 200)
  set.seed(75)
  rt <- randomization_test(y ~ treated, d, design = des, n_draws = 200)
  expect_equal(coef(fit)[["diff_in_means"]], coef(rt)[[1]], tolerance = 1e-10)
  # Two independent sets of 200 reference draws: equal up to Monte Carlo error.
  expect_lt(abs(tidy(fit)$p.value_randomization[1] - tidy(rt)$p.value), 0.15)
  # Finer rows (two stores per market) give the same estimate on market totals.
  rows <- rbind(transform(d, store = 1, y = y / 2), transform(d, store = 2, y = y / 2))
  fine <- experiment_effect(y ~ treated, rows, design = des, cluster = "id", n_draws = 200)
  expect_equal(coef(fine)[["diff_in_means"]], coef(fit)[["diff_in_means"]] / 2, tolerance = 1e-10)
  expect_equal(glance(fine)$n_buffer, sum(des$arm == "buffer"))
  # The buffer is part of what the design's hash protects.
  des$arm[des$arm == "buffer"][1] <- "control"
  expect_error(experiment_effect(y ~ treated, d, design = des),
               class = "mktcausal_error_design_modified")
})

test_that("the fit prints within 80 columns and plots its estimates and outcomes", {
  d <- sim_geos(n = 40, seed = 8)
  set.seed(9)
  des <- rerandomize(d, ~ pre, n_treated = 20, accept = 0.5, id = "geo", n_draws = 1000)
  d$treated <- des$treated
  d$spend <- 2 * d$treated
  set.seed(10)
  fit <- experiment_effect(y ~ treated, d, design = des, spend = "spend", n_draws = 500)
  out <- withr::with_options(list(width = 80), capture.output(print(fit)))
  expect_true(all(nchar(out) <= 80))
  expect_true(any(grepl("p (rand.)", out, fixed = TRUE)))
  expect_true(any(grepl("iROAS on an incremental spend of 40", out, fixed = TRUE)))
  expect_true(any(grepl("Randomization intervals", out, fixed = TRUE)))
  expect_identical(fit$n$units, 40L)
  expect_identical(glance(fit)$n_draws, 500L)
  p <- plot(fit)
  expect_s3_class(p, "ggplot")
  b <- ggplot2::ggplot_build(p)
  # one design-based and one randomization interval per estimator
  expect_equal(nrow(b$data[[2]]), 4L)
  o <- plot(fit, type = "outcomes")
  ob <- ggplot2::ggplot_build(o)
  td <- tidy(fit)
  seg <- ob$data[[2]]
  expect_equal(sort(seg$y), sort(c(mean(d$y[d$treated == 0]), mean(d$y[d$treated == 1]),
                                   mean(d$y[d$treated == 1]) - td$estimate[1])))
  expect_identical(nrow(tidy(fit, "outcomes")), 40L)
  expect_error(plot(fit, type = "arms"), class = "mktcausal_error_bad_choice")
  expect_error(experiment_effect(y ~ treated, d, n_boot = 10),
               class = "mktcausal_error_unknown_argument")
})

test_that("a long DMA x week panel is refused with the code that sums it, never analysed by unit-week", {
  panel <- stats::aggregate(sales ~ dma + week, geo_sales, sum)
  dmas <- sort(unique(panel$dma))
  panel$treated <- as.integer(panel$dma %in% dmas[seq(1, length(dmas), by = 2)])
  test <- panel[panel$week > 92, ]
  err <- tryCatch(experiment_effect(sales ~ treated, test), error = identity)
  expect_s3_class(err, "mktcausal_error_long_panel")
  msg <- conditionMessage(err)
  expect_match(msg, "2400 rows for 200 values of dma", fixed = TRUE)
  expect_match(msg, "aggregate(sales ~ dma + treated", fixed = TRUE)
  expect_match(msg, "cluster = \"dma\"", fixed = TRUE)
  # geo_sales itself (zone x week rows within DMAs) is refused too.
  zones <- transform(geo_sales, treated = as.integer(dma %in% dmas[1:100]))
  expect_error(experiment_effect(sales ~ treated, zones), class = "mktcausal_error_long_panel")

  # The code in the message: one row per DMA, whose difference in means and
  # Welch standard error are t.test()'s.
  units <- stats::aggregate(sales ~ dma + treated, data = subset(test, week %in% 93:104),
                            FUN = sum)
  fit <- experiment_effect(sales ~ treated, units)
  tt <- stats::t.test(units$sales[units$treated == 1], units$sales[units$treated == 0])
  expect_equal(coef(fit)[["diff_in_means"]], unname(tt$estimate[1] - tt$estimate[2]))
  expect_equal(tidy(fit)$std.error, tt$stderr)
  # Naming the cluster keeps the 12 weekly rows of each DMA with standard
  # errors clustered by DMA: the same contrast per DMA-week.
  by_dma <- experiment_effect(sales ~ treated, test, cluster = "dma")
  expect_equal(12 * coef(by_dma)[["diff_in_means"]], coef(fit)[["diff_in_means"]])
  expect_identical(by_dma$n$clusters, 200L)
})

test_that("several rows of one designed cluster need `cluster`", {
  g <- contract_geo()
  rows <- rbind(transform(g$units, sales = sales / 2), transform(g$units, sales = sales / 2))
  expect_error(experiment_effect(sales ~ treated, rows, design = g$design),
               class = "mktcausal_error_long_panel")
  fit <- experiment_effect(sales ~ treated, rows, design = g$design, cluster = "dma",
                           n_draws = 100)
  expect_identical(fit$n$clusters, 200L)
})

test_that("outcomes near 1e300 and 1e-300 give the scaled answer; a constant outcome is refused", {
  set.seed(31)
  d <- data.frame(id = sprintf("g%02d", 1:40), treated = rep(0:1, 20), x = rnorm(40))
  d$y <- 10 + 2 * d$x + d$treated + rnorm(40)
  base <- tidy(experiment_effect(y ~ treated, d, covariates = ~ x))
  for (k in c(1e300, 1e150, 1e-300)) {
    d$yk <- d$y * k
    out <- tidy(experiment_effect(yk ~ treated, d, covariates = ~ x))
    for (col in c("estimate", "std.error", "conf.low", "conf.high")) {
      expect_equal(out[[col]] / k, base[[col]], tolerance = 1e-12)
    }
    expect_equal(out$p.value, base$p.value, tolerance = 1e-12)
    expect_equal(out$df, base$df, tolerance = 1e-12)
  }
  d$y0 <- 3
  expect_error(experiment_effect(y0 ~ treated, d), class = "mktcausal_error_no_variation")
  # Covariates are not rescaled: out of range they are refused with the fix.
  d$x_tiny <- d$x * 1e-300
  expect_error(experiment_effect(y ~ treated, d, covariates = ~ x_tiny),
               regexp = "x_tiny", class = "mktcausal_error_bad_scale")
})
