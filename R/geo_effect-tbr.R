# Time-based regression (Kerman, Wang and Vaver 2017) on the summed treated
# and control series of geo_totals().

geo_tbr <- function(geo, alpha, call = rlang::caller_env()) {
  Y <- geo$Y
  tr <- geo$treat == 1 & geo$keep
  co <- geo$treat == 0 & geo$keep
  idx <- c(geo$pre_idx, geo$post_idx)
  yt <- colSums(Y[tr, idx, drop = FALSE])
  yc <- colSums(Y[co, idx, drop = FALSE])
  n <- length(geo$pre_idx)
  m <- length(geo$post_idx)
  is_pre <- seq_along(idx) <= n
  if (n < 3L) {
    abort_mkt("too_few_pre_periods", c(
      "TBR fits a regression with two coefficients and a variance on the pre-period: it needs at least 3 pre periods; {.arg pre} has {n}.",
      i = "Widen {.arg pre}; the paper's designs use several weeks of history per test week."
    ), call = call)
  }
  if (stats::var(yc[is_pre]) == 0) {
    abort_mkt("no_variation", c(
      "The control series is constant over the pre-period, so TBR cannot regress the treated series on it.",
      i = "Check the outcome column and {.arg pre}."
    ), call = call)
  }
  fit <- tbr_fit(yt[is_pre], yc[is_pre], yt[!is_pre], yc[!is_pre])
  if (!is.finite(fit$sigma) || fit$sigma <= 0) {
    abort_mkt("no_variation", c(
      "In the pre-period the treated series is an exact linear function of the control series, so the counterfactual has no error variance.",
      i = "Check that the two groups hold different geos and that the outcome varies over time."
    ), call = call)
  }
  inc <- geo_row("incremental", fit$cumulative[m], fit$se_cumulative[m], n - 2L, alpha)
  counterfactual <- sum(fit$counterfactual)
  s_inc <- NA_real_
  if (geo$has_spend) {
    s_inc <- check_spend_delta(sum(geo$spend_delta[tr]), "the treated geos", call = call)
  }
  rows <- geo_rows(inc, s_inc, counterfactual, geo$has_spend)

  q <- stats::qt(1 - alpha / 2, n - 2L)
  cf_all <- fit$a + fit$b * yc
  band <- c(rep(NA_real_, n), q * fit$se_point)
  series <- data.frame(
    time = geo$times[idx], period = ifelse(is_pre, "pre", "test"),
    treated = yt, control = yc, counterfactual = cf_all,
    conf.low = cf_all - band, conf.high = cf_all + band,
    effect = yt - cf_all,
    cumulative = c(rep(NA_real_, n), fit$cumulative),
    cumulative.low = c(rep(NA_real_, n), fit$cumulative - q * fit$se_cumulative),
    cumulative.high = c(rep(NA_real_, n), fit$cumulative + q * fit$se_cumulative),
    stringsAsFactors = FALSE
  )
  rownames(series) <- NULL
  regression <- data.frame(term = c("(Intercept)", "control"), estimate = c(fit$a, fit$b),
                           std.error = sqrt(diag(fit$vcov)), stringsAsFactors = FALSE)
  list(
    estimates = rows$estimates, vcov = rows$vcov,
    inference = sprintf("TBR predictive variance (parameter uncertainty included), t(%d)", n - 2L),
    glance = list(pre_r2 = fit$r2, sigma = fit$sigma, n_treated_geos = sum(tr),
                  n_control_geos = sum(co)),
    tables = list(series = series, regression = regression)
  )
}

# OLS of the treated series y on the control series x over n pre periods,
# and the counterfactual, the cumulative effect and their predictive
# standard errors over the test periods (observed treated y_new, control
# x_new).
tbr_fit <- function(y, x, y_new, x_new) {
  n <- length(y)
  xbar <- mean(x)
  sxx <- sum((x - xbar)^2)
  b <- sum((x - xbar) * (y - mean(y))) / sxx
  a <- mean(y) - b * xbar
  res <- y - a - b * x
  sigma <- sqrt(sum(res^2) / (n - 2L))
  r2 <- if (sum((y - mean(y))^2) > 0) 1 - sum(res^2) / sum((y - mean(y))^2) else NA_real_
  cf <- a + b * x_new
  k <- seq_along(x_new)
  # Var of the sum of the first k counterfactual errors: k sigma^2 for the
  # new noise plus the variance of k a + b sum(x_new[1:k]).
  dev <- cumsum(x_new - xbar)
  var_cum <- sigma^2 * (k + k^2 / n + dev^2 / sxx)
  var_point <- sigma^2 * (1 + 1 / n + (x_new - xbar)^2 / sxx)
  vcov <- sigma^2 * matrix(c(1 / n + xbar^2 / sxx, -xbar / sxx, -xbar / sxx, 1 / sxx), 2L)
  list(a = a, b = b, sigma = sigma, r2 = r2, counterfactual = cf,
       se_cumulative = sqrt(var_cum), se_point = sqrt(var_point), vcov = vcov,
       cumulative = cumsum(y_new - cf))
}
