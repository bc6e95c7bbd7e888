#' Number of threads used by the compiled loops
#'
#' `mkt_threads()` reports the number of threads the C++ loops use;
#' `mkt_threads(n)` sets it for the session (it is stored in the option
#' `mktcausal.threads`). The default is two threads, capped by the number of
#' cores and by the environment variable `OMP_THREAD_LIMIT`, and one thread
#' under `R CMD check`. Inside the workers of a parallel [future::plan()]
#' the setting is passed on when it was set with `mkt_threads(n)`; otherwise
#' each worker gets its share of the cores (at least one thread), so that
#' workers times threads do not exceed the cores. Results never depend on the number of threads: each
#' block of work has its own random stream derived from a seed drawn from R.
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
