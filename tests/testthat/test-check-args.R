test_that("counts beyond 32 bits are refused or kept exact, never NA", {
  f <- function(n) mktcausal:::check_count(n, "n")
  expect_identical(f(5), 5L)
  for (bad in list(2^31, 1e12, Inf, NA, 2.5, -1, "3", c(1, 2))) {
    expect_error(f(bad), class = "mktcausal_error_bad_argument")
  }
  err <- tryCatch(f(1e12), error = conditionMessage)
  expect_match(err, "2,147,483,647", fixed = TRUE)
  g <- function(n) mktcausal:::check_count(n, "n", large = TRUE)
  expect_identical(g(1e12), 1e12)
  expect_identical(g(7), 7L)
  expect_error(g(2^54), class = "mktcausal_error_bad_argument")
})

test_that("a choice error suggests the nearest option", {
  err <- tryCatch(mktcausal:::check_choice("sdi", c("sc", "sdid")), error = identity)
  expect_s3_class(err, "mktcausal_error_bad_choice")
  expect_match(conditionMessage(err), "sdid", fixed = TRUE)
})
