# The layers that carry meaning in the package's plots: one theme, one
# palette and one style of reference line; the effect over time and its
# table; placebos drawn under the treated unit, poorly fitted ones left out
# and counted; thinned labels; a readable criterion plot.

geoms <- function(p) vapply(p$layers, function(l) class(l$geom)[1], character(1))
layers_of <- function(p, geom) p$layers[geoms(p) == geom]
# The reference line at zero: solid, grey50, thin.
is_zero_line <- function(l, axis = "yintercept") {
  isTRUE(all(l$data[[axis]] == 0)) && identical(l$aes_params$colour, "grey50") &&
    identical(l$aes_params$linewidth, 0.4) && is.null(l$aes_params$linetype)
}
# The treatment-start line: dashed, grey50, at `at`.
is_start_line <- function(l, at) {
  x <- if (is.null(l$data$xintercept)) l$data$x else l$data$xintercept
  isTRUE(all.equal(as.numeric(x), at)) &&
    identical(l$aes_params$linetype, "dashed") && identical(l$aes_params$colour, "grey50")
}
f99 <- packspercapita ~ treated | state + year

test_that("thin_labels keeps at most max_labels, evenly spaced, with both ends", {
  lv <- sprintf("Z%03d", 1:80)
  th <- thin_labels(lv, 30L)
  expect_lte(length(th), 30L)
  expect_identical(th[c(1, length(th))], c("Z001", "Z080"))
  expect_identical(th[1:4], c("Z001", "Z004", "Z007", "Z010"))
  expect_identical(thin_labels(lv[1:12], 30L), lv[1:12])
})

test_that("every plot uses theme_mkt and the same reference lines", {
  fit <- synth(f99, prop99)
  mpdta$post <- as.integer(mpdta$first.treat > 0 & mpdta$year >= mpdta$first.treat)
  es <- event_study(lemp ~ post | countyreal + year, mpdta, method = "sa")
  st <- staggered(lemp ~ post | countyreal + year, mpdta, n_draws = 0)
  plots <- list(plot(fit, "gap"), plot(fit, "trajectory"), plot(es), plot(st),
                plot(aggregate(st, "event")), plot(aggregate(st, "group")),
                plot_status(f99, prop99))
  for (p in plots) {
    expect_identical(p$theme$plot.title.position, "plot")
    expect_true(inherits(p$theme$panel.grid.minor, "element_blank"))
  }
  # Zero lines: solid grey50 of width 0.4, drawn before the data.
  for (p in plots[c(1, 3:6)]) {
    z <- layers_of(p, "GeomHline")
    expect_length(z, 1L)
    expect_true(is_zero_line(z[[1]]))
    expect_identical(which(geoms(p) == "GeomHline"), 1L)
  }
  # Start lines: dashed grey50 between the last untreated and the first
  # treated period (1988.5 for California; -0.5 in event time).
  expect_true(is_start_line(layers_of(plot(fit, "gap"), "GeomVline")[[1]], 1988.5))
  expect_true(is_start_line(layers_of(plot(fit, "trajectory"), "GeomVline")[[1]], 1988.5))
  expect_true(is_start_line(layers_of(plot(es), "GeomVline")[[1]], -0.5))
  # The aggregated event study has both reference lines, like the event
  # study; the group aggregation has the zero line and no start line.
  agg <- plot(aggregate(st, "event"))
  expect_true(is_start_line(layers_of(agg, "GeomVline")[[1]], -0.5))
  expect_identical(agg$labels$x, "periods since adoption")
  expect_length(layers_of(plot(aggregate(st, "group")), "GeomVline"), 0L)
  # The group aggregation has no pre/post legend to explain.
  expect_identical(plot(aggregate(st, "group"))$scales$get_scales("colour")$guide, "none")
  # Bacon's clean comparisons in the treated colour.
  bc <- plot(bacon(l_homicide ~ post | state + year, castle))
  pts <- ggplot2::layer_data(bc, 3)
  clean <- tidy(bacon(l_homicide ~ post | state + year, castle), "comparisons")$type ==
    "Treated vs Untreated"
  expect_setequal(unique(pts$colour[clean]), mkt_colours[["treated"]])
  # One palette: treated blue, synthetic orange.
  cols <- ggplot2::layer_data(plot(fit, "trajectory"), 2)
  expect_setequal(unique(cols$colour), unname(mkt_colours[c("treated", "synthetic")]))
})

test_that("synth: the effect over time is the gap, summed, with the placebo band", {
  fit <- synth(f99, prop99, inference = "placebo")
  eot <- tidy(fit, "effect_over_time")
  expect_named(eot, c("fit", "time", "event_time", "post", "observed", "counterfactual",
                      "effect", "cumulative", "conf.low", "conf.high"))
  s <- tidy(fit, "series")
  expect_equal(eot$effect, s$gap)
  expect_equal(eot$observed - eot$counterfactual, eot$effect)
  post <- eot$post
  expect_true(all(is.na(eot$cumulative[!post])))
  expect_equal(eot$cumulative[post], cumsum(s$gap[s$post]))
  expect_equal(eot$cumulative[nrow(eot)], coef(fit)[["att"]] * sum(post))
  # The band inverts the permutation test: the cumulative gap minus the
  # quantiles of the placebos' cumulative gaps.
  ps <- tidy(fit, "placebo_series")
  ps <- ps[!ps$treated & ps$kept & ps$event_time >= 0, ]
  cum_end <- tapply(ps$gap, ps$unit, sum)
  q <- stats::quantile(cum_end, c(0.025, 0.975), names = FALSE)
  last <- eot[nrow(eot), ]
  expect_equal(c(last$conf.low, last$conf.high), last$cumulative - rev(q))
  expect_true(all(eot$conf.low[post] <= eot$conf.high[post]))
  expect_lt(last$conf.high, 0)

  p <- plot(fit, "effect_over_time")
  expect_identical(geoms(p), c("GeomHline", "GeomVline", "GeomRibbon", "GeomLine", "GeomLine"))
  expect_true(is_start_line(p$layers[[2]], 1988.5))
  # The zero line sits in the cumulative panel only; the band covers the
  # post periods.
  expect_identical(as.character(p$layers[[1]]$data$panel), "cumulative effect")
  band <- ggplot2::layer_data(p, 3)
  expect_equal(band$ymin, eot$conf.low[post])
  expect_equal(band$ymax, eot$conf.high[post])
  expect_match(p$labels$caption, "95% interval of the cumulative effect")

  # Without placebos there is no band, and the caption says how to get one.
  none <- synth(f99, prop99)
  expect_true(all(is.na(tidy(none, "effect_over_time")$conf.low)))
  p0 <- plot(none, "effect_over_time")
  expect_false("GeomRibbon" %in% geoms(p0))
  expect_match(p0$labels$caption, "inference = \"placebo\"", fixed = TRUE)

  # Several treated units: one column of panels each, each with its own
  # start line and its own cumulative effect (5 a period).
  d <- sim_synth_panel(first_treated = c(31, 35), effect = 5)
  several <- synth(y ~ d | unit + time, d)
  e2 <- tidy(several, "effect_over_time")
  expect_identical(unique(e2$fit), c("u01", "u02"))
  ends <- vapply(split(e2, e2$fit), function(f) f$cumulative[nrow(f)] / sum(f$post), 1)
  expect_equal(unname(ends), c(5, 5), tolerance = 0.1)
  p2 <- plot(several, "effect_over_time")
  v <- layers_of(p2, "GeomVline")[[1]]$data
  expect_identical(v$fit, c("u01", "u02"))
  expect_equal(v$x, c(30.5, 34.5))
})

test_that("synth placebo plot: treated on top, poorly fitted placebos left out and counted", {
  fit <- synth(f99, prop99, inference = "placebo")
  tab <- tidy(fit, "placebo")
  ratio <- tab$pre_rmspe^2 / tab$pre_rmspe[tab$treated]^2
  kept5 <- tab$unit[!tab$treated & ratio <= 5]
  p <- plot(fit, "placebo")
  # The treated unit is the last layer, in the treated colour, thicker.
  last <- p$layers[[length(p$layers)]]
  expect_identical(last$aes_params$colour, mkt_colours[["treated"]])
  expect_gt(last$aes_params$linewidth, p$layers[[length(p$layers) - 1L]]$aes_params$linewidth)
  expect_equal(ggplot2::layer_data(p, length(p$layers))$y, tidy(fit, "series")$gap)
  # Placebos drawn: those fitted at most 5 times worse (in MSPE).
  expect_setequal(unique(p$data$unit), kept5)
  n_out <- sum(!tab$treated) - length(kept5)
  expect_identical(n_out, 7L)
  expect_match(p$labels$caption, sprintf("%d of %d placebos left out", n_out, sum(!tab$treated)))
  expect_match(p$labels$caption, "drop_poor_placebos = 5", fixed = TRUE)
  # The argument changes the rule; Inf draws them all.
  p20 <- plot(fit, "placebo", drop_poor_placebos = 20)
  expect_setequal(unique(p20$data$unit), tab$unit[!tab$treated & ratio <= 20])
  pall <- plot(fit, "placebo", drop_poor_placebos = Inf)
  expect_identical(length(unique(pall$data$unit)), sum(!tab$treated))
  expect_match(pall$labels$caption, "every placebo")
  expect_lt(diff(range(p$data$gap)), diff(range(pall$data$gap)))
  expect_error(plot(fit, "placebo", drop_poor_placebos = 0.5),
               class = "mktcausal_error_bad_argument")
  expect_error(plot(fit, "placebo", drop_poor_placebos = NA),
               class = "mktcausal_error_bad_argument")
})

test_that("counterfactual: the cumulative effect and its band from the replicates", {
  set.seed(2)
  d <- expand.grid(store = 1:30, week = 1:20)
  lambda <- rnorm(30)[d$store]
  d$promo <- as.integer(d$store <= 5 & d$week > 14)
  d$sales <- 10 + lambda * cos(d$week / 4) + 2 * d$promo + rnorm(nrow(d), sd = 0.2)
  fit <- counterfactual(sales ~ promo | store + week, d, inference = "bootstrap",
                        n_draws = 60)
  eot <- tidy(fit, "effect_over_time")
  cp <- tidy(fit, "counterfactual")
  expect_equal(eot$effect, cp$observed - cp$counterfactual)
  post <- eot$event_time >= 0
  expect_identical(eot$post, post)
  # Six treated periods with an effect of 2 each.
  expect_equal(eot$cumulative[sum(!post) + 6L], 12, tolerance = 0.05)
  keys <- as.character(eot$event_time[post])
  R <- t(apply(fit$replicates$event[, keys, drop = FALSE], 1, cumsum))
  q <- apply(R, 2, stats::quantile, probs = c(0.025, 0.975), names = FALSE)
  expect_equal(eot$conf.low[post], q[1, ], ignore_attr = TRUE)
  expect_equal(eot$conf.high[post], q[2, ], ignore_attr = TRUE)
  p <- plot(fit, "effect_over_time")
  expect_true("GeomRibbon" %in% geoms(p))
  expect_true(is_start_line(layers_of(p, "GeomVline")[[1]], -0.5))
  expect_match(p$labels$caption, "bootstrap replicates")
})

test_that("geo experiment: effect over time from the geo_units() series", {
  pre <- 1:40
  post <- 41:48
  units <- geo_units(sales ~ 0 | zone + week, geo_sales, randomize_by = "dma",
                     pre = pre, post = post)
  s <- attr(units, "series")
  expect_identical(dim(s), c(nrow(units), 48L))
  expect_equal(rowSums(s[, post]), units$post_total, ignore_attr = TRUE)
  set.seed(4)
  des <- rerandomize(units, ~ outcome_mean, n_treated = 100, accept = 0.2)
  tr <- units$dma[des$treated == 1]
  zones <- geo_sales[geo_sales$week <= 48, ]
  zones$sales <- zones$sales * (1 + 0.05 * (zones$dma %in% tr & zones$week %in% post))
  measured <- geo_units(sales ~ 0 | zone + week, zones, randomize_by = "dma",
                        pre = pre, post = post)
  measured$treated <- des$treated
  # With the design, Lin's regression on the design's covariates.
  fit <- experiment_effect(post_total ~ treated, measured, design = des, n_draws = 100)
  eot <- tidy(fit, "effect_over_time")
  row <- tidy(fit)[tidy(fit)$term == "lin", ]
  expect_identical(unique(eot$term), "lin")
  expect_identical(eot$time, 1:48)
  expect_identical(eot$post, eot$time %in% post)
  S <- attr(measured, "series")
  treated <- measured$treated == 1
  expect_equal(eot$observed, colSums(S[treated, ]), ignore_attr = TRUE)
  # The cumulative effect at the end of the window is the row's incremental
  # outcome, and its band the row's interval times the treated clusters.
  last <- eot[nrow(eot), ]
  expect_equal(last$cumulative, row$incremental)
  expect_equal(c(last$conf.low, last$conf.high), 100 * c(row$conf.low, row$conf.high))
  expect_true(all(is.na(eot$cumulative[!eot$post])))
  expect_gt(last$conf.low, 0)

  # Without covariates at all: difference in means, counterfactual by hand.
  plain <- experiment_effect(post_total ~ treated, measured, n_draws = 20)
  e2 <- tidy(plain, "effect_over_time")
  expect_identical(e2$term[1], "diff_in_means")
  expect_equal(e2$counterfactual, 100 * colMeans(S[!treated, ]), ignore_attr = TRUE)
  expect_equal(e2$cumulative[48], tidy(plain)$incremental[1])

  p <- plot(fit, "effect_over_time")
  expect_identical(geoms(p), c("GeomHline", "GeomVline", "GeomRibbon", "GeomLine", "GeomLine"))
  expect_true(is_start_line(p$layers[[2]], 40.5))
  expect_identical(p$labels$x, "week")

  # A fit on a table without the series says how to get one.
  flat <- as.data.frame(measured)
  attr(flat, "series") <- NULL
  nos <- experiment_effect(post_total ~ treated, flat, n_draws = 20)
  expect_error(tidy(nos, "effect_over_time"), class = "mktcausal_error_bad_choice")
  expect_error(plot(nos, "effect_over_time"), class = "mktcausal_error_not_available")
})

test_that("status heatmap of 80 zones shows at most 30 labels and says so", {
  d <- geo_sales[geo_sales$zone %in% unique(geo_sales$zone)[1:80] & geo_sales$week <= 20, ]
  d$treated <- as.integer(d$dma %in% unique(d$dma)[1:5] & d$week > 10)
  p <- plot_status(sales ~ treated | zone + week, d)
  b <- ggplot2::ggplot_build(p)
  lab <- b$layout$panel_params[[1]]$y$get_labels()
  lab <- lab[!is.na(lab)]
  expect_lte(length(lab), 30L)
  expect_gte(length(lab), 20L)
  expect_true(all(levels(p$data$unit)[c(1, 80)] %in% lab))
  expect_identical(p$labels$caption, sprintf("%d of 80 zone labels shown", length(lab)))
  small <- plot_status(sales ~ treated | zone + week, d[d$zone %in% unique(d$zone)[1:12], ])
  expect_null(small$labels$caption)
  expect_identical(ggplot2::ggplot_build(small)$layout$panel_params[[1]]$y$get_labels(),
                   levels(small$data$unit))
})

test_that("criterion plot: threshold and chosen assignment each labelled on its side", {
  set.seed(3)
  d <- data.frame(id = sprintf("g%02d", 1:60), x1 = rnorm(60), x2 = rnorm(60))
  des <- rerandomize(d, ~ x1 + x2, n_treated = 30, accept = 0.02, id = "id")
  p <- plot(des, "criterion")
  # Drawn from tidy(design, "criterion").
  cr <- tidy(des, "criterion")
  expect_identical(nrow(cr), length(des$calibration))
  expect_identical(cr$accepted, cr$criterion <= glance(des)$threshold)
  expect_equal(p$data$criterion, cr$criterion)
  expect_identical(p$theme$plot.title.position, "plot")
  v <- layers_of(p, "GeomVline")
  expect_length(v, 2L)
  expect_equal(v[[1]]$data$xintercept, glance(des)$threshold)
  expect_equal(v[[2]]$data$xintercept, glance(des)$criterion)
  expect_identical(v[[2]]$aes_params$linetype, "dashed")
  lab <- layers_of(p, "GeomLabel")[[1]]$data
  expect_identical(lab$what, c("threshold", "chosen"))
  # The threshold's label sits right of its line, the chosen one's left of
  # its own, at different heights: they cannot overlap.
  expect_lt(lab$hjust[1], 0)
  expect_gt(lab$hjust[2], 1)
  expect_false(lab$vjust[1] == lab$vjust[2])
  expect_match(lab$label[2], format_num(glance(des)$criterion, 3), fixed = TRUE)
  # Zero line of the balance plot in the shared style.
  expect_true(is_zero_line(layers_of(plot(des, "balance"), "GeomVline")[[1]], "xintercept"))
  # The accepted region is shaded up to the threshold.
  expect_identical(geoms(p)[1], "GeomRect")
  expect_equal(ggplot2::layer_data(p, 1)$xmax, log10(glance(des)$threshold))
  expect_s3_class(p$scales$get_scales("x"), "ScaleContinuousPosition")
  expect_identical(p$scales$get_scales("x")$trans$name, "log-10")
})

test_that("the p-value function and the limit laws are drawn from public tidy() tables", {
  d <- sim_clusters(60, 2, seed = 5)
  set.seed(5)
  des <- rerandomize(d, ~ x1 + x2, n_treated = 30, accept = 0.05, id = "id")
  d$treated <- des$treated
  d$y <- 2 * d$x1 + rnorm(60) + d$treated
  rt <- randomization_test(y ~ treated, d, design = des, n_draws = 300)
  pv <- tidy(rt, "pvalue")
  expect_setequal(unique(pv$reference), c("conditional", "unconditional"))
  expect_true(all(pv$p.value >= 0 & pv$p.value <= 1))
  # The conditional curve is above alpha inside the interval and below it outside.
  cond <- pv[pv$reference == "conditional", ]
  inside <- cond$null > tidy(rt)$conf.low + 1e-6 & cond$null < tidy(rt)$conf.high - 1e-6
  expect_true(all(cond$p.value[inside] > rt$alpha))
  g <- ggplot2::ggplot_build(plot(rt, type = "pvalue"))
  expect_equal(nrow(g$data[[3]]), nrow(pv))
  rem <- rem_asymptotic(y ~ treated, d, design = des)
  law <- tidy(rem, "law")
  expect_setequal(unique(law$law), c("rerandomization", "complete_randomization"))
  # Each density integrates to about one over the grid.
  for (l in unique(law$law)) {
    x <- law[law$law == l, ]
    expect_equal(sum(x$density) * diff(x$effect[1:2]), 1, tolerance = 0.01)
  }
  g <- ggplot2::ggplot_build(plot(rem, type = "law"))
  expect_equal(nrow(g$data[[1]]), nrow(law))
})
