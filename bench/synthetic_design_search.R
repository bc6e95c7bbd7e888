# Swap search against the exhaustive optimum on geo_sales (DMA totals,
# 104 weeks, 4-week test): treated sets of 2 and 3 among the first 60 DMAs
# and among all 200. Run by hand: R_LIBS=... Rscript bench/synthetic_design_search.R
library(mktcausal)
dma <- aggregate(sales ~ dma + week, geo_sales, sum)
run <- function(d, m) {
  set.seed(1)
  t_ex <- system.time(ex <- synthetic_design(sales ~ 0 | dma + week, d, n_treated = m,
                                             test_length = 4, search = "exhaustive",
                                             max_sets = 2e6))[["elapsed"]]
  t_sw <- system.time(sw <- synthetic_design(sales ~ 0 | dma + week, d, n_treated = m,
                                             test_length = 4, search = "swap"))[["elapsed"]]
  data.frame(markets = length(unique(d$dma)), n_treated = m, sets = choose(length(unique(d$dma)), m),
             exhaustive = ex$objective[["total"]], swap = sw$objective[["total"]],
             ratio = sw$objective[["total"]] / ex$objective[["total"]],
             same_set = setequal(ex$weights$market[ex$weights$role != "control" & ex$weights$role != "unused"],
                                 sw$weights$market[sw$weights$role != "control" & sw$weights$role != "unused"]),
             control_solves_exhaustive = ex$search$n_control_solves,
             seconds_exhaustive = t_ex, seconds_swap = t_sw)
}
small <- dma[dma$dma %in% sprintf("DMA%03d", 1:60), ]
out <- rbind(run(small, 2), run(small, 3), run(dma, 2), run(dma, 3))
print(out, digits = 4)
