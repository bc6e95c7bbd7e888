# Candidates per second of the multi-cell re-randomization kernel on ONE
# thread: 3 cells (control and two treated cells of 70) on 210 clusters with
# 3 covariates, without and with 3 strata. The acceptance probability is so
# small that no candidate passes, so every search runs to `max_candidates`
# and the time is that of a fixed number of candidates. Also the two-arm
# kernel on the same clusters for comparison: on a busy machine the ratio
# of the two is steadier than either figure. Run from the repository root
# after installing the package:
#   Rscript bench/rerandomize_cells.R
suppressPackageStartupMessages(library(mktcausal))
mkt_threads(1)
cat(sprintf("Run of %s on %s (%d cores), R %s, 1 thread\n", format(Sys.time()),
            Sys.info()[["nodename"]], parallel::detectCores(), getRversion()))

set.seed(2024)
M <- 210
d <- data.frame(id = sprintf("g%03d", 1:M), x1 = rnorm(M), x2 = rexp(M), x3 = runif(M),
                region = rep(c("a", "b", "c"), each = 70))
n_cand <- 5e6

# Best of three runs, by elapsed time and by the CPU time of this process
# (on a machine shared with other work the CPU time is what the kernel
# itself took; the elapsed time includes waiting for a core).
run <- function(label, ...) {
  times <- vapply(1:3, function(i) {
    gc(FALSE)
    t <- system.time(tryCatch(
      rerandomize(d, ~ x1 + x2 + x3, accept = 1e-300, max_candidates = n_cand,
                  n_draws = 100, id = "id", ...),
      mktcausal_error_no_acceptable_assignment = function(e) NULL
    ))
    c(t[["elapsed"]], t[["user.self"]] + t[["sys.self"]])
  }, numeric(2))
  elapsed <- min(times[1, ])
  cpu <- min(times[2, ])
  cat(sprintf("%-36s %s candidates: %5.2f million/s elapsed, %5.2f million/s CPU\n", label,
              format(n_cand, big.mark = ",", scientific = FALSE), n_cand / elapsed / 1e6, n_cand / cpu / 1e6))
}

run("3 cells (70/70/70), no strata", n_treated = c(heavy_up = 70, go_dark = 70))
run("3 cells (70/70/70), 3 strata", n_treated = c(heavy_up = 70, go_dark = 70),
    strata = "region")
run("3 cells (40/40/130), no strata", n_treated = c(heavy_up = 40, go_dark = 40))
run("4 cells (52/52/53/53), no strata", n_treated = c(a = 52, b = 53, c = 53))
run("2 arms (105/105), no strata", n_treated = 105)
