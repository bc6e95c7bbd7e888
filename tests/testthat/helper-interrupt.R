# Interrupt tests: run `code` in a child R process, send it SIGINT (what
# Esc or Ctrl-C sends) once it is busy inside `code`, and return how many
# seconds it took to stop. `setup` runs first and is not timed; the child
# says when it starts `code`, and the signal follows `delay` seconds later.
seconds_to_stop <- function(code, setup = "", delay = 1, timeout = 60) {
  script <- tempfile(fileext = ".R")
  on.exit(unlink(script), add = TRUE)
  writeLines(c("suppressPackageStartupMessages(library(mktcausal))", setup,
               "cat('busy\\n'); flush(stdout())", code,
               "cat('finished\\n')"), script)
  rscript <- file.path(R.home("bin"), "Rscript")
  p <- processx::process$new(rscript, script, stdout = "|", stderr = "|")
  on.exit(if (p$is_alive()) p$kill(), add = TRUE)
  started <- Sys.time()
  out <- ""
  while (!grepl("busy", out, fixed = TRUE)) {
    if (!p$is_alive() || difftime(Sys.time(), started, units = "secs") > timeout) {
      stop("the child R process did not start its work: ", p$read_all_error())
    }
    p$poll_io(100)
    out <- paste0(out, p$read_output())
  }
  Sys.sleep(delay)
  if (!p$is_alive()) stop("`code` finished before the interrupt; give it more work")
  sent <- Sys.time()
  p$interrupt()
  p$wait(timeout * 1000)
  took <- as.numeric(difftime(Sys.time(), sent, units = "secs"))
  if (p$is_alive()) return(Inf)
  took
}
