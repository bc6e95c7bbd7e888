# compare_designs(): the three designs on the same windows, the A/A row,
# volumes from the panel, bad input.

cmp_panel <- function() {
  dma <- stats::aggregate(sales ~ dma + week, geo_sales, sum)
  dma[dma$dma %in% sprintf("DMA%03d", 1:30), ]
}

test_that("the designs are scored on the same windows, with an A/A row and volumes", {
  skip_on_cran()
  d <- cmp_panel()
  set.seed(7)
  cmp <- compare_designs(sales ~ 0 | dma + week, d, n_treated = 2, n_windows = 6,
                         effect = c(0.05, 0.2), n_draws = 30, n_candidates = 150,
                         cost_per_market = 100, cost_per_unit = 0.01)
  s <- tidy(cmp, "summary")
  p <- tidy(cmp)
  expect_setequal(s$design, c("randomized", "selected", "synthetic"))
  expect_setequal(unique(p$effect), c(0, 0.05, 0.2))
  # Same windows: the randomized simulation, the selection and both backtests.
  ends <- as.character(cmp$windows$end)
  expect_equal(length(ends), 6L)
  expect_equal(as.character(cmp$designs$randomized$windows$end_time), ends)
  expect_equal(as.character(cmp$designs$selected_backtest$plan$window_end), ends)
  expect_equal(as.character(cmp$designs$synthetic_backtest$plan$window_end), ends)
  # The synthetic design saw no window: its history ends before the first.
  expect_lt(max(cmp$designs$synthetic$blank_periods), min(as.integer(cmp$windows$start)))
  # A/A = power at effect 0, with its binomial Monte Carlo SE.
  for (dn in s$design) {
    row <- s[s$design == dn, ]
    expect_equal(row$aa_rejection, p$power[p$design == dn & p$effect == 0])
    expect_equal(row$aa_se, sqrt(0.05 * 0.95 / row$n_sims))
  }
  expect_equal(s$n_sims[s$design == "randomized"], 30L * 6L)
  # Volumes: the treated markets' total over a window, averaged over windows.
  Y <- tapply(d$sales, list(d$dma, d$week), sum)
  e <- as.integer(ends)
  vol <- function(mk) mean(sapply(e, function(k) sum(Y[mk, (k - 3):k])))
  sel <- strsplit(s$markets[s$design == "selected"], ", ")[[1]]
  expect_equal(s$treated_volume[s$design == "selected"], vol(sel))
  expect_equal(s$treated_volume[s$design == "randomized"],
               2 * mean(sapply(e, function(k) mean(rowSums(Y[, (k - 3):k])))))
  expect_equal(p$incremental, p$effect * s$treated_volume[match(p$design, s$design)])
  expect_equal(s$cost, 100 * s$n_treated + 0.01 * s$treated_volume)
  # The MDE is read from the power curve: where reached, power there is
  # at least the target, and below it at the grid point before.
  for (dn in s$design[s$mde_reached]) {
    cv <- p[p$design == dn, ]
    m <- s$mde[s$design == dn]
    expect_gte(stats::approx(cv$effect, cv$power, xout = m)$y, 0.8 - 1e-8)
  }
  out <- capture.output(print(cmp))
  expect_true(all(nchar(out) <= 80))
  expect_s3_class(plot(cmp), "ggplot")
})

test_that("bad input gets classed errors", {
  d <- cmp_panel()
  expect_error(compare_designs(sales ~ 0 | dma + week, d, n_treated = 30),
               class = "mktcausal_error_too_few_controls")
  d$tr <- 0
  expect_error(compare_designs(sales ~ tr | dma + week, d, n_treated = 2),
               class = "mktcausal_error_bad_formula")
  expect_error(compare_designs(sales ~ 0 | dma + week, d, n_treated = 2, cost_per_market = -1),
               class = "mktcausal_error_bad_argument")
  expect_error(compare_designs(sales ~ 0 | dma + week, d, n_treated = 2, test_length = 104),
               class = "mktcausal_error")
})
