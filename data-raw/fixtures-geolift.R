# Reference numbers from GeoLift 2.7.5 (facebookincubator/GeoLift, commit
# db34ea4299ff0e28515ebac502b78c076c93c905) and augsynth 0.2.0 (commit
# f942957c7a91febbbdcdee11347d221b177128c6) for
# tests/testthat/test-select_markets-peer.R. GeoLift is not on CRAN: it was
# built from its public sources into a private library, never a dependency of
# mktcausal (bench/select_markets-geolift.md says how). Run by hand from the
# package root, after installing the package:
#   R_LIBS=/work/peers:<lib with mktcausal> Rscript data-raw/fixtures-geolift.R
#
# What is recorded: for a small DMA-week panel cut from geo_sales and a few
# candidate treated sets, the estimate that GeoLift's market selection
# computes for one (set, window, effect): GeoLift::pvalueCalc(), which calls
# augsynth with progfunc = "none" (a plain synthetic control of the average of
# the treated markets, simplex weights, identity V). Both of GeoLift's
# fixed_effects settings are kept: FALSE is the same estimand as mktcausal's
# synth(method = "sc", pool = 1) (one set of weights for the average treated
# market); TRUE (GeoLift's default) first subtracts each market's pre-period
# mean. The conformal p-values use moving blocks (conformal_type = "block",
# every cyclic shift of the residuals), which are deterministic; GeoLift's
# default "iid" draws 1000 random permutations instead.
library(GeoLift)
library(mktcausal)

data(geo_sales, package = "mktcausal")
dma <- aggregate(sales ~ dma + week, data = geo_sales, FUN = sum)
dma$dma <- tolower(dma$dma)
size <- sort(tapply(dma$sales, dma$dma, sum), decreasing = TRUE)
# 30 mid-sized DMAs (ranks 41-70) over the last 60 weeks: small enough for a
# test, and no market is so large that no mix of the others can track it.
keep <- names(size)[41:70]
panel <- dma[dma$dma %in% keep & dma$week > 44, ]
panel$week <- panel$week - 44L
names(panel) <- c("location", "time", "Y")
n_time <- max(panel$time)
test_length <- 4L

# Candidate sets as GeoLift's selection forms them (a market and its most
# correlated neighbours, correlations over the whole panel): the first five
# rows of its similarity matrix, for 1 and for 3 treated markets.
sim <- GeoLift::MarketSelection(panel, location_id = "location", time_id = "time", Y_id = "Y")
sets <- c(lapply(1:2, function(i) sim[i, 1]),
          lapply(1:3, function(i) sim[i, 1:3]))

score <- function(locs, window, effect, fixed_effects) {
  st <- GeoLift::type_of_test("two_sided")
  r <- suppressMessages(GeoLift::pvalueCalc(
    panel, sim = window, max_time = n_time, tp = test_length, es = effect,
    locations = as.list(locs), cpic = 1, X = c(), type = "pValue",
    fixed_effects = fixed_effects, stat_func = st, model = "none",
    conformal_type = "block", ns = 1000
  ))
  # The weights of the same augsynth fit that pvalueCalc() made.
  d <- GeoLift::fn_treatment(panel, locations = locs, r$treatment_start_time,
                             r$treatment_start_time + test_length - 1)
  d$Y_inc <- ifelse(d$D == 1, d$Y * (1 + effect), d$Y)
  fit <- suppressMessages(augsynth::augsynth(Y_inc ~ D, unit = location, time = time,
                                             data = d, t_int = r$treatment_start_time,
                                             progfunc = "none", scm = TRUE,
                                             fixedeff = fixed_effects))
  w <- setNames(as.numeric(fit$weights), rownames(fit$weights))
  list(set = paste(sort(unlist(locs)), collapse = ", "), locations = sort(unlist(locs)),
       window = window, start = r$treatment_start_time, effect = effect,
       fixed_effects = fixed_effects, att = r$att_estimator, lift = r$lift_estimator,
       pvalue = r$pvalue, scaled_l2_imbalance = r$scaled_l2_imbalance,
       weights = w[w > 1e-6])
}

grid <- expand.grid(set = seq_along(sets), window = c(1L, 5L), effect = c(0, 0.1),
                    fixed_effects = c(FALSE, TRUE))
cases <- lapply(seq_len(nrow(grid)), function(i) {
  g <- grid[i, ]
  score(sets[[g$set]], g$window, g$effect, g$fixed_effects)
})

# select_markets()/market_backtest() fit an intercept synthetic control to
# each market's series divided by its mean level before the first backtest
# window (the treated series: the set's total over its total level). On a
# panel in which every such level is already 1 that is GeoLift's default fit
# (fixed_effects = TRUE) of the treated markets' average, and its per-window
# relative lift is GeoLift's lift_estimator. With n_windows = 2 the first
# window starts in week 53, so the levels are means over weeks 1-52.
panel_index <- panel
level <- tapply(panel$Y[panel$time <= 52], panel$location[panel$time <= 52], mean)
panel_index$Y <- panel$Y / level[panel$location]
lift <- function(locs, window, effect) {
  r <- suppressMessages(GeoLift::pvalueCalc(
    panel_index, sim = window, max_time = n_time, tp = test_length, es = effect,
    locations = as.list(locs), cpic = 1, X = c(), type = "Imbalance",
    fixed_effects = TRUE, stat_func = GeoLift::type_of_test("two_sided"),
    model = "none", conformal_type = "block", ns = 1000
  ))
  list(set = paste(sort(unlist(locs)), collapse = ", "), locations = sort(unlist(locs)),
       window = window, start = r$treatment_start_time, effect = effect,
       lift = r$lift_estimator, att = r$att_estimator)
}
ig <- expand.grid(set = seq_along(sets), window = c(1L, 5L), effect = c(0, 0.1))
index_cases <- lapply(seq_len(nrow(ig)), function(i) {
  lift(sets[[ig$set[i]]], ig$window[i], ig$effect[i])
})

fixture <- list(
  source = "GeoLift 2.7.5 (db34ea4), augsynth 0.2.0 (f942957), osqp 0.6.0.3",
  panel = panel, test_length = test_length, cases = cases,
  panel_index = panel_index, index_cases = index_cases
)
saveRDS(fixture, file.path("tests", "testthat", "fixtures", "geolift.rds"), version = 2)
for (cs in index_cases) {
  cat(sprintf("index panel: %-26s start %3d effect %.2f lift %.6f\n", cs$set, cs$start,
              cs$effect, cs$lift))
}
for (cs in cases) {
  cat(sprintf("%-26s start %3d effect %.2f fe %-5s att %10.4f p %.3f\n", cs$set, cs$start,
              cs$effect, cs$fixed_effects, cs$att, cs$pvalue))
}
