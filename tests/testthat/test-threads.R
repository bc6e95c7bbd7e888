test_that("a small loop runs on one thread and a loop never exceeds the setting", {
  threads_for <- mktcausal:::threads_for
  withr::local_options(mktcausal.threads = 2L)
  expect_identical(threads_for(1e3), 1L)
  expect_identical(threads_for(1e8, min_work = 1e9), 1L)
  n <- threads_for()
  expect_true(n %in% 1:2)
  withr::local_options(mktcausal.threads = 1L)
  expect_identical(threads_for(), 1L)
})

test_that("free cores count the running processes other than this one", {
  free <- mktcausal:::free_cores()
  expect_true(is.numeric(free) && length(free) == 1L && !is.na(free))
  expect_lte(free, parallel::detectCores(logical = TRUE))
  skip_on_cran()
  skip_on_os(c("windows", "mac", "solaris"))
  skip_if_not(file.exists("/proc/loadavg"))
  # A busy child process on every core leaves none free (at most one, when
  # the scheduler has not started them all at the moment of reading).
  cores <- parallel::detectCores(logical = TRUE)
  skip_if(cores > 4)
  busy <- lapply(seq_len(cores), function(i) {
    processx::process$new(file.path(R.home("bin"), "Rscript"),
                          c("-e", "x <- 0; repeat x <- x + 1"))
  })
  on.exit(lapply(busy, function(p) p$kill()), add = TRUE)
  Sys.sleep(1.5)
  expect_lte(max(0, mktcausal:::free_cores()), 1)
  withr::local_options(mktcausal.threads = 2L)
  expect_identical(mktcausal:::threads_for(), 1L)
})
