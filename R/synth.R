#' Synthetic control, synthetic difference-in-differences and DiD for few treated units
#'
#' `synth()` estimates the effect of a treatment that reaches one unit (or a
#' few) from a panel in which the other units are never treated. The
#' counterfactual of a treated unit is a weighted average of never-treated
#' donors that tracks it before treatment; under a factor structure for the
#' untreated outcome such a combination keeps tracking it afterwards.
#'
#' @section Methods:
#' * `"sc"`: the synthetic control of Abadie, Diamond and Hainmueller (2010).
#'   Without `predictors` the donor weights lie on the simplex and minimise
#'   the pre-period squared error of the outcome; this is a convex problem
#'   solved exactly (Wolfe's minimum-norm-point algorithm, to a KKT residual
#'   of about 1e-12 relative to the data's scale). With `predictors` the
#'   weights minimise the distance between the treated unit's and the
#'   synthetic unit's predictors in a diagonal metric V, and V (on the
#'   simplex) minimises the pre-period outcome MSPE over `fit_periods`;
#'   predictors are scaled by their standard deviation across units first.
#'   V is searched by Nelder-Mead from three starts: equal weights, weights
#'   proportional to each predictor's squared regression coefficients for the
#'   pre-period outcomes, and a sharper version of the latter. The loss
#'   reached is reported (`fit$v_loss`).
#' * `"asc"`: the ridge-augmented synthetic control of Ben-Michael, Feller
#'   and Rothstein (2021): the outcome-only synthetic control plus a ridge
#'   regression of the donors' post-period outcomes on their pre-period
#'   outcomes, applied to the remaining pre-period imbalance. The penalty
#'   minimises the leave-one-donor-out prediction error of that regression.
#'   The augmented weights sum to one but may be negative.
#' * `"sdid"`: synthetic difference-in-differences (Arkhangelsky et al.
#'   2021): unit weights with an intercept and the ridge penalty
#'   \eqn{\zeta = (N_{tr} T_{post})^{1/4} \hat\sigma}, where \eqn{\hat\sigma} is
#'   the standard deviation of the donors' first differences before
#'   treatment, and time weights with an intercept and a negligible penalty,
#'   both solved exactly.
#' * `"did"`: the plain difference in differences of means, as a reference.
#'
#' @section Several treated units:
#' Treated units and their first treated period come from the treatment
#' column, which must be 0/1 and absorbing. With `"sc"` each treated unit
#' (or `"asc"`) gets its own synthetic control; with `"sdid"` and `"did"` the units first
#' treated in the same period are averaged into one treated series (as in
#' Arkhangelsky et al.). Gaps are aligned in event time (periods since the
#' first treated period) and averaged across fits, each weighted by its
#' number of treated units; the overall ATT is the weighted average of the
#' fits' mean post-period gaps.
#'
#' @section Missing cells:
#' A donor with a missing outcome in any period is dropped, with a message
#' that names it. A treated unit's missing periods are left out of its fit
#' (before treatment) or out of its effect (after).
#'
#' @section Inference:
#' One method per fit, so that its p-value and interval agree:
#' * `"placebo"` with `"sc"`: placebo in space. Each donor in turn is
#'   treated as if it had been treated, fitted from the other donors with the
#'   same specification; the statistic is the ratio of post- to pre-period
#'   RMSPE and the p-value is the treated unit's rank among all units (Abadie
#'   et al. 2010). Placebos whose pre-period MSPE exceeds
#'   `drop_poor_placebos` times the treated unit's are left out. One treated
#'   unit only.
#' * `"placebo"` with `"sdid"`/`"did"`: the placebo standard error of
#'   Arkhangelsky et al. (Algorithm 4): `n_draws` times, donors drawn at
#'   random play the treated units and the estimator is rerun; normal
#'   intervals and p-values. With one treated unit a replication can only
#'   pick one donor, so as `n_draws` grows the standard error tends to the
#'   standard deviation of the leave-one-donor placebo estimates; a run of
#'   200 replications scatters around that limit (on Prop 99, sdid: limit
#'   9.37, Monte Carlo SD about 0.64; Table 1's 8.4 is one such run).
#' * `"conformal"` with outcome-only `"sc"` or `"asc"` and one treated
#'   unit: the conformal inference of Chernozhukov, Wuthrich and Zhu (2021).
#'   Under the null of an effect theta, the treated post-period outcomes are
#'   shifted by theta, the weights refitted on all periods, and the mean
#'   absolute post-period residual compared with its values under all cyclic
#'   shifts of the residuals in time. The p-value tests a zero effect in
#'   every post period; intervals invert the test, for a constant effect
#'   over the post-period (`tidy(fit)`) and for each period alone
#'   (`tidy(fit, "period")`). An end is infinite when the test does not
#'   reject anywhere in the search range (it widens to 128 pre-period RMSPEs
#'   around the estimate): the constant-effect test has little power when
#'   the post-period is long next to the pre-period, since the refitted
#'   weights then absorb part of any effect.
#' * `"jackknife"` (`"sdid"`, `"did"`; at least two treated units): leave one
#'   unit out with the weights held fixed (their Algorithm 3).
#' * `"bootstrap"` (`"sdid"`, `"did"`; at least two treated units): units
#'   resampled with replacement, weights re-estimated (their Algorithm 2).
#'
#' Every loop runs through [resample_chunks()]: the user's future plan,
#' progress reporting and `set.seed()` reproducibility.
#'
#' @param formula `outcome ~ treatment | unit + time`, with a 0/1 absorbing
#'   treatment column (see [mkt_panel()]).
#' @param data A long data frame, tibble or data.table.
#' @param method `"sc"`, `"asc"`, `"sdid"` or `"did"`; see Methods.
#' @param predictors For `"sc"` only: `NULL` (fit on the pre-period outcome)
#'   or a list of predictor specifications as in Abadie et al. (2010). Each
#'   element is named by a column of `data` (the outcome's column included)
#'   and holds the periods over which that column is averaged, for example
#'   `list(retprice = 1980:1988, packspercapita = 1975,
#'   packspercapita = 1988)`; names may repeat. A column that does not vary
#'   over time works with any single pre-period.
#' @param inference `"none"`, `"placebo"`, `"conformal"`, `"jackknife"` or
#'   `"bootstrap"`;
#'   see Inference.
#' @param n_draws Replications for the sdid/did placebo and bootstrap.
#' @param fit_periods Pre-treatment periods whose outcome MSPE is minimised
#'   over V (default: all periods before treatment). Used with `predictors`.
#' @param drop_poor_placebos Placebos with a pre-period MSPE above this
#'   multiple of the treated unit's are dropped (`Inf` keeps all; Abadie et
#'   al. 2010 show 20, 5 and 2).
#' @param alpha Significance level for intervals.
#' @param poor_fit A classed warning (`mktcausal_warning_poor_fit`) is
#'   raised when a treated unit's pre-period RMSPE exceeds this fraction of
#'   the standard deviation of all pre-period outcomes.
#' @param pool For outcome-only `"sc"` with several treated units: the
#'   weight \eqn{\nu} in \[0, 1\] of the pooled fit in the partially pooled
#'   synthetic control of Ben-Michael, Feller and Rothstein (2022). The
#'   weights minimise \eqn{\nu} times the mean squared pre-period gap of the
#'   average treated unit (over the lags all treated units share, in event
#'   time) plus \eqn{1 - \nu} times the mean of the units' own mean squared
#'   pre-period gaps. `0` (the default) fits each unit separately; `1` fits
#'   only the average. No inference is offered for `pool > 0`.
#' @param ... Must be empty.
#' @return An object of class `c("mkt_synth", "mkt_fit")`. Use [coef()],
#'   [weights()][weights.mkt_synth], [tidy()][tidy.mkt_synth],
#'   [glance()][glance.mkt_synth], `summary()` and `plot()` on it.
#' @references Abadie, A., Diamond, A. and Hainmueller, J. (2010). Synthetic
#'   control methods for comparative case studies. *Journal of the American
#'   Statistical Association* 105(490), 493-505.
#'
#'   Ben-Michael, E., Feller, A. and Rothstein, J. (2021). The augmented
#'   synthetic control method. *Journal of the American Statistical
#'   Association* 116(536), 1789-1803.
#'
#'   Arkhangelsky, D., Athey, S., Hirshberg, D. A., Imbens, G. W. and Wager, S.
#'   (2021). Synthetic difference-in-differences. *American Economic Review*
#'   111(12), 4088-4118.
#'
#'   Ben-Michael, E., Feller, A. and Rothstein, J. (2022). Synthetic controls
#'   with staggered adoption. *Journal of the Royal Statistical Society,
#'   Series B* 84(2), 351-381.
#'
#'   Chernozhukov, V., Wuthrich, K. and Zhu, Y. (2021). An exact and robust
#'   conformal inference method for counterfactual and synthetic controls.
#'   *Journal of the American Statistical Association* 116(536), 1849-1864.
#'
#'   Wolfe, P. (1976). Finding the nearest point in a polytope. *Mathematical
#'   Programming* 11, 128-149.
#' @examples
#' fit <- synth(packspercapita ~ treated | state + year, prop99)
#' fit
#' head(sort(weights(fit), decreasing = TRUE))
#' sdid <- synth(packspercapita ~ treated | state + year, prop99, method = "sdid")
#' coef(sdid)
#' @export
synth <- function(formula, data, method = c("sc", "asc", "sdid", "did"), predictors = NULL,
                  inference = c("none", "placebo", "conformal", "jackknife", "bootstrap"),
                  n_draws = 200L, fit_periods = NULL, drop_poor_placebos = Inf,
                  alpha = 0.05, poor_fit = 0.25, pool = 0, ...) {
  rlang::check_dots_empty()
  method <- rlang::arg_match(method)
  inference <- rlang::arg_match(inference)
  n_draws <- check_count(n_draws, "n_draws", min = 2)
  alpha <- check_alpha(alpha)
  if (!is.numeric(drop_poor_placebos) || length(drop_poor_placebos) != 1L ||
      is.na(drop_poor_placebos) || drop_poor_placebos < 1) {
    abort_mkt("bad_argument", c(
      "{.arg drop_poor_placebos} must be a single number of at least 1 (or {.code Inf}).",
      x = "You supplied {.val {format(drop_poor_placebos)}}."))
  }
  if (!is.null(predictors) && method != "sc") {
    abort_mkt("bad_argument", c(
      "{.arg predictors} are used by {.code method = \"sc\"} only.",
      i = "Drop {.arg predictors} or use {.code method = \"sc\"}."))
  }
  if (length(pool) != 1L) {
    abort_mkt("bad_argument", "{.arg pool} must be a single number in [0, 1].")
  }
  check_probability(pool, "pool", open_left = FALSE)
  if (pool > 0 && (method != "sc" || !is.null(predictors))) {
    abort_mkt("bad_argument", c(
      "{.arg pool} applies to outcome-only {.code method = \"sc\"}.",
      i = "Set {.code pool = 0} or drop {.arg predictors}."))
  }
  pred_vars <- if (is.null(predictors)) character() else check_predictor_list(predictors)
  panel <- synth_panel(formula, data, pred_vars)
  setup <- synth_setup(panel, method)

  fits <- lapply(setup$groups, function(g) {
    fit_one(setup, g$treated, g$t0, setup$donors, method, predictors, fit_periods)
  })
  pooled <- NULL
  if (pool > 0 && length(fits) > 1L) {
    if (inference != "none") {
      abort_mkt("inference_unsupported", c(
        "Inference for partially pooled weights is not available.",
        i = "Use {.code pool = 0}, or {.code method = \"sdid\"} with placebo standard errors."))
    }
    pooled <- pool_weights(setup, fits, pool)
    fits <- Map(function(f, w) refit_gaps(setup, f, w), fits, pooled$W)
    for (k in seq_along(fits)) fits[[k]]$convergence$converged <- pooled$converged
  }
  out <- assemble_synth(setup, fits, method, predictors)
  out$pool <- pool
  out$pooled_imbalance <- pooled$pooled_imbalance
  out$call <- match.call()
  # Kept for the robustness checks, which refit the same specification.
  out$setup <- setup
  out$fit_periods <- fit_periods
  out$poor_fit <- poor_fit
  out$alpha <- alpha
  out$inference <- inference
  warn_fit_quality(out, poor_fit)

  if (inference != "none") {
    out <- synth_inference(out, setup, inference, n_draws, predictors, fit_periods,
                           drop_poor_placebos, alpha)
  }
  out
}

# --- input ----------------------------------------------------------------

check_predictor_list <- function(predictors, call = rlang::caller_env()) {
  nm <- names(predictors)
  if (!is.list(predictors) || length(predictors) == 0L || is.null(nm) || any(!nzchar(nm))) {
    abort_mkt("bad_predictors", c(
      "{.arg predictors} must be a list whose elements are named by columns of {.arg data}.",
      i = "For example {.code list(retprice = 1980:1988, packspercapita = 1975)}: each column is averaged over the periods given."
    ), call = call)
  }
  empty <- vapply(predictors, function(p) length(p) == 0L || anyNA(p), logical(1))
  if (any(empty)) {
    abort_mkt("bad_predictors", c(
      "Predictor {.field {nm[empty][1]}} has no periods (or a missing period).",
      i = "Give each predictor the periods over which it is averaged."
    ), call = call)
  }
  unique(nm)
}

# Reads the panel through mkt_panel(), with the predictor columns appended as
# covariates so that their matrices come out on the same grid.
synth_panel <- function(formula, data, pred_vars, call = rlang::caller_env()) {
  spec <- parse_panel_formula(formula, call = call)
  if (is.null(spec$treatment)) {
    abort_mkt("no_treatment", c(
      "The formula has no treatment column.",
      i = "Write {.code outcome ~ treatment | unit + time} with a 0/1 treatment."
    ), call = call)
  }
  if (length(spec$covariates)) {
    abort_mkt("bad_formula", c(
      "{.fn synth} takes no covariates in the formula.",
      i = "Give covariates as {.arg predictors}, with the periods they are averaged over."
    ), call = call)
  }
  extra <- setdiff(pred_vars, spec$outcome)
  if (length(extra)) {
    check_columns(check_data_frame(data, call = call), extra, "predictors", call = call)
    # Append the predictor columns to the treatment side of the formula.
    lhs_rhs <- formula[[3]]
    for (v in extra) lhs_rhs[[2]] <- call("+", lhs_rhs[[2]], as.name(v))
    f <- formula
    f[[3]] <- lhs_rhs
    formula <- f
  }
  panel <- mkt_panel(formula, data)
  names(panel$X) <- gsub("`", "", names(panel$X), fixed = TRUE)
  panel
}

# Donors, treated units, their first treated periods and the checks that
# belong to this estimator rather than to the panel.
synth_setup <- function(panel, method, call = rlang::caller_env()) {
  require_binary_treatment(panel, "synth", call = call)
  t0_index <- match(as.character(panel$cohort), as.character(panel$times))
  never <- is.na(t0_index)
  unit_names <- as.character(panel$units)
  if (!any(never)) {
    abort_mkt("no_donors", c(
      "No unit is never treated, so there is no donor pool.",
      i = "Synthetic control compares treated units with never-treated ones; keep some untreated units in {.arg data}."
    ), call = call)
  }
  if (all(never)) {
    abort_mkt("no_treated", c(
      "No unit is ever treated by {.field {panel$vars$treatment}}.",
      i = "Check the treatment column: treated unit-periods are coded 1."
    ), call = call)
  }
  no_pre <- !never & t0_index == 1L
  if (any(no_pre)) {
    abort_mkt("too_few_pre_periods", c(
      "{cli::qty(sum(no_pre))}Treated unit{?s} {.val {unit_names[no_pre]}} {cli::qty(sum(no_pre))}{?is/are} treated from the first period, so there is nothing to fit on.",
      i = "Drop {cli::qty(sum(no_pre))}{?it/them} or extend the panel back in time."
    ), call = call)
  }
  min_pre <- if (method == "sdid") 2L else 1L
  short <- !never & t0_index - 1L < min_pre
  if (any(short)) {
    abort_mkt("too_few_pre_periods", c(
      "{.code method = \"{method}\"} needs at least {min_pre} pre-treatment periods.",
      x = "{.val {unit_names[short]}} {cli::qty(sum(short))}ha{?s/ve} {t0_index[short][1] - 1L}.",
      i = "Use a longer panel or {.code method = \"sc\"}."
    ), call = call)
  }
  # Documented rule for unbalanced panels: donors with any missing outcome
  # are dropped and named.
  donors <- which(never)
  incomplete <- donors[rowSums(!panel$observed[donors, , drop = FALSE]) > 0]
  if (length(incomplete)) {
    cli::cli_inform(c(
      "i" = "Dropping {length(incomplete)} donor{?s} with missing outcomes: {.val {unit_names[incomplete]}}."
    ))
    donors <- setdiff(donors, incomplete)
    if (!length(donors)) {
      abort_mkt("no_donors", c(
        "Every never-treated unit has a missing outcome, so no donor is left.",
        i = "Fill or impute the donors' missing periods."
      ), call = call)
    }
  }
  treated <- which(!never)
  groups <- if (method %in% c("sc", "asc")) {
    lapply(treated, function(i) list(treated = i, t0 = t0_index[i]))
  } else {
    lapply(split(treated, t0_index[treated]), function(ii) list(treated = ii, t0 = t0_index[ii[1]]))
  }
  names(groups) <- vapply(groups, function(g) {
    if (method %in% c("sc", "asc")) unit_names[g$treated] else as.character(panel$times[g$t0])
  }, character(1))
  list(panel = panel, donors = donors, treated = treated, t0_index = t0_index,
       groups = groups, method = method)
}

# --- one fit ----------------------------------------------------------------

# Fits one treated series (a unit, or the mean of a cohort) from `donors`
# whose treatment starts at column t0. Returns the weights and the gap of
# every period.
fit_one <- function(setup, treated, t0, donors, method, predictors, fit_periods,
                    sigma = NULL) {
  panel <- setup$panel
  Y <- panel$Y
  Tn <- ncol(Y)
  pre <- seq_len(t0 - 1L)
  post <- t0:Tn
  y1 <- colMeans(Y[treated, , drop = FALSE], na.rm = TRUE)
  y1[colSums(!is.na(Y[treated, , drop = FALSE])) == 0] <- NA
  Y0 <- Y[donors, , drop = FALSE]
  pre_ok <- pre[!is.na(y1[pre])]
  if (!length(pre_ok)) {
    abort_mkt("too_few_pre_periods", "Treated unit {.val {rownames(Y)[treated]}} has no observed pre-period outcome.")
  }
  J <- length(donors)
  lambda <- NULL
  ridge <- NULL
  v <- NULL
  v_loss <- NULL
  balance <- NULL
  conv <- list(converged = TRUE, kkt = 0, iterations = 0L)
  if (method == "did") {
    w <- rep(1 / J, J)
    lambda <- rep(0, Tn)
    lambda[pre_ok] <- 1 / length(pre_ok)
  } else if (method == "sdid") {
    n_tr <- length(treated)
    diffs <- diff(t(Y0[, pre, drop = FALSE]))
    # The noise level sets both penalties; placebo replications pass the
    # original fit's value, as the reference implementation does.
    if (is.null(sigma)) sigma <- if (length(diffs) > 1L) stats::sd(as.vector(diffs)) else 0
    zeta_w <- (n_tr * length(post))^(1 / 4) * sigma
    # Intercepts: centre over time for the unit weights, over donors for the
    # time weights; the ridge scale is the number of rows, as in the paper.
    A <- t(Y0[, pre_ok, drop = FALSE])
    b <- y1[pre_ok]
    rw <- solve_simplex(sweep(A, 2, colMeans(A)), b - mean(b),
                        length(pre_ok) * zeta_w^2)
    w <- rw$w
    B <- Y0[, pre_ok, drop = FALSE]
    c0 <- rowMeans(Y0[, post, drop = FALSE])
    zeta_l <- 1e-6 * sigma
    rl <- solve_simplex(sweep(B, 2, colMeans(B)), c0 - mean(c0), J * zeta_l^2)
    lambda <- rep(0, Tn)
    lambda[pre_ok] <- rl$w
    conv <- list(converged = rw$converged && rl$converged, kkt = max(rw$kkt, rl$kkt),
                 iterations = rw$iterations + rl$iterations)
  } else if (is.null(predictors)) {
    r <- solve_simplex(t(Y0[, pre_ok, drop = FALSE]), y1[pre_ok], 0)
    w <- r$w
    conv <- r[c("converged", "kkt", "iterations")]
    if (method == "asc") {
      aug <- ridge_augment(Y0[, pre_ok, drop = FALSE], y1[pre_ok], w, Y0[, post, drop = FALSE])
      w <- w + aug$adjust
      ridge <- aug$lambda
    }
  } else {
    pm <- predictor_matrix(panel, predictors, c(treated, donors), t0)
    fp <- synth_fit_periods(panel, fit_periods, t0, pre_ok)
    nested <- nested_weights(pm, Y[treated, fp], Y0[, fp, drop = FALSE])
    w <- nested$w
    v <- stats::setNames(nested$v, rownames(pm))
    v_loss <- nested$loss
    conv <- list(converged = nested$converged, kkt = nested$kkt, iterations = nested$evaluations)
    balance <- data.frame(
      term = rownames(pm), treated = pm[, 1], synthetic = drop(pm[, -1, drop = FALSE] %*% w),
      donor_mean = rowMeans(pm[, -1, drop = FALSE]), v = nested$v,
      stringsAsFactors = FALSE, row.names = NULL)
  }
  names(w) <- rownames(Y)[donors]
  synthetic <- drop(crossprod(Y0, w))
  offset <- if (is.null(lambda)) 0 else sum(lambda * (y1 - synthetic), na.rm = TRUE)
  gap <- y1 - synthetic - offset
  list(treated = treated, t0 = t0, w = w, lambda = lambda, ridge = ridge,
       sigma = if (method == "sdid") sigma, v = v, v_loss = v_loss,
       balance = balance, y1 = y1, synthetic = synthetic + offset, gap = gap,
       att = mean(gap[post], na.rm = TRUE),
       pre_rmspe = sqrt(mean(gap[pre]^2, na.rm = TRUE)),
       post_rmspe = sqrt(mean(gap[post]^2, na.rm = TRUE)),
       convergence = conv)
}

solve_simplex <- function(X, y, eta, w0 = numeric(0)) {
  ok <- is.finite(y)
  cpp_simplex_ls(X[ok, , drop = FALSE], y[ok], eta, w0, 1e-12, 100000L)
}

# Ridge augmentation (Ben-Michael, Feller and Rothstein 2021): a ridge
# regression of the donors' post-period outcomes on their pre-period outcomes
# corrects the synthetic control for its remaining pre-period imbalance
# d = x1 - X0'w. In weight form the correction is Xc (Xc'Xc + lambda I)^-1 d
# with Xc the centred donor pre-period matrix, so the augmented weights still
# sum to one (they may be negative). lambda minimises the leave-one-donor-out
# error of predicting the donors' post-period outcomes, computed in closed
# form from one SVD.
ridge_augment <- function(X0, x1, w, Ypost) {
  mu <- colMeans(X0)
  Xc <- sweep(X0, 2, mu)
  sv <- svd(Xc)
  d <- sv$d[sv$d > 1e-10 * sv$d[1]]
  U <- sv$u[, seq_along(d), drop = FALSE]
  V <- sv$v[, seq_along(d), drop = FALSE]
  grid <- d[1]^2 * 10^seq(-6, 2, length.out = 41)
  n <- nrow(X0)
  Yc <- sweep(Ypost, 2, colMeans(Ypost))
  UtY <- crossprod(U, Yc)
  cv <- vapply(grid, function(l) {
    shrink <- d^2 / (d^2 + l)
    fitted <- U %*% (shrink * UtY)
    h <- 1 / n + rowSums(sweep(U^2, 2, shrink, `*`))
    mean(((Yc - fitted) / (1 - h))^2)
  }, numeric(1))
  lambda <- grid[which.min(cv)]
  gap <- x1 - drop(crossprod(X0, w))
  adjust <- drop(U %*% ((d / (d^2 + lambda)) * crossprod(V, gap)))
  list(adjust = adjust, lambda = lambda, cv = cv, grid = grid)
}

# Predictors: each column averaged over its periods, one row per predictor
# and one column per unit (treated first). Missing values are an error that
# names the unit and the period.
predictor_matrix <- function(panel, predictors, units, t0, call = rlang::caller_env()) {
  times <- as.character(panel$times)
  rows <- lapply(seq_along(predictors), function(k) {
    var <- names(predictors)[k]
    per <- as.character(predictors[[k]])
    idx <- match(per, times)
    if (anyNA(idx)) {
      abort_mkt("bad_predictors", c(
        "Predictor {.field {var}} names period{?s} {.val {per[is.na(idx)]}} that {?is/are} not in the panel.",
        i = "Use periods of the time column {.field {panel$vars$time}}."
      ), call = call)
    }
    if (any(idx >= t0)) {
      abort_mkt("bad_predictors", c(
        "Predictor {.field {var}} uses period{?s} {.val {per[idx >= t0]}}, on or after the first treated period {.val {times[t0]}}.",
        i = "Predictors must be measured before treatment."
      ), call = call)
    }
    M <- if (var == panel$vars$outcome) panel$Y else panel$X[[var]]
    sub <- M[units, idx, drop = FALSE]
    if (anyNA(sub)) {
      bad <- which(is.na(sub), arr.ind = TRUE)[1, ]
      abort_mkt("missing_values", c(
        "Predictor {.field {var}} is missing for unit {.val {rownames(M)[units][bad[1]]}} in period {.val {times[idx][bad[2]]}}.",
        i = "Choose periods in which {.field {var}} is observed for every unit, or drop the unit."
      ), call = call)
    }
    rowMeans(sub)
  })
  pm <- do.call(rbind, rows)
  labels <- vapply(seq_along(predictors), function(k) {
    per <- predictors[[k]]
    rng <- if (length(per) == 1L) format(per) else paste0(format(min(per)), "-", format(max(per)))
    paste0(names(predictors)[k], " (", rng, ")")
  }, character(1))
  dimnames(pm) <- list(labels, rownames(panel$Y)[units])
  pm
}

synth_fit_periods <- function(panel, fit_periods, t0, pre_ok, call = rlang::caller_env()) {
  if (is.null(fit_periods)) return(pre_ok)
  idx <- match(as.character(fit_periods), as.character(panel$times))
  if (anyNA(idx) || any(idx >= t0)) {
    abort_mkt("bad_argument", c(
      "{.arg fit_periods} must be periods of the panel before the first treated period.",
      x = "Problem with {.val {fit_periods[is.na(idx) | idx >= t0][1]}}."
    ), call = call)
  }
  intersect(idx, pre_ok)
}

# The nested V search. Predictors are scaled by their standard deviation
# across all units (as Synth does) so that V is unit-free.
nested_weights <- function(pm, y1, Y0) {
  s <- apply(pm, 1, stats::sd)
  s[!(s > 0)] <- 1
  ps <- pm / s
  X1 <- ps[, 1]
  X0 <- ps[, -1, drop = FALSE]
  k <- nrow(ps)
  starts <- cbind(rep(1 / k, k), regression_v(ps, cbind(y1, t(Y0))))
  starts <- cbind(starts, starts[, 2]^2 / sum(starts[, 2]^2))
  cpp_synth_nested(X1, X0, y1, t(Y0), starts, 1e-12, 100000L, 100L * k, 1e-8)
}

# Regression-based start: each predictor's weight is proportional to the sum
# over fit periods of its squared coefficient when the outcome is regressed
# across units on the scaled predictors (a small ridge keeps it defined when
# there are more predictors than units).
regression_v <- function(ps, Yfit) {
  Xc <- t(ps - rowMeans(ps))
  Yc <- sweep(t(Yfit), 2, colMeans(t(Yfit)))
  G <- crossprod(Xc)
  beta <- solve(G + diag(1e-8 * max(1, sum(diag(G))), ncol(G)), crossprod(Xc, Yc))
  v <- rowSums(beta^2)
  if (!(sum(v) > 0) || anyNA(v)) return(rep(1 / length(v), length(v)))
  v <- v / sum(v)
  # Keep every predictor in play: Nelder-Mead cannot revive an exact zero.
  v <- pmax(v, 1e-4)
  v / sum(v)
}

# --- assemble ---------------------------------------------------------------

assemble_synth <- function(setup, fits, method, predictors) {
  panel <- setup$panel
  times <- panel$times
  unit_names <- as.character(panel$units)
  n_tr <- vapply(fits, function(f) length(f$treated), numeric(1))
  share <- n_tr / sum(n_tr)
  att_fit <- vapply(fits, `[[`, numeric(1), "att")
  estimate <- sum(share * att_fit)
  series <- do.call(rbind, lapply(seq_along(fits), function(k) {
    f <- fits[[k]]
    data.frame(fit = names(setup$groups)[k], time = times, event_time = seq_along(times) - f$t0,
               post = seq_along(times) >= f$t0, treated = f$y1, synthetic = f$synthetic,
               gap = f$gap, stringsAsFactors = FALSE, row.names = NULL)
  }))
  by_event <- event_time_att(series, fits, share)
  donors <- unit_names[setup$donors]
  W <- vapply(fits, `[[`, numeric(length(donors)), "w")
  W <- matrix(W, nrow = length(donors), dimnames = list(donors, names(setup$groups)))
  w_avg <- drop(W %*% share)
  names(w_avg) <- donors
  lambda <- if (!is.null(fits[[1]]$lambda)) {
    stats::setNames(fits[[1]]$lambda, as.character(times))
  }
  conv <- vapply(fits, function(f) isTRUE(f$convergence$converged), logical(1))
  balance <- if (!is.null(fits[[1]]$balance)) {
    b <- fits[[1]]$balance
    if (length(fits) > 1L) {
      for (col in c("treated", "synthetic", "donor_mean", "v")) {
        b[[col]] <- Reduce(`+`, lapply(seq_along(fits), function(k) share[k] * fits[[k]]$balance[[col]]))
      }
    }
    b
  } else {
    outcome_balance(panel, fits, setup$donors, share)
  }
  structure(list(
    method = method,
    estimate = estimate,
    std.error = NA_real_, conf.low = NA_real_, conf.high = NA_real_, p.value = NA_real_,
    att_fit = data.frame(fit = names(setup$groups), n_treated = n_tr, att = att_fit,
                         pre_rmspe = vapply(fits, `[[`, numeric(1), "pre_rmspe"),
                         post_rmspe = vapply(fits, `[[`, numeric(1), "post_rmspe"),
                         first_treated = times[vapply(fits, `[[`, numeric(1), "t0")],
                         stringsAsFactors = FALSE, row.names = NULL),
    att_event = by_event,
    weights = w_avg,
    weight_matrix = W,
    time_weights = lambda,
    v = if (length(fits) == 1L) fits[[1]]$v else NULL,
    ridge_lambda = if (!is.null(fits[[1]]$ridge)) unname(vapply(fits, `[[`, numeric(1), "ridge")),
    v_loss = if (!is.null(fits[[1]]$v_loss)) unname(vapply(fits, `[[`, numeric(1), "v_loss")),
    balance = balance,
    series = series,
    pre_rmspe = sqrt(sum(share * vapply(fits, `[[`, numeric(1), "pre_rmspe")^2)),
    post_rmspe = sqrt(sum(share * vapply(fits, `[[`, numeric(1), "post_rmspe")^2)),
    converged = all(conv),
    kkt = max(vapply(fits, function(f) f$convergence$kkt, numeric(1))),
    predictors = predictors,
    fits = fits,
    n_treated = sum(n_tr),
    n_donors = length(donors),
    vars = panel$vars,
    outcome_sd = stats::sd(as.vector(panel$Y[c(setup$treated, setup$donors),
                                             seq_len(min(setup$t0_index, na.rm = TRUE) - 1L)]),
                           na.rm = TRUE)
  ), class = c("mkt_synth", "mkt_fit"))
}

# ATT by event time: the share-weighted mean gap over the fits observed at
# that event time.
event_time_att <- function(series, fits, share) {
  series$share <- share[match(series$fit, unique(series$fit))]
  ok <- !is.na(series$gap)
  e <- sort(unique(series$event_time[ok]))
  att <- vapply(e, function(k) {
    s <- series[ok & series$event_time == k, ]
    sum(s$share * s$gap) / sum(s$share)
  }, numeric(1))
  data.frame(event_time = e, estimate = att, post = e >= 0)
}

# Balance without predictors: the outcome's pre-period mean and its value in
# the last pre-period, treated vs synthetic vs donor average.
outcome_balance <- function(panel, fits, donors, share) {
  rows <- lapply(fits, function(f) {
    pre <- seq_len(f$t0 - 1L)
    last <- f$t0 - 1L
    Y0 <- panel$Y[donors, , drop = FALSE]
    c(treated = c(mean(f$y1[pre], na.rm = TRUE), f$y1[last]),
      synthetic = c(mean(f$synthetic[pre]), f$synthetic[last]),
      donor_mean = c(mean(Y0[, pre]), mean(Y0[, last])))
  })
  m <- Reduce(`+`, Map(function(r, s) r * s, rows, share))
  data.frame(term = c(paste(panel$vars$outcome, "(pre-period mean)"),
                      paste(panel$vars$outcome, "(last pre-period)")),
             treated = m[1:2], synthetic = m[3:4], donor_mean = m[5:6],
             stringsAsFactors = FALSE, row.names = NULL)
}

warn_fit_quality <- function(fit, poor_fit) {
  if (!fit$converged) {
    warn_mkt("not_converged", c(
      "The weight optimiser did not reach its KKT tolerance (residual {signif(fit$kkt, 3)}).",
      i = "The weights may be inexact; check for duplicated or constant donors."
    ))
  }
  if (fit$method %in% c("sc", "asc", "sdid") && is.finite(fit$outcome_sd) && fit$outcome_sd > 0) {
    rel <- fit$att_fit$pre_rmspe / fit$outcome_sd
    bad <- rel > poor_fit
    if (any(bad)) {
      warn_mkt("poor_fit", c(
        "The pre-period fit is poor for {.val {fit$att_fit$fit[bad]}}: RMSPE is {signif(100 * max(rel[bad]), 3)}% of the outcome's standard deviation.",
        i = "The treated unit may lie outside the donors' range; the estimate then rests on extrapolation. Consider {.code method = \"sdid\"}."
      ))
    }
  }
}
