# Benchmarks of counterfactual() and ife() against gsynth, timed in the same
# run. gsynth lives in a private library only (it is never a dependency):
#   Rscript bench/ife.R            (from the package root, mktcausal installed)
# The CRAN archive (gsynth 1.2.1) was unreachable here, so the peer is the
# current gsynth (1.4.0, a wrapper of fect).
.libPaths(c("/work/peers", "/tmp/peers-ife", .libPaths()))
suppressPackageStartupMessages(library(mktcausal))
have_gsynth <- requireNamespace("gsynth", quietly = TRUE)
if (have_gsynth) suppressPackageStartupMessages(library(gsynth))
mkt_threads(1)

source(file.path("bench", "time_it.R"))

sim <- read.csv(file.path("..", "shared", "data", "gsynth_simdata.csv"))
res <- list()

# 1. simdata: cross-validation over r = 0..5 and 200 bootstrap replications.
res$sim_mkt <- time_it({
  set.seed(1)
  counterfactual(Y ~ D + X1 + X2 | id + time, sim, r_max = 5, inference = "bootstrap",
                 n_draws = 200)
})
if (have_gsynth) {
  res$sim_gsynth <- time_it(suppressMessages(capture.output(
    gsynth(Y ~ D + X1 + X2, data = sim, index = c("id", "time"), force = "two-way",
           CV = TRUE, r = c(0, 5), se = TRUE, inference = "nonparametric", nboots = 200,
           parallel = FALSE, seed = 1))), reps = 1)
}

# 2. and 3. Large panels: N units x 100 periods, r = 3, 10% of units treated
# for the last 20 periods, two covariates, no standard errors.
big_panel <- function(N, Tn = 100, r = 3, seed = 1) {
  set.seed(seed)
  Fm <- matrix(rnorm(Tn * r), Tn, r)
  L <- matrix(rnorm(N * r), N, r)
  X1 <- matrix(rnorm(N * Tn), N, Tn)
  X2 <- matrix(rnorm(N * Tn), N, Tn) + L[, 1] %o% Fm[, 1]
  D <- matrix(0, N, Tn)
  D[seq_len(N / 10), (Tn - 19):Tn] <- 1
  Y <- 1 + X1 + 2 * X2 + L %*% t(Fm) + 3 * D + matrix(rnorm(N * Tn), N, Tn)
  data.frame(id = rep(seq_len(N), Tn), time = rep(seq_len(Tn), each = N),
             Y = as.vector(Y), D = as.vector(D), X1 = as.vector(X1), X2 = as.vector(X2))
}
d2 <- big_panel(2000)
res$n2000_mkt <- time_it(counterfactual(Y ~ D + X1 + X2 | id + time, d2, r = 3))
if (have_gsynth) {
  res$n2000_gsynth <- time_it(suppressMessages(capture.output(
    gsynth(Y ~ D + X1 + X2, data = d2, index = c("id", "time"), force = "two-way",
           CV = FALSE, r = 3, se = FALSE, parallel = FALSE))), reps = 1)
}
d20 <- big_panel(20000)
invisible(gc(reset = TRUE))
res$n20000_mkt <- time_it(counterfactual(Y ~ D + X1 + X2 | id + time, d20, r = 3), reps = 1)
res$n20000_ife <- time_it(ife(Y ~ D + X1 + X2 | id + time, d20, r = 3, inference = "none"), reps = 1)
# R's peak heap (Vcells and Ncells "max used") since the reset, in MB.
g <- gc()
res$n20000_peak_r_heap_mb <- sum(g[, ncol(g)])

out <- data.frame(task = names(res), seconds = round(unlist(res), 3))
print(out, row.names = FALSE)
if (have_gsynth) {
  cat(sprintf("simdata CV + 200 bootstraps: %.1fx faster than gsynth %s\n",
              res$sim_gsynth / res$sim_mkt, packageVersion("gsynth")))
  cat(sprintf("2,000 x 100, r = 3, no SE: %.1fx faster than gsynth\n",
              res$n2000_gsynth / res$n2000_mkt))
}
