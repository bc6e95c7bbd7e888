#' Asymptotic inference for a re-randomized experiment
#'
#' Confidence interval for the difference in means that respects the
#' acceptance rule, from the limit law of Li, Ding and Rubin (2018):
#' \deqn{(\hat\tau - \tau) / \sqrt{V} \to \sqrt{1 - R^2}\,\varepsilon +
#'   \sqrt{R^2}\, L_{k,a},}
#' where \eqn{\varepsilon} is standard normal, \eqn{L_{k,a}} is the first
#' coordinate of a \eqn{k}-variate standard normal conditioned on its
#' squared norm being at most the threshold \eqn{a}, and \eqn{R^2} is the
#' squared correlation between the outcome's and the covariates' differences
#' in means. The law is narrower than the normal, so the interval is shorter
#' than the one that ignores re-randomization (which is conservative, not
#' anti-conservative). Stratified designs use the stratified variances of
#' Wang, Wang and Liu (2023). Quantiles come from a one-dimensional integral,
#' not from simulation.
#'
#' @param design A Mahalanobis design from [rerandomize()].
#' @param outcome Numeric outcome, one value per cluster in the design's row
#'   order, or named by cluster id.
#' @param alpha One minus the confidence level.
#' @return A data frame with one row per method (`"rerandomization"` and
#'   `"complete_randomization"`): `estimate`, `std.error`, `conf.low`,
#'   `conf.high`, `p.value`, `quantile` (the critical value used) and `r2`.
#' @references Li, X., Ding, P. and Rubin, D. B. (2018). Asymptotic theory of
#'   rerandomization in treatment-control experiments. *PNAS* 115(37),
#'   9157-9162.
#' @examples
#' set.seed(1)
#' n <- 100
#' x <- matrix(rnorm(n * 2), n, 2, dimnames = list(NULL, c("x1", "x2")))
#' des <- rerandomize(as.data.frame(x), ~ x1 + x2, n_treated = 50, accept = 0.05)
#' y <- x[, 1] + rnorm(n) + 0.5 * des$treated
#' rem_asymptotic(des, y)
#' @export
rem_asymptotic <- function(design, outcome, alpha = 0.05) {
  check_design(design)
  alpha <- check_alpha(alpha)
  if (!is.null(design$buffer)) {
    abort_mkt("unsupported_design", c(
      "The asymptotic theory of Li, Ding and Rubin has no buffer zones: buffered clusters would count as controls.",
      i = "Use {.fn randomization_test}, which re-applies the buffer rule to every draw."
    ))
  }
  if (design$criterion != "mahalanobis") {
    abort_mkt("unsupported_design", c(
      "Asymptotic re-randomization intervals are implemented for the Mahalanobis criterion.",
      i = "Use {.fn randomization_test}, which conditions on any rule exactly."
    ))
  }
  y <- design_outcome(design, outcome)
  w <- design$treated
  s <- design$strata
  n1 <- design$n_treated_by_stratum
  n0 <- as.vector(table(s)) - n1
  if (any(n1 < 2 | n0 < 2)) {
    abort_mkt("strata_too_small", c(
      "Within-stratum variances need at least 2 treated and 2 control clusters per stratum.",
      i = "Use {.fn randomization_test} for designs with pairs or tiny strata."
    ))
  }
  pi_s <- as.vector(table(s)) / length(y)
  X <- design$X
  tau <- 0
  v_tt <- 0
  v_tx <- numeric(ncol(X))
  for (j in seq_along(n1)) {
    in_s <- as.integer(s) == j
    t1 <- in_s & w == 1
    t0 <- in_s & w == 0
    tau <- tau + pi_s[j] * (mean(y[t1]) - mean(y[t0]))
    v_tt <- v_tt + pi_s[j]^2 * (stats::var(y[t1]) / n1[j] + stats::var(y[t0]) / n0[j])
    v_tx <- v_tx + pi_s[j]^2 * (stats::cov(y[t1], X[t1, , drop = FALSE]) / n1[j] +
                                  stats::cov(y[t0], X[t0, , drop = FALSE]) / n0[j])
  }
  v_tx <- as.vector(v_tx)
  r2 <- as.numeric(v_tx %*% solve(design$spec$cov, v_tx)) / v_tt
  r2 <- min(max(r2, 0), 1)
  k <- ncol(X)
  a <- design$threshold
  q <- rem_quantile(1 - alpha / 2, k, a, r2)
  z <- stats::qnorm(1 - alpha / 2)
  se <- sqrt(v_tt)
  stat <- tau / se
  data.frame(
    method = c("rerandomization", "complete_randomization"),
    estimate = unname(tau), std.error = unname(se),
    conf.low = tau - c(q, z) * se, conf.high = tau + c(q, z) * se,
    p.value = c(2 * (1 - rem_cdf(abs(stat), k, a, r2)), 2 * stats::pnorm(-abs(stat))),
    quantile = c(q, z), r2 = r2,
    row.names = NULL, stringsAsFactors = FALSE
  )
}

# The re-randomization limit law ------------------------------------------

# Variance factor v_a of a Mahalanobis rule with k covariates and threshold a
# (Morgan and Rubin 2012): Var under the rule / Var under complete randomization.
rem_va <- function(a, k) {
  ifelse(is.finite(a), stats::pchisq(a, k + 2) / stats::pchisq(a, k), 1)
}

# Density of L_{k,a}, the first coordinate of D ~ N_k(0, I) given |D|^2 <= a:
# phi(x) P(chi2_{k-1} <= a - x^2) / P(chi2_k <= a) on |x| <= sqrt(a).
rem_l_density <- function(x, k, a) {
  inside <- x^2 <= a
  out <- numeric(length(x))
  rest <- if (k > 1) stats::pchisq(a - x[inside]^2, k - 1) else 1
  out[inside] <- stats::dnorm(x[inside]) * rest / stats::pchisq(a, k)
  out
}

# CDF of sqrt(1 - r2) eps + sqrt(r2) L_{k,a} at q.
rem_cdf <- function(q, k, a, r2) {
  vapply(q, function(qq) {
    if (!is.finite(a) || r2 <= 0) return(stats::pnorm(qq))
    ra <- sqrt(a)
    if (r2 >= 1 - 1e-12) {
      if (qq <= -ra) return(0)
      if (qq >= ra) return(1)
      return(stats::integrate(rem_l_density, -ra, qq, k = k, a = a,
                              rel.tol = 1e-10)$value)
    }
    f <- function(x) {
      stats::pnorm((qq - sqrt(r2) * x) / sqrt(1 - r2)) * rem_l_density(x, k, a)
    }
    stats::integrate(f, -ra, ra, rel.tol = 1e-10, subdivisions = 500L)$value
  }, numeric(1))
}

rem_quantile <- function(p, k, a, r2) {
  if (!is.finite(a) || r2 <= 0) return(stats::qnorm(p))
  upper <- stats::qnorm(p) + 1
  stats::uniroot(function(q) rem_cdf(q, k, a, r2) - p, c(-upper, upper),
                 tol = 1e-10)$root
}
