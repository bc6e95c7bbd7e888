mpdta_es <- function() {
  d <- mpdta
  d$post <- as.integer(d$first.treat > 0 & d$year >= d$first.treat)
  d
}

test_that("noise-free rollout: cs, sa and imputation recover the event-time truth, twfe does not", {
  d <- sim_staggered(n = 300, noise = 0)
  shares <- table(d$cohort[d$time == 1 & d$cohort > 0])
  # true effect at event e averages the cohorts observed at e, weighted by size
  truth_e <- function(e) {
    cells <- unique(d[d$cohort > 0 & d$event == e, c("cohort", "effect")])
    w <- as.numeric(shares[as.character(cells$cohort)])
    sum(cells$effect * w) / sum(w)
  }
  for (m in c("cs", "sa", "imputation")) {
    set.seed(1)
    es <- event_study(y ~ post | unit + time, d, method = m, n_draws = 200)
    td <- tidy(es)
    post <- td[td$event >= 0, ]
    want <- vapply(post$event, truth_e, numeric(1))
    expect_lt(max(abs(post$estimate - want)), 1e-9)
    pre <- td[td$event < 0 & !is.na(td$estimate), ]
    expect_gt(nrow(pre), 2)
    expect_lt(max(abs(pre$estimate)), 1e-9)
  }
  tw <- tidy(event_study(y ~ post | unit + time, d, method = "twfe", n_draws = 200))
  post <- tw[tw$event >= 0, ]
  want <- vapply(post$event, truth_e, numeric(1))
  expect_gt(max(abs(post$estimate - want)), 0.3)
})

test_that("with a universal base period CS equals Sun-Abraham (and fixest::sunab) on mpdta", {
  d <- mpdta_es()
  set.seed(1)
  cs <- tidy(event_study(lemp ~ post | countyreal + year, d, method = "cs", n_draws = 200))
  sa <- tidy(event_study(lemp ~ post | countyreal + year, d, method = "sa", n_draws = 200))
  cs <- cs[cs$event != -1, ]
  expect_identical(cs$event, sa$event)
  expect_lt(max(abs(cs$estimate - sa$estimate)), 1e-10)
  ref <- readRDS(test_path("fixtures", "event_study.rds"))
  expect_identical(as.numeric(sa$event), as.numeric(ref$sunab$event))
  expect_lt(max(abs(sa$estimate - ref$sunab$estimate)), 1e-8)
  expect_lt(max(abs(cs$estimate - ref$sunab$estimate)), 1e-8)
  tw <- tidy(event_study(lemp ~ post | countyreal + year, d, method = "twfe", n_draws = 200))
  expect_lt(max(abs(tw$estimate - ref$twfe$estimate)), 1e-8)
  expect_lt(max(abs(tw$std.error - ref$twfe$std.error)), 1e-8)
})

test_that("pre-trend Wald test and uniform bands", {
  d <- sim_staggered(n = 400, noise = 1, seed = 21)
  # a violation: cohort 7 drifts up before adopting
  d$y <- d$y + ifelse(d$cohort == 7, 0.4 * d$time, 0)
  set.seed(3)
  es <- event_study(y ~ post | unit + time, d, method = "cs", n_draws = 1000)
  td <- tidy(es)
  expect_lt(es$pretest$p.value, 1e-6)
  expect_identical(es$pretest$df, sum(td$event < 0 & !is.na(td$std.error)))
  pre <- td[td$event < 0 & !is.na(td$std.error), ]
  V <- vcov(es)[pre$term, pre$term]
  expect_equal(es$pretest$statistic, drop(t(pre$estimate) %*% solve(V, pre$estimate)),
               tolerance = 1e-10)
  ok <- !is.na(td$std.error)
  expect_true(all(td$conf.high.uniform[ok] - td$conf.low.uniform[ok] >
                    td$conf.high[ok] - td$conf.low[ok]))
  expect_gt(es$crit, stats::qnorm(0.975))
  expect_lt(es$crit, 4)
  clean <- event_study(y ~ post | unit + time, sim_staggered(n = 400, seed = 21), method = "sa",
                       n_draws = 200)
  expect_gt(clean$pretest$p.value, 0.001)
})

test_that("one output shape for the four methods; methods work", {
  d <- mpdta_es()
  cols <- c("term", "estimate", "std.error", "statistic", "p.value", "conf.low", "conf.high",
            "event", "conf.low.uniform", "conf.high.uniform")
  labels <- c(cs = "Callaway-Sant'Anna", sa = "Sun-Abraham", imputation = "imputation",
              twfe = "dynamic two-way")
  for (m in c("cs", "sa", "imputation", "twfe")) {
    es <- event_study(lemp ~ post | countyreal + year, d, method = m, n_draws = 100,
                      min_e = -3, max_e = 2)
    expect_named(tidy(es), cols)
    expect_true(all(tidy(es)$event >= -3 & tidy(es)$event <= 2))
    expect_identical(dim(vcov(es)), rep(nrow(tidy(es)), 2))
    expect_match(glance(es)$method, labels[[m]], fixed = TRUE)
    expect_identical(es$estimator, m)
    expect_identical(glance(es)$pretest_df, es$pretest$df)
    expect_identical(tidy(es, "pretest"), es$pretest)
  }
  expect_s3_class(plot(es), "ggplot")
  expect_output(print(es), "Pre-trend Wald test")
  d2 <- d[d$first.treat > 0, ]
  expect_error(event_study(lemp ~ post | countyreal + year, d2, method = "sa"),
               class = "mktcausal_error_no_never_treated")
  expect_error(event_study(lemp ~ post | countyreal + year, d, method = "sa", control = "not_yet"),
               class = "mktcausal_error_bad_argument")
  expect_error(event_study(lemp ~ post + lpop | countyreal + year, d, method = "twfe"),
               class = "mktcausal_error_covariates_not_supported")
  expect_error(event_study(lemp ~ post | countyreal + year, d, method = "ss"),
               class = "mktcausal_error_bad_choice")
  expect_error(event_study(lemp ~ post | countyreal + year, d, n_sim = 10),
               class = "mktcausal_error_unknown_argument")
  # A panel in place of the formula gives the same fit; it must carry the
  # cluster named.
  p <- mkt_panel(lemp ~ post | countyreal + year, d)
  set.seed(2)
  from_panel <- event_study(p, method = "sa", n_draws = 50)
  set.seed(2)
  from_formula <- event_study(lemp ~ post | countyreal + year, d, method = "sa", n_draws = 50)
  expect_identical(tidy(from_panel), tidy(from_formula))
  expect_error(event_study(p, method = "sa", cluster = "state"),
               class = "mktcausal_error_bad_argument")
  # The CS sub-estimator and its options are named arguments, not `...`.
  set.seed(1)
  a <- event_study(lemp ~ post + lpop | countyreal + year, d, method = "cs", cs_method = "reg",
                   control = "not_yet", n_draws = 50)
  b <- staggered(lemp ~ post + lpop | countyreal + year, d, method = "reg", control = "not_yet",
                 base_period = "universal", n_draws = 0)
  ev <- tidy(aggregate(b, "event"))[-1, ]
  expect_equal(tidy(a)$estimate, ev$estimate, tolerance = 1e-12)
  expect_equal(tidy(a)$std.error[!is.na(ev$std.error)], ev$std.error[!is.na(ev$std.error)],
               tolerance = 1e-12)
})

test_that("imputation standard errors follow BJS Theorem 3 on a small panel", {
  d <- sim_staggered(n = 60, n_periods = 5, noise = 1, seed = 4)
  d <- d[d$cohort %in% c(0, 3), ]
  es <- event_study(y ~ post | unit + time, d, method = "imputation", n_draws = 100)
  td <- tidy(es)
  # Direct construction with explicit dummy matrices.
  untr <- d$post == 0
  Z <- stats::model.matrix(~ factor(unit) + factor(time), d)
  b0 <- stats::lm.fit(Z[untr, ], d$y[untr])$coefficients
  b0[is.na(b0)] <- 0
  tau <- d$y - drop(Z %*% b0)
  for (e in 0:2) {
    w1 <- as.numeric(d$post == 1 & d$event == e)
    w1 <- w1 / sum(w1)
    est <- sum(w1 * tau)
    expect_equal(td$estimate[td$event == e], est, tolerance = 1e-10)
    Z0 <- Z[untr, ]
    v <- w1
    v[untr] <- -drop(Z0 %*% (ginv_sym(crossprod(Z0)) %*% crossprod(Z[!untr, ], w1[!untr])))
    eps <- d$y - drop(Z %*% b0)
    cell <- ave(tau, paste(d$cohort, d$event), FUN = mean)
    eps[!untr] <- tau[!untr] - cell[!untr]
    se <- sqrt(sum(tapply(v * eps, d$unit, sum)^2))
    expect_equal(td$std.error[td$event == e], se, tolerance = 1e-8)
  }
})

test_that("regressions on an unbalanced panel equal lm with unit and period dummies", {
  d <- sim_staggered(n = 80, noise = 1, seed = 31)
  # Missing outcomes (rows kept, so cohorts stay known) make it unbalanced.
  d$y[d$unit %% 7 == 0 & d$time %in% c(2, 5)] <- NA
  es <- event_study(y ~ post | unit + time, d, method = "twfe", n_draws = 100)
  td <- tidy(es)
  ev <- ifelse(is.na(d$event), -99, d$event)
  X <- vapply(td$event, function(e) as.numeric(ev == e), numeric(nrow(d)))
  colnames(X) <- paste0("e", seq_len(ncol(X)))
  fit <- stats::lm(d$y ~ X + factor(d$unit) + factor(d$time))
  expect_equal(td$estimate, unname(stats::coef(fit)[paste0("X", colnames(X))]), tolerance = 1e-9)
})

test_that("unit weights act as frequency weights in every estimator", {
  set.seed(21)
  n <- 60
  d <- data.frame(id = rep(seq_len(n), each = 8), t = rep(1:8, n))
  first <- sample(c(0, 4, 6), n, replace = TRUE)
  d$first <- first[d$id]
  d$post <- as.integer(d$first > 0 & d$t >= d$first)
  d$y <- stats::rnorm(n)[d$id] + 0.2 * d$t + d$post * (1 + 0.3 * (d$t - d$first)) +
    stats::rnorm(nrow(d))
  d$w <- ifelse(d$id %% 3 == 0, 2, 1)
  # Duplicating the weight-2 units reproduces the weighted point estimates.
  dup <- d[d$w == 2, ]
  dup$id <- dup$id + 1000
  d2 <- rbind(d, dup)
  for (m in c("twfe", "sa", "imputation", "cs")) {
    a <- event_study(y ~ post | id + t, d, method = m, weights = "w", n_draws = 20)
    b <- event_study(y ~ post | id + t, d2, method = m, n_draws = 20)
    expect_equal(tidy(a)$estimate, tidy(b)$estimate, tolerance = 1e-8, info = m)
  }
  # Weighted dynamic TWFE equals weighted least squares with dummies.
  a <- event_study(y ~ post | id + t, d, method = "twfe", weights = "w", n_draws = 20)
  d$rel <- ifelse(d$first > 0, d$t - d$first, -1)
  X <- stats::model.matrix(~ factor(rel, levels = c(-1, setdiff(sort(unique(rel)), -1))) +
                             factor(id) + factor(t), d)
  lw <- stats::lm.wfit(X, d$y, d$w)
  est <- lw$coefficients[2:(1 + length(setdiff(unique(d$rel), -1)))]
  expect_equal(unname(tidy(a)$estimate[tidy(a)$event != -1]), unname(est), tolerance = 1e-8)
  expect_error(event_study(y ~ post | id + t, transform(d, w = t), method = "sa", weights = "w"),
               class = "mktcausal_error_varies_within_unit")
})

test_that("balanced panels: the cohort-by-period moments give the design-matrix answers", {
  d <- sim_staggered(n = 150, noise = 1, seed = 41)
  d$pop <- round(d$pop, 1)
  panel <- mkt_panel(y ~ post | unit + time, d, cluster = "market", weights = "pop")
  prep <- mktcausal:::staggered_prepare(panel, "not_yet", 0L)
  no_never <- mkt_panel(y ~ post | unit + time, d[d$cohort > 0, ], weights = "pop")
  prep_nn <- mktcausal:::staggered_prepare(no_never, "not_yet", 0L)
  for (m in c("sa", "twfe")) {
    fast <- mktcausal:::es_regression_balanced(prep, m)
    slow <- mktcausal:::es_regression_design(prep, m)
    expect_identical(fast$event, slow$event)
    expect_equal(fast$estimate, slow$estimate, tolerance = 1e-9)
    expect_equal(fast$vcov, slow$vcov, tolerance = 1e-9)
  }
  # Without never-treated units the TWFE design is rank deficient: the same
  # column is dropped on both paths.
  fast <- mktcausal:::es_regression_balanced(prep_nn, "twfe")
  slow <- mktcausal:::es_regression_design(prep_nn, "twfe")
  expect_identical(is.na(fast$estimate), is.na(slow$estimate))
  expect_true(any(is.na(fast$estimate)))
  expect_equal(fast$estimate, slow$estimate, tolerance = 1e-9)
  expect_equal(fast$vcov, slow$vcov, tolerance = 1e-9)
})

test_that("invalid or empty event windows are classed errors naming min_e and max_e", {
  d <- sim_staggered(n = 150, noise = 1, seed = 31)
  f <- y ~ post | unit + time
  for (m in c("cs", "sa", "imputation", "twfe")) {
    expect_error(event_study(f, d, method = m, min_e = 2, max_e = -2),
                 "min_e", class = "mktcausal_error_bad_argument")
    # On 9570aec each of these stopped with "arguments imply differing
    # number of rows".
    for (w in list(c(100, 200), c(-200, -100), c(0.5, 0.7), c(Inf, Inf), c(-Inf, -Inf))) {
      expect_error(event_study(f, d, method = m, min_e = w[1], max_e = w[2]),
                   "max_e", class = "mktcausal_error_bad_window")
    }
  }
  # Event time -1 is the regressions' reference: not a window of its own.
  expect_error(event_study(f, d, method = "sa", min_e = -1, max_e = -1),
               class = "mktcausal_error_bad_window")
  for (bad in list(NA, "a", c(1, 2))) {
    expect_error(event_study(f, d, min_e = bad), class = "mktcausal_error_bad_argument")
    expect_error(event_study(f, d, max_e = bad), class = "mktcausal_error_bad_argument")
  }
  fit <- staggered(f, d, n_draws = 0)
  expect_error(aggregate(fit, "event", min_e = 100, max_e = 200),
               class = "mktcausal_error_bad_window")
  expect_error(aggregate(fit, "event", balance_e = 100), "balance_e",
               class = "mktcausal_error_bad_argument")
  # On 9570aec a cohort aggregation without post-treatment cells returned 0.
  expect_error(aggregate(fit, "group", max_e = -3), class = "mktcausal_error_no_post_cells")
  # Pre-periods only: no overall effect, the event times as asked.
  pre <- tidy(aggregate(fit, "event", max_e = -2))
  expect_true(is.na(pre$estimate[1]))
  e <- fit$cells$time_idx - fit$cells$group_idx
  expect_identical(pre$event[-1], sort(unique(e[e <= -2])))
})

test_that("outcomes near 1e300 and 1e-300 give the scaled answer, not NaN", {
  d <- sim_staggered(n = 150, noise = 1, seed = 32)
  d$x <- stats::rnorm(150)[d$unit]
  d$mid <- d$unit %% 40
  for (s in c(1e300, 1e-300)) {
    d$ys <- d$y * s
    set.seed(1)
    a <- staggered(y ~ post | unit + time, d, n_draws = 99, cluster = "mid")
    set.seed(1)
    b <- staggered(ys ~ post | unit + time, d, n_draws = 99, cluster = "mid")
    cols <- c("estimate", "std.error", "conf.low", "conf.high", "std.error.boot")
    expect_equal(as.matrix(tidy(b)[cols]) / s, as.matrix(tidy(a)[cols]), tolerance = 1e-8)
    expect_equal(b$crit, a$crit)
    for (type in c("simple", "event", "group", "calendar")) {
      expect_equal(tidy(aggregate(b, type))$std.error / s, tidy(aggregate(a, type))$std.error,
                   tolerance = 1e-8)
    }
    a <- staggered(y ~ post + x | unit + time, d, n_draws = 0, method = "dr")
    b <- staggered(ys ~ post + x | unit + time, d, n_draws = 0, method = "dr")
    expect_equal(tidy(b)$std.error / s, tidy(a)$std.error, tolerance = 1e-8)
    for (m in c("cs", "sa", "imputation", "twfe")) {
      a <- event_study(y ~ post | unit + time, d, method = m, n_draws = 50)
      b <- event_study(ys ~ post | unit + time, d, method = m, n_draws = 50)
      expect_false(anyNA(tidy(b)$std.error[tidy(a)$event != -1]))
      expect_equal(tidy(b)$estimate / s, tidy(a)$estimate, tolerance = 1e-8)
      expect_equal(tidy(b)$std.error / s, tidy(a)$std.error, tolerance = 1e-8)
      expect_equal(glance(b)$pretest_statistic, glance(a)$pretest_statistic, tolerance = 1e-8)
    }
    a <- bacon(y ~ post | unit + time, d)
    b <- bacon(ys ~ post | unit + time, d)
    expect_equal(tidy(b)$estimate / s, tidy(a)$estimate, tolerance = 1e-8)
    expect_equal(tidy(b, "comparisons")$estimate / s, tidy(a, "comparisons")$estimate,
                 tolerance = 1e-8)
    # The TWFE coefficient against lm() on the unscaled outcome.
    twfe <- stats::coef(stats::lm(y ~ post + factor(unit) + factor(time), d))[["post"]]
    expect_equal(glance(b)$twfe / s, twfe, tolerance = 1e-8)
  }
})

test_that("counts beyond 32 bits and draws beyond memory are classed errors", {
  d <- sim_staggered(n = 100, noise = 1, seed = 33)
  f <- y ~ post | unit + time
  for (arg in c("n_draws", "anticipation")) {
    for (v in c(2^31, 1e12)) {
      args <- stats::setNames(list(v), arg)
      expect_error(do.call(staggered, c(list(f, d), args)), arg,
                   class = "mktcausal_error_bad_argument")
      expect_error(do.call(event_study, c(list(f, d), args)), arg,
                   class = "mktcausal_error_bad_argument")
    }
  }
  fit <- staggered(f, d, n_draws = 0)
  expect_error(aggregate(fit, "event", balance_e = 2^31), class = "mktcausal_error_bad_argument")
  withr::local_options(mktcausal.max_memory = 16e9)
  expect_error(event_study(f, d, n_draws = 2^31 - 1), class = "mktcausal_error_too_large")
})

# A rollout on 20 periods: 3 pilot units adopt in period 3, 30 units in
# period 8, 30 in period 12, 3 late units in period 18, 34 never. Treated
# units: 66, a tenth 6.6. Event times -17..-12 rest on the 3 late units and
# 13..17 on the 3 pilot units, so the default window is -11..12.
rollout_panel <- function(seed = 41) {
  withr::with_seed(seed, {
    cohort <- rep(c(3, 8, 12, 18, 0), c(3, 30, 30, 3, 34))
    n <- length(cohort)
    d <- expand.grid(time = 1:20, unit = seq_len(n))[, c("unit", "time")]
    d$post <- as.integer(cohort[d$unit] > 0 & d$time >= cohort[d$unit])
    d$y <- stats::rnorm(n)[d$unit] + 0.1 * d$time + d$post + stats::rnorm(nrow(d), sd = 0.5)
    d
  })
}

test_that("the default event window keeps the event times a tenth of treated units support", {
  d <- rollout_panel()
  f <- y ~ post | unit + time
  for (m in c("cs", "sa", "imputation", "twfe")) {
    es <- event_study(f, d, method = m, n_draws = 50)
    ev <- tidy(es)$event
    expect_equal(range(ev), c(-11, 12))
    all <- event_study(f, d, method = m, n_draws = 50, min_e = -Inf, max_e = Inf)
    # (The imputation leads are relative to the first period: its earliest is -16.)
    expect_equal(range(tidy(all)$event), c(if (m == "imputation") -16 else -17, 17))
    expect_equal(es$window$dropped, c(if (m == "imputation") -16:-12 else -17:-12, 13:17))
    expect_length(all$window$dropped, 0L)
    # The estimates kept are those of the full window.
    both <- match(ev, tidy(all)$event)
    expect_equal(tidy(es)$estimate, tidy(all)$estimate[both], tolerance = 1e-10)
  }
  # One end given: the other stays the default one.
  es <- event_study(f, d, method = "sa", n_draws = 50, max_e = 3)
  expect_equal(range(tidy(es)$event), c(-11, 3))
  expect_equal(es$window$dropped, -17:-12)
  # A default end that would empty the window gives way.
  es <- event_study(f, d, method = "sa", n_draws = 50, min_e = 14)
  expect_equal(range(tidy(es)$event), c(14, 17))
  # print() names the event times left out and how to get them back.
  withr::local_options(width = 80)
  out <- capture.output(print(event_study(f, d, method = "sa", n_draws = 50)))
  expect_lte(max(nchar(out)), 80L)
  note <- paste(out[grep("^Event times", out):length(out)], collapse = " ")
  expect_match(note, "Event times -17 to -12, 13 to 17 left out", fixed = TRUE)
  expect_match(note, "min_e = -Inf, max_e = Inf keeps them", fixed = TRUE)
  # mpdta is short: the rule keeps all of its event times.
  es <- event_study(lemp ~ post | countyreal + year, mpdta_es(), method = "sa", n_draws = 50)
  expect_equal(range(tidy(es)$event), c(-4, 3))
  expect_length(es$window$dropped, 0L)
})

# --- the pre-trend test of "sa" and "twfe": a wild cluster bootstrap ---------

# A balanced staggered panel: 30% never treated, the others adopting between
# periods `first` and Tn - 1; unit and time effects, no effect, no pre-trend.
pretest_panel <- function(G, Tn, first) {
  d <- expand.grid(unit = seq_len(G), time = seq_len(Tn))
  coh <- ifelse(stats::runif(G) < 0.3, 0L, sample(seq(first, Tn - 1L), G, TRUE))
  d$cohort <- coh[d$unit]
  d$d <- as.integer(coh[d$unit] > 0 & d$time >= coh[d$unit])
  d$y <- stats::rnorm(G)[d$unit] + stats::rnorm(Tn)[d$time] + stats::rnorm(nrow(d))
  d
}

test_that("each bootstrap draw of the twfe pre-trend test equals a computation by hand", {
  set.seed(8)
  G <- 16
  Tn <- 7
  d <- pretest_panel(G, Tn, first = 4)
  set.seed(4)
  es <- event_study(y ~ d | unit + time, d, method = "twfe", n_draws = 19,
                    min_e = -Inf, max_e = Inf)
  expect_identical(es$pretest$method, "wild cluster bootstrap, Rademacher weights")
  # By hand: event-time dummies (event -1 left out), two-way demeaning of the
  # balanced panel, the restricted fit without the leads, the draw
  # y* = fitted + w_unit * residual, the CR1 Wald statistic of the leads.
  ev <- ifelse(d$cohort > 0, d$time - d$cohort, NA)
  events <- setdiff(sort(unique(ev[!is.na(ev)])), -1)
  dm <- function(v) {
    m <- matrix(v, G, Tn)
    as.vector(m - rowMeans(m) - rep(colMeans(m), each = G) + mean(m))
  }
  X <- vapply(events, function(e) dm(as.numeric(!is.na(ev) & ev == e)), numeric(nrow(d)))
  lead <- which(events < 0)
  yt <- dm(d$y)
  er <- lm.fit(X[, -lead], yt)$residuals
  Bm <- solve(crossprod(X))
  wald <- function(ys) {
    b <- drop(Bm %*% crossprod(X, ys))
    S <- rowsum(X * drop(ys - X %*% b), d$unit)
    V <- Bm %*% crossprod(S) %*% Bm * G / (G - 1)
    drop(crossprod(b[lead], solve(V[lead, lead], b[lead])))
  }
  expect_equal(es$pretest$statistic, wald(yt), tolerance = 1e-8)
  # The draws' weights: the sup-t band's loop runs first, then this one.
  set.seed(4)
  resample_chunks(19, function(i) 0)
  w <- resample_chunks(19, function(i) 2 * stats::rbinom(G, 1, 0.5) - 1)
  hand <- vapply(w, function(wi) wald(yt - er + wi[d$unit] * er), numeric(1))
  # The package keeps draws in F form with fixest's small-sample factor: a
  # constant multiple of the statistic here, so the same ranking.
  ratio <- hand / es$pretest_draws
  expect_equal(ratio, rep(ratio[1], 19), tolerance = 1e-8)
  expect_equal(es$pretest$p.value, (1 + sum(hand >= wald(yt) * (1 - 1e-12))) / 20)
  expect_identical(glance(es)$pretest_n_draws, 19L)
})

test_that("the sa and twfe pre-trend bootstraps are the same for chunks of 10 and 100", {
  set.seed(12)
  d <- pretest_panel(30, 10, first = 5)
  pn <- mkt_panel(y ~ d | unit + time, d)
  prep <- mktcausal:::staggered_prepare(pn, "not_yet", 0L)
  for (m in c("sa", "twfe")) {
    setup <- mktcausal:::es_pretrend_setup(prep, m, c(-4, -3, -2))
    set.seed(1)
    a <- mktcausal:::pretrend_test(setup, 120, Inf, chunk_size = 10L)
    set.seed(1)
    b <- mktcausal:::pretrend_test(setup, 120, Inf, chunk_size = 100L)
    expect_identical(attr(a, "draws"), attr(b, "draws"))
    expect_identical(a$p.value, b$p.value)
    expect_length(unique(attr(a, "draws")), 120L)
  }
})

test_that("the bootstrap pre-trend test of twfe, sa and imputation holds its size where chi2 does not", {
  skip_on_cran()
  set.seed(2026)
  p <- vapply(seq_len(120), function(r) {
    d <- pretest_panel(40, 16, first = 8)
    vapply(c("twfe", "sa", "imputation"), function(m) {
      es <- event_study(y ~ d | unit + time, d, method = m, n_draws = 99)
      c(es$pretest$p.value,
        stats::pchisq(es$pretest$statistic, es$pretest$df, lower.tail = FALSE))
    }, numeric(2))
  }, matrix(0, 2, 3))
  boot <- rowMeans(p[1, , ] < 0.05)
  chi2 <- rowMeans(p[2, , ] < 0.05)
  expect_true(all(chi2 > 0.5))
  # twfe and imputation: within about two Monte Carlo standard errors (0.02)
  # of 5%.
  expect_lt(abs(boot[["twfe"]] - 0.05), 0.04)
  expect_lt(abs(boot[["imputation"]] - 0.05), 0.04)
  # sa, whose lead cells rest on cohorts of three or four units here, still
  # rejects more than 5%, though far less than chi2.
  expect_lt(boot[["sa"]], 0.2)
})
