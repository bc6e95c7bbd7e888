power_fixture <- local({
  cache <- NULL
  function() {
    if (is.null(cache)) {
      panel <- sim_iid_panel()
      units <- geo_units(sales ~ 0 | cluster + week, panel, pre = 1:20)
      set.seed(11)
      des <- rerandomize(units, ~ outcome_mean + outcome_trend, n_treated = 30,
                         accept = 0.05)
      set.seed(12)
      pw <- design_power(sales ~ 0 | cluster + week, panel, design = des,
                         effect = c(0, seq(0.01, 0.08, by = 0.01), 0.2), test_length = c(4, 8),
                         n_windows = 4, n_draws = 60, pre = 1:20, method = "diff_in_means")
      cache <<- list(panel = panel, units = units, des = des, pw = pw)
    }
    cache
  }
})

test_that("A/A rejection is near alpha and power grows with effect and length", {
  pw <- power_fixture()$pw
  tab <- tidy(pw)
  expect_identical(class(pw), "mkt_power")
  expect_equal(nrow(tab), 20L)
  expect_equal(unique(tab$n_sims), 240L)
  aa <- tab$power[tab$effect == 0]
  tol <- 3 * sqrt(0.05 * 0.95 / 240)
  expect_true(all(abs(aa - 0.05) <= tol))
  for (t in c(4, 8)) {
    p <- tab$power[tab$test_length == t]
    expect_true(all(diff(p) >= -0.03))
    expect_gt(p[length(p)], 0.99)
  }
  p4 <- tab$power[tab$test_length == 4 & tab$effect == 0.04]
  p8 <- tab$power[tab$test_length == 8 & tab$effect == 0.04]
  expect_gt(p8, p4 + 0.1)
  expect_equal(tab$mc_se, sqrt(tab$power * (1 - tab$power) / 240))
  expect_true(all(abs(tab$bias) < 1))
  expect_true(all(tab$rmse > 0 & tab$rmse < 5))
})

test_that("the MDE matches the closed form on iid data", {
  fx <- power_fixture()
  g <- glance(fx$pw)
  tab <- tidy(fx$pw)
  for (t in c(4, 8)) {
    # Cluster totals over t iid periods: sd sqrt(t) * 10, mean 100 * t.
    cf <- power_closed_form(60, sd = sqrt(t) * 10, power = 0.8, prop_treated = 0.5,
                            df = 58)$effect / (100 * t)
    sim <- g$mde_interpolated[g$test_length == t]
    expect_lt(abs(sim / cf - 1), 0.25)
    # The grid MDE is the smallest effect on the grid with power >= 0.8,
    # within a grid step (0.01) of the closed form.
    rows <- tab[tab$test_length == t, ]
    expect_equal(g$mde[g$test_length == t], min(rows$effect[rows$power >= 0.8]))
    expect_lt(abs(g$mde[g$test_length == t] - cf), 0.015)
  }
  expect_identical(fx$pw$mde, g)
  expect_s3_class(plot(fx$pw), "ggplot")
})

test_that("windows follow the pre-period rule", {
  pw <- power_fixture()$pw
  # Ends at least max(test_length) = 8 periods after the pre-period (20),
  # the latest ones spaced by at most 8.
  expect_equal(pw$windows$end_index, c(28L, 32L, 36L, 40L))
  expect_true(all(pw$windows$end_index - 8 + 1 > 20))
})

test_that("the randomization test holds its level at zero effect", {
  fx <- power_fixture()
  set.seed(5)
  pw <- design_power(sales ~ 0 | cluster + week, fx$panel, design = fx$des,
                     effect = c(0, 0.06), test_length = 4, n_windows = 4, n_draws = 60,
                     inference = "randomization", reference_draws = 199, pre = 1:20)
  tab <- tidy(pw)
  expect_lte(tab$power[1], 0.05 + 3 * sqrt(0.05 * 0.95 / 240))
  expect_gt(tab$power[2], 0.6)
  expect_equal(glance(pw)$aa_rejection, tab$power[1])
})

test_that("results are reproducible under set.seed", {
  fx <- power_fixture()
  run <- function() {
    set.seed(99)
    design_power(sales ~ 0 | cluster + week, fx$panel, design = fx$des,
                 effect = c(0, 0.05), test_length = 4, n_windows = 2, n_draws = 12,
                 method = "lin", chunk_size = 5, pre = 1:20)$power
  }
  a <- run()
  expect_identical(a, run())
  set.seed(100)
  b <- design_power(sales ~ 0 | cluster + week, fx$panel, design = fx$des,
                    effect = c(0, 0.05), test_length = 4, n_windows = 2, n_draws = 12,
                    method = "lin", chunk_size = 5, pre = 1:20)$power
  expect_false(identical(a$bias, b$bias))
})

test_that("bad inputs get classed errors", {
  fx <- power_fixture()
  call_dp <- function(...) {
    args <- list(formula = sales ~ 0 | cluster + week, data = fx$panel, design = fx$des,
                 n_draws = 4, n_windows = 1, test_length = 4)
    dots <- list(...)
    args[names(dots)] <- dots
    do.call(design_power, args)
  }
  expect_error(call_dp(design = list(ids = 1)), class = "mktcausal_error_bad_design")
  expect_error(call_dp(data = fx$panel[fx$panel$cluster != "C01", ]),
               class = "mktcausal_error_misaligned")
  expect_error(call_dp(test_length = 41), class = "mktcausal_error_bad_argument")
  expect_error(call_dp(effect = "5%"), class = "mktcausal_error_bad_argument")
  expect_error(call_dp(formula = nope ~ 0 | cluster + week),
               class = "mktcausal_error_missing_column")
  expect_error(call_dp(randomize_by = "region"), class = "mktcausal_error_missing_column")
  expect_error(call_dp(method = "dim"), class = "mktcausal_error_bad_choice")
  expect_error(call_dp(inference = "t"), class = "mktcausal_error_bad_choice")
  expect_error(call_dp(n_assign = 4), regexp = "n_draws",
               class = "mktcausal_error_unknown_argument")
  expect_warning(call_dp(pre = 1:39, effect = 0), class = "mktcausal_warning_windows_overlap_pre")
})

test_that("one fit per assignment and window gives every effect exactly", {
  fx <- power_fixture()
  des <- fx$des
  w <- list(y = 400 + 20 * fx$units$outcome_trend + seq_len(60), mean = NA)
  w$mean <- mean(w$y)
  a <- des$treated
  effect <- c(0, 0.03, 0.1)
  fit <- power_one_fit(des, a, w, effect, "multiplicative", NULL, "lin", "hc2",
                       lin_covariates(des), NULL, 0.05)
  x <- lin_covariates(des)
  X <- cbind(1, a, x, a * x)
  colnames(X) <- c("(Intercept)", "treated", "x1", "x2", "treated:x1", "treated:x2")
  for (i in seq_along(effect)) {
    f <- ols_robust(X, w$y * (1 + effect[i] * a))
    expect_equal(fit$estimate[i], f$coefficients[["treated"]] / w$mean)
    p <- 2 * stats::pt(-abs(f$coefficients[["treated"]]) / sqrt(f$vcov[2, 2]), f$df[[2]])
    expect_equal(fit$reject[i], p <= 0.05)
  }
  # The randomization path: the estimate is the difference in means of the
  # outcome with the effect injected.
  fit_rt <- power_one_fit(des, a, w, effect, "additive", NULL, "diff_in_means",
                          "randomization", NULL, matrix(a, ncol = 1), 0.05)
  y1 <- w$y + effect[3] * w$mean * a
  expect_equal(fit_rt$estimate[3] * w$mean, mean(y1[a == 1]) - mean(y1[a == 0]))
})

test_that("an additive effect shared by size keeps the average lift", {
  fx <- power_fixture()
  panel <- fx$panel
  panel$pop <- as.numeric(factor(panel$cluster))
  set.seed(3)
  pw <- design_power(sales ~ 0 | cluster + week, panel, design = fx$des, size = "pop",
                     effect = c(0, 0.05), test_length = 4, n_windows = 4, n_draws = 40,
                     effect_type = "additive", pre = 1:20)
  tab <- tidy(pw)
  expect_lt(abs(tab$bias[2] - tab$bias[1]), 0.3)
  expect_gt(tab$power[2], 0.8)
})

test_that("units finer than the design's clusters are summed to them", {
  fx <- power_fixture()
  # Split each cluster into two zones of half its sales: the cluster totals,
  # and so the simulation, are unchanged.
  zones <- rbind(transform(fx$panel, zone = paste0(cluster, "a"), sales = sales / 2),
                 transform(fx$panel, zone = paste0(cluster, "b"), sales = sales / 2))
  set.seed(7)
  a <- design_power(sales ~ 0 | cluster + week, fx$panel, design = fx$des, effect = c(0, 0.05),
                    test_length = 4, n_windows = 2, n_draws = 10, pre = 1:20)
  set.seed(7)
  b <- design_power(sales ~ 0 | zone + week, zones, design = fx$des, randomize_by = "cluster",
                    effect = c(0, 0.05), test_length = 4, n_windows = 2, n_draws = 10,
                    pre = 1:20)
  expect_equal(b$power, a$power)
  out <- withr::with_options(list(width = 80), capture.output(print(b)))
  expect_true(all(nchar(out) <= 80))
  expect_match(out[1], "Simulated power: Lin's regression adjustment, HC2 t test", fixed = TRUE)
})

# A geo-like panel: cluster levels differ by a factor of several (log-sd 0.5)
# and persist, week-to-week noise is 5% of the level. Pre-period means then
# predict test-window totals almost perfectly, as with real geo sales.
geo_panel <- function(n = 60, n_t = 40, seed = 2) {
  withr::with_seed(seed, {
    ids <- sprintf("G%02d", seq_len(n))
    level <- exp(stats::rnorm(n, log(100), 0.5))
    d <- expand.grid(cluster = ids, week = seq_len(n_t), stringsAsFactors = FALSE)
    d$sales <- level[match(d$cluster, ids)] * (1 + stats::rnorm(nrow(d), sd = 0.05))
  })
  d
}

geo_fixture <- local({
  cache <- NULL
  function() {
    if (is.null(cache)) {
      panel <- geo_panel()
      units <- geo_units(sales ~ 0 | cluster + week, panel, pre = 1:20)
      set.seed(21)
      des <- rerandomize(units, ~ outcome_mean + outcome_trend, n_treated = 30,
                         accept = 0.05)
      cache <<- list(panel = panel, des = des)
    }
    cache
  }
})

test_that("with `pre` the default plans Lin's estimator, with a far smaller MDE", {
  fx <- geo_fixture()
  eff <- c(0, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.4, 0.6)
  run <- function(...) {
    set.seed(22)
    design_power(sales ~ 0 | cluster + week, fx$panel, design = fx$des, effect = eff,
                 test_length = 4, n_windows = 4, n_draws = 50, pre = 1:20, ...)
  }
  default <- run()
  lin <- run(method = "lin")
  dim <- run(method = "diff_in_means")
  expect_identical(default$method, "lin")
  expect_identical(default$method_chosen_by, "default")
  expect_identical(lin$method_chosen_by, "user")
  expect_identical(default$power, lin$power)
  g_lin <- glance(default)
  g_dim <- glance(dim)
  # Measured: Lin 2.56% (grid 3%), difference in means 38.8% (grid 40%):
  # HC2 ignores the re-randomization, and the difference in means of totals
  # carries all the between-cluster spread that the adjustment removes.
  expect_true(g_lin$mde_reached && g_dim$mde_reached)
  expect_equal(g_lin$mde, 0.03)
  expect_equal(g_dim$mde, 0.4)
  expect_gt(g_lin$mde_interpolated, 0.015)
  expect_lt(g_lin$mde_interpolated, 0.035)
  expect_gt(g_dim$mde_interpolated, 0.3)
  expect_lt(g_lin$mde_interpolated * 8, g_dim$mde_interpolated)
  # The Lin estimate is also far less variable: rmse in % of the control mean.
  expect_lt(max(tidy(default)$rmse), 1.2)
  expect_gt(min(tidy(dim)$rmse), 2)
  out <- withr::with_options(list(width = 80), capture.output(print(default)))
  expect_true(all(nchar(out) <= 80))
  expect_match(out[1], "Simulated power: Lin's regression adjustment, HC2 t test",
               fixed = TRUE)
  expect_match(out[2], "default with `pre`", fixed = TRUE)
  expect_match(gsub(" +", " ", paste(out, collapse = " ")), "MDE 2.56% at 80% power",
               fixed = TRUE)
})

test_that("without `pre` the default is the difference in means, and says so", {
  fx <- geo_fixture()
  set.seed(22)
  pw <- design_power(sales ~ 0 | cluster + week, fx$panel, design = fx$des,
                     effect = c(0, 0.05), test_length = 4, n_windows = 2, n_draws = 10)
  expect_identical(pw$method, "diff_in_means")
  expect_identical(pw$method_chosen_by, "default")
  out <- withr::with_options(list(width = 80), capture.output(print(pw)))
  expect_match(out[1], "Simulated power: difference in means", fixed = TRUE)
  expect_match(gsub(" +", " ", paste(out, collapse = " ")), "default without `pre`",
               fixed = TRUE)
})

test_that("an MDE beyond the grid is printed as a bound, never as NA", {
  fx <- geo_fixture()
  set.seed(22)
  pw <- design_power(sales ~ 0 | cluster + week, fx$panel, design = fx$des,
                     effect = c(0, 0.01, 0.02), test_length = c(4, 8), n_windows = 4,
                     n_draws = 50, pre = 1:20)
  g <- glance(pw)
  # At 4 weeks the largest effect tried (2%) reaches 63.5% power: the MDE is
  # only known to exceed 2%. At 8 weeks 2% is enough.
  expect_identical(g$mde_reached, c(FALSE, TRUE))
  expect_identical(is.na(g$mde), c(TRUE, FALSE))
  expect_identical(is.na(g$mde_interpolated), c(TRUE, FALSE))
  expect_equal(g$max_effect, c(0.02, 0.02))
  tab <- tidy(pw)
  expect_equal(g$max_effect_power, tab$power[tab$effect == 0.02])
  expect_equal(g$max_effect_power[1], 0.635)
  out <- withr::with_options(list(width = 80), capture.output(print(pw)))
  text <- gsub(" +", " ", paste(out, collapse = " "))
  expect_false(grepl("NA", text, fixed = TRUE))
  expect_true(all(nchar(out) <= 80))
  expect_match(text, "test length 4: MDE > 2% at 80% power (largest effect tried reached 63.5% power)",
               fixed = TRUE)
  # Without 0 in the grid there is no A/A rate, and the print says so.
  set.seed(22)
  no_aa <- design_power(sales ~ 0 | cluster + week, fx$panel, design = fx$des,
                        effect = 0.05, test_length = 4, n_windows = 2, n_draws = 10,
                        pre = 1:20)
  expect_true(is.na(glance(no_aa)$aa_rejection))
  out <- capture.output(print(no_aa))
  expect_false(any(grepl("NA", out, fixed = TRUE)))
  expect_match(paste(out, collapse = " "), "A/A not simulated", fixed = TRUE)
  expect_error(design_power(sales ~ 0 | cluster + week, fx$panel, design = fx$des,
                            effect = c(-0.02, -0.01), test_length = 4, n_windows = 2,
                            n_draws = 4),
               class = "mktcausal_error_bad_argument")
})

test_that("the same seed gives the same simulations for chunk sizes 1, 50 and 1000", {
  fx <- power_fixture()
  run <- function(chunk, threads = 1L) {
    withr::local_options(mktcausal.threads = threads)
    set.seed(101)
    pw <- design_power(sales ~ 0 | cluster + week, fx$panel, design = fx$des,
                       effect = c(0, 0.05), test_length = 4, n_windows = 2, n_draws = 60,
                       method = "lin", inference = "randomization", reference_draws = 200,
                       chunk_size = chunk, pre = 1:20)
    pw$power
  }
  a <- run(1)
  expect_identical(run(50), a)
  expect_identical(run(1000), a)
  expect_identical(run(50, threads = 2L), a)
})

test_that("an interrupt stops design_power() within a second", {
  skip_on_cran()
  skip_if_not_installed("processx")
  setup <- paste(
    "units <- geo_units(sales ~ 0 | zone + week, geo_sales, randomize_by = 'dma',",
    "  size = 'population', pre = 1:52)",
    "set.seed(1)",
    "des <- rerandomize(units, ~ outcome_mean + outcome_trend, n_treated = 50, accept = 0.05)",
    sep = "\n")
  took <- seconds_to_stop(paste(
    "design_power(sales ~ 0 | zone + week, geo_sales, design = des, randomize_by = 'dma',",
    "  n_draws = 1e5, method = 'lin', inference = 'randomization', reference_draws = 1e6)"),
    setup, delay = 3)
  expect_lt(took, 1)
})
