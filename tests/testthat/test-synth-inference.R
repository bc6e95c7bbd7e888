f99 <- packspercapita ~ treated | state + year
adh <- list(lnincome = 1980:1988, retprice = 1980:1988, age15to24 = 1980:1988,
            beer = 1984:1988, packspercapita = 1975, packspercapita = 1980,
            packspercapita = 1988)

test_that("placebo in space with the ADH specification gives p = 1/39", {
  fit <- synth(f99, prop99, predictors = adh, inference = "placebo")
  expect_equal(tidy(fit)$p.value, 1 / 39)
  pl <- tidy(fit, "placebo")
  expect_identical(nrow(pl), 39L)
  expect_identical(pl$rank[pl$treated], 1L)
  expect_equal(pl$ratio, pl$post_rmspe / pl$pre_rmspe)
  expect_identical(tidy(fit)$p.value, 1 / 39)
  expect_error(vcov(fit), class = "mktcausal_error_not_available")
  # Dropping placebos whose pre-MSPE exceeds twice California's shrinks the
  # reference set, and the p-value is the rank among those kept.
  fit2 <- synth(f99, prop99, predictors = adh, inference = "placebo", drop_poor_placebos = 2)
  kept <- tidy(fit2, "placebo")$kept
  expect_lt(sum(kept), 39L)
  expect_equal(tidy(fit2)$p.value, 1 / sum(kept))
})

test_that("outcome-only placebo p-value is the rank of the RMSPE ratio", {
  fit <- synth(f99, prop99, inference = "placebo")
  pl <- tidy(fit, "placebo")
  expect_equal(tidy(fit)$p.value, mean(pl$ratio >= pl$ratio[pl$treated]))
  # Each placebo is an exact outcome-only fit from the other donors.
  Y <- unclass(stats::xtabs(packspercapita ~ state + year, prop99))
  dn <- setdiff(rownames(Y), c("California", "Alabama"))
  r <- cpp_simplex_ls(t(Y[dn, 1:19]), Y["Alabama", 1:19], 0, numeric(0), 1e-12, 1e5L)
  gap <- Y["Alabama", ] - drop(crossprod(Y[dn, ], r$w))
  expect_equal(pl$pre_rmspe[pl$unit == "Alabama"], sqrt(mean(gap[1:19]^2)), tolerance = 1e-10)
})

# Each donor in turn as the placebo-treated unit, through the code path of
# the placebo loop (synth_tau() with the full fit's noise level). With one
# treated unit and 38 donors a placebo replication can only land on one of
# these 38 estimates.
placebo_by_donor <- function(method) {
  fit <- synth(f99, prop99, method = method)
  st <- fit$setup
  t0 <- st$groups[[1]]$t0
  est <- vapply(st$donors, function(k) {
    synth_tau(st, list(list(treated = k, t0 = t0)), setdiff(st$donors, k), method,
              list(fit$fits[[1]]$sigma))
  }, numeric(1))
  stats::setNames(est, rownames(st$panel$Y)[st$donors])
}

test_that("sdid and did reproduce Table 1 of Arkhangelsky et al. with placebo standard errors", {
  sx <- readRDS(test_path("fixtures", "synthdid.rds"))
  sdid <- placebo_by_donor("sdid")
  did <- placebo_by_donor("did")
  # Placebo estimates agree with synthdid's replication by replication, to
  # its Frank-Wolfe stopping point (measured max difference 0.052 packs;
  # did has no weights to solve and agrees to rounding).
  expect_lt(max(abs(sdid[sx$by_donor$placebo] - sx$by_donor$sdid)), 0.1)
  expect_equal(unname(did[sx$by_donor$placebo]), sx$by_donor$did, tolerance = 1e-10)

  # The paper's numbers are synthdid's placebo SE with set.seed(12345) and 200
  # replications. Rerun on the donors those replications drew, our exact
  # solver gives the same standard errors: 8.37 -> 8.4 and 17.74 -> 17.7.
  drawn <- sx$placebo_draws$placebo
  se_on_draws <- function(x) sqrt(199 / 200) * stats::sd(x[drawn])
  expect_lt(abs(se_on_draws(sdid) - sx$placebo_se[["sdid"]]), 0.01)
  expect_equal(round(se_on_draws(sdid), 1), 8.4)
  expect_equal(round(se_on_draws(did), 1), 17.7)

  # As replications grow, any seed's placebo SE tends to the population SD
  # of the 38 estimates: 9.37 for sdid (synthdid's own solver gives 9.37
  # too) and 17.29 for did. With 200 replications the SE estimate has a
  # Monte Carlo SD of about 0.64 (sdid) and 1.38 (did) (delta method, from
  # the 38 estimates' second and fourth moments), so Table 1's 8.4 and 17.7
  # lie 1.5 and 0.3 Monte Carlo SDs from the limits. The gap to 8.4 is the
  # paper's draw, not its solver.
  pop_sd <- function(x) sqrt(mean((x - mean(x))^2))
  mc_sd <- function(x, n) {
    m2 <- mean((x - mean(x))^2)
    m4 <- mean((x - mean(x))^4)
    sqrt((m4 - m2^2) / n) / (2 * sqrt(m2))
  }
  expect_lt(abs(pop_sd(sdid) - pop_sd(sx$by_donor$sdid)), 0.01)
  expect_equal(pop_sd(sdid), 9.37, tolerance = 0.01 / 9.37)
  expect_equal(pop_sd(did), 17.29, tolerance = 0.01 / 17.29)
  expect_equal(mc_sd(sdid, 200), 0.64, tolerance = 0.01 / 0.64)
  expect_lt(abs(8.4 - pop_sd(sdid)), 2 * mc_sd(sdid, 200))
  expect_lt(abs(17.7 - pop_sd(did)), 2 * mc_sd(did, 200))

  # The user-facing call: point estimates to one decimal, and 200 placebo
  # replications within two Monte Carlo SDs of the limit they estimate
  # (Table 1's own run is one such draw, checked above); the same seed gives
  # the same answer.
  set.seed(42)
  fs <- synth(f99, prop99, method = "sdid", inference = "placebo", n_draws = 200)
  set.seed(42)
  again <- synth(f99, prop99, method = "sdid", inference = "placebo", n_draws = 200)
  expect_identical(tidy(fs)$std.error, tidy(again)$std.error)
  expect_equal(round(coef(fs)[["att"]], 1), -15.6)
  expect_lt(abs(tidy(fs)$std.error - pop_sd(sdid)), 2 * mc_sd(sdid, 200))
  expect_true(all(fs$draws %in% sdid))
  set.seed(42)
  fd <- synth(f99, prop99, method = "did", inference = "placebo", n_draws = 200)
  expect_equal(round(coef(fd)[["att"]], 1), -27.3)
  expect_lt(abs(tidy(fd)$std.error - pop_sd(did)), 2 * mc_sd(did, 200))
  n <- length(fd$draws)
  expect_equal(tidy(fd)$std.error, sqrt((n - 1) / n) * sd(fd$draws))
  td <- tidy(fs)
  expect_equal(td$conf.high - td$conf.low, 2 * qnorm(0.975) * tidy(fs)$std.error)
  expect_equal(td$p.value, 2 * pnorm(-abs(td$estimate / td$std.error)))
  expect_match(fs$inference, "placebo")
  expect_equal(vcov(fs)[1, 1], td$std.error^2)
})

test_that("jackknife and bootstrap work with several treated units and cover the truth", {
  d <- sim_synth_panel(n_donors = 25, first_treated = c(31, 31, 31, 31), effect = 2,
                        sd = 0.5, seed = 8)
  jk <- synth(y ~ d | unit + time, d, method = "sdid", inference = "jackknife")
  expect_identical(length(jk$draws), 29L)
  expect_gt(tidy(jk)$std.error, 0)
  expect_lt(abs(coef(jk)[["att"]] - 2), 3 * tidy(jk)$std.error)
  set.seed(1)
  bs <- synth(y ~ d | unit + time, d, method = "did", inference = "bootstrap", n_draws = 50)
  expect_gt(tidy(bs)$std.error, 0)
  expect_lt(abs(coef(bs)[["att"]] - 2), 3 * tidy(bs)$std.error)
})

test_that("inference that does not apply raises a classed error", {
  expect_error(synth(f99, prop99, method = "sdid", inference = "jackknife"),
               class = "mktcausal_error_inference_unsupported")
  expect_error(synth(f99, prop99, inference = "bootstrap"),
               class = "mktcausal_error_inference_unsupported")
  d <- sim_synth_panel(first_treated = c(30, 32), seed = 3)
  expect_error(synth(y ~ d | unit + time, d, inference = "placebo"),
               class = "mktcausal_error_inference_unsupported")
})


test_that("placebos in space need enough donors, and a degenerate placebo ranks, not NaN", {
  two <- prop99[prop99$state %in% c("California", "Utah"), ]
  expect_error(synth(f99, two, inference = "placebo"), class = "mktcausal_error_too_few_controls")
  three <- prop99[prop99$state %in% c("California", "Utah", "Nevada"), ]
  expect_error(synth(f99, three, method = "asc", inference = "placebo"),
               class = "mktcausal_error_too_few_controls")
  # The jackknife leaves each donor out: one donor leaves nothing.
  one <- prop99[prop99$state %in% c("California", "Utah", "Nevada"), ]
  one$treated[one$state == "Nevada" & one$year >= 1989] <- 1L
  expect_error(synth(f99, one, method = "sdid", inference = "jackknife"),
               class = "mktcausal_error_too_few_controls")
  # A duplicated donor fits its twin exactly before and after treatment: its
  # RMSPE ratio is 0/0, which ranks as no departure (0), and the p-value is
  # the treated unit's rank computed by hand.
  twin <- prop99[prop99$state == "Utah", ]
  twin$state <- "Utah2"
  dup <- rbind(prop99, twin)
  fit <- synth(f99, dup, inference = "placebo")
  pl <- tidy(fit, "placebo")
  expect_identical(pl$ratio[pl$unit == "Utah2"], 0)
  r <- pl$post_rmspe / pl$pre_rmspe
  r[pl$post_rmspe == 0] <- 0
  expect_equal(tidy(fit)$p.value, mean(r >= r[pl$treated]))
  expect_true(is.finite(tidy(fit)$p.value))
  # A constant outcome is refused before any inference (its statistics
  # would be 0/0), whichever inference is asked for.
  flat <- prop99
  flat$packspercapita <- 5
  for (inf in c("placebo", "conformal")) {
    expect_error(synth(f99, flat, inference = inf), class = "mktcausal_error_no_variation")
  }
  expect_error(synth(f99, flat, method = "sdid", inference = "placebo", n_draws = 20),
               class = "mktcausal_error_no_variation")
})

test_that("the same seed gives the same answer for any chunk size", {
  # synth() fixes its loops' chunk sizes; the test swaps resample_chunks()
  # in the namespace for one that forces `cs`, and puts it back.
  ns <- asNamespace("mktcausal")
  real <- get("resample_chunks", envir = ns)
  draw_with <- function(cs, expr) {
    unlockBinding("resample_chunks", ns)
    assign("resample_chunks", function(n_draws, fun, chunk_size, ...) {
      real(n_draws, fun, chunk_size = cs, ...)
    }, envir = ns)
    on.exit({
      assign("resample_chunks", real, envir = ns)
      lockBinding("resample_chunks", ns)
    })
    set.seed(11)
    force(expr)
  }
  d <- sim_synth_panel(n_donors = 20, first_treated = c(31, 31, 33), effect = 2, seed = 8)
  runs <- lapply(c(1L, 50L, 1000L), function(cs) {
    list(pl = draw_with(cs, synth(f99, prop99, method = "sdid", inference = "placebo",
                                  n_draws = 60)),
         bs = draw_with(cs, synth(y ~ d | unit + time, d, method = "did",
                                  inference = "bootstrap", n_draws = 60)),
         jk = draw_with(cs, synth(y ~ d | unit + time, d, method = "sdid",
                                  inference = "jackknife")))
  })
  for (what in c("pl", "bs", "jk")) {
    expect_identical(runs[[2]][[what]]$draws, runs[[1]][[what]]$draws, label = what)
    expect_identical(runs[[3]][[what]]$draws, runs[[1]][[what]]$draws, label = what)
    expect_identical(tidy(runs[[3]][[what]]), tidy(runs[[1]][[what]]), label = what)
  }
})

test_that("an interrupt stops the synth replicate loops within a second", {
  skip_on_cran()
  skip_if_not_installed("processx")
  f <- "packspercapita ~ treated | state + year"
  took <- seconds_to_stop(sprintf(
    "synth(%s, prop99, method = 'sdid', inference = 'placebo', n_draws = 1e5)", f))
  expect_lt(took, 1)
  # Placebos in space refitting the nested V search, through resample_chunks().
  took <- seconds_to_stop(sprintf(
    "synth(%s, prop99, predictors = adh, inference = 'placebo', max_iter = 1e5)", f),
    setup = "adh <- list(lnincome = 1980:1988, retprice = 1980:1988, beer = 1984:1988, packspercapita = 1975, packspercapita = 1988)")
  expect_lt(took, 1)
  # The conformal test inversion on a larger panel.
  took <- seconds_to_stop(
    "synth(y ~ d | unit + time, d, inference = 'conformal')",
    setup = paste(
      "set.seed(1); J <- 200; Tn <- 60;",
      "Y <- matrix(rnorm(J * Tn), J) + outer(rnorm(J), cumsum(rnorm(Tn)));",
      "d <- data.frame(unit = rep(seq_len(J), Tn), time = rep(seq_len(Tn), each = J),",
      "y = as.vector(Y), d = as.integer(rep(seq_len(J), Tn) == 1 & rep(seq_len(Tn), each = J) > 40))"))
  expect_lt(took, 1)
})
