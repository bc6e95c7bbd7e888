mpdta_post <- function() {
  d <- mpdta
  d$post <- as.integer(d$first.treat > 0 & d$year >= d$first.treat)
  d
}

test_that("ATT(g,t) and analytic SEs equal did's on mpdta for every variant", {
  ref <- readRDS(test_path("fixtures", "staggered-did.rds"))
  d <- mpdta_post()
  for (key in names(ref$attgt)) {
    parts <- strsplit(key, "_")[[1]]
    control <- if (parts[1] == "not") "not_yet" else "never"
    rest <- if (parts[1] == "not") parts[-(1:2)] else parts[-1]
    f <- if (rest[2] == "lpop") lemp ~ post + lpop | countyreal + year else lemp ~ post | countyreal + year
    fit <- staggered(f, d, method = rest[1], control = control, base_period = rest[3], n_draws = 0)
    td <- tidy(fit)
    r <- ref$attgt[[key]]
    expect_identical(as.numeric(td$group), as.numeric(r$group), info = key)
    expect_identical(as.numeric(td$time), as.numeric(r$time), info = key)
    expect_lt(max(abs(td$estimate - r$att)), 1e-6)
    both <- !is.na(r$se)
    expect_identical(is.na(td$std.error), !both, info = key)
    expect_lt(max(abs(td$std.error[both] - r$se[both])), 1e-6)
  }
})

test_that("anticipation shifts base periods and controls as in did", {
  ref <- readRDS(test_path("fixtures", "staggered-did.rds"))$anticipation
  d <- mpdta_post()
  expect_warning(fit <- staggered(lemp ~ post | countyreal + year, d, anticipation = 1, n_draws = 0),
                 class = "mktcausal_warning_treated_first_period")
  td <- tidy(fit)
  key <- paste(td$group, td$time)
  i <- match(paste(ref$group, ref$time), key)
  expect_false(anyNA(i))
  expect_lt(max(abs(td$estimate[i] - ref$att)), 1e-6)
  expect_lt(max(abs(td$std.error[i] - ref$se), na.rm = TRUE), 1e-6)
})

test_that("the overall simple ATT on mpdta is -0.0400 (SE 0.0120)", {
  fit <- staggered(lemp ~ post | countyreal + year, mpdta_post(), n_draws = 0)
  o <- tidy(aggregate(fit, "simple"))
  expect_identical(o$term, "overall")
  expect_equal(round(o$estimate, 4), -0.0400)
  expect_equal(round(o$std.error, 4), 0.0120)
})

test_that("noise-free staggered panel: every ATT(g,t) equals the truth and TWFE does not", {
  d <- sim_staggered(n = 300, noise = 0)
  truth <- unique(d[d$cohort > 0, c("cohort", "time", "effect")])
  for (ctrl in c("never", "not_yet")) {
    for (m in c("dr", "reg")) {
      fit <- staggered(y ~ post | unit + time, d, control = ctrl, method = m, n_draws = 0)
      td <- tidy(fit)
      want <- truth$effect[match(paste(td$group, td$time), paste(truth$cohort, truth$time))]
      expect_lt(max(abs(td$estimate - want)), 1e-10)
    }
  }
  fit <- staggered(y ~ post | unit + time, d, n_draws = 0)
  shares <- table(d$cohort[d$time == 1 & d$cohort > 0])
  post <- truth[truth$time >= truth$cohort, ]
  w <- as.numeric(shares[as.character(post$cohort)])
  simple_truth <- sum(post$effect * w) / sum(w)
  expect_equal(tidy(aggregate(fit))$estimate, simple_truth, tolerance = 1e-10)
  ev <- tidy(aggregate(fit, "event"))
  expect_equal(ev$estimate[ev$term == "event 0"],
               sum(c(1, 2, 0.5) * shares) / sum(shares), tolerance = 1e-10)
  twfe <- stats::coef(stats::lm(y ~ post + factor(unit) + factor(time), d))[["post"]]
  expect_gt(abs(twfe - simple_truth), 0.5)
})

test_that("with noise the estimates cover the truth", {
  d <- sim_staggered(n = 800, noise = 1, seed = 3)
  set.seed(4)
  fit <- staggered(y ~ post | unit + time, d, n_draws = 499)
  td <- tidy(fit)
  truth <- unique(d[d$cohort > 0, c("cohort", "time", "effect")])
  want <- truth$effect[match(paste(td$group, td$time), paste(truth$cohort, truth$time))]
  z <- (td$estimate - want) / td$std.error
  expect_lt(max(abs(z)), 4)
  # the uniform band covers every cell
  expect_true(all(td$conf.low <= want & want <= td$conf.high))
  expect_gt(fit$crit, stats::qnorm(0.975))
  expect_equal(td$std.error.boot, td$std.error, tolerance = 0.15)
})

test_that("bootstrap is reproducible with set.seed and independent of threads", {
  d <- mpdta_post()
  old <- mkt_threads()
  on.exit(mkt_threads(old))
  mkt_threads(1)
  set.seed(11)
  a <- staggered(lemp ~ post | countyreal + year, d, n_draws = 300)
  mkt_threads(2)
  set.seed(11)
  b <- staggered(lemp ~ post | countyreal + year, d, n_draws = 300)
  expect_identical(a$boot_se, b$boot_se)
  expect_identical(tidy(a), tidy(b))
  expect_identical(a$crit, b$crit)
  expect_true(all(is.finite(a$boot_se)))
})

test_that("clustering sums influence functions within clusters", {
  d <- sim_staggered(n = 200, noise = 1, seed = 5)
  d$market <- d$cohort * 100 + (d$unit %% 7)  # markets nest cohorts
  a <- staggered(y ~ post | unit + time, d, n_draws = 0)
  b <- staggered(y ~ post | unit + time, d, n_draws = 0, cluster = "market")
  expect_identical(a$cells$estimate, b$cells$estimate)
  # The influence functions are kept on the fit's internal scale of the outcome.
  S <- rowsum(a$inf * a$scale,
              match(d$market[d$time == 1][order(unique(d$unit))], unique(d$market)))
  expect_equal(b$cells$std.error, sqrt(colSums(S^2)) / 200, tolerance = 1e-12)
  expect_identical(b$n$clusters, length(unique(d$market)))
  # vcov() is the covariance of the cells from the clustered influence sums.
  expect_equal(unname(vcov(b)), crossprod(S) / 200^2, tolerance = 1e-12)
  expect_equal(sqrt(diag(vcov(b))), b$cells$std.error, tolerance = 1e-12,
               ignore_attr = TRUE)
  d$market[1] <- -1
  expect_error(staggered(y ~ post | unit + time, d, cluster = "market"),
               class = "mktcausal_error_varies_within_unit")
})

test_that("sampling weights give weighted means of changes", {
  d <- sim_staggered(n = 200, noise = 1, seed = 6)
  fit <- staggered(y ~ post | unit + time, d, weights = "pop", n_draws = 0)
  wide <- stats::reshape(d[c("unit", "time", "y")], idvar = "unit", timevar = "time",
                         direction = "wide")
  u <- d[d$time == 1, ]
  dy <- wide$y.4 - wide$y.2
  tr <- u$cohort == 3
  cn <- u$cohort == 0
  want <- stats::weighted.mean(dy[tr], u$pop[tr]) - stats::weighted.mean(dy[cn], u$pop[cn])
  td <- tidy(fit)
  expect_equal(td$estimate[td$group == 3 & td$time == 4], want, tolerance = 1e-12)
  expect_error(staggered(y ~ post | unit + time, transform(d, pop = pop * time),
                         weights = "pop"), class = "mktcausal_error_varies_within_unit")
})

test_that("unbalanced panels use units observed in both periods of a cell", {
  d <- sim_staggered(n = 200, noise = 1, seed = 7)
  # Units of cohort 5 keep period 4: without it their adoption period would
  # be unknown (see the next tests).
  gone <- setdiff(1:30, d$unit[d$cohort == 5])
  drop <- d$unit %in% gone & d$time == 4
  fit <- staggered(y ~ post | unit + time, d[!drop, ], n_draws = 0)
  full <- staggered(y ~ post | unit + time, d[!(d$unit %in% gone), ], n_draws = 0)
  td <- tidy(fit)
  tf <- tidy(full)
  untouched <- td$time != 4 & !(td$time == 5 & td$event < 0)
  # cells that never use period 4 keep units 1:30
  expect_false(isTRUE(all.equal(td$estimate[untouched], tf$estimate[untouched])))
  # cells that use period 4 equal the fit without those units
  uses4 <- td$time == 4 | (td$time == 5 & td$event < 0)
  expect_equal(td$estimate[uses4], tf$estimate[uses4], tolerance = 1e-12)
  expect_identical(fit$n$units, 200L)
  # The same with a covariate: cells are fitted on their own units.
  d$x <- stats::rnorm(200)[d$unit]
  for (m in c("dr", "ipw", "reg")) {
    fit <- staggered(y ~ post + x | unit + time, d[!drop, ], method = m, n_draws = 0)
    full <- staggered(y ~ post + x | unit + time, d[!(d$unit %in% gone), ], method = m,
                      n_draws = 0)
    expect_equal(tidy(fit)$estimate[uses4], tidy(full)$estimate[uses4], tolerance = 1e-10)
    expect_false(isTRUE(all.equal(tidy(fit)$estimate[untouched], tidy(full)$estimate[untouched])))
  }
})

test_that("a cohort with no unit observed in a cell gives NA with a reason", {
  d <- sim_staggered(n = 200, noise = 1, seed = 8)
  d <- d[!(d$cohort == 7 & d$time == 8), ]
  fit <- staggered(y ~ post | unit + time, d, n_draws = 0)
  td <- tidy(fit)
  bad <- td$group == 7 & td$time == 8
  expect_true(is.na(td$estimate[bad]) && is.na(td$std.error[bad]))
  expect_identical(td$note[bad], "no treated units observed in both periods")
  expect_true(all(!is.na(td$estimate[!bad])))
  expect_identical(glance(fit)$n_na_cells, 1L)
})

test_that("units whose adoption period is unknown are dropped, not put in a later cohort", {
  d <- sim_staggered(n = 200, noise = 1, seed = 21)
  # Units 1-6 of cohort 5 lose their adoption row (period 5), units 7-9 of
  # cohort 3 the row before it (period 2): either way the adoption period
  # could be earlier than the first treated row says.
  c5 <- unique(d$unit[d$cohort == 5])[1:6]
  c3 <- unique(d$unit[d$cohort == 3])[1:3]
  absent <- (d$unit %in% c5 & d$time == 5) | (d$unit %in% c3 & d$time == 2)
  # Unit 10 of cohort 7 loses a row well before adoption: its cohort is known.
  c7 <- unique(d$unit[d$cohort == 7])[1]
  absent <- absent | (d$unit == c7 & d$time == 3)
  expect_warning(fit <- staggered(y ~ post | unit + time, d[!absent, ], n_draws = 0),
                 class = "mktcausal_warning_uncertain_cohort")
  expect_setequal(as.integer(fit$dropped_units), c(c5, c3))
  du <- tidy(fit, "dropped_units")
  expect_true(all(du$reason == "adoption period unknown (rows absent)"))
  # No spurious cohort 6 (nor 4): the cohorts are those of the design.
  expect_setequal(unique(tidy(fit)$group), c(3, 5, 7))
  # The same as leaving those units out by hand.
  ref <- staggered(y ~ post | unit + time, d[!absent & !(d$unit %in% c(c5, c3)), ], n_draws = 0)
  expect_equal(tidy(fit)$estimate, tidy(ref)$estimate, tolerance = 1e-12)
  expect_equal(tidy(fit)$std.error, tidy(ref)$std.error, tolerance = 1e-12)
  # A row with the treatment but no outcome fixes the cohort: kept.
  d2 <- d
  d2$y[absent & d2$unit %in% c5] <- NA
  expect_warning(fit2 <- staggered(y ~ post | unit + time, d2[!(absent & d2$unit %in% c3), ],
                                   n_draws = 0),
                 class = "mktcausal_warning_uncertain_cohort")
  expect_setequal(as.integer(fit2$dropped_units), c3)
  # The event studies read the same cohorts.
  expect_warning(es <- event_study(y ~ post | unit + time, d[!absent, ], method = "sa"),
                 class = "mktcausal_warning_uncertain_cohort")
  es_ref <- event_study(y ~ post | unit + time, d[!absent & !(d$unit %in% c(c5, c3)), ],
                        method = "sa")
  expect_equal(tidy(es)$estimate, tidy(es_ref)$estimate, tolerance = 1e-10)
})

test_that("with 10% of rows absent the uniform bands keep their coverage", {
  # On 9570aec the units that lost their adoption row formed small spurious
  # cohorts and the bands covered all cells in 0.65 of 200 replications.
  covered <- vapply(1:30, staggered_band_covers, logical(1))
  expect_gte(mean(covered), 0.85)
})

test_that("with 10% of rows absent the uniform bands cover 95% of the time (200 replications)", {
  skip_on_cran()
  covered <- vapply(1:200, staggered_band_covers, logical(1))
  expect_gte(mean(covered), 0.92)
})

test_that("a constant or collinear covariate is dropped with a warning, not all cells NA", {
  d <- sim_staggered(n = 200, noise = 1, seed = 22)
  d$x <- stats::rnorm(200)[d$unit]
  d$one <- 1
  d$x2 <- 2 * d$x - 3
  for (m in c("dr", "ipw", "reg")) {
    ref <- staggered(y ~ post + x | unit + time, d, method = m, n_draws = 0)
    expect_warning(a <- staggered(y ~ post + one + x | unit + time, d, method = m, n_draws = 0),
                   class = "mktcausal_warning_dropped_covariate")
    expect_warning(b <- staggered(y ~ post + x + x2 | unit + time, d, method = m, n_draws = 0),
                   "x2", class = "mktcausal_warning_dropped_covariate")
    expect_false(anyNA(tidy(a)$estimate))
    expect_equal(tidy(a)$estimate, tidy(ref)$estimate, tolerance = 1e-10)
    expect_equal(tidy(b)$estimate, tidy(ref)$estimate, tolerance = 1e-10)
    expect_equal(tidy(b)$std.error, tidy(ref)$std.error, tolerance = 1e-10)
  }
  # Only a constant covariate: the DiD of mean changes, computed by hand.
  expect_warning(c1 <- staggered(y ~ post + one | unit + time, d, n_draws = 0),
                 "constant", class = "mktcausal_warning_dropped_covariate")
  wide <- stats::reshape(d[c("unit", "time", "y")], idvar = "unit", timevar = "time",
                         direction = "wide")
  u <- d[d$time == 1, ]
  dy <- wide$y.6 - wide$y.4
  want <- mean(dy[u$cohort == 5]) - mean(dy[u$cohort == 0])
  td <- tidy(c1)
  expect_equal(td$estimate[td$group == 5 & td$time == 6], want, tolerance = 1e-12)
  # The event study's "cs" method goes through the same fit.
  expect_warning(es <- event_study(y ~ post + one | unit + time, d),
                 class = "mktcausal_warning_dropped_covariate")
  expect_false(anyNA(tidy(es)$estimate))
})

test_that("bad input raises the documented classed errors", {
  d <- sim_staggered(n = 120, noise = 1, seed = 9)
  early <- d
  early$post[early$unit %in% 1:3] <- 1L
  expect_warning(fit <- staggered(y ~ post | unit + time, early, n_draws = 0),
                 class = "mktcausal_warning_treated_first_period")
  expect_identical(sort(as.integer(fit$dropped_units)), 1:3)
  expect_identical(sort(as.integer(tidy(fit, "dropped_units")$unit)), 1:3)
  expect_identical(fit$n$units, 117L)

  never_none <- d[d$cohort > 0, ]
  expect_error(staggered(y ~ post | unit + time, never_none, n_draws = 0),
               class = "mktcausal_error_no_never_treated")
  expect_s3_class(staggered(y ~ post | unit + time, never_none, control = "not_yet",
                            n_draws = 0), "mkt_staggered")

  off <- d
  off$post[off$cohort == 3 & off$time == 8] <- 0L
  expect_error(staggered(y ~ post | unit + time, off), class = "mktcausal_error_treatment_switches_off")

  tv <- d
  tv$x <- tv$time * 0.1 + tv$unit
  expect_error(staggered(y ~ post + x | unit + time, tv, n_draws = 0),
               class = "mktcausal_error_varies_within_unit")
  expect_error(staggered(y ~ 0 | unit + time, d), class = "mktcausal_error_no_treatment")
  expect_error(staggered(y ~ post | unit + time, d, n_draws = -1), class = "mktcausal_error_bad_argument")
  expect_error(staggered(y ~ post | unit + time, d, method = "drr"), class = "mktcausal_error_bad_choice")
  expect_error(staggered(y ~ post | unit + time, d, n_boots = 9),
               class = "mktcausal_error_unknown_argument")
})

test_that("tibble input and the methods work", {
  skip_if_not_installed("tibble")
  d <- tibble::as_tibble(mpdta_post())
  fit <- staggered(lemp ~ post | countyreal + year, d, n_draws = 0)
  expect_named(tidy(fit)[1:10], c("term", "estimate", "std.error", "statistic", "p.value",
                                  "conf.low", "conf.high", "group", "time", "event"))
  expect_identical(nrow(tidy(fit)), 12L)
  expect_identical(glance(fit)$n_cohorts, 3L)
  expect_identical(nobs(fit), 2500L)
  expect_equal(unname(coef(fit)[1]), tidy(fit)$estimate[1])
  expect_identical(names(coef(fit))[1], "ATT(2004,2004)")
  expect_output(print(fit), "Overall ATT")
  expect_s3_class(plot(fit), "ggplot")
  expect_output(print(summary(fit)), "Group-time")
  # A panel passed in place of the formula gives the same fit.
  p <- mkt_panel(lemp ~ post | countyreal + year, d)
  expect_identical(tidy(staggered(p, n_draws = 0)), tidy(fit))
})

test_that("the cohort-sum bootstrap gives the same draws as the influence-matrix one", {
  d <- sim_staggered(n = 300, noise = 1, seed = 13)
  for (ctrl in c("never", "not_yet")) {
    set.seed(5)
    fit <- staggered(y ~ post | unit + time, d, control = ctrl, n_draws = 200)
    dense <- staggered_bootstrap(fit$inf * fit$scale, fit$n$units, 200L, fit$seed, 0.05)
    expect_equal(fit$boot_se, dense$se, tolerance = 1e-10)
    expect_equal(fit$crit, dense$crit, tolerance = 1e-10)
  }
})

test_that("the block bootstrap (covariates, clusters) gives the dense draws, for any thread count", {
  d <- sim_staggered(n = 300, noise = 1, seed = 14)
  d$x <- stats::rnorm(300)[d$unit]
  old <- mkt_threads()
  on.exit(mkt_threads(old))
  for (cl in list(NULL, "market")) {
    fits <- lapply(1:2, function(th) {
      mkt_threads(th)
      set.seed(6)
      staggered(y ~ post + x | unit + time, d, control = "not_yet", cluster = cl, n_draws = 200)
    })
    expect_identical(fits[[1]]$boot_se, fits[[2]]$boot_se)
    expect_identical(fits[[1]]$crit, fits[[2]]$crit)
    fit <- fits[[1]]
    S <- rowsum(fit$inf * fit$scale, fit$cluster_id, reorder = FALSE)
    dense <- staggered_bootstrap(S, fit$n$units, 200L, fit$seed, 0.05)
    expect_equal(fit$boot_se, dense$se, tolerance = 1e-10)
    expect_equal(fit$crit, dense$crit, tolerance = 1e-10)
    expect_equal(unname(vcov(fit)), crossprod(S) / fit$n$units^2, tolerance = 1e-12)
  }
})

test_that("a bootstrap too large for memory is a classed error before any work, not a crash", {
  # On 9570aec n_draws = 1e8 aborted R (std::bad_alloc inside the OpenMP
  # region of the multiplier bootstrap).
  d <- mpdta_post()
  withr::local_options(mktcausal.max_memory = 16e9)
  for (f in list(lemp ~ post | countyreal + year, lemp ~ post + lpop | countyreal + year)) {
    expect_error(staggered(f, d, n_draws = 1e8), class = "mktcausal_error_too_large")
    expect_error(staggered(f, d, n_draws = 1e8), "n_draws")
  }
  expect_error(staggered(lemp ~ post | countyreal + year, d, n_draws = 2^31),
               class = "mktcausal_error_bad_argument")
  fit <- staggered(lemp ~ post | countyreal + year, d, n_draws = 0)
  fit$n_draws <- 1e8
  expect_error(aggregate(fit, "event"), class = "mktcausal_error_too_large")
})

test_that("bootstrap draws do not depend on how they are chunked, and progress is reported", {
  d <- sim_staggered(n = 300, noise = 1, seed = 15)
  d$x <- stats::rnorm(300)[d$unit]
  withr::local_options(progressr.enable = TRUE)
  steps <- 0
  set.seed(3)
  fit <- withCallingHandlers(
    staggered(y ~ post + x | unit + time, d, method = "reg", n_draws = 300),
    progression = function(cond) {
      if (identical(cond$type, "update")) steps <<- steps + cond$amount
    }
  )
  expect_equal(steps, 300)
  S <- fit$inf
  kernels <- list(
    boot_kernel_dense(S, 300, fit$seed),
    cohort_sum_kernel(
      list(Y = matrix(d$y, 300, byrow = TRUE), w = rep(1, 300), n = 300,
           cohort = match(d$cohort[d$time == 1], c(0, 1:8)) - 1L),
      fit$cells, list(status = integer(nrow(fit$cells)), wsum1 = rep(1, nrow(fit$cells)),
                      wsum0 = rep(1, nrow(fit$cells)), mean1 = numeric(nrow(fit$cells)),
                      mean0 = numeric(nrow(fit$cells))),
      FALSE, seq_len(nrow(fit$cells)), fit$seed)
  )
  for (k in kernels) {
    whole <- k(1:200)
    # Chunks in whole slices of 64 draws give the very same numbers; any
    # other split the same multipliers (equal up to rounding).
    expect_identical(rbind(k(1:128), k(129:200)), whole)
    expect_equal(rbind(k(1:50), k(51:200)), whole, tolerance = 1e-12)
    expect_false(isTRUE(all.equal(k(1:50), k(51:100))))
  }
  # Each draw's multipliers are Mammen's: mean 0, variance 1, and every
  # cluster's draws are independent of the others'.
  v <- boot_kernel_dense(diag(2000), 1, fit$seed)(1:500)
  expect_equal(sort(unique(round(as.vector(v), 12))),
               round(c((1 - sqrt(5)) / 2, (1 + sqrt(5)) / 2), 12))
  expect_lt(abs(mean(v)), 0.01)
  expect_lt(abs(stats::var(as.vector(v)) - 1), 0.01)
  expect_lt(max(abs(stats::cor(v[, 1:20])[upper.tri(diag(20))])), 0.2)
})

test_that("the bootstrap stops within a second of an interrupt", {
  skip_on_cran()
  skip_if_not_installed("processx")
  setup <- paste(
    "set.seed(1); N <- 30000L; Tn <- 20L",
    "coh <- sample(c(0L, 5L, 9L, 13L, 17L), N, replace = TRUE)",
    "d <- data.frame(unit = rep(seq_len(N), each = Tn), time = rep(seq_len(Tn), N))",
    "d$post <- as.integer(coh[d$unit] > 0 & d$time >= coh[d$unit])",
    "d$y <- rnorm(nrow(d)); d$x <- rnorm(N)[d$unit]; d$m <- d$unit %% 500",
    "p <- mkt_panel(y ~ post | unit + time, d)",
    "px <- mkt_panel(y ~ post + x | unit + time, d)",
    "pc <- mkt_panel(y ~ post | unit + time, d, cluster = 'm')",
    "f <- staggered(p, n_draws = 0); f$n_draws <- 4e5", sep = "\n")
  # The cohort-sum, block and dense kernels (the last through aggregate()).
  for (code in c("staggered(p, n_draws = 4e5)", "staggered(px, n_draws = 4e5, method = 'reg')",
                 "staggered(pc, n_draws = 4e5)", "aggregate(f, 'event')")) {
    expect_lt(seconds_to_stop(code, setup, delay = 1), 1)
  }
})

test_that("Date periods and data.table input give the same effects", {
  skip_if_not_installed("data.table")
  d <- sim_staggered(n = 150, noise = 1, seed = 17)
  base <- tidy(staggered(y ~ post | unit + time, d, n_draws = 0))
  d$week <- as.Date("2025-01-06") + 7 * (d$time - 1)
  dt <- data.table::as.data.table(d)
  fit <- staggered(y ~ post | unit + week, dt, n_draws = 0)
  td <- tidy(fit)
  expect_s3_class(td$group, "Date")
  expect_identical(td$event, base$event)
  expect_equal(td$estimate, base$estimate, tolerance = 1e-12)
  ev <- tidy(aggregate(fit, "event"))
  expect_identical(ev$term[2], "event -5")
})
