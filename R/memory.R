# Requests that cannot fit in memory are refused before any work starts,
# with a classed error, rather than failing inside compiled code (where an
# allocation failure in a parallel region would abort R). The limit is the
# memory the system reports as available (Linux's MemAvailable), or the
# option `mktcausal.max_memory` in bytes where the user sets one; where
# neither is known nothing is refused here.

memory_available <- function() {
  opt <- getOption("mktcausal.max_memory")
  if (!is.null(opt)) return(as.numeric(opt))
  info <- tryCatch(readLines("/proc/meminfo", n = 5L, warn = FALSE), error = function(e) character())
  line <- grep("^MemAvailable:", info, value = TRUE)
  if (!length(line)) return(Inf)
  kb <- suppressWarnings(as.numeric(gsub("[^0-9]", "", line)))
  if (is.na(kb)) Inf else kb * 1024
}

# `bytes`: what the step about to run will allocate; `what` names it in the
# message and `fix` says how to ask for less.
check_memory <- function(bytes, what, fix, call = rlang::caller_env()) {
  avail <- memory_available()
  if (is.finite(bytes) && bytes <= 0.8 * avail) return(invisible(TRUE))
  abort_mkt("too_large", c(
    "{what} needs about {format_bytes(bytes)} of memory, more than the {format_bytes(avail)} available.",
    i = fix,
    i = "Set {.code options(mktcausal.max_memory = <bytes>)} to change the limit."
  ), call = call)
}

format_bytes <- function(bytes) {
  if (!is.finite(bytes)) return("more than can be counted")
  units <- c("bytes", "KB", "MB", "GB", "TB", "PB")
  k <- min(length(units), max(1L, floor(log(max(bytes, 1), 1024)) + 1L))
  sprintf("%.3g %s", bytes / 1024^(k - 1L), units[k])
}
