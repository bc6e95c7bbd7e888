match_bacondecomp <- function(ours, ref) {
  td <- tidy(ours, "comparisons")
  ctrl <- ifelse(is.na(td$control), 99999, td$control)
  key_ours <- paste(td$treated, ctrl, td$type)
  key_ref <- paste(ref$treated, ref$untreated, ref$type)
  expect_setequal(key_ours, key_ref)
  i <- match(key_ref, key_ours)
  c(estimate = max(abs(td$estimate[i] - ref$estimate)),
    weight = max(abs(td$weight[i] - ref$weight)))
}

test_that("castle: weights and 2x2 estimates equal bacondecomp's, sum is TWFE 0.0818", {
  ref <- readRDS(test_path("fixtures", "bacon.rds"))
  b <- bacon(l_homicide ~ post | state + year, castle)
  diffs <- match_bacondecomp(b, ref$castle)
  expect_lt(diffs[["estimate"]], 1e-10)
  expect_lt(diffs[["weight"]], 1e-10)
  td <- tidy(b, "comparisons")
  expect_identical(nrow(td), 25L)
  expect_equal(sum(td$weight), 1, tolerance = 1e-12)
  twfe <- stats::coef(stats::lm(l_homicide ~ post + factor(state) + factor(year), castle))[["post"]]
  expect_lt(abs(sum(td$estimate * td$weight) - twfe), 1e-10)
  expect_lt(abs(b$twfe - twfe), 1e-10)
  expect_equal(round(b$twfe, 4), 0.0818)
  g <- glance(b)
  expect_equal(g$weight_already_treated_controls, 0.03190, tolerance = 1e-3)
  # The estimates: TWFE, then the weighted average of each type's 2x2s.
  est <- tidy(b)
  expect_identical(est$term[1], "TWFE")
  expect_equal(coef(b)[["TWFE"]], twfe, tolerance = 1e-10)
  expect_equal(sum(est$weight[-1]), 1, tolerance = 1e-12)
  expect_equal(sum(est$estimate[-1] * est$weight[-1]), twfe, tolerance = 1e-10)
  tu <- td[td$type == "Treated vs Untreated", ]
  expect_equal(coef(b)[["Treated vs Untreated"]], sum(tu$estimate * tu$weight) / sum(tu$weight),
               tolerance = 1e-12)
  expect_error(vcov(b), class = "mktcausal_error_not_available")
  expect_identical(nobs(b), 550L)
})

test_that("always-treated units enter as controls as in bacondecomp", {
  ref <- readRDS(test_path("fixtures", "bacon.rds"))
  b <- bacon(y ~ post | id + time, ref$sim_data)
  diffs <- match_bacondecomp(b, ref$sim)
  expect_lt(max(diffs), 1e-10)
  twfe <- stats::coef(stats::lm(y ~ post + factor(id) + factor(time), ref$sim_data))[["post"]]
  cmp <- tidy(b, "comparisons")
  expect_lt(abs(sum(cmp$estimate * cmp$weight) - twfe), 1e-10)
  expect_true("Later vs Always Treated" %in% cmp$type)
})

test_that("dynamic effects: later-vs-earlier comparisons are biased, as the theory says", {
  d <- sim_staggered(n = 300, noise = 0)
  b <- bacon(y ~ post | unit + time, d)
  td <- tidy(b, "comparisons")
  # cohort 3's effect grows by 1 a period; used as a control after adopting,
  # it makes the 2x2 estimate for cohort 5 fall below cohort 5's true effects.
  late <- td[td$type == "Later vs Earlier Treated" & td$treated == 5 & td$control == 3, ]
  truth_5 <- mean(2 + 0.5 * (0:1))  # cohort 5's effect in periods 5-6 (before 7)
  expect_lt(late$estimate, truth_5 - 1)
  twfe <- stats::coef(stats::lm(y ~ post + factor(unit) + factor(time), d))[["post"]]
  expect_lt(abs(sum(td$estimate * td$weight) - twfe), 1e-10)
})

test_that("unbalanced panels: units with gaps are dropped and the identity holds", {
  d <- sim_staggered(n = 200, noise = 1, seed = 2)
  gaps <- d$unit %in% c(5, 17, 40) & d$time == 3
  expect_warning(b <- bacon(y ~ post | unit + time, d[!gaps, ]),
                 class = "mktcausal_warning_unbalanced_panel")
  expect_identical(sort(as.integer(as.character(b$dropped))), c(5L, 17L, 40L))
  bal <- d[!(d$unit %in% c(5, 17, 40)), ]
  twfe <- stats::coef(stats::lm(y ~ post + factor(unit) + factor(time), bal))[["post"]]
  expect_lt(abs(b$twfe - twfe), 1e-10)
  expect_lt(abs(glance(b)$weighted_sum - twfe), 1e-10)
})

test_that("bad input raises classed errors; methods work", {
  d <- sim_staggered(n = 100, noise = 1, seed = 3)
  expect_error(bacon(y ~ post + pop | unit + time, d), class = "mktcausal_error_covariates_not_supported")
  off <- d
  off$post[off$cohort == 3 & off$time == 8] <- 0L
  expect_error(bacon(y ~ post | unit + time, off), class = "mktcausal_error_treatment_switches_off")
  same <- d[d$cohort == 3, ]
  expect_error(bacon(y ~ post | unit + time, same), class = "mktcausal_error_no_variation")
  b <- bacon(l_homicide ~ post | state + year, castle)
  expect_output(print(b), "TWFE = 0.0818")
  expect_s3_class(plot(b), "ggplot")
  expect_error(bacon(y ~ post | unit + time, d, cluster = "market"),
               class = "mktcausal_error_unknown_argument")
})
