# Budget-first planning with design_power(spend = ): power and the MDE in
# iROAS units, the spend that reaches the target power, go-dark cells, and a
# check by an independent simulation (Lin's HC2 test written out, on experiments
# drawn from the design's rule) that the plan's power is what a test run at
# the planned budget achieves.

budget_fixture <- local({
  cache <- NULL
  function() {
    if (is.null(cache)) {
      # iid weekly sales of 60 clusters: mean 100, sd 10.
      panel <- sim_iid_panel()
      units <- geo_units(sales ~ 0 | cluster + week, panel, pre = 1:20)
      set.seed(11)
      des <- rerandomize(units, ~ outcome_mean + outcome_trend, n_treated = 30,
                         accept = 0.05)
      set.seed(12)
      pw <- design_power(sales ~ 0 | cluster + week, panel, design = des,
                         effect = seq(0, 2, by = 0.125), test_length = 4, n_windows = 4,
                         n_draws = 100, pre = 1:20, spend = 100, iroas = 1)
      cache <<- list(panel = panel, des = des, pw = pw)
    }
    cache
  }
})

# Lin's estimate and its HC2 t-test p-value, written out from the
# formulas (OLS on treatment, centred covariates and their interactions;
# HC2 weights e^2 / (1 - h); n - p degrees of freedom), independently of
# the package's code.
lin_hc2_p <- function(y, a, X) {
  Xc <- sweep(X, 2, colMeans(X))
  M <- cbind(1, a, Xc, Xc * a)
  qx <- qr(M)
  e <- qr.resid(qx, y)
  XtXi <- chol2inv(qr.R(qx))
  h <- rowSums((M %*% XtXi) * M)
  V <- XtXi %*% crossprod(M * (e / sqrt(1 - h))) %*% XtXi
  b <- unname(qr.coef(qx, y)[2])
  2 * stats::pt(-abs(b / sqrt(V[2, 2])), length(y) - ncol(M))
}

# Rejection rate over `n` assignments drawn from the design's rule, replayed
# on the plan's windows, when the treated arm's spend changes by `spend` per
# week for 4 weeks and returns `iroas` per unit: each treated cluster's
# sales rise by the share delta = iroas * spend * 4 / (30 * mean window
# total) of its own.
realized_power <- function(fx, spend, iroas, n = 200, seed = c(101L, 202L)) {
  des <- fx$des
  Y <- with(fx$panel, tapply(sales, list(cluster, week), sum))[des$ids, ]
  A <- mktcausal:::draw_assignments(des$spec, seq_len(n), seed, 1e6)$assignments
  ends <- fx$pw$windows$end_index
  reject <- vapply(ends, function(e) {
    y <- rowSums(Y[, (e - 3):e])
    delta <- iroas * spend * 4 / (30 * mean(y))
    vapply(seq_len(ncol(A)), function(i) {
      a <- as.integer(A[, i])
      lin_hc2_p(y * (1 + delta * a), a, des$X) <= 0.05
    }, logical(1))
  }, logical(n))
  mean(reject)
}

test_that("the hand-written Lin HC2 test is experiment_effect()'s", {
  fx <- budget_fixture()
  y <- rowSums(with(fx$panel, tapply(sales, list(cluster, week), sum))[fx$des$ids, 37:40])
  a <- as.integer(fx$des$treated)
  d <- data.frame(sales = y + 5 * a, treated = a, fx$des$X)
  td <- tidy(experiment_effect(sales ~ treated, d, covariates = ~ outcome_mean + outcome_trend))
  expect_equal(lin_hc2_p(y + 5 * a, a, fx$des$X), td$p.value[td$term == "lin"])
})

test_that("power and the MDE are in iROAS units, with the spend that reaches the target", {
  pw <- budget_fixture()$pw
  g <- glance(pw)
  tab <- tidy(pw)
  expect_equal(tab$effect, seq(0, 2, by = 0.125))
  expect_equal(unique(tab$n_sims), 400L)
  # Lin's estimate read back as iROAS is unbiased within Monte Carlo error.
  expect_true(all(abs(tab$bias) < 3 * tab$rmse / sqrt(400) + 0.01))
  expect_equal(g$spend, 100)
  expect_equal(g$target_iroas, 1)
  expect_equal(g$power_at_target, tab$power[tab$effect == 1])
  expect_equal(g$mde_cost_per_unit, 1 / g$mde_interpolated)
  expect_equal(g$spend_needed, 100 * g$mde_interpolated / 1)
  expect_equal(g$spend_needed_total, 4 * g$spend_needed)
  # Closed form: sd of a 4-week total 20, no gain from covariates on iid
  # data, so the MDE on the cluster effect is (t + t) * sqrt(2 * 400 / 30)
  # and its iROAS is that times 30 clusters over a spend of 400.
  cf <- power_closed_form(60, sd = 20, power = 0.8, df = 54)$effect * 30 / 400
  expect_lt(abs(g$mde_interpolated / cf - 1), 0.15)
  expect_true(pw$budget$spend == 100 && is.na(pw$budget$shortest_length) ==
                (g$power_at_target < 0.8))
  out <- utils::capture.output(print(pw))
  expect_true(all(nchar(out) <= 80))
  expect_match(paste(out, collapse = " "), "MDE iROAS", fixed = TRUE)
  expect_s3_class(plot(pw), "ggplot")
})

test_that("power depends on iROAS and spend only through their product", {
  fx <- budget_fixture()
  set.seed(12)
  pw2 <- design_power(sales ~ 0 | cluster + week, fx$panel, design = fx$des,
                      effect = seq(0, 2, by = 0.125) / 2, test_length = 4, n_windows = 4,
                      n_draws = 100, pre = 1:20, spend = 200, iroas = 0.5)
  expect_equal(tidy(pw2)$power, tidy(fx$pw)$power)
  # Detecting half the return takes twice the spend.
  expect_equal(glance(pw2)$spend_needed, 2 * glance(fx$pw)$spend_needed)
  expect_equal(glance(pw2)$mde_interpolated, glance(fx$pw)$mde_interpolated / 2)
  # A cost per unit of 2 is an iROAS of 0.5.
  set.seed(12)
  pw3 <- design_power(sales ~ 0 | cluster + week, fx$panel, design = fx$des,
                      effect = seq(0, 2, by = 0.125) / 2, test_length = 4, n_windows = 4,
                      n_draws = 100, pre = 1:20, spend = 200, cost_per_unit = 2)
  expect_equal(glance(pw3)$power_at_target, glance(pw2)$power_at_target)
  expect_match(paste(utils::capture.output(print(pw3)), collapse = " "),
               "cost per unit 2 (iROAS 0.5)", fixed = TRUE)
})

test_that("at the planned budget the realized power matches the plan, and 0 rejects at alpha", {
  skip_on_cran()
  fx <- budget_fixture()
  g <- glance(fx$pw)
  n_plan <- 400
  n_check <- 800
  tol <- function(p) 3 * sqrt(p * (1 - p) * (1 / n_plan + 1 / n_check))
  # At the planned spend and the target iROAS.
  p_plan <- g$power_at_target
  p_real <- realized_power(fx, spend = 100, iroas = 1)
  expect_lt(abs(p_real - p_plan), tol(p_plan))
  # At the spend the plan says reaches 80% power.
  p_need <- realized_power(fx, spend = g$spend_needed, iroas = 1, seed = c(303L, 404L))
  expect_lt(abs(p_need - 0.8), tol(0.8) + 0.02)
  # At zero effect both reject at the nominal rate.
  p_zero <- realized_power(fx, spend = 100, iroas = 0, seed = c(505L, 606L))
  expect_lt(abs(p_zero - 0.05), 3 * sqrt(0.05 * 0.95 / n_check))
  expect_lt(abs(g$aa_rejection - 0.05), 3 * sqrt(0.05 * 0.95 / n_plan))
})

test_that("a go-dark cell removes spend, lowers sales and is planned like a heavy-up", {
  fx <- budget_fixture()
  set.seed(12)
  dark <- design_power(sales ~ 0 | cluster + week, fx$panel, design = fx$des,
                       effect = seq(0, 2, by = 0.125), test_length = 4, n_windows = 4,
                       n_draws = 100, pre = 1:20, spend = -100, iroas = 1)
  tab <- tidy(dark)
  gd <- glance(dark)
  # The estimates read back as a positive iROAS: removing spend lowered sales.
  expect_true(all(abs(tab$bias) < 3 * tab$rmse / sqrt(400) + 0.01))
  expect_equal(gd$spend, -100)
  expect_equal(gd$spend_needed, 100 * gd$mde_interpolated)
  # On iid data the go-dark MDE is within Monte Carlo error of the heavy-up one.
  expect_lt(abs(gd$mde_interpolated / glance(fx$pw)$mde_interpolated - 1), 0.1)
  expect_match(paste(utils::capture.output(print(dark)), collapse = " "), "go-dark",
               fixed = TRUE)
  # Removing more than the treated clusters sell is refused.
  expect_error(design_power(sales ~ 0 | cluster + week, fx$panel, design = fx$des,
                            test_length = 4, n_windows = 4, n_draws = 10, pre = 1:20,
                            spend = -1e5, iroas = 1),
               class = "mktcausal_error_bad_argument")
})

test_that("an iROAS the grid cannot detect gives the spend as a bound", {
  fx <- budget_fixture()
  set.seed(12)
  pw <- design_power(sales ~ 0 | cluster + week, fx$panel, design = fx$des,
                     effect = c(0, 0.1, 0.2), test_length = 4, n_windows = 4,
                     n_draws = 20, pre = 1:20, spend = 100, iroas = 0.2)
  g <- glance(pw)
  expect_false(g$mde_reached)
  expect_true(is.na(g$spend_needed) && is.na(g$spend_needed_total))
  out <- paste(utils::capture.output(print(pw)), collapse = " ")
  expect_match(out, "spend above 100 per period", fixed = TRUE)
  expect_match(out, "No test length tried reaches", fixed = TRUE)
})

test_that("bad budget input gets classed errors", {
  fx <- budget_fixture()
  go <- function(...) design_power(sales ~ 0 | cluster + week, fx$panel, design = fx$des,
                                   test_length = 4, n_windows = 2, n_draws = 4,
                                   pre = 1:20, ...)
  expect_error(go(spend = 0, iroas = 1), class = "mktcausal_error_bad_argument")
  expect_error(go(spend = c(1, 2), iroas = 1), class = "mktcausal_error_bad_argument")
  expect_error(go(spend = NA, iroas = 1), class = "mktcausal_error_bad_argument")
  expect_error(go(iroas = 2), class = "mktcausal_error_bad_argument")
  expect_error(go(spend = 100), class = "mktcausal_error_bad_argument")
  expect_error(go(spend = 100, iroas = -1), class = "mktcausal_error_bad_argument")
  expect_error(go(spend = 100, iroas = 1, cost_per_unit = 1),
               class = "mktcausal_error_bad_argument")
  expect_error(go(spend = 100, cost_per_unit = 0), class = "mktcausal_error_bad_argument")
})
