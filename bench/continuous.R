# Timings of iv_fe() and dose_response() against fixest::feols() on the same
# unbalanced panels, in one run. fixest is installed in a private library for
# benchmarking only; the package never needs it. Run from the package root
# after installing mktcausal:
#   Rscript bench/continuous.R
# Results are copied by hand into bench/RESULTS.md.
.libPaths(c("/tmp/peers-continuous", .libPaths()))
suppressPackageStartupMessages({
  library(mktcausal)
  library(fixest)
})
setFixest_nthreads(1)

source(file.path("bench", "time_it.R"))

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

rows <- list()
for (size in list(c(500, 52, 0), c(2000, 52, 0.05), c(5000, 104, 0.05))) {
  d <- make_panel(size[1], size[2], size[3])
  lab <- sprintf("%d units x %d weeks, %d%% cells missing (%s rows)", size[1], size[2],
                 round(100 * size[3]), format(nrow(d), big.mark = ","))
  t_iv <- time_it(iv_fe(sales ~ x | geo + week | grp ~ z, d))
  t_iv_fx <- time_it(feols(sales ~ x | geo + week | grp ~ z, d, cluster = ~geo,
                           fixef.tol = 3e-12))
  t_dr <- time_it(suppressWarnings(dose_response(sales ~ grp + x | geo + week, d)))
  t_dr_fx <- time_it(feols(sales ~ grp + x | geo + week, d, cluster = ~geo, fixef.tol = 3e-12))
  a <- coef(iv_fe(sales ~ x | geo + week | grp ~ z, d))[["grp"]]
  b <- coef(feols(sales ~ x | geo + week | grp ~ z, d, cluster = ~geo, fixef.tol = 3e-12))[["fit_grp"]]
  rows[[length(rows) + 1L]] <- data.frame(
    panel = lab, iv_fe = t_iv, feols_iv = t_iv_fx, iv_ratio = t_iv / t_iv_fx,
    dose_response = t_dr, feols_ols = t_dr_fx, dose_ratio = t_dr / t_dr_fx,
    iv_abs_diff = abs(a - b))
}
out <- do.call(rbind, rows)
print(out, digits = 3, row.names = FALSE)
cat("fixest", as.character(packageVersion("fixest")), "\n")
