#' Number of threads used by the compiled loops
#'
#' `mkt_threads()` reports the number of threads the C++ loops use;
#' `mkt_threads(n)` sets it for the session (it is stored in the option
#' `mktcausal.threads`). The default is two threads, capped by the number of
#' cores and by the environment variable `OMP_THREAD_LIMIT`, and one thread
#' under `R CMD check`. Inside the workers of a parallel [future::plan()]
#' the setting is passed on when it was set with `mkt_threads(n)`; otherwise
#' each worker gets its share of the cores (at least one thread), so that
#' workers times threads do not exceed the cores. The setting is a maximum:
#' a loop too small to gain from threads runs on one, and a loop uses no more
#' threads than the cores other processes leave free when it starts (on
#' Linux), so that two threads are never slower than one on a busy machine.
#' Results never depend on the number of threads: each block of work has its
#' own random stream derived from a seed drawn from R.
#'
#' @param n Number of threads to use from now on, or `NULL` to only report.
#' @param ... Must be empty.
#' @return The number of threads in force (invisibly when setting).
#' @examples
#' mkt_threads()
#' @export
mkt_threads <- function(n = NULL, ...) {
  check_dots(...)
  if (!is.null(n)) {
    n <- check_count(n, "n", min = 1)
    options(mktcausal.threads = n)
    return(invisible(n))
  }
  opt <- getOption("mktcausal.threads")
  if (!is.null(opt)) return(as.integer(opt))
  default_threads()
}

default_threads <- function() {
  if (nzchar(Sys.getenv("_R_CHECK_LIMIT_CORES_")) ||
      nzchar(Sys.getenv("_R_CHECK_PACKAGE_NAME_"))) {
    return(1L)
  }
  n <- min(2L, physical_cores(), na.rm = TRUE)
  limit <- suppressWarnings(as.integer(Sys.getenv("OMP_THREAD_LIMIT")))
  if (!is.na(limit) && limit > 0) n <- min(n, limit)
  max(1L, as.integer(n))
}

# Threads for a compiled loop of `work` basic operations (multiply-adds):
# mkt_threads(), but one below `min_work`, where starting a parallel region
# costs as much as the work itself (the staggered bootstrap on mpdta ran at
# 0.47x with two threads on a busy core), and no more than the cores other
# processes leave free: on a 2-core machine with one core busy, two threads
# end up sharing the other core (the scheduler does not move the busy
# process) and run slower than one. Results never depend on it.
threads_for <- function(work = Inf, min_work = 1e7) {
  if (is.finite(work) && work < min_work) return(1L)
  n <- mkt_threads()
  if (n > 1L) n <- max(1L, min(n, free_cores()))
  as.integer(n)
}

# Cores not running another process at this moment: the logical cores less
# the running tasks other than this one (Linux: the fourth field of
# /proc/loadavg, "running/total"). Where that is not available, every core.
free_cores <- function() {
  cores <- logical_cores()
  line <- tryCatch(readLines("/proc/loadavg", n = 1L, warn = FALSE),
                   error = function(e) character(), warning = function(w) character())
  if (!length(line)) return(cores)
  fields <- strsplit(line, " ", fixed = TRUE)[[1]]
  running <- if (length(fields) >= 4) suppressWarnings(as.integer(sub("/.*", "", fields[4])))
  if (!length(running) || is.na(running)) return(cores)
  cores - max(0L, running - 1L)
}

# parallel::detectCores(logical = FALSE) runs a shell command on Linux (a
# fork of the whole R process, 2 ms on a quiet machine and 100 ms on a busy
# one); the number of cores does not change within a session, so it is
# asked once.
physical_cores <- local({
  cores <- NULL
  function() {
    if (is.null(cores)) cores <<- parallel::detectCores(logical = FALSE)
    cores
  }
})

logical_cores <- local({
  cores <- NULL
  function() {
    if (is.null(cores)) cores <<- max(1L, parallel::detectCores(logical = TRUE), na.rm = TRUE)
    cores
  }
})

# Threads for the compiled loops inside each future worker: the session's
# setting when the user chose one (mkt_threads(n)), else the cores shared
# out among the workers, at least one each, so that workers times threads do
# not exceed the cores by default.
worker_threads <- function() {
  opt <- getOption("mktcausal.threads")
  if (!is.null(opt)) return(as.integer(opt))
  workers <- suppressWarnings(as.numeric(future::nbrOfWorkers()))
  if (!is.finite(workers) || workers < 1) return(1L)
  max(1L, as.integer(floor(physical_cores() / workers)))
}
