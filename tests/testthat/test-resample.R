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
})
