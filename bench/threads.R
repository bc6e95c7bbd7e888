# One thread against two for the package's threaded kernels, on the machine
# as it is ("idle") and with one core kept busy by another process (an R
# busy loop started with processx: "loaded"). Two threads should never be
# slower than one; the ratio printed is the 1-thread time over the 2-thread
# time (above 1: two threads faster). Results are checked to be identical
# for both thread counts. Run from the repository root after installing the
# package; it takes about two minutes and writes bench/threads.log:
#   Rscript bench/threads.R
suppressPackageStartupMessages(library(mktcausal))
ns <- asNamespace("mktcausal")
log <- file.path("bench", "threads.log")
say <- function(...) {
  line <- sprintf(...)
  cat(line, "\n", sep = "")
  cat(line, "\n", sep = "", file = log, append = TRUE)
}
cat("", file = log)
say("Run of %s on %s (%d cores), R %s", format(Sys.time()), Sys.info()[["nodename"]],
    parallel::detectCores(), getRversion())

# --- the cases -----------------------------------------------------------------
set.seed(2024)
M <- 210
k <- 6
X <- matrix(rnorm(M * k), M, k, dimnames = list(NULL, paste0("x", 1:k)))
d <- data.frame(X, id = sprintf("g%03d", 1:M))
strata <- factor(rep("all", M))
alloc <- ns$allocate_treated(strata, M, 105, NULL)
spec <- ns$design_spec(X, strata, alloc, rep(1L, k), "mahalanobis")
spec$threshold <- stats::qchisq(0.01, k)
des <- withr::with_seed(1, rerandomize(d, ~ x1 + x2 + x3 + x4 + x5 + x6, n_treated = 105,
                                       accept = 0.01, id = "id", n_draws = 1e4))
d$treated <- des$treated
d$y <- drop(X %*% rep(0.5, k)) + rnorm(M) + 0.3 * d$treated
mpdta_post <- transform(mpdta, post = as.integer(first.treat > 0 & year >= first.treat))
fe_M <- matrix(rnorm(2e5 * 4), ncol = 4)
fe_groups <- list(factor(sample(2000, 2e5, TRUE)), factor(sample(100, 2e5, TRUE)))

# Large donor pools for the synthetic-control placebo kernel, where threads
# have enough work to pay for themselves (Prop 99 alone stays on one thread).
placebo_kernel <- ns$cpp_synth_placebo
big_pool <- matrix(rnorm(600 * 60), 600) + outer(rnorm(600), cumsum(rnorm(60)))

cases <- list(
  "rerandomize: one search, 4e6 candidates (none accepted)" = function()
    ns$run_search(spec, 1, 4e6, threshold = 0)$candidates,
  "rerandomize: 20,000 reference draws at p_a = 0.01 (one per replicate)" = function()
    ns$draw_assignments(spec, seq_len(2e4), c(1L, 2L), budget = 1e6)$assignments[, 2e4],
  "rerandomize(): the whole call (1e5 calibration draws, p_a = 0.01)" = function()
    withr::with_seed(3, rerandomize(d, ~ x1 + x2 + x3 + x4 + x5 + x6, n_treated = 105,
                                    accept = 0.01, id = "id"))$treated,
  "randomization_test(lin_t), 5,000 draws of each reference" = function()
    withr::with_seed(4, randomization_test(y ~ treated, d, design = des, statistic = "lin_t",
                                           n_draws = 5000))$estimates$p.value,
  "staggered(): multiplier bootstrap, mpdta, 999 draws" = function()
    withr::with_seed(5, staggered(lemp ~ post | countyreal + year, mpdta_post,
                                  n_draws = 999))$estimates$conf.low,
  "demeaning: 2e5 rows, 4 columns, 2 fixed effects" = function()
    ns$demean_fe(fe_M, fe_groups)[1:5],
  "synth(): placebo inference, prop99" = function()
    synth(packspercapita ~ treated | state + year, prop99, inference = "placebo")$estimates$p.value,
  "synth placebo kernel: 600 donors x 50 pre-periods" = function()
    placebo_kernel(big_pool, 50L, 1e-12, 100000L, ns$threads_for(), 0.1, NULL)$gaps,
  "ife(): gsynth_simdata, r = 2" = function()
    ife(Y ~ D + X1 + X2 | id + time, gsynth_simdata, r = 2)$estimates$estimate
)

# Elapsed and CPU seconds (user + system, all threads) of one call: the
# call is repeated until 0.25 s have passed, so that a call of a few
# milliseconds is not measured by the clock's resolution and one hiccup.
timed <- function(f) {
  gc(FALSE)
  calls <- 0L
  total <- c(elapsed = 0, cpu = 0)
  while (total[["elapsed"]] < 0.25) {
    t <- system.time(f())
    total <- total + c(t[["elapsed"]], t[["user.self"]] + t[["sys.self"]])
    calls <- calls + 1L
  }
  total / calls
}

# One and two threads alternate, five times each, so that a change in the
# machine's load hits both; the best elapsed time of each is kept, and the
# median CPU time.
run_cases <- function(label) {
  say("")
  say("== %s (load average %s)", label,
      paste(tryCatch(readLines("/proc/loadavg", warn = FALSE), error = function(e) "?")))
  say("%-70s %9s %9s %6s %9s", "kernel", "1 thread", "2 threads", "ratio", "CPU ratio")
  for (name in names(cases)) {
    f <- cases[[name]]
    res <- list()
    for (threads in 1:2) {
      mkt_threads(threads)
      res[[threads]] <- f()
    }
    times <- list(NULL, NULL)
    for (rep in 1:5) {
      for (threads in 1:2) {
        mkt_threads(threads)
        times[[threads]] <- rbind(times[[threads]], timed(f))
      }
    }
    t1 <- min(times[[1]][, "elapsed"])
    t2 <- min(times[[2]][, "elapsed"])
    cpu <- stats::median(times[[2]][, "cpu"]) / stats::median(times[[1]][, "cpu"])
    say("%-70s %8.3fs %8.3fs %6.2f %9.2f%s", name, t1, t2, t1 / t2, cpu,
        if (identical(res[[1]], res[[2]])) "" else "  (RESULTS DIFFER)")
  }
}

run_cases("idle: nothing else started by this script")

# One core kept busy by another R process for the loaded run.
busy <- processx::process$new(file.path(R.home("bin"), "Rscript"),
                              c("-e", "x <- 0; repeat x <- x + 1"))
Sys.sleep(2)
tryCatch(run_cases("loaded: an R busy loop on one core"), finally = busy$kill())
say("")
say("ratio = elapsed time with 1 thread / with 2 threads (>= 1: two threads no slower);")
say("CPU ratio = CPU time with 2 threads / with 1 thread (about 1: no CPU spent waiting).")
