# Benchmark of event_study(method = "sa") against fixest::sunab() on a
# balanced panel of 100,000 units x 20 periods (2 million rows), the same
# data in both. Run from the package root after installing mktcausal:
#   Rscript bench/event_study.R
# Each fit runs in its own R process under /usr/bin/time -v, so peak
# resident memory (and CPU time) is that of one fit; the processes for the
# two packages alternate, `MKT_BENCH_REPS` times each (default 3), and the
# best run of each is reported. A third kind of process only simulates the
# data, for the memory that the data alone take. The answers (event-time
# estimates and clustered standard errors) are compared at the end.
.libPaths(c("/work/peers", .libPaths()))
args <- commandArgs(trailingOnly = TRUE)

# Three adopting cohorts (periods 6, 11 and 16) and never-treated units: 57
# cohort x event-time cells. fixest's peak memory grows with the cells
# (about 11 GB with six cohorts, 18 GB with one cohort in every period from
# 5 on); mktcausal's does not. MKT_BENCH_COHORTS sets the cohorts.
sim_panel <- function(n = 1e5, n_periods = 20, seed = 1) {
  set.seed(seed)
  cohorts <- eval(parse(text = Sys.getenv("MKT_BENCH_COHORTS", "c(6, 11, 16)")))
  cohort <- sample(c(0, cohorts), n, replace = TRUE)
  d <- data.frame(unit = rep(seq_len(n), each = n_periods),
                  period = rep(seq_len(n_periods), times = n))
  d$cohort <- cohort[d$unit]
  d$post <- as.integer(d$cohort > 0 & d$period >= d$cohort)
  d$y <- stats::rnorm(n)[d$unit] + 0.05 * d$period +
    d$post * (0.5 + 0.05 * (d$period - d$cohort)) + stats::rnorm(nrow(d))
  # fixest codes never-treated units by a cohort outside the periods.
  d$cohort_fx <- ifelse(d$cohort > 0, d$cohort, 10000L)
  d
}

if (length(args) == 2L) {
  # One fit in this process: args = c(role, output file).
  d <- sim_panel()
  gc()
  role <- args[1]
  if (role == "data") {
    out <- list(elapsed = 0, cpu = 0)
  } else if (role == "mktcausal") {
    suppressPackageStartupMessages(library(mktcausal))
    mkt_threads(2)
    set.seed(1)
    t <- system.time(es <- event_study(y ~ post | unit + period, d, method = "sa"))
    td <- tidy(es)
    out <- list(elapsed = t[["elapsed"]], cpu = t[["user.self"]] + t[["sys.self"]],
                event = td$event, estimate = td$estimate, std.error = td$std.error)
  } else {
    suppressPackageStartupMessages(library(fixest))
    setFixest_nthreads(2)
    # Cluster-robust with only the G/(G-1) correction, as mktcausal reports.
    small <- tryCatch(ssc(adj = FALSE, cluster.adj = TRUE),
                      error = function(e) ssc(K.adj = FALSE, G.adj = TRUE))
    t <- system.time(fx <- feols(y ~ sunab(cohort_fx, period) | unit + period, d,
                                 cluster = ~unit, ssc = small))
    ct <- coeftable(fx)
    out <- list(elapsed = t[["elapsed"]], cpu = t[["user.self"]] + t[["sys.self"]],
                event = as.numeric(sub("period::", "", rownames(ct))),
                estimate = unname(ct[, 1]), std.error = unname(ct[, 2]))
  }
  saveRDS(out, args[2])
  quit(save = "no")
}

# Driver: runs the fits in separate processes and reports the best of each.
reps <- as.integer(Sys.getenv("MKT_BENCH_REPS", "3"))
script <- normalizePath(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1]))
run <- function(role) {
  out <- tempfile(fileext = ".rds")
  log <- tempfile()
  system2("/usr/bin/time", c("-v", file.path(R.home("bin"), "Rscript"), script, role, out),
          stdout = FALSE, stderr = log)
  txt <- readLines(log)
  field <- function(pattern) {
    as.numeric(sub(".*: ", "", grep(pattern, txt, value = TRUE, fixed = TRUE)[1]))
  }
  if (!file.exists(out)) stop("the ", role, " run failed:\n", paste(utils::tail(txt, 20), collapse = "\n"))
  res <- readRDS(out)
  res$peak_gb <- field("Maximum resident set size (kbytes)") / 1024^2
  res$process_cpu <- field("User time (seconds)") + field("System time (seconds)")
  res
}

data_only <- run("data")
runs <- list(mktcausal = list(), fixest = list())
for (r in seq_len(reps)) {
  for (role in names(runs)) runs[[role]][[r]] <- run(role)
}
best <- lapply(runs, function(rr) {
  c(elapsed = min(vapply(rr, `[[`, numeric(1), "elapsed")),
    cpu = min(vapply(rr, `[[`, numeric(1), "cpu")),
    peak_gb = min(vapply(rr, `[[`, numeric(1), "peak_gb")))
})
tab <- do.call(rbind, best)
cat(sprintf("event_study(method = \"sa\") vs fixest %s sunab(), 100,000 units x 20 periods (2e6 rows), cohorts %s, best of %d, %s\n",
            utils::packageVersion("fixest"), Sys.getenv("MKT_BENCH_COHORTS", "c(6, 11, 16)"),
            reps, Sys.time()))
print(round(tab, 3))
cat(sprintf("data alone: peak %.3f GB\n", data_only$peak_gb))
cat(sprintf("speed ratio (fixest / mktcausal): elapsed %.1fx, CPU %.1fx\n",
            tab["fixest", "elapsed"] / tab["mktcausal", "elapsed"],
            tab["fixest", "cpu"] / tab["mktcausal", "cpu"]))
cat(sprintf("peak memory ratio (mktcausal / fixest): %.2f (net of the data: %.2f)\n",
            tab["mktcausal", "peak_gb"] / tab["fixest", "peak_gb"],
            (tab["mktcausal", "peak_gb"] - data_only$peak_gb) /
              (tab["fixest", "peak_gb"] - data_only$peak_gb)))
a <- runs$mktcausal[[1]]
b <- runs$fixest[[1]]
i <- match(b$event, a$event)
cat(sprintf("max abs difference: estimates %.2e, standard errors %.2e (%d event times)\n",
            max(abs(a$estimate[i] - b$estimate)), max(abs(a$std.error[i] - b$std.error)),
            length(b$event)))
