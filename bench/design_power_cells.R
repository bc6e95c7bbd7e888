# design_power() for a 3-cell design on geo_sales: control and two treated
# cells (heavy_up, go_dark) of the 200 DMAs (geo_sales' clusters, zones
# summed to DMAs), over 52 historical windows of 4 weeks and 9 effect sizes
# per cell, Lin's estimator on the design's covariates, 100 assignments from
# the design's rule (5,200 simulated experiments). Timed on one core
# (sequential plan, one thread) and on future::plan(multisession,
# workers = 2). Run from the repository root after installing the package:
#   Rscript bench/design_power_cells.R
suppressPackageStartupMessages(library(mktcausal))
source(file.path("bench", "time_it.R"))
mkt_threads(1)
cat(sprintf("Run of %s on %s (%d cores), R %s\n", format(Sys.time()),
            Sys.info()[["nodename"]], parallel::detectCores(), getRversion()))

units <- geo_units(sales ~ 0 | zone + week, geo_sales, randomize_by = "dma",
                   size = "population", pre = 1:52)
set.seed(1)
des <- rerandomize(units, ~ outcome_mean + outcome_trend,
                   n_treated = c(heavy_up = 50, go_dark = 50), accept = 0.05)
cat(sprintf("%d clusters: %s\n", length(des$ids),
            paste(sprintf("%s %d", names(table(des$cell)), table(des$cell)), collapse = ", ")))

effect <- list(heavy_up = seq(0, 0.04, by = 0.005), go_dark = -seq(0, 0.04, by = 0.005))
# The A/A warning (HC2 on heavy-tailed DMA totals) is part of the answer,
# not of the timing: it is printed once with the result below.
run <- function(n_draws = 100, chunk_size = 10) {
  set.seed(2)
  suppressWarnings(design_power(
    sales ~ 0 | zone + week, geo_sales, design = des, randomize_by = "dma",
    effect = effect, test_length = 4, n_windows = 52, method = "lin",
    n_draws = n_draws, chunk_size = chunk_size))
}
pw <- run()
stopifnot(nrow(tidy(pw)) == 2 * 9, pw$n_windows == 52)

future::plan(future::sequential)
one <- time_it(run(), reps = 3)
cat(sprintf("%-52s %6.2f s\n", "100 draws x 52 windows, 1 core (sequential, 1 thread)", one))
one_big <- time_it(run(1000, 100), reps = 1)
cat(sprintf("%-52s %6.2f s\n", "1000 draws x 52 windows, 1 core", one_big))

future::plan(future::multisession, workers = 2)
invisible(run(100, 50))  # start the workers
two <- time_it(run(100, 50), reps = 3)
cat(sprintf("%-52s %6.2f s\n", "100 draws, multisession (2 workers, chunks of 50)", two))
two_big <- time_it(run(1000, 500), reps = 1)
cat(sprintf("%-52s %6.2f s\n", "1000 draws, multisession (2 workers, chunks of 500)", two_big))
stopifnot(identical(tidy(run(100, 50)), tidy(pw)))
future::plan(future::sequential)
print(pw)
