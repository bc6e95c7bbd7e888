test_that("prop99 has the documented shape and treatment", {
  d <- prop99
  expect_identical(dim(d), c(1209L, 8L))
  expect_identical(as.integer(table(d$state)), rep(31L, 39L))
  expect_identical(range(d$year), c(1970L, 2000L))
  expect_identical(sort(unique(d$state[d$treated == 1])), "California")
  expect_identical(range(d$year[d$treated == 1]), c(1989L, 2000L))
  expect_equal(d$packspercapita[d$state == "California" & d$year == 1988], 90.1,
               tolerance = 1e-6)
  expect_false(anyNA(d$packspercapita))
  expect_identical(range(d$year[!is.na(d$lnincome)]), c(1972L, 1997L))
})

test_that("basque has the documented shape and treatment", {
  d <- basque
  expect_identical(dim(d), c(774L, 18L))
  expect_identical(range(d$year), c(1955L, 1997L))
  expect_identical(unique(d$regionno[d$terror == 1]), 17L)
  expect_identical(min(d$year[d$terror == 1]), 1970L)
  expect_identical(d$regionname[d$regionno == 17][1], "Basque Country (Pais Vasco)")
  expect_false(anyNA(d$gdpcap))
})
