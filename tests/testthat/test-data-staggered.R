test_that("mpdta has the documented shape and cohorts", {
  d <- mpdta
  expect_identical(dim(d), c(2500L, 6L))
  expect_identical(names(d), c("countyreal", "year", "first.treat", "treat", "lpop", "lemp"))
  expect_false(anyNA(d))
  expect_identical(sort(unique(d$year)), 2003:2007)
  expect_identical(as.integer(table(d$countyreal)), rep(5L, 500L))
  first <- d$first.treat[d$year == 2003]
  expect_identical(as.vector(table(first)), c(309L, 20L, 40L, 131L))
  expect_true(all(tapply(d$lpop, d$countyreal, function(v) length(unique(v))) == 1L))
  expect_equal(mean(d$lemp), 5.772516, tolerance = 1e-6)
})

test_that("castle has the documented shape and post cohorts", {
  d <- castle
  expect_identical(dim(d), c(550L, 64L))
  expect_identical(sort(unique(d$year)), 2000:2010)
  expect_identical(as.integer(table(d$state)), rep(11L, 50L))
  on <- d[d$post == 1, ]
  first_post <- tapply(on$year, on$state, min)
  expect_identical(as.vector(table(first_post)), c(1L, 13L, 4L, 2L, 1L))
  # post is absorbing
  expect_true(all(tapply(d$post, d$state, function(v) all(diff(v) >= 0))))
  expect_false(anyNA(d$l_homicide))
})
