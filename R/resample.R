# The resampling layer: every placebo, bootstrap, permutation and simulation
# loop in the package runs through resample_chunks().
#
# Replicates are cut into chunks whose boundaries depend only on `n` and
# `chunk_size`, never on the plan or the number of workers. Each chunk gets
# its own L'Ecuyer-CMRG stream from future.apply (`future.seed = TRUE`), which
# derives the streams from the caller's .Random.seed. So `set.seed()` fixes
# the answer whether the user's plan is sequential, multisession or a
# cluster. Progress goes through progressr; the package never calls plan().

#' Run replicate loops in chunks on the user's future plan
#'
#' `resample_chunks()` is the engine behind every placebo, bootstrap,
#' permutation and simulation loop in mktcausal. It is exported so that
#' users can run their own simulations with the same guarantees.
#'
#' The `n` replicates are cut into chunks of `chunk_size`; `fun` is called
#' once per chunk with the indices of its replicates and should return one
#' result per chunk. Chunks run on the current [future::plan()] (sequential
#' unless the user chose otherwise), report progress through
#' [progressr::progressor()] when the user has asked for it with
#' [progressr::handlers()] or [progressr::with_progress()], and draw random
#' numbers from streams that depend only on the seed set with [set.seed()]
#' before the call: the same seed gives the same results under any plan and
#' any number of workers.
#'
#' @param n Number of replicates.
#' @param fun A function of one argument, the integer indices of the
#'   replicates in a chunk. It may use R's random number generator.
#' @param chunk_size Replicates per chunk. It fixes the random streams, so
#'   keep it unchanged to reproduce earlier results.
#' @param label Text shown beside the progress bar.
#' @param globals,packages Passed to [future.apply::future_lapply()] as
#'   `future.globals` and `future.packages`.
#' @return A list with one element per chunk, in order.
#' @examples
#' set.seed(1)
#' draws <- resample_chunks(1000, function(idx) rnorm(length(idx)),
#'                          chunk_size = 250)
#' length(unlist(draws))
#' @export
resample_chunks <- function(n, fun, chunk_size = 250L, label = "replicates",
                            globals = TRUE, packages = NULL) {
  n <- check_count(n, "n", min = 1)
  chunk_size <- check_count(chunk_size, "chunk_size", min = 1)
  if (!is.function(fun)) {
    abort_mkt("bad_argument", "{.arg fun} must be a function of the replicate indices.")
  }
  starts <- seq.int(1L, n, by = chunk_size)
  chunks <- lapply(starts, function(s) seq.int(s, min(n, s + chunk_size - 1L)))
  p <- progressr::progressor(steps = n, label = label)
  run_chunk <- function(idx) {
    out <- fun(idx)
    p(amount = length(idx))
    out
  }
  future.apply::future_lapply(
    chunks, run_chunk,
    future.seed = TRUE, future.chunk.size = 1L,
    future.globals = globals, future.packages = unique(c("mktcausal", packages))
  )
}

# A 64-bit seed for a C++ kernel, drawn from R's RNG (two 32-bit halves).
draw_cpp_seed <- function() {
  as.integer(sample.int(.Machine$integer.max, 2L) - 1L)
}
