#' Compare a randomized, a selected and a synthetic few-market design
#'
#' Scores three ways to run a test that treats `n_treated` markets on the
#' same historical windows and the same effect sizes: complete
#' randomization of the markets (analysed by the difference in means with a
#' randomization test), the set chosen by [select_markets()], and the
#' treated markets of a [synthetic_design()]. For each it gives the power
#' curve with its Monte Carlo error, the A/A rejection rate (power at
#' effect 0), the minimum detectable effect (MDE), the expected incremental
#' volume and the cost.
#'
#' @section Windows and analyses:
#' The windows are the last `n_windows` blocks of `test_length` periods of
#' the history, as in [select_markets()] (and [design_power()], which gives
#' the same windows). An effect \eqn{\delta} multiplies the treated markets'
#' outcomes over the window by \eqn{1 + \delta} in every design.
#' * **randomized**: [design_power()] on a complete randomization
#'   ([rerandomize()] with `accept = 1`): `n_draws` random treated sets are
#'   replayed on every window, analysed by the difference in means of the
#'   window totals with the randomization test (`reference_draws` = 500).
#' * **selected**: [select_markets()] chooses the set (its held-out windows
#'   measure the size under the selection), then [market_backtest()] scores
#'   it on every window with the synthetic-control analysis and placebo
#'   test of `select_markets()`. The windows used to rank the sets are
#'   counted in `windows_seen`: on them the A/A rate is optimistic.
#' * **synthetic**: [synthetic_design()] chooses the treated markets on the
#'   history before the first window (so no window is seen; its weights
#'   are fitted on all of that history but the last `test_length` periods,
#'   since the backtest, not the blank periods, gives the inference here),
#'   and [market_backtest()] scores them like the selected set.
#'
#' The MDE of every design is read the same way from its power curve: the
#' effect at which the curve, linearly interpolated between grid points,
#' first reaches `target_power` (`NA`, with `mde_reached = FALSE`, when the
#' grid does not reach it).
#'
#' @section Volume and cost:
#' A design's treated volume is the treated markets' total outcome over a
#' test window, averaged over the windows (for the randomized design, the
#' expected total of `n_treated` markets drawn at random). The expected
#' incremental volume at lift \eqn{\delta} is \eqn{\delta} times it. The cost
#' is `cost_per_market` times the number of treated markets plus
#' `cost_per_unit` times the treated volume (e.g. media priced per unit of
#' sales reached); `cost_per_incremental` is the cost over the incremental
#' volume at the MDE.
#'
#' @inheritParams select_markets
#' @param effect Grid of relative lifts (0.05 = 5%); 0 is always added for
#'   the A/A rate.
#' @param n_draws Random treated sets replayed by the randomized design.
#' @param n_candidates Candidate sets [select_markets()] may score.
#' @param cost_per_market,cost_per_unit Cost of treating one market, and of
#'   one unit of treated volume.
#' @param ... Must be empty.
#' @return An object of class `mkt_design_comparison`: `tidy()` gives the
#'   power curves (`design`, `effect`, `power`, `mc_se`, `n_sims`,
#'   `incremental`), `tidy(x, "summary")` and `glance()` one row per design
#'   (markets, share of volume, MDE, A/A rate and its SE, treated volume,
#'   incremental volume at the MDE, cost), `plot()` the power curves;
#'   `$designs` holds the randomized power simulation, the selection, the
#'   synthetic design and the two backtests.
#' @export
#' @examples
#' \donttest{
#' dma <- aggregate(sales ~ dma + week, geo_sales, sum)
#' dma <- dma[dma$dma %in% sprintf("DMA%03d", 1:40), ]
#' set.seed(1)
#' cmp <- compare_designs(sales ~ 0 | dma + week, dma, n_treated = 2,
#'                        n_windows = 6, n_draws = 50, n_candidates = 300)
#' cmp
#' plot(cmp)
#' }
compare_designs <- function(formula, data, n_treated = 3, test_length = 4,
                            effect = c(0, 0.025, 0.05, 0.1, 0.2), n_windows = 6,
                            alpha = 0.05, target_power = 0.8, n_draws = 200,
                            n_candidates = 1000, cost_per_market = 0, cost_per_unit = 0,
                            ...) {
  check_dots(...)
  call <- match.call()
  if (missing(data)) data <- NULL
  alpha <- check_alpha(alpha)
  if (is.null(effect) || !length(effect)) {
    abort_mkt("bad_argument", c(
      "{.arg effect} must be a grid of relative lifts.",
      i = "For example {.code effect = c(0.025, 0.05, 0.1)}; 0 is added for the A/A row."))
  }
  effect <- market_effect_grid(c(0, effect))
  check_target_power(target_power)
  if (target_power <= alpha) {
    abort_mkt("bad_argument", c(
      "{.arg target_power} = {format(target_power)} is not above {.arg alpha} = {alpha}: a test rejects that often at zero effect.",
      i = "Use a target such as {.code target_power = 0.8}."))
  }
  n_treated <- check_count(n_treated, "n_treated", min = 1)
  test_length <- check_count(test_length, "test_length", min = 1)
  n_draws <- check_count(n_draws, "n_draws", min = 2)
  for (arg in c("cost_per_market", "cost_per_unit")) {
    val <- get(arg)
    if (!is.numeric(val) || length(val) != 1L || !is.finite(val) || val < 0) {
      abort_mkt("bad_argument", c("{.arg {arg}} must be one number of at least 0.",
                                  x = "You supplied {.val {format(val)}}."))
    }
  }
  panel <- as_panel(formula, data)
  hist <- design_history(panel)
  Y <- hist$Y
  if (n_treated >= nrow(Y)) {
    abort_mkt("too_few_controls", c(
      "{.arg n_treated} = {n_treated} leaves no control market: the panel has {nrow(Y)} market{?s}.",
      i = "Treat at most {nrow(Y) - 1L} market{?s}."))
  }
  # The placebo test of the backtests needs 1/alpha - 1 blocks of history
  # before a window.
  b_min <- ceiling(1 / alpha - 1e-9) - 1
  n_blocks <- ncol(Y) %/% test_length
  if (n_blocks - b_min < 1) {
    abort_mkt("too_few_pre_periods", c(
      "The history holds {n_blocks} block{?s} of {test_length} period{?s}; a backtest at {.arg alpha} = {format(alpha)} needs {format(b_min + 1, big.mark = ',', scientific = FALSE)} (one window after {format(b_min, big.mark = ',', scientific = FALSE)} placebo blocks).",
      i = "Use a shorter {.arg test_length}, a larger {.arg alpha}, or a longer history."))
  }
  # The few-market designs: the selection, then each set on every window.
  sel <- select_markets(panel, n_treated = n_treated, test_length = test_length,
                        method = "synth", effect = effect, n_windows = n_windows,
                        alpha = alpha, n_candidates = n_candidates,
                        target_power = target_power)
  ends <- sel$plan$window_end
  bt_args <- list(panel, test_length = test_length, method = "synth", effect = effect,
                  alpha = alpha, window_ends = ends, target_power = target_power)
  bt_sel <- do.call(market_backtest, c(bt_args, list(treated = sel$chosen)))
  first <- match(as.character(sel$plan$window_start[1]), as.character(hist$times))
  pre <- list(Y = Y[, seq_len(first - 1L), drop = FALSE], times = hist$times[seq_len(first - 1L)],
              vars = hist$vars)
  syn <- withCallingHandlers(
    sd_design_fit(pre, n_treated, test_length, test_length, NULL, NULL, "auto", 1e5, 10L,
                  alpha, call = NULL),
    mktcausal_warning_granular_inference = function(w) invokeRestart("muffleWarning"))
  bt_syn <- do.call(market_backtest, c(bt_args, list(treated = syn$treated)))
  # The randomized design on the same windows.
  units <- data.frame(market = rownames(Y), outcome_mean = rowMeans(Y), stringsAsFactors = FALSE)
  # Complete randomization: its granularity note (few distinct assignments)
  # does not bear on a power comparison.
  rand <- withCallingHandlers(
    rerandomize(units, ~ outcome_mean, n_treated = n_treated, accept = 1, id = "market"),
    mktcausal_warning_granular_inference = function(w) invokeRestart("muffleWarning"))
  pw <- design_power(panel, design = rand, effect = effect, test_length = test_length,
                     n_windows = length(ends), method = "diff_in_means",
                     inference = "randomization", n_draws = n_draws, reference_draws = 500,
                     alpha = alpha, target_power = target_power)
  if (!identical(as.character(pw$windows$end_time), as.character(ends))) {
    stop("Internal error: the randomized and few-market designs use different windows.",
         call. = FALSE)
  }
  # Volumes over the windows.
  e_idx <- match(as.character(ends), as.character(hist$times))
  win_tot <- sapply(e_idx, function(e) rowSums(Y[, seq.int(e - test_length + 1L, e), drop = FALSE]))
  win_tot <- matrix(win_tot, nrow = nrow(Y), dimnames = list(rownames(Y), NULL))
  vol_of <- function(mk) mean(colSums(win_tot[mk, , drop = FALSE]))
  vols <- c(randomized = n_treated * mean(win_tot), selected = vol_of(sel$chosen),
            synthetic = vol_of(syn$treated))
  n_tr <- c(randomized = n_treated, selected = length(sel$chosen), synthetic = length(syn$treated))
  share <- vols / mean(colSums(win_tot))
  pw_rand <- pw$power[pw$power$test_length == test_length, ]
  curves <- rbind(
    data.frame(design = "randomized", effect = pw_rand$effect, power = pw_rand$power,
               mc_se = pw_rand$mc_se, n_sims = pw_rand$n_sims),
    data.frame(design = "selected", effect = bt_sel$power$effect, power = bt_sel$power$power,
               mc_se = bt_sel$power$mc_se, n_sims = bt_sel$power$n_windows),
    data.frame(design = "synthetic", effect = bt_syn$power$effect, power = bt_syn$power$power,
               mc_se = bt_syn$power$mc_se, n_sims = bt_syn$power$n_windows))
  curves$incremental <- curves$effect * vols[curves$design]
  rownames(curves) <- NULL
  designs <- names(vols)
  summ <- do.call(rbind, lapply(designs, function(d) {
    cv <- curves[curves$design == d, ]
    m <- power_mde(data.frame(test_length = test_length, effect = cv$effect, power = cv$power,
                              n_sims = cv$n_sims), target_power, alpha)
    aa <- cv$power[cv$effect == 0]
    cost <- cost_per_market * n_tr[[d]] + cost_per_unit * vols[[d]]
    inc <- m$mde_interpolated * vols[[d]]
    data.frame(design = d,
               markets = switch(d, randomized = sprintf("%d drawn at random", n_treated),
                                selected = paste(sel$chosen, collapse = ", "),
                                synthetic = paste(syn$treated, collapse = ", ")),
               n_treated = n_tr[[d]], share = share[[d]],
               mde = m$mde_interpolated, mde_reached = m$mde_reached,
               aa_rejection = aa,
               # The Monte Carlo SE of a test of exact size (as select_markets()):
               # an observed rate of 0 in 6 windows is not known to the digit.
               aa_se = sqrt(alpha * (1 - alpha) / cv$n_sims[1]),
               n_sims = cv$n_sims[1],
               windows_seen = switch(d, selected = length(sel$selection_windows), 0L),
               treated_volume = vols[[d]], incremental_at_mde = inc, cost = cost,
               cost_per_incremental = if (is.finite(inc) && inc > 0) cost / inc else NA_real_,
               stringsAsFactors = FALSE)
  }))
  rownames(summ) <- NULL
  structure(list(
    summary = summ, power = curves,
    windows = data.frame(start = sel$plan$window_start, end = ends),
    designs = list(randomized = pw, selection = sel, synthetic = syn,
                   selected_backtest = bt_sel, synthetic_backtest = bt_syn),
    effect = effect, alpha = alpha, target_power = target_power, test_length = test_length,
    n_treated = n_treated, cost_per_market = cost_per_market, cost_per_unit = cost_per_unit,
    vars = hist$vars, call = call
  ), class = "mkt_design_comparison")
}
