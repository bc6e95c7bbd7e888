#' Design effect of cluster randomization with unequal cluster sizes
#'
#' The factor by which randomizing clusters instead of individuals inflates
#' the variance of the size-weighted (individual-level) difference in means,
#' after Eldridge, Ashby and Kerry (2006):
#' \deqn{DE = 1 + ((CV^2 + 1)\bar m - 1)\rho,}
#' where \eqn{\bar m} is the mean cluster size, \eqn{CV} the coefficient of
#' variation of cluster sizes and \eqn{\rho} the intracluster correlation.
#' With equal sizes (\eqn{CV = 0}) it reduces to the familiar
#' \eqn{1 + (\bar m - 1)\rho}, which understates the loss when sizes vary.
#'
#' The CV uses the population standard deviation (divisor \eqn{M}), because
#' `sizes` lists every cluster of the design and the formula comes from
#' \eqn{\sum_j n_j^2 / (M \bar m^2) = 1 + CV^2} exactly.
#'
#' @param sizes Numeric vector of cluster sizes (individuals per cluster),
#'   one per cluster; a single number means equal sizes.
#' @param icc Intracluster correlation \eqn{\rho}, in \[0, 1\]; may be a vector.
#' @param ... Must be empty.
#' @return A numeric vector of design effects, one per value of `icc`, with
#'   attributes `mean_size` and `cv`.
#' @references Eldridge, S. M., Ashby, D. and Kerry, S. (2006). Sample size
#'   for cluster randomized trials: effect of coefficient of variation of
#'   cluster size and analysis method. *International Journal of
#'   Epidemiology* 35(5), 1292-1300.
#' @seealso [power_closed_form()]
#' @export
#' @examples
#' design_effect(rep(20, 200), icc = 0.05)          # 1 + 19 * 0.05 = 1.95
#' sizes <- stats::rgamma(200, shape = 1 / 0.36, scale = 20 * 0.36)
#' design_effect(sizes, icc = c(0.01, 0.05))         # near 2.31 at 0.05
design_effect <- function(sizes, icc, ...) {
  check_dots(...)
  if (!is.numeric(sizes) || length(sizes) < 1L || anyNA(sizes) || any(sizes <= 0) ||
      any(!is.finite(sizes))) {
    abort_mkt("bad_argument", c(
      "{.arg sizes} must be a vector of positive, finite cluster sizes without missing values.",
      i = "Pass one size per cluster, for example {.code design_effect(units$size, icc = 0.05)}."
    ))
  }
  check_probability(icc, "icc", open_left = FALSE)
  m <- mean(sizes)
  cv <- sqrt(mean((sizes - m)^2)) / m
  de <- 1 + ((cv^2 + 1) * m - 1) * icc
  attr(de, "mean_size") <- m
  attr(de, "cv") <- cv
  de
}

#' Closed-form power and minimum detectable effect for a cluster design
#'
#' Power or minimum detectable effect (MDE) of the difference in means of a
#' cluster-level outcome (for geo experiments, typically each cluster's
#' total or mean over the test window) when `n_clusters` clusters are
#' randomized, a share `prop_treated` to treatment:
#' \deqn{MDE = (t_{1-\alpha/2,df} + t_{power,df})
#'   \sqrt{\frac{\sigma^2 (1 - R^2)}{M p (1 - p)}},}
#' with normal quantiles when `df` is `NULL` or `Inf`. Give `effect` to get
#' power, or `power` to get the MDE.
#'
#' `r2` is the share of the between-cluster variance of the outcome
#' explained by pre-period covariates (for geo sales, the pre-period outcome:
#' often 0.9 or more). Without `rem` it is used by a regression-adjusted
#' estimator (e.g. Lin 2013), so the variance is \eqn{\sigma^2 (1 - R^2)}.
#'
#' With `rem = list(k = , accept = )` the clusters are re-randomized
#' (Morgan and Rubin 2012) on `k` covariates, accepting the share `accept` of
#' candidate assignments with the smallest Mahalanobis imbalance, and the
#' estimator is the *unadjusted* difference in means. `r2` is then the
#' \eqn{R^2} of the outcome on those `k` covariates, and the variance is
#' \eqn{\sigma^2 (1 - (1 - v_a) R^2)} with
#' \eqn{v_a = P(\chi^2_{k+2} \le a) / P(\chi^2_k \le a)},
#' \eqn{a = \chi^2_{k, accept}}. Re-randomization recovers most, never all, of
#' what adjustment recovers; a Lin estimator on the same covariates reaches
#' \eqn{\sigma^2 (1 - R^2)} with or without re-randomization, so give `rem`
#' only for the unadjusted estimator. The normal quantiles used here are
#' conservative under re-randomization, whose limit law has lighter tails
#' (Li, Ding and Rubin 2018).
#'
#' Power is computed as \eqn{F(|\delta| / se - t_{1-\alpha/2})}, ignoring the
#' negligible chance of rejecting in the wrong direction, so that the power
#' at the MDE is exactly the target.
#'
#' @param n_clusters Number of clusters randomized, \eqn{M} (vector allowed).
#' @param sd Between-cluster standard deviation \eqn{\sigma} of the outcome.
#' @param effect Effect(s) on the outcome's scale, for power.
#' @param power Target power(s), for the MDE. Give exactly one of `effect`
#'   and `power`.
#' @param alpha Two-sided significance level.
#' @param prop_treated Share of clusters treated, \eqn{p}.
#' @param r2 Share of the outcome variance explained by covariates, in \[0, 1).
#' @param df Degrees of freedom of the t reference, e.g. `M - 2` for the
#'   difference in means, `M - 2 - k` with `k` covariates; `NULL` or `Inf`
#'   for the normal.
#' @param rem `NULL`, or a list with `k` (number of balance covariates) and
#'   `accept` (acceptance probability) for Mahalanobis re-randomization.
#' @param ... Must be empty.
#' @return A data frame with one row per combination of `n_clusters` and
#'   `effect` (or `power`): `n_clusters`, `prop_treated`, `alpha`, `df`,
#'   `r2`, `variance_factor` (the multiplier of \eqn{\sigma^2}), `se`,
#'   `multiplier` (quantile sum, for the MDE), `effect`, `power`.
#' @references Morgan, K. L. and Rubin, D. B. (2012). Rerandomization to
#'   improve covariate balance in experiments. *Annals of Statistics* 40(2),
#'   1263-1282.
#'
#'   Li, X., Ding, P. and Rubin, D. B. (2018). Asymptotic theory of
#'   rerandomization in treatment-control experiments. *PNAS* 115(37),
#'   9157-9162.
#' @seealso [design_effect()], [compare_clusterings()]
#' @export
#' @examples
#' # MDE of a 50-geo test, outcome sd 100, pre-period R^2 0.9
#' power_closed_form(50, sd = 100, power = 0.8, r2 = 0.9, df = 47)
#' # Power for effects of 10 and 20, unadjusted, re-randomized on 4 covariates
#' power_closed_form(50, sd = 100, effect = c(10, 20), r2 = 0.9,
#'                   rem = list(k = 4, accept = 0.01))
power_closed_form <- function(n_clusters, sd, effect = NULL, power = NULL,
                              alpha = 0.05, prop_treated = 0.5, r2 = 0,
                              df = NULL, rem = NULL, ...) {
  check_dots(...)
  if (!is.numeric(n_clusters) || !length(n_clusters) || anyNA(n_clusters) ||
      any(n_clusters < 2) || any(n_clusters != round(n_clusters))) {
    abort_mkt("bad_argument", c(
      "{.arg n_clusters} must be whole numbers of at least 2.",
      x = "You supplied {.val {format(n_clusters)}}."
    ))
  }
  if (!is.numeric(sd) || length(sd) != 1L || is.na(sd) || sd <= 0) {
    abort_mkt("bad_argument", c(
      "{.arg sd} must be one positive number: the between-cluster sd of the outcome.",
      x = "You supplied {.val {format(sd)}}."
    ))
  }
  if (is.null(effect) == is.null(power)) {
    abort_mkt("bad_argument", c(
      "Give exactly one of {.arg effect} (to get power) and {.arg power} (to get the MDE).",
      i = "For example {.code power_closed_form(50, sd = 1, power = 0.8)}."
    ))
  }
  if (!is.null(effect) && (!is.numeric(effect) || !length(effect) || anyNA(effect))) {
    abort_mkt("bad_argument", "{.arg effect} must be numeric without missing values.")
  }
  if (!is.null(power)) {
    check_probability(power, "power")
    if (any(power <= 0 | power >= 1)) {
      abort_mkt("bad_argument", "{.arg power} must lie strictly between 0 and 1.")
    }
  }
  check_alpha(alpha)
  check_probability(prop_treated, "prop_treated")
  if (length(prop_treated) != 1L || prop_treated >= 1) {
    abort_mkt("bad_argument", "{.arg prop_treated} must be one number strictly between 0 and 1.")
  }
  if (!is.numeric(r2) || length(r2) != 1L || is.na(r2) || r2 < 0 || r2 >= 1) {
    abort_mkt("bad_argument", c(
      "{.arg r2} must be one number in [0, 1).",
      x = "You supplied {.val {format(r2)}}."
    ))
  }
  if (is.null(df)) df <- Inf
  if (!is.numeric(df) || length(df) != 1L || is.na(df) || df <= 0) {
    abort_mkt("bad_argument", "{.arg df} must be one positive number, {.code Inf} or {.code NULL}.")
  }
  vf <- if (is.null(rem)) 1 - r2 else 1 - (1 - rem_variance_ratio(rem)) * r2

  q <- function(p) if (is.finite(df)) stats::qt(p, df) else stats::qnorm(p)
  cdf <- function(x) if (is.finite(df)) stats::pt(x, df) else stats::pnorm(x)
  crit <- q(1 - alpha / 2)

  target <- if (is.null(effect)) power else effect
  grid <- expand.grid(n_clusters = as.integer(n_clusters), target = target)
  se <- sqrt(sd^2 * vf / (grid$n_clusters * prop_treated * (1 - prop_treated)))
  if (is.null(effect)) {
    mult <- crit + q(grid$target)
    eff <- mult * se
    pow <- grid$target
  } else {
    mult <- NA_real_
    eff <- grid$target
    pow <- cdf(abs(eff) / se - crit)
  }
  data.frame(
    n_clusters = grid$n_clusters, prop_treated = prop_treated, alpha = alpha,
    df = df, r2 = r2, variance_factor = vf, se = se, multiplier = mult,
    effect = eff, power = pow
  )
}

# v_a of Morgan and Rubin (2012): the share of each covariate's variance in
# the difference in means that survives Mahalanobis acceptance at level a.
rem_variance_ratio <- function(rem, call = rlang::caller_env()) {
  ok <- is.list(rem) && all(c("k", "accept") %in% names(rem))
  if (!ok) {
    abort_mkt("bad_argument", c(
      "{.arg rem} must be a list with elements {.field k} and {.field accept}.",
      i = "For example {.code rem = list(k = 4, accept = 0.01)}."
    ), call = call)
  }
  k <- check_count(rem$k, "rem$k", call = call)
  accept <- check_probability(rem$accept, "rem$accept", call = call)
  rem_va(stats::qchisq(accept, k), k)
}
