# Reference numbers from gsynth for tests/testthat/test-counterfactual.R.
# Run by hand from the package root with gsynth installed in a private
# library (it is not a dependency of mktcausal):
#   Rscript data-raw/fixtures-ife.R
# The CRAN archive of gsynth 1.2.1 was not reachable when this was made, so
# the peer is gsynth 1.4.0 (a wrapper of fect) with estimator "gsynth"
# (factors from never-treated units, Xu 2017) and estimator "ife" (EM over
# untreated cells). Both run with a tight tolerance so that the comparison
# measures the estimators, not the stopping rules.
.libPaths(c("/tmp/peers-ife", .libPaths()))
library(gsynth)
sim <- read.csv("../shared/data/gsynth_simdata.csv")
turnout <- read.csv("../shared/data/gsynth_turnout.csv")

run <- function(formula, data, index, estimator, EM = FALSE) {
  out <- gsynth(formula, data = data, index = index, force = "two-way", r = 2,
                CV = FALSE, se = FALSE, estimator = estimator, EM = EM,
                tol = 1e-12, parallel = FALSE)
  list(att = unname(out$att.avg), beta = unname(drop(out$beta)),
       att_unit = unname(out$att.avg.unit))
}
fixtures <- list(
  version = as.character(utils::packageVersion("gsynth")),
  simdata_gsynth = run(Y ~ D + X1 + X2, sim, c("id", "time"), "gsynth"),
  simdata_ife = run(Y ~ D + X1 + X2, sim, c("id", "time"), "ife", EM = TRUE),
  turnout_gsynth = run(turnout ~ policy_edr + policy_mail_in + policy_motor, turnout,
                       c("abb", "year"), "gsynth"),
  turnout_ife = run(turnout ~ policy_edr + policy_mail_in + policy_motor, turnout,
                    c("abb", "year"), "ife", EM = TRUE)
)
str(fixtures)
saveRDS(fixtures, "tests/testthat/fixtures/gsynth.rds")
