# The effect-over-time picture (GeoLift's most used one) for every fit with
# a counterfactual path: synth(), counterfactual() and experiment_effect()
# on a geo_units() table. Each class builds one table of the same columns,
# stored with the fit and returned by tidy(fit, "effect_over_time"); one
# function draws it, so the picture is the same for every estimator and a
# user can redraw it from the table.
#
# Columns: time (event time for counterfactual()), event_time, post,
# observed, counterfactual, effect (observed - counterfactual), cumulative
# (the effect summed over the post periods up to `time`; NA before) and
# conf.low, conf.high (the band of the cumulative effect at the fit's level;
# NA where the fit's inference gives none). synth() adds `fit`.

# --- tables -----------------------------------------------------------------

# Cumulative sums of each row of `draws` (replicates x post periods).
row_cumsum <- function(draws) {
  out <- draws
  for (j in seq_len(ncol(draws))[-1L]) out[, j] <- out[, j - 1L] + draws[, j]
  out
}

# The band of a cumulative effect from replicates of its null distribution
# (placebo gaps, parametric draws): the test of a constant cumulative effect
# c accepts when the centred estimate lies within the replicates'
# quantiles, so the band is the estimate minus those quantiles.
band_from_null <- function(estimate, null_draws, alpha) {
  q <- apply(null_draws, 2L, stats::quantile, probs = c(alpha / 2, 1 - alpha / 2),
             na.rm = TRUE, names = FALSE)
  q <- matrix(q, nrow = 2L)
  list(low = estimate - q[2, ], high = estimate - q[1, ])
}

# synth(): one block of rows per fit (treated unit or cohort). With
# placebos in space the band inverts the permutation test on the
# cumulative gap, over the placebos the fit kept.
synth_effect_over_time <- function(tables, alpha) {
  s <- tables$series
  out <- lapply(split(s, factor(s$fit, levels = unique(s$fit))), function(f) {
    f <- f[order(f$time), , drop = FALSE]
    cum <- ifelse(f$post, cumsum(ifelse(f$post, f$gap, 0)), NA_real_)
    data.frame(fit = f$fit, time = f$time, event_time = f$event_time, post = f$post,
           observed = f$treated, counterfactual = f$synthetic, effect = f$gap,
           cumulative = cum, conf.low = NA_real_, conf.high = NA_real_,
               stringsAsFactors = FALSE)
  })
  out <- do.call(rbind, out)
  rownames(out) <- NULL
  ps <- tables$placebo_series
  if (!is.null(ps) && length(unique(s$fit)) == 1L) {
    placebos <- ps[!ps$treated & ps$kept & ps$event_time >= 0, , drop = FALSE]
    if (nrow(placebos)) {
      wide <- stats::reshape(placebos[, c("unit", "event_time", "gap")], idvar = "unit",
                             timevar = "event_time", direction = "wide")
      post <- which(out$post)
      draws <- as.matrix(wide[, paste0("gap.", out$event_time[post]), drop = FALSE])
      band <- band_from_null(out$cumulative[post], row_cumsum(draws), alpha)
      out$conf.low[post] <- band$low
      out$conf.high[post] <- band$high
    }
  }
  out
}

# counterfactual(): mean observed and imputed outcomes of the treated units
# by event time; the band comes from the fit's replicates, summed over post
# event times and turned into an interval by the fit's own rule.
cf_effect_over_time <- function(paths, reps, inference, alpha) {
  post <- paths$event_time >= 0
  effect <- paths$observed - paths$counterfactual
  cum <- ifelse(post, cumsum(ifelse(post, effect, 0)), NA_real_)
  out <- data.frame(time = paths$event_time, event_time = paths$event_time, post = post,
                observed = paths$observed, counterfactual = paths$counterfactual,
                effect = effect, cumulative = cum, conf.low = NA_real_, conf.high = NA_real_,
               stringsAsFactors = FALSE)
  if (is.null(reps) || !any(post)) return(out)
  keys <- as.character(paths$event_time[post])
  if (!all(keys %in% colnames(reps$event))) return(out)
  R <- row_cumsum(reps$event[, keys, drop = FALSE])
  est <- cum[post]
  band <- if (inference == "jackknife") {
    n <- colSums(!is.na(R))
    m <- colMeans(R, na.rm = TRUE)
    sd <- sqrt((n - 1) / n * colSums(sweep(R, 2, m)^2, na.rm = TRUE))
    z <- stats::qnorm(1 - alpha / 2)
    list(low = est - z * sd, high = est + z * sd)
  } else if (inference == "parametric") {
    band_from_null(est, R, alpha)
  } else {
    q <- matrix(apply(R, 2L, stats::quantile, probs = c(alpha / 2, 1 - alpha / 2),
                      na.rm = TRUE, names = FALSE), nrow = 2L)
    list(low = q[1, ], high = q[2, ])
  }
  out$conf.low[post] <- band$low
  out$conf.high[post] <- band$high
  out
}

# --- the plot ---------------------------------------------------------------

# Two stacked panels sharing the time axis: the observed and counterfactual
# paths, and the cumulative effect with its band; a dashed line where
# treatment starts and, in the lower panel, the reference line at zero.
plot_effect_over_time <- function(tab, x_lab, y_lab, title, alpha, observed_label = "observed",
                                  counterfactual_label = "counterfactual",
                                  band_note = NULL) {
  panels <- c(y_lab, "cumulative effect")
  several <- !is.null(tab$fit) && length(unique(tab$fit)) > 1L
  if (is.null(tab$fit)) tab$fit <- ""
  n <- nrow(tab)
  paths <- data.frame(fit = rep(tab$fit, 2L), time = rep(tab$time, 2L),
                  value = c(tab$observed, tab$counterfactual),
                  series = factor(rep(c(observed_label, counterfactual_label), each = n),
                                  levels = c(observed_label, counterfactual_label)),
                  panel = factor(panels[1], levels = panels), stringsAsFactors = FALSE)
  cum <- tab[!is.na(tab$cumulative), , drop = FALSE]
  cum$panel <- factor(rep(panels[2], nrow(cum)), levels = panels)
  has_band <- any(is.finite(cum$conf.low) & is.finite(cum$conf.high))
  # Where treatment starts, in each fit's panels (treated units of a
  # staggered synth() start at different times).
  starts <- do.call(rbind, lapply(split(tab, factor(tab$fit, levels = unique(tab$fit))),
                                  function(f) {
    if (!any(f$post)) return(NULL)
    data.frame(fit = f$fit[1], x = start_between(f$time, min(f$time[f$post])),
               stringsAsFactors = FALSE)
  }))
  zero <- data.frame(y = 0, panel = factor(panels[2], levels = panels), stringsAsFactors = FALSE)
  colours <- stats::setNames(c(mkt_colours[["treated"]], mkt_colours[["synthetic"]]),
                             c(observed_label, counterfactual_label))
  p <- ggplot2::ggplot(mapping = ggplot2::aes(x = .data$time)) +
    ggplot2::geom_hline(ggplot2::aes(yintercept = .data$y), data = zero,
                        colour = mkt_colours[["reference"]], linewidth = 0.4)
  if (!is.null(starts)) {
    p <- p + ggplot2::geom_vline(ggplot2::aes(xintercept = .data$x), data = starts,
                                 colour = mkt_colours[["reference"]], linetype = "dashed",
                                 linewidth = 0.4)
  }
  if (has_band) {
    p <- p + ggplot2::geom_ribbon(ggplot2::aes(ymin = .data$conf.low, ymax = .data$conf.high),
                                  data = cum, fill = mkt_colours[["band"]], alpha = 0.6)
  }
  caption <- if (has_band) {
    sprintf("band: %g%% interval of the cumulative effect%s", 100 * (1 - alpha),
            if (is.null(band_note)) "" else paste0(" (", band_note, ")"))
  } else {
    band_note
  }
  p +
    ggplot2::geom_line(ggplot2::aes(y = .data$value, colour = .data$series,
                                    linetype = .data$series), data = paths) +
    ggplot2::geom_line(ggplot2::aes(y = .data$cumulative), data = cum,
                       colour = mkt_colours[["effect"]], linewidth = 0.8) +
    (if (several) {
      ggplot2::facet_grid(rows = ggplot2::vars(.data$panel), cols = ggplot2::vars(.data$fit),
                          scales = "free_y")
    } else {
      ggplot2::facet_wrap(ggplot2::vars(.data$panel), ncol = 1L, scales = "free_y")
    }) +
    ggplot2::scale_colour_manual(values = colours) +
    ggplot2::scale_linetype_manual(values = stats::setNames(c("solid", "dashed"), names(colours))) +
    ggplot2::labs(x = x_lab, y = NULL, colour = NULL, linetype = NULL, title = title,
                  caption = if (!is.null(caption)) paste(strwrap(caption, 90), collapse = "\n")) +
    theme_mkt() +
    ggplot2::theme(strip.text = ggplot2::element_text(hjust = 0, face = "bold"))
}
