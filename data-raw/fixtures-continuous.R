# Reference numbers from fixest for tests/testthat/test-iv_fe.R,
# test-dose_response.R and test-exposure_did.R. Run by hand from the package
# root with fixest installed in a private library:
#   Rscript data-raw/fixtures-continuous.R
# fixest is not a dependency of mktcausal; it is needed only here. Its
# demeaning tolerance is set near its floor (3e-12) so that its answers are
# exact to the precision the tests check (1e-8).
.libPaths(c("/tmp/peers-continuous", .libPaths()))
library(fixest)

set.seed(20261124)
# An unbalanced panel: 60 geos x 12 weeks with 50 cells missing.
panel <- expand.grid(geo = 1:60, week = 1:12)
panel <- panel[-sample(nrow(panel), 50), ]
rownames(panel) <- NULL
n <- nrow(panel)
panel$region <- panel$geo %% 9
panel$price <- rnorm(n)
panel$cost <- rnorm(n)
panel$cost2 <- rnorm(n)
u <- rnorm(n)
panel$grp <- 0.6 * panel$cost + 0.3 * panel$cost2 + u + rnorm(n) + panel$geo / 30
panel$sales <- 1.5 * panel$grp - 0.5 * panel$price + panel$geo / 10 +
  sin(panel$week) + 1.5 * u + rnorm(n)
panel$w <- runif(n, 0.5, 2)
panel$dose <- pmax(0, rnorm(n, 1 + panel$geo / 60, 1))
panel$exposure <- (panel$geo %% 10) / 10
panel$post <- as.integer(panel$week >= 8)
panel$y_exp <- panel$geo / 5 + panel$week / 3 + 2 * panel$exposure * panel$post + rnorm(n)

# Two endogenous variables: a second campaign channel with its own cost shifter.
panel$cost3 <- rnorm(n)
panel$search <- 0.8 * panel$cost3 + 0.5 * u + rnorm(n)
panel$sales2 <- panel$sales + 0.7 * panel$search

tol <- 3e-12
pick <- function(f) list(coef = coef(f), se = sqrt(diag(vcov(f))))
fixtures <- list(
  panel = panel,
  iv_cluster_unit = pick(feols(sales ~ price | geo + week | grp ~ cost + cost2, panel,
                               cluster = ~geo, fixef.tol = tol)),
  iv_cluster_region = pick(feols(sales ~ price | geo + week | grp ~ cost, panel,
                                 cluster = ~region, fixef.tol = tol)),
  iv_hetero_weights = pick(feols(sales ~ price | geo + week | grp ~ cost, panel,
                                 vcov = "hetero", weights = ~w, fixef.tol = tol)),
  iv_two_endogenous = pick(feols(sales2 ~ price | geo + week | grp + search ~ cost + cost2 + cost3,
                                 panel, cluster = ~geo, fixef.tol = tol)),
  iv_wald_first_stage = fitstat(feols(sales ~ price | geo + week | grp ~ cost + cost2, panel,
                                      cluster = ~geo, fixef.tol = tol), "ivwald")[[1]]$stat,
  dose_linear = pick(feols(sales ~ dose | geo + week, panel, cluster = ~geo, fixef.tol = tol)),
  dose_linear_cov = pick(feols(sales ~ dose + price | geo + week, panel, cluster = ~geo,
                               fixef.tol = tol)),
  exposure = pick(feols(y_exp ~ I(exposure * post) | geo + week, panel, cluster = ~geo,
                        fixef.tol = tol)),
  exposure_es = pick(feols(y_exp ~ i(week, exposure, ref = 7) | geo + week, panel,
                           cluster = ~geo, fixef.tol = tol)),
  fixest_version = as.character(utils::packageVersion("fixest"))
)
saveRDS(fixtures, "tests/testthat/fixtures/continuous.rds", version = 2)
