test_that("a request larger than the memory limit is refused before any work", {
  withr::local_options(mktcausal.max_memory = 1e4)
  d <- expand.grid(unit = 1:50, time = 1:40)
  d$y <- 1
  err <- tryCatch(mkt_panel(y ~ 0 | unit + time, d), error = identity)
  expect_s3_class(err, "mktcausal_error_too_large")
  expect_match(conditionMessage(err), "50 units x 40 periods", fixed = TRUE)
  withr::local_options(mktcausal.max_memory = NULL)
  expect_s3_class(mkt_panel(y ~ 0 | unit + time, d), "mkt_panel")
})

test_that("memory sizes read as people write them", {
  expect_identical(mktcausal:::format_bytes(512), "512 bytes")
  expect_identical(mktcausal:::format_bytes(3 * 1024^3), "3 GB")
  expect_gt(mktcausal:::memory_available(), 0)
})
