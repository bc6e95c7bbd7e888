# Reference numbers from estimatr for tests/testthat/test-experiment_effect.R
# and test-ols_robust.R. Run by hand from the package root:
#   Rscript data-raw/fixtures-estimatr.R
# estimatr is not a dependency of mktcausal; it is needed only here.
library(estimatr)

set.seed(20261123)
n_clusters <- 60
clusters <- data.frame(
  geo = sprintf("g%02d", seq_len(n_clusters)),
  stratum = rep(c("a", "b", "c"), each = 20),
  pop = round(stats::runif(n_clusters, 1e4, 2e5))
)
clusters$pre_sales <- clusters$pop * stats::rnorm(n_clusters, 3, 0.4)
clusters$income <- stats::rnorm(n_clusters, 50, 8)
clusters$treated <- as.vector(unlist(lapply(split(seq_len(n_clusters), clusters$stratum),
                                            function(i) sample(rep(0:1, length(i) / 2)))))
clusters$spend <- clusters$treated * round(stats::runif(n_clusters, 800, 1200))
clusters$sales <- 1.1 * clusters$pre_sales + 40 * clusters$income +
  clusters$treated * (2e4 + 0.02 * clusters$pop) + stats::rnorm(n_clusters, 0, 2e4)

# Finer rows: five stores per geo, each with its own share of the geo.
rows_per <- 5
stores <- clusters[rep(seq_len(n_clusters), each = rows_per), c("geo", "stratum", "treated")]
stores$store <- seq_len(nrow(stores))
stores$pre_sales <- stats::rgamma(nrow(stores), 4, 4e-4)
stores$sales <- 1.05 * stores$pre_sales + stores$treated * 900 +
  rep(stats::rnorm(n_clusters, 0, 800), each = rows_per) + stats::rnorm(nrow(stores), 0, 600)
stores$w <- stats::runif(nrow(stores), 0.5, 2)
rownames(stores) <- NULL

# Non-compliance: 80 units, 75% of the assigned receive treatment, no controls.
compliers <- data.frame(assigned = rep(0:1, each = 40))
compliers$received <- compliers$assigned * stats::rbinom(80, 1, 0.75)
compliers$sales <- 10 + 4 * compliers$received + stats::rnorm(80, 0, 2)

keep <- c("estimate", "std.error", "df", "conf.low", "conf.high", "p.value")
row_of <- function(fit, term = "treated") {
  td <- tidy(fit)
  unlist(td[td$term == term, keep])
}

fixtures <- list(
  clusters = clusters,
  stores = stores,
  dim = row_of(difference_in_means(sales ~ treated, data = clusters)),
  dim_blocked = row_of(difference_in_means(sales ~ treated, data = clusters, blocks = stratum)),
  lin = row_of(lm_lin(sales ~ treated, covariates = ~ pre_sales + income, data = clusters)),
  lin_pre = row_of(lm_lin(sales ~ treated, covariates = ~ pre_sales, data = clusters)),
  hc2 = lm_robust(sales ~ treated + pre_sales + income, data = clusters, se_type = "HC2"),
  cr2 = row_of(lm_robust(sales ~ treated, data = stores, clusters = geo, se_type = "CR2")),
  cr2_lin = row_of(lm_lin(sales ~ treated, covariates = ~ pre_sales, data = stores,
                          clusters = geo, se_type = "CR2")),
  cr2_full = lm_robust(sales ~ treated + pre_sales, data = stores, clusters = geo,
                       se_type = "CR2"),
  hc2_weighted = lm_robust(sales ~ treated + pre_sales, data = stores, weights = w,
                           se_type = "HC2"),
  compliers = compliers,
  iv = row_of(iv_robust(sales ~ received | assigned, data = compliers, se_type = "HC2"),
              "received"),
  # Per-capita analysis: each geo counts once.
  dim_mean = row_of(difference_in_means(sales_pc ~ treated,
                                        data = transform(clusters, sales_pc = sales / pop))),
  estimatr_version = as.character(utils::packageVersion("estimatr"))
)
# Keep the regression fits as plain numbers so the fixture does not need estimatr.
for (nm in c("hc2", "cr2_full", "hc2_weighted")) {
  f <- fixtures[[nm]]
  fixtures[[nm]] <- list(coefficients = f$coefficients, vcov = f$vcov, df = f$df)
}

saveRDS(fixtures, "tests/testthat/fixtures/estimatr.rds", version = 2)
