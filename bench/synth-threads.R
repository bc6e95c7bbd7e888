# One thread against two in the placebo-in-space kernel of synth(), idle and
# with a busy background process. Run by hand from the repository root after
# installing the package:
#   Rscript bench/synth-threads.R
# Each comparison alternates 1 and 2 threads, run after run, and reports
# medians of the elapsed times (and of the CPU time, which shows any time
# lost spinning). "busy" starts one R process that spins for the duration of
# its section (a second core's worth of other work) and stops it by its id.
suppressPackageStartupMessages(library(mktcausal))
placebo_kernel <- get("cpp_synth_placebo", asNamespace("mktcausal"))

f99 <- packspercapita ~ treated | state + year
p99 <- mkt_panel(f99, prop99)
Y99 <- p99$Y[rownames(p99$Y) != "California", ]
set.seed(1)
big <- matrix(rnorm(600 * 60), 600) + outer(rnorm(600), cumsum(rnorm(60)))
bigger <- matrix(rnorm(1500 * 60), 1500) + outer(rnorm(1500), cumsum(rnorm(60)))

# Elapsed and CPU seconds of f() on 1 and on 2 threads, alternating.
compare <- function(f, reps) {
  el <- cpu <- matrix(NA_real_, reps, 2)
  for (i in seq_len(reps)) {
    for (th in 1:2) {
      t <- system.time(f(th))
      el[i, th] <- t[["elapsed"]]
      cpu[i, th] <- t[["user.self"]] + t[["sys.self"]]
    }
  }
  c(one = median(el[, 1]), two = median(el[, 2]), ratio = median(el[, 2]) / median(el[, 1]),
    cpu_one = median(cpu[, 1]), cpu_two = median(cpu[, 2]))
}

cases <- list(
  # The user's call: threads as mkt_threads() says, the kernel's own rule
  # (one thread below 0.1 s of work) deciding.
  "Prop 99 synth(inference = \"placebo\"), 100 calls" = list(function(th) {
    mkt_threads(th)
    for (i in 1:100) synth(p99, inference = "placebo")
  }, 11),
  # The kernel made to use its threads (serial_seconds < 0): the cost of a
  # parallel region on a loop of a few milliseconds.
  "Prop 99 kernel forced onto the threads, 20 calls" = list(function(th) {
    for (i in 1:20) placebo_kernel(Y99, 19L, 1e-12, 100000L, th, -1, NULL)
  }, 15),
  "600 donors x 50 pre-periods, kernel as chosen" = list(function(th) {
    placebo_kernel(big, 50L, 1e-12, 100000L, th, 0.1, NULL)
  }, 11),
  "1500 donors x 50 pre-periods, kernel as chosen" = list(function(th) {
    placebo_kernel(bigger, 50L, 1e-12, 100000L, th, 0.1, NULL)
  }, 3)
)

spin <- function() {
  processx::process$new(file.path(R.home("bin"), "Rscript"), c("-e", "repeat {}"))
}
for (load in c("idle", "busy")) {
  bg <- if (load == "busy") spin()
  cat(sprintf("\n%s (load average %s)\n", load, paste(readLines("/proc/loadavg", warn = FALSE))))
  for (nm in names(cases)) {
    r <- compare(cases[[nm]][[1]], cases[[nm]][[2]])
    cat(sprintf("  %-48s 1 thread %.3f s, 2 threads %.3f s: ratio %.2f (CPU %.3f vs %.3f s)\n",
                nm, r[["one"]], r[["two"]], r[["ratio"]], r[["cpu_one"]], r[["cpu_two"]]))
  }
  if (!is.null(bg)) bg$kill()
}
mkt_threads(2)
