# The resampling layer: every placebo, bootstrap, permutation and simulation
# loop in the package that runs R code per replicate goes through
# resample_chunks().
#
# Randomness: replicate i draws from its own L'Ecuyer-CMRG stream, the
# substream of stream i counted from a base state taken from the caller's
# .Random.seed (src/streams.h jumps to it directly). So the answer depends
# only on set.seed() and the replicate's index: not on the chunk size, the
# plan, the number of workers or of threads. The caller's generator moves on
# by the same two draws whatever happens inside.
#
# Chunks are only the unit of work and of progress: on the sequential plan
# (the default) they run in this process, one after another, without
# creating futures (a future costs about 10 ms of set-up however small the
# chunk); an interrupt stops the loop at once. On any other plan the chunks
# are grouped into one future per worker (a future on a cluster costs about
# 0.6 s), each worker runs its compiled loops on its share of the cores, and
# with `globals` given explicitly future does not scan the chunk function.
# Progress goes through progressr; the package never calls plan().

#' Run replicate loops in chunks on the user's future plan
#'
#' `resample_chunks()` is the engine behind the placebo, bootstrap,
#' permutation and simulation loops of mktcausal. It is exported so that
#' users can run their own simulations with the same guarantees.
#'
#' With `each = "replicate"` (the default) `fun` is called once per
#' replicate, with its index, and R's random number generator is set to that
#' replicate's own stream first: the results depend only on the seed set
#' with [set.seed()] and on the replicate's index, whatever `chunk_size`,
#' the [future::plan()] or the number of workers and threads. With
#' `each = "chunk"` `fun` is called once per chunk with the indices of its
#' replicates (for compiled loops that take a whole chunk); it must then
#' draw its random numbers from the indices (for example a seed drawn with
#' [set.seed()] beforehand and each replicate's index), not from R's
#' generator, whose stream in a chunk is that of the chunk's first replicate.
#'
#' Replicates are cut into chunks of `chunk_size`. On the sequential plan
#' (the default) the chunks run in the calling process; on other plans the
#' first chunk runs in the calling process and is timed, and the rest go to
#' the workers (grouped into one future per worker, each running the
#' package's compiled loops on its share of the cores, see [mkt_threads()])
#' unless they would take less time here than the futures cost (one second,
#' or the option `mktcausal.future_overhead`): a parallel plan is then never
#' much slower than the sequential one.
#' Progress is reported through [progressr::progressor()] when the user has
#' asked for it with [progressr::handlers()] or [progressr::with_progress()].
#'
#' @param n_draws Number of replicates.
#' @param fun A function of one argument: a replicate's index (`each =
#'   "replicate"`) or the indices of a chunk's replicates (`each =
#'   "chunk"`).
#' @param chunk_size Replicates per chunk: the unit of work sent to a worker
#'   and of progress reports. It does not change the results.
#' @param label Text shown beside the progress bar.
#' @param each `"replicate"` or `"chunk"`; see Details.
#' @param globals `TRUE` to let future find the objects `fun` uses (a scan
#'   of its code), or a named list of those objects: then no scan is made.
#'   `fun` is shipped to the workers with its enclosing environment, so a
#'   function created inside another function needs `globals = list()`.
#'   Passed to [future.apply::future_lapply()] as `future.globals`; unused on
#'   the sequential plan.
#' @param packages Packages the workers attach (mktcausal always), passed as
#'   `future.packages`.
#' @param ... Must be empty.
#' @return With `each = "replicate"`, a list with one element per replicate;
#'   with `each = "chunk"`, a list with one element per chunk; in order.
#'   An error raised by `fun` stops the run and reaches the caller as `fun`
#'   raised it (its class and message are the caller's own, not rewrapped).
#' @examples
#' set.seed(1)
#' draws <- resample_chunks(1000, function(i) rnorm(1), chunk_size = 250)
#' set.seed(1)
#' same <- resample_chunks(1000, function(i) rnorm(1), chunk_size = 7)
#' identical(draws, same)
#' @export
resample_chunks <- function(n_draws, fun, chunk_size = 250L, label = "replicates",
                            each = c("replicate", "chunk"), globals = TRUE,
                            packages = NULL, ...) {
  check_dots(...)
  n_draws <- check_count(n_draws, "n_draws", min = 1)
  chunk_size <- check_count(chunk_size, "chunk_size", min = 1)
  each <- check_choice(each)
  if (!is.function(fun)) {
    abort_mkt("bad_argument", "{.arg fun} must be a function of the replicate indices.")
  }
  if (!(isTRUE(globals) || (is.list(globals) && (!length(globals) || !is.null(names(globals)))))) {
    abort_mkt("bad_argument", c(
      "{.arg globals} must be {.code TRUE} or a named list of the objects {.arg fun} uses.",
      x = "You supplied {.obj_type_friendly {globals}}."))
  }
  if (!is.null(packages) && !(is.character(packages) && !anyNA(packages) &&
                               all(nzchar(packages)))) {
    abort_mkt("bad_argument", c(
      "{.arg packages} must be {.code NULL} or names of packages.",
      x = "You supplied {.obj_type_friendly {packages}}{if (is.character(packages)) ' with a missing or empty name' else ''}."))
  }
  missing_pkgs <- packages[!vapply(packages, requireNamespace, logical(1), quietly = TRUE)]
  if (length(missing_pkgs)) {
    abort_mkt("missing_package", c(
      "{.arg packages} names {length(missing_pkgs)} package{?s} that {?is/are} not installed: {.pkg {missing_pkgs}}.",
      i = "Install what is missing, or leave it out of {.arg packages}."))
  }
  starts <- seq.int(1L, n_draws, by = chunk_size)
  chunks <- lapply(starts, function(s) seq.int(s, min(n_draws, s + chunk_size - 1L)))
  rng <- replicate_rng()
  on.exit(assign(".Random.seed", rng$after, envir = globalenv()), add = TRUE)
  base <- rng$base
  p <- progressr::progressor(steps = n_draws, label = label)
  run_chunk <- function(idx) {
    seeds <- cpp_replicate_seeds(base, idx[1], if (each == "chunk") 1L else length(idx))
    env <- globalenv()
    if (each == "chunk") {
      assign(".Random.seed", seeds[, 1], envir = env)
      out <- fun(idx)
    } else {
      out <- vector("list", length(idx))
      for (j in seq_along(idx)) {
        assign(".Random.seed", seeds[, j], envir = env)
        out[j] <- list(fun(idx[j]))
      }
    }
    p(amount = length(idx))
    out
  }

  if (inherits(future::plan(), "sequential")) {
    out <- lapply(chunks, run_chunk)
  } else {
    # The first chunk runs here and is timed. When the rest would take less
    # here than sending it to the workers costs, it runs here too: so a
    # parallel plan is never much slower than the sequential one for a small
    # loop. The answer is the same either way (per-replicate streams).
    started <- proc.time()[["elapsed"]]
    first <- run_chunk(chunks[[1]])
    per_chunk <- proc.time()[["elapsed"]] - started
    rest <- chunks[-1]
    if (!length(rest) || per_chunk * length(rest) < future_overhead()) {
      out <- c(list(first), lapply(rest, run_chunk))
    } else {
      threads <- worker_threads()
      run_in_worker <- function(idx) {
        old <- options(mktcausal.threads = threads)
        on.exit(options(old), add = TRUE)
        run_chunk(idx)
      }
      # future.seed only keeps future from flagging the generator's use:
      # each chunk sets its replicates' own streams itself.
      out <- c(list(first), future.apply::future_lapply(
        rest, run_in_worker,
        future.seed = lapply(rest, function(idx) cpp_replicate_seeds(base, idx[1], 1L)[, 1]),
        future.globals = globals, future.packages = unique(c("mktcausal", packages))
      ))
    }
  }
  if (each == "replicate") out <- unlist(out, recursive = FALSE)
  out
}

# Seconds of work below which a loop is not worth sending to future's
# workers: about what creating and collecting futures costs on a cluster
# (0.6 s a future there; less on multisession). Settable with the option
# `mktcausal.future_overhead`.
future_overhead <- function() {
  as.numeric(getOption("mktcausal.future_overhead", 1))
}

# The base state of the replicate streams and the caller's state once the
# loop is done. The base is the caller's L'Ecuyer-CMRG state (the caller's
# generator is switched to L'Ecuyer-CMRG first if need be, as future.apply
# does); the caller's generator then moves on by two draws of
# sample.int(1), as future.apply leaves it, so code after a loop sees the
# same numbers under any plan.
replicate_rng <- function() {
  env <- globalenv()
  if (is.null(env[[".Random.seed"]])) stats::runif(1L)
  before <- env[[".Random.seed"]]
  base <- before
  if (!(length(base) == 7L && base[1] %% 10000L == 407L)) {
    kind <- RNGkind("L'Ecuyer-CMRG")[1]
    base <- env[[".Random.seed"]]
    RNGkind(kind)
    assign(".Random.seed", before, envir = env)
  }
  sample.int(1L, 1L)
  sample.int(1L, 1L)
  list(base = base, after = env[[".Random.seed"]])
}

# A 64-bit seed for a C++ kernel, drawn from R's RNG (two 32-bit halves).
draw_cpp_seed <- function() {
  as.integer(sample.int(.Machine$integer.max, 2L) - 1L)
}
