tiny_panel <- function() {
  data.frame(
    region = rep(c("N", "N", "S"), each = 5),
    dma = rep(c("A", "A", "B"), each = 5),
    zone = rep(c("a1", "a2", "b1"), each = 5),
    week = rep(1:5, 3),
    pop = rep(c(100, 300, 50), each = 5),
    price = c(1, 2, 3, 100, 100, rep(4, 5), rep(7, 5)),
    sales = c(1, 2, 3, 4, 5, 2, 2, 4, 4, 6, 10, 8, 9, 7, 6),
    stringsAsFactors = FALSE
  )
}

test_that("geo_units aggregates a tiny panel as computed by hand", {
  u <- geo_units(sales ~ 0 | zone + week, tiny_panel(), randomize_by = "dma", size = "pop",
                 covariates = ~ region + price, post = 4:5)
  expect_s3_class(u, c("mkt_units", "data.frame"), exact = TRUE)
  expect_identical(attr(u, "id"), "dma")
  expect_identical(attr(u, "randomize_by"), "dma")
  expect_identical(attr(u, "unit_col"), "zone")
  expect_identical(attr(u, "pre"), 1:3)
  expect_identical(u$dma, c("A", "B"))
  expect_identical(u$n_units, c(2L, 1L))
  expect_equal(u$size, c(400, 50))
  expect_identical(u$region, c("N", "S"))
  # Pre-period unit means (2 and 4) weighted by population 100 and 300.
  expect_equal(u$price, c((100 * 2 + 300 * 4) / 400, 7))
  # Cluster A's total series is 3, 4, 7 | 8, 11; B's is 10, 8, 9 | 7, 6.
  expect_equal(u$outcome_total, c(14, 27))
  expect_equal(u$outcome_mean, c(14 / 3, 9))
  expect_equal(u$outcome_trend, c(2, -0.5))
  expect_equal(u$outcome_sd, c(sqrt(2 / 3), sqrt(1.5)))
  expect_equal(u$outcome_sd[1], summary(lm(c(3, 4, 7) ~ I(1:3)))$sigma)
  expect_equal(u$per_capita_mean, c(14 / 3 / 400, 9 / 50))
  expect_equal(u$post_total, c(19, 13))
  expect_equal(u$post_mean, c(9.5, 6.5))
  expect_identical(names(u), c("dma", "n_units", "size", "region", "price",
                               "outcome_total", "outcome_mean", "outcome_trend",
                               "outcome_sd", "per_capita_mean", "post_total",
                               "post_mean"))
  # A panel built once can be passed in place of the formula.
  p <- mkt_panel(sales ~ 0 | zone + week, tiny_panel(), extra = c("dma", "pop", "region", "price"))
  expect_identical(geo_units(p, randomize_by = "dma", size = "pop",
                             covariates = ~ region + price, post = 4:5), u)
})

test_that("defaults: size from the pre-period outcome, all times as pre", {
  u <- geo_units(sales ~ 0 | zone + week, tiny_panel(), randomize_by = "dma")
  expect_equal(u$size, u$outcome_total)
  expect_equal(u$outcome_total, c(33, 40))
  expect_false(any(c("post_total", "per_capita_mean") %in% names(u)))
  # Without randomize_by each unit (zone) is its own cluster.
  z <- geo_units(sales ~ 0 | zone + week, tiny_panel(), size = "pop", pre = 2:4)
  expect_identical(attr(z, "id"), "zone")
  expect_identical(z$n_units, c(1L, 1L, 1L))
  expect_equal(z$outcome_total, c(9, 10, 24))
  expect_equal(z$outcome_trend, c(1, 1, -0.5))
  expect_identical(geo_units(sales ~ 0 | zone + week, tiny_panel(), randomize_by = "zone",
                             size = "pop", pre = 2:4), z)
})

test_that("a unit missing in some periods still counts once", {
  d <- tiny_panel()
  gap <- d[-c(1, 2), ]
  expect_equal(geo_units(sales ~ 0 | zone + week, gap, randomize_by = "dma", size = "pop")$size,
               c(400, 50))
  # Unit a1 has pre rows only in week 3, so its price mean there is 3.
  expect_equal(geo_units(sales ~ 0 | zone + week, gap, randomize_by = "dma", size = "pop",
                         covariates = ~ price, post = 4:5)$price,
               c((100 * 3 + 300 * 4) / 400, 7))
})

test_that("row order, tibble and data.table inputs give the same table", {
  d <- tiny_panel()
  f <- sales ~ 0 | zone + week
  ref <- geo_units(f, d, randomize_by = "dma", size = "pop", post = 4:5)
  shuffled <- d[c(15, 3, 7, 1, 12, 9, 2, 14, 4, 11, 6, 13, 8, 5, 10), ]
  expect_identical(geo_units(f, shuffled, randomize_by = "dma", size = "pop", post = 4:5), ref)
  skip_if_not_installed("tibble")
  expect_identical(geo_units(f, tibble::as_tibble(d), randomize_by = "dma", size = "pop",
                             post = 4:5), ref)
  skip_if_not_installed("data.table")
  expect_identical(geo_units(f, data.table::as.data.table(d), randomize_by = "dma",
                             size = "pop", post = 4:5), ref)
})

test_that("Date times and missing outcomes are handled", {
  d <- tiny_panel()
  d$date <- as.Date("2024-01-01") + 7 * (d$week - 1)
  u <- geo_units(sales ~ 0 | zone + date, d, randomize_by = "dma",
                 post = as.Date("2024-01-22") + c(0, 7))
  expect_equal(u$outcome_trend, c(2, -0.5))   # per period, not per day
  d$sales[2] <- NA
  expect_warning(
    u2 <- geo_units(sales ~ 0 | zone + week, d, randomize_by = "dma", post = 4:5),
    class = "mktcausal_warning_dropped_rows"
  )
  expect_equal(u2$outcome_total, c(12, 27))
})

test_that("bad input gets classed errors naming the column", {
  d <- tiny_panel()
  f <- sales ~ 0 | zone + week
  expect_error(geo_units(f, rbind(d, d[4, ]), randomize_by = "dma"),
               class = "mktcausal_error_duplicated_rows")
  expect_error(geo_units(f, rbind(d, d[1, ]), randomize_by = "dma"),
               class = "mktcausal_error_duplicated_rows")
  bad <- d
  bad$dma[3] <- NA
  expect_error(geo_units(f, bad, randomize_by = "dma"), class = "mktcausal_error_missing_values")
  expect_error(geo_units(f, d, randomize_by = "market"), class = "mktcausal_error_missing_column")
  expect_error(geo_units(revenue ~ 0 | zone + week, d, randomize_by = "dma"),
               regexp = "revenue", class = "mktcausal_error_missing_column")
  bad <- d
  bad$sales <- as.character(bad$sales)
  expect_error(geo_units(f, bad, randomize_by = "dma"),
               regexp = "sales", class = "mktcausal_error_non_numeric")
  expect_error(geo_units(f, d, randomize_by = "dma", post = 5:6),
               class = "mktcausal_error_bad_window")
  expect_error(geo_units(f, d, randomize_by = "dma", pre = 0:3),
               class = "mktcausal_error_bad_window")
  expect_error(geo_units(f, d, randomize_by = "dma", pre = 1:4, post = 4:5),
               class = "mktcausal_error_bad_window")
  expect_error(geo_units(f, d, randomize_by = "dma", post = 1:2),
               class = "mktcausal_error_bad_window")
  bad <- d
  bad$region[2] <- "S"
  expect_error(geo_units(f, bad, randomize_by = "dma", covariates = ~ region),
               regexp = "A", class = "mktcausal_error_varies_within_unit")
  bad <- d
  bad$pop[2] <- 101
  expect_error(geo_units(f, bad, randomize_by = "dma", size = "pop"),
               regexp = "a1", class = "mktcausal_error_varies_within_unit")
  zero <- d
  zero$pop <- 0
  expect_error(geo_units(f, zero, randomize_by = "dma", size = "pop"),
               regexp = "total .*pop.* of zero", class = "mktcausal_error_bad_size")
  expect_error(compare_clusterings(f, zero, randomize_by = c(DMA = "dma", zone = "zone"),
                                   size = "pop", post = 4:5),
               class = "mktcausal_error_bad_size")
  bad <- d
  bad$dma[5] <- "B"
  expect_error(geo_units(f, bad, randomize_by = "dma"), regexp = "a1",
               class = "mktcausal_error_not_nested")
  expect_error(geo_units(f, d, randomize_by = "dma", covariates = ~ size),
               class = "mktcausal_error_bad_argument")
  expect_error(geo_units(f, d, randomize_by = "dma", covariates = "region"),
               class = "mktcausal_error_bad_argument")
  expect_error(geo_units(f, d, randomize_by = "dma", covariates = ~ .),
               regexp = "one-sided formula of column names", class = "mktcausal_error_bad_argument")
  expect_error(geo_units(sales ~ pop | zone + week, d, randomize_by = "dma"),
               class = "mktcausal_error_bad_formula")
  late <- rbind(d, data.frame(region = "S", dma = "C", zone = "c1", week = 5, pop = 10,
                              price = 1, sales = 3))
  expect_warning(u <- geo_units(f, late, randomize_by = "dma", post = 4:5),
                 class = "mktcausal_warning_no_pre_data")
  expect_true(is.na(u$outcome_mean[3]))
  expect_error(geo_units(f, as.list(d), randomize_by = "dma"),
               class = "mktcausal_error_bad_data")
  expect_error(geo_units(f, d, randomize_by = c("dma", "zone")),
               class = "mktcausal_error_bad_argument")
  expect_error(geo_units(f, d, cluster = "dma"), regexp = "randomize_by",
               class = "mktcausal_error_unknown_argument")
})

test_that("compare_clusterings reports the closed-form size trade-off", {
  cmp <- compare_clusterings(sales ~ 0 | zone + week, geo_sales,
                             randomize_by = c(DMA = "dma", zone = "zone"),
                             size = "population", post = 79:104)
  expect_identical(cmp$clustering, c("DMA", "zone"))
  expect_identical(cmp$n_clusters, c(200L, 726L))
  u <- geo_units(sales ~ 0 | zone + week, geo_sales, randomize_by = "dma",
                 size = "population", post = 79:104)
  sd_post <- sd(u$post_total)
  r2 <- cor(u$post_total, u$outcome_total)^2
  expect_equal(cmp$r2[1], r2)
  expect_equal(cmp$mean_size[1], mean(u$size))
  expect_equal(cmp$mde_dim[1], (qt(0.975, 198) + qt(0.8, 198)) * sd_post * sqrt(4 / 200))
  expect_equal(cmp$mde_adj[1],
               (qt(0.975, 197) + qt(0.8, 197)) * sd_post * sqrt((1 - r2) * 4 / 200))
  expect_equal(cmp$mde_adj_pct[1], 100 * cmp$mde_adj[1] / mean(u$post_total))
  # Same population either way; more, smaller clusters detect smaller lifts.
  expect_equal(cmp$mean_size[1] * 200, cmp$mean_size[2] * 726)
  expect_lt(cmp$mde_adj_pct[2], cmp$mde_adj_pct[1])
  expect_lt(cmp$mde_dim_pct[2], cmp$mde_dim_pct[1])
  expect_gt(cmp$power_adj[1], 0.8)
  expect_error(compare_clusterings(sales ~ 0 | zone + week, geo_sales, c(DMA = "dma")),
               class = "mktcausal_error_bad_argument")
  expect_error(compare_clusterings(sales ~ 0 | zone + week, geo_sales, c(DMA = "market"),
                                   post = 79:104),
               class = "mktcausal_error_missing_column")
})
