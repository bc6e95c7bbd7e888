sim_rollout <- function(launch, n_t = 12, seed = 1, dose = NULL) {
  withr::with_seed(seed, {
    ids <- names(launch)
    d <- expand.grid(unit = ids, week = seq_len(n_t), stringsAsFactors = FALSE)
    l <- launch[d$unit]
    d$treat <- as.integer(!is.na(l) & d$week >= l)
    if (!is.null(dose)) d$treat <- d$treat * dose[d$unit]
    d$y <- 10 + d$treat + rnorm(nrow(d))
  })
  d
}

test_that("each rule of the map names its row", {
  ids <- sprintf("u%02d", 1:20)
  staggered_launch <- setNames(rep(c(4, 7, 9, NA), 5), ids)
  a <- assignment(y ~ treat | unit + week, sim_rollout(staggered_launch))
  expect_identical(a$setting, "staggered")
  expect_identical(a$facts$n_cohorts, 3L)
  expect_identical(a$facts$n_treated, 15L)

  # one cohort, many treated: the canonical two-group DiD, same row
  a <- assignment(y ~ treat | unit + week, sim_rollout(setNames(rep(c(6, NA), 10), ids)))
  expect_identical(a$setting, "staggered")
  expect_identical(a$facts$timing, "common")

  single <- setNames(c(6, rep(NA, 19)), ids)
  expect_identical(assignment(y ~ treat | unit + week, sim_rollout(single))$setting,
                   "single_treated")
  few <- setNames(c(6, 6, 6, rep(NA, 17)), ids)
  expect_identical(assignment(y ~ treat | unit + week, sim_rollout(few))$setting,
                   "single_treated")
  expect_identical(assignment(y ~ treat | unit + week, sim_rollout(few), max_single = 2)$setting,
                   "staggered")

  everyone <- setNames(rep(6, 20), ids)
  expect_identical(assignment(y ~ treat | unit + week, sim_rollout(everyone))$setting,
                   "common_shock")
  grp <- setNames(seq(0.5, 10, by = 0.5), ids)
  expect_identical(
    assignment(y ~ treat | unit + week, sim_rollout(everyone, dose = grp))$setting,
    "common_shock")
  d <- sim_rollout(staggered_launch, dose = grp)
  d$treat <- d$treat * (1 + (d$week %% 3))
  a <- assignment(y ~ treat | unit + week, d)
  expect_identical(a$setting, "continuous")
  expect_identical(a$facts$treatment_type, "continuous")

  adj <- diag(20)
  dimnames(adj) <- list(ids, ids)
  a <- assignment(y ~ treat | unit + week, sim_rollout(staggered_launch), adjacency = adj)
  expect_identical(a$setting, "spillover")
  expect_match(a$functions$call[1], "adjacency = adj", fixed = TRUE)
})

test_that("reversals and first-period adopters are flagged", {
  ids <- sprintf("u%02d", 1:10)
  d <- sim_rollout(setNames(c(1, 5, 5, rep(NA, 7)), ids))
  d$treat[d$unit == "u02" & d$week > 8] <- 0L
  a <- assignment(y ~ treat | unit + week, d)
  expect_false(a$facts$absorbing)
  expect_identical(a$facts$n_first_period, 1L)
  expect_length(a$notes, 2L)
  expect_output(print(a), "switches off")
  expect_s3_class(plot(a), "ggplot")
})

test_that("a randomized design gives the randomized row with calls on the user's names", {
  d <- sim_clusters(40, 2, seed = 5)
  set.seed(5)
  des <- rerandomize(d, ~ x1 + x2, n_treated = 20, accept = 0.2, id = "id")
  panel <- expand.grid(id = d$id, week = 1:10, stringsAsFactors = FALSE)
  panel$sales <- rnorm(nrow(panel), 100)
  a <- assignment(sales ~ 0 | id + week, panel, design = des)
  expect_identical(a$setting, "randomized")
  expect_match(a$functions$call[2], "design_power(sales ~ 0 | id + week, panel, design = design)",
               fixed = TRUE)
  panel$treated <- as.integer(panel$id %in% d$id[des$treated == 1] & panel$week >= 7)
  a <- assignment(sales ~ treated | id + week, panel, design = des)
  expect_match(a$functions$call[1], "post = 7:10", fixed = TRUE)
  # the suggested calls run as written
  design <- des
  units <- eval(str2lang(a$functions$call[1]))
  expect_equal(nrow(units), 40L)
  eval(str2lang(a$functions$call[2]))
  expect_identical(units$treated, des$treated[match(units$id, des$ids)])
  fit <- eval(str2lang(sub("design = design)", "design = design, n_draws = 200)",
                           a$functions$call[3], fixed = TRUE)))
  expect_s3_class(fit, "mkt_effect")
  rt <- eval(str2lang(sub("design = design)", "design = design, n_draws = 200)",
                          a$functions$call[4], fixed = TRUE)))
  expect_s3_class(rt, "mkt_randomization_test")
  # the analysis is aligned with the design by id: the difference in means is
  # the difference of the arms' post-period totals
  tot <- tapply(panel$sales[panel$week >= 7], panel$id[panel$week >= 7], sum)[des$ids]
  expect_equal(coef(rt)[[1]], mean(tot[des$treated == 1]) - mean(tot[des$treated == 0]),
               tolerance = 1e-10)
  out <- withr::with_options(list(width = 80), capture.output(print(a)))
  expect_true(all(nchar(out) <= 80))
  expect_error(assignment(sales ~ 0 | id + week, panel), class = "mktcausal_error_bad_formula")
})

test_that("on each shipped panel, assignment() names the right row", {
  expect_identical(assignment(packspercapita ~ treated | state + year, prop99)$setting,
                   "single_treated")
  expect_identical(assignment(gdpcap ~ terror | regionname + year, basque)$setting,
                   "single_treated")
  mp <- transform(mpdta, treated = as.integer(first.treat > 0 & year >= first.treat))
  expect_identical(assignment(lemp ~ treated | countyreal + year, mp)$setting, "staggered")
  expect_identical(assignment(l_homicide ~ post | state + year, castle)$setting, "staggered")
  # turnout: election-day registration adopted by states at different dates
  expect_identical(assignment(turnout ~ policy_edr | abb + year, gsynth_turnout)$setting,
                   "staggered")
  # simdata: 5 of 50 units treated at one date, a factor model
  expect_identical(assignment(Y ~ D | id + time, gsynth_simdata)$setting, "single_treated")
  # geo_sales carries no treatment: with its design it is a randomized experiment
  dma_week <- aggregate(sales ~ dma + week, data = geo_sales[geo_sales$week <= 20, ], FUN = sum)
  units <- geo_units(sales ~ 0 | dma + week, dma_week)
  set.seed(3)
  des <- rerandomize(units, ~ outcome_mean, n_treated = 100, accept = 0.5, id = "dma")
  expect_identical(assignment(sales ~ 0 | dma + week, dma_week, design = des)$setting,
                   "randomized")
})

test_that("the common-shock calls run as written", {
  set.seed(8)
  d <- expand.grid(dma = sprintf("d%02d", 1:30), week = 1:10, stringsAsFactors = FALSE)
  grp <- setNames(runif(30, 1, 4), sprintf("d%02d", 1:30))
  d$grp_on <- grp[d$dma] * (d$week >= 6)
  d$sales <- 10 + 0.5 * d$grp_on + rnorm(nrow(d))
  a <- assignment(sales ~ grp_on | dma + week, d)
  expect_identical(a$setting, "common_shock")
  fit <- eval(str2lang(a$functions$call[1]))
  expect_s3_class(fit, "mkt_exposure_did")
  expect_lt(abs(fit$estimates$estimate - 0.5), 4 * fit$estimates$std.error)
  d$on <- as.integer(d$week >= 6)
  b <- assignment(sales ~ on | dma + week, d)
  expect_identical(b$setting, "common_shock")
  expect_identical(nrow(b$functions), 0L)
  expect_match(b$when_doubtful, "post = 6", fixed = TRUE)
  expect_output(print(b), "none without more information")
})

test_that("a malformed neighbour structure is refused, not taken as the spillover row", {
  ids <- sprintf("u%02d", 1:20)
  d <- sim_rollout(setNames(rep(c(4, 7, 9, NA), 5), ids))
  for (bad in list("a", matrix(1, 2, 2), NA, diag(3))) {
    expect_error(assignment(y ~ treat | unit + week, d, adjacency = bad),
                 class = "mktcausal_error_bad_adjacency")
  }
  adj <- diag(20)
  dimnames(adj) <- list(ids, ids)
  adj[1, 2] <- -1
  expect_error(assignment(y ~ treat | unit + week, d, adjacency = adj),
               class = "mktcausal_error_bad_adjacency")
  # A group column of the data is a neighbour structure too.
  d$region <- ifelse(d$unit %in% ids[1:10], "east", "west")
  expect_identical(assignment(y ~ treat | unit + week, d, adjacency = "region")$setting,
                   "spillover")
})

test_that("always-on spend is the continuous row, not a common shock", {
  set.seed(12)
  d <- expand.grid(dma = sprintf("d%02d", 1:40), week = 1:26, stringsAsFactors = FALSE)
  base <- setNames(rlnorm(40, 3, 0.5), sprintf("d%02d", 1:40))
  d$spend <- base[d$dma] * exp(rnorm(nrow(d), 0, 0.3))
  d$sales <- 100 + 0.4 * d$spend + rnorm(nrow(d), 0, 5)
  a <- assignment(sales ~ spend | dma + week, d)
  expect_identical(a$setting, "continuous")
  expect_identical(a$facts$n_first_period, 40L)
  expect_match(a$notes, "always-on spend", fixed = TRUE, all = FALSE)
  fit <- eval(str2lang(a$functions$call[1]))
  expect_lt(abs(fit$estimates$estimate[1] - 0.4), 4 * fit$estimates$std.error[1])
})

test_that("a randomized test made outside the package is routed by randomized = TRUE", {
  set.seed(3)
  d <- expand.grid(dma = sprintf("d%02d", 1:40), week = 1:20, stringsAsFactors = FALSE)
  arm <- setNames(sample(rep(0:1, 20)), sprintf("d%02d", 1:40))
  level <- setNames(rnorm(40, 100, 20), names(arm))
  d$treated <- as.integer(arm[d$dma] == 1 & d$week >= 13)
  d$sales <- level[d$dma] + 3 * d$treated + rnorm(nrow(d))
  # Without the answer, the panel cannot tell: the note names the question.
  a0 <- assignment(sales ~ treated | dma + week, d)
  expect_identical(a0$setting, "staggered")
  expect_match(a0$notes, "randomized = TRUE", fixed = TRUE, all = FALSE)
  expect_false(any(grepl("randomized = TRUE",
                         assignment(sales ~ treated | dma + week, d, randomized = FALSE)$notes)))

  a <- assignment(sales ~ treated | dma + week, d, randomized = TRUE)
  expect_identical(a$setting, "randomized")
  expect_output(print(a), "no design attached", fixed = TRUE)
  expect_match(a$functions$call[3], "experiment_effect", fixed = TRUE)
  # The printed calls run as written, and the Lin estimate recovers the
  # effect on a cluster's test-window total (3 a week for 8 weeks).
  for (cl in a$functions$call) fit <- eval(str2lang(cl))
  expect_s3_class(fit, "mkt_effect")
  lin <- fit$estimates[fit$estimates$term == "lin", ]
  expect_lt(abs(lin$estimate - 24), 4 * lin$std.error)
  placebo <- eval(str2lang(a$diagnostics$call[1]))
  expect_gt(placebo$estimates$p.value[1], 0.01)

  expect_error(assignment(sales ~ treated | dma + week, d, randomized = "yes"),
               class = "mktcausal_error_bad_argument")
  d$spend <- d$treated * 2.5
  expect_error(assignment(sales ~ spend | dma + week, d, randomized = TRUE),
               class = "mktcausal_error_bad_argument")
})
