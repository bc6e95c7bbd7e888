#' Choose the markets of a few-market test by backtested power
#'
#' When only a handful of markets can be treated (a regional launch, a
#' costly TV buy), randomizing them has little power. `select_markets()`
#' searches candidate treated sets, ranks them by the error scale of the
#' planned analysis on historical blocks, and reports the power and minimum
#' detectable effect (MDE) from backtests on historical windows that the
#' ranking never read: the zero-effect rejection rate of the chosen set on
#' those windows is the size of the test *under the selection*.
#'
#' @section Backtest:
#' Each market's outcome is divided by its mean level over the periods
#' before the first backtest window, so every series is an index near 1; the
#' treated series is the treated markets' total over their total level (a
#' volume-weighted index), and the donors are every market outside the set
#' (markets in `exclude` stay donors). Time is cut into blocks of
#' `test_length` periods ending at the last period of the history; a
#' leading remainder is fitted on but never tested. A backtest window is one
#' of the last `n_windows` blocks. In each window the planned estimator is
#' fitted on every period before it and predicts the window:
#' `"synth"` is a synthetic control with an intercept (simplex weights over
#' the donors fitted to the centred series), `"sdid"` synthetic difference
#' in differences (Arkhangelsky et al. 2021) exactly as
#' `synth(method = "sdid")` fits it (unit weights with an intercept and a
#' ridge penalty, time weights), with the treated markets' index as one
#' pooled treated unit, `"tbr"` a time-based regression
#' of the treated index on the donors' volume-weighted index,
#' `"diff_in_means"` the difference of the two indices, each centred on its
#' pre-period mean (a difference in differences, for comparison), and
#' `"lin"` the randomized comparison adjusted for the pre-period, at the
#' market level: a least-squares line across the donors of each market's
#' outcome total over the window on its total over the fit period (in
#' outcome units; an ANCOVA fitted on the untreated arm, Lin's 2013
#' adjustment for the treated set) predicts each treated market, and the
#' counterfactual is the sum of the predictions. The
#' estimate is the relative lift over the window, sum of gaps over sum of
#' counterfactual. An effect \eqn{\delta} multiplies the treated index in the
#' window by \eqn{1 + \delta}; the fit does not see the window (SDID's unit
#' and time weights read the treated unit before the window only), so the
#' estimate is linear in \eqn{\delta} and one fit per window serves every
#' effect size. The `rmse` of a set is the root mean square of the fit's
#' pre-period gaps relative to the treated level; for `"lin"`, which fits no
#' path, it is that of `"diff_in_means"`.
#'
#' @section Inference:
#' The planned test is a placebo-in-time test with leave-one-block-out fits:
#' for a full block of the fit period, the estimator is refitted on the fit
#' period without that block and predicts it, which gives the estimate when
#' nothing happened. The full blocks before the first window alternate,
#' counting back from it, between two roles: *reference* blocks, whose
#' placebo estimates \eqn{e_1, \dots, e_B} are the test's reference, and
#' *selection* blocks, whose placebo estimates rank the candidate sets (see
#' below). Window blocks are reference blocks for later windows. With
#' `inference = "t"` (the default) the test rejects when
#' \eqn{|\hat\tau| > t_{B-1, 1-\alpha/2} \sqrt{\sum_b e_b^2 / B}}: it needs
#' a handful of reference blocks but leans on roughly normal errors. With
#' `inference = "placebo"` it rejects when the rank p-value
#' \eqn{(1 + \#\{|e_b| \ge |\hat\tau|\}) / (B + 1)} is at most `alpha`:
#' exact when the blocks are exchangeable, but it needs
#' \eqn{B \ge 1/\alpha - 1} reference blocks (19 at 5%), which two years
#' of weekly data allow only for short tests. Windows without enough
#' reference blocks are dropped with a warning of class
#' `mktcausal_warning_few_placebos`.
#'
#' Every method uses the same blocks and the same rule: for `"sdid"` and
#' `"lin"` too, a placebo estimate is the method refitted without the block
#' and predicting it (for `"sdid"` the block's periods are the post-period
#' and the rest of the fit period, on both sides of it, the pre-period).
#'
#' All the fits of `"synth"`, `"tbr"`, `"diff_in_means"` and `"lin"` come
#' from cross-products of the index series
#' over blocks, formed once per window: a candidate set only chooses which
#' rows are treated and which are donors, and the synthetic-control weights
#' are solved on the Gram matrix (Wolfe's algorithm) in compiled code.
#' `"sdid"` refits `synth()`'s SDID solver on the series for every window
#' and placebo block (warm-started from the window's weights): it is
#' about a hundred times slower than `"synth"` (1.4 to 1.7 s per candidate
#' set on 200 markets by 104 weeks with a 4-week test and 8 windows, against
#' 14 to 25 ms for `"synth"` and 1 ms for `"lin"`), so search few sets with it,
#' or choose with `"synth"` and check the chosen set with
#' [market_backtest()] and `method = "sdid"`.
#'
#' @section Ranking and size under selection:
#' Choosing the set whose backtest looks best, and then testing it against
#' the same history, makes the test anti-conservative: the winner's
#' historical errors are small partly by luck, its future error is not. (On
#' simulated factor panels, ranking on the windows' own errors and critical
#' values and testing the chosen set on later held-out windows rejected about 9%
#' of 360 window tests at a 5% level.) So the ranking reads only the selection
#' blocks: a set's criterion `noise` is the root mean square of its
#' selection-block placebo estimates over the slope of its estimate in the
#' effect, averaged over the windows, and sets are ranked by it (then by
#' pre-period fit). The windows' own estimates and the reference blocks are
#' never read by the ranking, so each window is a fresh A/A trial of the
#' chosen set: its zero-effect rejection rate on the windows is the size of
#' the test under the selection (checked by simulation in the package's
#' tests and `bench/select_markets.R`). `holdout` can in addition keep the
#' latest windows out of the ranking.
#'
#' The reported MDE is, per window, the smallest lift detected whatever the
#' sign of the window's error, \eqn{(c_w + |\hat\tau_w|) / s_w} with
#' \eqn{c_w} the critical value and \eqn{s_w} the slope, read at the
#' `target_power` quantile over the windows.
#'
#' @section Search:
#' `"exhaustive"` scores every feasible set. `"greedy"` builds a set one
#' market at a time, adding at each step the market that gives the best
#' score, then improves it by single swaps (a member for a non-member) until
#' no swap helps or `n_candidates` sets have been scored. `"stochastic"`
#' scores `n_candidates` distinct feasible sets drawn at random (uniformly,
#' under `set.seed()`), then improves the best by single swaps. `"auto"`
#' is exhaustive when the number of feasible sets is at most `n_candidates`
#' and greedy otherwise. Feasible: the size is in `n_treated`, it holds
#' every market of `include` and none of `exclude`, and its share of the
#' outcome's volume is at most `max_share`.
#'
#' @param formula `outcome ~ 0 | market + time`: the untreated history (see
#'   [mkt_panel()]), or a [mkt_panel()] with `data` left out.
#' @param data A long data frame, one row per market (or finer unit) and
#'   period.
#' @param n_treated Number of treated markets, or a range such as `2:4`.
#' @param include,exclude Markets that must be / must not be treated.
#' @param max_share `NULL` or the largest share of total outcome volume the
#'   treated markets may hold (the budget cap).
#' @param test_length Length of the planned test, in periods.
#' @param method The planned estimator: `"synth"` (synthetic control),
#'   `"sdid"` (synthetic difference in differences), `"tbr"` (time-based
#'   regression), `"diff_in_means"` (difference in differences of the
#'   indices) or `"lin"` (regression of the window's market totals on their
#'   pre-period totals); see Backtest.
#' @param effect Grid of relative lifts (0.05 = 5%); 0 gives the A/A row.
#' @param n_windows Number of backtest windows (the latest blocks).
#' @param alpha Two-sided level of the planned test.
#' @param search `"auto"`, `"exhaustive"`, `"greedy"` or `"stochastic"`.
#' @param n_candidates The most candidate sets to score (the cap for
#'   exhaustive search, the budget of the others).
#' @param holdout Number of the latest windows whose selection blocks are
#'   not used by the ranking (`NULL` or `0`: none); see Ranking.
#' @param inference `"t"` or `"placebo"` (rank test); see Inference.
#' @param randomize_by `NULL`, or a column of markets that the formula's
#'   units nest in (e.g. `"dma"` over zones): outcomes are summed to it.
#' @param test_start `NULL`, or the first period of the planned test when
#'   the data run into it: only earlier periods are history.
#' @param window_ends `NULL`, or the end periods of the backtest windows
#'   (each a whole number of test lengths before the history's end).
#' @param target_power Power at which the MDE is read.
#' @param chunk_size Candidate sets per chunk of the resampling layer (the
#'   unit of work on the user's [future::plan()]); it does not change the
#'   results.
#' @param ... Must be empty.
#' @return An object of class `mkt_market_selection`: `tidy()` gives one row
#'   per scored set, ranked; `tidy(x, "windows")` the chosen set's backtest
#'   by window; `tidy(x, "power")` its power curve on the selection and the
#'   held-out windows; `glance()` one row; `plot()` the power curves.
#'   `$chosen` is the chosen set (market labels).
#' @seealso [market_backtest()] to score one given set on the same windows;
#'   [design_power()] for randomized designs.
#' @export
#' @examples
#' dma <- aggregate(sales ~ dma + week, geo_sales, sum)
#' dma <- dma[dma$dma %in% sprintf("DMA%03d", 1:40), ]
#' sel <- select_markets(sales ~ 0 | dma + week, dma, n_treated = 2,
#'                       n_windows = 6, n_candidates = 200)
#' sel
#' head(tidy(sel))
#' glance(sel)
select_markets <- function(formula, data, n_treated = 3, include = NULL, exclude = NULL,
                           max_share = NULL, test_length = 4,
                           method = c("synth", "sdid", "tbr", "diff_in_means", "lin"),
                           effect = c(0, 0.025, 0.05, 0.1, 0.2), n_windows = 8,
                           alpha = 0.05, search = c("auto", "exhaustive", "greedy", "stochastic"),
                           n_candidates = 1000, holdout = NULL,
                           inference = c("t", "placebo"), randomize_by = NULL,
                           test_start = NULL, window_ends = NULL, target_power = 0.8,
                           chunk_size = 100, ...) {
  check_dots(...)
  method <- check_choice(method)
  search <- check_choice(search)
  inference <- check_choice(inference)
  alpha <- check_alpha(alpha)
  n_candidates <- check_count(n_candidates, "n_candidates", min = 1)
  chunk_size <- check_count(chunk_size, "chunk_size", min = 1)
  effect <- market_effect_grid(effect)
  check_target_power(target_power)
  if (missing(data)) data <- NULL
  mp <- market_panel(formula, data, randomize_by, test_start)
  plan <- market_plan(mp, test_length, n_windows, window_ends, alpha, inference, method)
  holdout <- market_holdout(holdout, length(plan$window_block))
  pool <- market_pool(mp, n_treated, include, exclude, max_share)
  market_donor_warning(length(mp$markets), pool$sizes, method)
  sel_w <- seq_len(length(plan$window_block) - holdout)
  scorer <- market_scorer(plan, chunk_size)
  res <- market_search(pool, scorer, sel_w, effect, target_power, alpha, search, n_candidates)
  ranked <- market_rank(res, sel_w, effect, target_power, alpha)
  chosen <- ranked$sets[[1L]]
  hold_w <- setdiff(seq_along(plan$window_block), sel_w)
  out <- structure(list(
    candidates = ranked, chosen = mp$markets[chosen], chosen_index = chosen,
    plan = plan, markets = mp$markets, share = mp$share, effect = effect,
    selection_windows = sel_w, holdout_windows = hold_w,
    search = res$search, search_asked = search, n_feasible = pool$n_feasible,
    n_scored = res$n_scored, method = method, inference = inference,
    alpha = alpha, target_power = target_power, test_length = plan$test_length,
    n_treated = pool$sizes, include = include, exclude = exclude, max_share = max_share,
    call = match.call()
  ), class = "mkt_market_selection")
  out$backtest <- market_backtest_table(out, chosen)
  market_size_warning(out)
  out
}

#' Backtest one given treated set
#'
#' Scores a treated set with the machinery of [select_markets()]: the same
#' windows, estimator, placebo test and effect grid, so that a randomized,
#' synthetic or hand-picked design can be compared with the selected one on
#' equal terms. No selection is made, so every window is an honest A/A
#' trial for this set (when the set was not chosen by looking at them).
#'
#' @inheritParams select_markets
#' @param treated Labels of the treated markets.
#' @return An object of class `mkt_market_backtest`: `tidy()` the power
#'   curve (power, Monte Carlo SE), `tidy(x, "windows")` the estimate,
#'   critical value and detectable effect by window, `glance()` one row with
#'   the MDE and the A/A rate.
#' @export
#' @examples
#' dma <- aggregate(sales ~ dma + week, geo_sales, sum)
#' bt <- market_backtest(sales ~ 0 | dma + week, dma,
#'                       treated = c("DMA001", "DMA002", "DMA003"), n_windows = 6)
#' tidy(bt)
market_backtest <- function(formula, data, treated, test_length = 4,
                            method = c("synth", "sdid", "tbr", "diff_in_means", "lin"),
                            effect = c(0, 0.025, 0.05, 0.1, 0.2), n_windows = 8,
                            alpha = 0.05, inference = c("t", "placebo"), randomize_by = NULL,
                            test_start = NULL, window_ends = NULL, target_power = 0.8, ...) {
  check_dots(...)
  method <- check_choice(method)
  inference <- check_choice(inference)
  alpha <- check_alpha(alpha)
  effect <- market_effect_grid(effect)
  check_target_power(target_power)
  if (missing(data)) data <- NULL
  mp <- market_panel(formula, data, randomize_by, test_start)
  plan <- market_plan(mp, test_length, n_windows, window_ends, alpha, inference, method)
  idx <- market_ids(treated, mp$markets, "treated")
  if (!length(idx)) {
    abort_mkt("bad_argument", "{.arg treated} must name at least one market.")
  }
  if (length(idx) >= length(mp$markets)) {
    abort_mkt("too_few_markets", c(
      "{.arg treated} names every market, so no donor is left.",
      i = "Leave some markets untreated."))
  }
  market_donor_warning(length(mp$markets), length(idx), method)
  sc <- market_scorer(plan, 1L)(list(idx))
  w <- seq_along(plan$window_block)
  obj <- list(plan = plan, markets = mp$markets, effect = effect, method = method,
              inference = inference, alpha = alpha, target_power = target_power,
              test_length = plan$test_length, treated = mp$markets[idx],
              share = sum(mp$share[idx]), call = match.call())
  obj$power <- market_power_table(sc, 1L, w, effect, alpha)
  obj$summary <- market_set_summary(sc, 1L, w, effect, target_power, alpha)
  obj$backtest <- market_window_table(plan, sc, 1L, effect, idx)
  structure(obj, class = "mkt_market_backtest")
}

# --- input ------------------------------------------------------------------

market_effect_grid <- function(effect, call = rlang::caller_env()) {
  if (!is.numeric(effect) || !length(effect) || any(!is.finite(effect)) || any(effect < 0)) {
    abort_mkt("bad_argument", c(
      "{.arg effect} must be a grid of relative lifts of at least 0, without missing values.",
      i = "For example {.code effect = c(0, 0.025, 0.05, 0.1)}; include 0 for the A/A row."
    ), call = call)
  }
  sort(unique(as.numeric(effect)))
}

check_target_power <- function(target_power, call = rlang::caller_env()) {
  if (!is.numeric(target_power) || length(target_power) != 1L || is.na(target_power) ||
      target_power <= 0 || target_power >= 1) {
    abort_mkt("bad_argument", "{.arg target_power} must be one number strictly between 0 and 1.",
              call = call)
  }
  invisible(target_power)
}

# Markets x periods of the history: outcomes summed to `randomize_by`,
# complete and positive (the index divides by each market's level).
market_panel <- function(formula, data, randomize_by, test_start, call = rlang::caller_env()) {
  if (!is.null(randomize_by)) check_name(randomize_by, "randomize_by")
  if (is.data.frame(data)) check_columns(data, randomize_by, "randomize_by")
  panel <- as_panel(formula, data, extra = randomize_by, call = call)
  if (!is.null(panel$vars$treatment) || length(panel$vars$covariates)) {
    abort_mkt("bad_formula", c(
      "Market selection backtests untreated history: write {.code outcome ~ 0 | market + time}.",
      i = "Leave out the treatment and covariates."
    ), call = call)
  }
  require_varying_outcome(panel$Y[panel$observed], panel$vars$outcome, call = call)
  times <- all_times <- panel$times
  if (is.null(randomize_by)) {
    Y <- panel$Y
    Y[!panel$observed] <- NA
    markets <- as.character(panel$units)
  } else {
    cl <- randomization_clusters(panel, randomize_by, call = call)
    live <- rowSums(panel$observed) > 0
    markets <- sort(unique(cl[live]))
    ci <- match(cl, markets)
    ci[!live] <- NA_integer_
    Y <- cluster_totals(panel, ci, length(markets))
  }
  if (!is.null(test_start)) {
    k <- match(as.character(test_start)[1], as.character(times))
    if (length(test_start) != 1L || is.na(k)) {
      abort_mkt("bad_window", c(
        "{.arg test_start} must be one period of {.field {panel$vars$time}}.",
        x = "You supplied {.val {format(test_start)}}."), call = call)
    }
    if (k <= 2L) {
      abort_mkt("test_too_long", c(
        "{.arg test_start} = {.val {format(test_start)}} leaves {k - 1L} period{?s} of history.",
        i = "Backtests need history before the test; give a later {.arg test_start} or more data."
      ), call = call)
    }
    keep <- seq_len(k - 1L)
    Y <- Y[, keep, drop = FALSE]
    times <- times[keep]
  }
  if (anyNA(Y)) {
    bad <- markets[rowSums(is.na(Y)) > 0]
    abort_mkt("unbalanced_panel", c(
      "Market selection needs every market's outcome in every period of the history; {length(bad)} market{?s} {?has/have} gaps: {.val {utils::head(bad, 5)}}.",
      i = "Fill the gaps or drop those markets."
    ), call = call)
  }
  if (any(Y < 0)) {
    abort_mkt("bad_argument", c(
      "Market selection reads the outcome as a volume: {.field {panel$vars$outcome}} must not be negative.",
      i = "Use sales, visits or another non-negative volume."), call = call)
  }
  dimnames(Y) <- list(markets, as.character(times))
  vol <- rowSums(Y)
  list(Y = Y, markets = markets, times = times, all_times = all_times, share = vol / sum(vol),
       time = panel$vars$time, outcome = panel$vars$outcome)
}

# Blocks, windows, index series: everything the kernel needs.
market_plan <- function(mp, test_length, n_windows, window_ends, alpha, inference, method,
                        call = rlang::caller_env()) {
  n_t <- ncol(mp$Y)
  L <- check_count(test_length, "test_length", min = 1, call = call)
  if (L >= n_t) {
    abort_mkt("test_too_long", c(
      "{.arg test_length} = {L} is not shorter than the history: {.field {mp$time}} has {n_t} period{?s}.",
      i = "Use a test of at most {max(1L, n_t %/% 4L)} periods, so that several windows fit with history before them."
    ), call = call)
  }
  if (ncol(mp$Y) < 2L || nrow(mp$Y) < 2L) {
    abort_mkt("too_few_markets", "Market selection needs at least two markets and two periods.",
              call = call)
  }
  K <- n_t %/% L                       # full blocks
  r <- n_t - K * L                     # leading remainder
  starts <- c(if (r > 0L) 0L, r + (seq_len(K) - 1L) * L)
  lens <- c(if (r > 0L) r, rep(L, K))
  full <- c(if (r > 0L) FALSE, rep(TRUE, K))
  off <- as.integer(r > 0L)            # block index of full block 1 is off + 1 (1-based)
  b_min <- if (inference == "placebo") ceiling(1 / alpha - 1e-9) - 1L else 5L
  # Inference placebos before full block k1 when the windows start there:
  # the blocks before the first window alternate, counting back from it,
  # between the test's reference (inference) and the ranking (selection).
  n_ref <- function(n_before) (n_before + 1L) %/% 2L
  if (!is.null(window_ends)) {
    e <- match(as.character(window_ends), as.character(mp$times))
    if (anyNA(e)) {
      late <- as.character(window_ends[is.na(e)]) %in% as.character(mp$all_times)
      if (any(late)) {
        abort_mkt("windows_overlap_test", c(
          "{.arg window_ends} {.val {format(window_ends[is.na(e)][late])}} {?lies/lie} in the test period (from {.arg test_start} on).",
          i = "Backtest windows must end before the test starts; give ends up to {.val {format(mp$times[n_t])}}."
        ), call = call)
      }
      abort_mkt("bad_window", c(
        "{.arg window_ends} {.val {format(window_ends[is.na(e)])}} {?is/are} not periods of the history.",
        i = "Give end periods of {.field {mp$time}} before the test."), call = call)
    }
    if (any((n_t - e) %% L != 0L)) {
      abort_mkt("bad_window", c(
        "{.arg window_ends} must lie a whole number of test lengths ({L}) before the history's last period {.val {format(mp$times[n_t])}}.",
        i = "For example {.val {format(mp$times[n_t - L * (0:2)])}}."), call = call)
    }
    k <- sort(unique((e - r) %/% L))
    if (any(k < 1L)) {
      abort_mkt("bad_window", "A window in {.arg window_ends} starts before the history.",
                call = call)
    }
  } else {
    n_windows <- check_count(n_windows, "n_windows", min = 1, call = call)
    # the most windows whose first has b_min reference blocks before it
    fits <- vapply(seq_len(K), function(W) n_ref(K - W) >= b_min, TRUE)
    avail <- if (any(fits)) max(which(fits)) else 0L
    if (avail < 1L) {
      abort_mkt("too_few_pre_periods", c(
        "The history has {K} block{?s} of {L} period{?s}; the {inference} test at {.arg alpha} = {alpha} needs {b_min} reference blocks before a window, and as many again to rank the sets on.",
        i = if (inference == "placebo") "Use a shorter {.arg test_length}, a larger {.arg alpha}, or {.code inference = \"t\"}." else "Use a shorter {.arg test_length} or more history."
      ), call = call)
    }
    if (avail < n_windows) {
      warn_mkt("few_placebos", c(
        "Only {avail} window{?s} leave{?s/} the {b_min} reference blocks the {inference} test needs at {.arg alpha} = {alpha}; using {avail}, not {n_windows}.",
        i = "For more windows use a shorter {.arg test_length}{if (inference == 'placebo') ', or {.code inference = \"t\"}' else ''}."
      ))
      n_windows <- avail
    }
    ends <- power_window_ends(n_t, L, n_windows, mp$times, NULL, mp$time, call = call)
    k <- (ends - r) %/% L
  }
  # Roles of the full blocks before the first window: counting back from
  # it, reference, selection, reference, ... Window blocks are references
  # for later windows (the ranking never reads them).
  k1 <- min(k)
  selection <- rep(FALSE, length(starts))
  before <- seq_len(k1 - 1L)
  sel_full <- before[(k1 - before) %% 2L == 0L]
  selection[off + sel_full] <- TRUE
  n_placebo <- vapply(k, function(kk) sum(!selection[off + seq_len(kk - 1L)]), 1L)
  n_select <- length(sel_full)
  few <- n_placebo < b_min
  if (any(few)) {
    warn_mkt("few_placebos", c(
      "{sum(few)} window{?s} {?has/have} fewer than the {b_min} reference blocks the {inference} test needs at {.arg alpha} = {alpha}{if (inference == 'placebo') ': they never reject' else ''}.",
      i = "Choose later {.arg window_ends}, a shorter {.arg test_length} or {.code inference = \"t\"}."))
  }
  first <- starts[off + min(k)]        # 0-based start of the earliest window
  level <- rowMeans(mp$Y[, seq_len(first), drop = FALSE])
  if (any(level <= 0)) {
    abort_mkt("bad_argument", c(
      "{sum(level <= 0)} market{?s} {?has/have} no volume before the first backtest window: {.val {utils::head(mp$markets[level <= 0], 5)}}.",
      i = "Drop markets without sales, or add them to {.arg exclude} after dropping them from {.arg data}."
    ), call = call)
  }
  Z <- mp$Y / level
  # tq[B + 1]: the t quantile for B placebo blocks (B - 1 degrees of freedom).
  tq <- c(NA_real_, NA_real_, if (K > 1L) stats::qt(1 - alpha / 2, seq_len(K - 1L)))
  list(Z = unname(Z), level = unname(level), block_start = as.integer(starts),
       block_len = as.integer(lens), full = full,
       window_block = as.integer(off + k - 1L), # 0-based kernel block index
       window_end = mp$times[r + k * L], window_start = mp$times[r + (k - 1L) * L + 1L],
       n_placebo = as.integer(n_placebo), n_select = n_select, selection = selection,
       test_length = L, method = method,
       method_code = match(method, c("synth", "tbr", "diff_in_means", "lin")) - 1L, # NA: sdid (R)
       inference = inference, alpha = alpha, tq = tq, time = mp$time, times = mp$times,
       outcome = mp$outcome)
}

market_holdout <- function(holdout, n_w, call = rlang::caller_env()) {
  if (is.null(holdout)) return(0L)
  holdout <- check_count(holdout, "holdout", min = 0, call = call)
  if (holdout >= n_w) {
    abort_mkt("bad_argument", c(
      "{.arg holdout} = {holdout} leaves no window to rank the sets on ({n_w} window{?s}).",
      i = "Use {.code holdout <= {n_w - 1L}}, or more {.arg n_windows}."), call = call)
  }
  holdout
}

market_ids <- function(x, markets, arg, call = rlang::caller_env()) {
  if (is.null(x)) return(integer(0))
  x <- unique(as.character(x))
  idx <- match(x, markets)
  if (anyNA(idx)) {
    abort_mkt("bad_argument", c(
      "{.arg {arg}} names market{?s} not in the data: {.val {x[is.na(idx)]}}.",
      i = "Use labels of the market column, e.g. {.val {utils::head(markets, 3)}}."
    ), call = call)
  }
  idx
}

# The feasible space: sizes, forced and barred markets, the volume cap.
market_pool <- function(mp, n_treated, include, exclude, max_share,
                        call = rlang::caller_env()) {
  if (!is.numeric(n_treated) || !length(n_treated) || anyNA(n_treated) ||
      any(n_treated < 1) || any(n_treated != round(n_treated))) {
    abort_mkt("bad_argument", c(
      "{.arg n_treated} must be whole numbers of at least 1, e.g. {.code 3} or {.code 2:4}.",
      x = "You supplied {.val {format(n_treated)}}."), call = call)
  }
  sizes <- sort(unique(as.integer(n_treated)))
  inc <- market_ids(include, mp$markets, "include", call = call)
  exc <- market_ids(exclude, mp$markets, "exclude", call = call)
  both <- intersect(inc, exc)
  if (length(both)) {
    abort_mkt("conflicting_markets", c(
      "{.val {mp$markets[both]}} {?is/are} in both {.arg include} and {.arg exclude}.",
      i = "A market is either forced into the treated set or kept out of it; drop it from one."
    ), call = call)
  }
  if (length(inc) > max(sizes)) {
    abort_mkt("conflicting_markets", c(
      "{.arg include} forces {length(inc)} markets into a treated set of at most {max(sizes)}.",
      i = "Raise {.arg n_treated} to at least {length(inc)} or include fewer markets."
    ), call = call)
  }
  sizes <- sizes[sizes >= length(inc)]
  n <- length(mp$markets)
  cand <- setdiff(seq_len(n), c(inc, exc))
  if (length(cand) + length(inc) < max(sizes)) {
    abort_mkt("too_few_markets", c(
      "{length(cand) + length(inc)} market{?s} can be treated, fewer than {.arg n_treated} = {max(sizes)}.",
      i = "Lower {.arg n_treated} or exclude fewer markets."), call = call)
  }
  if (max(sizes) >= n) {
    abort_mkt("too_few_markets", c(
      "Treating {max(sizes)} of {n} markets leaves no donor.",
      i = "Lower {.arg n_treated}: the estimators compare the treated markets with the others."
    ), call = call)
  }
  if (!is.null(max_share)) {
    check_probability(max_share, "max_share", call = call)
    if (sum(mp$share[inc]) > max_share) {
      abort_mkt("conflicting_markets", c(
        "The markets of {.arg include} hold {signif(100 * sum(mp$share[inc]), 3)}% of the volume, above {.arg max_share} = {max_share}.",
        i = "Raise {.arg max_share} or include fewer markets."), call = call)
    }
  }
  cap <- if (is.null(max_share)) Inf else max_share
  n_feasible <- sum(vapply(sizes, function(k) choose(length(cand), k - length(inc)), 1))
  list(sizes = sizes, include = inc, exclude = exc, cand = cand, share = mp$share,
       cap = cap, n_feasible = n_feasible)
}

# --- scoring -----------------------------------------------------------------

# A function of a list of sets (integer row indices) returning the kernel's
# matrices (sets x windows), run in chunks on the resampling layer.
market_scorer <- function(plan, chunk_size) {
  force(plan)
  function(sets) {
    n <- length(sets)
    kernel <- function(idx) {
      s <- sets[idx]
      if (plan$method == "sdid") return(market_sdid_scores(plan, s))
      len <- lengths(s)
      cpp_market_backtest(plan$Z, plan$level, plan$block_start, plan$block_len, plan$full,
                          plan$window_block, plan$selection, plan$method_code, unlist(s) - 1L,
                          c(0L, cumsum(len)), plan$alpha, plan$inference == "placebo",
                          plan$tq, 1e-10, 10000L)
    }
    if (n <= chunk_size) {
      parts <- list(kernel(seq_len(n)))
    } else {
      parts <- resample_chunks(n, kernel, chunk_size = chunk_size, label = "candidate sets",
                               each = "chunk", globals = list(kernel = kernel, sets = sets,
                                                              plan = plan))
    }
    nms <- c("estimate", "slope", "critical", "rmse", "noise", "converged")
    out <- lapply(nms, function(nm) do.call(rbind, lapply(parts, `[[`, nm)))
    names(out) <- nms
    out
  }
}

# Synthetic difference in differences (Arkhangelsky et al. 2021) on the
# plan's blocks, with synth(method = "sdid")'s own fit (fit_one(): unit
# weights with an intercept and ridge penalty, time weights): for each set
# and window, the window's fit and the leave-one-block-out placebo fits, in
# R. The treated set is one pooled unit, its volume-weighted index. Returns
# the kernel's matrices; the critical value comes from the kernel's rule.
market_sdid_scores <- function(plan, sets) {
  W <- length(plan$window_block)
  n <- length(sets)
  mat <- function(v = NA_real_) matrix(v, n, W)
  out <- list(estimate = mat(), slope = mat(), critical = mat(), rmse = mat(),
              noise = mat(), converged = matrix(TRUE, n, W))
  starts <- plan$block_start + 1L
  ends <- starts + plan$block_len - 1L
  periods <- function(b) starts[b]:ends[b] # b 1-based
  for (i in seq_len(n)) {
    set <- sets[[i]]
    a <- plan$level[set] / sum(plan$level[set])
    x1 <- drop(crossprod(plan$Z[set, , drop = FALSE], a))
    Y <- rbind(x1, plan$Z[-set, , drop = FALSE])
    w_prev <- numeric(0) # warm starts: the last window's, the window's weights
    for (w in seq_len(W)) {
      wb <- plan$window_block[w] + 1L
      pre <- seq_len(starts[wb] - 1L)
      f <- market_sdid_fit(Y, pre, periods(wb), w_prev)
      w_prev <- f$w
      out$estimate[i, w] <- f$gap / f$cf
      out$slope[i, w] <- f$x1 / f$cf
      out$rmse[i, w] <- f$rmse / mean(x1[pre])
      conv <- f$converged
      before <- seq_len(wb - 1L)
      blocks <- before[plan$full[before]]
      e <- vapply(blocks, function(b) {
        g <- market_sdid_fit(Y, setdiff(pre, periods(b)), periods(b), f$w)
        conv <<- conv && g$converged
        g$gap / g$cf
      }, 1)
      sel <- plan$selection[blocks]
      out$noise[i, w] <- if (any(sel)) sqrt(mean(e[sel]^2)) else NA_real_
      ref <- e[!sel]
      B <- length(ref)
      tq <- if (B < length(plan$tq)) plan$tq[B + 1L] else NA_real_
      out$critical[i, w] <- cpp_market_critical(ref, plan$alpha, plan$inference == "placebo", tq)
      out$converged[i, w] <- conv
    }
  }
  out
}

# One SDID fit of row 1 of Y from the other rows on periods `fit`, predicting
# periods `target`: the sums of the gap, the treated index and the
# counterfactual over the target, the pre-period RMSE and the unit weights
# (w0 warm-starts them).
market_sdid_fit <- function(Y, fit, target, w0 = numeric(0)) {
  M <- Y[, c(fit, target), drop = FALSE]
  r <- fit_one(list(panel = list(Y = M)), 1L, length(fit) + 1L, seq.int(2L, nrow(M)), "sdid",
               NULL, NULL, w0 = w0)
  post <- length(fit) + seq_along(target)
  x1 <- sum(M[1L, post])
  cf <- sum(r$synthetic[post])
  list(gap = x1 - cf, x1 = x1, cf = cf, rmse = r$pre_rmspe, w = unname(r$w),
       converged = isTRUE(r$convergence$converged))
}

# Rejections at each effect: sets x windows x effects.
market_rejections <- function(sc, rows, w, effect) {
  est <- sc$estimate[rows, w, drop = FALSE]
  sl <- sc$slope[rows, w, drop = FALSE]
  cr <- sc$critical[rows, w, drop = FALSE]
  vapply(effect, function(d) abs(est + d * sl) > cr, matrix(TRUE, length(rows), length(w)))
}

# Per-window detectable effect whatever the sign of the window's error.
market_detectable <- function(sc, rows, w) {
  d <- (sc$critical[rows, w, drop = FALSE] + abs(sc$estimate[rows, w, drop = FALSE])) /
    sc$slope[rows, w, drop = FALSE]
  d[!is.finite(d) | sc$slope[rows, w, drop = FALSE] <= 0] <- Inf
  d
}

# The target-power quantile of the detectable effects, by row.
market_mde <- function(d, target_power) {
  k <- max(1L, ceiling(target_power * ncol(d) - 1e-9))
  apply(d, 1L, function(x) sort(x)[k])
}

market_set_summary <- function(sc, rows, w, effect, target_power, alpha) {
  rej <- market_rejections(sc, rows, w, effect)
  pw <- apply(rej, c(1L, 3L), mean)
  if (is.null(dim(pw))) pw <- matrix(pw, nrow = length(rows))
  d <- market_detectable(sc, rows, w)
  aa <- if (any(effect == 0)) pw[, effect == 0] else rep(NA_real_, length(rows))
  pos <- effect > 0
  noise <- sc$noise[rows, w, drop = FALSE] / sc$slope[rows, w, drop = FALSE]
  noise[!is.finite(noise)] <- Inf
  list(power = pw, mde = market_mde(d, target_power), noise = rowMeans(noise),
       mean_power = if (any(pos)) rowMeans(pw[, pos, drop = FALSE]) else rep(NA_real_, length(rows)),
       aa = aa, aa_se = rep(sqrt(alpha * (1 - alpha) / length(w)), length(rows)),
       rmse = rowMeans(sc$rmse[rows, w, drop = FALSE]), n_windows = length(w))
}

# Order: the error scale on the selection blocks (never the windows' own
# errors nor the test's reference), then the fit.
market_order <- function(s) order(s$noise, s$rmse, method = "radix")

# --- search -----------------------------------------------------------------

market_search <- function(pool, scorer, w, effect, target_power, alpha, search, n_candidates) {
  if (search == "auto") search <- if (pool$n_feasible <= n_candidates) "exhaustive" else "greedy"
  if (search == "exhaustive" && pool$n_feasible > n_candidates) {
    abort_mkt("too_large", c(
      "Exhaustive search would score {format(pool$n_feasible, big.mark = ',')} sets, more than {.arg n_candidates} = {n_candidates}.",
      i = "Raise {.arg n_candidates}, or use {.code search = \"greedy\"} or {.code \"stochastic\"}."))
  }
  env <- new.env(parent = emptyenv())
  env$sets <- list()
  env$keys <- character(0)
  env$scores <- NULL
  key <- function(s) paste(sort(s), collapse = ",")
  # Scores new sets (those not seen), keeps every result, returns the
  # summaries of `sets` in order.
  score <- function(sets) {
    sets <- lapply(sets, sort)
    k <- vapply(sets, key, "")
    new <- !duplicated(k) & !(k %in% env$keys)
    if (any(new)) {
      sc <- scorer(sets[new])
      env$sets <- c(env$sets, sets[new])
      env$keys <- c(env$keys, k[new])
      env$scores <- if (is.null(env$scores)) sc else
        Map(rbind, env$scores, sc[names(env$scores)])
    }
    rows <- match(k, env$keys)
    list(rows = rows, s = market_set_summary(env$scores, rows, w, effect, target_power, alpha))
  }
  feasible <- function(s) sum(pool$share[s]) <= pool$cap + 1e-12
  best_of <- function(r) r$rows[market_order(r$s)[1L]]
  budget_left <- function() n_candidates - length(env$keys)
  # Single swaps of `cur` (a member for a non-member, never a forced one).
  improve <- function(cur) {
    repeat {
      free <- setdiff(cur, pool$include)
      out <- setdiff(pool$cand, cur)
      sw <- unlist(lapply(free, function(m) lapply(out, function(o) c(setdiff(cur, m), o))),
                   recursive = FALSE)
      sw <- Filter(feasible, sw)
      fresh <- sw[!(vapply(sw, function(s) key(sort(s)), "") %in% env$keys)]
      if (!length(fresh) || budget_left() <= 0) break
      fresh <- fresh[seq_len(min(length(fresh), budget_left()))]
      r <- score(c(list(cur), fresh))
      b <- best_of(r)
      if (b == r$rows[1L]) break
      cur <- env$sets[[b]]
    }
    cur
  }
  if (search == "exhaustive") {
    sets <- unlist(lapply(pool$sizes, function(k) {
      m <- k - length(pool$include)
      if (m == 0L) return(list(pool$include))
      cb <- utils::combn(length(pool$cand), m)
      lapply(seq_len(ncol(cb)), function(j) c(pool$include, pool$cand[cb[, j]]))
    }), recursive = FALSE)
    sets <- Filter(feasible, sets)
    if (!length(sets)) market_none_feasible(pool)
    score(sets)
  } else if (search == "greedy") {
    for (k in pool$sizes) {
      cur <- pool$include
      while (length(cur) < k) {
        add <- lapply(setdiff(pool$cand, cur), function(o) c(cur, o))
        add <- Filter(feasible, add)
        if (!length(add)) market_none_feasible(pool)
        r <- score(add)
        cur <- env$sets[[best_of(r)]]
      }
      improve(cur)
    }
  } else {
    n_draw <- max(1L, n_candidates - 1L)
    sets <- list()
    tries <- 0L
    seen <- character(0)
    while (length(sets) < n_draw && tries < 50L * n_draw) {
      tries <- tries + 1L
      k <- pool$sizes[sample.int(length(pool$sizes), 1L)]
      m <- k - length(pool$include)
      s <- sort(c(pool$include, pool$cand[sample.int(length(pool$cand), m)]))
      ky <- key(s)
      if (ky %in% seen || !feasible(s)) next
      seen <- c(seen, ky)
      sets[[length(sets) + 1L]] <- s
    }
    if (!length(sets)) market_none_feasible(pool)
    r <- score(sets)
    improve(env$sets[[best_of(r)]])
  }
  # The greedy search scores sets on its way to the asked size; only sets of
  # a size in `n_treated` are candidates for the answer.
  ok <- lengths(env$sets) %in% pool$sizes
  list(sets = env$sets[ok], scores = lapply(env$scores, function(m) m[ok, , drop = FALSE]),
       search = search, n_scored = length(env$sets))
}

market_none_feasible <- function(pool, call = rlang::caller_env()) {
  abort_mkt("conflicting_markets", c(
    "No treated set of {.arg n_treated} markets fits under {.arg max_share} = {pool$cap}.",
    i = "Raise {.arg max_share}, lower {.arg n_treated} or include smaller markets."
  ), call = call)
}

market_rank <- function(res, w, effect, target_power, alpha) {
  rows <- seq_along(res$sets)
  s <- market_set_summary(res$scores, rows, w, effect, target_power, alpha)
  s$n_windows <- rep(s$n_windows, length(rows))
  o <- market_order(s)
  list(sets = res$sets[o], scores = lapply(res$scores, function(m) m[o, , drop = FALSE]),
       summary = lapply(s, function(v) if (is.matrix(v)) v[o, , drop = FALSE] else
         if (length(v) == length(o)) v[o] else v))
}

# --- tables -------------------------------------------------------------------

# The A/A row's Monte Carlo SE is the one a test of exact size would have,
# sqrt(alpha (1 - alpha) / n): an observed rate of 0 on a few windows does
# not have an SE of 0.
market_power_table <- function(sc, row, w, effect, alpha) {
  rej <- market_rejections(sc, row, w, effect)
  p <- apply(rej, 3L, mean)
  q <- ifelse(effect == 0, alpha, p)
  data.frame(effect = effect, power = p, mc_se = sqrt(q * (1 - q) / length(w)),
             n_windows = length(w))
}

market_window_table <- function(plan, sc, row, effect, set) {
  W <- length(plan$window_block)
  d <- market_detectable(sc, row, seq_len(W))
  data.frame(window = seq_len(W), start = plan$window_start, end = plan$window_end,
             n_placebo = plan$n_placebo,
             estimate = sc$estimate[row, ], slope = sc$slope[row, ],
             critical = sc$critical[row, ], detectable = d[1L, ],
             reject_aa = abs(sc$estimate[row, ]) > sc$critical[row, ],
             rmse = sc$rmse[row, ], stringsAsFactors = FALSE)
}

market_backtest_table <- function(x, chosen) {
  sc <- lapply(x$candidates$scores, function(m) m[1L, , drop = FALSE])
  tab <- market_window_table(x$plan, sc, 1L, x$effect, chosen)
  tab$role <- ifelse(tab$window %in% x$holdout_windows, "holdout", "backtest")
  tab
}

market_size_warning <- function(x) {
  bt <- x$backtest
  aa <- mean(bt$reject_aa)
  se <- sqrt(x$alpha * (1 - x$alpha) / nrow(bt))
  if (aa > x$alpha + 3 * se) {
    fix <- if (x$inference == "t") {
      "The t rule leans on normal errors; use {.code inference = \"placebo\"} (exact under exchangeable blocks) with a shorter {.arg test_length}, or a longer history."
    } else {
      "Use a longer history, or {.code method = \"tbr\"}, whose placebo errors are steadier."
    }
    warn_mkt("aa_rejection", c(
      "At zero effect the chosen set's test rejects in {signif(100 * aa, 3)}% of the backtest windows, above {.arg alpha} = {x$alpha} by more than 3 Monte Carlo SE.",
      i = fix))
  }
  invisible()
}

# Few donors leave the synthetic control little to match with, and few
# periods per fit make its placebo errors unsteady: say so.
market_donor_warning <- function(n_markets, sizes, method) {
  donors <- n_markets - max(sizes)
  if (method != "diff_in_means" && donors < 5L) {
    warn_mkt("few_donors", c(
      "Only {donors} market{?s} {?is/are} left as donor{?s} for {max(sizes)} treated: the {method} fit and its placebo errors rest on very few series, and the test's size may not hold.",
      i = "Treat fewer markets, add markets to the panel, or use {.code method = \"diff_in_means\"}."))
  }
  invisible()
}
