# Benchmarks of staggered() against did::att_gt(), timed in the same run.
# Run from the package root after installing mktcausal, with the peers in a
# private library:
#   Rscript bench/staggered.R
# Each timing is the best of `reps` elapsed times (default 3; MKT_BENCH_REPS
# overrides), the two packages alternating, so both see the same load. Set
# MKT_BENCH_BIG=1 to also run the 1,000,000 x 12 memory check (peak
# resident memory is read from /proc/self/status).
.libPaths(c("/work/peers", .libPaths()))
suppressPackageStartupMessages({
  library(mktcausal)
  library(did)
})
source(file.path("bench", "time_it.R"))
reps <- as.integer(Sys.getenv("MKT_BENCH_REPS", "3"))

# A rollout of n units over 12 periods: cohorts adopting in periods 4-12 and
# never-treated units (99 ATT(g,t) cells), one time-invariant covariate that
# shifts the trend, dynamic effects.
sim_rollout <- function(n, n_periods = 12, seed = 1) {
  set.seed(seed)
  cohort <- sample(c(0, 4:n_periods), n, replace = TRUE)
  x <- stats::rnorm(n)
  d <- data.frame(id = rep(seq_len(n), each = n_periods),
                  period = rep(seq_len(n_periods), times = n))
  d$first <- cohort[d$id]
  d$x <- x[d$id]
  d$post <- as.integer(d$first > 0 & d$period >= d$first)
  d$y <- stats::rnorm(n)[d$id] + 0.1 * d$period + 0.3 * d$x * d$period / n_periods +
    d$post * (0.5 + 0.1 * (d$period - d$first)) + stats::rnorm(nrow(d))
  d
}

d <- sim_rollout(20000)
mkt_threads(2)

mkt <- function(cov, draws) {
  f <- if (cov) y ~ post + x | id + period else y ~ post | id + period
  staggered(f, d, method = "dr", control = "never", n_draws = draws)
}
peer <- function(cov, draws) {
  att_gt(yname = "y", tname = "period", idname = "id", gname = "first",
         xformla = if (cov) ~x else ~1, data = d, control_group = "nevertreated",
         est_method = "dr", bstrap = draws > 0, biters = max(draws, 1), cband = draws > 0)
}

cases <- expand.grid(draws = c(1000, 0), cov = c(TRUE, FALSE))
res <- data.frame(case = character(), mktcausal = numeric(), did = numeric(),
                  ratio = numeric(), max_diff_att = numeric(), max_diff_se = numeric())
for (i in seq_len(nrow(cases))) {
  cov <- cases$cov[i]
  draws <- cases$draws[i]
  t_mkt <- t_did <- Inf
  for (r in seq_len(reps)) {
    set.seed(r)
    t_mkt <- min(t_mkt, time_it(mkt(cov, draws), reps = 1))
    set.seed(r)
    t_did <- min(t_did, time_it(peer(cov, draws), reps = 1))
  }
  # Answers: ATT(g,t) and analytic standard errors.
  a <- mkt(cov, 0)
  b <- peer(cov, 0)
  res[i, "case"] <- sprintf("%s, %s", if (cov) "covariate" else "no covariate",
                            if (draws > 0) sprintf("%d draws", draws) else "analytic")
  res[i, c("mktcausal", "did", "ratio")] <- c(t_mkt, t_did, t_did / t_mkt)
  res[i, "max_diff_att"] <- max(abs(b$att - tidy(a)$estimate))
  res[i, "max_diff_se"] <- max(abs(b$se - tidy(a)$std.error), na.rm = TRUE)
}
cat(sprintf("staggered() vs did %s (DRDID %s), 20,000 units x 12 periods, 99 cells, best of %d, %s\n",
            utils::packageVersion("did"), utils::packageVersion("DRDID"), reps, Sys.time()))
print(res, digits = 3, row.names = FALSE)

if (nzchar(Sys.getenv("MKT_BENCH_BIG"))) {
  peak_rss_gb <- function() {
    s <- readLines("/proc/self/status")
    as.numeric(gsub("[^0-9]", "", s[grepl("^VmHWM", s)])) / 1024^2
  }
  rm(d)
  gc()
  big <- sim_rollout(1e6)
  before <- peak_rss_gb()
  t_big <- system.time(fit <- staggered(y ~ post | id + period, big, n_draws = 1000))[["elapsed"]]
  cat(sprintf("1,000,000 x 12 with 1000 draws: %.1f s, peak resident memory %.2f GB (data alone %.2f GB)\n",
              t_big, peak_rss_gb(), before))
}
