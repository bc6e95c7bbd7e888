# Timings of iv_fe() and dose_response() against fixest::feols() on the same
# panels, in one run. fixest is installed in a private library for
# benchmarking only; the package never needs it. Run from the package root
# after installing mktcausal:
#   Rscript bench/continuous.R
# Each time is the best of 5 elapsed times, the contenders taking turns
# (one run of each, then the next round), so that a burst of load from other
# jobs hits both sides. The machine this was written on has 2 cores shared
# with other jobs: times move by 2x from one minute to the next, so compare
# the ratios of one run, and rerun when in doubt. Both packages run on 1 thread and then on 2 (fixest's
# default on 2 cores is 1). Results are copied by hand into bench/RESULTS.md.
.libPaths(c("/work/peers", .libPaths()))
suppressPackageStartupMessages({
  library(mktcausal)
  library(fixest)
})


# Best elapsed time of each expression over `reps` rounds in which every
# expression runs once, in turn.
race <- function(exprs, reps = 5, env = parent.frame()) {
  best <- rep(Inf, length(exprs))
  names(best) <- names(exprs)
  for (r in seq_len(reps)) {
    for (k in seq_along(exprs)) {
      gc(FALSE)
      best[k] <- min(best[k], system.time(eval(exprs[[k]], env))[["elapsed"]])
    }
  }
  best
}

make_panel <- function(n_units, n_periods, missing_share, seed = 7) {
  set.seed(seed)
  d <- expand.grid(geo = seq_len(n_units), week = seq_len(n_periods))
  if (missing_share > 0) d <- d[-sample(nrow(d), round(missing_share * nrow(d))), ]
  n <- nrow(d)
  u <- rnorm(n)
  d$z <- rnorm(n)
  d$x <- rnorm(n)
  d$grp <- 0.7 * d$z + u + rnorm(n) + d$geo / n_units
  d$sales <- 1.5 * d$grp + d$x + d$geo / 100 + sin(d$week) + u + rnorm(n)
  d
}

# Largest absolute difference of coefficients and of standard errors,
# relative to the standard errors.
agreement <- function(ours, theirs) {
  b <- coef(theirs)
  names(b) <- sub("^fit_", "", names(b))
  s <- se(theirs)
  names(s) <- names(b)
  k <- names(coef(ours))
  c(coef = max(abs(coef(ours) - b[k]) / s[k]),
    se = max(abs(sqrt(diag(vcov(ours))) - s[k]) / s[k]))
}

# --- 1. iv_fe() with two fixed effects on 1,000,000 rows ---------------------
d <- make_panel(20000, 52, 0.04)
f_iv <- sales ~ x | geo + week | grp ~ z
spec_formula <- sales ~ 0 + x + grp + z | geo + week
rows <- list()
for (th in 1:2) {
  mkt_threads(th)
  setFixest_nthreads(th)
  tm <- race(list(ours = quote(iv_fe(f_iv, d)), panel = quote(mkt_panel(spec_formula, d)),
                  fx = quote(feols(f_iv, d, cluster = ~geo)),
                  fx_tight = quote(feols(f_iv, d, cluster = ~geo, fixef.tol = 3e-12))))
  t_ours <- tm[["ours"]]
  t_panel <- tm[["panel"]]
  t_fx <- tm[["fx"]]
  t_fx_tight <- tm[["fx_tight"]]
  ours <- iv_fe(f_iv, d)
  ag <- agreement(ours, feols(f_iv, d, cluster = ~geo))
  ag_tight <- agreement(ours, feols(f_iv, d, cluster = ~geo, fixef.tol = 3e-12))
  rows[[th]] <- data.frame(
    threads = th, rows = nrow(d), iv_fe = t_ours, of_which_panel = t_panel,
    feols = t_fx, feols_tight = t_fx_tight,
    speedup = t_fx / t_ours, speedup_tight = t_fx_tight / t_ours,
    coef_diff_se = ag[["coef"]], se_rel_diff = ag[["se"]],
    coef_diff_se_tight = ag_tight[["coef"]], se_rel_diff_tight = ag_tight[["se"]])
}
cat("iv_fe() vs feols(y ~ x | unit + time | d ~ z, cluster = ~unit), 20,000 units x 52 weeks, 4% cells missing\n")
cat("(speedup = feols time / iv_fe time; feols_tight uses fixef.tol = 3e-12; differences in standard errors)\n")
print(do.call(rbind, rows), digits = 3, row.names = FALSE)

# The split of iv_fe()'s time: the panel layer, then the estimator's core.
mkt_threads(1)
Rprof(tf <- tempfile(), interval = 0.005)
for (i in 1:3) iv_fe(f_iv, d)
Rprof(NULL)
prof <- summaryRprof(tf)$by.total
share <- function(f) if (f %in% rownames(prof)) prof[f, "total.pct"] else 0
cat(sprintf("\nProfile (1 thread): panel %.0f%%, demeaning kernel %.0f%%, cluster cross-products %.0f%%, rest %.0f%%\n",
            share("\"mkt_panel\""), share("\"cpp_demean_grid\""), share("\"cpp_cluster_gram\""),
            100 - share("\"mkt_panel\"") - share("\"cpp_demean_grid\"") - share("\"cpp_cluster_gram\"")))

# --- 2. smaller and sparser panels, IV and dose-response -----------------------
mkt_threads(2)
setFixest_nthreads(1)
rows <- list()
for (size in list(c(500, 52, 0), c(2000, 52, 0.05), c(5000, 104, 0.05))) {
  d <- make_panel(size[1], size[2], size[3])
  lab <- sprintf("%d x %d, %d%% missing (%s rows)", size[1], size[2], round(100 * size[3]),
                 format(nrow(d), big.mark = ","))
  tm <- race(list(iv = quote(iv_fe(f_iv, d)), iv_fx = quote(feols(f_iv, d, cluster = ~geo)),
                  dr = quote(suppressWarnings(dose_response(sales ~ grp + x | geo + week, d))),
                  dr_fx = quote(feols(sales ~ grp + x | geo + week, d, cluster = ~geo))))
  t_iv <- tm[["iv"]]
  t_iv_fx <- tm[["iv_fx"]]
  t_dr <- tm[["dr"]]
  t_dr_fx <- tm[["dr_fx"]]
  ag <- agreement(iv_fe(f_iv, d), feols(f_iv, d, cluster = ~geo, fixef.tol = 3e-12))
  rows[[length(rows) + 1L]] <- data.frame(
    panel = lab, iv_fe = t_iv, feols_iv = t_iv_fx, iv_speedup = t_iv_fx / t_iv,
    dose_response = t_dr, feols_ols = t_dr_fx, dose_speedup = t_dr_fx / t_dr,
    iv_coef_diff_se = ag[["coef"]])
}
cat("\nSmaller panels (mktcausal 2 threads, fixest 1):\n")
print(do.call(rbind, rows), digits = 3, row.names = FALSE)
cat("fixest", as.character(packageVersion("fixest")), "\n")
