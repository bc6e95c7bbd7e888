fx <- readRDS(test_path("fixtures", "continuous.rds"))
pd <- fx$panel

test_that("exposure_did equals fixest for the static and event-study models", {
  m <- exposure_did(y_exp ~ exposure | geo + week, pd, post = 8)
  expect_equal(unname(coef(m)), unname(fx$exposure$coef), tolerance = 1e-8)
  expect_equal(tidy(m)$std.error, unname(fx$exposure$se), tolerance = 1e-8)
  es <- tidy(m, "event_study")
  es <- es[es$time != 7, ]
  expect_equal(es$estimate, unname(fx$exposure_es$coef), tolerance = 1e-8)
  expect_equal(es$std.error, unname(fx$exposure_es$se), tolerance = 1e-8)
  # A post column gives the same fit as the first post period.
  m2 <- exposure_did(y_exp ~ exposure | geo + week, pd, post = "post", event_study = FALSE)
  expect_equal(coef(m2), coef(m))
})

test_that("exposure_did recovers a known effect and passes the pre-trend test", {
  set.seed(12)
  d <- expand.grid(dma = 1:120, week = 1:10)
  grp <- runif(120, 0, 3)
  d$grp <- grp[d$dma]
  d$sales <- d$dma / 10 + sin(d$week) + 0.7 * d$grp * (d$week >= 6) + rnorm(nrow(d))
  m <- exposure_did(sales ~ grp | dma + week, d, post = 6)
  expect_lt(abs(coef(m)[[1]] - 0.7), 4 * tidy(m)$std.error)
  es <- tidy(m, "event_study")
  expect_equal(nrow(es), 10L)
  expect_equal(es$estimate[es$relative_period == -1], 0)
  post <- es[es$relative_period >= 0, ]
  expect_true(all(abs(post$estimate - 0.7) < 4 * post$std.error))
  expect_gt(glance(m)$pretrend_p.value, 0.001)
  expect_equal(glance(m)$pretrend_df, 4)
  # A differential pre-trend is caught.
  d$sales2 <- d$sales + 0.3 * d$grp * d$week
  m2 <- exposure_did(sales2 ~ grp | dma + week, d, post = 6)
  # No bootstrap draw comes near the data: the smallest p-value, 1 / 1000.
  expect_equal(glance(m2)$pretrend_p.value, 1 / 1000)
  expect_lt(stats::pf(glance(m2)$pretrend_stat, 4, 119, lower.tail = FALSE), 1e-6)
  expect_s3_class(plot(m), "ggplot")
})

test_that("exposure_did rejects exposures that vary and bad post arguments", {
  expect_error(exposure_did(sales ~ price | geo + week, pd, post = 8),
               class = "mktcausal_error_varies_within_unit")
  expect_error(exposure_did(y_exp ~ exposure | geo + week, pd, post = 99),
               class = "mktcausal_error_bad_argument")
  expect_error(exposure_did(y_exp ~ exposure | geo + week, pd),
               class = "mktcausal_error_bad_argument")
  expect_error(exposure_did(y_exp ~ exposure | geo + week, pd, post = 8, base = 40),
               class = "mktcausal_error_bad_argument")
})

test_that("exposure_did takes a data.table", {
  skip_if_not_installed("data.table")
  m <- exposure_did(y_exp ~ exposure | geo + week, pd, post = 8, event_study = FALSE)
  md <- exposure_did(y_exp ~ exposure | geo + week, data.table::as.data.table(pd), post = 8,
                     event_study = FALSE)
  expect_equal(coef(md), coef(m))
})

test_that("an exposure switched on at the shock gives the same fit without post", {
  set.seed(31)
  d <- expand.grid(dma = 1:40, week = 1:10)
  grp <- runif(40, 0, 3)
  d$grp <- grp[d$dma]
  d$sales <- d$dma / 10 + d$week / 4 + 0.5 * d$grp * (d$week >= 6) + rnorm(nrow(d))
  d$grp_on <- d$grp * (d$week >= 6)
  a <- exposure_did(sales ~ grp | dma + week, d, post = 6)
  b <- exposure_did(sales ~ grp_on | dma + week, d)
  expect_equal(a$estimates$estimate, b$estimates$estimate, tolerance = 1e-12)
  expect_equal(a$estimates$std.error, b$estimates$std.error, tolerance = 1e-12)
  expect_equal(b$first_post, 6L)
  expect_equal(tidy(b, "event_study")$estimate, tidy(a, "event_study")$estimate,
               tolerance = 1e-12)
})

test_that("with factors, exposure_did() survives a shock that loads on exposure", {
  set.seed(32)
  n <- 60
  n_t <- 20
  lambda <- rnorm(n)
  grp <- pmax(0.2, 1 + 0.8 * lambda + rnorm(n, 0, 0.5))  # exposure tracks the loading
  f <- cumsum(rnorm(n_t, 0, 0.4)) + seq_len(n_t) / 5     # a trending common factor
  d <- expand.grid(dma = seq_len(n), week = seq_len(n_t))
  d$grp <- grp[d$dma]
  d$sales <- 5 + d$dma / 20 + lambda[d$dma] * f[d$week] + 0.5 * d$grp * (d$week >= 12) +
    rnorm(nrow(d), 0, 0.3)
  plain <- exposure_did(sales ~ grp | dma + week, d, post = 12, event_study = FALSE)
  fac <- exposure_did(sales ~ grp | dma + week, d, post = 12, factors = 1)
  # parallel trends fails: the plain estimate is far from 0.5, the factor one is not
  expect_gt(abs(plain$estimates$estimate - 0.5), 5 * plain$estimates$std.error)
  expect_lt(abs(fac$estimates$estimate - 0.5), 3 * fac$estimates$std.error)
  expect_identical(fac$estimates$term, "grp:post")
  expect_equal(unname(coef(fac)), fac$estimates$estimate)
  expect_equal(fac$ife$r, 1L)
  expect_error(exposure_did(sales ~ grp | dma + week, d, post = 12, factors = -1),
               class = "mktcausal_error_bad_argument")
})

test_that("a panel carrying the post column gives the same fit", {
  p <- mkt_panel(y_exp ~ exposure | geo + week, pd, extra = "post")
  a <- exposure_did(p, post = "post", event_study = FALSE)
  b <- exposure_did(y_exp ~ exposure | geo + week, pd, post = 8, event_study = FALSE)
  expect_equal(coef(a), coef(b))
  expect_equal(vcov(a), vcov(b))
  h <- exposure_did(y_exp ~ exposure | geo + week, pd, post = 8, event_study = FALSE,
                    inference = "heteroskedastic")
  expect_equal(coef(h), coef(b))
  expect_true(is.na(glance(h)$n_clusters))
})

test_that("a constant outcome or exposure, collinear covariates and one cluster give classed errors", {
  d <- hard_panel()
  d$y0 <- 5
  expect_error(exposure_did(y0 ~ expo | unit + time, d, post = 5), "y0",
               class = "mktcausal_error_no_variation")
  expect_error(exposure_did(y0 ~ expo | unit + time, d, post = 5, factors = 1), "y0",
               class = "mktcausal_error_no_variation")
  d$flat <- 1
  expect_error(exposure_did(y ~ flat | unit + time, d, post = 5), "flat",
               class = "mktcausal_error_no_variation")
  expect_error(exposure_did(y ~ flat | unit + time, d, post = 5, factors = 1), "flat",
               class = "mktcausal_error_no_variation")
  d$x2 <- 2 * d$x
  expect_error(exposure_did(y ~ expo + x + x2 | unit + time, d, post = 5), "x2",
               class = "mktcausal_error_collinear")
  expect_error(exposure_did(y ~ expo | unit + time, d, post = 5, cluster = "one_cluster"),
               class = "mktcausal_error_too_few_clusters")
})

test_that("with fewer clusters than pre-periods the pre-trend test uses the directions it can test", {
  d <- hard_panel()
  m <- exposure_did(y ~ expo | unit + time, d, post = 5, cluster = "two_clusters")
  g <- glance(m)
  es <- tidy(m, "event_study")
  pre <- es[es$relative_period < -1, ]
  # Two clusters: the clustered covariance of the three pre-period
  # coefficients has rank one.
  expect_equal(nrow(pre), 3L)
  expect_equal(g$pretrend_df, 1)
  expect_true(is.finite(g$pretrend_stat) && g$pretrend_stat >= 0)
  expect_true(g$pretrend_p.value >= 0 && g$pretrend_p.value <= 1)
})

test_that("outcomes near 1e300 and 1e-300 give the scaled answer", {
  d <- hard_panel()
  fit <- function(y, data) exposure_did(y ~ expo + x | unit + time, data, post = 5,
                                        weights = "w")
  expect_outcome_scaled(fit, d)
  expect_outcome_scaled(fit, d, "event_study")
  expect_outcome_scaled(function(y, data) {
    exposure_did(y ~ expo + x | unit + time, data, post = 5, factors = 1)
  }, d)
})

# --- the pre-trend test: a wild cluster bootstrap under the null ------------

# A balanced panel of G units and Tn periods, random exposure, unit and time
# effects, parallel trends (plus `trend` x exposure x (t - base) before the
# shock at `post`).
pretrend_panel <- function(G, Tn, post, trend = 0) {
  d <- expand.grid(unit = seq_len(G), time = seq_len(Tn))
  ex <- stats::runif(G, 0, 3)
  d$expo <- ex[d$unit]
  d$y <- stats::rnorm(G)[d$unit] + stats::rnorm(Tn)[d$time] + stats::rnorm(nrow(d)) +
    trend * d$expo * pmin(d$time - (post - 1), 0)
  d
}

# The statistic by hand: two-way demeaning of a balanced panel, lm.fit, the
# CR1 sandwich by unit with fixest's factor (unit effects nested in the
# clusters are not counted), the Wald statistic of the leads over k.
pretrend_by_hand <- function(d, post) {
  G <- max(d$unit)
  Tn <- max(d$time)
  dm <- function(v) {
    m <- matrix(v, G, Tn)
    as.vector(m - rowMeans(m) - rep(colMeans(m), each = G) + mean(m))
  }
  periods <- setdiff(seq_len(Tn), post - 1)
  X <- vapply(periods, function(s) dm(d$expo * (d$time == s)), numeric(nrow(d)))
  lead <- which(periods < post - 1)
  yt <- dm(d$y)
  er <- lm.fit(X[, -lead, drop = FALSE], yt)$residuals
  n <- nrow(d)
  adj <- G / (G - 1) * (n - 1) / (n - (ncol(X) + Tn))
  Bm <- solve(crossprod(X))
  wald <- function(ys) {
    b <- drop(Bm %*% crossprod(X, ys))
    S <- rowsum(X * drop(ys - X %*% b), d$unit)
    V <- adj * Bm %*% crossprod(S) %*% Bm
    drop(crossprod(b[lead], solve(V[lead, lead], b[lead]))) / length(lead)
  }
  # Draw with weights w: the restricted fit plus its residuals times w.
  list(observed = wald(yt), draw = function(w) wald(yt - er + w[d$unit] * er))
}

test_that("the pre-trend statistic and each bootstrap draw equal a computation by hand", {
  set.seed(5)
  d <- pretrend_panel(G = 15, Tn = 8, post = 6)
  set.seed(9)
  fit <- exposure_did(y ~ expo | unit + time, d, post = 6, n_draws = 19)
  hand <- pretrend_by_hand(d, post = 6)
  g <- glance(fit)
  expect_equal(g$pretrend_stat, hand$observed, tolerance = 1e-10)
  expect_equal(g$pretrend_df, 4L)
  # One fixed weight vector: draw 1's Rademacher signs, from its own stream.
  set.seed(9)
  w <- resample_chunks(19, function(i) 2 * stats::rbinom(15, 1, 0.5) - 1)
  expect_equal(fit$pretrend_draws[1], hand$draw(w[[1]]), tolerance = 1e-10)
  draws <- vapply(w, hand$draw, numeric(1))
  expect_equal(fit$pretrend_draws, draws, tolerance = 1e-10)
  expect_equal(g$pretrend_p.value, (1 + sum(draws >= hand$observed)) / 20)
  expect_identical(g$pretrend_method, "wild cluster bootstrap, Rademacher weights")
  expect_identical(g$pretrend_n_draws, 19L)
  expect_identical(tidy(fit, "pretrend")$p.value, g$pretrend_p.value)
  # With n_draws = 0, the F(k, G - 1) reference of the same statistic.
  f0 <- exposure_did(y ~ expo | unit + time, d, post = 6, n_draws = 0)
  expect_equal(glance(f0)$pretrend_p.value,
               stats::pf(hand$observed, 4, 14, lower.tail = FALSE), tolerance = 1e-10)
  expect_identical(glance(f0)$pretrend_method, "F")
  # Fewer than 12 clusters: Webb's six-point weights.
  set.seed(6)
  d8 <- pretrend_panel(G = 8, Tn = 6, post = 5)
  set.seed(2)
  fit8 <- exposure_did(y ~ expo | unit + time, d8, post = 5, n_draws = 9)
  set.seed(2)
  pts <- c(-sqrt(1.5), -1, -sqrt(0.5), sqrt(0.5), 1, sqrt(1.5))
  w8 <- resample_chunks(9, function(i) pts[sample.int(6L, 8L, replace = TRUE)])
  hand8 <- pretrend_by_hand(d8, post = 5)
  expect_equal(fit8$pretrend_draws, vapply(w8, hand8$draw, numeric(1)), tolerance = 1e-10)
  expect_identical(glance(fit8)$pretrend_method, "wild cluster bootstrap, Webb weights")
})

test_that("the pre-trend bootstrap is the same for chunks of 10 and of 100", {
  set.seed(7)
  d <- pretrend_panel(G = 20, Tn = 9, post = 6)
  pn <- mkt_panel(y ~ expo | unit + time, d)
  set.seed(11)
  a <- mktcausal:::exposure_did_fit(pn, post = 6, n_draws = 150, chunk_size = 10L)
  set.seed(11)
  b <- mktcausal:::exposure_did_fit(pn, post = 6, n_draws = 150, chunk_size = 100L)
  expect_identical(a$pretrend_draws, b$pretrend_draws)
  expect_identical(glance(a)$pretrend_p.value, glance(b)$pretrend_p.value)
  expect_length(unique(a$pretrend_draws), 150L)
})

test_that("the bootstrap pre-trend test holds its size where the F test does not", {
  skip_on_cran()
  # 50 clusters and 14 leads: the F test rejects a true null about 40% of
  # the time at 5%; the bootstrap about 5% (bench/pretrend_size.R).
  set.seed(2026)
  p <- t(vapply(seq_len(150), function(r) {
    d <- pretrend_panel(G = 50, Tn = 20, post = 16)
    g <- glance(exposure_did(y ~ expo | unit + time, d, post = 16, n_draws = 99))
    c(boot = g$pretrend_p.value,
      F = stats::pf(g$pretrend_stat, g$pretrend_df, 49, lower.tail = FALSE))
  }, numeric(2)))
  rate <- colMeans(p < 0.05)
  expect_gt(rate[["F"]], 0.25)
  # Within about two Monte Carlo standard errors (0.018) of 5%.
  expect_lt(abs(rate[["boot"]] - 0.05), 0.04)
  # And it rejects a linear pre-trend in exposure.
  set.seed(2027)
  power <- mean(vapply(seq_len(20), function(r) {
    d <- pretrend_panel(G = 50, Tn = 20, post = 16, trend = 0.1)
    glance(exposure_did(y ~ expo | unit + time, d, post = 16, n_draws = 99))$pretrend_p.value
  }, numeric(1)) < 0.05)
  expect_gt(power, 0.8)
})
