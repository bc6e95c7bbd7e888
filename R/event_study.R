#' Event studies under staggered adoption: four estimators, one output
#'
#' `event_study()` estimates the effect of adoption by event time (periods
#' since a unit's first treated period) with one of four estimators and
#' returns them in one shape, so they can be compared and plotted together:
#'
#' * `"cs"`: Callaway and Sant'Anna's ATT(g,t) from [staggered()],
#'   aggregated by event time with cohort-size weights.
#' * `"sa"`: Sun and Abraham's interaction-weighted estimator: a two-way
#'   fixed effects regression on cohort x event-time indicators (event time
#'   -1 left out, never-treated units as controls), averaged within event
#'   time with the cohorts' shares of observations.
#' * `"imputation"`: Borusyak, Jaravel and Spiess's estimator: unit and
#'   period effects are fitted on untreated observations only, the untreated
#'   outcome of each treated observation is imputed, and the differences are
#'   averaged by event time. Its pre-period coefficients are the lead
#'   indicators of a regression on untreated observations (their test of
#'   parallel trends), relative to periods before `min_e`.
#' * `"twfe"`: the dynamic two-way fixed effects regression on event-time
#'   indicators (event time -1 left out), which is biased when effects differ
#'   across cohorts.
#'
#' @section Inference:
#' Standard errors are clustered by unit, or by `cluster`: influence
#' functions for `"cs"`; the cluster-robust sandwich with a G/(G-1)
#' correction for the regressions `"sa"` and `"twfe"`; the conservative
#' variance of Borusyak, Jaravel and Spiess (Theorem 3, residuals of
#' cohort x event-time means on treated cells) for `"imputation"`. The
#' uniform band uses the sup-t critical value over the event times shown,
#' simulated from the joint normal distribution of the estimates with
#' `n_draws` draws through [resample_chunks()] (reproducible with
#' [set.seed()]). The pre-trend test is the joint Wald test that all
#' pre-period coefficients are zero (in `glance()` and `tidy(fit,
#' "pretest")`).
#'
#' @section Pre-trend test:
#' The Wald statistic of \eqn{k} leads with a clustered covariance is
#' \eqn{\chi^2_k} only when the clusters are many against \eqn{k}: the
#' covariance of many leads from few clusters is near singular and the
#' \eqn{\chi^2} test rejects a true null far too often (with 50 units and
#' 19 leads, at 5%: 79% of the time for `"twfe"`, 91% for `"sa"`, 94% for
#' `"imputation"`, 64% for `"cs"`). For the methods whose leads come from a
#' regression (`"sa"`, `"twfe"`, and `"imputation"`, whose leads are a
#' regression on the untreated cells) the p-value is therefore a wild
#' cluster bootstrap of the same statistic under the null, as in
#' [exposure_did()]: the regression with the tested leads set to zero (for
#' `"sa"`, their cohort averages) is fitted, its residuals are multiplied
#' by a random sign per cluster (Webb's six-point weights below 12
#' clusters) and added back, and each draw refits the regression and
#' recomputes the clustered covariance and the statistic. It uses
#' `min(n_draws, 999)` draws through [resample_chunks()] (reproducible with
#' [set.seed()]); `glance()` names the method (`pretest_method`) and the
#' draws (`pretest_n_draws`), and `fit$pretest_draws` holds the draws' F
#' forms (a constant multiple of the statistic). For `"cs"`, and where the
#' regression's design would not fit in 256 MB (clusters x columns^2), the
#' p-value is the \eqn{\chi^2_k} one (`pretest_method = "chi2"`), reliable
#' only with many clusters per lead; `print()` says so when leads are more
#' than a twentieth of the clusters. With at least 100 clusters per lead
#' every method uses the \eqn{\chi^2_k} reference, accurate there.
#'
#' @section Event window:
#' On a long panel the earliest leads and latest lags rest on the one or two
#' cohorts adopting at the edges of the panel, often a handful of units.
#' By default an event time is reported only when the treated units observed
#' at it are at least a tenth of all treated units (units counted once per
#' event time, whatever their weights; units treated from the first period
#' do not count). The default window runs from the earliest to the latest
#' event time that passes this rule; an explicit `min_e` or `max_e`
#' replaces its end. `print()` says which event times were left out and how
#' to get them back (`min_e = -Inf, max_e = Inf`), and the fit keeps them in
#' `$window`. The uniform band and the pre-trend test cover the event times
#' reported. The rule leaves short panels such as [mpdta] whole (its
#' sparsest event times, 2 and 3, rest on 20 of 191 treated counties).
#'
#' @section Scale:
#' Every estimator here is equivariant in the outcome: it runs on the outcome
#' divided by a power of two near its largest absolute value, and the
#' estimates, standard errors and limits are scaled back, so outcomes near
#' 1e300 or 1e-300 give the scaled answer. `vcov()` holds squares of the
#' outcome's scale (and so overflows near 1e300); the fit also keeps the
#' covariance on the internal scale, which [honest_sensitivity()] uses.
#'
#' @section Computation:
#' On a balanced panel the regressions `"sa"` and `"twfe"` never form their
#' design matrix: after removing unit and period effects every cohort x
#' period indicator depends on the unit only through its cohort, so the
#' normal equations need only cohort-by-period sums of the outcome and the
#' clustered scores the second moments of each cluster's cohort sums. A
#' panel of 100,000 units x 20 periods takes about as long as building the
#' panel. Unbalanced panels use the design on the observed cells.
#'
#' @param formula `outcome ~ treatment | unit + time` (see [mkt_panel()]);
#'   the treatment is the absorbing treated-and-post indicator. Covariates
#'   are used by `"cs"` only (the other methods refuse them). A
#'   [mkt_panel()] may be given in place of the formula.
#' @param data A long data frame, tibble or data.table.
#' @param method `"cs"`, `"sa"`, `"imputation"` or `"twfe"`.
#' @param min_e,max_e Event times reported; regressions bin nothing and
#'   estimate all event times, then keep this window. By default (`NULL`)
#'   each end is the one the data support (see *Event window*); `min_e =
#'   -Inf, max_e = Inf` keeps every event time estimated. `min_e > max_e` is
#'   an error of class `mktcausal_error_bad_argument`, and a window that
#'   holds no estimated event time one of class `mktcausal_error_bad_window`,
#'   whose message lists the event times estimated.
#' @param control,anticipation,base_period For `"cs"` only: the controls,
#'   anticipation and base period of [staggered()]. `base_period` defaults
#'   to `"universal"` here, so that every coefficient is relative to event
#'   time -1 as in the regressions.
#' @param cs_method For `"cs"` only: the estimator of each ATT(g,t) (the
#'   `method` of [staggered()]), `"dr"`, `"ipw"` or `"reg"`.
#' @param cluster `NULL` (unit) or a column constant within units.
#' @param weights `NULL` or a column of unit weights (for example
#'   population), constant within units. Regressions become weighted least
#'   squares with weighted fixed effects, the imputation estimator fits its
#'   unit and period effects by weighted least squares and averages treated
#'   cells with these weights, and `"cs"` uses them as [staggered()] does.
#' @param n_draws Draws for the sup-t critical value of the uniform band,
#'   and (at most 999 of them) for the bootstrap pre-trend test of `"sa"`,
#'   `"twfe"` and `"imputation"`.
#' @param alpha Significance level.
#' @param ... Must be empty.
#' @return A fit of class `c("mkt_event_study", "mkt_fit")` (see [mkt_fit])
#'   whose estimates are the event times (terms `"event e"`), with
#'   pointwise `conf.low` and `conf.high` and the columns `event`,
#'   `conf.low.uniform` and `conf.high.uniform` (the uniform band);
#'   `vcov()` is the covariance of the event-time estimates, `glance()`
#'   holds the pre-trend test (`pretest_statistic`, `pretest_df`,
#'   `pretest_p.value`, `pretest_method`, `pretest_n_draws`) and the uniform
#'   critical value `crit`, also in `$pretest` and `$crit`.
#' @references Sun, L. and Abraham, S. (2021). Estimating dynamic treatment
#'   effects in event studies with heterogeneous treatment effects. *Journal
#'   of Econometrics* 225(2), 175-199.
#'
#'   Borusyak, K., Jaravel, X. and Spiess, J. (2024). Revisiting event-study
#'   designs: robust and efficient estimation. *Review of Economic Studies*
#'   91(6), 3253-3285.
#' @examples
#' mpdta$post <- as.integer(mpdta$first.treat > 0 & mpdta$year >= mpdta$first.treat)
#' set.seed(1)
#' es <- event_study(lemp ~ post | countyreal + year, mpdta, method = "sa")
#' es
#' glance(es)[c("pretest_statistic", "pretest_p.value", "crit")]
#' plot(es)
#' @export
event_study <- function(formula, data, method = c("cs", "sa", "imputation", "twfe"),
                        min_e = NULL, max_e = NULL, control = c("never", "not_yet"),
                        anticipation = 0, base_period = c("universal", "varying"),
                        cs_method = c("dr", "ipw", "reg"), cluster = NULL, weights = NULL,
                        n_draws = 2000, alpha = 0.05, ...) {
  check_dots(...)
  given <- c(control = !missing(control), anticipation = !missing(anticipation),
             base_period = !missing(base_period), cs_method = !missing(cs_method))
  method <- check_choice(method)
  control <- check_choice(control)
  base_period <- check_choice(base_period)
  cs_method <- check_choice(cs_method)
  anticipation <- check_count(anticipation, "anticipation", min = 0)
  if (method != "cs") {
    if (any(given)) {
      abort_mkt("bad_argument", c(
        "{.arg {names(given)[given]}} appl{?ies/y} to {.code method = \"cs\"} only.",
        i = "Leave these arguments out for {.code method = \"{method}\"}, or use {.code method = \"cs\"}."
      ))
    }
  }
  bad_end <- function(v) !is.null(v) && (!is.numeric(v) || length(v) != 1L || is.na(v))
  if (bad_end(min_e) || bad_end(max_e) ||
      (!is.null(min_e) && !is.null(max_e) && min_e > max_e)) {
    abort_mkt("bad_argument", c(
      "{.arg min_e} and {.arg max_e} must be single numbers (or {.code NULL}) with {.code min_e <= max_e}.",
      x = "You supplied {.arg min_e} = {format(min_e %||% 'NULL')} and {.arg max_e} = {format(max_e %||% 'NULL')}.",
      i = "For example {.code min_e = -4, max_e = 4} keeps four periods either side of adoption."
    ))
  }
  n_draws <- check_count(n_draws, "n_draws", min = 1)
  # The band's draws are held as one R number each (about 64 bytes until
  # they are unlisted): refuse what cannot fit before any work.
  check_memory(72 * as.double(n_draws),
               sprintf("The uniform band's %s draws", format(n_draws, big.mark = ",", scientific = FALSE)),
               "Use fewer draws: the default {.code n_draws = 2000} is plenty for a critical value.")
  alpha <- check_alpha(alpha)
  panel <- as_panel(formula, data, cluster = cluster, weights = weights)
  event_study_fit(panel, method = method, min_e = min_e, max_e = max_e, control = control,
                  anticipation = anticipation, base_period = base_period,
                  cs_method = cs_method, n_draws = n_draws, alpha = alpha,
                  call = match.call())
}

# The core of event_study(): everything after the panel.
event_study_fit <- function(panel, method, min_e = NULL, max_e = NULL, control = "never",
                            anticipation = 0L, base_period = "universal", cs_method = "dr",
                            n_draws = 2000L, alpha = 0.05, call = NULL,
                            error_call = rlang::caller_env()) {
  if (method == "cs") {
    fit <- staggered_fit(panel, method = cs_method, control = control,
                         anticipation = anticipation, base_period = base_period,
                         n_draws = 0L, alpha = alpha, error_call = error_call)
    cl <- fit$cells
    estimated <- sort(unique((cl$time_idx - cl$group_idx)[!is.na(cl$estimate)]))
    window <- es_window(panel, estimated, min_e, max_e)
    min_e <- window$min_e
    max_e <- window$max_e
    check_event_window(estimated, min_e, max_e, call = error_call)
    agg <- staggered_aggregate_fit(fit, "event", min_e = min_e, max_e = max_e, n_draws = 0L)
    S <- rowsum_clusters(agg$inf[, -1, drop = FALSE], fit$cluster_id)
    # On the fit's internal scale, as the influence functions.
    scale <- fit$scale
    est <- list(event = agg$label, estimate = agg$estimates$estimate[-1] / scale,
                vcov = influence_vcov(S, fit$n_units))
    n <- fit$n
  } else {
    if (length(panel$vars$covariates)) {
      abort_mkt("covariates_not_supported", c(
        "{.code method = \"{method}\"} takes no covariates.",
        x = "The formula has covariates {.field {panel$vars$covariates}}.",
        i = "Drop them, or use {.code method = \"cs\"}, which conditions on them."
      ), call = error_call)
    }
    prep <- staggered_prepare(panel, "not_yet", 0L, call = error_call)
    scale <- prep$scale
    est <- switch(method,
      sa = es_regression(prep, "sa", call = error_call),
      twfe = es_regression(prep, "twfe", call = error_call),
      imputation = es_imputation(prep, call = error_call)
    )
    window <- es_window(panel, est$event, min_e, max_e)
    min_e <- window$min_e
    max_e <- window$max_e
    check_event_window(est$event, min_e, max_e, call = error_call)
    keep <- est$event >= min_e & est$event <= max_e
    est$event <- est$event[keep]
    est$estimate <- est$estimate[keep]
    est$vcov <- est$vcov[keep, keep, drop = FALSE]
    n <- list(obs = sum(!is.na(prep$Y)), units = prep$n, periods = length(panel$times),
              treated = sum(prep$cohort > 0L), clusters = max(prep$cluster_id),
              cohorts = length(unique(prep$cohort[prep$cohort > 0L])))
  }
  # The regressions (and the imputation leads, a regression on the untreated
  # cells) test their leads by a wild cluster bootstrap.
  boot_setup <- if (method != "cs") {
    function(leads) es_pretrend_setup(prep, method, leads, all_leads = est$honest$leads)
  }
  fit <- es_finish(est, method, n_draws, alpha, n = n, panel = panel, call = call,
                   pretrend_setup = boot_setup,
                   base_period = if (method == "cs") base_period else "universal",
                   cs_method = cs_method, control = control, scale = scale)
  fit$window <- window
  # What honest_sensitivity() needs to restate imputation effects against
  # event time -1 (all leads, before the event window; internal scale).
  fit$imputation <- est$honest
  fit
}

# The event window: each end given by the user, or else the one the data
# support (see the Event window section): the earliest and latest event
# times at which the treated units observed are at least `share` of all
# treated units. `dropped` lists the event times estimated that the default
# ends leave out, so print() can name them.
es_window <- function(panel, estimated, min_e = NULL, max_e = NULL, share = 0.1) {
  g <- unname(panel$cohort_index)
  treated <- which(!is.na(g) & g > 1L)
  lo <- -Inf
  hi <- Inf
  if (length(treated) && (is.null(min_e) || is.null(max_e))) {
    obs <- panel$observed[treated, , drop = FALSE]
    e <- col(obs) - g[treated]
    counts <- table(e[obs])
    ok <- as.numeric(names(counts))[counts >= share * length(treated)]
    if (length(ok)) {
      lo <- min(ok)
      hi <- max(ok)
    }
  }
  # A default end that would empty the user's window gives way.
  min_out <- if (!is.null(min_e)) min_e else if (!is.null(max_e) && lo > max_e) -Inf else lo
  max_out <- if (!is.null(max_e)) max_e else if (!is.null(min_e) && hi < min_e) Inf else hi
  dropped <- estimated[(is.null(min_e) & estimated < min_out) |
                         (is.null(max_e) & estimated > max_out)]
  list(min_e = min_out, max_e = max_out, dropped = sort(dropped), share = share,
       default = c(min_e = is.null(min_e), max_e = is.null(max_e)))
}

# Standard errors, bands and the pre-trend Wald test, for every method; the
# fit. `est` is on the internal scale of the outcome (see
# staggered_prepare()): the estimates, standard errors and limits go back to
# the outcome's units with `scale`, the tests and the band's critical value
# do not depend on it. The fit keeps the covariance on the internal scale
# too (`vcov_scaled`), since that of outcomes near 1e300 overflows.
es_finish <- function(est, method, n_draws, alpha, n, panel, call, base_period,
                      cs_method, control, scale = 1, pretrend_setup = NULL) {
  V <- est$vcov
  se <- sqrt(pmax(diag(V), 0))
  se[se <= sqrt(.Machine$double.eps) * 10 | !is.finite(est$estimate)] <- NA_real_
  ok <- !is.na(se)
  crit <- sup_t_crit(V[ok, ok, drop = FALSE], n_draws, alpha)
  z <- stats::qnorm(alpha / 2, lower.tail = FALSE)
  pre <- which(est$event < 0 & ok)
  pretest <- if (length(pre)) {
    b <- est$estimate[pre]
    # A generalised inverse keeps the test defined when pre-period estimates
    # are collinear; the degrees of freedom are then the rank.
    e <- eigen(V[pre, pre, drop = FALSE], symmetric = TRUE)
    pos <- e$values > 1e-10 * max(e$values)
    proj <- crossprod(e$vectors[, pos, drop = FALSE], b)
    stat <- sum(proj^2 / e$values[pos])
    out <- data.frame(statistic = stat, df = sum(pos),
                      p.value = stats::pchisq(stat, sum(pos), lower.tail = FALSE),
                      method = "chi2", n_draws = 0L, stringsAsFactors = FALSE)
    # The regressions: the p-value of a wild cluster bootstrap of the same
    # statistic under the null (R/pretrend_test.R), at most 999 draws.
    # At least 100 clusters per lead: the reference is accurate there, and
    # the bootstrap would only cost time on a large panel.
    setup <- if (!is.null(pretrend_setup) && n$clusters < 100 * sum(pos)) {
      pretrend_setup(est$event[pre])
    }
    if (!is.null(setup) && setup$df1 == sum(pos)) {
      bt <- pretrend_test(setup, min(n_draws, 999L), Inf)
      out$p.value <- bt$p.value
      out$method <- bt$method
      out$n_draws <- bt$n_draws
      attr(out, "draws") <- attr(bt, "draws")
    }
    out
  } else {
    data.frame(statistic = NA_real_, df = 0L, p.value = NA_real_, method = "none",
               n_draws = 0L, stringsAsFactors = FALSE)
  }
  pretest_draws <- attr(pretest, "draws")
  attr(pretest, "draws") <- NULL
  est$estimate <- est$estimate * scale
  se <- se * scale
  estimates <- data.frame(
    term = paste("event", est$event), estimate = est$estimate, std.error = se,
    p.value = 2 * stats::pnorm(-abs(est$estimate / se)),
    conf.low = est$estimate - z * se, conf.high = est$estimate + z * se,
    event = est$event,
    conf.low.uniform = est$estimate - crit * se, conf.high.uniform = est$estimate + crit * se,
    stringsAsFactors = FALSE
  )
  cs_labels <- c(dr = "doubly robust", ipw = "inverse probability weighted",
                 reg = "outcome regression")
  label <- switch(method,
    cs = sprintf("Event study: Callaway-Sant'Anna (%s)", cs_labels[[cs_method]]),
    sa = "Event study: Sun-Abraham interaction-weighted",
    imputation = "Event study: imputation (Borusyak-Jaravel-Spiess)",
    twfe = "Event study: dynamic two-way fixed effects"
  )
  estimand <- switch(method,
    imputation = "effect by event time (periods since adoption) against imputed untreated outcomes; pre-periods: leads on untreated cells",
    cs = if (base_period == "universal") {
      sprintf("effect by event time (periods since adoption), relative to event time -1; %s controls",
              if (control == "never") "never-treated" else "not-yet-treated")
    } else {
      "effect by event time (periods since adoption); pre-periods relative to the period before each"
    },
    "effect by event time (periods since adoption), relative to event time -1"
  )
  by <- if (is.null(panel$vars$cluster)) "unit" else panel$vars$cluster
  variance <- switch(method,
    cs = "influence function",
    imputation = "BJS conservative variance",
    "CR1 sandwich (G/(G-1))"
  )
  inference <- sprintf("%s clustered by %s; uniform band: sup-t from %s draws",
                       variance, by, format(n_draws, big.mark = ","))
  V <- as.matrix(V)
  new_fit(
    "event_study", estimates = estimates, method = label, estimand = estimand, inference = inference,
    alpha = alpha, n = n, call = call, vcov = unscale_variance(V, scale), vars = panel$vars,
    glance = list(n_events = nrow(estimates), pretest_statistic = pretest$statistic,
                  pretest_df = pretest$df, pretest_p.value = pretest$p.value,
                  pretest_method = pretest$method, pretest_n_draws = pretest$n_draws,
                  crit = crit),
    tables = list(pretest = pretest),
    pretest = pretest, pretest_draws = pretest_draws, crit = crit, estimator = method, base_period = base_period,
    times = panel$times, scale = scale, vcov_scaled = V
  )
}

# Sup-t critical value of a joint normal with covariance V, by simulation.
sup_t_crit <- function(V, n_draws, alpha) {
  k <- ncol(V)
  if (k == 0L) return(NA_real_)
  sd <- sqrt(diag(V))
  R <- V / outer(sd, sd)
  e <- eigen(R, symmetric = TRUE)
  root <- e$vectors %*% (sqrt(pmax(e$values, 0)) * t(e$vectors))
  draws <- resample_chunks(n_draws, function(i) max(abs(stats::rnorm(k) %*% root)),
                           chunk_size = 500L, label = "sup-t draws", globals = list())
  unname(stats::quantile(unlist(draws), 1 - alpha, type = 1))
}
