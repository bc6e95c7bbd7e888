# The resampling layer: every placebo, bootstrap, permutation and simulation
# loop in the package that runs R code per replicate goes through
# resample_chunks().
#
# Replicates are cut into chunks whose boundaries depend only on `n_draws`
# and `chunk_size`, never on the plan or the number of workers. Each chunk
# gets its own L'Ecuyer-CMRG stream, derived here from the caller's
# .Random.seed exactly as future.apply derives its streams with
# `future.seed = TRUE` (stream k is the substream of the k-th stream), and
# the caller's generator moves on by the same two draws whatever the plan.
# So set.seed() fixes the answer whether the plan is sequential,
# multisession or a cluster. On the sequential plan (the default) the chunks
# run in this process without creating futures: a future costs about 10 ms
# of set-up however small the chunk, more than a whole placebo loop. On any
# other plan the chunks run through future.apply with these streams, and
# with `globals` given explicitly future does not scan the chunk function.
# Progress goes through progressr; the package never calls plan().

#' Run replicate loops in chunks on the user's future plan
#'
#' `resample_chunks()` is the engine behind the placebo, bootstrap,
#' permutation and simulation loops of mktcausal that run R code per
#' replicate. It is exported so that users can run their own simulations
#' with the same guarantees.
#'
#' The `n_draws` replicates are cut into chunks of `chunk_size`; `fun` is
#' called once per chunk with the indices of its replicates and should
#' return one result per chunk. Chunks run on the current [future::plan()]
#' (sequential unless the user chose otherwise; on the sequential plan they
#' run in the calling process without the overhead of creating futures),
#' report progress through [progressr::progressor()] when the user has asked
#' for it with [progressr::handlers()] or [progressr::with_progress()], and
#' draw random numbers from one L'Ecuyer-CMRG stream per chunk that depends
#' only on the seed set with [set.seed()] before the call: the same seed
#' gives the same results under any plan and any number of workers.
#'
#' @param n_draws Number of replicates.
#' @param fun A function of one argument, the integer indices of the
#'   replicates in a chunk. It may use R's random number generator.
#' @param chunk_size Replicates per chunk. It fixes the random streams, so
#'   keep it unchanged to reproduce earlier results.
#' @param label Text shown beside the progress bar.
#' @param globals `TRUE` to let future find the objects `fun` uses (a scan
#'   of its code), or a named list of those objects: then no scan is made.
#'   `fun` is shipped to the workers with its enclosing environment, so a
#'   function created inside another function needs `globals = list()`.
#'   Passed to [future.apply::future_lapply()] as `future.globals`; unused on
#'   the sequential plan.
#' @param packages Packages the workers attach (mktcausal always), passed as
#'   `future.packages`.
#' @param ... Must be empty.
#' @return A list with one element per chunk, in order.
#' @examples
#' set.seed(1)
#' draws <- resample_chunks(1000, function(idx) rnorm(length(idx)),
#'                          chunk_size = 250)
#' length(unlist(draws))
#' @export
resample_chunks <- function(n_draws, fun, chunk_size = 250L, label = "replicates",
                            globals = TRUE, packages = NULL, ...) {
  check_dots(...)
  n_draws <- check_count(n_draws, "n_draws", min = 1)
  chunk_size <- check_count(chunk_size, "chunk_size", min = 1)
  if (!is.function(fun)) {
    abort_mkt("bad_argument", "{.arg fun} must be a function of the replicate indices.")
  }
  if (!(isTRUE(globals) || (is.list(globals) && (!length(globals) || !is.null(names(globals)))))) {
    abort_mkt("bad_argument", c(
      "{.arg globals} must be {.code TRUE} or a named list of the objects {.arg fun} uses.",
      x = "You supplied {.obj_type_friendly {globals}}."))
  }
  starts <- seq.int(1L, n_draws, by = chunk_size)
  chunks <- lapply(starts, function(s) seq.int(s, min(n_draws, s + chunk_size - 1L)))
  streams <- chunk_streams(length(chunks))
  on.exit(assign(".Random.seed", streams$after, envir = globalenv()), add = TRUE)
  p <- progressr::progressor(steps = n_draws, label = label)
  if (inherits(future::plan(), "sequential")) {
    out <- vector("list", length(chunks))
    for (k in seq_along(chunks)) {
      assign(".Random.seed", streams$seeds[[k]], envir = globalenv())
      out[[k]] <- fun(chunks[[k]])
      p(amount = length(chunks[[k]]))
    }
    return(out)
  }
  run_chunk <- function(idx) {
    out <- fun(idx)
    p(amount = length(idx))
    out
  }
  future.apply::future_lapply(
    chunks, run_chunk,
    future.seed = streams$seeds, future.chunk.size = 1L,
    future.globals = globals, future.packages = unique(c("mktcausal", packages))
  )
}

# One L'Ecuyer-CMRG seed per chunk, made from the caller's generator as
# future.apply makes them with `future.seed = TRUE`: from the current state
# (switched to L'Ecuyer-CMRG first if need be), chunk k gets the substream of
# the k-th stream. `after` is the caller's state once the loop is done: the
# state before it advanced by two draws of sample.int(1), as future.apply
# leaves it, so code after a loop sees the same numbers under any plan.
chunk_streams <- function(n) {
  env <- globalenv()
  if (is.null(env[[".Random.seed"]])) stats::runif(1L)
  before <- env[[".Random.seed"]]
  s <- before
  if (!(length(s) == 7L && s[1] %% 10000L == 407L)) {
    kind <- RNGkind("L'Ecuyer-CMRG")[1]
    s <- env[[".Random.seed"]]
    RNGkind(kind)
    assign(".Random.seed", before, envir = env)
  }
  seeds <- vector("list", n)
  for (k in seq_len(n)) {
    seeds[[k]] <- parallel::nextRNGSubStream(s)
    s <- parallel::nextRNGStream(s)
  }
  sample.int(1L, 1L)
  sample.int(1L, 1L)
  list(seeds = seeds, after = env[[".Random.seed"]])
}

# A 64-bit seed for a C++ kernel, drawn from R's RNG (two 32-bit halves).
draw_cpp_seed <- function() {
  as.integer(sample.int(.Machine$integer.max, 2L) - 1L)
}
