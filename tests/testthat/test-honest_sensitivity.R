fx <- readRDS(test_path("fixtures", "honest.rds"))

ours_rm <- function(data, row) {
  l <- if (row$target == "first") c(1, 0, 0, 0) else rep(0.25, 4)
  set.seed(0)
  hs <- honest_sensitivity(data$betahat, sigma = data$sigma, n_pre = data$n_pre,
                           M = row$Mbar, target = l,
                           inference = if (row$method == "C-LF") "hybrid" else "conditional",
                           grid_lb = row$grid_lb, grid_ub = row$grid_ub, refine = FALSE,
                           breakdown = FALSE)
  tidy(hs)[2, ]
}

test_that("relative-magnitude sets equal HonestDiD's on its example and on mpdta", {
  for (case in list(list(fx$bc, fx$bc_rm), list(fx$mpdta, fx$mpdta_rm))) {
    ref <- case[[2]]
    for (i in seq_len(nrow(ref))) {
      got <- suppressWarnings(ours_rm(case[[1]], ref[i, ]))
      # Same grid, same draws: the sets coincide, far inside the 1e-3 asked.
      expect_lt(abs(got$conf.low - ref$lb[i]) + abs(got$conf.high - ref$ub[i]), 1e-10)
    }
  }
})

test_that("refined ends lie within one grid step of the grid ends", {
  row <- fx$mpdta_rm[fx$mpdta_rm$Mbar == 1 & fx$mpdta_rm$method == "C-LF" &
                       fx$mpdta_rm$target == "first", ]
  step <- (row$grid_ub - row$grid_lb) / 999
  set.seed(0)
  hs <- honest_sensitivity(fx$mpdta$betahat, sigma = fx$mpdta$sigma, n_pre = 3, M = 1,
                           grid_lb = row$grid_lb, grid_ub = row$grid_ub, breakdown = FALSE)
  got <- tidy(hs)[2, ]
  expect_lte(got$conf.low, row$lb)
  expect_gt(got$conf.low, row$lb - step)
  expect_gte(got$conf.high, row$ub)
  expect_lt(got$conf.high, row$ub + step)
})

test_that("the smoothness FLCI equals a brute-force search over estimators", {
  for (i in seq_len(nrow(fx$flci))) {
    ref <- fx$flci[i, ]
    data <- fx[[ref$data]]
    l <- if (ref$target == "first") c(1, 0, 0, 0) else rep(0.25, 4)
    hs <- honest_sensitivity(data$betahat, sigma = data$sigma, n_pre = data$n_pre,
                             type = "smoothness", M = ref$M, target = l, breakdown = FALSE)
    got <- tidy(hs)[2, ]
    # Nelder-Mead on an LP bias reaches the same optimum to about 1e-8.
    expect_lt(abs((got$conf.high - got$conf.low) / 2 - ref$half), 1e-6)
    expect_lt(abs(got$conf.low - ref$lb), 1e-4)
    expect_lt(abs(got$conf.high - ref$ub), 1e-4)
  }
})

test_that("the FLCI's worst-case bias is attained and never exceeded over Delta^SD(M)", {
  b <- fx$mpdta
  M <- 0.02
  f <- sd_flci(b$betahat, b$sigma, 3, c(0.5, 0.5, 0, 0), M, 0.05)
  v <- f$weights
  times <- c(-3:-1, 0, 1:4)
  # Violations at times -3..4 (delta_0 = 0) with an arbitrary slope and
  # second differences s_u in [-M, M] at u = -2..3; the first draws sit on
  # the corners of the box, where the worst case lives.
  set.seed(3)
  worst <- -Inf
  for (r in 1:3000) {
    s2 <- if (r <= 64) M * (2 * as.integer(intToBits(r - 1)[1:6]) - 1) else stats::runif(6, -M, M)
    names(s2) <- -2:3
    d <- setNames(numeric(8), -3:4)
    slope <- stats::rnorm(1)
    d["-1"] <- -slope
    for (t in 0:3) d[as.character(t + 1)] <- 2 * d[as.character(t)] - d[as.character(t - 1)] + s2[as.character(t)]
    for (t in -1:-2) d[as.character(t - 1)] <- 2 * d[as.character(t)] - d[as.character(t + 1)] + s2[as.character(t)]
    worst <- max(worst, sum(v * d[names(d) != "0"]))
  }
  expect_lte(worst, f$bias + 1e-12)
  expect_equal(worst, f$bias, tolerance = 1e-10)
  # Linear violations carry no bias.
  expect_equal(sum(v * times[-4]), 0, tolerance = 1e-12)
})

test_that("robust sets cover the truth under violations inside the restriction", {
  skip_on_cran()
  n_pre <- 3
  n_post <- 2
  Sigma <- 0.01 * (diag(5) + 0.3)
  R <- chol(Sigma)
  tau <- c(0.1, 0.2)
  # Smoothness: curvature exactly M everywhere, the worst case for the bias.
  M <- 0.05
  delta_sd <- c(-3:-1, 1:2) * 0.02 + M * c(-3:-1, 1:2)^2 / 2
  set.seed(11)
  hit <- replicate(400, {
    b <- c(rep(0, n_pre), tau) + delta_sd + drop(stats::rnorm(5) %*% R)
    hs <- honest_sensitivity(b, sigma = Sigma, n_pre = n_pre, type = "smoothness", M = M,
                             breakdown = FALSE)
    s <- tidy(hs)[2, ]
    s$conf.low <= tau[1] && tau[1] <= s$conf.high
  })
  expect_gt(mean(hit), 0.95 - 2 * sqrt(0.05 * 0.95 / 400))
  # Relative magnitudes: post-period drift equal to the largest pre-period step.
  delta_rm <- c(-0.03, -0.01, 0, 0.02, 0.04) # pre -3..-1, post 1..2
  hit_rm <- replicate(60, {
    b <- c(rep(0, n_pre), tau) + delta_rm + drop(stats::rnorm(5) %*% R)
    hs <- honest_sensitivity(b, sigma = Sigma, n_pre = n_pre, M = 1, n_draws = 200,
                             grid_points = 200, breakdown = FALSE, refine = FALSE)
    s <- tidy(hs)[2, ]
    s$conf.low <= tau[1] && tau[1] <= s$conf.high
  })
  expect_gte(mean(hit_rm), 0.9)
})

test_that("an event-study fit gives the same sets as its coefficients", {
  mp <- mpdta
  mp$post <- as.integer(mp$first.treat > 0 & mp$year >= mp$first.treat)
  es <- event_study(lemp ~ post | countyreal + year, mp, method = "cs", n_draws = 50)
  set.seed(2)
  a <- honest_sensitivity(es, M = c(0, 1), target = 2, breakdown = FALSE)
  set.seed(2)
  b <- honest_sensitivity(fx$mpdta$betahat, sigma = fx$mpdta$sigma, n_pre = 3,
                          M = c(0, 1), target = c(0, 0, 1, 0), breakdown = FALSE)
  expect_equal(tidy(a)$conf.low, tidy(b)$conf.low, tolerance = 1e-8)
  expect_equal(tidy(a)$conf.high, tidy(b)$conf.high, tolerance = 1e-8)
  expect_equal(a$estimate, tidy(es)$estimate[tidy(es)$event == 2])
  expect_error(honest_sensitivity(es, target = 7), class = "mktcausal_error_honest_target")
  # Regressions leave event time -1 out of their table; it is still the reference.
  sa <- event_study(lemp ~ post | countyreal + year, mp, method = "sa", n_draws = 50)
  keep <- tidy(sa)$event != -1
  h_fit <- honest_sensitivity(sa, "smoothness", M = 0.01, breakdown = FALSE)
  h_num <- honest_sensitivity(tidy(sa)$estimate[keep], sigma = vcov(sa)[keep, keep],
                              n_pre = sum(tidy(sa)$event < -1), type = "smoothness",
                              M = 0.01, breakdown = FALSE)
  expect_equal(tidy(h_fit)$conf.low, tidy(h_num)$conf.low, tolerance = 1e-12)
  expect_equal(h_fit$n_pre, sum(tidy(sa)$event < -1))
  expect_identical(nobs(h_fit), nobs(sa))
  expect_error(honest_sensitivity(sa, "smoothness", n_sim = 10),
               class = "mktcausal_error_unknown_argument")
  expect_error(honest_sensitivity(sa, method = "hybrid"),
               class = "mktcausal_error_unknown_argument")
  expect_error(honest_sensitivity(staggered(lemp ~ post | countyreal + year, mp, n_draws = 0)),
               class = "mktcausal_error_honest_input")
})

test_that("the breakdown value separates sets that exclude zero from sets that do not", {
  b <- fx$bc
  set.seed(0)
  hs <- honest_sensitivity(b$betahat, sigma = b$sigma, n_pre = 4, M = c(0.5, 1))
  bd <- hs$breakdown
  expect_true(is.finite(bd) && bd > 1 && bd < 2.5)
  at <- function(m) {
    set.seed(0)
    tidy(honest_sensitivity(b$betahat, sigma = b$sigma, n_pre = 4, M = m,
                            breakdown = FALSE))[2, ]
  }
  expect_gt(at(bd * 0.99)$conf.low, 0)
  expect_lte(at(bd * 1.01)$conf.low, 0)
  sm <- honest_sensitivity(b$betahat, sigma = b$sigma, n_pre = 4, type = "smoothness",
                           M = c(0, 0.05))
  f <- function(m) tidy(honest_sensitivity(b$betahat, sigma = b$sigma, n_pre = 4,
                                           type = "smoothness", M = m, breakdown = FALSE))[2, ]
  expect_gt(f(sm$breakdown * 0.999)$conf.low, 0)
  expect_lte(f(sm$breakdown * 1.01)$conf.low, 0)
})

test_that("results are reproducible under set.seed and methods return tidy data", {
  b <- fx$mpdta
  set.seed(5)
  h1 <- honest_sensitivity(b$betahat, sigma = b$sigma, n_pre = 3, M = c(0.5, 1), n_draws = 300)
  set.seed(5)
  h2 <- honest_sensitivity(b$betahat, sigma = b$sigma, n_pre = 3, M = c(0.5, 1), n_draws = 300)
  expect_identical(tidy(h1), tidy(h2))
  td <- tidy(h1)
  expect_named(td, c("term", "estimate", "std.error", "statistic", "p.value", "conf.low",
                     "conf.high", "M", "method", "open", "target"))
  expect_identical(td$term, c("original", "Mbar = 0.5", "Mbar = 1"))
  expect_equal(td$method, c("original", "C-LF", "C-LF"))
  expect_equal(td$M, c(NA, 0.5, 1))
  expect_error(vcov(h1), class = "mktcausal_error_not_available")
  expect_equal(unname(confint(h1)[, 1]), td$conf.low)
  expect_equal(td$conf.low[1], b$betahat[4] - stats::qnorm(0.975) * sqrt(b$sigma[4, 4]))
  # Larger Mbar allows more: the sets grow.
  expect_lte(td$conf.low[3], td$conf.low[2])
  expect_gte(td$conf.high[3], td$conf.high[2])
  g <- glance(h1)
  expect_equal(g$estimate, b$betahat[4])
  expect_true(g$breakdown >= 0 || is.na(g$breakdown))
  expect_output(print(h1), "relative magnitudes")
  expect_s3_class(plot(h1), "ggplot")
})

test_that("bad input gets classed errors", {
  b <- fx$mpdta
  expect_error(honest_sensitivity(b$betahat, sigma = b$sigma[1:3, 1:3], n_pre = 3),
               class = "mktcausal_error_honest_input")
  expect_error(honest_sensitivity(b$betahat, sigma = b$sigma, n_pre = 7),
               class = "mktcausal_error_honest_input")
  expect_error(honest_sensitivity(b$betahat, sigma = b$sigma, n_pre = 3, M = -1),
               class = "mktcausal_error_honest_input")
  expect_error(honest_sensitivity(b$betahat, sigma = b$sigma, n_pre = 3, target = c(1, 2)),
               class = "mktcausal_error_honest_target")
  expect_error(honest_sensitivity(b$betahat, sigma = b$sigma, n_pre = 3, type = "smooth"),
               class = "mktcausal_error_bad_choice")
  expect_error(honest_sensitivity(b$betahat, sigma = b$sigma, n_pre = 3, inference = "lf"),
               class = "mktcausal_error_bad_choice")
  bad <- b$sigma
  bad[1, 1] <- -1
  expect_error(honest_sensitivity(b$betahat, sigma = bad, n_pre = 3),
               class = "mktcausal_error_honest_input")
})

test_that("objects and arguments it does not support are classed errors, never internal ones", {
  b <- fx$mpdta
  # On 9570aec: "argument "n_pre" is missing, with no default".
  expect_error(honest_sensitivity(b$betahat), "sigma",
               class = "mktcausal_error_honest_input")
  expect_error(honest_sensitivity(b$betahat, sigma = b$sigma), "n_pre",
               class = "mktcausal_error_honest_input")
  expect_error(honest_sensitivity(matrix(1:4, 2), sigma = diag(4), n_pre = 2),
               class = "mktcausal_error_honest_input")
  for (obj in list("a", list(1), NULL, TRUE, stats::lm(dist ~ speed, cars),
                   data.frame(x = 1))) {
    expect_error(honest_sensitivity(obj), class = "mktcausal_error_honest_input")
  }
  d <- mpdta
  d$post <- as.integer(d$first.treat > 0 & d$year >= d$first.treat)
  expect_error(honest_sensitivity(staggered(lemp ~ post | countyreal + year, d, n_draws = 0)),
               class = "mktcausal_error_honest_input")
  es <- event_study(lemp ~ post | countyreal + year, d, method = "sa")
  expect_error(honest_sensitivity(es, type = "smoothness", M = c(0, Inf)),
               class = "mktcausal_error_honest_input")
  expect_error(honest_sensitivity(es, grid_lb = 1, grid_ub = -1), "grid_lb",
               class = "mktcausal_error_bad_argument")
  expect_error(honest_sensitivity(es, grid_lb = "a"), class = "mktcausal_error_bad_argument")
  expect_error(honest_sensitivity(es, refine = NA), class = "mktcausal_error_bad_argument")
  expect_error(honest_sensitivity(es, breakdown = "yes"), class = "mktcausal_error_bad_argument")
  inf_sigma <- b$sigma
  inf_sigma[1, 1] <- Inf
  expect_error(honest_sensitivity(b$betahat, sigma = inf_sigma, n_pre = 3),
               class = "mktcausal_error_honest_input")
})

test_that("counts beyond 32 bits or beyond memory are classed errors", {
  b <- fx$mpdta
  for (arg in c("n_draws", "grid_points", "n_pre")) {
    args <- list(b$betahat, sigma = b$sigma, n_pre = 3)
    args[[arg]] <- 2^31
    expect_error(do.call(honest_sensitivity, args), arg, class = "mktcausal_error_bad_argument")
  }
  # On 9570aec grid_points = 2^31 - 1 had the session killed for memory.
  withr::local_options(mktcausal.max_memory = 16e9)
  expect_error(honest_sensitivity(b$betahat, sigma = b$sigma, n_pre = 3, n_draws = 2^31 - 1),
               class = "mktcausal_error_too_large")
  expect_error(honest_sensitivity(b$betahat, sigma = b$sigma, n_pre = 3,
                                  grid_points = 2^31 - 1),
               class = "mktcausal_error_too_large")
})

test_that("an event study of an outcome near 1e300 gives the scaled sets", {
  d <- mpdta
  d$post <- as.integer(d$first.treat > 0 & d$year >= d$first.treat)
  d$big <- d$lemp * 1e300
  a <- event_study(lemp ~ post | countyreal + year, d, method = "sa")
  b <- event_study(big ~ post | countyreal + year, d, method = "sa")
  for (type in c("relative_magnitudes", "smoothness")) {
    M <- if (type == "smoothness") c(0, 0.01) else c(0, 0.5)
    set.seed(2)
    ha <- honest_sensitivity(a, type, M = M, breakdown = FALSE)
    set.seed(2)
    hb <- honest_sensitivity(b, type, M = M * if (type == "smoothness") 1e300 else 1,
                             breakdown = FALSE)
    cols <- c("estimate", "conf.low", "conf.high")
    expect_equal(as.matrix(tidy(hb)[cols]) / 1e300, as.matrix(tidy(ha)[cols]), tolerance = 1e-8)
  }
})

# A staggered rollout whose treated units drift from the controls by `slope`
# per period of event time (a linear violation of parallel trends, shared
# by the cohorts), with effects 0.5 + 0.1 e at event time e >= 0. Cohorts
# adopt in periods 5, 7 and 9 of 10; 40% of units are never treated.
sim_drift <- function(n = 200, n_periods = 10, slope = 0.05, noise = 1, seed = 1) {
  withr::with_seed(seed, {
    cohort <- ifelse(stats::runif(n) < 0.4, 0L, sample(c(5L, 7L, 9L), n, replace = TRUE))
    d <- expand.grid(time = seq_len(n_periods), unit = seq_len(n))[, c("unit", "time")]
    g <- cohort[d$unit]
    e <- ifelse(g > 0, d$time - g, NA)
    d$post <- as.integer(g > 0 & d$time >= g)
    d$y <- stats::rnorm(n)[d$unit] + cumsum(stats::rnorm(n_periods, 0, 0.3))[d$time] +
      ifelse(g > 0, slope * e, 0) + ifelse(d$post == 1, 0.5 + 0.1 * e, 0) +
      noise * stats::rnorm(nrow(d))
    d
  })
}

test_that("imputation effects restated against event time -1 are exact under a shared drift", {
  d <- sim_drift(noise = 1e-7)
  imp <- event_study(y ~ post | unit + time, d, method = "imputation", n_draws = 50)
  # The estimator's weights on pre-adoption event times sum to one.
  expect_equal(unname(rowSums(imp$imputation$pre_weights)), rep(1, 6), tolerance = 1e-8)
  ref <- honest_reference(imp)
  expect_equal(ref$event, c(-8:-2, 0:5))
  # delta(k) - delta(-1) before adoption, tau_e + delta(e) - delta(-1) after.
  truth <- ifelse(ref$event < 0, 0.05 * (ref$event + 1),
                  0.5 + 0.1 * ref$event + 0.05 * (ref$event + 1))
  expect_lt(max(abs(ref$estimate * imp$scale - truth)), 1e-5)
  # The imputation effects themselves carry the drift against the mean of
  # the pre-periods (0.126 at event time 0).
  td <- tidy(imp)
  expect_gt(td$estimate[td$event == 0] - 0.5, 0.1)
  # Leads and effects share the untreated cells: their covariance is
  # estimated, and the joint matrix is a covariance.
  V <- imp$imputation$vcov
  expect_gt(max(abs(V[1:7, 8:13])), 0)
  expect_gte(min(eigen(V, symmetric = TRUE, only.values = TRUE)$values), -1e-12 * max(V))
})

test_that("under a linear pre-trend the imputation smoothness set at M = 0 covers the effect", {
  d <- sim_drift(n = 2000, seed = 3)
  imp <- event_study(y ~ post | unit + time, d, method = "imputation", n_draws = 50)
  hs <- honest_sensitivity(imp, "smoothness", M = 0, target = 1, breakdown = FALSE)
  td <- tidy(hs)
  # The truth at event time 1 is 0.6; the imputation's own interval misses it.
  expect_true(td$conf.low[2] < 0.6 && 0.6 < td$conf.high[2])
  es <- tidy(imp)[tidy(imp)$event == 1, ]
  expect_gt(es$conf.low, 0.6)
  skip_on_cran()
  # Coverage over 150 panels of 200 units (target: the average effect, 0.75).
  hit <- vapply(seq_len(150), function(r) {
    imp <- event_study(y ~ post | unit + time, sim_drift(seed = 1000 + r), method = "imputation",
                       n_draws = 10)
    s <- tidy(honest_sensitivity(imp, "smoothness", M = 0, target = "average",
                                 breakdown = FALSE))[2, ]
    s$conf.low <= 0.75 && 0.75 <= s$conf.high
  }, logical(1))
  expect_gt(mean(hit), 0.95 - 3 * sqrt(0.05 * 0.95 / 150))
})

test_that("imputation and cs give close sets where they agree (mpdta)", {
  mp <- mpdta
  mp$post <- as.integer(mp$first.treat > 0 & mp$year >= mp$first.treat)
  imp <- event_study(lemp ~ post | countyreal + year, mp, method = "imputation", n_draws = 50)
  cs <- event_study(lemp ~ post | countyreal + year, mp, method = "cs", n_draws = 50)
  # Average effect, smoothness M = 0, 0.01, 0.02: imputation [-0.121, -0.025],
  # [-0.143, 0.069], [-0.185, 0.138]; cs [-0.120, -0.023], [-0.143, 0.070],
  # [-0.186, 0.139]. Relative magnitudes Mbar = 0, 0.5, 1: imputation
  # [-0.115, -0.036], [-0.150, 0.005], [-0.205, 0.062]; cs [-0.117, -0.038],
  # [-0.156, 0.002], [-0.211, 0.057]. Every end within 5% of the set's width.
  for (type in c("smoothness", "relative_magnitudes")) {
    M <- if (type == "smoothness") c(0, 0.01, 0.02) else c(0, 0.5, 1)
    set.seed(1)
    a <- tidy(honest_sensitivity(imp, type, M = M, target = "average", breakdown = FALSE))
    set.seed(1)
    b <- tidy(honest_sensitivity(cs, type, M = M, target = "average", breakdown = FALSE))
    width <- b$conf.high - b$conf.low
    expect_true(all(abs(a$conf.low - b$conf.low) < 0.05 * width))
    expect_true(all(abs(a$conf.high - b$conf.high) < 0.05 * width))
  }
  # A window cut by min_e keeps fewer pre-periods but the same restated effects.
  cut <- event_study(lemp ~ post | countyreal + year, mp, method = "imputation", n_draws = 50,
                     min_e = -2)
  h_cut <- honest_sensitivity(cut, "smoothness", M = 0.01, breakdown = FALSE)
  h_all <- honest_sensitivity(imp, "smoothness", M = 0.01, breakdown = FALSE)
  expect_equal(c(h_cut$n_pre, h_all$n_pre), c(1, 3))
  expect_output(print(h_all), "Imputation effects restated against event time -1")
  expect_equal(h_cut$estimate, h_all$estimate, tolerance = 1e-12)
})

test_that("a varying-base cs event study is cumulated to event time -1", {
  mp <- mpdta
  mp$post <- as.integer(mp$first.treat > 0 & mp$year >= mp$first.treat)
  uni <- event_study(lemp ~ post | countyreal + year, mp, method = "cs", n_draws = 50)
  var <- event_study(lemp ~ post | countyreal + year, mp, method = "cs", n_draws = 50,
                     base_period = "varying")
  ru <- honest_reference(uni)
  rv <- honest_reference(var)
  expect_equal(rv$event, ru$event)
  # Effects are the same; pre-periods cumulate the period-to-period
  # coefficients, which here average the same cohorts as the long
  # differences at event times -3 and -2.
  tv <- tidy(var)
  expect_equal(rv$estimate[4:7], ru$estimate[4:7], tolerance = 1e-12)
  expect_equal(rv$estimate[2:3], ru$estimate[2:3], tolerance = 1e-10)
  expect_equal(rv$estimate[1] * var$scale, -sum(tv$estimate[tv$event %in% -3:-1]),
               tolerance = 1e-12)
  hs <- honest_sensitivity(var, "smoothness", M = 0.01, breakdown = FALSE)
  expect_equal(hs$n_pre, 3)
  expect_true(all(is.finite(unlist(tidy(hs)[, c("conf.low", "conf.high")]))))
})

test_that("the FLCI's lasso steps meet their optimality conditions with 8 pre-periods", {
  # The FLCI's lasso for 8 pre-periods, from the second-difference
  # loadings P and an autocorrelated covariance.
  n_pre <- 8
  D <- outer(2:n_pre, 1:(n_pre - 1), function(r, i) ifelse(i < r, r - i, 0))
  P <- rbind(solve(D), (-n_pre:-2) %*% solve(D))
  S <- 0.5^abs(outer(1:n_pre, 1:n_pre, "-")) + 0.5 * diag(n_pre)
  Q <- crossprod(P, S %*% P)
  cvec <- drop(crossprod(P, S %*% c(rep(0, n_pre - 1), 12.5)))
  for (lambda in c(0, 1e-4, 0.1, 1, 10) * max(abs(cvec))) {
    a <- lasso_quadratic(Q, cvec, lambda)
    grad <- drop(Q %*% a) + cvec
    on <- a != 0
    scale <- max(abs(cvec))
    expect_lt(max(abs(grad[on] + lambda / 2 * sign(a[on])), 0), 1e-9 * scale)
    expect_true(all(abs(grad[!on]) <= lambda / 2 + 1e-9 * scale))
  }
})
