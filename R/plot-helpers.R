# The look shared by every plot of the package: one theme, one palette
# (treated in blue, controls and placebos in grey, the counterfactual or
# synthetic path in orange, effects in red) and one style of reference line
# (solid grey at zero effect, dashed grey where treatment starts). Every
# autoplot method builds on these, so a deck made of mktcausal plots looks
# like one deck.

mkt_colours <- c(treated = "#08519c", synthetic = "#e6550d", control = "grey55",
                 effect = "#b2182b", pre = "grey45", post = "#08519c", band = "#9ecae1",
                 reference = "grey50")

theme_mkt <- function(base_size = 11) {
  ggplot2::theme_minimal(base_size = base_size) +
    ggplot2::theme(panel.grid.minor = ggplot2::element_blank(),
                   legend.position = "bottom",
                   plot.title.position = "plot",
                   plot.caption = ggplot2::element_text(colour = "grey35", hjust = 0))
}

# The reference line at zero effect (or at another reference value of the
# same meaning): solid, grey, thin, drawn first so that data sit on top.
ref_line <- function(axis = c("y", "x"), at = 0) {
  axis <- axis[1]
  if (axis == "y") {
    ggplot2::geom_hline(yintercept = at, colour = mkt_colours[["reference"]], linewidth = 0.4)
  } else {
    ggplot2::geom_vline(xintercept = at, colour = mkt_colours[["reference"]], linewidth = 0.4)
  }
}

# The line where treatment starts: dashed, grey, between the last
# pre-treatment period and the first treated one (-0.5 in event time).
start_line <- function(at = -0.5) {
  ggplot2::geom_vline(xintercept = at, colour = mkt_colours[["reference"]],
                      linetype = "dashed", linewidth = 0.4)
}

# Halfway between the last period before `first` and `first` (calendar
# times, numeric or Date); `first` itself when there is no earlier period.
start_between <- function(times, first) {
  times <- sort(unique(times))
  before <- times[times < first]
  if (!length(before)) return(first)
  last <- before[length(before)]
  if (inherits(times, "Date")) return(last + as.numeric(first - last) / 2)
  (as.numeric(last) + as.numeric(first)) / 2
}

# Colours of the two arms (and of a synthetic or counterfactual path).
arm_colours <- function() {
  c(treated = mkt_colours[["treated"]], control = mkt_colours[["control"]])
}

# Whole-number breaks for an axis of event times (no "-7.5 periods").
event_time_axis <- function() {
  ggplot2::scale_x_continuous(breaks = function(lim) {
    b <- unique(round(pretty(lim)))
    b[b >= lim[1] & b <= lim[2]]
  })
}

# Colours for `n` series without a treated/control meaning (factors,
# criteria): the palette's own colours first, then a ramp.
series_colours <- function(n) {
  base <- unname(mkt_colours[c("treated", "synthetic", "effect", "pre", "band")])
  if (n <= length(base)) return(base[seq_len(n)])
  grDevices::colorRampPalette(base)(n)
}

# At most `max_labels` evenly spaced labels out of `levels` (always the
# first and the last), so that axis labels stay readable on large panels.
thin_labels <- function(levels, max_labels = 30L) {
  n <- length(levels)
  if (n <= max_labels) return(levels)
  step <- ceiling((n - 1) / (max_labels - 1))
  idx <- unique(c(seq(1L, n, by = step), n))
  # Keep the last label clear of its neighbour.
  if (length(idx) > 2L && idx[length(idx)] - idx[length(idx) - 1L] < step / 2) {
    idx <- idx[-(length(idx) - 1L)]
  }
  levels[idx]
}

# A multiple of at least 1 (Inf allowed), as a plot's option.
check_multiple <- function(x, arg, call = rlang::caller_env()) {
  if (!is.numeric(x) || length(x) != 1L || is.na(x) || x < 1) {
    abort_mkt("bad_argument", c(
      "{.arg {arg}} must be a single number of at least 1 (or {.code Inf}).",
      x = "You supplied {.val {format(x)}}."), call = call)
  }
  invisible(x)
}

# The layers every power curve shares (design_power(), its several-cell
# form, select_markets()): the target power (dashed) and alpha (dotted)
# lines, bars of two Monte Carlo SEs, and the curve with its points. `power`
# and `mc_se` are columns of the plotted data.
power_curve_layers <- function(target_power, alpha) {
  list(
    ggplot2::geom_hline(yintercept = target_power, linetype = "dashed", colour = "grey40"),
    ggplot2::geom_hline(yintercept = alpha, linetype = "dotted", colour = "grey60"),
    ggplot2::geom_errorbar(ggplot2::aes(ymin = pmax(0, .data$power - 2 * .data$mc_se),
                                        ymax = pmin(1, .data$power + 2 * .data$mc_se)),
                           width = 0),
    ggplot2::geom_line(),
    ggplot2::geom_point()
  )
}
