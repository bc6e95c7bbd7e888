test_that("chunks follow n and chunk_size, and results are in order", {
  set.seed(1)
  out <- resample_chunks(10, function(idx) idx, chunk_size = 4)
  expect_equal(out, list(1:4, 5:8, 9:10))
})

test_that("the same seed gives the same draws sequentially and with 2 workers", {
  skip_on_cran()
  f <- function(idx) stats::runif(length(idx))
  set.seed(42)
  a <- unlist(resample_chunks(200, f, chunk_size = 25))
  set.seed(42)
  b <- unlist(resample_chunks(200, f, chunk_size = 25))
  expect_identical(a, b)
  oplan <- future::plan(future::multisession, workers = 2)
  on.exit(future::plan(oplan), add = TRUE)
  set.seed(42)
  c <- unlist(resample_chunks(200, f, chunk_size = 25))
  expect_identical(a, c)
  # the package never changes the user's plan
  expect_s3_class(future::plan(), "multisession")
})

test_that("the streams and the caller's generator match future.apply's", {
  # The sequential plan runs the chunks in process, with the streams that
  # future_lapply(future.seed = TRUE) gives them, and leaves the caller's
  # generator where future_lapply leaves it.
  f <- function(idx) stats::runif(length(idx))
  for (kind in c("Mersenne-Twister", "L'Ecuyer-CMRG")) {
    withr::local_seed(7, .rng_kind = kind)
    ours <- unlist(resample_chunks(90, f, chunk_size = 25))
    next_ours <- stats::runif(3)
    withr::local_seed(7, .rng_kind = kind)
    chunks <- list(1:25, 26:50, 51:75, 76:90)
    theirs <- unlist(future.apply::future_lapply(chunks, f, future.seed = TRUE))
    next_theirs <- stats::runif(3)
    expect_identical(ours, theirs)
    expect_identical(next_ours, next_theirs)
  }
})

test_that("explicit globals skip the scan and give the same draws on workers", {
  skip_on_cran()
  make_fun <- function(shift) function(idx) stats::rnorm(length(idx)) + shift
  f <- make_fun(10)
  set.seed(5)
  a <- unlist(resample_chunks(60, f, chunk_size = 20, globals = list()))
  oplan <- future::plan(future::multisession, workers = 2)
  on.exit(future::plan(oplan), add = TRUE)
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

test_that("progress is reported through progressr", {
  # progressr reports only where enabled (interactive sessions by default)
  withr::local_options(progressr.enable = TRUE)
  steps <- 0
  withCallingHandlers(
    resample_chunks(30, function(idx) idx, chunk_size = 10),
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
  expect_error(resample_chunks(10, identity, n_boot = 10), class = "mktcausal_error_unknown_argument")
})
