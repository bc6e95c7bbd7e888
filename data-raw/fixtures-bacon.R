# Reference numbers from bacondecomp for tests/testthat/test-bacon.R. Run by
# hand from the package root with bacondecomp in a private library:
#   R_LIBS=/tmp/peers-staggered Rscript data-raw/fixtures-bacon.R
# bacondecomp is not a dependency of mktcausal; it is needed only here.
library(bacondecomp)

load("data/castle.rda")
castle_ref <- bacon(l_homicide ~ post, data = castle, id_var = "state", time_var = "year",
                    quietly = TRUE)

# A panel with always-treated units (treated from the first period), never
# treated units and three adoption cohorts, with dynamic effects.
set.seed(20261123)
n <- 60
n_periods <- 9
first <- sample(c(1, 3, 5, 8, Inf), n, replace = TRUE)
sim <- expand.grid(time = seq_len(n_periods), id = seq_len(n))
sim$post <- as.integer(sim$time >= first[sim$id])
sim$y <- rnorm(n)[sim$id] + 0.2 * sim$time +
  sim$post * (1 + 0.3 * pmax(0, sim$time - first[sim$id])) + rnorm(nrow(sim))
sim_ref <- bacon(y ~ post, data = sim, id_var = "id", time_var = "time", quietly = TRUE)

dir.create("tests/testthat/fixtures", showWarnings = FALSE, recursive = TRUE)
saveRDS(list(bacondecomp_version = as.character(utils::packageVersion("bacondecomp")),
             castle = as.data.frame(castle_ref), sim_data = sim, sim = as.data.frame(sim_ref)),
        "tests/testthat/fixtures/bacon.rds", version = 2)
