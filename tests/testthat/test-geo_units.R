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
  u <- geo_units(tiny_panel(), cluster = "dma", time = "week", outcome = "sales",
                 size = "pop", covariates = c("region", "price"),
                 post = 4:5, unit = "zone")
  expect_s3_class(u, c("mkt_units", "data.frame"), exact = TRUE)
  expect_identical(attr(u, "id"), "cluster")
  expect_identical(attr(u, "pre"), 1:3)
  expect_identical(u$cluster, c("A", "B"))
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
  expect_identical(names(u), c("cluster", "n_units", "size", "region", "price",
                               "outcome_total", "outcome_mean", "outcome_trend",
                               "outcome_sd", "per_capita_mean", "post_total",
                               "post_mean"))
})

test_that("defaults: size from the pre-period outcome, all times as pre", {
  u <- geo_units(tiny_panel(), "dma", "week", "sales", unit = "zone")
  expect_equal(u$size, u$outcome_total)
  expect_equal(u$outcome_total, c(33, 40))
  expect_false(any(c("post_total", "per_capita_mean") %in% names(u)))
  # Each zone as its own cluster needs no unit column.
  z <- geo_units(tiny_panel(), "zone", "week", "sales", size = "pop", pre = 2:4)
  expect_identical(z$n_units, c(1L, 1L, 1L))
  expect_equal(z$outcome_total, c(9, 10, 24))
  expect_equal(z$outcome_trend, c(1, 1, -0.5))
})

test_that("without a unit column, rows of a cluster-period are its units", {
  d <- tiny_panel()
  named <- geo_units(d, "dma", "week", "sales", size = "pop",
                     covariates = c("region", "price"), post = 4:5, unit = "zone")
  anon <- geo_units(d, "dma", "week", "sales", size = "pop",
                    covariates = c("region", "price"), post = 4:5)
  expect_null(attr(anon, "unit_col"))
  attr(named, "unit_col") <- NULL
  expect_equal(anon, named)
  # A unit missing in some periods: the named unit still counts once.
  gap <- d[-c(1, 2), ]
  expect_warning(g <- geo_units(gap, "dma", "week", "sales", size = "pop"),
                 class = "mktcausal_warning_size_varies")
  expect_equal(g$size, c(400, 50))
  expect_equal(geo_units(gap, "dma", "week", "sales", size = "pop", unit = "zone")$size,
               c(400, 50))
  # Unit a1 has pre rows only in week 3, so its price mean there is 3.
  expect_equal(geo_units(gap, "dma", "week", "sales", size = "pop", covariates = "price",
                         post = 4:5, unit = "zone")$price,
               c((100 * 3 + 300 * 4) / 400, 7))
})

test_that("row order, tibble and data.table inputs give the same table", {
  d <- tiny_panel()
  ref <- geo_units(d, "dma", "week", "sales", size = "pop", post = 4:5, unit = "zone")
  shuffled <- d[c(15, 3, 7, 1, 12, 9, 2, 14, 4, 11, 6, 13, 8, 5, 10), ]
  expect_identical(geo_units(shuffled, "dma", "week", "sales", size = "pop",
                             post = 4:5, unit = "zone"), ref)
  skip_if_not_installed("tibble")
  expect_identical(geo_units(tibble::as_tibble(d), "dma", "week", "sales",
                             size = "pop", post = 4:5, unit = "zone"), ref)
  skip_if_not_installed("data.table")
  expect_identical(geo_units(data.table::as.data.table(d), "dma", "week", "sales",
                             size = "pop", post = 4:5, unit = "zone"), ref)
})

test_that("Date times and missing outcomes are handled", {
  d <- tiny_panel()
  d$date <- as.Date("2024-01-01") + 7 * (d$week - 1)
  u <- geo_units(d, "dma", "date", "sales", post = as.Date("2024-01-22") + c(0, 7),
                 unit = "zone")
  expect_equal(u$outcome_trend, c(2, -0.5))   # per period, not per day
  d$sales[2] <- NA
  expect_warning(
    u2 <- geo_units(d, "dma", "week", "sales", post = 4:5, unit = "zone"),
    class = "mktcausal_warning_dropped_rows"
  )
  expect_equal(u2$outcome_total, c(12, 27))
})

test_that("bad input gets classed errors naming the column", {
  d <- tiny_panel()
  expect_error(geo_units(rbind(d, d[4, ]), "dma", "week", "sales"),
               class = "mktcausal_error_duplicated_rows")
  expect_error(geo_units(rbind(d, d[1, ]), "dma", "week", "sales", unit = "zone"),
               class = "mktcausal_error_duplicated_rows")
  bad <- d
  bad$dma[3] <- NA
  expect_error(geo_units(bad, "dma", "week", "sales", unit = "zone"),
               class = "mktcausal_error_missing_values")
  expect_error(geo_units(d, "market", "week", "sales"),
               class = "mktcausal_error_missing_column")
  expect_error(geo_units(d, "dma", "week", "revenue", unit = "zone"),
               regexp = "revenue", class = "mktcausal_error_missing_column")
  bad <- d
  bad$sales <- as.character(bad$sales)
  expect_error(geo_units(bad, "dma", "week", "sales", unit = "zone"),
               regexp = "sales", class = "mktcausal_error_non_numeric")
  expect_error(geo_units(d, "dma", "week", "sales", post = 5:6, unit = "zone"),
               class = "mktcausal_error_bad_window")
  expect_error(geo_units(d, "dma", "week", "sales", pre = 0:3, unit = "zone"),
               class = "mktcausal_error_bad_window")
  expect_error(geo_units(d, "dma", "week", "sales", pre = 1:4, post = 4:5, unit = "zone"),
               class = "mktcausal_error_bad_window")
  expect_error(geo_units(d, "dma", "week", "sales", post = 1:2, unit = "zone"),
               class = "mktcausal_error_bad_window")
  bad <- d
  bad$region[2] <- "S"
  expect_error(geo_units(bad, "dma", "week", "sales", covariates = "region", unit = "zone"),
               regexp = "A", class = "mktcausal_error_varies_within_unit")
  bad <- d
  bad$pop[2] <- 101
  expect_error(geo_units(bad, "dma", "week", "sales", size = "pop", unit = "zone"),
               regexp = "a1", class = "mktcausal_error_varies_within_unit")
  bad <- d
  bad$dma[5] <- "B"
  expect_error(geo_units(bad, "dma", "week", "sales", unit = "zone"),
               class = "mktcausal_error_not_nested")
  expect_error(geo_units(d, "dma", "week", "sales", covariates = "size", unit = "zone"),
               class = "mktcausal_error_bad_argument")
  late <- rbind(d, data.frame(region = "S", dma = "C", zone = "c1", week = 5, pop = 10,
                              price = 1, sales = 3))
  expect_warning(u <- geo_units(late, "dma", "week", "sales", post = 4:5, unit = "zone"),
                 class = "mktcausal_warning_no_pre_data")
  expect_true(is.na(u$outcome_mean[3]))
  expect_error(geo_units(as.list(d), "dma", "week", "sales"),
               class = "mktcausal_error_bad_data")
  expect_error(geo_units(d, c("dma", "zone"), "week", "sales"),
               class = "mktcausal_error_bad_argument")
})

test_that("compare_clusterings reports the closed-form size trade-off", {
  cmp <- compare_clusterings(geo_sales, c(DMA = "dma", zone = "zone"),
                             time = "week", outcome = "sales",
                             size = "population", post = 79:104)
  expect_identical(cmp$clustering, c("DMA", "zone"))
  expect_identical(cmp$n_clusters, c(200L, 726L))
  u <- geo_units(geo_sales, "dma", "week", "sales", size = "population",
                 post = 79:104, unit = "zone")
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
  expect_error(compare_clusterings(geo_sales, c(DMA = "dma"), "week", "sales"),
               class = "mktcausal_error_bad_argument")
  expect_error(compare_clusterings(geo_sales, c(DMA = "market"), "week", "sales",
                                   post = 79:104),
               class = "mktcausal_error_missing_column")
})
