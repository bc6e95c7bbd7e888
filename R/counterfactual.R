#' Counterfactuals from a factor model: generalized synthetic control,
#' interactive fixed effects imputation and matrix completion
#'
#' `counterfactual()` imputes each treated cell's untreated outcome Y(0) from
#' the untreated cells and averages the gaps Y - Y(0) over treated cells (the
#' ATT), overall, by event time, by calendar period and by unit. The model
#' for the untreated outcome is
#' \deqn{Y_{it}(0) = \mu + \alpha_i + \xi_t + x_{it}'\beta + \lambda_i' f_t + \varepsilon_{it},}
#' so each unit may load differently on common shocks: parallel trends is the
#' special case without factors.
#'
#' @section Methods:
#' * `"ife"` with `em = FALSE` is Xu's (2017) generalized synthetic control:
#'   \eqn{\beta}, the time effects and the factors come from the never-treated
#'   units (by EM over their missing cells, if any), and each treated unit's
#'   loadings and unit effect from its own pre-treatment cells.
#' * `"ife"` with `em = TRUE` (Gobillon and Magnac 2016; Liu, Wang and Xu
#'   2024) fits the model by EM over every untreated cell, including treated
#'   units' pre-periods and not-yet-treated cells, so staggered adoption,
#'   treatment reversal and missing cells all use every untreated cell.
#' * `"mc"`: nuclear-norm matrix completion (Athey et al. 2021) by
#'   soft-impute over the untreated cells, with the additive effects and
#'   covariates unpenalised; `lambda` replaces r.
#' * `"fe"`: the two-way fixed effects imputation estimator (no factors), by
#'   EM over the untreated cells.
#'
#' @section Choosing r or lambda:
#' When r is `NULL` (or lambda is `NULL` for `"mc"`) the tuning parameter is
#' chosen by cross-validation on pre-treatment cells of the treated units:
#' fold k leaves out, for every treated unit, its pre-periods k of
#' `cv_block` consecutive periods counting back from adoption (the period
#' just before adoption is in fold 1), refits, and predicts them. The folds
#' are fixed by the data, so the choice involves no random numbers and is the
#' same under any seed (with EM, blocks are grouped into `n_folds` folds,
#' also without randomness). The value with the smallest mean squared prediction
#' error (MSPE) is chosen, the smaller r on ties; `tidy(fit, "cv")` gives the
#' table.
#'
#' @section Inference:
#' `inference = "bootstrap"` resamples units with replacement, separately among
#' ever-treated and never-treated units, and refits each replicate in C++
#' warm-started from the main fit's factors and \eqn{\beta}; intervals are
#' percentile intervals. `inference = "jackknife"` leaves out one unit at a
#' time. `inference = "parametric"` (for `"ife"` with `em = FALSE`) is Xu's (2017)
#' parametric bootstrap: prediction errors of never-treated units held out as
#' if treated (with each treated unit's timing in turn), then `n_draws`
#' panels of fitted untreated outcomes plus resampled errors, on which the
#' effect is zero; the interval is the estimate minus the quantiles of the
#' re-estimates.
#' They run through [resample_chunks()], and the replicates of a chunk on
#' [mkt_threads()] threads, each from its own random stream, so
#' [set.seed()] fixes the result under any [future::plan()], number of
#' threads and `chunk_size`. r (or lambda) is held at its chosen value in
#' the replicates, whose fits stop at a relative change of 1e-6 (or `tol`
#' if looser).
#'
#' @section Pre-trend diagnostics:
#' `placebo = k` holds the last k pre-treatment periods of every treated unit
#' out of the fit (a placebo-period test, Liu, Wang and Xu 2024): they are
#' predicted like treated cells, so their average gap (`tidy(fit,
#' "placebo")`) estimates zero when the model is right, and its p-value tests
#' that. With an `inference`, `tidy(fit, "equivalence")` adds an equivalence
#' test: two one-sided tests that each placebo period's gap lies within
#' `+/- equivalence_bound` (default 0.36 times the residual standard
#' deviation of the fit, as in Liu, Wang and Xu), with the largest p-value as
#' the joint p-value; a small p-value is evidence that any pre-trend is
#' smaller than the bound.
#'
#' @section Covariates:
#' Covariates constant within units are absorbed by the unit effects (and
#' ones constant within periods by the time effects): they are dropped with
#' a message, as in [ife()]. To let a time-invariant covariate matter
#' differently over time, interact it with period indicators in the data.
#'
#' @param formula `outcome ~ treatment + covariates | unit + time`, with a
#'   0/1 treatment (see [mkt_panel()]), or a [mkt_panel()].
#' @param data A long data frame, tibble or data.table (`NULL` when
#'   `formula` is a panel).
#' @param method `"ife"`, `"mc"` or `"fe"`; see Methods.
#' @param r Number of factors for `"ife"`, or `NULL` to choose it by
#'   cross-validation over `0:r_max`.
#' @param force Additive effects: `"two-way"`, `"unit"`, `"time"` or `"none"`.
#' @param em For `"ife"`: `FALSE` estimates the factors from never-treated
#'   units only (Xu 2017), `TRUE` from every untreated cell by EM.
#' @param r_max Largest r tried by cross-validation.
#' @param lambda Penalty for `"mc"`, or `NULL` to choose it by
#'   cross-validation over `n_lambda` values.
#' @param n_lambda Number of penalties tried for `"mc"`, log-spaced from the
#'   largest singular value of the untreated residuals down by 10^2.
#' @param criterion How r is chosen when it is `NULL`: `"cv"` (cross-validation,
#'   the default) or a Bai and Ng (2002) criterion, `"IC_p1"`, `"IC_p2"` or
#'   `"PC_p1"`, computed on the cells the factors are learned from (the
#'   never-treated units, or every untreated cell with EM); the table is in
#'   `tidy(fit, "ic")`.
#' @param cv_block Consecutive pre-periods left out together in
#'   cross-validation.
#' @param n_folds With EM (`em = TRUE`, `"mc"`), each fold of the
#'   cross-validation is a refit, so the blocks are dealt in turn into at
#'   most this many folds (block k goes to fold ((k - 1) mod n_folds) + 1);
#'   without EM every block is a fold.
#' @param placebo Number of pre-treatment periods held out as placebo
#'   periods; 0 for none. See Pre-trend diagnostics.
#' @param equivalence_bound Bound of the equivalence test, in outcome units,
#'   or `NULL` for 0.36 residual standard deviations.
#' @param tol,max_iter Convergence tolerance (relative change of the fitted
#'   matrix) and maximum iterations of each fit. `tol = NULL` means 1e-8, or
#'   1e-6 for `"mc"`, whose soft-impute iterations converge more slowly.
#' @param inference `"none"`, `"bootstrap"`, `"jackknife"` or
#'   `"parametric"`; see Inference.
#' @param n_draws Bootstrap draws (`"bootstrap"`, `"parametric"`).
#' @param chunk_size Replicates per chunk of [resample_chunks()]: the unit
#'   of work sent to a future worker and of progress. Each replicate draws
#'   from its own stream, so the answer does not depend on it (nor on the
#'   plan or [mkt_threads()]).
#' @param alpha Significance level of the intervals.
#' @param ... Must be empty.
#' @return An object of class `c("mkt_counterfactual", "mkt_fit")` (see
#'   [mkt_fit]): the ATT (with `n_cells`, the treated cells averaged) and the
#'   covariate coefficients of the untreated-outcome model. `tidy(fit, what)`
#'   gives the further tables: `"event"` (the average gap by event time, 0 =
#'   first treated period; negative event times are pre-treatment fit
#'   errors), `"period"` (the ATT by calendar period), `"unit"` (the ATT of
#'   each treated unit), `"counterfactual"` (mean observed outcome and mean
#'   imputed Y(0) of the treated units by event time), `"factors"`,
#'   `"loadings"`, `"cv"`, `"ic"`, `"placebo"` and `"equivalence"` (empty
#'   when not computed). `plot(fit, type)` draws `"gap"` (default),
#'   `"counterfactual"`, `"factors"`, `"loadings"`, `"cv"` or `"status"`.
#'   The fit also holds the imputed `y0` (N x T), `factors`, `loadings`,
#'   `unit_effects` and `time_effects` (of the model fitted, `NA` where the
#'   method has none), `r`, `lambda` and `pre_mspe`.
#' @references Xu, Y. (2017). Generalized synthetic control method: causal
#'   inference with interactive fixed effects models. *Political Analysis*
#'   25(1), 57-76. Athey, S., Bayati, M., Doudchenko, N., Imbens, G. and
#'   Khosravi, K. (2021). Matrix completion methods for causal panel data
#'   models. *JASA* 116(536), 1716-1730. Liu, L., Wang, Y. and Xu, Y. (2024).
#'   A practical guide to counterfactual estimators for causal inference with
#'   time-series cross-sectional data. *AJPS* 68(1), 160-176.
#' @examples
#' set.seed(2)
#' d <- expand.grid(store = 1:30, week = 1:20)
#' lambda <- rnorm(30)[d$store]
#' d$promo <- as.integer(d$store <= 5 & d$week > 14)
#' d$sales <- 10 + lambda * cos(d$week / 4) + 2 * d$promo + rnorm(nrow(d), sd = 0.2)
#' fit <- counterfactual(sales ~ promo | store + week, d, r = 1)
#' fit
#' tidy(fit, "event")
#' @export
counterfactual <- function(formula, data, method = c("ife", "mc", "fe"), r = NULL,
                           force = c("two-way", "unit", "time", "none"), em = FALSE,
                           r_max = 5, lambda = NULL, n_lambda = 10,
                           criterion = c("cv", "IC_p1", "IC_p2", "PC_p1"), cv_block = 1,
                           n_folds = 10, placebo = 0, equivalence_bound = NULL,
                           tol = NULL, max_iter = 1000,
                           inference = c("none", "bootstrap", "jackknife", "parametric"),
                           n_draws = 200, chunk_size = 50, alpha = 0.05, ...) {
  check_dots(...)
  chunk_size <- check_count(chunk_size, "chunk_size", min = 1)
  method <- check_choice(method)
  force <- check_choice(force)
  criterion <- check_choice(criterion)
  inference <- check_choice(inference)
  alpha <- check_alpha(alpha)
  if (is.null(tol)) tol <- if (method == "mc") 1e-6 else 1e-8
  check_tol(tol)
  r_max <- check_count(r_max, "r_max", min = 0)
  cv_block <- check_count(cv_block, "cv_block", min = 1)
  n_folds <- check_count(n_folds, "n_folds", min = 2)
  n_lambda <- check_count(n_lambda, "n_lambda", min = 2)
  max_iter <- check_count(max_iter, "max_iter", min = 1)
  placebo <- check_count(placebo, "placebo", min = 0)
  n_draws <- check_count(n_draws, "n_draws", min = 2)
  if (!is.null(lambda) && (!is.numeric(lambda) || !length(lambda) || anyNA(lambda) ||
                           any(!is.finite(lambda)) || any(lambda < 0))) {
    abort_mkt("bad_argument", c(
      "{.arg lambda} must be {.code NULL} or non-negative numbers (penalties of the nuclear norm).",
      i = "Leave it {.code NULL} to choose the penalty by cross-validation."
    ))
  }
  if (!is.null(r)) r <- check_count(r, "r", min = 0)
  if (!is.null(equivalence_bound) && (!is.numeric(equivalence_bound) ||
      length(equivalence_bound) != 1L || is.na(equivalence_bound) || equivalence_bound <= 0)) {
    abort_mkt("bad_argument", "{.arg equivalence_bound} must be one positive number (outcome units).")
  }
  if (!is.logical(em) || length(em) != 1L || is.na(em)) {
    abort_mkt("bad_argument", "{.arg em} must be {.code TRUE} or {.code FALSE}.")
  }
  if (method != "ife") em <- TRUE
  if (inference == "parametric" && (method != "ife" || em)) {
    abort_mkt("bad_argument", c(
      "The parametric bootstrap is Xu's (2017) algorithm for {.code method = \"ife\"} with {.code em = FALSE}.",
      i = "Use {.code inference = \"bootstrap\"} or {.code inference = \"jackknife\"} with EM, matrix completion or fixed effects."
    ))
  }
  panel <- as_panel(formula, data)
  counterfactual_fit(panel, method = method, r = r, force = force, em = em, r_max = r_max,
                     lambda = lambda, n_lambda = n_lambda, criterion = criterion,
                     cv_block = cv_block, n_folds = n_folds, placebo = placebo,
                     equivalence_bound = equivalence_bound, tol = tol, max_iter = max_iter,
                     inference = inference, n_draws = n_draws, chunk_size = chunk_size,
                     alpha = alpha, call = match.call())
}

# The core: a panel in, a fit out.
counterfactual_fit <- function(panel, method = "ife", r = NULL, force = "two-way", em = FALSE,
                               r_max = 5L, lambda = NULL, n_lambda = 10L, criterion = "cv",
                               cv_block = 1L, n_folds = 10L, placebo = 0L,
                               equivalence_bound = NULL, tol = 1e-8, max_iter = 1000L,
                               inference = "none", n_draws = 200L, chunk_size = 50L,
                               alpha = 0.05, call = NULL) {
  if (method == "fe") r <- 0L
  if (panel$treatment_type != "binary") {
    abort_mkt("non_binary_treatment", c(
      "{.fn counterfactual} needs a 0/1 treatment; the panel's treatment is {panel$treatment_type}.",
      i = "Write the treatment first after {.code ~}, coded 0/1. For a continuous exposure use {.fn ife}."
    ))
  }
  des <- ife_design(panel, force, regressors = panel$X)
  # Every step is equivariant in the outcome: the fits run on the outcome
  # divided by a power of two near its largest value (see outcome_scale()),
  # so that outcomes near 1e300 or 1e-300 neither overflow nor underflow, and
  # the answers are scaled back below. A given lambda is in outcome units.
  s <- outcome_scale(des$Y[des$mask > 0])
  des$Y <- des$Y / s
  if (method == "mc" && is.numeric(lambda)) lambda <- lambda / s
  st <- cf_structure(panel, des, em, force, placebo)
  ctl <- list(force = force, tol = tol, max_iter = max_iter)
  unit_fe <- as.integer(force %in% c("unit", "two-way"))
  # A treated unit's loadings (and unit effect) need more pre-periods than
  # parameters, and the factors need enough control units.
  r_limit <- min(st$n_pre[st$ever] - unit_fe,
                 if (em) min(st$untreated_per_period) - 1L else st$n_controls - 2L,
                 min(dim(des$Y)) - 2L)
  if (!is.null(r) && r > r_limit) {
    abort_mkt("r_too_large", c(
      "{.arg r} = {r} factors is more than the data allow.",
      x = "The shortest pre-period has {min(st$n_pre[st$ever])} cell{?s}; never-treated units: {st$n_controls}.",
      i = "Use {.code r <= {max(r_limit, 0)}}, or drop treated units with few pre-periods."
    ))
  }

  cv <- NULL
  ic <- NULL
  if (method == "ife" && is.null(r) && criterion != "cv") {
    # Bai and Ng criteria on the cells the factors are learned from.
    r_top <- min(r_max, r_limit)
    fits <- lapply(0:r_top, function(k) cf_fit_once(des, st, em, ctl, k, 0, "ife")$fit)
    n_units <- if (em) nrow(des$Y) else st$n_controls
    ic <- bai_ng_table(fits, 0:r_top, n_units, ncol(des$Y))
    r <- ic$r[which.min(ic[[criterion]])]
    ic$selected <- ic$r == r
  }
  if (method == "ife" && is.null(r)) {
    # Cross-validation leaves a block out, so it needs one more pre-period.
    r_top <- min(r_max, r_limit - cv_block)
    if (r_top < 0) {
      abort_mkt("r_too_large", c(
        "The pre-periods are too short to cross-validate the number of factors.",
        i = "Give {.arg r} directly, or lower {.arg cv_block}."
      ))
    }
    if (r_top < r_max) {
      cli::cli_inform(c(i = "Cross-validating r over 0 to {r_top}: the shortest pre-period allows no more."))
    }
    cv <- cf_cv(des, st, em, ctl, cv_block, n_folds, r_values = 0:r_top)
    r <- cv$r[which.min(cv$mspe)]
    cv$selected <- cv$r == r
  }
  if (method == "mc" && is.null(lambda)) {
    base <- ife_engine(des$Y, st$fit_mask, des$X, 0L, ctl)
    resid <- (des$Y - base$fit) * st$fit_mask
    top <- svd(resid, nu = 0, nv = 0)$d[1]
    grid <- top * 10^seq(0, -2, length.out = n_lambda)
    cv <- cf_cv(des, st, em, ctl, cv_block, n_folds, lambda_values = grid)
    lambda <- cv$lambda[which.min(cv$mspe)]
    cv$selected <- cv$lambda == lambda
  }
  if (method == "mc") {
    if (!is.numeric(lambda) || length(lambda) != 1L || is.na(lambda) || lambda < 0) {
      abort_mkt("bad_argument", "{.arg lambda} must be a single non-negative number.")
    }
    r <- NA_integer_
  }

  main <- cf_fit_once(des, st, em, ctl, r, lambda, method)
  if (method == "ife") {
    rows <- if (em) rep(TRUE, nrow(des$Y)) else st$controls
    ife_check_attained(des$Y[rows, , drop = FALSE], st$fit_mask[rows, , drop = FALSE],
                       lapply(des$X, function(x) x[rows, , drop = FALSE]), main$fit, r, ctl)
  }
  warn_not_converged(main$fit)
  est <- cf_stats(des$Y, main$y0, st)
  if (any(!is.finite(main$y0[st$treated_cells]))) {
    abort_mkt("too_few_pre_periods", c(
      "Some treated units have too few pre-treatment cells to estimate their loadings.",
      i = "Drop them, or use fewer factors."
    ))
  }

  reps <- NULL
  if (inference != "none") {
    reps <- if (inference == "parametric") {
      cf_parametric(des, st, ctl, r, main, est, n_draws, chunk_size)
    } else {
      cf_resample(des, st, em, ctl, r, lambda, method, main, est, inference, n_draws,
                  chunk_size)
    }
    n_rep <- nrow(reps$att)
    check_replicates_left(n_rep, reps$failed, inference)
    if (reps$failed > 0) {
      warn_mkt("bootstrap_failed", c(
        "Dropped {reps$failed} of {n_rep} {inference} replicates: their fits failed (collinear resampled covariates).",
        i = "The intervals use the other {n_rep - reps$failed}."
      ))
    }
  }
  # Mean squares and the default equivalence bound from the scaled fit.
  pre_mspe <- mean((des$Y - main$y0)[st$pre_cells]^2) * s^2
  if (placebo > 0 && inference != "none" && is.null(equivalence_bound)) {
    equivalence_bound <- 0.36 * stats::sd((des$Y - main$y0)[st$fit_mask > 0]) * s
  }
  # Back on the outcome's scale.
  tabs <- lapply(cf_tables(est, reps, inference, alpha), unscale_table, s = s)
  if (!is.null(reps)) {
    for (nm in c("att", "placebo", "event", "period", "unit")) reps[[nm]] <- reps[[nm]] * s
  }
  main$y0 <- main$y0 * s
  main$loadings <- main$loadings * s
  main$fit$alpha <- main$fit$alpha * s
  main$fit$xi <- main$fit$xi * s
  main$fit$beta <- main$fit$beta * s
  if (!is.null(cv)) {
    cv$mspe <- cv$mspe * s^2
    if (method == "mc") cv$lambda <- cv$lambda * s
  }
  if (!is.null(ic)) ic <- ife_unscale_ic(ic, s)
  if (method == "mc") lambda <- lambda * s
  equivalence <- NULL
  if (placebo > 0 && inference != "none") {
    equivalence <- cf_equivalence(tabs$event, placebo, equivalence_bound)
  }
  beta <- ife_beta_table(main$fit$beta, NULL, names(des$X), alpha)
  estimates <- rbind(tabs$att[c("term", "estimate", "std.error", "p.value", "conf.low",
                                "conf.high", "n_cells")],
                     if (nrow(beta)) cbind(beta[c("term", "estimate", "std.error", "p.value",
                                                  "conf.low", "conf.high")],
                                           n_cells = NA_integer_))
  n_draws_used <- switch(inference, bootstrap = , parametric = n_draws,
                         jackknife = nrow(des$Y), none = 0L)
  criterion_used <- if (!is.null(cv)) "cv" else if (!is.null(ic)) criterion else "user"
  units <- panel$units
  effects <- cf_effects(main, st, panel)
  new_fit(
    "counterfactual", estimates = estimates,
    method = cf_method_label(method, em, r, lambda),
    estimand = sprintf("ATT: mean of %s - Y(0) over the %d treated cells, Y(0) imputed from the untreated cells",
                       panel$vars$outcome, est$n_att),
    inference = cf_inference_label(inference, n_draws_used),
    alpha = alpha, call = call,
    n = list(obs = as.integer(sum(des$mask)), units = nrow(des$Y), periods = ncol(des$Y),
             treated = sum(st$ever), clusters = NA_integer_,
             never_treated = st$n_controls, treated_cells = as.integer(est$n_att)),
    no_vcov = if (inference == "none") "it was fitted with inference = \"none\"" else
      "the resampling gives intervals for the ATT, not a covariance of the ATT and the covariate coefficients",
    vars = list(outcome = panel$vars$outcome, treatment = panel$vars$treatment,
                covariates = names(des$X), unit = panel$vars$unit, time = panel$vars$time),
    glance = list(
      r = r, r_rule = switch(criterion_used, cv = "cross-validation (smallest MSPE)",
                             user = "given", criterion_used),
      lambda = if (method == "mc") lambda else NA_real_,
      pre_mspe = pre_mspe,
      placebo_estimate = if (placebo > 0) tabs$placebo$estimate else NA_real_,
      placebo_p.value = if (placebo > 0) tabs$placebo$p.value else NA_real_,
      equivalence_p.value = if (is.null(equivalence)) NA_real_ else max(equivalence$p.value),
      iterations = as.integer(main$fit$iter), converged = isTRUE(main$fit$converged)),
    tables = list(
      event = tabs$event,
      period = cbind(period = panel$times[tabs$period$period_index], tabs$period[, -1]),
      unit = cbind(unit = units[tabs$unit$unit_index], tabs$unit[, -1]),
      counterfactual = cf_paths(panel, st, main$y0),
      effect_over_time = cf_effect_over_time(cf_paths(panel, st, main$y0), reps, inference,
                                             alpha),
      factors = factors_long(main$factors, panel$times),
      loadings = loadings_long(main$loadings, units, st$ever),
      cv = if (is.null(cv)) data.frame() else cv,
      ic = if (is.null(ic)) data.frame() else ic,
      placebo = if (placebo > 0) tabs$placebo else data.frame(),
      equivalence = if (is.null(equivalence)) data.frame() else equivalence
    ),
    print_columns = c(n_cells = "cells"),
    y0 = main$y0, factors = main$factors, loadings = main$loadings,
    unit_effects = effects$unit, time_effects = effects$time,
    r = r, lambda = if (method == "mc") lambda else NULL, em = em, force = force,
    pre_mspe = pre_mspe, replicates = reps, iterations = as.integer(main$fit$iter),
    converged = isTRUE(main$fit$converged), absorbed = des$absorbed, structure = st,
    panel = panel,
    options = list(method = method, inference = inference, n_draws = n_draws_used,
                   criterion = criterion_used, em = em, force = force, placebo = placebo)
  )
}

cf_method_label <- function(method, em, r, lambda) {
  switch(method,
    ife = sprintf("%s, r = %d", if (em) "Interactive fixed effects counterfactual (EM)" else
      "Generalized synthetic control (Xu 2017)", r),
    mc = sprintf("Matrix completion counterfactual, lambda = %s", format(signif(lambda, 4))),
    fe = "Two-way fixed effects imputation")
}

cf_inference_label <- function(inference, n_draws) {
  switch(inference,
    none = "none",
    bootstrap = sprintf("unit bootstrap within treated and never-treated units, %d draws (percentile intervals)", n_draws),
    jackknife = sprintf("jackknife over %d units", n_draws),
    parametric = sprintf("parametric bootstrap of Xu (2017), %d draws", n_draws))
}

# The additive effects of the fitted untreated-outcome model, one per unit
# and period: from the fit over every untreated cell (EM, matrix
# completion), or from the never-treated units' fit (the treated units'
# effects come with their loadings, so they are NA here).
cf_effects <- function(main, st, panel) {
  unit <- rep(NA_real_, length(panel$units))
  fa <- main$fit$alpha
  if (length(fa) == length(unit)) unit <- fa else if (length(fa) == sum(st$controls)) {
    unit[st$controls] <- fa
  }
  time <- if (length(main$fit$xi) == length(panel$times)) main$fit$xi else
    rep(NA_real_, length(panel$times))
  list(unit = stats::setNames(as.numeric(unit), as.character(panel$units)),
       time = stats::setNames(as.numeric(time), as.character(panel$times)))
}

# Observed and imputed means of the treated units by event time.
cf_paths <- function(panel, st, y0) {
  cells <- st$mask & st$ever & (st$treated_cells | st$event < 0)
  ev <- st$event[cells]
  data.frame(event_time = sort(unique(ev)),
             observed = as.numeric(tapply(panel$Y[cells], ev, mean)),
             counterfactual = as.numeric(tapply(y0[cells], ev, mean)))
}

# --- structure of the treatment ---------------------------------------------

# Who is treated when, which cells each fit may use, and the checks that
# depend on the treatment pattern.
cf_structure <- function(panel, des, em, force, placebo = 0L, call = rlang::caller_env()) {
  D <- panel$D
  D[is.na(D)] <- 0
  mask <- des$mask > 0
  N <- nrow(D)
  Tn <- ncol(D)
  treated_cells <- mask & D == 1
  ever <- rowSums(D == 1) > 0
  if (!any(treated_cells)) {
    abort_mkt("no_treated", c(
      "No observed cell is treated.",
      i = "Check that the treatment column is coded 1 for treated cells."
    ), call = call)
  }
  first <- rep(NA_integer_, N)
  first[ever] <- apply(D[ever, , drop = FALSE] == 1, 1, function(z) which(z)[1])
  event <- col(D) - first
  # Placebo cells: the last `placebo` pre-periods, held out of every fit and
  # predicted like treated cells.
  placebo_cells <- mask & ever & event < 0 & event >= -placebo
  pre_cells <- mask & ever & event < -placebo
  n_pre <- rowSums(pre_cells)
  if (any(ever & n_pre == 0)) {
    bad <- as.character(panel$units)[ever & n_pre == 0]
    abort_mkt("too_few_pre_periods", c(
      "{length(bad)} treated unit{?s} {?has/have} no observed pre-treatment period{if (placebo > 0) ' before the placebo periods' else ''}: {.val {utils::head(bad, 5)}}.",
      i = "Their loadings cannot be estimated: drop {cli::qty(length(bad))}{?it/them} from {.arg data}, or start the panel earlier."
    ), call = call)
  }
  controls <- !ever
  fit_mask <- if (em) mask & D == 0 & !placebo_cells else mask & controls
  untreated_per_period <- colSums(mask & D == 0)
  n_controls <- sum(controls)
  if (!em && n_controls < 2L) {
    abort_mkt("too_few_controls", c(
      "Only {n_controls} never-treated unit{?s}; the factors need at least 2 (and more than r + 1).",
      i = "Use {.code em = TRUE} to learn the factors from not-yet-treated cells too, or {.code method = \"fe\"}."
    ), call = call)
  }
  if (em && min(untreated_per_period) < 1L) {
    bad <- as.character(panel$times)[untreated_per_period < 1L]
    abort_mkt("too_few_controls", c(
      "No untreated unit is observed in period{?s} {.val {utils::head(bad, 5)}}.",
      i = "Counterfactuals there cannot be learned: drop those periods."
    ), call = call)
  }
  list(treated_cells = treated_cells, placebo_cells = placebo_cells, placebo = placebo,
       ever = ever, first = first, event = event,
       pre_cells = pre_cells, n_pre = n_pre, controls = controls, fit_mask = fit_mask * 1,
       untreated_per_period = untreated_per_period, n_controls = n_controls, mask = mask)
}

# --- one fit -----------------------------------------------------------------

# Imputed Y(0) on every cell. `warm` (a previous fit) starts the iterations.
cf_fit_once <- function(des, st, em, ctl, r, lambda, method, warm = NULL,
                        fit_mask = st$fit_mask) {
  F0 <- if (!is.null(warm) && isTRUE(r > 0)) warm$F else NULL
  beta0 <- if (!is.null(warm)) warm$beta else NULL
  fill0 <- if (!is.null(warm) && identical(dim(warm$fit), dim(des$Y))) warm$fit
  if (method == "mc") {
    fit <- ife_engine(des$Y, fit_mask, des$X, 0L, ctl, soft = TRUE, lambda = lambda,
                      fill0 = fill0)
    return(list(fit = fit, y0 = fit$fit, factors = fit$F, loadings = fit$L))
  }
  if (em) {
    # EM from a crude fill can crawl for thousands of iterations when the
    # covariates load on the factors; the never-treated units, fully fitted
    # without EM, give a start close to the answer.
    co <- st$controls & rowSums(fit_mask) == ncol(fit_mask)
    if (is.null(warm) && r > 0 && sum(co) >= r + 2L) {
      start <- ife_engine(des$Y[co, , drop = FALSE], fit_mask[co, , drop = FALSE],
                          lapply(des$X, function(x) x[co, , drop = FALSE]), r, ctl)
      F0 <- start$F
      beta0 <- start$beta
    }
    fit <- ife_engine(des$Y, fit_mask, des$X, r, ctl, F0 = F0, beta0 = beta0, fill0 = fill0)
    return(list(fit = fit, y0 = fit$fit, factors = fit$F, loadings = fit$L))
  }
  co <- st$controls
  tr <- st$ever
  Xc <- lapply(des$X, function(x) x[co, , drop = FALSE])
  fit <- if (is.null(warm)) {
    ife_fit_started(list(Y = des$Y[co, , drop = FALSE], mask = fit_mask[co, , drop = FALSE],
                         X = Xc), r, ctl)
  } else {
    ife_engine(des$Y[co, , drop = FALSE], fit_mask[co, , drop = FALSE], Xc, r, ctl,
               F0 = F0, beta0 = beta0)
  }
  Xt <- lapply(des$X, function(x) x[tr, , drop = FALSE])
  pr <- ife_project(des$Y[tr, , drop = FALSE], fit_mask_pre(st, fit_mask)[tr, , drop = FALSE],
                    Xt, fit, ctl$force)
  y0 <- matrix(NA_real_, nrow(des$Y), ncol(des$Y))
  y0[co, ] <- fit$fit
  yt <- pr$y0
  yt[pr$status == 1L, ] <- NA_real_
  y0[tr, ] <- yt
  loadings <- matrix(NA_real_, nrow(des$Y), ncol(fit$F))
  loadings[co, ] <- fit$L
  if (ncol(fit$F)) {
    loadings[tr, ] <- pr$coef[, ncol(pr$coef) - rev(seq_len(ncol(fit$F))) + 1L, drop = FALSE]
  }
  list(fit = fit, y0 = y0, factors = fit$F, loadings = loadings)
}

# Pre-treatment cells of treated units that the projection may use: in
# cross-validation the fold's cells are removed from the fit mask.
fit_mask_pre <- function(st, fit_mask) {
  if (identical(fit_mask, st$fit_mask)) return(st$pre_cells)
  st$pre_cells & attr(fit_mask, "pre_keep")
}

# --- estimands ---------------------------------------------------------------

cf_stats <- function(Y, y0, st) {
  gap <- Y - y0
  tc <- st$treated_cells
  ev_cells <- st$mask & st$ever & (tc | st$event < 0)
  # Group means by rowsum(), which is much faster than tapply() inside the
  # resampling loops; names are the sorted group keys.
  group_mean <- function(v, g) {
    s <- rowsum(cbind(v, 1), g, reorder = TRUE)
    list(mean = stats::setNames(s[, 1] / s[, 2], rownames(s)),
         n = stats::setNames(s[, 2], rownames(s)))
  }
  ev <- group_mean(gap[ev_cells], st$event[ev_cells])
  per <- group_mean(gap[tc], col(gap)[tc])
  un <- group_mean(gap[tc], row(gap)[tc])
  pc <- st$placebo_cells
  list(att = mean(gap[tc]), n_att = sum(tc),
       placebo = if (any(pc)) mean(gap[pc]) else NA_real_, n_placebo = sum(pc),
       event = ev$mean, n_event = ev$n, per = per$mean, n_per = per$n,
       unit = un$mean, n_unit = un$n)
}

cf_tables <- function(est, reps, inference, alpha) {
  z <- stats::qnorm(alpha / 2, lower.tail = FALSE)
  mk <- function(estimate, key, name) {
    sd <- rep(NA_real_, length(estimate))
    lo <- hi <- rep(NA_real_, length(estimate))
    if (!is.null(reps)) {
      R <- reps[[name]][, key, drop = FALSE]
      if (inference == "jackknife") {
        n <- colSums(!is.na(R))
        m <- colMeans(R, na.rm = TRUE)
        sd <- sqrt((n - 1) / n * colSums(sweep(R, 2, m)^2, na.rm = TRUE))
        lo <- estimate - z * sd
        hi <- estimate + z * sd
      } else if (inference == "parametric") {
        # Replicates are estimates on data with no effect: their spread is
        # the estimator's error, so the interval subtracts its quantiles.
        sd <- apply(R, 2, stats::sd, na.rm = TRUE)
        q <- apply(R, 2, stats::quantile, probs = c(alpha / 2, 1 - alpha / 2),
                   na.rm = TRUE, names = FALSE)
        lo <- estimate - q[2, ]
        hi <- estimate - q[1, ]
      } else {
        sd <- apply(R, 2, stats::sd, na.rm = TRUE)
        q <- apply(R, 2, stats::quantile, probs = c(alpha / 2, 1 - alpha / 2),
                   na.rm = TRUE, names = FALSE)
        lo <- q[1, ]
        hi <- q[2, ]
      }
    }
    data.frame(estimate = as.numeric(estimate), std.error = as.numeric(sd),
               p.value = 2 * stats::pnorm(-abs(as.numeric(estimate) / as.numeric(sd))),
               conf.low = as.numeric(lo), conf.high = as.numeric(hi))
  }
  att <- cbind(term = "ATT", mk(est$att, "ATT", "att"), n_cells = est$n_att)
  placebo <- cbind(term = "placebo", mk(est$placebo, "placebo", "placebo"),
                   n_cells = est$n_placebo)
  event <- cbind(event_time = as.integer(names(est$event)),
                 mk(est$event, names(est$event), "event"), n_cells = as.integer(est$n_event))
  period <- cbind(period_index = as.integer(names(est$per)),
                  mk(est$per, names(est$per), "period"), n_cells = as.integer(est$n_per))
  unit <- cbind(unit_index = as.integer(names(est$unit)),
                mk(est$unit, names(est$unit), "unit"), n_cells = as.integer(est$n_unit))
  list(att = att, placebo = placebo, event = event, period = period, unit = unit)
}

# Two one-sided tests (TOST) that every placebo-period gap lies within
# +/- bound; the joint p-value is the largest, since all must pass.
cf_equivalence <- function(event, placebo, bound) {
  ev <- event[event$event_time < 0 & event$event_time >= -placebo, ]
  p_lo <- stats::pnorm((ev$estimate + bound) / ev$std.error, lower.tail = FALSE)
  p_hi <- stats::pnorm((ev$estimate - bound) / ev$std.error)
  data.frame(event_time = ev$event_time, estimate = ev$estimate, std.error = ev$std.error,
             bound = bound, p.value = pmax(p_lo, p_hi))
}

# --- cross-validation ----------------------------------------------------------

# Folds: blocks of cv_block consecutive pre-periods counting back from each
# treated unit's adoption. No randomness, so no seed dependence.
cf_cv <- function(des, st, em, ctl, cv_block, n_folds, r_values = NULL,
                  lambda_values = NULL) {
  fold <- ceiling((-st$event - st$placebo) / cv_block)
  fold[!st$pre_cells] <- NA
  # A refit per block is cheap without EM (only the projection changes);
  # with EM, blocks are dealt round-robin into at most n_folds folds.
  if (em) fold <- (fold - 1L) %% n_folds + 1L
  folds <- sort(unique(fold[!is.na(fold)]))
  method <- if (is.null(lambda_values)) "ife" else "mc"
  values <- if (method == "ife") r_values else lambda_values
  # Without EM the factors do not use treated units, so a fold changes only
  # the projection: the control fit is reused and the folds of one r run in
  # a single C++ call on the treated rows.
  tr <- st$ever
  if (!em) {
    fold_tr <- fold[tr, , drop = FALSE]
    fold_tr[is.na(fold_tr)] <- 0L
    storage.mode(fold_tr) <- "integer"
    Y_tr <- des$Y[tr, , drop = FALSE]
    pre_tr <- st$pre_cells[tr, , drop = FALSE] * 1
    X_tr <- unname(lapply(des$X, function(x) x[tr, , drop = FALSE]))
  }
  previous <- NULL
  mspe <- numeric(length(values))
  n_cells <- integer(length(values))
  converged <- logical(length(values))
  for (j in seq_along(values)) {
    v <- values[j]
    r <- if (method == "ife") v else 0L
    lam <- if (method == "mc") v else 0
    # Penalties run from large to small: each full fit starts from the last.
    full <- cf_fit_once(des, st, em, ctl, r, lam, method,
                        warm = if (method == "mc") previous)
    previous <- full$fit
    if (em) {
      sse <- 0
      n <- 0
      for (k in folds) {
        out <- !is.na(fold) & fold == k
        fm <- st$fit_mask
        fm[out] <- 0
        attr(fm, "pre_keep") <- !out
        pred <- cf_fit_once(des, st, em, ctl, r, lam, method, warm = full$fit, fit_mask = fm)$y0
        e <- (des$Y - pred)[out]
        ok <- is.finite(e)
        sse <- sse + sum(e[ok]^2)
        n <- n + sum(ok)
      }
    } else {
      f <- full$fit
      sn <- cpp_cf_cv_project(Y_tr, pre_tr, fold_tr, X_tr, f$beta, f$mu, f$xi, f$F,
                              force_code(ctl$force), as.integer(folds))
      sse <- sn[1]
      n <- sn[2]
    }
    mspe[j] <- sse / n
    n_cells[j] <- as.integer(n)
    converged[j] <- full$fit$converged
  }
  out <- data.frame(value = values, mspe = mspe, n_cells = n_cells, converged = converged)
  names(out)[1] <- if (method == "ife") "r" else "lambda"
  out
}

# --- resampling --------------------------------------------------------------

cf_resample <- function(des, st, em, ctl, r, lambda, method, main, est, inference, n_draws,
                        chunk_size = 50L) {
  N <- nrow(des$Y)
  keys <- list(att = "ATT", placebo = "placebo", event = names(est$event),
               period = names(est$per), unit = names(est$unit))
  n_rep <- if (inference == "jackknife") N else n_draws
  # Replicate b draws its units in C++ from stream b of one seed taken from
  # R's RNG here, so set.seed() fixes the draws and neither the chunking nor
  # the plan changes them. Replicates reuse the main fit's factors and beta
  # (not its fitted cells, which belong to other rows) and stop at a
  # relative change of 1e-6 (or tol if looser): ample for standard errors,
  # and about half the iterations.
  seed <- draw_cpp_seed()
  soft <- method == "mc"
  r_fit <- if (soft) 0L else as.integer(r)
  F0 <- if (!soft && r_fit > 0) main$fit$F else matrix(0, 0, 0)
  beta0 <- if (soft) numeric(0) else main$fit$beta
  args <- c(cf_layout_args(des, st), list(r_fit, force_code(ctl$force), max(ctl$tol, 1e-6),
            as.integer(ctl$max_iter), em, soft, if (soft) lambda else 0, F0, beta0,
            as.integer(keys$event)))
  jackknife <- inference == "jackknife"
  ife_check_replicate_memory(dim(des$Y), length(des$X), paste("The", inference))
  # The chunk function's closure holds everything it uses, so future's scan
  # for globals (about 20 ms a call) is skipped. A chunk's replicates run on
  # mkt_threads() threads, read where the chunk runs.
  res <- resample_chunks(n_rep, function(idx) {
    do.call(cpp_cf_resample_chunk, c(args, list(as.integer(idx), jackknife, seed,
                                                threads_for())))
  }, chunk_size = chunk_size, label = inference, each = "chunk",
    globals = list())
  cf_collect_chunks(res, keys)
}

# The panel and its treatment structure as the C++ replicate chunks take
# them (0/1 matrices, integer event times with 0 where undefined).
cf_layout_args <- function(des, st) {
  event <- st$event
  event[is.na(event)] <- 0L
  storage.mode(event) <- "integer"
  list(des$Y, st$mask * 1, st$fit_mask * 1, st$pre_cells * 1, st$treated_cells * 1,
       st$placebo_cells * 1, event, as.integer(st$ever), unname(des$X))
}

# Stacks the chunks' matrices and keeps the columns named by the main fit's
# keys (period and unit results come for every column and unit).
cf_collect_chunks <- function(res, keys) {
  stack <- function(name) do.call(rbind, lapply(res, function(x) as.matrix(x[[name]])))
  att <- stack("att")
  colnames(att) <- "ATT"
  placebo <- stack("placebo")
  colnames(placebo) <- "placebo"
  event <- stack("event")
  colnames(event) <- keys$event
  period <- stack("period")[, as.integer(keys$period), drop = FALSE]
  colnames(period) <- keys$period
  unit <- stack("unit")[, as.integer(keys$unit), drop = FALSE]
  colnames(unit) <- keys$unit
  list(att = att, placebo = placebo, event = event, period = period, unit = unit,
       failed = sum(unlist(lapply(res, `[[`, "failed"))))
}

# Xu's (2017) parametric bootstrap. Step 1: each round holds out a random
# never-treated unit as if treated with the pattern of one treated unit
# (cycling through them), refits on a resample of the other controls, and
# keeps the held-out unit's prediction errors. Step 2: each round rebuilds
# the panel as the fitted untreated outcomes plus errors (resampled control
# residual vectors for controls, step-1 prediction errors of the matching
# pattern for treated units), so the effect is zero, and re-estimates.
cf_parametric <- function(des, st, ctl, r, main, est, n_draws, chunk_size = 50L) {
  keys <- list(att = "ATT", placebo = "placebo", event = names(est$event),
               period = names(est$per), unit = names(est$unit))
  tr <- which(st$ever)
  co <- which(st$controls)
  if (length(co) < r + 3L) {
    abort_mkt("too_few_controls", c(
      "The parametric bootstrap holds out one never-treated unit, which leaves too few for r = {r}.",
      i = "Use {.code inference = \"bootstrap\"} or fewer factors."
    ))
  }
  # Both steps run in C++, one call per chunk, warm-started from the main
  # fit; replicate m draws from stream m of a seed taken from R's RNG here.
  seed <- draw_cpp_seed()
  F0 <- if (r > 0) main$fit$F else matrix(0, 0, 0)
  lay <- cf_layout_args(des, st)
  fit_args <- list(as.integer(r), force_code(ctl$force), max(ctl$tol, 1e-6),
                   as.integer(ctl$max_iter), F0, main$fit$beta)
  # Replicate m of step 1 borrows the pre-periods of treated unit
  # (m - 1) mod n_treated + 1.
  pattern_of <- function(m) tr[(m - 1L) %% length(tr) + 1L]
  ife_check_replicate_memory(dim(des$Y), length(des$X), "The parametric bootstrap")
  errors <- resample_chunks(n_draws, function(idx) {
    do.call(cpp_cf_param_errors_chunk,
            c(lay, fit_args, list(as.integer(idx), as.integer(pattern_of(idx) - 1L), seed,
                                  threads_for())))
  }, chunk_size = chunk_size, label = "prediction errors", each = "chunk",
    globals = list())
  E <- do.call(rbind, errors)
  pattern <- pattern_of(seq_len(n_draws))
  ok <- stats::complete.cases(E)
  resid <- (des$Y - main$y0) * des$mask
  seed2 <- draw_cpp_seed()
  res <- resample_chunks(n_draws, function(idx) {
    do.call(cpp_cf_param_boot_chunk,
            c(lay, fit_args, list(as.integer(keys$event), main$y0, resid,
                                  E[ok, , drop = FALSE], as.integer(pattern[ok] - 1L),
                                  as.integer(idx), seed2, threads_for())))
  }, chunk_size = chunk_size, label = "parametric bootstrap", each = "chunk",
    globals = list())
  cf_collect_chunks(res, keys)
}
