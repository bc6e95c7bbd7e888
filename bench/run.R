# Benchmarks of the re-randomization core, run by `make bench` (after
# installing the package). Peers are installed here only; the package never
# needs them. Results and the machine are written to bench/RESULTS.md by hand
# from this script's output.
suppressPackageStartupMessages(library(mktcausal))
ns <- asNamespace("mktcausal")

source(file.path("bench", "time_it.R"))

set.seed(2024)
M <- 210
k <- 6
n1 <- 105
X <- matrix(rnorm(M * k), M, k, dimnames = list(NULL, paste0("x", 1:k)))
strata <- factor(rep("all", M))

# The idiomatic vectorised R version: a batch of complete randomizations as a
# 0/1 matrix, imbalances by one matrix product, Mahalanobis by rowSums.
r_candidates <- function(B, X, n1) {
  M <- nrow(X)
  Xc <- scale(X, scale = FALSE)
  Sinv <- solve(stats::cov(X))
  W <- matrix(0, B, M)
  picks <- vapply(seq_len(B), function(b) sample.int(M, n1), integer(n1))
  W[cbind(rep(seq_len(B), each = n1), as.vector(picks))] <- 1
  D <- (W %*% Xc) * (M / (n1 * (M - n1)))
  rowSums((D %*% Sinv) * D) * (n1 * (M - n1) / M)
}

# Half-and-half designs draw by coin flips and table sums; a lopsided one
# (42 of 210 treated) by the partial shuffle.
for (n_treat in c(n1, 42L)) {
  cat(sprintf("== Candidate search: M = 210 clusters, k = 6 covariates, %d treated\n", n_treat))
  alloc <- ns$allocate_treated(strata, M, n_treat, NULL)
  spec <- ns$design_spec(X, strata, alloc, rep(1L, k), "mahalanobis")
  method <- if (ns$run_search(spec, 1, 1, threshold = Inf)$coin_flips) "coin flips" else "partial shuffle"
  n_cpp <- 2e7
  cpp_rate <- function(threads) {
    secs <- time_it(ns$cpp_rerandomize_score(
      spec$z, spec$units, spec$start, spec$n_small, spec$small_treated, 0L,
      spec$block_start, c(1L, 2L), n_cpp, 4096L, threads
    ))
    n_cpp / secs
  }
  rate1 <- cpp_rate(1L)
  rate2 <- cpp_rate(2L)
  n_r <- 2e5
  r_secs <- time_it(r_candidates(n_r, X, n_treat), reps = 2)
  rate_r <- n_r / r_secs
  # Same statistic: E[M] = k in both.
  stopifnot(abs(mean(r_candidates(1e5, X, n_treat)) - k) < 0.1)
  cat(sprintf("C++ kernel (%s), 1 thread : %6.2f million candidates/s\n", method, rate1 / 1e6))
  cat(sprintf("C++ kernel (%s), 2 threads: %6.2f million candidates/s\n", method, rate2 / 1e6))
  cat(sprintf("vectorised R         : %6.3f million candidates/s\n", rate_r / 1e6))
  cat(sprintf("ratio C++ (1 thread) / R: %.0fx\n\n", rate1 / rate_r))
}

cat("\n== Randomization test conditional on acceptance (p_a = 0.01, 10,000 draws)\n")
d <- as.data.frame(X)
set.seed(1)
des <- rerandomize(d, ~ x1 + x2 + x3 + x4 + x5 + x6, n_treated = n1, accept = 0.01)
y <- drop(X %*% rep(0.5, k)) + rnorm(M) + 0.3 * des$treated
for (stat in c("diff_in_means", "lin_t")) {
  secs <- time_it(randomization_test(des, y, statistic = stat, n_draws = 10000), reps = 2)
  cat(sprintf("mktcausal randomization_test(%s): %.2f s (both reference distributions, CI included)\n",
              stat, secs))
}

if (requireNamespace("ri2", quietly = TRUE) && requireNamespace("randomizr", quietly = TRUE)) {
  # ri2 can condition on acceptance only through a user-built permutation
  # matrix; build it from mktcausal's accepted draws and time ri2 alone.
  perms <- ns$run_search(des$spec, want = 2000, max_candidates = 1e9)$assignments
  dat <- data.frame(Y = y, Z = des$treated)
  decl <- randomizr::declare_ra(N = M, m = n1, permutation_matrix = perms)
  ri2_secs <- time_it(ri2::conduct_ri(Y ~ Z, declaration = decl, sharp_hypothesis = 0,
                                      data = dat), reps = 1)
  ours <- time_it(randomization_test(des, y, n_draws = 2000), reps = 2)
  cat(sprintf("ri2 conduct_ri with 2,000 accepted permutations (p-value only): %.2f s\n", ri2_secs))
  cat(sprintf("mktcausal with 2,000 draws, drawing them too, plus CI and the unconditional test: %.2f s (%.0fx faster)\n",
              ours, ri2_secs / ours))
} else {
  cat("ri2/randomizr not installed: skipping the peer comparison\n")
}

cat("\nMachine:", R.version.string, "|", parallel::detectCores(), "cores |",
    utils::sessionInfo()$running, "\n")
