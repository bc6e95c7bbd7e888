# The R layer against the peers, all in one run: the targets of the "one
# contract" work (bench/RESULTS.md, section "The R layer around the
# kernels"). Run from the repository root after installing the package, with
# the peers (quadprog, fixest, did, bench) in a private library:
#   R_LIBS=/work/peers Rscript bench/overhead.R
# Each script below times mktcausal and its peer side by side in the same
# process (bench/event_study.R runs each side in its own process to read its
# peak memory); this driver runs them one after another on the same machine
# and keeps their output in bench/overhead.log.
scripts <- c(
  panel = "bench/panel.R",             # mkt_panel() vs data.table::dcast()
  synth = "bench/synth.R",             # synth() and its placebo loop vs quadprog
  iv_fe = "bench/continuous.R",        # iv_fe() vs fixest::feols() IV
  event_study = "bench/event_study.R", # Sun-Abraham vs fixest::sunab(), time and memory
  staggered = "bench/staggered.R"      # staggered() vs did::att_gt()
)
rscript <- file.path(R.home("bin"), "Rscript")
log <- file.path("bench", "overhead.log")
cat(sprintf("Run of %s on %s (%d cores), R %s\n", format(Sys.time()),
            Sys.info()[["nodename"]], parallel::detectCores(), getRversion()),
    file = log)
for (name in names(scripts)) {
  cat(sprintf("\n===== %s: %s =====\n", name, scripts[[name]]), file = log, append = TRUE)
  started <- Sys.time()
  out <- system2(rscript, scripts[[name]], stdout = TRUE, stderr = TRUE)
  cat(out, sep = "\n", file = log, append = TRUE)
  cat(sprintf("[%s took %.0f s]\n", name, as.numeric(difftime(Sys.time(), started, units = "secs"))),
      file = log, append = TRUE)
  message(name, " done")
}
message("Output in ", log)
