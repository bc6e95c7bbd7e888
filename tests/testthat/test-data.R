test_that("geo_sales has the documented shape", {
  d <- geo_sales
  expect_s3_class(d, "data.frame")
  expect_identical(dim(d), c(75504L, 8L))
  expect_identical(names(d), c("dma", "zone", "region", "week", "date",
                               "population", "sales", "spend"))
  expect_false(anyNA(d))
  expect_length(unique(d$dma), 200L)
  expect_length(unique(d$zone), 726L)
  expect_identical(sort(unique(d$week)), 1:104)
  expect_identical(range(d$date), as.Date(c("2024-01-01", "2025-12-22")))
  expect_true(all(weekdays(unique(d$date)) == weekdays(as.Date("2024-01-01"))))
  expect_identical(as.integer(table(d$zone)), rep(104L, 726L))
  expect_setequal(unique(d$region), c("Northeast", "Midwest", "South", "West"))
  expect_true(all(d$sales >= 0) && all(d$spend >= 0))
  expect_equal(d$sales, round(d$sales, 2))
})

test_that("zones nest in DMAs and size is time-invariant", {
  d <- geo_sales
  zd <- unique(d[c("dma", "zone")])
  expect_false(anyDuplicated(zd$zone) > 0)
  per_dma <- table(zd$dma)
  expect_true(all(per_dma >= 1 & per_dma <= 8))
  expect_true(all(tapply(d$region, d$dma, function(v) length(unique(v))) == 1L))
  expect_true(all(tapply(d$population, d$zone, function(v) length(unique(v))) == 1L))
  # Heavy-tailed DMA populations: the largest is many times the median.
  pop <- tapply(d$population[d$week == 1], d$dma[d$week == 1], sum)
  expect_gt(max(pop) / median(pop), 10)
})

test_that("DMA-level pre-period sales predict test-window sales (R^2 > 0.9)", {
  d <- geo_sales
  pre <- tapply(d$sales[d$week <= 78], d$dma[d$week <= 78], sum)
  post <- tapply(d$sales[d$week > 78], d$dma[d$week > 78], sum)
  r2 <- cor(pre, post)^2
  expect_gt(r2, 0.9)
  expect_equal(r2, 0.9987, tolerance = 1e-3)
  # Holiday peak: weeks 51-52 outsell the yearly average by over 20%.
  wk <- tapply(d$sales, d$week, sum)
  expect_gt(mean(wk[c(51, 52)]) / mean(wk[1:52]), 1.2)
})

test_that("the shipped data stay small once compressed", {
  # data/geo_sales.rda is saved with xz, as here
  bytes <- length(memCompress(serialize(geo_sales, NULL), type = "xz"))
  expect_lt(bytes, 1.5e6)
})
