# Flagship analysis of a re-randomized geo experiment on the shipped data.
# Run by `make demo` after the package is installed; takes well under a minute.
# Because geo_sales carries no treatment, the lift is injected here, so every
# estimate below can be compared with a known truth.
suppressPackageStartupMessages(library(mktcausal))

out_dir <- file.path(getwd(), "mktcausal-demo")
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)
save_plot <- function(plot, name, width = 7, height = 4.5) {
  path <- file.path(out_dir, name)
  ggplot2::ggsave(path, plot, width = width, height = height, dpi = 120, bg = "white")
  cli::cli_alert_success("Wrote {.file {name}}")
}
true_lift <- 0.04
true_iroas <- 2
pre <- 1:78
post <- 79:90
started <- Sys.time()

cli::cli_h1("mktcausal flagship: a re-randomized geo experiment")

cli::cli_h2("1. Clusters: zones aggregated to DMAs")
units <- geo_units(sales ~ 0 | zone + week, geo_sales, randomize_by = "dma",
                   size = "population", covariates = ~ region, pre = pre)
cli::cli_text("{nrow(units)} DMAs from {length(unique(geo_sales$zone))} zones; pre-period weeks {min(pre)}-{max(pre)}.")
clusterings <- compare_clusterings(sales ~ 0 | zone + week, geo_sales,
                                   randomize_by = c(DMA = "dma", zone = "zone"),
                                   size = "population", pre = pre, post = post)
print(clusterings[, c("clustering", "n_clusters", "cv_size", "r2",
                      "mde_dim_pct", "mde_adj_pct")], digits = 3)
cli::cli_text("Zones give a smaller MDE only if treatment does not leak across zone borders.")

cli::cli_h2("2. Design: strata by region, re-randomization on pre-period features")
strata <- stratify(units, by = "region", method = "exact")
print(strata)
set.seed(20260101)
des <- rerandomize(units, ~ outcome_mean + outcome_trend + size,
                   n_treated = 100, strata = strata, accept = 0.01)
print(des)
print(balance(des), digits = 3)

cli::cli_h2("3. The experiment: +{100 * true_lift}% on treated DMAs in weeks {min(post)}-{max(post)}")
treated_dmas <- units$dma[des$treated == 1]
zones <- geo_sales
zones$treated <- as.integer(zones$dma %in% treated_dmas & zones$week %in% post)
# Extra spend is set so that the true incremental return is known as well.
baseline_sales <- zones$sales
zones$sales <- baseline_sales * (1 + true_lift * zones$treated)
zones$spend <- zones$spend + zones$treated * true_lift * baseline_sales / true_iroas

measured <- geo_units(sales ~ 0 | zone + week, zones, randomize_by = "dma",
                      size = "population", covariates = ~ region, pre = pre, post = post)
post_spend <- tapply(zones$spend[zones$week %in% post], zones$dma[zones$week %in% post], sum)
measured$spend_post <- as.numeric(post_spend[measured$dma])
measured$treated <- des$treated
truth_incremental <- sum(true_lift * baseline_sales[zones$treated == 1])
# The total estimand averages each DMA's effect over all 200 DMAs, treated or not.
truth_ate <- mean(true_lift * measured$post_total / (1 + true_lift * measured$treated))
cli::cli_text("Truth: incremental sales {round(truth_incremental)} (thousand $) in the treated arm; average effect per DMA {round(truth_ate, 1)}; iROAS {true_iroas}.")

cli::cli_h2("4. Checks before estimates")
# In long form the checks can also see when and where treatment was delivered.
# Units are identified by the design's id column, which geo_units() names after
# randomize_by ("dma").
zones$assigned <- as.integer(zones$dma %in% treated_dmas)
print(experiment_diagnostics(zones, "assigned", received = "treated", outcome = "sales",
                             design = des, time = "week", window = range(post)))

cli::cli_h2("5. Effect on test-window sales (total estimand)")
fit <- experiment_effect(post_total ~ treated, measured, design = des,
                         estimand = "total", spend = "spend_post")
print(fit)
lin <- tidy(fit)[tidy(fit)$term == "lin", ]
print(data.frame(quantity = c("average effect per DMA", "incremental sales", "iROAS"),
                 truth = c(truth_ate, truth_incremental, true_iroas),
                 lin_estimate = c(lin$estimate, lin$incremental, lin$iroas)), digits = 4)

cli::cli_h2("6. Randomization test conditional on the acceptance rule")
rt <- randomization_test(post_total ~ treated, measured, design = des, n_draws = 2000)
print(rt)

cli::cli_h2("7. Li-Ding-Rubin asymptotic interval")
print(rem_asymptotic(post_total ~ treated, measured, design = des), digits = 4)

cli::cli_h2("8. Plots")
save_plot(plot(des, type = "balance"), "balance.png")
save_plot(plot(des, type = "criterion"), "criterion.png")
save_plot(plot(rt), "randomization-distribution.png")
save_plot(plot(fit), "effect.png")
save_plot(plot(fit, type = "outcomes"), "outcomes-by-arm.png")
# Tile borders would swamp the colours of all 726 zones, so the heatmap
# shows the zones of 8 treated and 8 control DMAs.
shown <- c(head(treated_dmas, 8), head(setdiff(units$dma, treated_dmas), 8))
status <- plot_status(sales ~ treated | zone + week, zones[zones$dma %in% shown, ]) +
  ggplot2::theme(axis.text.y = ggplot2::element_text(size = 5)) +
  ggplot2::labs(title = "Treatment status: zones of 16 DMAs, treated in weeks 79-90")
save_plot(status, "treatment-status.png", height = 6)
mde <- rbind(
  data.frame(clustering = clusterings$clustering, estimator = "difference in means",
             mde_pct = clusterings$mde_dim_pct),
  data.frame(clustering = clusterings$clustering, estimator = "adjusted for pre-period sales",
             mde_pct = clusterings$mde_adj_pct)
)
cluster_plot <- ggplot2::ggplot(mde, ggplot2::aes(x = clustering, y = mde_pct, colour = estimator)) +
  ggplot2::geom_line(ggplot2::aes(group = estimator)) +
  ggplot2::geom_point(size = 3) +
  ggplot2::geom_text(ggplot2::aes(label = sprintf("%.1f%%", mde_pct)), vjust = -1,
                     size = 3.2, show.legend = FALSE) +
  ggplot2::scale_y_log10(expand = ggplot2::expansion(mult = c(0.1, 0.25))) +
  ggplot2::labs(x = "cluster definition", y = "MDE, % of mean cluster sales (log scale)",
                title = "Minimum detectable effect by cluster definition",
                subtitle = "80% power, 5% two-sided; spillovers not included") +
  ggplot2::theme_minimal() + ggplot2::theme(legend.position = "bottom")
save_plot(cluster_plot, "cluster-comparison.png")

cli::cli_rule()
cli::cli_alert_info("Plots are in {.path {normalizePath(out_dir)}}")
cli::cli_alert_info("Done in {format(round(difftime(Sys.time(), started, units = 'secs'), 1))}.")
