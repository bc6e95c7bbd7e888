geo_frame <- function(M = 24) {
  data.frame(
    region = rep(c("north", "south"), length.out = M),
    channel = rep(c("tv", "tv", "radio"), length.out = M),
    population = c(seq_len(M)) * 1000,
    stringsAsFactors = FALSE
  )
}

test_that("quantile bins split the size measure into equal groups", {
  d <- geo_frame(24)
  s <- stratify(d, size = "population", bins = 3)
  expect_s3_class(s, "mkt_strata")
  expect_identical(s$method, "quantile")
  expect_s3_class(s$stratum, "factor")
  expect_identical(length(s$stratum), 24L)
  expect_identical(as.integer(s$table), c(8L, 8L, 8L))
  expect_identical(as.character(s$stratum), rep(c("Q1", "Q2", "Q3"), each = 8))
  expect_identical(unname(s$n_treated), c(4L, 4L, 4L))
  expect_identical(unname(s$n_control), c(4L, 4L, 4L))
  expect_identical(names(s$n_treated), c("Q1", "Q2", "Q3"))
})

test_that("quantile bins are formed within each level of by", {
  d <- geo_frame(24)
  s <- stratify(d, by = "region", size = "population", bins = 2)
  expect_identical(levels(s$stratum), c("north:Q1", "north:Q2", "south:Q1", "south:Q2"))
  expect_identical(as.integer(s$table), rep(6L, 4))
  north <- d$region == "north"
  # The six smallest northern geos are in the first northern bin.
  small_north <- north & d$population <= sort(d$population[north])[6]
  expect_true(all(s$stratum[small_north] == "north:Q1"))
  expect_identical(s$stratum, stratify(d, by = ~ region, size = "population", bins = 2)$stratum)
})

test_that("exact strata cross the by columns", {
  d <- geo_frame(24)
  s <- stratify(d, by = c("region", "channel"), method = "exact")
  expect_identical(levels(s$stratum),
                   c("north:radio", "north:tv", "south:radio", "south:tv"))
  expect_identical(as.character(s$stratum), paste(d$region, d$channel, sep = ":"))
  expect_identical(as.integer(s$table), c(4L, 8L, 4L, 8L))
  expect_identical(unname(s$n_treated), c(2L, 4L, 2L, 4L))
  expect_identical(tidy(s),
                   data.frame(stratum = levels(s$stratum), n = c(4L, 8L, 4L, 8L),
                              n_treated = c(2L, 4L, 2L, 4L), n_control = c(2L, 4L, 2L, 4L)))
})

test_that("unequal prop_treated is allocated within strata", {
  d <- geo_frame(24)
  s <- stratify(d, by = "region", method = "exact", prop_treated = 0.25)
  expect_identical(unname(s$n_treated), c(3L, 3L))
  expect_identical(unname(s$n_control), c(9L, 9L))
})

mahal_pair_distance <- function(X, block) {
  S_inv <- solve(stats::cov(X))
  d <- vapply(split(seq_len(nrow(X)), block), function(i) {
    z <- X[i[1], ] - X[i[2], ]
    sqrt(drop(t(z) %*% S_inv %*% z))
  }, numeric(1))
  mean(d)
}

test_that("matched pairs are closer in Mahalanobis distance than random pairs", {
  set.seed(11)
  M <- 40
  d <- data.frame(pre_sales = rnorm(M, 100, 20))
  d$population <- 0.5 * d$pre_sales + rnorm(M, 0, 5)
  s <- stratify(d, method = "matched", covariates = ~ pre_sales + population)
  expect_identical(s$method, "matched")
  expect_identical(nlevels(s$stratum), 20L)
  expect_true(all(s$table == 2L))
  expect_identical(s$min_per_arm, 1L)
  expect_identical(unname(s$n_treated), rep(1L, 20))
  X <- as.matrix(d)
  matched <- mahal_pair_distance(X, s$stratum)
  random <- replicate(200, mahal_pair_distance(X, sample(rep(seq_len(20), 2))))
  expect_lt(matched, 0.5 * mean(random))
  expect_lt(matched, min(random))
})

test_that("matched pairs pick the obvious partners", {
  d <- data.frame(x = c(1, 10, 1.1, 10.2, 50, 50.5), z = c(0, 5, 0.1, 5.1, 9, 9.2))
  s <- stratify(d, method = "matched", covariates = ~ x + z)
  expect_identical(as.character(s$stratum), c("B1", "B2", "B1", "B2", "B3", "B3"))
})

test_that("matched blocks hold block_size clusters and leftovers join a block", {
  set.seed(3)
  d <- data.frame(a = rnorm(23), b = rnorm(23))
  s <- stratify(d, method = "matched", covariates = ~ a + b, block_size = 4)
  expect_identical(nlevels(s$stratum), 5L)
  expect_identical(sum(s$table), 23L)
  expect_identical(sort(as.integer(s$table))[1:4], rep(4L, 4))
  expect_identical(max(as.integer(s$table)), 7L)
  odd <- stratify(d, method = "matched", covariates = ~ a + b)
  expect_identical(sort(as.integer(odd$table)), c(rep(2L, 10), 3L))
})

test_that("over-stratification raises the classed error naming the strata", {
  d <- geo_frame(24)
  err <- expect_error(stratify(d, size = "population", bins = 8),
                      class = "mktcausal_error_strata_too_small")
  expect_identical(length(err$strata), 8L)
  expect_match(conditionMessage(err), "coarser bins")
  small <- geo_frame(12)
  expect_error(stratify(small, by = c("region", "channel"), method = "exact"),
               class = "mktcausal_error_strata_too_small")
  expect_error(stratify(d, method = "matched", covariates = ~ population,
                        block_size = 3),
               class = "mktcausal_error_strata_too_small")
  # Allowed with one per arm, but four strata of twelve clusters are many.
  expect_warning(
    s1 <- stratify(small, by = c("region", "channel"), method = "exact", min_per_arm = 1),
    class = "mktcausal_warning_many_strata"
  )
  expect_identical(as.integer(s1$table), c(2L, 4L, 2L, 4L))
})

test_that("more than M/6 strata raises the classed warning", {
  d <- geo_frame(24)
  expect_warning(stratify(d, size = "population", bins = 6),
                 class = "mktcausal_warning_many_strata")
  expect_no_warning(stratify(d, size = "population", bins = 4))
  expect_no_warning(stratify(d, method = "matched", covariates = ~ population))
})

test_that("bad inputs raise their classed errors", {
  d <- geo_frame(24)
  expect_error(stratify(d), class = "mktcausal_error_bad_argument")
  expect_error(stratify(d, method = "exact"), class = "mktcausal_error_bad_argument")
  expect_error(stratify(d, method = "matched"), class = "mktcausal_error_bad_argument")
  expect_error(stratify(d, size = "pop"), class = "mktcausal_error_missing_column")
  expect_error(stratify(d, by = "area", method = "exact"), class = "mktcausal_error_missing_column")
  expect_error(stratify(d, method = "matched", covariates = ~ income),
               class = "mktcausal_error_missing_column")
  expect_error(stratify(d, size = "region"), class = "mktcausal_error_non_numeric")
  expect_error(stratify(d, by = "population", method = "exact"),
               class = "mktcausal_error_bad_argument")
  na <- d
  na$region[1] <- NA
  expect_error(stratify(na, by = "region", method = "exact"), class = "mktcausal_error_missing_values")
  expect_error(stratify(as.list(d), size = "population"), class = "mktcausal_error_bad_data")
  expect_error(stratify(d, size = "population", prop_treated = 1.2),
               class = "mktcausal_error_bad_argument")
})

test_that("tibble and data.table inputs give the same strata", {
  d <- geo_frame(24)
  ref <- stratify(d, by = "region", size = "population", bins = 2)
  skip_if_not_installed("tibble")
  expect_identical(stratify(tibble::as_tibble(d), by = "region", size = "population", bins = 2), ref)
  skip_if_not_installed("data.table")
  expect_identical(stratify(data.table::as.data.table(d), by = "region", size = "population",
                            bins = 2), ref)
})

test_that("print shows counts and expected arm sizes; rerandomize takes the strata", {
  d <- geo_frame(24)
  s <- stratify(d, by = "region", method = "exact")
  expect_output(print(s), "2 strata of 24 clusters: exact strata on region")
  expect_output(print(s), "north 12         6         6")
  d$x <- rnorm(24)
  set.seed(5)
  des <- rerandomize(d, ~ x, strata = s, accept = 0.5, n_draws = 200)
  expect_identical(as.vector(tapply(des$treated, s$stratum, sum)), c(6L, 6L))
})

test_that("strata with a buffer report expected controls and pass the rule to rerandomize()", {
  sg <- sim_grid(8, 8, seed = 50)
  d <- sg$data
  d$region <- rep(c("west", "east"), each = 32)
  set.seed(50)
  s <- stratify(d, by = "region", method = "exact", prop_treated = 0.25,
                buffer = sg$adjacency, id = "id")
  tb <- tidy(s)
  expect_named(tb, c("stratum", "n", "n_treated", "n_control", "n_buffer"))
  expect_equal(tb$n_treated, c(8, 8))
  expect_equal(tb$n_control + tb$n_buffer, c(24, 24), tolerance = 1e-9)
  # Roughly (1 - 0.25)^5 of an interior cluster's neighbourhood stays untreated.
  expect_true(all(tb$n_control > 6 & tb$n_control < 14))
  set.seed(51)
  des <- rerandomize(d, ~ x1, strata = s, accept = 0.2, id = "id", n_draws = 500,
                     min_per_arm = 2)
  expect_identical(des$buffer$A, s$buffer$A)
  expect_true(all(tapply(des$arm == "control", d$region, sum) >= 2))
  set.seed(52)
  expect_error(stratify(d, by = "region", method = "exact", prop_treated = 0.5,
                        buffer = sg$dist, buffer_radius = 3, id = "id"),
               class = "mktcausal_error_buffer_too_wide", regexp = "east")
})

test_that("an id that is not a column is refused even without a buffer", {
  d <- data.frame(region = rep(c("a", "b"), 30), pop = 1:60)
  expect_error(stratify(d, by = "region", size = "pop", bins = 2, id = "nope"),
               class = "mktcausal_error_missing_column")
  expect_error(stratify(d, by = "region", size = "pop", bins = 2, id = TRUE),
               class = "mktcausal_error_bad_argument")
})
