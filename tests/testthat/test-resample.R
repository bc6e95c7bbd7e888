test_that("replicates come back in order, one result each; chunks when asked", {
  set.seed(1)
  expect_equal(resample_chunks(10, function(i) i, chunk_size = 4), as.list(1:10))
  set.seed(1)
  out <- resample_chunks(10, function(idx) idx, chunk_size = 4, each = "chunk")
  expect_equal(out, list(1:4, 5:8, 9:10))
})

test_that("the same seed gives the same draws for any chunk size", {
  f <- function(i) stats::runif(2)
  draws <- lapply(c(1, 50, 1000), function(cs) {
    set.seed(42)
    unlist(resample_chunks(200, f, chunk_size = cs))
  })
  expect_identical(draws[[1]], draws[[2]])
  expect_identical(draws[[1]], draws[[3]])
  expect_length(unique(draws[[1]]), 400L)
})

test_that("replicate i gets the stream future.apply gives element i", {
  # Replicate streams are jumped to directly in C++ (src/streams.h); they
  # equal parallel::nextRNGSubStream() of the i-th parallel::nextRNGStream(),
  # which is what future_lapply(future.seed = TRUE) uses, and the caller's
  # generator is left where future_lapply leaves it.
  f <- function(i) stats::runif(1)
  for (kind in c("Mersenne-Twister", "L'Ecuyer-CMRG")) {
    withr::local_seed(7, .rng_kind = kind)
    ours <- unlist(resample_chunks(90, f, chunk_size = 25))
    next_ours <- stats::runif(3)
    withr::local_seed(7, .rng_kind = kind)
    theirs <- unlist(future.apply::future_lapply(1:90, f, future.seed = TRUE))
    next_theirs <- stats::runif(3)
    expect_identical(ours, theirs)
    expect_identical(next_ours, next_theirs)
  }
  # Far into the sequence the jump equals stepping stream by stream.
  base <- c(10407L, 1806547166L, -983674937L, 643431772L, 1297226385L, -1699131666L, 1311452581L)
  s <- base
  for (i in 1:999) s <- parallel::nextRNGStream(s)
  expect_identical(mktcausal:::cpp_replicate_seeds(base, 1000, 2)[, 1],
                   parallel::nextRNGSubStream(s))
})

test_that("the same seed gives the same draws sequentially and with 2 workers", {
  skip_on_cran()
  f <- function(i) stats::runif(1)
  set.seed(42)
  a <- unlist(resample_chunks(200, f, chunk_size = 25))
  oplan <- future::plan(future::multisession, workers = 2)
  on.exit(future::plan(oplan), add = TRUE)
  withr::local_options(mktcausal.future_overhead = 0)
  set.seed(42)
  b <- unlist(resample_chunks(200, f, chunk_size = 7))
  expect_identical(a, b)
  # the package never changes the user's plan
  expect_s3_class(future::plan(), "multisession")
})

test_that("workers inherit the thread setting and share the cores otherwise", {
  skip_on_cran()
  oplan <- future::plan(future::multisession, workers = 2)
  on.exit(future::plan(oplan), add = TRUE)
  withr::local_options(mktcausal.threads = 3L, mktcausal.future_overhead = 0)
  seen <- unlist(resample_chunks(3, function(i) c(mkt_threads(), Sys.getpid()), chunk_size = 1))
  expect_identical(seen[c(1, 3, 5)], c(3L, 3L, 3L))
  expect_true(any(seen[c(4, 6)] != Sys.getpid()))
  withr::local_options(mktcausal.threads = NULL)
  seen <- unlist(resample_chunks(3, function(i) mkt_threads(), chunk_size = 1))
  expect_identical(seen[2:3], rep(mktcausal:::worker_threads(), 2))
  expect_lte(2 * seen[2], max(2L, parallel::detectCores(logical = FALSE)))
})

test_that("explicit globals skip the scan and give the same draws on workers", {
  skip_on_cran()
  make_fun <- function(shift) function(i) stats::rnorm(1) + shift
  f <- make_fun(10)
  set.seed(5)
  a <- unlist(resample_chunks(60, f, chunk_size = 20, globals = list()))
  oplan <- future::plan(future::multisession, workers = 2)
  on.exit(future::plan(oplan), add = TRUE)
  withr::local_options(mktcausal.future_overhead = 0)
  set.seed(5)
  b <- unlist(resample_chunks(60, f, chunk_size = 20, globals = list()))
  expect_identical(a, b)
  expect_gt(mean(a), 9)
  # A synth loop that runs R code per replicate gives the same answer too.
  set.seed(11)
  on_workers <- synth(packspercapita ~ treated | state + year, prop99, method = "sdid",
                      inference = "placebo", n_draws = 40)
  future::plan(future::sequential)
  set.seed(11)
  here <- synth(packspercapita ~ treated | state + year, prop99, method = "sdid",
                inference = "placebo", n_draws = 40)
  expect_identical(on_workers$draws, here$draws)
})

test_that("a small loop stays in process on a parallel plan", {
  skip_on_cran()
  oplan <- future::plan(future::multisession, workers = 2)
  on.exit(future::plan(oplan), add = TRUE)
  pids <- unlist(resample_chunks(20, function(i) Sys.getpid(), chunk_size = 2))
  expect_identical(unique(pids), Sys.getpid())
})

test_that("progress is reported through progressr", {
  # progressr reports only where enabled (interactive sessions by default)
  withr::local_options(progressr.enable = TRUE)
  steps <- 0
  withCallingHandlers(
    resample_chunks(30, function(i) i, chunk_size = 10),
    progression = function(cond) {
      if (identical(cond$type, "update")) steps <<- steps + cond$amount
    }
  )
  expect_equal(steps, 30)
})

test_that("bad arguments are classed errors", {
  expect_error(resample_chunks(0, identity), class = "mktcausal_error_bad_argument")
  expect_error(resample_chunks(10, "x"), class = "mktcausal_error_bad_argument")
  expect_error(resample_chunks(10, identity, chunk_size = 0), class = "mktcausal_error_bad_argument")
  expect_error(resample_chunks(10, identity, globals = "x"), class = "mktcausal_error_bad_argument")
  expect_error(resample_chunks(10, identity, each = "draw"), class = "mktcausal_error_bad_choice")
  expect_error(resample_chunks(10, identity, n_boot = 10), class = "mktcausal_error_unknown_argument")
})

test_that("an interrupt stops a replicate loop within a second", {
  skip_on_cran()
  skip_if_not_installed("processx")
  took <- seconds_to_stop(
    "resample_chunks(1e6, function(i) { Sys.sleep(0.001); i }, chunk_size = 1000)")
  expect_lt(took, 1)
})

test_that("packages must name installed packages", {
  f <- function(i) i
  expect_error(resample_chunks(10, f, packages = NA), class = "mktcausal_error_bad_argument")
  expect_error(resample_chunks(10, f, packages = ""), class = "mktcausal_error_bad_argument")
  expect_error(resample_chunks(10, f, packages = 1), class = "mktcausal_error_bad_argument")
  expect_error(resample_chunks(10, f, packages = "surely.not.a.package"),
               class = "mktcausal_error_missing_package")
  expect_length(resample_chunks(10, f, packages = "stats"), 10)
})
