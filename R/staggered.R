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
#' units, such as a market; by default the unit). With `n_boot > 0` a
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
#'   indicator.
#' @param data A long data frame, tibble or data.table.
#' @param control `"never"` (never-treated units) or `"not_yet"`
#'   (never-treated and not-yet-treated units) as controls.
#' @param method `"dr"`, `"ipw"` or `"reg"`, see Estimators.
#' @param anticipation Number of periods before adoption in which units may
#'   already react.
#' @param base_period `"varying"` or `"universal"`, see Base period.
#' @param cluster `NULL` (cluster by unit) or the name of a column constant
#'   within units, such as a market, to cluster at a higher level.
#' @param n_boot Number of multiplier bootstrap draws for the uniform bands;
#'   0 gives pointwise normal intervals only.
#' @param weights `NULL` or the name of a column of sampling weights
#'   (population, for example), constant within units.
#' @param alpha Significance level of the bands.
#' @param ... Unused.
#' @return An object of class `c("mkt_staggered", "mkt_fit")`. Use
#'   [tidy()][tidy.mkt_staggered] for the ATT(g,t) table,
#'   [aggregate()][aggregate.mkt_staggered] for overall, event-time, cohort
#'   and calendar summaries, and `plot()`.
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
#' fit <- staggered(lemp ~ post | countyreal + year, mpdta, n_boot = 199)
#' tidy(fit)
#' tidy(aggregate(fit, "simple"))
#' @export
staggered <- function(formula, data, control = c("never", "not_yet"),
                      method = c("dr", "ipw", "reg"), anticipation = 0,
                      base_period = c("varying", "universal"), cluster = NULL,
                      n_boot = 1000, weights = NULL, alpha = 0.05, ...) {
  control <- match.arg(control)
  method <- match.arg(method)
  base_period <- match.arg(base_period)
  anticipation <- check_count(anticipation, "anticipation", min = 0)
  n_boot <- check_count(n_boot, "n_boot", min = 0)
  alpha <- check_alpha(alpha)
  data <- check_data_frame(data)
  panel <- mkt_panel(formula, data)
  prep <- staggered_prepare(panel, data, control, cluster, weights, anticipation)

  cells <- staggered_cells(prep, control, base_period, anticipation)
  not_yet <- control == "not_yet"
  est <- if (length(panel$vars$covariates)) {
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

  S <- rowsum_clusters(est$inf, prep$cluster_id)
  ss <- if (is.null(est$sumsq) || anyDuplicated(prep$cluster_id)) colSums(S * S) else est$sumsq
  se <- sqrt(ss) / prep$n
  se[se <= sqrt(.Machine$double.eps) * 10 | is.na(cells$estimate)] <- NA_real_
  cells$std.error <- se
  seed <- draw_cpp_seed()
  draws_fun <- NULL
  if (!length(panel$vars$covariates) && !anyNA(prep$Y) && !anyDuplicated(prep$cluster_id)) {
    draws_fun <- function(cols) cohort_sum_draws(prep, cells, est, not_yet, cols, n_boot, seed)
  }
  boot <- staggered_bootstrap(S, prep$n, n_boot, seed, alpha, draws_fun, ss)

  fit <- list(
    cells = cells, inf = est$inf, panel_info = prep$info,
    unit_cohort = prep$cohort, unit_weight = prep$w, cluster_id = prep$cluster_id,
    n = prep$n, n_clusters = nrow(S), times = panel$times,
    control = control, method = method, anticipation = anticipation,
    base_period = base_period, alpha = alpha, n_boot = n_boot, seed = seed,
    boot_se = boot$se, crit = boot$crit, dropped_units = prep$dropped_units,
    vars = panel$vars, balanced = panel$balanced, call = match.call()
  )
  class(fit) <- c("mkt_staggered", "mkt_fit")
  fit
}

# --- preparation -----------------------------------------------------------

# Checks the panel for staggered adoption and returns the unit-level inputs:
# cohort index (0 = never treated), weights, clusters and covariates, after
# dropping units treated before any clean base period.
staggered_prepare <- function(panel, data, control, cluster, weights, anticipation,
                              call = rlang::caller_env()) {
  require_binary_treatment(panel, "staggered", call = call)
  unit_names <- as.character(panel$units)
  row_unit <- match(data[[panel$vars$unit]], panel$units)
  unit_value <- function(col, role) {
    check_columns(data, col, role, call = call)
    v <- data[[col]]
    ok <- !is.na(row_unit)
    n_distinct <- tapply(v[ok], row_unit[ok], function(z) length(unique(z)))
    if (any(n_distinct > 1)) {
      bad <- unit_names[as.integer(names(n_distinct)[n_distinct > 1])]
      abort_mkt("varies_within_unit", c(
        "The {role} column {.field {col}} varies within {length(bad)} unit{?s}, e.g. {.val {utils::head(bad, 3)}}.",
        i = "Give one value per unit: units must nest in clusters, and sampling weights are unit weights."
      ), call = call)
    }
    v[match(seq_along(unit_names), row_unit)]
  }
  N <- length(unit_names)
  w <- if (is.null(weights)) rep(1, N) else as.numeric(unit_value(weights, "weights"))
  if (anyNA(w) || any(!is.finite(w)) || any(w < 0) || all(w == 0)) {
    abort_mkt("bad_weights", c(
      "The weights {.field {weights}} must be finite, non-negative and not all zero.",
      i = "Fix or drop units with missing or negative weights."
    ), call = call)
  }
  cl <- if (is.null(cluster)) seq_len(N) else unit_value(cluster, "cluster")
  if (anyNA(cl)) {
    abort_mkt("missing_values", "The cluster column {.field {cluster}} has missing values.",
              call = call)
  }

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

  cohort <- match(as.character(panel$cohort), as.character(panel$times))
  cohort[is.na(cohort)] <- 0L
  early <- cohort > 0L & cohort <= 1L + anticipation
  dropped_units <- panel$units[early]
  if (any(early)) {
    warn_mkt("treated_first_period", c(
      "{sum(early)} unit{?s} {?is/are} treated from the first period{if (anticipation > 0) ' (allowing for anticipation)' else ''} and {?has/have} no untreated base period; dropped.",
      i = "Dropped: {.val {utils::head(as.character(dropped_units), 5)}}{if (sum(early) > 5) ', ...' else ''} (see {.code $dropped_units})."
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
  Y <- panel$Y[keep, , drop = FALSE]
  list(
    Y = Y, cohort = cohort[keep], w = w[keep],
    X = if (is.null(X)) NULL else X[keep, , drop = FALSE],
    cluster_id = match(cl[keep], unique(cl[keep])),
    n = sum(keep), n_periods = length(panel$times),
    dropped_units = dropped_units,
    info = list(units = sum(keep), periods = length(panel$times))
  )
}

# The (g, t) cells with their base periods and control cut-offs, following
# Callaway & Sant'Anna's conventions for varying and universal base periods.
staggered_cells <- function(prep, control, base_period, anticipation) {
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

rowsum_clusters <- function(inf, cluster_id) {
  if (!anyDuplicated(cluster_id)) return(inf)
  rowsum(inf, cluster_id, reorder = FALSE)
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
# the cohort and its controls observed in both periods; a few dozen cells of
# small regressions, so R's compiled lm/glm fitters do the work.
staggered_gt_covariates <- function(prep, cells, method, not_yet) {
  n <- prep$n
  K <- nrow(cells)
  inf <- matrix(0, n, K)
  att <- rep(NA_real_, K)
  n1 <- n0 <- integer(K)
  note <- character(K)
  Xint <- cbind("(Intercept)" = 1, prep$X)
  for (k in seq_len(K)) {
    g <- cells$group_idx[k]
    treated <- prep$cohort == g
    ctrl <- prep$cohort == 0L |
      (not_yet & prep$cohort > cells$control_after[k] & prep$cohort != g)
    dy <- prep$Y[, cells$time_idx[k]] - prep$Y[, cells$base_idx[k]]
    use <- (treated | ctrl) & !is.na(dy)
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
    if (n0[k] <= ncol(Xint) || (method != "reg" && n1[k] + n0[k] <= ncol(Xint) + 1L)) {
      note[k] <- "too few units to fit the covariates"
      next
    }
    r <- sz_panel_did(dy[use], as.numeric(treated[use]), Xint[use, , drop = FALSE],
                      prep$w[use], method)
    if (is.character(r)) {
      note[k] <- r
      next
    }
    att[k] <- r$att
    inf[use, k] <- r$inf * n / sum(use)
  }
  list(att = att, n_treated = n1, n_control = n0, note = note, inf = inf)
}

# Sant'Anna & Zhao (2020) panel DiD estimators on the change dy: outcome
# regression, stabilised IPW and the locally efficient doubly robust one,
# with their influence functions. Returns a reason string when a nuisance
# model cannot be fitted.
sz_panel_did <- function(dy, D, X, w, method) {
  n <- length(dy)
  w <- w / mean(w)
  k <- ncol(X)
  if (method != "ipw") {
    c0 <- D == 0
    ols <- stats::lm.wfit(X[c0, , drop = FALSE], dy[c0], w[c0])
    if (ols$rank < k) return("covariates collinear among controls")
    out <- drop(X %*% ols$coefficients)
    w_ols <- w * (1 - D)
    lin_ols <- (w_ols * (dy - out) * X) %*% solve(crossprod(w_ols * X, X) / n)
  }
  if (method != "reg") {
    ps <- suppressWarnings(stats::glm.fit(X, D, weights = w, family = stats::binomial()))
    if (ps$rank < k || !ps$converged) return("propensity score model did not converge")
    p <- pmin(ps$fitted.values, 1 - 1e-6)
    # vcov of the logit as glm reports it (unit dispersion), times n.
    H <- chol2inv(ps$qr$qr[seq_len(k), seq_len(k), drop = FALSE]) * n
    lin_ps <- (w * (D - p) * X) %*% H
    keep <- ifelse(D == 1, p < 1.01, p < 0.995)
    w1 <- keep * w * D
    w0 <- keep * w * p * (1 - D) / (1 - p)
    if (sum(w0) == 0) return(cell_notes(3L))
  }
  if (method == "reg") {
    w1 <- w * D
    eta1 <- mean(w1 * dy) / mean(w1)
    eta0 <- mean(w1 * out) / mean(w1)
    inf_t <- (w1 * dy - w1 * eta1) / mean(w1)
    inf_c <- (w1 * out - w1 * eta0 + lin_ols %*% colMeans(w1 * X)) / mean(w1)
  } else if (method == "ipw") {
    eta1 <- mean(w1 * dy) / mean(w1)
    eta0 <- mean(w0 * dy) / mean(w0)
    inf_t <- (w1 * dy - w1 * eta1) / mean(w1)
    inf_c <- (w0 * dy - w0 * eta0 + lin_ps %*% colMeans(w0 * (dy - eta0) * X)) / mean(w0)
  } else {
    r <- dy - out
    eta1 <- mean(w1 * r) / mean(w1)
    eta0 <- mean(w0 * r) / mean(w0)
    inf_t <- (w1 * r - w1 * eta1 - lin_ols %*% colMeans(w1 * X)) / mean(w1)
    inf_c <- (w0 * r - w0 * eta0 + lin_ps %*% colMeans(w0 * (r - eta0) * X) -
                lin_ols %*% colMeans(w0 * X)) / mean(w0)
  }
  list(att = eta1 - eta0, inf = drop(inf_t - inf_c))
}

# --- bootstrap ----------------------------------------------------------------

# Multiplier bootstrap of the columns of S (cluster sums of influence
# functions): IQR-based standard errors and the sup-t critical value over
# the columns with a positive analytic variance.
# Bootstrap draws of the cells `cols` through cohort sums (balanced panel, no
# covariates, unit clusters): the same multipliers as the generic path.
cohort_sum_draws <- function(prep, cells, est, not_yet, cols, n_boot, seed) {
  cohorts <- sort(unique(prep$cohort))
  slot <- match(prep$cohort, cohorts) - 1L
  H <- length(cohorts)
  K <- length(cols)
  coef <- matrix(0, H, K)
  centre <- matrix(0, H, K)
  n <- prep$n
  for (j in seq_len(K)) {
    k <- cols[j]
    if (est$status[k] != 0L) next
    g <- cells$group_idx[k]
    ctrl <- cohorts == 0L | (not_yet & cohorts > cells$control_after[k] & cohorts != g)
    tr <- cohorts == g
    coef[tr, j] <- n / est$wsum1[k]
    centre[tr, j] <- est$mean1[k]
    coef[ctrl, j] <- -n / est$wsum0[k]
    centre[ctrl, j] <- est$mean0[k]
  }
  cpp_staggered_boot_cohort(prep$Y, prep$w, slot, order(slot) - 1L, H,
                            cells$time_idx[cols] - 1L, cells$base_idx[cols] - 1L,
                            coef, centre, n_boot, seed, mkt_threads())
}

staggered_bootstrap <- function(S, n, n_boot, seed, alpha, draws_fun = NULL, ss = NULL) {
  K <- ncol(S)
  se <- rep(NA_real_, K)
  if (n_boot == 0L || K == 0L) return(list(se = se, crit = NA_real_))
  if (is.null(ss)) ss <- colSums(S * S)
  ok <- which(is.finite(ss) & ss > 0)
  if (!length(ok)) return(list(se = se, crit = NA_real_))
  draws <- if (is.null(draws_fun)) {
    cpp_staggered_boot(S[, ok, drop = FALSE], n, n_boot, seed, mkt_threads())
  } else {
    draws_fun(ok)
  }
  q <- apply(draws, 2, stats::quantile, probs = c(0.25, 0.75), type = 1, names = FALSE)
  sig <- (q[2, ] - q[1, ]) / (stats::qnorm(0.75) - stats::qnorm(0.25))
  good <- sig > 0
  se[ok[good]] <- sig[good]
  tmax <- apply(abs(draws[, good, drop = FALSE]) /
                  matrix(sig[good], n_boot, sum(good), byrow = TRUE), 1, max)
  list(se = se, crit = unname(stats::quantile(tmax, 1 - alpha, type = 1)))
}

# Confidence limits: the uniform band when the bootstrap ran, else pointwise.
band_limits <- function(estimate, se, boot_se, crit, alpha) {
  if (is.na(crit)) {
    z <- stats::qnorm(1 - alpha / 2)
    return(list(low = estimate - z * se, high = estimate + z * se))
  }
  list(low = estimate - crit * boot_se, high = estimate + crit * boot_se)
}

# --- methods ------------------------------------------------------------------

#' Methods for staggered-adoption fits
#'
#' `tidy()` gives one row per (group, time) cell: `term`, `group` (the
#' cohort's first treated period), `time`, `event` (periods since adoption),
#' `estimate`, `std.error` (influence function, clustered as requested),
#' `conf.low`, `conf.high` (the bootstrap uniform band when `n_boot > 0`,
#' else pointwise normal limits), `p.value` (normal, from `std.error`),
#' `std.error.boot`, `n_treated`, `n_control` and `note` (why a cell is `NA`,
#' or `"base period"`).
#'
#' @param x,object A [staggered()] fit.
#' @param ... Unused.
#' @return `tidy()` and `glance()` return data frames; `coef()` a named
#'   vector; `plot()` a ggplot of the ATT(g,t) by cohort.
#' @name staggered-methods
#' @examples
#' mpdta$post <- as.integer(mpdta$first.treat > 0 & mpdta$year >= mpdta$first.treat)
#' fit <- staggered(lemp ~ post | countyreal + year, mpdta, n_boot = 0)
#' head(tidy(fit))
#' glance(fit)
NULL

#' @rdname staggered-methods
#' @export
tidy.mkt_staggered <- function(x, ...) {
  cl <- x$cells
  g <- x$times[cl$group_idx]
  t <- x$times[cl$time_idx]
  lim <- band_limits(cl$estimate, cl$std.error, x$boot_se, x$crit, x$alpha)
  data.frame(
    term = paste0("ATT(", as.character(g), ",", as.character(t), ")"),
    group = g, time = t, event = cl$time_idx - cl$group_idx,
    estimate = cl$estimate, std.error = cl$std.error,
    conf.low = lim$low, conf.high = lim$high,
    p.value = 2 * stats::pnorm(-abs(cl$estimate / cl$std.error)),
    std.error.boot = x$boot_se, n_treated = cl$n_treated, n_control = cl$n_control,
    note = cl$note, stringsAsFactors = FALSE
  )
}

#' @rdname staggered-methods
#' @export
glance.mkt_staggered <- function(x, ...) {
  data.frame(
    n_units = x$n, n_clusters = x$n_clusters, n_periods = length(x$times),
    n_cohorts = length(unique(x$cells$group_idx)), n_cells = nrow(x$cells),
    n_na_cells = sum(is.na(x$cells$estimate)), n_dropped_units = length(x$dropped_units),
    control = x$control, method = x$method, base_period = x$base_period,
    anticipation = x$anticipation, n_boot = x$n_boot, crit = x$crit,
    stringsAsFactors = FALSE
  )
}

#' @rdname staggered-methods
#' @export
coef.mkt_staggered <- function(object, ...) {
  td <- tidy.mkt_staggered(object)
  stats::setNames(td$estimate, td$term)
}

#' @rdname staggered-methods
#' @export
print.mkt_staggered <- function(x, ...) {
  g <- glance.mkt_staggered(x)
  cat(sprintf("<mkt_staggered> Callaway-Sant'Anna ATT(g,t): %s, %s controls, %s base period\n",
              x$method, if (x$control == "never") "never-treated" else "not-yet-treated",
              x$base_period))
  cat(sprintf("  %d units (%d clusters), %d periods, %d cohorts, %d cells (%d NA)\n",
              g$n_units, g$n_clusters, g$n_periods, g$n_cohorts, g$n_cells, g$n_na_cells))
  if (g$n_dropped_units) cat(sprintf("  %d units treated from the start dropped\n", g$n_dropped_units))
  agg <- aggregate.mkt_staggered(x, "simple")
  o <- agg$table[1, ]
  cat(sprintf("  Overall ATT (simple): %.4f (SE %.4f)\n", o$estimate, o$std.error))
  cat(if (x$n_boot > 0) sprintf("  Bands: uniform, %d bootstrap draws, critical value %.3f\n",
                                x$n_boot, x$crit) else "  Bands: pointwise normal\n")
  invisible(x)
}

#' @rdname staggered-methods
#' @export
summary.mkt_staggered <- function(object, ...) {
  structure(list(fit = object, cells = tidy.mkt_staggered(object),
                 overall = tidy(aggregate.mkt_staggered(object, "simple"))),
            class = "summary.mkt_staggered")
}

#' @export
print.summary.mkt_staggered <- function(x, ...) {
  print.mkt_staggered(x$fit)
  cat("\nGroup-time effects:\n")
  cols <- c("group", "time", "estimate", "std.error", "conf.low", "conf.high", "note")
  print.data.frame(x$cells[cols], row.names = FALSE, digits = 4)
  invisible(x)
}

#' @rdname staggered-methods
#' @export
plot.mkt_staggered <- function(x, ...) {
  td <- tidy.mkt_staggered(x)
  td$phase <- ifelse(td$event >= 0, "post", "pre")
  td$group <- factor(format(td$group))
  ggplot2::ggplot(td, ggplot2::aes(x = .data$time, y = .data$estimate, colour = .data$phase)) +
    ggplot2::geom_hline(yintercept = 0, colour = "grey50") +
    ggplot2::geom_pointrange(ggplot2::aes(ymin = .data$conf.low, ymax = .data$conf.high),
                             na.rm = TRUE) +
    ggplot2::facet_wrap(~group, ncol = 1, labeller = ggplot2::label_both) +
    ggplot2::scale_colour_manual(values = c(pre = "grey40", post = "#08519c")) +
    ggplot2::labs(x = x$vars$time, y = "ATT(g,t)", colour = NULL) +
    ggplot2::theme_minimal()
}
