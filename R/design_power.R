#' Simulation-based power of a re-randomized design from historical windows
#'
#' Replays the experiment planned by a [rerandomize()] design on historical
#' windows of the panel: for each window and each assignment drawn from the
#' design's own rule (re-randomization included), an effect is injected into
#' the treated clusters, the planned estimator and test are applied, and
#' rejections are counted. Power then reflects the panel's seasonality,
#' trends and heavy-tailed clusters, which closed forms such as
#' [power_closed_form()] ignore, and the assignment randomness that
#' fixed-market tools ignore.
#'
#' @section Windows:
#' Let \eqn{T_{max}} be `max(test_length)`. All test lengths share the same
#' window end dates, so a window never ends before period \eqn{T_{max}} of
#' the panel. When `pre` is given, end dates are further restricted to
#' periods at least \eqn{T_{max}} after the last pre-period, so that no
#' window of any length overlaps the outcomes used to build the design's
#' covariates; if that leaves fewer than `n_windows` end dates, the
#' restriction is dropped with a warning of class
#' `mktcausal_warning_windows_overlap_pre`. The `n_windows` end dates are
#' the latest periods of the eligible range, spaced evenly by at most
#' \eqn{T_{max}} periods (so the longest windows do not overlap when the
#' panel has room). A window of length \eqn{T} ending at \eqn{e} covers
#' periods \eqn{e - T + 1, \dots, e}; each cluster's outcome is its total
#' over the window.
#'
#' @section Simulation:
#' For each window the untreated cluster totals \eqn{y_j} are taken as
#' potential outcomes under control. Under an assignment \eqn{a} the
#' observed outcome is \eqn{y_j + \delta a_j g_j}, with \eqn{g_j = y_j}
#' (multiplicative: \eqn{y_j(1 + \delta)}) or \eqn{g_j = \bar y} (additive,
#' \eqn{\bar y} the mean cluster total of the window; with `size`, the
#' additive lift is shared in proportion to cluster size). Both make the
#' average effect \eqn{\delta \bar y}, so \eqn{\delta} is a relative lift.
#' Both estimators are linear in the injected effect and the HC2 variance is
#' quadratic in it, so one set of fits per (assignment, window) gives the
#' whole grid of effects.
#'
#' Tests are two-sided at level `alpha`. `"hc2"` is the t-test of the
#' treatment coefficient with HC2 standard errors (the same fits as
#' [experiment_effect()], \eqn{n - p} degrees of freedom); the difference in means is
#' fitted as Lin's regression on centred stratum indicators, which is the
#' stratum-weighted difference in means. `"randomization"` is the test of
#' no effect conditional on the acceptance rule, as in
#' [randomization_test()], with the difference in means or Lin's HC2
#' t-statistic as statistic, against one reference pool of `reference_draws`
#' accepted assignments drawn per call.
#'
#' The HC2 variance ignores re-randomization, so after balancing on
#' prognostic covariates the difference in means with `"hc2"` is
#' conservative, often far below `alpha` at zero effect and with little
#' power; the simulation shows how much. Lin's estimator on the design
#' covariates, or the randomization test, recovers the precision.
#' `"randomization"` with `"lin"` runs Lin's fit for every reference draw,
#' so it costs far more than the other combinations.
#'
#' @section Several cells:
#' With a design of several cells ([rerandomize()] with a named
#' `n_treated`), each treated cell is compared with control, by the
#' regressions of [experiment_effect()] with several cells (cell indicators
#' or Lin's fully interacted regression, HC2 t-tests; `inference = "hc2"`
#' only). `effect` is either one grid for every cell or a named list giving
#' each treated cell its own grid (a go-dark cell's lift may be negative,
#' e.g. `list(heavy_up = c(0.02, 0.05), go_dark = c(-0.02, -0.05))`); 0 is
#' always added, so every cell has an A/A row. `tidy()` has one row per
#' contrast, test length and effect (columns `contrast` and `cell`);
#' `glance()` one per contrast and test length, with the MDE on the side of
#' the cell's grid and `aa_rejection` with its Monte Carlo error
#' `aa_mc_se`. With a budget, `spend` names every treated cell's change in
#' spend per period, e.g. `spend = c(heavy_up = 2e4, go_dark = -1e4)`
#' (negative for go-dark), `effect` is one grid of iROAS values, and
#' `glance()` gives per contrast the MDE in iROAS units, the power at `iroas`
#' and the spend per period for that cell that reaches `target_power`.
#'
#' @section Budget first:
#' With `spend`, the plan is in money: `spend` is the change in the treated
#' arm's spend per period (all treated clusters together; negative for a
#' go-dark test, where spend is removed and the outcome falls), and `effect`
#' is a grid of iROAS values \eqn{\theta} (incremental outcome per unit of
#' spend; a working channel has \eqn{\theta > 0} whether it is switched on
#' or off). A test of \eqn{T} periods then makes an incremental outcome
#' \eqn{\theta \cdot spend \cdot T} in the treated arm: in a window whose
#' mean cluster total is \eqn{\bar y}, the injected relative effect is
#' \eqn{\delta = \theta \cdot spend \cdot T / (n_1 \bar y)} with \eqn{n_1}
#' treated clusters, shared as `effect_type` says, and the estimates are
#' read back as iROAS. Power, the MDE, bias and RMSE are then in iROAS
#' units, and the MDE is also given as the largest detectable cost per
#' incremental unit, \eqn{1 / MDE}.
#'
#' The simulation depends on \eqn{\theta} and the spend only through their
#' product, so one run answers for every budget: at a target return
#' `iroas` (or `cost_per_unit`, its inverse), `glance()` gives the power at
#' that return for each test length and the spend per period (and in all)
#' that reaches `target_power`, \eqn{|spend| \cdot MDE / \theta}; `print()`
#' names the shortest test length that reaches it at the planned spend.
#'
#' @param formula `outcome ~ 0 | unit + time`: the numeric outcome of the
#'   untreated history, its unit and time columns (see [mkt_panel()]). A
#'   [mkt_panel()] carrying the `randomize_by` and `size` columns may be given
#'   instead, with `data` left out.
#' @param data A long data frame: one row per unit and period.
#' @param design A design from [rerandomize()], whose `$ids` are values of
#'   the `randomize_by` column (of the unit column without it).
#' @param randomize_by `NULL` or the name of the column of the design's units
#'   of randomization, constant within units; the units' outcomes are summed
#'   to it. With `NULL`, the panel's units are the design's clusters.
#' @param size `NULL` or the name of a time-invariant column of unit sizes
#'   (e.g. population); only used to share an additive effect across
#'   clusters.
#' @param effect Grid of relative effects \eqn{\delta}, e.g. `0.02` for a 2%
#'   lift; with `spend`, a grid of iROAS values (by default from 0 to four
#'   times `iroas`). Include `0` to get the A/A rejection rate.
#' @param test_length Test lengths in periods.
#' @param n_windows Number of historical windows (end dates).
#' @param pre `NULL` or the time values of the pre-period used for the
#'   design's covariates (the `pre` given to [geo_units()]); see Windows.
#' @param method The planned estimator: `"lin"` (Lin 2013 on the design's
#'   covariates and strata) or `"diff_in_means"` (the stratum-weighted
#'   difference in means). `NULL` (the default) plans the analysis that will
#'   be run: Lin's estimator when `pre` is given, since the design's
#'   covariates then summarise pre-period outcomes and adjusting for them is
#'   what recovers the precision, and the difference in means otherwise. The
#'   choice, and why it was made, is printed and kept as `$method` and
#'   `$method_chosen_by`.
#' @param effect_type `"multiplicative"` or `"additive"`.
#' @param inference The planned test: `"hc2"` or `"randomization"`.
#' @param n_draws Number of assignments drawn from the design's rule (each
#'   replayed on every window).
#' @param reference_draws Reference assignments of the randomization test
#'   (with `inference = "randomization"`).
#' @param chunk_size Assignments per chunk of the resampling layer. It does
#'   not change the results: simulated experiment i replays the assignment
#'   drawn from its own random stream, fixed by the seed and i, for any chunk
#'   size, future plan and number of threads.
#' @param target_power Power defining the minimum detectable effect.
#' @param alpha Two-sided level of the test.
#' @param spend `NULL`, or the change in the treated arm's spend per period
#'   (negative for go-dark): plans in iROAS units (see Budget first). With
#'   several cells, a vector naming each treated cell's change.
#' @param iroas,cost_per_unit With `spend`, the return to plan for, as an
#'   iROAS or as a cost per incremental unit (`1 / iroas`); give at most one.
#'   It is added to the `effect` grid.
#' @param contrasts With several cells, comparisons between treated cells
#'   to plan besides each cell against control: a list of pairs of cell
#'   labels, e.g. `list(c("heavy_up", "go_dark"))`; the first cell's grid of
#'   effects is injected into it, the second left at no effect (the MDE of
#'   the difference between the two cells). Not with `spend`.
#' @param ... Must be empty.
#' @return An object of class `mkt_power` with `$power` (the table returned
#'   by [tidy()][tidy.mkt_power]), `$mde` (the table returned by
#'   [glance()][glance.mkt_power]), `$windows` (end period index and time of
#'   each window), `$n_sims`, `$method` and `$method_chosen_by` (`"user"`, or
#'   `"default"` when `method` was `NULL`), and the other settings. When no
#'   effect of the grid reaches `target_power` the MDE is not known, only
#'   bounded below by the largest effect tried: see [glance()][glance.mkt_power].
#'   With `spend`, `$budget` holds `spend`, `iroas` and `shortest_length`
#'   (the shortest test length reaching `target_power` at `iroas`, or `NA`).
#' @seealso [power_closed_form()] for the closed form, [rerandomize()].
#' @export
#' @examples
#' units <- geo_units(sales ~ 0 | zone + week, geo_sales, randomize_by = "dma",
#'                    size = "population", pre = 1:52)
#' set.seed(1)
#' des <- rerandomize(units, ~ outcome_mean + outcome_trend,
#'                    n_treated = 50, accept = 0.05)
#' pw <- design_power(sales ~ 0 | zone + week, geo_sales, design = des,
#'                    randomize_by = "dma", effect = c(0, 0.01, 0.02, 0.04),
#'                    test_length = c(4, 8), n_windows = 4, pre = 1:52,
#'                    n_draws = 40)
#' pw   # Lin's estimator: the default when `pre` is given
#' tidy(pw)
#' glance(pw)
#' plot(pw)
#'
#' # Budget first: 300 more spend per week in the treated arm; what
#' # iROAS can the test detect, and what does detecting an iROAS of 3 cost?
#' pb <- design_power(sales ~ 0 | zone + week, geo_sales, design = des,
#'                    randomize_by = "dma", test_length = c(4, 8),
#'                    n_windows = 4, pre = 1:52, n_draws = 40,
#'                    spend = 300, iroas = 3)
#' pb
#' glance(pb)
design_power <- function(formula, data, design, randomize_by = NULL, size = NULL,
                         effect = seq(0, 0.1, by = 0.02), test_length = c(4, 8, 12),
                         n_windows = 8, pre = NULL, method = NULL,
                         effect_type = c("multiplicative", "additive"),
                         inference = c("hc2", "randomization"), n_draws = 100,
                         reference_draws = 500, chunk_size = 10, target_power = 0.8,
                         alpha = 0.05, spend = NULL, iroas = NULL, cost_per_unit = NULL,
                         contrasts = NULL, ...) {
  check_dots(...)
  if (!missing(design) && isTRUE(design$multi_cell)) {
    return(design_power_cells(
      formula, if (missing(data)) NULL else data, design, randomize_by, size, effect,
      missing(effect), test_length, n_windows, pre, method, effect_type, inference, n_draws,
      chunk_size, target_power, alpha, spend, iroas, cost_per_unit, contrasts,
      call = rlang::current_env()))
  }
  if (!is.null(contrasts)) {
    abort_mkt("bad_contrast", c(
      "{.arg contrasts} compares cells, but this design has two arms.",
      i = "Leave {.arg contrasts} out, or make a design with several cells in {.fn rerandomize}."
    ))
  }
  budget <- power_budget_args(spend, iroas, cost_per_unit)
  if (!is.null(budget) && missing(effect)) effect <- power_budget_grid(budget)
  if (missing(data)) data <- NULL
  if (missing(design)) design <- NULL
  check_design(design)
  if (!is.null(design$buffer)) {
    abort_mkt("unsupported_design", c(
      "Power simulation counts every untreated cluster as a control, so it does not support buffered designs.",
      i = "Simulate power on the design without {.arg buffer}, then add the buffer at assignment time."
    ))
  }
  method_chosen_by <- if (is.null(method)) "default" else "user"
  method <- if (is.null(method)) {
    if (is.null(pre)) "diff_in_means" else "lin"
  } else {
    check_choice(method, c("lin", "diff_in_means"))
  }
  inference <- check_choice(inference)
  effect_type <- check_choice(effect_type)
  alpha <- check_alpha(alpha)
  check_probability(target_power, "target_power")
  if (length(target_power) != 1L || target_power >= 1) {
    abort_mkt("bad_argument", "{.arg target_power} must be one number strictly between 0 and 1.")
  }
  if (!is.numeric(effect) || !length(effect) || any(!is.finite(effect))) {
    abort_mkt("bad_argument", c(
      "{.arg effect} must be a numeric grid of relative effects without missing values.",
      i = "For example {.code effect = seq(0, 0.1, by = 0.02)} for lifts of 0 to 10%."
    ))
  }
  if (all(effect < 0)) {
    abort_mkt("bad_argument", c(
      "{.arg effect} must include 0 or a positive lift: the MDE is read from effects of at least 0.",
      x = "You supplied only negative effects: {.val {format(effect)}}.",
      i = "For example {.code effect = seq(0, 0.1, by = 0.02)} for lifts of 0 to 10%."
    ))
  }
  if (!is.null(budget$iroas)) effect <- c(effect, budget$iroas)
  effect <- sort(unique(as.numeric(effect)))
  n_windows <- check_count(n_windows, "n_windows", min = 1)
  n_draws <- check_count(n_draws, "n_draws", min = 2)
  reference_draws <- check_count(reference_draws, "reference_draws", min = 19, max = 1e7)
  chunk_size <- check_count(chunk_size, "chunk_size", min = 1)
  if (!is.numeric(test_length) || !length(test_length) || anyNA(test_length) ||
      any(!is.finite(test_length)) || any(test_length < 1) ||
      any(test_length > .Machine$integer.max) || any(test_length != round(test_length))) {
    abort_mkt("bad_argument", c(
      "{.arg test_length} must be whole numbers of periods, at least 1 and no longer than the panel.",
      x = "You supplied {.val {format(test_length)}}."
    ))
  }
  test_length <- sort(unique(as.integer(test_length)))
  if (!is.null(randomize_by)) check_name(randomize_by, "randomize_by")
  if (!is.null(size)) check_name(size, "size")
  if (is.data.frame(data)) {
    check_columns(data, randomize_by, "randomize_by")
    check_columns(data, size, "size")
  }
  panel <- as_panel(formula, data, extra = unique(c(randomize_by, size)))
  require_varying_outcome(panel$Y[panel$observed], panel$vars$outcome)
  design_power_fit(panel, design, randomize_by, size, effect, test_length, n_windows, pre,
                   method, effect_type, inference, n_draws, reference_draws, chunk_size,
                   target_power, alpha, method_chosen_by, plan = budget)
}

# The simulation on a checked panel.
design_power_fit <- function(panel, design, randomize_by, size, effect, test_length,
                             n_windows, pre, method, effect_type, inference, n_draws,
                             reference_draws, chunk_size, target_power, alpha,
                             method_chosen_by = "user", plan = NULL,
                             call = rlang::caller_env()) {
  time <- panel$vars$time
  hist <- power_panel(design, panel, randomize_by, size, call = call)
  n_t <- ncol(hist$Y)
  if (max(test_length) > n_t) {
    abort_mkt("bad_argument", c(
      "{.arg test_length} {max(test_length)} is longer than the data allow: {.field {time}} has {n_t} period{?s}.",
      i = "Use test lengths of at most {n_t} periods, or give a longer panel."
    ), call = call)
  }
  ends <- power_window_ends(n_t, max(test_length), n_windows, hist$times, pre, time,
                            call = call)
  windows <- power_window_totals(hist, ends, test_length, time, call = call)
  # With a budget, each window's multiplier from iROAS to relative effect.
  k <- if (!is.null(plan)) {
    power_budget_scale(plan, windows, sum(design$treated), effect, effect_type, call = call)
  } else rep(1, length(windows))

  spec <- design$spec
  # One pool serves every assignment, window and effect, so the reference
  # distribution differs across simulations only through the outcomes.
  # Reference draws are cheap, hence chunks of at least 100.
  pool <- if (inference == "randomization") {
    reference_pool(spec, design$threshold, exact = FALSE, n_draws = reference_draws,
                   chunk_size = max(chunk_size, 100L),
                   rate = design$acceptance_rate)$assignments
  }
  x_fit <- if (method == "lin") lin_covariates(design) else strata_covariates(design)
  # Simulated experiment i replays the assignment of stream i of one seed:
  # the same for any chunk size, plan and thread count.
  budget <- max(1e6, ceiling(100 / max(design$acceptance_rate, 1e-12)))
  seed <- draw_cpp_seed()

  chunks <- resample_chunks(n_draws, function(idx) {
    res <- draw_assignments(spec, idx, seed, budget)
    if (!all(res$found)) {
      abort_mkt("no_acceptable_assignment", c(
        "Drawing assignments failed: {sum(!res$found)} of {length(idx)} draws found no accepted assignment in {format(budget, big.mark = ',')} candidates each.",
        i = "The rule accepts too rarely; re-create the design with a larger {.arg accept}."
      ))
    }
    lapply(seq_len(ncol(res$assignments)), function(i) {
      a <- as.integer(res$assignments[, i])
      lapply(seq_along(windows), function(j) {
        res <- power_one_fit(design, a, windows[[j]], effect * k[j], effect_type, hist$size,
                             method, inference, x_fit, pool, alpha)
        res$estimate <- res$estimate / k[j]
        res
      })
    })
  }, chunk_size = chunk_size, label = "simulated experiments", each = "chunk",
    globals = list())
  sims <- unlist(chunks, recursive = FALSE)

  power_tab <- power_summarise(sims, windows, effect, test_length,
                               scale = if (is.null(plan)) 100 else 1)
  mde <- power_mde(power_tab, target_power, alpha)
  if (!is.null(plan)) mde <- power_budget_table(mde, power_tab, plan, target_power)
  aa <- mde$aa_rejection
  aa_se <- sqrt(alpha * (1 - alpha) / power_tab$n_sims[1])
  if (any(!is.na(aa) & aa > alpha + 3 * aa_se)) {
    warn_mkt("aa_rejection", c(
      "At zero effect the test rejects in {.val {signif(max(aa, na.rm = TRUE), 3)}} of simulations, above {.arg alpha} = {alpha}.",
      i = "The test is anti-conservative on these windows; prefer {.code inference = \"randomization\"}."
    ))
  }
  structure(list(
    power = power_tab, mde = mde,
    windows = data.frame(end_index = ends, end_time = hist$times[ends]),
    n_sims = n_draws * length(ends), n_draws = n_draws, n_windows = length(ends),
    method = method, method_chosen_by = method_chosen_by, inference = inference, effect_type = effect_type,
    alpha = alpha, target_power = target_power,
    reference_draws = if (is.null(pool)) NA_integer_ else ncol(pool),
    design = design,
    budget = if (!is.null(plan)) {
      list(spend = plan$spend, iroas = plan$iroas %||% NA_real_,
           stated_as = plan$stated_as,
           shortest_length = power_budget_shortest(mde, target_power))
    }
  ), class = "mkt_power")
}

# Estimates (relative to the window's mean) and rejections over the effect
# grid for one assignment and one window.
power_one_fit <- function(design, a, w, effect, effect_type, size, method,
                          inference, x_fit, pool, alpha) {
  y <- w$y
  g <- if (effect_type == "multiplicative") y
       else if (is.null(size)) rep(w$mean, length(y))
       else w$mean * size / mean(size)
  ag <- a * g
  if (inference == "hc2") {
    k <- ncol(x_fit)
    X <- cbind(1, a, x_fit, a * x_fit)
    colnames(X) <- c("(Intercept)", "treated", paste0("x", seq_len(k)),
                     paste0("treated:x", seq_len(k)))[seq_len(2L + 2L * k)]
    # The coefficient is linear and its HC2 variance quadratic in the
    # injected effect, so fits at -1, 0 and 1 give it exactly for any delta.
    fits <- lapply(c(-1, 0, 1), function(d) ols_robust(X, y + d * ag))
    b <- vapply(fits, function(f) f$coefficients[["treated"]], numeric(1))
    v <- vapply(fits, function(f) f$vcov["treated", "treated"], numeric(1))
    est <- b[2] + effect * (b[3] - b[1]) / 2
    var <- v[2] + effect * (v[3] - v[1]) / 2 + effect^2 * ((v[3] + v[1]) / 2 - v[2])
    p <- 2 * stats::pt(-abs(est) / sqrt(pmax(var, 1e-300)), fits[[2]]$df[["treated"]])
  } else {
    # statistic_summary() measures draws against outcome - tau0 * treated;
    # with -a * g in that slot, its curve at tau0 = delta is the statistic of
    # the outcome with the effect injected under assignment a.
    shifted <- design
    shifted$treated <- -ag
    stat <- if (method == "lin") "lin_t" else "diff_in_means"
    s <- statistic_summary(shifted, y, stat)(cbind(a, pool))
    obs <- s[, 1L, drop = FALSE]
    ref <- s[, -1L, drop = FALSE]
    est <- obs["A", 1] - effect * obs["B", 1]
    p <- vapply(effect, randomization_p, numeric(1), obs = obs, ref = ref,
                alternative = "two.sided", exact = FALSE)
  }
  list(estimate = est / w$mean, reject = p <= alpha)
}

# Smallest grid effect reaching the target, and the effect where the power
# curve, linearly interpolated between grid points, crosses it. When no
# effect of the grid reaches the target, the MDE is only known to exceed the
# largest effect tried: `mde_reached` is FALSE, `mde` and `mde_interpolated`
# are NA, and `max_effect` with `max_effect_power` say how far the grid got.
power_mde <- function(tab, target_power, alpha) {
  rows <- lapply(split(tab, tab$test_length), function(d) {
    d <- d[order(d$effect), ]
    dp <- d[d$effect >= 0, ]
    hit <- which(dp$power >= target_power)
    mde <- mde_i <- NA_real_
    if (length(hit)) {
      k <- hit[1]
      mde <- dp$effect[k]
      mde_i <- if (k == 1L) mde else {
        p0 <- dp$power[k - 1]
        dp$effect[k - 1] + (target_power - p0) / (dp$power[k] - p0) *
          (dp$effect[k] - dp$effect[k - 1])
      }
    }
    top <- nrow(dp)
    aa <- d$power[d$effect == 0]
    data.frame(test_length = d$test_length[1], mde = mde, mde_interpolated = mde_i,
               mde_reached = length(hit) > 0L, max_effect = dp$effect[top],
               max_effect_power = dp$power[top], target_power = target_power,
               aa_rejection = if (length(aa)) aa else NA_real_, alpha = alpha,
               n_sims = d$n_sims[1])
  })
  out <- do.call(rbind, rows)
  rownames(out) <- NULL
  out
}
