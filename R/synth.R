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
#'   reached is reported (`fit$v_loss`). Each Nelder-Mead run stops when its
#'   values agree to a relative 1e-8 or after `max_iter` evaluations; a run
#'   stopped by the cap is flagged (`glance(fit)$v_converged` is `FALSE`, and
#'   a warning of class `mktcausal_warning_not_converged` says to raise
#'   `max_iter`).
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
#' Outcome-only `"sc"` and `"asc"` need at least two pre-treatment periods
#' (with one, any mix of donors that matches the treated value fits exactly,
#' so the weights are not identified), `"sdid"` two and `"did"` one; with
#' `predictors` one pre-period is allowed, with a warning of class
#' `mktcausal_warning_too_few_pre_periods`. `"asc"` needs two donors.
#'
#' Every method is equivariant in the outcome (multiplying it by c multiplies
#' the effect, gaps and standard errors by c and leaves the weights
#' unchanged): the fit runs on the outcome divided by a power of two near its
#' largest absolute value, so outcomes near 1e300 or 1e-300 give the scaled
#' answer. (Squared quantities, the V search's MSPE, ridge penalties and
#' variances, can then exceed the range of a double and show as `Inf` or 0.)
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
#' The placebos in space of the outcome-only synthetic control are solved in
#' one compiled call on [mkt_threads()] threads (the answer does not depend
#' on their number); every other loop runs through [resample_chunks()]: the
#' user's future plan, progress reporting and `set.seed()` reproducibility.
#'
#' @param formula `outcome ~ treatment | unit + time`, with a 0/1 absorbing
#'   treatment column (see [mkt_panel()]), or a panel from [mkt_panel()]
#'   (built with `extra =` the predictor columns, if any), in which case
#'   `data` is left out.
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
#' @param n_draws Replications for the sdid/did placebo and bootstrap (an
#'   error with any other inference, which does not draw).
#' @param fit_periods Pre-treatment periods whose outcome MSPE is minimised
#'   over V (default: all periods before treatment). Used with `predictors`
#'   only.
#' @param max_iter Cap on the evaluations of each Nelder-Mead run of the
#'   nested V search (with `predictors` only); `NULL` (the default) allows
#'   200 per predictor. A run that reaches the cap is reported (see Methods).
#' @param drop_poor_placebos Placebos with a pre-period MSPE above this
#'   multiple of the treated unit's are dropped (`Inf` keeps all; Abadie et
#'   al. 2010 show 20, 5 and 2). Used with placebos in space only.
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
#' @param ... Must be empty: a misspelled or foreign argument name is an
#'   error that names the nearest argument.
#' @return A fit of class `c("mkt_synth", "mkt_fit")`, with the methods
#'   shared by every fit ([mkt_fit]): `coef()` and `tidy()` give the ATT
#'   (term `"att"`) with the p-value and interval of the chosen inference;
#'   `vcov()` a 1 x 1 matrix where the inference gives a standard error
#'   (sdid/did placebo, jackknife, bootstrap) and otherwise a classed error
#'   that says why; `glance()` adds `pre_rmspe`, `post_rmspe`, `v_loss`,
#'   `converged` (every optimiser reached its tolerance) and `v_converged`
#'   (the nested V search stopped on its tolerance, not at `max_iter`; `NA`
#'   without predictors). Further tables come from `tidy(fit, what)`:
#'   `"fits"` (the ATT of each treated unit or cohort), `"period"` (ATT by
#'   event time, with conformal intervals when the fit has them),
#'   `"weights"`, `"series"` (treated, synthetic and gap by period),
#'   `"balance"`, and with placebos in space `"placebo"` (each unit's RMSPEs,
#'   ratio, rank and whether its fit converged) and `"placebo_series"`. See [synth-methods] for
#'   `weights()` and the plots.
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
#' pl <- synth(packspercapita ~ treated | state + year, prop99, inference = "placebo")
#' tidy(pl)
#' # A panel built once serves several fits.
#' p <- mkt_panel(packspercapita ~ treated | state + year, prop99)
#' sdid <- synth(p, method = "sdid", inference = "placebo", n_draws = 50)
#' confint(sdid)
#' @export
synth <- function(formula, data, method = c("sc", "asc", "sdid", "did"), predictors = NULL,
                  fit_periods = NULL, pool = 0, poor_fit = 0.25,
                  inference = c("none", "placebo", "conformal", "jackknife", "bootstrap"),
                  n_draws = 200L, drop_poor_placebos = Inf, alpha = 0.05, max_iter = NULL, ...) {
  check_dots(...)
  # Before n_draws is reassigned (missing() is FALSE after that).
  draws_given <- !missing(n_draws)
  drop_given <- !missing(drop_poor_placebos)
  method <- check_choice(method, arg = "method")
  inference <- check_choice(inference, arg = "inference")
  n_draws <- check_count(n_draws, "n_draws", min = 2)
  if (!is.null(max_iter)) max_iter <- check_count(max_iter, "max_iter", min = 1)
  alpha <- check_alpha(alpha)
  check_synth_options(method, predictors, pool, poor_fit, drop_poor_placebos)
  check_synth_unused(method, inference, predictors, fit_periods, max_iter,
                     n_draws = if (draws_given) n_draws,
                     drop_poor_placebos = if (drop_given) drop_poor_placebos)
  extra <- NULL
  if (!is.null(predictors)) {
    pred_vars <- check_predictor_list(predictors)
    outcome <- if (inherits(formula, "mkt_panel")) {
      formula$vars$outcome
    } else if (inherits(formula, "formula") && length(formula) == 3L) {
      paste(deparse(formula[[2]], width.cutoff = 500L), collapse = " ")
    }
    extra <- setdiff(pred_vars, outcome)
    if (length(extra) && !missing(data) && is.data.frame(data)) {
      check_columns(data, extra, "predictors")
    }
  }
  panel <- as_panel(formula, if (!missing(data)) data, extra = extra)
  synth_fit(panel, method = method, predictors = predictors, fit_periods = fit_periods,
            pool = pool, poor_fit = poor_fit, inference = inference, n_draws = n_draws,
            drop_poor_placebos = drop_poor_placebos, alpha = alpha, max_iter = max_iter,
            call = match.call())
}

# The core: everything after the panel. Arguments are checked by the front.
synth_fit <- function(panel, method, predictors = NULL, fit_periods = NULL, pool = 0,
                      poor_fit = 0.25, inference = "none", n_draws = 200L,
                      drop_poor_placebos = Inf, alpha = 0.05, max_iter = NULL, call = NULL,
                      error_call = rlang::caller_env()) {
  if (length(panel$vars$covariates)) {
    abort_mkt("bad_formula", c(
      "{.fn synth} takes no covariates in the formula.",
      i = "Give covariates as {.arg predictors}, with the periods they are averaged over."
    ), call = error_call)
  }
  setup <- synth_setup(panel, method, predictors, call = error_call)
  check_synth_inference(setup, method, inference, predictors, pool, call = error_call)
  # Everything from here to the summaries runs on the rescaled outcome
  # (see outcome_scale()); the results are put back in the outcome's units.
  s <- outcome_scale(panel$Y)
  work <- scale_setup(setup, s)
  fits <- lapply(work$groups, function(g) {
    fit_one(work, g$treated, g$t0, work$donors, method, predictors, fit_periods,
            max_iter = max_iter)
  })
  pooled <- NULL
  if (pool > 0 && length(fits) > 1L) {
    pooled <- pool_weights(work, fits, pool)
    fits <- Map(function(f, w) refit_gaps(work, f, w), fits, pooled$W)
    for (k in seq_along(fits)) fits[[k]]$convergence$converged <- pooled$converged
  }
  smry <- summarise_fits(work, fits)
  rel <- if (method != "did" && is.finite(smry$outcome_sd) && smry$outcome_sd > 0) {
    stats::setNames(smry$tables$fits$pre_rmspe / smry$outcome_sd, names(work$groups))
  }
  warn_fit_quality(smry$converged, smry$kkt, rel, poor_fit, smry$v_search)
  inf <- switch(inference,
    none = NULL,
    conformal = synth_conformal(work, fits[[1]], method, alpha),
    placebo = if (method %in% c("sc", "asc")) {
      placebo_in_space(work, fits[[1]], method, predictors, fit_periods, drop_poor_placebos,
                       max_iter)
    } else {
      synth_standard_error(work, fits, smry$att, method, inference, n_draws, alpha)
    },
    synth_standard_error(work, fits, smry$att, method, inference, n_draws, alpha))
  smry <- unscale_summary(smry, s, fits[[1]]$outcome_rows)
  fits <- lapply(fits, unscale_fit, s)
  inf <- unscale_inference(inf, s)
  spec <- list(method = method, inference = inference, predictors = predictors,
               fit_periods = fit_periods, pool = pool, poor_fit = poor_fit,
               n_draws = n_draws, drop_poor_placebos = drop_poor_placebos, max_iter = max_iter)
  synth_result(setup, fits, smry, inf, spec, alpha, call,
               pooled_imbalance = if (!is.null(pooled)) pooled$pooled_imbalance * s)
}

# --- input ----------------------------------------------------------------

check_synth_options <- function(method, predictors, pool, poor_fit, drop_poor_placebos,
                                call = rlang::caller_env()) {
  if (!is.numeric(drop_poor_placebos) || length(drop_poor_placebos) != 1L ||
      is.na(drop_poor_placebos) || drop_poor_placebos < 1) {
    abort_mkt("bad_argument", c(
      "{.arg drop_poor_placebos} must be a single number of at least 1 (or {.code Inf}).",
      x = "You supplied {.val {format(drop_poor_placebos)}}."), call = call)
  }
  if (!is.numeric(poor_fit) || length(poor_fit) != 1L || is.na(poor_fit) || poor_fit <= 0) {
    abort_mkt("bad_argument", c(
      "{.arg poor_fit} must be a single positive number (a share of the outcome's standard deviation).",
      x = "You supplied {.val {format(poor_fit)}}."), call = call)
  }
  if (!is.null(predictors) && method != "sc") {
    abort_mkt("bad_argument", c(
      "{.arg predictors} are used by {.code method = \"sc\"} only.",
      i = "Drop {.arg predictors} or use {.code method = \"sc\"}."), call = call)
  }
  if (length(pool) != 1L) {
    abort_mkt("bad_argument", "{.arg pool} must be a single number in [0, 1].", call = call)
  }
  check_probability(pool, "pool", open_left = FALSE, call = call)
  if (pool > 0 && (method != "sc" || !is.null(predictors))) {
    abort_mkt("bad_argument", c(
      "{.arg pool} applies to outcome-only {.code method = \"sc\"}.",
      i = "Set {.code pool = 0} or drop {.arg predictors}."), call = call)
  }
  invisible(TRUE)
}

# Arguments that the chosen method and inference do not use are refused
# rather than ignored: a user who sets them expects them to matter. n_draws
# and drop_poor_placebos are NULL here unless the user gave them.
check_synth_unused <- function(method, inference, predictors, fit_periods, max_iter,
                               n_draws = NULL, drop_poor_placebos = NULL,
                               call = rlang::caller_env()) {
  if (is.null(predictors)) {
    given <- list(fit_periods = fit_periods, max_iter = max_iter)
    for (arg in names(given)) {
      if (!is.null(given[[arg]])) {
        abort_mkt("bad_argument", c(
          "{.arg {arg}} is used by the nested V search, which runs with {.arg predictors} only.",
          i = "Drop {.arg {arg}}, or give {.arg predictors} with {.code method = \"sc\"}."
        ), call = call)
      }
    }
  }
  draws <- inference == "bootstrap" || (inference == "placebo" && method %in% c("sdid", "did"))
  if (!is.null(n_draws) && !draws) {
    abort_mkt("bad_argument", c(
      "{.arg n_draws} is not used with {.code method = \"{method}\"} and {.code inference = \"{inference}\"}, which draws nothing at random.",
      i = "Drop {.arg n_draws}; it sets the replications of the sdid/did placebo and of the bootstrap."
    ), call = call)
  }
  if (!is.null(drop_poor_placebos) && !(inference == "placebo" && method %in% c("sc", "asc"))) {
    abort_mkt("bad_argument", c(
      "{.arg drop_poor_placebos} is used by placebos in space only ({.code method = \"sc\"} or {.code \"asc\"} with {.code inference = \"placebo\"}).",
      i = "Drop {.arg drop_poor_placebos}, or use {.code inference = \"placebo\"}."
    ), call = call)
  }
  invisible(TRUE)
}

check_predictor_list <- function(predictors, call = rlang::caller_env()) {
  nm <- names(predictors)
  if (!is.list(predictors) || is.object(predictors) || length(predictors) == 0L || is.null(nm) || any(!nzchar(nm))) {
    abort_mkt("bad_predictors", c(
      "{.arg predictors} must be a list whose elements are named by columns of {.arg data}.",
      i = "For example {.code list(retprice = 1980:1988, packspercapita = 1975)}: each column is averaged over the periods given."
    ), call = call)
  }
  empty <- vapply(predictors, function(p) !is.atomic(p) || length(p) == 0L || anyNA(p),
                  logical(1))
  if (any(empty)) {
    abort_mkt("bad_predictors", c(
      "Predictor {.field {nm[empty][1]}} has no periods (or a missing period, or is not a vector of periods).",
      i = "Give each predictor the periods over which it is averaged."
    ), call = call)
  }
  unique(nm)
}

# --- the fit object ---------------------------------------------------------

synth_method_labels <- c(sc = "Synthetic control", asc = "Augmented synthetic control (ridge)",
                         sdid = "Synthetic difference-in-differences",
                         did = "Difference-in-differences")

# The mkt_synth fit through the shared constructor. `inf` holds what the
# inference adds (estimate columns, vcov or the reason there is none,
# tables, a label); NULL for none. `estimand` and `inference_label` override
# the defaults (the placebo-in-time fit says what it is).
synth_result <- function(setup, fits, smry, inf, spec, alpha, call, estimand = NULL,
                         inference_label = NULL, pooled_imbalance = NULL) {
  method <- spec$method
  panel <- setup$panel
  n_tr <- length(setup$treated)
  est <- list(term = "att", estimate = smry$att, std.error = NA_real_, conf.low = NA_real_,
              conf.high = NA_real_, p.value = NA_real_)
  est[names(inf$estimates)] <- inf$estimates
  tables <- smry$tables
  if (!is.null(inf$period)) {
    per <- tables$period
    i <- match(per$event_time, inf$period$event_time)
    per$conf.low <- inf$period$conf.low[i]
    per$conf.high <- inf$period$conf.high[i]
    per$p.value <- inf$period$p.value[i]
    tables$period <- per
  }
  tables[names(inf$tables)] <- inf$tables
  tables$effect_over_time <- synth_effect_over_time(tables, alpha)
  label <- synth_method_labels[[method]]
  if (!is.null(spec$predictors)) label <- paste(label, "with predictors (nested V)")
  if (spec$pool > 0 && length(fits) > 1L) {
    label <- sprintf("%s, partially pooled (pool = %s)", label, format(spec$pool))
  }
  if (is.null(estimand)) {
    what <- if (n_tr == 1L) {
      sprintf("the treated unit (%s)", rownames(panel$Y)[setup$treated])
    } else {
      sprintf("the %d treated units", n_tr)
    }
    estimand <- switch(method,
      sc = , asc = sprintf("ATT: mean post-treatment gap between %s and %s", what,
                           if (n_tr == 1L) "its synthetic control" else "their synthetic controls"),
      sdid = sprintf("ATT: mean post-treatment gap of %s, net of the time-weighted pre-period gap", what),
      did = sprintf("ATT: change in the gap between %s and the donors' mean, post vs pre", what))
  }
  if (is.null(inference_label)) {
    inference_label <- if (is.null(inf)) "none (inference = \"none\")" else inf$label
  }
  no_vcov <- if (is.null(inf)) "no inference was requested (inference = \"none\")" else inf$no_vcov
  units <- c(setup$treated, setup$donors)
  new_fit(
    "synth",
    estimates = new_df(term = est$term, estimate = est$estimate, std.error = est$std.error,
                       p.value = est$p.value, conf.low = est$conf.low,
                       conf.high = est$conf.high),
    method = label, estimand = estimand, inference = inference_label, alpha = alpha,
    n = list(obs = if (panel$balanced) length(units) * length(panel$times) else
               sum(panel$observed[units, ]), units = length(units),
             periods = length(panel$times), treated = n_tr, clusters = NA_integer_,
             donors = length(setup$donors)),
    call = call, vcov = inf$vcov, no_vcov = no_vcov, vars = panel$vars,
    glance = list(pre_rmspe = smry$pre_rmspe, post_rmspe = smry$post_rmspe,
                  v_loss = smry$v_loss, converged = smry$converged && !isFALSE(smry$v_search$converged),
                  v_converged = smry$v_search$converged),
    tables = tables,
    weights = smry$weights, weight_matrix = smry$weight_matrix,
    time_weights = smry$time_weights, v = smry$v, ridge_lambda = smry$ridge_lambda,
    kkt = smry$kkt, v_search = smry$v_search, pooled_imbalance = pooled_imbalance,
    draws = inf$draws,
    fits = fits, setup = setup, spec = spec
  )
}
