#' Robustness checks for a synthetic control: placebo in time and leave-one-out donors
#'
#' `synth_placebo_time()` moves the treatment date back by `shift` periods
#' and refits the same specification on the data before the real treatment
#' date: an "effect" in the fake post-period, where there was no treatment,
#' warns that the fit does not track the treated unit out of sample (Abadie,
#' Diamond and Hainmueller 2015). `synth_loo()` refits once without each
#' donor that has weight, so that one sees whether the estimate rests on a
#' single donor.
#'
#' @param fit A [synth()] fit.
#' @param shift Number of periods the treatment date moves back. It must
#'   leave the pre-periods the method needs (see [synth()]): two for
#'   outcome-only `"sc"` and `"asc"` and for `"sdid"`, one for `"did"` and
#'   for `"sc"` with predictors.
#' @param predictors Predictor specification for the backdated fit (default:
#'   the fit's). Its periods must lie before the fake treatment date.
#' @param fit_periods Periods whose outcome MSPE the V search minimises
#'   (default: all periods before the fake date).
#' @param min_weight Donors with at least this weight are left out in turn
#'   (a number in \[0, 1\]).
#' @param ... Must be empty.
#' @return `synth_placebo_time()`: a `mkt_synth` fit on the periods before the
#'   real treatment with the fake date; its estimand and inference say so,
#'   and all methods work on it. `synth_loo()`: a data frame (a diagnostic
#'   table, not a fit: each row is a different estimator of the same ATT)
#'   with one row per dropped donor: `term` (the donor), `estimate` (the ATT
#'   without it), `pre_rmspe`, `post_rmspe` and `weight` (its weight in the
#'   full fit).
#' @references Abadie, A., Diamond, A. and Hainmueller, J. (2015).
#'   Comparative politics and the synthetic control method. *American Journal
#'   of Political Science* 59(2), 495-510.
#' @examples
#' fit <- synth(packspercapita ~ treated | state + year, prop99)
#' coef(synth_placebo_time(fit, shift = 8))
#' synth_loo(fit)
#' @export
synth_placebo_time <- function(fit, shift, predictors = fit$spec$predictors, fit_periods = NULL,
                               ...) {
  check_dots(...)
  check_synth_fit(fit)
  setup <- fit$setup
  method <- fit$spec$method
  if (!is.null(predictors)) {
    if (method != "sc") {
      abort_mkt("bad_argument", c(
        "{.arg predictors} are used by {.code method = \"sc\"} only; this fit is {.code method = \"{method}\"}.",
        i = "Drop {.arg predictors}."))
    }
    vars <- check_predictor_list(predictors)
    known <- c(setup$panel$vars$outcome, names(setup$panel$extra))
    if (!all(vars %in% known)) {
      abort_mkt("missing_column", c(
        "Predictor{?s} {.field {setdiff(vars, known)}} {?is/are} not in the fit's panel.",
        i = "Refit {.fn synth} with these {.arg predictors}, so that their columns come with the panel."))
    }
  } else if (!is.null(fit_periods)) {
    abort_mkt("bad_argument", c(
      "{.arg fit_periods} is used by the nested V search, which runs with {.arg predictors} only.",
      i = "Drop {.arg fit_periods}, or give {.arg predictors}."))
  }
  t0 <- min(vapply(setup$groups, `[[`, 1L, "t0"))
  min_pre <- switch(method, sdid = 2L, did = 1L, if (is.null(predictors)) 2L else 1L)
  if (t0 - 1L - min_pre < 1L) {
    abort_mkt("too_few_pre_periods", c(
      "Moving the treatment date back needs more than {min_pre} pre-treatment period{?s} for {.code method = \"{method}\"}; the fit has {t0 - 1L}.",
      i = "Use a panel with more periods before treatment."))
  }
  shift <- check_count(shift, "shift", min = 1, max = t0 - 1L - min_pre)
  keep <- seq_len(t0 - 1L)
  p <- setup$panel
  p$Y <- p$Y[, keep, drop = FALSE]
  p$observed <- p$observed[, keep, drop = FALSE]
  p$extra <- lapply(p$extra, function(m) m[, keep, drop = FALSE])
  p$times <- p$times[keep]
  p$balanced <- all(p$observed)
  fake <- setup
  fake$panel <- p
  fake$groups <- lapply(setup$groups, function(g) list(treated = g$treated, t0 = t0 - shift))
  fake$t0_index[!is.na(fake$t0_index)] <- t0 - shift
  check_pre_periods(fake$panel, fake$groups, method, predictors)
  s <- outcome_scale(p$Y)
  work <- scale_setup(fake, s)
  fits <- lapply(work$groups, function(g) {
    fit_one(work, g$treated, g$t0, work$donors, method, predictors, fit_periods,
            max_iter = fit$spec$max_iter)
  })
  smry <- unscale_summary(summarise_fits(work, fits), s, fits[[1]]$outcome_rows)
  fits <- lapply(fits, unscale_fit, s)
  spec <- fit$spec
  spec$inference <- "none"
  spec$pool <- 0
  spec$predictors <- predictors
  spec$fit_periods <- fit_periods
  fake_date <- format(p$times[t0 - shift])
  synth_result(
    fake, fits, smry, NULL, spec, fit$alpha, match.call(),
    estimand = sprintf("placebo ATT: mean gap over the %d periods from the fake date %s to the real treatment, where the true effect is zero",
                       shift, fake_date),
    inference_label = sprintf("none: placebo in time, treatment moved back %d period%s to %s (a diagnostic)",
                              shift, if (shift > 1) "s" else "", fake_date))
}

#' @rdname synth_placebo_time
#' @export
synth_loo <- function(fit, min_weight = 1e-6, ...) {
  check_dots(...)
  check_synth_fit(fit)
  if (!is.numeric(min_weight) || length(min_weight) != 1L || is.na(min_weight) ||
      min_weight < 0 || min_weight > 1) {
    abort_mkt("bad_argument", c(
      "{.arg min_weight} must be a single number in [0, 1] (a donor weight).",
      x = "You supplied {.val {format(min_weight)}}."))
  }
  method <- fit$spec$method
  if (method == "did") {
    abort_mkt("bad_argument", c(
      "Leave-one-out donors is meant for weighted fits ({.code \"sc\"} or {.code \"sdid\"}).",
      i = "Every donor weighs the same in {.code method = \"did\"}."))
  }
  setup <- fit$setup
  drop <- which(fit$weights >= min_weight)
  if (length(setup$donors) < 2L) {
    abort_mkt("no_donors", c(
      "Leaving a donor out needs at least two donors; the fit has one.",
      i = "With one donor the estimate rests on it entirely; there is nothing to vary."))
  }
  if (!length(drop)) {
    abort_mkt("bad_argument", c(
      "No donor has a weight of at least {.arg min_weight} = {format(min_weight)}.",
      i = "Lower {.arg min_weight}; the largest weight is {format(max(fit$weights), digits = 3)}."))
  }
  if (method == "asc" && length(setup$donors) < 3L) {
    abort_mkt("too_few_controls", c(
      "Leaving a donor out of {.code method = \"asc\"} needs at least three donors; the fit has {length(setup$donors)}.",
      i = "The ridge augmentation needs two donors in each refit."))
  }
  s <- outcome_scale(setup$panel$Y)
  work <- scale_setup(setup, s)
  predictors <- fit$spec$predictors
  fit_periods <- fit$spec$fit_periods
  rows <- resample_chunks(length(drop), function(k) {
    donors <- work$donors[-drop[k]]
    fits <- lapply(work$groups, function(g) {
      fit_one(work, g$treated, g$t0, donors, method, predictors, fit_periods,
              max_iter = fit$spec$max_iter)
    })
    n <- vapply(work$groups, function(g) length(g$treated), numeric(1))
    share <- n / sum(n)
    c(estimate = sum(share * vapply(fits, `[[`, numeric(1), "att")),
      pre_rmspe = sqrt(sum(share * vapply(fits, `[[`, numeric(1), "pre_rmspe")^2)),
      post_rmspe = sqrt(sum(share * vapply(fits, `[[`, numeric(1), "post_rmspe")^2)))
  }, chunk_size = 10L, label = "leave-one-out donors", globals = list())
  m <- do.call(rbind, rows) * s
  out <- data.frame(term = names(fit$weights)[drop], estimate = m[, "estimate"],
                    pre_rmspe = m[, "pre_rmspe"], post_rmspe = m[, "post_rmspe"],
                    weight = unname(fit$weights[drop]), stringsAsFactors = FALSE,
                    row.names = NULL)
  out[order(-out$weight), , drop = FALSE]
}

check_synth_fit <- function(fit, call = rlang::caller_env()) {
  if (!inherits(fit, "mkt_synth") || is.null(fit$setup)) {
    abort_mkt("bad_argument", c(
      "{.arg fit} must be a fit from {.fn synth}.",
      x = "You supplied an object of class {.cls {class(fit)}}."), call = call)
  }
  invisible(fit)
}
