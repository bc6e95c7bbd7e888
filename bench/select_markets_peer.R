# Issue 15, peer side: GeoLift's market selection and mktcausal's
# select_markets() on the same DMA-week panel, in one run: the speed of each
# (candidate sets scored per minute, one core) and each one's rejection rate
# at zero effect on the same backtest windows. Run from the repository root
# after installing the package, with GeoLift in a private library (see
# bench/select_markets-geolift.md for what GeoLift does and how it was built):
#   R_LIBS=/work/peers:/work/lib-geolift Rscript bench/select_markets_peer.R \
#     > bench/select_markets_peer.log 2>&1
# PEER_QUICK=1 shrinks everything, to check that the script runs.
# GeoLift is never a dependency of the package.
suppressPackageStartupMessages(library(mktcausal))
if (!requireNamespace("GeoLift", quietly = TRUE)) {
  stop("GeoLift is not installed: see bench/select_markets-geolift.md")
}
options(width = 80)
quick <- nzchar(Sys.getenv("PEER_QUICK"))
cat("Run started", format(Sys.time(), "%Y-%m-%d %H:%M:%S %Z"), "\n")
cat(sprintf("R %s; mktcausal %s; GeoLift %s; augsynth %s; osqp %s\n",
            getRversion(), packageVersion("mktcausal"), packageVersion("GeoLift"),
            packageVersion("augsynth"), packageVersion("osqp")))
loadavg <- function() paste(scan("/proc/loadavg", what = "", n = 3, quiet = TRUE), collapse = " ")
cat("load average at start:", loadavg(), "\n\n")

# --- the panel: geo_sales summed to DMA x week -------------------------------
data(geo_sales, package = "mktcausal")
dma <- aggregate(sales ~ dma + week, data = geo_sales, FUN = sum)
dma$dma <- tolower(dma$dma)            # GeoLift lower-cases market names
size <- sort(tapply(dma$sales, dma$dma, sum), decreasing = TRUE)
n_week <- max(dma$week)
f <- sales ~ 0 | dma + week

# --- settings shared by both tools -------------------------------------------
n_treated <- 3L
test_length <- 4L
effects <- c(0, 0.05, 0.10, 0.20)      # relative lifts; 0 is the A/A row
alpha <- 0.1                           # GeoLift's default level
# mktcausal's windows are the last blocks of test_length weeks; GeoLift's
# window s = 1..L starts at week T - test_length - s + 2 (the last L possible
# tests, one week apart). With L = 4 (k - 1) + 1, GeoLift's windows contain
# mktcausal's last k: those are "the same windows".
k_shared <- if (quick) 2L else 3L
n_lookback <- test_length * (k_shared - 1L) + 1L
gl_start <- n_week - test_length - seq_len(n_lookback) + 2L
shared_start <- n_week - test_length + 1L - test_length * (seq_len(k_shared) - 1L)
stopifnot(all(shared_start %in% gl_start))
cat(sprintf(paste0("Settings: %d DMAs x %d weeks; %d treated markets; %d-week test;\n",
                   "effects %s; alpha %.2f.\n",
                   "GeoLift: lookback_window = %d (windows starting in weeks %d-%d);\n",
                   "shared windows (mktcausal's last %d blocks) start in weeks %s.\n\n"),
            length(size), n_week, n_treated, test_length,
            paste(effects, collapse = ", "), alpha, n_lookback, min(gl_start),
            max(gl_start), k_shared, paste(rev(shared_start), collapse = ", ")))

# Rejection rate with two standard errors: binomial over all tests (a lower
# bound when tests of one set share weeks) and over the per-set rates.
rate <- function(reject, set) {
  p <- mean(reject)
  per_set <- tapply(reject, set, mean)
  c(rate = p, se_binom = sqrt(p * (1 - p) / length(reject)),
    se_sets = if (length(per_set) > 1) sd(per_set) / sqrt(length(per_set)) else NA,
    tests = length(reject), sets = length(per_set))
}
speed <- function(n, t) {
  cpu <- t[["user.self"]] + t[["sys.self"]]
  c(sets = n, wall_s = t[["elapsed"]], cpu_s = cpu,
    per_min_wall = 60 * n / t[["elapsed"]], per_min_cpu = 60 * n / cpu)
}
show <- function(x, digits = 3) print(format(x, digits = digits, big.mark = ","), row.names = FALSE)

# --- GeoLift -------------------------------------------------------------------
# Every (candidate set, window, effect) p-value GeoLift computes is kept by
# tracing its internal run_simulations() (the ranked table keeps one row per
# set), so its rejection rates can be read on any subset of its windows.
peer <- new.env()
invisible(suppressMessages(trace(
  "run_simulations", where = asNamespace("GeoLift"), print = FALSE,
  exit = quote(peer$raw <- rbind(peer$raw, returnValue())))))

run_geolift <- function(data, candidates, effect_size = effects,
                        conformal_type = "iid", seed = 1) {
  peer$raw <- NULL
  set.seed(seed)
  err <- NULL
  t <- system.time(sel <- tryCatch(suppressMessages(GeoLift::GeoLiftMarketSelection(
    data = data, treatment_periods = test_length, N = n_treated,
    Y_id = "sales", location_id = "dma", time_id = "week",
    effect_size = effect_size, lookback_window = n_lookback,
    exclude_markets = setdiff(unique(data$dma), candidates),
    alpha = alpha, model = "none", fixed_effects = TRUE,
    side_of_test = "two_sided", conformal_type = conformal_type, ns = 1000,
    parallel = FALSE, print = FALSE, ProgressBar = FALSE
  )), error = function(e) {
    err <<- conditionMessage(e)
    NULL
  }))
  raw <- peer$raw
  raw$set <- vapply(strsplit(raw$location, ", "),
                    function(x) paste(sort(x), collapse = ", "), "")
  raw$reject <- raw$pvalue < alpha
  raw$shared <- raw$treatment_start %in% shared_start
  # GeoLift sorts and de-duplicates its candidate sets before scoring them.
  n_scored <- nrow(raw) / (length(effect_size) * n_lookback)
  top <- if (!is.null(sel)) sel$BestMarkets$location[sel$BestMarkets$rank == 1][1]
  list(time = t, speed = speed(n_scored, t), raw = raw,
       sets = unique(raw$set), top = top, error = err)
}

geolift_rates <- function(res, label) {
  cat(sprintf("GeoLift, %s\n", label))
  if (!is.null(res$error) && length(unique(res$raw$EffectSize)) > 1) {
    cat("  (GeoLiftMarketSelection stopped: ", res$error, ")\n", sep = "")
  }
  r <- res$raw
  tab <- do.call(rbind, lapply(sort(unique(r$EffectSize)), function(e) {
    all <- r[r$EffectSize == e, ]
    sh <- all[all$shared, ]
    rbind(data.frame(effect = e, windows = "all", t(rate(all$reject, all$set))),
          data.frame(effect = e, windows = "shared", t(rate(sh$reject, sh$set))))
  }))
  show(tab)
  if (!is.null(res$top)) {
    r0 <- r[r$EffectSize == 0 & r$set == res$top, ]
    cat(sprintf("  ranked first: %s; at effect 0 it rejects in %d of its %d window tests\n",
                res$top, sum(r0$reject), nrow(r0)))
  }
  cat("\n")
  invisible(tab)
}

pool40 <- names(size)[seq_len(if (quick) 8 else 40)]
d40 <- dma[dma$dma %in% pool40, ]

cat("== A. The 40 largest DMAs: every market a candidate and a donor ==\n\n")
gl40 <- run_geolift(d40, pool40)
geolift_rates(gl40, "iid conformal (its default), its distinct candidate sets:")
gl40b <- run_geolift(d40, pool40, effect_size = 0, conformal_type = "block")
geolift_rates(gl40b, "block conformal (cyclic shifts), effect 0 only (no ranking):")

# --- mktcausal on the same panel -------------------------------------------------
# (1) The same candidate sets as GeoLift, scored on the shared windows.
bt_one <- function(set, data) {
  market_backtest(f, data, treated = strsplit(set, ", ")[[1]], test_length = test_length,
                  method = "synth", effect = effects, n_windows = k_shared, alpha = alpha)
}
t_bt <- system.time(bts <- lapply(gl40$sets, bt_one, data = d40))
bt_aa <- do.call(rbind, Map(function(b, s) {
  w <- tidy(b, "windows")
  data.frame(set = s, start = w$start, reject = w$reject_aa)
}, bts, gl40$sets))
stopifnot(setequal(bt_aa$start, shared_start))
cat(sprintf("mktcausal market_backtest() on GeoLift's %d distinct candidate sets, shared windows:\n",
            length(gl40$sets)))
show(data.frame(effect = 0, windows = "shared", t(rate(bt_aa$reject, bt_aa$set))))
cat("\n")

# (1b) The same with the rank rule instead of the default t rule.
bts_rank <- lapply(gl40$sets, function(set) {
  market_backtest(f, d40, treated = strsplit(set, ", ")[[1]], test_length = test_length,
                  method = "synth", effect = effects, n_windows = k_shared, alpha = alpha,
                  inference = "placebo")
})
bt_aa_rank <- do.call(rbind, Map(function(b, s) {
  data.frame(set = s, reject = tidy(b, "windows")$reject_aa)
}, bts_rank, gl40$sets))
cat("The same with inference = \"placebo\" (rank rule):\n")
show(data.frame(effect = 0, windows = "shared", t(rate(bt_aa_rank$reject, bt_aa_rank$set))))
cat("\n")

# (2) Its own search: every one of the choose(40, 3) triples, on the shared
#     windows, ranked on all of them (holdout = 0, as GeoLift does).
n_all <- choose(length(pool40), n_treated)
t_sel <- system.time(sel <- select_markets(
  f, d40, n_treated = n_treated, test_length = test_length, method = "synth",
  effect = effects, n_windows = k_shared, alpha = alpha, search = "exhaustive",
  n_candidates = n_all, holdout = 0))
print(sel)
ts <- tidy(sel)
aa <- c(rate = mean(ts$aa_rejection),
        se_binom = sqrt(mean(ts$aa_rejection) * (1 - mean(ts$aa_rejection)) / (nrow(ts) * k_shared)),
        se_sets = sd(ts$aa_rejection) / sqrt(nrow(ts)), tests = nrow(ts) * k_shared, sets = nrow(ts))
cat("\nmktcausal select_markets(), every triple, shared windows, effect 0:\n")
show(data.frame(effect = 0, windows = "shared", t(aa)))
cat(sprintf("  ranked first: %s; at effect 0 it rejects in %d of its %d window tests\n",
            paste(sel$chosen, collapse = ", "),
            sum(tidy(sel, "windows")$reject_aa), k_shared))
cat("\n")

sel_rank <- select_markets(
  f, d40, n_treated = n_treated, test_length = test_length, method = "synth",
  effect = effects, n_windows = k_shared, alpha = alpha, search = "exhaustive",
  n_candidates = n_all, holdout = 0, inference = "placebo")
ar <- tidy(sel_rank)$aa_rejection
aa_rank <- c(rate = mean(ar), se_binom = sqrt(mean(ar) * (1 - mean(ar)) / (length(ar) * k_shared)),
             se_sets = sd(ar) / sqrt(length(ar)), tests = length(ar) * k_shared, sets = length(ar))
cat("The same with inference = \"placebo\" (rank rule):\n")
show(data.frame(effect = 0, windows = "shared", t(aa_rank)))
cat(sprintf("  ranked first: %s\n\n", paste(sel_rank$chosen, collapse = ", ")))

# (3) Speed with the same amount of work per set as GeoLift: as many windows
#     (mktcausal's are the last n_lookback blocks, GeoLift's overlap), the same
#     effects, the same panel; a stochastic search scoring n sets.
n_speed <- if (quick) 100L else 1000L
t40 <- system.time(sel40 <- select_markets(
  f, d40, n_treated = n_treated, test_length = test_length, method = "synth",
  effect = effects, n_windows = n_lookback, alpha = alpha, search = "stochastic",
  n_candidates = n_speed, holdout = 0))
sp40 <- rbind(
  data.frame(tool = "GeoLift", what = sprintf("selection, %d win", n_lookback),
             t(gl40$speed)),
  data.frame(tool = "mktcausal", what = sprintf("select_markets, %d win", n_lookback),
             t(speed(glance(sel40)$n_scored, t40))),
  data.frame(tool = "mktcausal", what = sprintf("select_markets, %d win", k_shared),
             t(speed(glance(sel)$n_scored, t_sel))),
  data.frame(tool = "mktcausal", what = sprintf("market_backtest, %d win", k_shared),
             t(speed(length(gl40$sets), t_bt))))
cat("Speed on the 40-DMA panel (sets scored per minute, one core):\n")
show(sp40)
cat("\n")

cat("== B. All 200 DMAs as donors (speed only) ==\n\n")
# GeoLift: candidates restricted by exclude_markets to four markets (two
# distinct sets); each set costs the same whatever the number of candidates,
# so the rate carries over to its full search (up to 200 sets).
pool4 <- names(size)[41:44]
gl200 <- run_geolift(dma, pool4)
t200 <- system.time(sel200 <- select_markets(
  f, dma, n_treated = n_treated, test_length = test_length, method = "synth",
  effect = effects, n_windows = n_lookback, alpha = alpha, search = "stochastic",
  n_candidates = if (quick) 100L else 500L, holdout = 0))
sp200 <- rbind(
  data.frame(tool = "GeoLift", what = sprintf("selection, %d win", n_lookback),
             t(gl200$speed)),
  data.frame(tool = "mktcausal", what = sprintf("select_markets, %d win", n_lookback),
             t(speed(glance(sel200)$n_scored, t200))))
show(sp200)
cat("\n")

cat("== Summary ==\n")
ratio <- function(a, b) sprintf("%.0fx (wall) / %.0fx (CPU)", a[["per_min_wall"]] / b[["per_min_wall"]],
                                a[["per_min_cpu"]] / b[["per_min_cpu"]])
cat(sprintf("40 DMAs, %d windows: mktcausal / GeoLift sets per minute = %s\n", n_lookback,
            ratio(unlist(sp40[2, -(1:2)]), unlist(sp40[1, -(1:2)]))))
cat(sprintf("200 DMAs, %d windows: mktcausal / GeoLift sets per minute = %s\n", n_lookback,
            ratio(unlist(sp200[2, -(1:2)]), unlist(sp200[1, -(1:2)]))))
# mktcausal's planned test, with its default inference: placebo in time,
# either the t rule or the rank rule on the reference blocks.
mk_test <- sprintf("mktcausal (%s rule)", glance(sel)$inference)
gl_sh <- gl40$raw[gl40$raw$EffectSize == 0 & gl40$raw$shared, ]
glb_sh <- gl40b$raw[gl40b$raw$EffectSize == 0 & gl40b$raw$shared, ]
summ <- rbind(
  data.frame(tool = "GeoLift (iid conformal)", candidates = "its own",
             t(rate(gl_sh$reject, gl_sh$set))),
  data.frame(tool = "GeoLift (block conformal)", candidates = "its own",
             t(rate(glb_sh$reject, glb_sh$set))),
  data.frame(tool = mk_test, candidates = "GeoLift's",
             t(rate(bt_aa$reject, bt_aa$set))),
  data.frame(tool = mk_test, candidates = "every triple",
             t(aa)),
  data.frame(tool = "mktcausal (placebo rule)", candidates = "GeoLift's",
             t(rate(bt_aa_rank$reject, bt_aa_rank$set))),
  data.frame(tool = "mktcausal (placebo rule)", candidates = "every triple",
             t(aa_rank)))
cat(sprintf("Zero-effect rejection rates at alpha = %.2f on the %d shared windows:\n",
            alpha, k_shared))
show(summ)
cat("load average at end:", loadavg(), "\n")
cat("Run ended", format(Sys.time(), "%Y-%m-%d %H:%M:%S %Z"), "\n")
