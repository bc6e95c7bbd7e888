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
#' @param formula `outcome ~ treatment`: two columns of `data`, the outcome
#'   of each cluster and its 0/1 treatment, which must be the design's
#'   assignment.
#' @param data A data frame with one row per designed cluster, matched to the
#'   design by its id column when `data` has it, otherwise by row order.
#' @param design A Mahalanobis design from [rerandomize()] (without a buffer).
#' @param alpha One minus the confidence level.
#' @param ... Must be empty.
#' @return A fit of class `c("mkt_rem", "mkt_fit")` (see [mkt_fit]) with two
#'   rows, the same difference in means under two reference laws:
#'   `"rerandomization"` (the limit law above) and `"complete_randomization"`
#'   (the normal law that ignores the rule). `std.error` is each law's
#'   standard deviation, \eqn{\sqrt{V(1 - (1 - v_a) R^2)}} and
#'   \eqn{\sqrt{V}}; `statistic` is \eqn{\hat\tau / \sqrt{V}} in both rows,
#'   referred to the row's law for its p-value. Besides broom's columns, the
#'   estimates carry `quantile` (the critical value, in units of
#'   \eqn{\sqrt{V}}) and `r2`.
#'   `confint()` and `tidy()` at another level use the law's own quantiles.
#'   `plot(fit, type = "law")` draws the two laws from `tidy(fit, "law")`
#'   (their densities on the effect's scale: `law`, `effect`, `density`).
#' @references Li, X., Ding, P. and Rubin, D. B. (2018). Asymptotic theory of
#'   rerandomization in treatment-control experiments. *PNAS* 115(37),
#'   9157-9162.
#' @examples
#' set.seed(1)
#' n <- 100
#' d <- data.frame(x1 = rnorm(n), x2 = rnorm(n))
#' des <- rerandomize(d, ~ x1 + x2, n_treated = 50, accept = 0.05)
#' d$treated <- des$treated
#' d$y <- d$x1 + rnorm(n) + 0.5 * d$treated
#' rem_asymptotic(y ~ treated, d, design = des)
#' @export
rem_asymptotic <- function(formula, data, design, alpha = 0.05, ...) {
  check_dots(...)
  call <- match.call()
  if (missing(design)) design <- NULL
  check_design(design)
  check_two_cell(design, "rem_asymptotic")
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
  input <- design_cluster_outcome(formula, data, design)
  rem_asymptotic_fit(design, input$y, alpha = alpha, call = call, vars = input$vars)
}

# The intervals for the outcome `y` of a checked Mahalanobis design, in the
# design's row order.
rem_asymptotic_fit <- function(design, y, alpha = 0.05, call = NULL, vars = NULL,
                               caller = rlang::caller_env()) {
  w <- design$treated
  s <- design$strata
  n1 <- design$n_treated_by_stratum
  n0 <- as.vector(table(s)) - n1
  if (any(n1 < 2 | n0 < 2)) {
    abort_mkt("strata_too_small", c(
      "Within-stratum variances need at least 2 treated and 2 control clusters per stratum.",
      i = "Use {.fn randomization_test} for designs with pairs or tiny strata."
    ), call = caller)
  }
  # The difference in means and its variances are equivariant in the
  # outcome: work on y divided by an exact power of two (outcome_scale()) so
  # that outcomes near 1e300 or 1e-300 neither overflow nor underflow.
  scale <- outcome_scale(y)
  y <- y / scale
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
  if (!is.finite(v_tt) || v_tt <= 0) {
    abort_mkt("no_variation", c(
      "The outcome does not vary within the arms, so the difference in means has no variance.",
      i = "Check the outcome column; a constant outcome carries no information on the effect."
    ), call = caller)
  }
  r2 <- as.numeric(v_tx %*% solve(design$spec$cov, v_tx)) / v_tt
  r2 <- min(max(r2, 0), 1)
  k <- ncol(X)
  a <- design$threshold
  q <- rem_quantile(alpha / 2, k, a, r2)
  z <- stats::qnorm(alpha / 2, lower.tail = FALSE)
  se <- sqrt(v_tt)
  stat <- tau / se
  tau <- tau * scale
  se <- se * scale
  # The standard deviation of the re-randomization law: the rule removes the
  # share (1 - v_a) R^2 of the variance.
  se_rule <- se * sqrt(1 - (1 - rem_va(a, k)) * r2)
  est <- data.frame(
    term = c("rerandomization", "complete_randomization"),
    estimate = unname(tau), std.error = unname(c(se_rule, se)), statistic = unname(stat),
    p.value = c(2 * rem_tail(abs(stat), k, a, r2), 2 * stats::pnorm(-abs(stat))),
    conf.low = tau - c(q, z) * se, conf.high = tau + c(q, z) * se,
    quantile = c(q, z), r2 = r2,
    row.names = NULL, stringsAsFactors = FALSE
  )
  n_strata <- nlevels(s)
  new_fit(
    "rem", est,
    method = "Asymptotic inference for a re-randomized experiment",
    estimand = paste("average treatment effect on the cluster outcome;",
                     if (n_strata > 1L) "stratum-weighted" else "the",
                     "difference in means under two reference laws"),
    inference = sprintf(paste(
      "limit law of Li, Ding and Rubin (2018) for a Mahalanobis rule on %d",
      "covariate%s (R2 = %.3f), beside the normal law of complete randomization"),
      k, if (k == 1L) "" else "s", r2),
    alpha = alpha,
    n = list(obs = length(y), units = length(y), treated = sum(w),
             strata = if (n_strata > 1L) n_strata else NA_integer_),
    call = call,
    no_vcov = paste("its two rows are one difference in means under two laws, and the",
                    "re-randomization law is not normal: its intervals come from the law's quantiles"),
    vars = vars,
    glance = list(r2 = r2, n_covariates = k, threshold = a, accept = prod(design$accept)),
    law = list(k = k, a = a, r2 = r2, se = unname(se))
  )
}

# Both laws' densities on the effect's scale, what plot(fit, "law") draws
# (tidy(fit, "law")): the re-randomization density is the derivative of its
# CDF on a fine grid, the complete-randomization one the normal's.
rem_law_table <- function(fit) {
  law <- fit$law
  tau <- fit$estimates$estimate[1]
  z <- seq(-4, 4, length.out = 321)
  dens <- diff(rem_cdf(z, law$k, law$a, law$r2)) / diff(z)
  mid <- z[-1]
  rbind(
    data.frame(law = "rerandomization", effect = tau + mid * law$se,
               density = dens / law$se, stringsAsFactors = FALSE),
    data.frame(law = "complete_randomization", effect = tau + mid * law$se,
               density = stats::dnorm(mid) / law$se, stringsAsFactors = FALSE)
  )
}

# Limits of both rows at any level: the law's quantiles, not the normal's.
rem_limits <- function(fit, est, level) {
  tail <- (1 - level) / 2
  law <- fit$law
  q <- ifelse(est$term == "rerandomization", rem_quantile(tail, law$k, law$a, law$r2),
              stats::qnorm(tail, lower.tail = FALSE))
  list(low = est$estimate - q * law$se, high = est$estimate + q * law$se)
}

#' @rdname rem_asymptotic
#' @param object A fit from `rem_asymptotic()`.
#' @param parm Rows (names or positions); both by default.
#' @param level Confidence level.
#' @export
confint.mkt_rem <- function(object, parm, level = 1 - object$alpha, ...) {
  check_dots(...)
  est <- select_terms(object$estimates, if (missing(parm)) NULL else parm)
  if (missing(level)) {
    # The stored limits, as confint.mkt_fit() gives them at the fit's level.
    a <- object$alpha / 2
    out <- cbind(est$conf.low, est$conf.high)
  } else {
    level <- check_probability(level, "level")
    lim <- rem_limits(object, est, level)
    a <- (1 - level) / 2
    out <- cbind(lim$low, lim$high)
  }
  dimnames(out) <- list(est$term, paste(format(100 * c(a, 1 - a), trim = TRUE,
                                               scientific = FALSE, digits = 3), "%"))
  out
}

# The re-randomization limit law ------------------------------------------

# Density of L_{k,a}, the first coordinate of D ~ N_k(0, I) given |D|^2 <= a:
# phi(x) P(chi2_{k-1} <= a - x^2) / P(chi2_k <= a) on |x| <= sqrt(a).
rem_l_density <- function(x, k, a) {
  inside <- x^2 <= a
  out <- numeric(length(x))
  rest <- if (k > 1) stats::pchisq(a - x[inside]^2, k - 1) else 1
  out[inside] <- stats::dnorm(x[inside]) * rest / stats::pchisq(a, k)
  out
}

# Upper tail P(X > q) of X = sqrt(1 - r2) eps + sqrt(r2) L_{k,a}. The law is
# symmetric; the upper tail keeps its precision for levels like 1 - 1e-300,
# where the CDF rounds to 1.
rem_tail <- function(q, k, a, r2) {
  vapply(q, function(qq) {
    if (!is.finite(a) || r2 <= 0) return(stats::pnorm(qq, lower.tail = FALSE))
    ra <- sqrt(a)
    if (r2 >= 1 - 1e-12) {
      if (qq <= -ra) return(1)
      if (qq >= ra) return(0)
      return(stats::integrate(rem_l_density, qq, ra, k = k, a = a,
                              rel.tol = 1e-10)$value)
    }
    f <- function(x) {
      stats::pnorm((qq - sqrt(r2) * x) / sqrt(1 - r2), lower.tail = FALSE) *
        rem_l_density(x, k, a)
    }
    stats::integrate(f, -ra, ra, rel.tol = 1e-10, subdivisions = 500L)$value
  }, numeric(1))
}

# CDF of the same law.
rem_cdf <- function(q, k, a, r2) rem_tail(-q, k, a, r2)

# The quantile with upper-tail probability `tail` (< 1/2). It lies between 0
# and the normal quantile (the accepted component only shrinks the spread);
# the root is found on the log of the tail, which stays well scaled to
# tails of 1e-300.
rem_quantile <- function(tail, k, a, r2) {
  z <- stats::qnorm(tail, lower.tail = FALSE)
  if (!is.finite(a) || r2 <= 0) return(z)
  if (r2 >= 1 - 1e-12 && tail <= 0) return(sqrt(a))
  g <- function(q) log(max(rem_tail(q, k, a, r2), .Machine$double.xmin)) - log(tail)
  if (g(z) >= 0) return(z)
  stats::uniroot(g, c(0, z), tol = 1e-10)$root
}
