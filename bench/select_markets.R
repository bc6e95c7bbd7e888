# Market selection on geo_sales (200 DMAs x 104 weeks, 4-week test, 3
# treated): candidate sets scored per minute on one core (CPU time and
# elapsed) and with 2 multisession workers, for each planned estimator; then
# the size of the test under selection in a larger A/A simulation. Run from
# the repository root after installing the package:
#   Rscript bench/select_markets.R
# (MKT_BENCH_REPS sets the simulation's replications; default 200.)
suppressPackageStartupMessages(library(mktcausal))
ns <- asNamespace("mktcausal")
source(file.path("bench", "time_it.R"))
say <- function(...) cat(sprintf(...), "\n", sep = "")
say("Run of %s on %s (%d cores), R %s; load average %s", format(Sys.time()),
    Sys.info()[["nodename"]], parallel::detectCores(), getRversion(),
    paste(readLines("/proc/loadavg", warn = FALSE), collapse = " "))

dma <- aggregate(sales ~ dma + week, geo_sales, sum)
mp <- ns$market_panel(sales ~ 0 | dma + week, dma, NULL, NULL)
set.seed(1)
n_sets <- 300
sets <- replicate(n_sets, sort(sample(200, 3)), simplify = FALSE)

say("\n## Speed: %d random 3-DMA sets of 200, 4-week test, t rule", n_sets)
for (m in c("synth", "tbr", "diff_in_means", "lin")) {
  plan <- ns$market_plan(mp, 4, 8, NULL, 0.05, "t", m)
  scorer <- ns$market_scorer(plan, 50L)
  cpu <- system.time(r <- scorer(sets))
  el <- time_it(scorer(sets), reps = 1)
  say("%-14s %d windows, %d to %d reference blocks, %d selection blocks: %.1f ms a set CPU; %s sets/min on one core (CPU), %s sets/min elapsed",
      m, length(plan$window_block), min(plan$n_placebo), max(plan$n_placebo), plan$n_select,
      1000 * cpu[["user.self"]] / n_sets,
      format(round(60 * n_sets / cpu[["user.self"]]), big.mark = ","),
      format(round(60 * n_sets / el), big.mark = ","))
}

# sdid refits synth()'s SDID solver in R for every window and placebo
# block: a few sets suffice to time it.
plan <- ns$market_plan(mp, 4, 8, NULL, 0.05, "t", "sdid")
scorer <- ns$market_scorer(plan, 50L)
cpu <- system.time(r <- scorer(sets[1:3]))
el <- time_it(scorer(sets[1:3]), reps = 1)
say("%-14s 3 sets: %.0f ms a set CPU, %.0f ms a set elapsed; all fits converged: %s",
    "sdid", 1000 * cpu[["user.self"]] / 3, 1000 * el / 3, all(r$converged))

say("\n## Two multisession workers (synth, %d sets, chunks of 50)", n_sets)
plan <- ns$market_plan(mp, 4, 8, NULL, 0.05, "t", "synth")
scorer <- ns$market_scorer(plan, 50L)
seq_res <- scorer(sets)
t_seq <- time_it(scorer(sets), reps = 1)
future::plan(future::multisession, workers = 2)
invisible(scorer(sets[1:100]))  # start the workers
t_par <- time_it(par_res <- scorer(sets), reps = 1)
future::plan(future::sequential)
say("sequential %.1f s (%s sets/min); 2 workers %.1f s (%s sets/min); speed-up %.2f; identical results: %s",
    t_seq, format(round(60 * n_sets / t_seq), big.mark = ","), t_par,
    format(round(60 * n_sets / t_par), big.mark = ","), t_seq / t_par,
    identical(seq_res, par_res))

say("\n## A full search on geo_sales (greedy, 1000 candidates)")
t_sel <- system.time(sel <- select_markets(sales ~ 0 | dma + week, dma, n_treated = 3,
                                           n_candidates = 1000))
print(sel)
say("%d sets scored in %.1f s elapsed (%.1f s CPU)", sel$n_scored, t_sel[["elapsed"]],
    t_sel[["user.self"]])

# Size under selection: factor panels with no effect; each replication runs
# an exhaustive selection and records the chosen set's zero-effect
# rejections on every backtest window. A random set's rate is the control.
reps <- as.integer(Sys.getenv("MKT_BENCH_REPS", "200"))
factor_markets <- function(n, n_t, seed, noise = 0.03) {
  set.seed(seed)
  f <- cbind(cumsum(stats::rnorm(n_t, 0, 0.01)), sin(seq_len(n_t) / 4) * 0.05)
  load <- matrix(stats::runif(2 * n, 0.5, 1.5), n, 2)
  level <- round(stats::runif(n, 50, 500))
  sd <- noise * stats::runif(n, 0.2, 1.5)
  y <- level * (1 + load %*% t(f) + sd * matrix(stats::rnorm(n * n_t), n, n_t))
  data.frame(market = rep(sprintf("M%02d", seq_len(n)), n_t),
             week = rep(seq_len(n_t), each = n), sales = as.vector(y))
}
for (inf in c("t", "placebo")) {
  n_t <- if (inf == "t") 64 else 104
  say("\n## Size under selection: %d panels of 12 markets x %d weeks, 2-week test, 2 treated, %s rule, exhaustive (66 sets)",
      reps, n_t, inf)
  t0 <- Sys.time()
  res <- lapply(seq_len(reps), function(r) {
    d <- factor_markets(12, n_t, 1000 + r)
    sel <- suppressWarnings(select_markets(sales ~ 0 | market + week, d, n_treated = 2,
                                           test_length = 2, n_windows = 10, inference = inf,
                                           search = "exhaustive"))
    tab <- tidy(sel)
    w <- tidy(sel, "windows")
    c(chosen = mean(w$reject_aa), random = tab$aa_rejection[sample.int(nrow(tab), 1)],
      all = mean(tab$aa_rejection), windows = nrow(w))
  })
  m <- do.call(rbind, res)
  n <- sum(m[, "windows"])
  se <- sqrt(0.05 * 0.95 / n)
  say("chosen set: A/A %.4f (MC SE %.4f, %d window tests); a random set: %.4f; mean over all sets %.4f; %.0f s",
      mean(m[, "chosen"]), se, n, mean(m[, "random"]), mean(m[, "all"]),
      as.numeric(difftime(Sys.time(), t0, units = "secs")))
}

# Size under selection on geo_sales itself: exhaustive selection of 2 of 25
# DMAs drawn at random (300 sets each), synthetic control, t rule; the
# chosen set's zero-effect rejections on its 8 backtest windows.
reps_geo <- max(10L, reps %/% 5L)
say("\n## Size under selection on geo_sales: %d random subsets of 25 DMAs, 2 treated, synth, t rule",
    reps_geo)
ids <- sort(unique(dma$dma))
set.seed(7)
t0 <- Sys.time()
res <- t(vapply(seq_len(reps_geo), function(r) {
  sub <- dma[dma$dma %in% sample(ids, 25), ]
  sel <- suppressWarnings(select_markets(sales ~ 0 | dma + week, sub, n_treated = 2,
                                         search = "exhaustive"))
  c(chosen = mean(tidy(sel, "windows")$reject_aa), all = mean(tidy(sel)$aa_rejection),
    n = nrow(tidy(sel, "windows")))
}, numeric(3)))
say("chosen set: A/A %.4f (MC SE %.4f, %d window tests); mean over all sets %.4f; %.0f s",
    mean(res[, "chosen"]), sqrt(0.05 * 0.95 / sum(res[, "n"])), sum(res[, "n"]),
    mean(res[, "all"]), as.numeric(difftime(Sys.time(), t0, units = "secs")))
