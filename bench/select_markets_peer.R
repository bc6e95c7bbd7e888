# Issue 15, peer side: GeoLift's market selection and mktcausal's
# select_markets() on the same DMA-week panel, in one run, with the speed of
# each (candidate sets scored per minute, one core) and each one's rejection
# rate at zero effect on the same backtest windows. Run from the repository
# root after installing the package, with GeoLift in a private library (see
# bench/select_markets-geolift.md for how it was built):
#   R_LIBS=/work/peers:/work/lib-geolift Rscript bench/select_markets_peer.R \
#     > bench/select_markets_peer.log 2>&1
# GeoLift is never a dependency of the package.
suppressPackageStartupMessages(library(mktcausal))
if (!requireNamespace("GeoLift", quietly = TRUE)) {
  stop("GeoLift is not installed: see bench/select_markets-geolift.md")
}
options(width = 80)
cat("Run started", format(Sys.time(), "%Y-%m-%d %H:%M:%S %Z"), "\n")
cat(sprintf("R %s; mktcausal %s; GeoLift %s; augsynth %s; osqp %s\n",
            getRversion(), packageVersion("mktcausal"), packageVersion("GeoLift"),
            packageVersion("augsynth"), packageVersion("osqp")))
cat(sprintf("load average at start: %s\n\n",
            paste(scan("/proc/loadavg", what = "", n = 3, quiet = TRUE), collapse = " ")))

# --- the panel: geo_sales summed to DMA x week -------------------------------
data(geo_sales, package = "mktcausal")
dma <- aggregate(sales ~ dma + week, data = geo_sales, FUN = sum)
dma$dma <- tolower(dma$dma)            # GeoLift lower-cases market names
size <- sort(tapply(dma$sales, dma$dma, sum), decreasing = TRUE)
n_week <- max(dma$week)

# --- settings shared by both tools -------------------------------------------
n_treated <- 3L
test_length <- 4L
effects <- c(0, 0.05, 0.10, 0.20)      # relative lifts; 0 is the A/A row
n_windows <- 10L                       # GeoLift's lookback_window
quick <- nzchar(Sys.getenv("PEER_QUICK"))   # a smoke test of the script only
if (quick) n_windows <- 2L
alpha <- 0.1                           # GeoLift's default level
# GeoLift's window s (1..L) starts at T - test_length - s + 2 and everything
# after it is dropped: the last L possible tests, shifted by one week.
window_start <- n_week - test_length - seq_len(n_windows) + 2L
cat(sprintf(paste0("Settings: %d DMAs x %d weeks; %d treated markets; %d-week test;\n",
                   "effects %s; alpha %.2f; %d windows starting in weeks %s.\n\n"),
            length(size), n_week, n_treated, test_length,
            paste(effects, collapse = ", "), alpha, n_windows,
            paste(rev(window_start), collapse = ", ")))

# --- GeoLift -------------------------------------------------------------------
# Every (candidate set, window, effect) p-value that GeoLift computes is kept
# by tracing its internal run_simulations() (the ranked table keeps only one
# row per set).
peer <- new.env()
invisible(suppressMessages(trace("run_simulations", where = asNamespace("GeoLift"), print = FALSE,
                       exit = quote(peer$raw <- rbind(peer$raw, returnValue())))))

run_geolift <- function(data, candidates, conformal_type = "iid", seed = 1) {
  peer$raw <- NULL
  set.seed(seed)
  err <- NULL
  cpu <- system.time(sel <- tryCatch(suppressMessages(GeoLift::GeoLiftMarketSelection(
    data = data, treatment_periods = test_length, N = n_treated,
    Y_id = "sales", location_id = "dma", time_id = "week",
    effect_size = effects, lookback_window = n_windows,
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
  n_scored <- nrow(raw) / (length(effects) * n_windows)   # one per anchor market
  top <- if (!is.null(sel)) sel$BestMarkets$location[sel$BestMarkets$rank == 1][1]
  list(elapsed = cpu[["elapsed"]], cpu = cpu[["user.self"]] + cpu[["sys.self"]],
       raw = raw, n_scored = n_scored, n_unique = length(unique(raw$set)),
       top = top, best = if (!is.null(sel)) sel$BestMarkets, error = err)
}

# Rejection rate at one effect with two standard errors: binomial over all
# tests (a lower bound: one set's windows overlap) and over the per-set rates.
rate <- function(reject, set) {
  p <- mean(reject)
  per_set <- tapply(reject, set, mean)
  c(rate = p, se_binom = sqrt(p * (1 - p) / length(reject)),
    se_sets = if (length(per_set) > 1) sd(per_set) / sqrt(length(per_set)) else NA,
    tests = length(reject), sets = length(per_set))
}

report_geolift <- function(res, label) {
  cat(sprintf("GeoLift, %s:\n", label))
  if (!is.null(res$error)) cat("  (GeoLiftMarketSelection stopped: ", res$error, ")\n", sep = "")
  cat(sprintf("  %g candidate sets scored (%d distinct) in %.1f s wall, %.1f s CPU\n",
              res$n_scored, res$n_unique, res$elapsed, res$cpu))
  cat(sprintf("  = %.1f sets per minute (wall), %.1f per CPU minute\n",
              60 * res$n_scored / res$elapsed, 60 * res$n_scored / res$cpu))
  tab <- t(vapply(effects, function(e) {
    r <- res$raw[res$raw$EffectSize == e, ]
    rate(r$reject, r$set)
  }, numeric(5)))
  tab <- data.frame(effect = effects, tab)
  print(format(tab, digits = 3), row.names = FALSE)
  if (!is.null(res$top)) {
    r0 <- res$raw[res$raw$EffectSize == 0 & res$raw$set == res$top, ]
    cat(sprintf("  ranked first: %s; rejects at effect 0 in %d of %d of its tests\n",
                res$top, sum(r0$reject), nrow(r0)))
  }
  cat("\n")
  invisible(tab)
}

# (a) The full selection on a restricted panel: the 40 largest DMAs, every one
#     of them a candidate and a donor (GeoLift scores one set per market).
pool40 <- names(size)[1:if (quick) 8 else 40]
d40 <- dma[dma$dma %in% pool40, ]
gl40 <- run_geolift(d40, pool40)
tab40 <- report_geolift(gl40, "40 largest DMAs (all candidates and donors), iid conformal")

# (b) Speed on the full panel: 200 DMAs as donors, candidate sets restricted by
#     exclude_markets to five markets (each candidate costs the same whatever
#     the pool, so the rate carries over to the full search of ~200 sets).
pool5 <- names(size)[41:if (quick) 43 else 45]
gl200 <- run_geolift(dma, pool5)
tab200 <- report_geolift(gl200, "200 DMAs, 5 candidate markets, iid conformal")

# --- mktcausal's select_markets() on the same panels and windows -------------
mk <- NULL
if (exists("select_markets", envir = asNamespace("mktcausal"))) {
  source(file.path("bench", "select_markets_peer_mkt.R"), local = TRUE)
} else {
  cat("mktcausal::select_markets() is not in this build: its half of the",
      "comparison is not run.\n")
}

cat("Run ended", format(Sys.time(), "%Y-%m-%d %H:%M:%S %Z"), "\n")
