# Benchmarks for the staggered-adoption module against did (timed in the
# same run). Run from the package root after installing mktcausal, with did
# in a private library:
#   R_LIBS=/tmp/lib-staggered:/tmp/peers-staggered Rscript bench/staggered.R
# Set MKT_BENCH_BIG=1 to also run the 1,000,000 x 12 memory check (peak
# resident memory is read from /proc/self/status).
library(mktcausal)

sim_rollout <- function(n, n_periods = 12, seed = 1) {
  set.seed(seed)
  cohort <- sample(c(0, 4:n_periods), n, replace = TRUE)
  d <- data.frame(id = rep(seq_len(n), each = n_periods),
                  period = rep(seq_len(n_periods), times = n))
  d$first <- cohort[d$id]
  d$post <- as.integer(d$first > 0 & d$period >= d$first)
  d$y <- stats::rnorm(n)[d$id] + 0.1 * d$period +
    d$post * (0.5 + 0.1 * (d$period - d$first)) + stats::rnorm(nrow(d))
  d
}

best_of <- function(expr, times = 5) {
  expr <- substitute(expr)
  env <- parent.frame()
  min(vapply(seq_len(times), function(i) {
    gc()
    system.time(eval(expr, env))[["elapsed"]]
  }, numeric(1)))
}

peak_rss_gb <- function() {
  s <- readLines("/proc/self/status")
  as.numeric(gsub("[^0-9]", "", s[grepl("^VmHWM", s)])) / 1024^2
}

d <- sim_rollout(20000)
mkt_threads(2)
res <- list()
set.seed(1)
res$mkt_boot <- best_of(staggered(y ~ post | id + period, d, n_boot = 1000))
res$mkt_boot_1thread <- {
  mkt_threads(1)
  t <- best_of(staggered(y ~ post | id + period, d, n_boot = 1000))
  mkt_threads(2)
  t
}
res$mkt_analytic <- best_of(staggered(y ~ post | id + period, d, n_boot = 0))
res$mkt_panel_only <- best_of(mkt_panel(y ~ post | id + period, d))

if (requireNamespace("did", quietly = TRUE)) {
  d$gname <- d$first
  res$did_boot <- best_of(did::att_gt("y", "period", "id", "gname", data = d, bstrap = TRUE,
                                      biters = 1000, cband = TRUE), times = 2)
  res$did_analytic <- best_of(did::att_gt("y", "period", "id", "gname", data = d,
                                          bstrap = FALSE, cband = FALSE), times = 2)
  fit_did <- did::att_gt("y", "period", "id", "gname", data = d, bstrap = FALSE, cband = FALSE)
  fit_mkt <- staggered(y ~ post | id + period, d, n_boot = 0)
  res$max_abs_diff_att <- max(abs(fit_did$att - tidy(fit_mkt)$estimate))
  res$max_abs_diff_se <- max(abs(fit_did$se - tidy(fit_mkt)$std.error), na.rm = TRUE)
  res$ratio_boot <- res$did_boot / res$mkt_boot
  res$ratio_analytic <- res$did_analytic / res$mkt_analytic
}
res$did_version <- if (requireNamespace("did", quietly = TRUE)) as.character(utils::packageVersion("did")) else NA
str(res)

if (nzchar(Sys.getenv("MKT_BENCH_BIG"))) {
  rm(d)
  gc()
  big <- sim_rollout(1e6)
  gc(reset = TRUE)
  before <- peak_rss_gb()
  t_big <- system.time(fit <- staggered(y ~ post | id + period, big, n_boot = 1000))[["elapsed"]]
  cat(sprintf("1,000,000 x 12 with 1000 draws: %.1f s, peak resident memory %.2f GB (data alone %.2f GB)\n",
              t_big, peak_rss_gb(), before))
}
