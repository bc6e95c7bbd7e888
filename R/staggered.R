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
#' error. As in the did package, the doubly robust and IPW estimators drop
#' control units whose estimated propensity score is 0.995 or more.
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
#' from the N x K influence matrix (same multipliers, much less work).
#'
#' @section Data handling:
#' * Units treated in the first period (or, with anticipation, before any
#'   clean base period exists) have no untreated base period: they are
#'   dropped with a warning and listed in `$dropped_units`.
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
  covariates <- length(panel$vars$covariates) > 0L
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

  n <- prep$n
  S <- rowsum_clusters(est$inf, prep$cluster_id)
  ss <- if (is.null(est$sumsq) || anyDuplicated(prep$cluster_id)) colSums(S * S) else est$sumsq
  se <- sqrt(ss) / n
  se[se <= sqrt(.Machine$double.eps) * 10 | is.na(cells$estimate)] <- NA_real_
  cells$std.error <- se
  seed <- draw_cpp_seed()
  draws_fun <- NULL
  blocks <- NULL
  if (n_draws > 0L) {
    if (!covariates && !anyNA(prep$Y) && !anyDuplicated(prep$cluster_id)) {
      draws_fun <- function(cols) cohort_sum_draws(prep, cells, est, not_yet, cols, n_draws, seed)
    } else {
      blocks <- bootstrap_blocks(prep$cohort, prep$cluster_id,
                                 staggered_cell_uses(prep, cells, not_yet))
    }
  }
  boot <- staggered_bootstrap(S, n, n_draws, seed, alpha, draws_fun, ss, blocks = blocks)

  V <- influence_vcov(S, n)
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
                                             stringsAsFactors = FALSE)),
    cells = cells, inf = est$inf, unit_cohort = prep$cohort, unit_weight = prep$w,
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
    X <- vapply(covs, function(v) {
      m <- panel$X[[v]]
      m[!panel$observed] <- NA
      lo <- apply(m, 1, min, na.rm = TRUE)
      hi <- apply(m, 1, max, na.rm = TRUE)
      if (any(suppressWarnings(hi - lo) > 1e-10 * pmax(1, abs(lo)), na.rm = TRUE) ||
          anyNA(m[panel$observed])) {
        bad <- unit_names[which(hi - lo > 1e-10 * pmax(1, abs(lo)) | rowSums(is.na(m) & panel$observed) > 0)]
        abort_mkt("varies_within_unit", c(
          "The covariate {.field {v}} varies within {length(bad)} unit{?s} or is missing, e.g. {.val {utils::head(bad, 3)}}.",
          x = "Covariates of {.fn staggered} must be fixed unit characteristics.",
          i = "Use the value in a pre-treatment period (or the unit mean) for every row of the unit."
        ), call = call)
      }
      lo
    }, numeric(N))
    X <- matrix(X, nrow = N, dimnames = list(NULL, covs))
  }

  cohort <- unname(panel$cohort_index)
  cohort[is.na(cohort)] <- 0L
  early <- cohort > 0L & cohort <= 1L + anticipation
  dropped_units <- panel$units[early]
  if (any(early)) {
    warn_mkt("treated_first_period", c(
      "{sum(early)} unit{?s} {?is/are} treated from the first period{if (anticipation > 0) ' (allowing for anticipation)' else ''} and {?has/have} no untreated base period; dropped.",
      i = "Dropped: {.val {utils::head(as.character(dropped_units), 5)}}{if (sum(early) > 5) ', ...' else ''} (see {.code tidy(fit, \"dropped_units\")})."
    ))
  }
  keep <- !early
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
  list(
    Y = Y, cohort = cohort[keep], w = w[keep], keep = keep,
    X = if (is.null(X)) NULL else X[keep, , drop = FALSE],
    cluster_id = match(cl[keep], unique(cl[keep])),
    n = sum(keep), n_periods = length(panel$times),
    dropped_units = dropped_units
  )
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
                        cells$control_after - 1L, not_yet, trim, mkt_threads())
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
  cache <- list()
  for (k in seq_len(K)) {
    g <- cells$group_idx[k]
    treated <- prep$cohort == g
    ctrl <- prep$cohort == 0L |
      (not_yet & prep$cohort > cells$control_after[k] & prep$cohort != g)
    dy <- prep$Y[, cells$time_idx[k]] - prep$Y[, cells$base_idx[k]]
    cand <- treated | ctrl
    use <- cand & !is.na(dy)
    n1[k] <- sum(treated & use)
    n0[k] <- sum(ctrl & use)
    if (n1[k] == 0L) {
      note[k] <- cell_notes(1L)
      next
    }
    if (n0[k] == 0L) {
      note[k] <- cell_notes(2L)
      next
    }
    if (cells$time_idx[k] == cells$base_idx[k]) {
      att[k] <- 0
      next
    }
    if (n0[k] <= kx || (method != "reg" && n1[k] + n0[k] <= kx + 1L)) {
      note[k] <- "too few units to fit the covariates"
      next
    }
    # The set of units used: its cohort and controls when none is missing in
    # the two periods (the usual case), else the exact set.
    key <- if (sum(use) == sum(cand)) {
      paste(g, paste(sort(unique(prep$cohort[ctrl])), collapse = ","))
    } else {
      NULL
    }
    nuis <- if (!is.null(key)) cache[[key]]
    if (is.null(nuis)) {
      nuis <- sz_nuisance(as.numeric(treated[use]), Xint[use, , drop = FALSE],
                          prep$w[use], method)
      if (!is.null(key)) cache[[key]] <- nuis
    }
    if (is.character(nuis)) {
      note[k] <- nuis
      next
    }
    r <- sz_panel_did(dy[use], nuis, method)
    att[k] <- r$att
    inf[use, k] <- r$inf * n / sum(use)
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
    ps <- suppressWarnings(stats::glm.fit(X, D, weights = w, family = stats::binomial()))
    if (ps$rank < k || !ps$converged) return("propensity score model did not converge")
    p <- pmin(ps$fitted.values, 1 - 1e-6)
    # vcov of the logit as glm reports it (unit dispersion), times n.
    H <- chol2inv(ps$qr$qr[seq_len(k), seq_len(k), drop = FALSE]) * n
    out$lin_ps <- (w * (D - p) * X) %*% H
    keep <- ifelse(D == 1, p < 1.01, p < 0.995)
    out$w1 <- keep * w * D
    out$w0 <- keep * w * p * (1 - D) / (1 - p)
    if (sum(out$w0) == 0) return(cell_notes(3L))
  }
  out
}

# Sant'Anna & Zhao (2020) panel DiD estimators on the change dy, given the
# nuisance parts of sz_nuisance(): outcome regression, stabilised IPW and
# the locally efficient doubly robust one, with their influence functions.
sz_panel_did <- function(dy, nuis, method) {
  X <- nuis$X
  w <- nuis$w
  D <- nuis$D
  if (method != "ipw") {
    beta <- qr.coef(nuis$qr0, dy[nuis$c0] * nuis$sw0)
    out <- drop(X %*% beta)
    # lin_ols %*% v without forming lin_ols (n x k): the OLS residual of each
    # control times x_i' M v.
    e_ols <- nuis$w_ols * (dy - out)
    lin_ols <- function(v) e_ols * drop(X %*% (nuis$M %*% v))
  }
  if (method == "reg") {
    w1 <- w * D
    eta1 <- mean(w1 * dy) / mean(w1)
    eta0 <- mean(w1 * out) / mean(w1)
    inf_t <- (w1 * dy - w1 * eta1) / mean(w1)
    inf_c <- (w1 * out - w1 * eta0 + lin_ols(colMeans(w1 * X))) / mean(w1)
  } else if (method == "ipw") {
    w1 <- nuis$w1
    w0 <- nuis$w0
    eta1 <- mean(w1 * dy) / mean(w1)
    eta0 <- mean(w0 * dy) / mean(w0)
    inf_t <- (w1 * dy - w1 * eta1) / mean(w1)
    inf_c <- (w0 * dy - w0 * eta0 + nuis$lin_ps %*% colMeans(w0 * (dy - eta0) * X)) / mean(w0)
  } else {
    w1 <- nuis$w1
    w0 <- nuis$w0
    r <- dy - out
    eta1 <- mean(w1 * r) / mean(w1)
    eta0 <- mean(w0 * r) / mean(w0)
    inf_t <- (w1 * r - w1 * eta1 - lin_ols(colMeans(w1 * X))) / mean(w1)
    inf_c <- (w0 * r - w0 * eta0 + nuis$lin_ps %*% colMeans(w0 * (r - eta0) * X) -
                lin_ols(colMeans(w0 * X))) / mean(w0)
  }
  list(att = eta1 - eta0, inf = drop(inf_t - inf_c))
}
