#' Methods for market selections and market backtests
#'
#' `tidy()` of a [select_markets()] result gives one row per scored
#' candidate set, best first: `rank`, `markets` (labels joined by ", "),
#' `n_treated`, `share` (of outcome volume), `noise` (the ranking
#' criterion: the relative error scale of the estimator on the selection
#' blocks), `mde` (the lift detected in `target_power` of the windows
#' whatever the sign of the window's error), `mean_power` (over the positive effects), `aa_rejection` and
#' `aa_se` (the zero-effect rejection rate on the selection windows and its
#' Monte Carlo standard error under the nominal level), `rmse` (the pre-period fit, relative to the
#' treated level) and one `power_<effect>` column per effect.
#' `tidy(x, "windows")` gives the chosen set's backtest by window (role
#' `"backtest"` or `"holdout"`); `tidy(x, "power")` its power curve on the
#' backtest windows and on the held-out windows (`mc_se` of the effect-0 row
#' is that of a test of exact size, \eqn{\sqrt{\alpha(1-\alpha)/n}}). `glance()` gives one row:
#' the chosen set, its MDE and A/A rate on the backtest windows (the size
#' under selection: the ranking never read those windows nor the test's
#' reference blocks), and with `holdout` its A/A rate and mean power on the
#' held-out windows.
#'
#' @param x,object A result of [select_markets()] or [market_backtest()].
#' @param what `"candidates"`, `"windows"` or `"power"` (selection); `"power"`
#'   or `"windows"` (backtest).
#' @param n Rows of the candidate table to print.
#' @param ... Must be empty (for `plot()`: passed to `autoplot()`).
#' @name market-selection-methods
NULL

#' @rdname market-selection-methods
#' @export
tidy.mkt_market_selection <- function(x, what = c("candidates", "windows", "power"), ...) {
  check_dots(...)
  what <- check_choice(what)
  switch(what,
    candidates = market_candidate_table(x),
    windows = x$backtest,
    power = market_selection_power(x))
}

market_candidate_table <- function(x) {
  c <- x$candidates
  s <- c$summary
  out <- data.frame(
    rank = seq_along(c$sets),
    markets = vapply(c$sets, function(v) paste(x$markets[v], collapse = ", "), ""),
    n_treated = lengths(c$sets),
    share = vapply(c$sets, function(v) sum(x$share[v]), 1),
    noise = s$noise, mde = s$mde, mean_power = s$mean_power, aa_rejection = s$aa, aa_se = s$aa_se,
    rmse = s$rmse, stringsAsFactors = FALSE)
  pw <- as.data.frame(s$power)
  names(pw) <- paste0("power_", format(x$effect, trim = TRUE, scientific = FALSE))
  cbind(out, pw)
}

market_selection_power <- function(x) {
  sc <- lapply(x$candidates$scores, function(m) m[1L, , drop = FALSE])
  rows <- list(market_power_table(sc, 1L, x$selection_windows, x$effect, x$alpha))
  rows[[1]]$windows <- "backtest"
  if (length(x$holdout_windows)) {
    h <- market_power_table(sc, 1L, x$holdout_windows, x$effect, x$alpha)
    h$windows <- "holdout"
    rows <- c(rows, list(h))
  }
  do.call(rbind, rows)
}

#' @rdname market-selection-methods
#' @export
glance.mkt_market_selection <- function(x, ...) {
  check_dots(...)
  s <- x$candidates$summary
  bt <- x$backtest
  h <- x$holdout_windows
  pw <- market_selection_power(x)
  ho <- pw[pw$windows == "holdout", ]
  data.frame(
    markets = paste(x$chosen, collapse = ", "), n_treated = length(x$chosen),
    share = sum(x$share[x$chosen_index]), method = x$method, inference = x$inference,
    search = x$search, n_scored = x$n_scored, n_feasible = x$n_feasible,
    mde = s$mde[1], aa_rejection = s$aa[1], aa_se = s$aa_se[1],
    holdout_aa_rejection = if (length(h)) mean(bt$reject_aa[h]) else NA_real_,
    holdout_aa_se = if (length(h)) sqrt(x$alpha * (1 - x$alpha) / length(h)) else NA_real_,
    holdout_mean_power = if (length(h) && any(x$effect > 0)) mean(ho$power[ho$effect > 0]) else NA_real_,
    n_selection_windows = length(x$selection_windows), n_holdout_windows = length(h),
    alpha = x$alpha, target_power = x$target_power, stringsAsFactors = FALSE)
}

#' @rdname market-selection-methods
#' @export
print.mkt_market_selection <- function(x, n = 5, ...) {
  check_dots(...)
  g <- glance.mkt_market_selection(x)
  pct <- function(v) paste0(format_num(100 * v, 3), "%")
  est <- switch(x$method, synth = "synthetic control", tbr = "time-based regression",
                diff_in_means = "difference in means",
                sdid = "synthetic DiD (SDID)",
                lin = "Lin's regression adjustment")
  test <- if (x$inference == "placebo") "placebo-in-time rank test" else "placebo t test"
  srch <- switch(g$search, exhaustive = "exhaustive", greedy = "greedy with swaps",
                 stochastic = "random sets with swaps")
  nw <- g$n_selection_windows + g$n_holdout_windows
  lines <- c(
    sprintf("Market selection: %s, %s at alpha %s", est, test, format(x$alpha)),
    sprintf("  %s search: %s of %s feasible sets scored on %d windows of %d periods",
            srch, format(g$n_scored, big.mark = ","), format(g$n_feasible, big.mark = ","),
            nw, x$test_length),
    sprintf("  chosen: %s (%s of volume)", g$markets, pct(g$share)),
    sprintf("  ranked on %d selection blocks; the test's reference and the windows are never read by the ranking",
            x$plan$n_select),
    sprintf("  MDE %s at %s power; A/A %s (SE %s) on %d windows",
            if (is.finite(g$mde)) pct(g$mde) else "not reached", pct(g$target_power),
            format_num(g$aa_rejection, 3), format_num(g$aa_se, 2), g$n_selection_windows),
    if (g$n_holdout_windows) {
      sprintf("  held out of the ranking: A/A %s (SE %s), mean power %s on %d window%s",
              format_num(g$holdout_aa_rejection, 3), format_num(g$holdout_aa_se, 2),
              pct(g$holdout_mean_power), g$n_holdout_windows,
              if (g$n_holdout_windows > 1) "s" else "")
    }
  )
  cat_wrapped(lines)
  tab <- market_candidate_table(x)
  k <- min(n, nrow(tab))
  cat("\nBest ", k, " set", if (k > 1) "s", ":\n", sep = "")
  show <- data.frame(rank = tab$rank[seq_len(k)], markets = tab$markets[seq_len(k)],
                     share = pct(tab$share[seq_len(k)]),
                     mde = ifelse(is.finite(tab$mde[seq_len(k)]), pct(tab$mde[seq_len(k)]), "-"),
                     power = format_num(tab$mean_power[seq_len(k)], 2),
                     aa = format_num(tab$aa_rejection[seq_len(k)], 2))
  print(show, row.names = FALSE, right = FALSE)
  invisible(x)
}

#' @rdname market-selection-methods
#' @export
summary.mkt_market_selection <- function(object, ...) {
  check_dots(...)
  structure(list(glance = glance.mkt_market_selection(object),
                 power = market_selection_power(object),
                 windows = object$backtest,
                 candidates = utils::head(market_candidate_table(object), 10)),
            class = "summary.mkt_market_selection")
}

#' @rdname market-selection-methods
#' @export
print.summary.mkt_market_selection <- function(x, ...) {
  g <- x$glance
  cat("Chosen markets: ", g$markets, "\n\nPower of the chosen set:\n", sep = "")
  p <- x$power
  p$power <- format_num(p$power, 3)
  p$mc_se <- format_num(p$mc_se, 2)
  print(p, row.names = FALSE)
  cat("\nBacktest windows of the chosen set:\n")
  w <- x$windows
  show <- data.frame(window = w$window, end = w$end, role = w$role, placebos = w$n_placebo,
                     estimate = format_num(w$estimate, 3), critical = format_num(w$critical, 3),
                     detectable = format_num(w$detectable, 3), reject_aa = w$reject_aa)
  print(show, row.names = FALSE)
  cat("\nBest sets:\n")
  cd <- x$candidates
  print(data.frame(rank = cd$rank, markets = cd$markets, mde = format_num(cd$mde, 3),
                   power = format_num(cd$mean_power, 2)), row.names = FALSE, right = FALSE)
  invisible(x)
}

#' @rdname market-selection-methods
#' @export
plot.mkt_market_selection <- function(x, ...) {
  autoplot(x, ...)
}

#' @rdname market-selection-methods
#' @export
autoplot.mkt_market_selection <- function(object, ...) {
  check_dots(...)
  d <- market_selection_power(object)
  d$effect <- 100 * d$effect
  ggplot2::ggplot(d, ggplot2::aes(x = .data$effect, y = .data$power, colour = .data$windows)) +
    power_curve_layers(object$target_power, object$alpha) +
    ggplot2::scale_colour_manual(values = c(backtest = mkt_colours[["band"]],
                                            holdout = mkt_colours[["treated"]])) +
    ggplot2::scale_y_continuous(limits = c(0, 1)) +
    ggplot2::labs(x = "effect (% lift)", y = "power", colour = "windows",
                  title = paste("Backtested power of", paste(object$chosen, collapse = ", ")),
                  subtitle = "dashed: target power; dotted: alpha; bars: 2 Monte Carlo SE") +
    theme_mkt()
}

#' @rdname market-selection-methods
#' @export
tidy.mkt_market_backtest <- function(x, what = c("power", "windows"), ...) {
  check_dots(...)
  what <- check_choice(what)
  if (what == "power") x$power else x$backtest
}

#' @rdname market-selection-methods
#' @export
glance.mkt_market_backtest <- function(x, ...) {
  check_dots(...)
  s <- x$summary
  data.frame(markets = paste(x$treated, collapse = ", "), n_treated = length(x$treated),
             share = x$share, method = x$method, inference = x$inference,
             mde = s$mde, mean_power = s$mean_power, aa_rejection = s$aa, aa_se = s$aa_se,
             rmse = s$rmse, n_windows = s$n_windows, alpha = x$alpha,
             target_power = x$target_power, stringsAsFactors = FALSE)
}

#' @rdname market-selection-methods
#' @export
print.mkt_market_backtest <- function(x, ...) {
  check_dots(...)
  g <- glance.mkt_market_backtest(x)
  pct <- function(v) paste0(format_num(100 * v, 3), "%")
  cat_wrapped(c(
    sprintf("Market backtest: %s (%s of volume), %s, %d windows of %d periods",
            g$markets, pct(g$share), x$method, g$n_windows, x$test_length),
    sprintf("  MDE %s at %s power; A/A %s (SE %s)",
            if (is.finite(g$mde)) pct(g$mde) else "not reached", pct(g$target_power),
            format_num(g$aa_rejection, 3), format_num(g$aa_se, 2))))
  p <- x$power
  p$power <- format_num(p$power, 3)
  p$mc_se <- format_num(p$mc_se, 2)
  print(p, row.names = FALSE)
  invisible(x)
}

#' @rdname market-selection-methods
#' @export
plot.mkt_market_backtest <- function(x, ...) {
  autoplot(x, ...)
}

#' @rdname market-selection-methods
#' @export
autoplot.mkt_market_backtest <- function(object, ...) {
  check_dots(...)
  d <- object$power
  d$effect <- 100 * d$effect
  ggplot2::ggplot(d, ggplot2::aes(x = .data$effect, y = .data$power)) +
    ggplot2::geom_hline(yintercept = object$target_power, linetype = "dashed", colour = "grey40") +
    ggplot2::geom_hline(yintercept = object$alpha, linetype = "dotted", colour = "grey60") +
    ggplot2::geom_errorbar(ggplot2::aes(ymin = pmax(0, .data$power - 2 * .data$mc_se),
                                        ymax = pmin(1, .data$power + 2 * .data$mc_se)),
                           width = 0, colour = mkt_colours[["treated"]]) +
    ggplot2::geom_line(colour = mkt_colours[["treated"]]) +
    ggplot2::geom_point(colour = mkt_colours[["treated"]]) +
    ggplot2::scale_y_continuous(limits = c(0, 1)) +
    ggplot2::labs(x = "effect (% lift)", y = "power",
                  title = paste("Backtested power of", paste(object$treated, collapse = ", ")),
                  subtitle = "dashed: target power; dotted: alpha; bars: 2 Monte Carlo SE") +
    theme_mkt()
}
