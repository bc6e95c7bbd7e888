# Reference numbers from fixest for tests/testthat/test-event_study.R. Run by
# hand from the package root with fixest in the private library of peers:
#   Rscript data-raw/fixtures-event_study.R
# fixest is not a dependency of mktcausal; it is needed only here.
.libPaths(c("/work/peers", .libPaths()))
library(fixest)

load("data/mpdta.rda")
d <- mpdta
d$rel <- ifelse(d$first.treat > 0, d$year - d$first.treat, -1000)

# Sun and Abraham: never-treated cohort (first.treat = 0) as reference.
sa <- feols(lemp ~ sunab(first.treat, year) | countyreal + year, d, cluster = ~countyreal)
sa_tab <- coeftable(sa)
sa_event <- as.numeric(sub("year::", "", rownames(sa_tab)))

# Dynamic TWFE, event time -1 left out; cluster-robust with only the G/(G-1)
# correction, as mktcausal reports.
small <- tryCatch(ssc(adj = FALSE, cluster.adj = TRUE),
                  error = function(e) ssc(K.adj = FALSE, G.adj = TRUE))
tw <- feols(lemp ~ i(rel, ref = c(-1, -1000)) | countyreal + year, d, cluster = ~countyreal,
            ssc = small)
tw_tab <- coeftable(tw)
tw_event <- as.numeric(sub("rel::", "", rownames(tw_tab)))

dir.create("tests/testthat/fixtures", showWarnings = FALSE, recursive = TRUE)
saveRDS(list(
  fixest_version = as.character(utils::packageVersion("fixest")),
  sunab = data.frame(event = sa_event, estimate = unname(sa_tab[, 1]), std.error = unname(sa_tab[, 2])),
  twfe = data.frame(event = tw_event, estimate = unname(tw_tab[, 1]), std.error = unname(tw_tab[, 2]))
), "tests/testthat/fixtures/event_study.rds", version = 2)
