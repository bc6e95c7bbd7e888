#' Group-time average treatment effects under staggered adoption
#'
#' `staggered()` estimates the group-time average treatment effects
#' ATT(g, t) of Callaway and Sant'Anna (2021): the average effect in period
#' `t` on the units first treated in period `g` (the cohort), each from a
#' 2x2 difference-in-differences between the cohort and a control group,
#' across period `t` and a base period before `g`. Identification rests on
#' parallel trends between each cohort and its controls (conditional on the
#' covariates, if any) and on no anticipation beyond `anticipation` periods.
#'
#' @section Estimators:
#' `method = "reg"` is the outcome-regression DiD, `"ipw"` the stabilised
#' inverse-probability-weighted DiD and `"dr"` the locally efficient doubly
#' robust DiD of Sant'Anna and Zhao (2020), applied to the change in the
#' outcome between the base period and `t`. Without covariates all three
#' reduce to the difference of (weighted) mean changes, computed for all
#' cells at once in compiled code. Covariates enter through their
#' (time-invariant) unit values; a covariate that varies within a unit is an
#' error, and one that is constant across the units used, or collinear with
#' the others, is dropped with a warning of class
#' `mktcausal_warning_dropped_covariate` (it could not be fitted, and would
#' make every cell `NA`). As in the did package, the doubly robust and IPW estimators drop
#' control units whose estimated propensity score is 0.995 or more. The
#' nuisance models (propensity score, outcome-regression design) depend on
#' a cell only through its units, so cells that share a cohort and a control
#' group on a complete panel share one fit (one per cohort with
#' never-treated controls), and their changes in the outcome are projected
#' together.
#'
#' @section Base period and controls:
#' With `base_period = "varying"` a pre-treatment cell compares period `t`
#' with `t - 1`, and a post-treatment cell compares `t` with the last period
#' before `g - anticipation`. With `"universal"` every cell uses that last
#' period as its base, and the base cell itself is reported as 0 with no
#' standard error. `control = "never"` compares with never-treated units,
#' `"not_yet"` with units never treated or first treated after both `t` and
#' the base period (plus `anticipation`). Periods are counted by their
#' position among the sorted distinct periods, so event times are in periods.
#'
#' @section Inference:
#' Standard errors come from the influence function of each ATT(g,t),
#' summed within clusters when `cluster` is given (a column constant within
#' units, such as a market; by default the unit). With `n_draws > 0` a
#' multiplier bootstrap with Mammen weights, drawn per cluster from a seed
#' taken from R's random number generator (so `set.seed()` fixes it and the
#' thread count does not matter), gives the bootstrap standard errors
#' (interquartile range / 1.349) and the critical value of the sup-t
#' statistic across all cells, hence simultaneous (uniform) bands. On a
#' balanced panel without covariates clustered by unit, the draws are
#' computed from multiplier-weighted cohort sums of the outcomes rather than
#' from the N x K influence matrix (same multipliers, much less work);
#' otherwise each group of clusters is multiplied only into the cells its
#' cohorts enter. `vcov()` is the covariance of the cells from the clustered
#' influence functions (its diagonal gives `std.error`).
#'
#' A cluster's multiplier in a draw depends only on the seed, the cluster and
#' the draw, so the draws are the same for any number of threads
#' ([mkt_threads()]) and any [future::plan()]. They are computed in chunks
#' through [resample_chunks()]: a progress bar shows where
#' [progressr::handlers()] are set, and an interrupt (Esc, Ctrl-C) stops the
#' bootstrap within a fraction of a second. The draws (`n_draws` x cells)
#' are held in memory: a request that cannot fit is refused with an error of
#' class `mktcausal_error_too_large` before any draw is made.
#'
#' The estimates are equivariant in the outcome: the fit runs on the outcome
#' divided by a power of two near its largest absolute value and scales the
#' results back, so outcomes of any magnitude (1e300 or 1e-300) give the
#' scaled answer. `vcov()` of an outcome near 1e300 overflows (it holds
#' squares of the outcome's scale); the standard errors do not.
#'
#' @section Data handling:
#' * Units treated in the first period (or, with anticipation, before any
#'   clean base period exists) have no untreated base period: they are
#'   dropped with a warning and listed in `tidy(fit, "dropped_units")`.
#' * A unit whose rows between its last untreated and its first treated
#'   period are absent (`cohort_known` of [mkt_panel()] is `FALSE`) may have
#'   adopted in any of those periods. Counting it in the cohort of its first
#'   observed treated period would create small spurious cohorts (and make
#'   the uniform bands undercover), so it is dropped with a warning of class
#'   `mktcausal_warning_uncertain_cohort` and listed, with the reason, in
#'   `tidy(fit, "dropped_units")`. Rows with the treatment and a missing
#'   outcome fix a unit's cohort without adding data.
#' * Units of weight zero are left out (their weight excludes them) and
#'   listed in `tidy(fit, "dropped_units")` with the reason "weight zero".
#' * A treatment that switches off is an error (the estimator needs absorbing
#'   treatment); so is `control = "never"` without never-treated units.
#' * Unbalanced panels: each ATT(g,t) uses the units observed in both
#'   period `t` and its base period; cohorts are found by [mkt_panel()]. The
#'   influence function is scaled by `n / n_cell` as for a balanced panel,
#'   where `n` counts all units. A balanced panel gives did's numbers.
#' * A cell whose cohort or control group is empty in the two periods, or
#'   too small to fit the covariates, is returned as `NA` with the reason in
#'   the `note` column of `tidy()`; it never stops the fit.
#'
#' @param formula `outcome ~ treatment + covariates | unit + time`, see
#'   [mkt_panel()]. The treatment is the absorbing 0/1 treated-and-post
#'   indicator. A [mkt_panel()] may be given in place of the formula (then
#'   leave `data` out; it must carry the `cluster` and `weights` columns
#'   named).
#' @param data A long data frame, tibble or data.table.
#' @param method `"dr"`, `"ipw"` or `"reg"`, see Estimators.
#' @param control `"never"` (never-treated units) or `"not_yet"`
#'   (never-treated and not-yet-treated units) as controls.
#' @param anticipation Number of periods before adoption in which units may
#'   already react.
#' @param base_period `"varying"` or `"universal"`, see Base period.
#' @param cluster `NULL` (cluster by unit) or the name of a column constant
#'   within units, such as a market, to cluster at a higher level.
#' @param weights `NULL` or the name of a column of sampling weights
#'   (population, for example), constant within units.
#' @param n_draws Number of multiplier bootstrap draws for the uniform bands;
#'   0 gives pointwise normal intervals only.
#' @param alpha Significance level of the bands.
#' @param ... Must be empty: an unknown argument is an error that names the
#'   nearest valid one.
#' @return A fit of class `c("mkt_staggered", "mkt_fit")` (see [mkt_fit]):
#'   its estimates are the ATT(g,t) cells, with terms `"ATT(g,t)"` and the
#'   columns `group` (the cohort's first treated period), `time`, `event`
#'   (periods since adoption), `std.error.boot`, `n_treated`, `n_control`
#'   and `note` (why a cell is `NA`, or `"base period"`). `std.error` comes
#'   from the influence function (clustered as requested), `conf.low` and
#'   `conf.high` are the bootstrap uniform band when `n_draws > 0` (else
#'   pointwise normal limits), `p.value` is normal from `std.error`, and
#'   `vcov()` is the covariance of the cells from their influence functions.
#'   Use [aggregate()][aggregate.mkt_staggered] for overall, event-time,
#'   cohort and calendar summaries, and `plot()` for the cells by cohort.
#' @references Callaway, B. and Sant'Anna, P. H. C. (2021).
#'   Difference-in-differences with multiple time periods. *Journal of
#'   Econometrics* 225(2), 200-230.
#'
#'   Sant'Anna, P. H. C. and Zhao, J. (2020). Doubly robust
#'   difference-in-differences estimators. *Journal of Econometrics* 219(1),
#'   101-122.
#' @examples
#' mpdta$post <- as.integer(mpdta$first.treat > 0 & mpdta$year >= mpdta$first.treat)
#' set.seed(1)
#' fit <- staggered(lemp ~ post | countyreal + year, mpdta, n_draws = 199)
#' fit
#' tidy(aggregate(fit, "simple"))
#' @export
staggered <- function(formula, data, method = c("dr", "ipw", "reg"),
                      control = c("never", "not_yet"), anticipation = 0,
                      base_period = c("varying", "universal"), cluster = NULL,
                      weights = NULL, n_draws = 1000, alpha = 0.05, ...) {
  check_dots(...)
  method <- check_choice(method)
  control <- check_choice(control)
  base_period <- check_choice(base_period)
  anticipation <- check_count(anticipation, "anticipation", min = 0)
  n_draws <- check_count(n_draws, "n_draws", min = 0)
  alpha <- check_alpha(alpha)
  panel <- as_panel(formula, data, cluster = cluster, weights = weights)
  staggered_fit(panel, method = method, control = control, anticipation = anticipation,
                base_period = base_period, n_draws = n_draws, alpha = alpha,
                call = match.call())
}

# The core of staggered(): everything after the panel. Also called by
# event_study(method = "cs") with the panel it built.
staggered_fit <- function(panel, method, control, anticipation, base_period, n_draws,
                          alpha, call = NULL, error_call = rlang::caller_env()) {
  prep <- staggered_prepare(panel, control, anticipation, call = error_call)
  cells <- staggered_cells(prep, base_period, anticipation)
  not_yet <- control == "not_yet"
  covariates <- !is.null(prep$X)
  est <- if (covariates) {
    staggered_gt_covariates(prep, cells, method, not_yet)
  } else {
    staggered_gt_simple(prep, cells, method, not_yet)
  }
  cells$estimate <- est$att
  cells$n_treated <- est$n_treated
  cells$n_control <- est$n_control
  cells$note <- est$note
  universal_base <- cells$time_idx == cells$base_idx
  cells$estimate[universal_base] <- 0
  cells$note[universal_base] <- "base period"
  # A fit in which no group-time effect could be estimated is not an answer:
  # say why, with the most common reason, instead of returning a table of NA.
  if (!any(is.finite(cells$estimate[!universal_base]))) {
    why <- names(sort(table(cells$note[!universal_base]), decreasing = TRUE))[1] %||%
      "no cell has both treated and comparison units"
    abort_mkt("too_few_units", c(
      "No group-time effect could be estimated: {why}.",
      x = "The panel keeps {sum(prep$cohort > 0L)} treated and {sum(prep$cohort == 0L)} never-treated unit{?s}.",
      i = if (covariates) "Drop the covariates, or add units: each comparison needs more units than covariates." else
        "Add comparison units, or use {.code control = \"not_yet\"}."
    ), call = error_call)
  }

  n <- prep$n
  S <- rowsum_clusters(est$inf, prep$cluster_id)
  # Which clusters can touch which cells: the covariance and the bootstrap
  # skip the zeros of S.
  blocks <- bootstrap_blocks(prep$cohort, prep$cluster_id,
                             staggered_cell_uses(prep, cells, not_yet))
  V <- influence_vcov(S, n, blocks)
  ss <- if (is.null(est$sumsq) || anyDuplicated(prep$cluster_id)) diag(V) * n^2 else est$sumsq
  se <- sqrt(ss) / n
  se[se <= sqrt(.Machine$double.eps) * 10 | is.na(cells$estimate)] <- NA_real_
  cells$std.error <- se
  seed <- draw_cpp_seed()
  draws_fun <- NULL
  if (n_draws > 0L && !covariates && !anyNA(prep$Y) && !anyDuplicated(prep$cluster_id)) {
    draws_fun <- function(cols) cohort_sum_kernel(prep, cells, est, not_yet, cols, seed)
  }
  boot <- staggered_bootstrap(S, n, n_draws, seed, alpha, draws_fun, ss, blocks = blocks,
                              call = error_call)
  # Back to the outcome's units (the fit ran on the rescaled outcome, see
  # staggered_prepare()); the influence functions stay on that scale, with
  # `scale`, for the aggregations. The covariance of outcomes near 1e300
  # overflows (its square scale does not exist), the standard errors do not.
  sc <- prep$scale
  cells$estimate <- cells$estimate * sc
  se <- se * sc
  cells$std.error <- se
  boot$se <- boot$se * sc
  V <- unscale_variance(V, sc)

  na_cell <- is.na(cells$estimate)
  V[na_cell, ] <- NA_real_
  V[, na_cell] <- NA_real_
  times <- panel$times
  group <- times[cells$group_idx]
  time <- times[cells$time_idx]
  lim <- band_limits(cells$estimate, se, boot$se, boot$crit, alpha)
  estimates <- data.frame(
    term = paste0("ATT(", as.character(group), ",", as.character(time), ")"),
    estimate = cells$estimate, std.error = se,
    p.value = 2 * stats::pnorm(-abs(cells$estimate / se)),
    conf.low = lim$low, conf.high = lim$high,
    group = group, time = time, event = cells$time_idx - cells$group_idx,
    std.error.boot = boot$se, n_treated = cells$n_treated, n_control = cells$n_control,
    note = cells$note, stringsAsFactors = FALSE
  )
  labels <- c(dr = "doubly robust", ipw = "inverse probability weighted",
              reg = "outcome regression")
  n_cohorts <- length(unique(cells$group_idx))
  new_fit(
    "staggered", estimates = estimates,
    method = sprintf("Callaway-Sant'Anna ATT(g,t), %s", labels[[method]]),
    estimand = sprintf(
      "ATT(g,t): mean effect in period t on the units first treated in period g, against %s units (%s base period)",
      if (control == "never") "never-treated" else "never- and not-yet-treated", base_period),
    inference = staggered_inference_label(panel$vars$cluster, n_draws, boot$crit),
    alpha = alpha,
    n = list(obs = sum(panel$observed[prep$keep, , drop = FALSE]), units = n,
             periods = length(times), treated = sum(prep$cohort > 0L),
             clusters = max(prep$cluster_id), cohorts = n_cohorts),
    call = call, vcov = V, vars = panel$vars,
    glance = list(control = control, base_period = base_period,
                  anticipation = anticipation, n_draws = n_draws, crit = boot$crit,
                  n_cells = nrow(cells), n_na_cells = sum(na_cell),
                  n_dropped_units = length(prep$dropped_units)),
    tables = list(dropped_units = data.frame(unit = prep$dropped_units,
                                             reason = prep$drop_reason,
                                             stringsAsFactors = FALSE)),
    cells = cells, inf = est$inf, scale = sc, unit_cohort = prep$cohort, unit_weight = prep$w,
    cluster_id = prep$cluster_id, n_units = n, times = times, control = control,
    estimator = method, anticipation = anticipation, base_period = base_period,
    n_draws = n_draws, seed = seed, boot_se = boot$se, crit = boot$crit,
    dropped_units = prep$dropped_units, balanced = panel$balanced
  )
}

# --- preparation -----------------------------------------------------------

# Checks the panel for staggered adoption and returns the unit-level inputs:
# cohort index (0 = never treated), weights, clusters and covariates, after
# dropping units treated before any clean base period. Reads the panel only:
# weights and clusters come from its side columns, one value per unit.
staggered_prepare <- function(panel, control, anticipation, call = rlang::caller_env()) {
  require_binary_treatment(panel, "staggered", call = call)
  unit_names <- as.character(panel$units)
  N <- length(unit_names)
  w <- panel_unit_values(panel, "weights", call = call)
  w <- if (is.null(w)) rep(1, N) else unname(as.numeric(w))
  cl <- panel_unit_values(panel, "cluster", call = call)
  cl <- if (is.null(cl)) seq_len(N) else unname(cl)

  covs <- panel$vars$covariates
  X <- NULL
  if (length(covs)) {
    obs <- panel$observed
    first_col <- if (panel$balanced) rep(1L, N) else max.col(obs, ties.method = "first")
    X <- vapply(covs, function(v) {
      m <- panel$X[[v]]
      first <- m[cbind(seq_len(N), first_col)]
      # Relative deviation from the unit's first observed value.
      dev <- abs(m - first) > 1e-10 * pmax(1, abs(first))
      bad_unit <- rowSums(obs & (is.na(dev) | dev)) > 0
      if (any(bad_unit)) {
        bad <- unit_names[bad_unit]
        abort_mkt("varies_within_unit", c(
          "The covariate {.field {v}} varies within {length(bad)} unit{?s} or is missing, e.g. {.val {utils::head(bad, 3)}}.",
          x = "Covariates of {.fn staggered} must be fixed unit characteristics.",
          i = "Use the value in a pre-treatment period (or the unit mean) for every row of the unit."
        ), call = call)
      }
      unname(first)
    }, numeric(N))
    X <- matrix(X, nrow = N, dimnames = list(NULL, covs))
  }

  cohort <- unname(panel$cohort_index)
  cohort[is.na(cohort)] <- 0L
  early <- cohort > 0L & cohort <= 1L + anticipation
  # A unit whose rows between its last untreated and first treated period
  # are absent may have adopted in any of those periods. Putting it in the
  # cohort of its first observed treated period would make small spurious
  # cohorts (and wrong event times), so it is left out.
  known <- unname(panel$cohort_known %||% rep(TRUE, N))
  unsure <- !early & !known
  # A unit of weight zero is excluded by its weight; kept, it would make
  # the weighted means of the imputation and regression paths 0/0.
  weightless <- !early & !unsure & w <= 0
  drop_reason <- ifelse(early, "treated before any untreated base period",
                        ifelse(unsure, "adoption period unknown (rows absent)",
                               ifelse(weightless, "weight zero", NA_character_)))
  if (any(early)) {
    first <- panel$units[early]
    warn_mkt("treated_first_period", c(
      "{sum(early)} unit{?s} {?is/are} treated from the first period{if (anticipation > 0) ' (allowing for anticipation)' else ''} and {?has/have} no untreated base period; dropped.",
      i = "Dropped: {.val {utils::head(as.character(first), 5)}}{if (sum(early) > 5) ', ...' else ''} (see {.code tidy(fit, \"dropped_units\")})."
    ))
  }
  if (any(unsure)) {
    which_unsure <- panel$units[unsure]
    warn_mkt("uncertain_cohort", c(
      "{sum(unsure)} unit{?s} {?has/have} no row between {?its/their} last untreated and first treated period, so {?its/their} adoption period is unknown; dropped.",
      i = "Dropped: {.val {utils::head(as.character(which_unsure), 5)}}{if (sum(unsure) > 5) ', ...' else ''} (see {.code tidy(fit, \"dropped_units\")}).",
      i = "Where the adoption period is known, add the missing rows with the treatment and an {.code NA} outcome: they fix the cohort without adding data."
    ))
  }
  keep <- !early & !unsure & !weightless
  dropped_units <- panel$units[!keep]
  if (control == "never" && !any(cohort[keep] == 0L)) {
    abort_mkt("no_never_treated", c(
      "No unit is never treated, so {.code control = \"never\"} has no control group.",
      i = "Use {.code control = \"not_yet\"}, or drop the periods after the last cohort adopts and keep it as control."
    ), call = call)
  }
  if (!any(cohort[keep] > 0L)) {
    abort_mkt("no_treated", c(
      "No unit adopts the treatment {.field {panel$vars$treatment}} after the first period.",
      i = "Check the treatment column: it should be 1 from each unit's adoption period on."
    ), call = call)
  }
  Y <- if (all(keep)) panel$Y else panel$Y[keep, , drop = FALSE]
  # Every estimate here (ATT(g,t), its influence function, the aggregations
  # and the event-study regressions) is equivariant in the outcome, so the
  # estimators run on Y / scale, a power of two near the largest absolute
  # value (an exact division), and the callers scale the estimates and
  # standard errors back: outcomes near 1e300 do not overflow in sums of
  # squares, outcomes near 1e-300 do not fall below the tolerances.
  scale <- outcome_scale(Y)
  if (scale != 1) Y <- Y / scale
  if (!is.null(X)) X <- drop_aliased_covariates(X[keep, , drop = FALSE])
  cluster_id <- match(cl[keep], unique(cl[keep]))
  # Every standard error here is clustered (by unit, or by `cluster`): one
  # cluster leaves no variation between clusters, and G/(G - 1) is 1/0.
  if (max(cluster_id) < 2L) {
    abort_mkt("too_few_clusters", c(
      "Clustered standard errors need at least two clusters; every unit used is in one cluster of {.field {panel$vars$cluster %||% panel$vars$unit}}.",
      i = "Cluster by a finer grouping, or leave {.arg cluster} unset to cluster by unit."
    ), call = call)
  }
  list(
    Y = Y, scale = scale, cohort = cohort[keep], w = w[keep], keep = keep, X = X,
    cluster_id = cluster_id,
    n = sum(keep), n_periods = length(panel$times),
    dropped_units = dropped_units, drop_reason = drop_reason[!keep]
  )
}

# The unit-level covariates (units x covariates) without those that are
# constant across the units used or collinear with the intercept and the
# covariates before them (the pivoted QR of lm(), tolerance 1e-7). Such a
# covariate makes every cell's outcome regression and propensity score
# rank-deficient, so every ATT(g,t) would be NA; like lm(), which aliases
# it, the fit goes on without it, and says so. NULL when none is left:
# then the cells are the covariate-free DiD of mean changes.
drop_aliased_covariates <- function(X) {
  q <- qr(cbind(1, X), tol = 1e-7)
  kept <- sort(q$pivot[seq_len(q$rank)])[-1] - 1L
  if (length(kept) == ncol(X)) return(X)
  bad <- setdiff(seq_len(ncol(X)), kept)
  const <- apply(X[, bad, drop = FALSE], 2, function(v) diff(range(v)) == 0)
  names_bad <- colnames(X)[bad]
  what <- if (all(const)) "constant" else if (any(const)) "constant or collinear with the others" else
    "collinear with the others (and the intercept)"
  warn_mkt("dropped_covariate", c(
    "{cli::qty(length(bad))}The covariate{?s} {.field {names_bad}} {?is/are} {what} across the units used and cannot be fitted; dropped.",
    i = "{cli::qty(length(bad))}Remove {?it/them} from the formula to silence this warning."
  ))
  out <- X[, kept, drop = FALSE]
  if (ncol(out)) out else NULL
}

# The (g, t) cells with their base periods and control cut-offs, following
# Callaway & Sant'Anna's conventions for varying and universal base periods.
staggered_cells <- function(prep, base_period, anticipation) {
  groups <- sort(unique(prep$cohort[prep$cohort > 0L]))
  Tn <- prep$n_periods
  out <- lapply(groups, function(g) {
    last_pre <- g - anticipation - 1L
    if (base_period == "varying") {
      tt <- 2:Tn
      base <- ifelse(tt >= g, last_pre, tt - 1L)
    } else {
      tt <- seq_len(Tn)
      base <- rep(last_pre, length(tt))
    }
    data.frame(group_idx = g, time_idx = tt, base_idx = base,
               control_after = pmax(tt, base) + anticipation)
  })
  do.call(rbind, out)
}

# Which cohorts (rows, in sorted order of the cohort codes) enter which cells
# (columns), as treated or control: where a cell's influence function can be
# non-zero.
staggered_cell_uses <- function(prep, cells, not_yet) {
  cohorts <- sort(unique(prep$cohort))
  vapply(seq_len(nrow(cells)), function(k) {
    g <- cells$group_idx[k]
    cohorts == g | cohorts == 0L |
      (not_yet & cohorts > cells$control_after[k] & cohorts != g)
  }, logical(length(cohorts)))
}

# --- estimation -------------------------------------------------------------

cell_notes <- function(status) {
  c("", "no treated units observed in both periods",
    "no control units observed in both periods",
    "all controls trimmed (propensity score >= 0.995)")[status + 1L]
}

staggered_gt_simple <- function(prep, cells, method, not_yet) {
  trim <- if (method == "reg") 0 else 0.995
  r <- cpp_staggered_gt(prep$Y, prep$cohort - 1L, prep$w,
                        cells$group_idx - 1L, cells$time_idx - 1L, cells$base_idx - 1L,
                        cells$control_after - 1L, not_yet, trim,
                        threads_for(2 * as.double(nrow(prep$Y)) * length(cells$group_idx)))
  r$note <- cell_notes(r$status)
  r
}

# With covariates each cell is a Sant'Anna-Zhao panel DiD on the units of
# the cohort and its controls observed in both periods. The nuisance models
# depend on the cell only through that set of units: the propensity score
# (treated cohort against its controls) and the design of the outcome
# regression among controls. So they are fitted once per set (once per
# cohort with never-treated controls on a balanced panel) and each cell
# only projects its change in the outcome.
staggered_gt_covariates <- function(prep, cells, method, not_yet) {
  n <- prep$n
  K <- nrow(cells)
  inf <- matrix(0, n, K)
  att <- rep(NA_real_, K)
  n1 <- n0 <- integer(K)
  note <- character(K)
  Xint <- cbind("(Intercept)" = 1, prep$X)
  kx <- ncol(Xint)
  complete <- !anyNA(prep$Y)
  cohorts <- sort(unique(prep$cohort))
  ctrl_sets <- lapply(seq_len(K), function(k) {
    cohorts[cohorts == 0L |
              (not_yet & cohorts > cells$control_after[k] & cohorts != cells$group_idx[k])]
  })
  # Cells that share their cohort and control cohorts share their units on
  # a complete panel: one group, fitted together.
  key <- paste(cells$group_idx, vapply(ctrl_sets, paste, character(1), collapse = ","))
  group <- if (complete) match(key, unique(key)) else seq_len(K)
  for (q in unique(group)) {
    ks <- which(group == q)
    g <- cells$group_idx[ks[1]]
    ids <- which(prep$cohort == g | prep$cohort %in% ctrl_sets[[ks[1]]])
    if (!complete) {
      # One cell per group here: the units observed in both of its periods.
      dy1 <- prep$Y[ids, cells$time_idx[ks]] - prep$Y[ids, cells$base_idx[ks]]
      ids <- ids[!is.na(dy1)]
    }
    D <- as.numeric(prep$cohort[ids] == g)
    n1[ks] <- sum(D)
    n0[ks] <- length(ids) - sum(D)
    if (n1[ks[1]] == 0L) {
      note[ks] <- cell_notes(1L)
      next
    }
    if (n0[ks[1]] == 0L) {
      note[ks] <- cell_notes(2L)
      next
    }
    base <- cells$time_idx[ks] == cells$base_idx[ks]
    att[ks[base]] <- 0
    ks <- ks[!base]
    if (!length(ks)) next
    if (n0[ks[1]] <= kx || (method != "reg" && length(ids) <= kx + 1L)) {
      note[ks] <- "too few units to fit the covariates"
      next
    }
    nuis <- sz_nuisance(D, Xint[ids, , drop = FALSE], prep$w[ids], method)
    if (is.character(nuis)) {
      note[ks] <- nuis
      next
    }
    dY <- prep$Y[ids, cells$time_idx[ks], drop = FALSE] -
      prep$Y[ids, cells$base_idx[ks], drop = FALSE]
    r <- sz_panel_did(dY, nuis, method)
    att[ks] <- r$att
    inf[ids, ks] <- r$inf * (n / length(ids))
  }
  list(att = att, n_treated = n1, n_control = n0, note = note, inf = inf)
}

# The parts of Sant'Anna & Zhao's (2020) panel DiD estimators that depend
# on the units used but not on the outcome: normalised weights, the QR of
# the weighted control design of the outcome regression and the inverse of
# its Gram matrix, and the fitted propensity score with the linear
# representation of its estimation. Returns a reason string when a nuisance
# model cannot be fitted.
sz_nuisance <- function(D, X, w, method) {
  n <- length(D)
  w <- w / mean(w)
  k <- ncol(X)
  out <- list(D = D, X = X, w = w, n = n)
  if (method != "ipw") {
    c0 <- D == 0
    sw0 <- sqrt(w[c0])
    # lm.wfit's QR (LINPACK, tolerance 1e-7) of the weighted control design.
    qr0 <- qr(X[c0, , drop = FALSE] * sw0, tol = 1e-7)
    if (qr0$rank < k) return("covariates collinear among controls")
    w_ols <- w * (1 - D)
    out$c0 <- c0
    out$sw0 <- sw0
    out$qr0 <- qr0
    out$w_ols <- w_ols
    out$M <- solve(crossprod(w_ols * X, X) / n)
  }
  if (method != "reg") {
    ps <- logit_fit(X, D, w)
    if (is.null(ps)) return("propensity score model did not converge")
    p <- pmin(ps$p, 1 - 1e-6)
    out$lin_ps <- (w * (D - p) * X) %*% (ps$vcov * n)
    keep <- ifelse(D == 1, p < 1.01, p < 0.995)
    out$w1 <- keep * w * D
    out$w0 <- keep * w * p * (1 - D) / (1 - p)
    if (sum(out$w0) == 0) return(cell_notes(3L))
  }
  out
}

# Weighted logistic regression of D on X by Newton's method, to full
# precision: fitted probabilities and the covariance of the coefficients
# (X'WX)^-1 at the fit, as glm reports it. Much less overhead than glm.fit()
# for the small designs of the propensity score; a fit that does not
# converge falls back to glm.fit(), and NULL means it failed there too.
logit_fit <- function(X, D, w, max_iter = 50L) {
  k <- ncol(X)
  mu <- (w * D + 0.5) / (w + 1)
  eta <- log(mu / (1 - mu))
  beta <- NULL
  dev_old <- Inf
  converged <- FALSE
  for (it in seq_len(max_iter)) {
    vw <- w * mu * (1 - mu)
    z <- eta + (D - mu) / (mu * (1 - mu))
    XtW <- t(X * vw)
    beta_new <- tryCatch(solve(XtW %*% X, XtW %*% z), error = function(e) NULL)
    if (is.null(beta_new) || anyNA(beta_new)) break
    eta <- drop(X %*% beta_new)
    mu <- 1 / (1 + exp(-eta))
    dev <- -2 * sum(w * ifelse(D == 1, log(mu), log1p(-mu)))
    if (!is.finite(dev)) break
    if (!is.null(beta) && max(abs(beta_new - beta)) <= 1e-12 * max(1, max(abs(beta_new))) &&
        abs(dev - dev_old) <= 1e-12 * (abs(dev) + 0.1)) {
      converged <- TRUE
      beta <- beta_new
      break
    }
    beta <- beta_new
    dev_old <- dev
  }
  if (converged && all(mu > 1e-10 & mu < 1 - 1e-10)) {
    vw <- w * mu * (1 - mu)
    qw <- qr(X * sqrt(vw))
    if (qw$rank == k) return(list(p = mu, vcov = chol2inv(qr.R(qw))))
  }
  ps <- suppressWarnings(stats::glm.fit(X, D, weights = w, family = stats::binomial()))
  if (ps$rank < k || !ps$converged) return(NULL)
  list(p = ps$fitted.values, vcov = chol2inv(ps$qr$qr[seq_len(k), seq_len(k), drop = FALSE]))
}

# Sant'Anna & Zhao (2020) panel DiD estimators on the changes dY (units x
# cells, all cells on the same units), given the nuisance parts of
# sz_nuisance(): outcome regression, stabilised IPW and the locally
# efficient doubly robust one, with their influence functions (units x
# cells).
sz_panel_did <- function(dY, nuis, method) {
  X <- nuis$X
  w <- nuis$w
  D <- nuis$D
  n <- nuis$n
  dY <- as.matrix(dY)
  cols <- rep(1, ncol(dY))
  if (method != "ipw") {
    beta <- qr.coef(nuis$qr0, dY[nuis$c0, , drop = FALSE] * nuis$sw0)
    out <- X %*% beta
    # The OLS part of the influence function, lin_ols %*% v for the v that
    # does not depend on the cell: each control's residual times x_i' M v.
    e_ols <- nuis$w_ols * (dY - out)
    xm <- function(v) drop(X %*% (nuis$M %*% v))
  }
  if (method == "reg") {
    w1 <- w * D
    m1 <- mean(w1)
    eta1 <- colSums(w1 * dY) / n / m1
    eta0 <- colSums(w1 * out) / n / m1
    inf_t <- (w1 * dY - w1 %o% eta1) / m1
    inf_c <- (w1 * out - w1 %o% eta0 + e_ols * xm(colMeans(w1 * X))) / m1
  } else if (method == "ipw") {
    w1 <- nuis$w1
    w0 <- nuis$w0
    m1 <- mean(w1)
    m0 <- mean(w0)
    eta1 <- colSums(w1 * dY) / n / m1
    eta0 <- colSums(w0 * dY) / n / m0
    r0 <- dY - rep(eta0, each = nrow(dY))
    inf_t <- (w1 * dY - w1 %o% eta1) / m1
    inf_c <- (w0 * r0 + nuis$lin_ps %*% (crossprod(X, w0 * r0) / n)) / m0
  } else {
    w1 <- nuis$w1
    w0 <- nuis$w0
    m1 <- mean(w1)
    m0 <- mean(w0)
    r <- dY - out
    eta1 <- colSums(w1 * r) / n / m1
    eta0 <- colSums(w0 * r) / n / m0
    r0 <- r - rep(eta0, each = nrow(r))
    inf_t <- (w1 * (r - rep(eta1, each = nrow(r))) - e_ols * xm(colMeans(w1 * X))) / m1
    inf_c <- (w0 * r0 + nuis$lin_ps %*% (crossprod(X, w0 * r0) / n) -
                e_ols * xm(colMeans(w0 * X))) / m0
  }
  list(att = eta1 - eta0, inf = inf_t - inf_c)
}
