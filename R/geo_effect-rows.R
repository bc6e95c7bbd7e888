# The estimates rows shared by the three geo-test estimators of
# geo_effect(): a t row, the iROAS as the incremental outcome over a known
# incremental spend, and the check that the spend is not zero.

# The incremental spend that divides an incremental outcome into an iROAS;
# zero is refused.
check_spend_delta <- function(value, what, call = rlang::caller_env()) {
  if (!is.finite(value) || abs(value) < sqrt(.Machine$double.eps)) {
    abort_mkt("bad_spend", c(
      "The incremental spend of {what} is zero, so there is no iROAS.",
      i = "Check the {.arg spend} column: the treated geos' spend must change in the test window; leave {.arg spend} out to estimate the incremental outcome only."
    ), call = call)
  }
  value
}

# An estimates row on a t reference.
geo_row <- function(term, estimate, se, df, alpha) {
  q <- stats::qt(1 - alpha / 2, df)
  data.frame(term = term, estimate = estimate, std.error = se,
             statistic = estimate / se, p.value = 2 * stats::pt(-abs(estimate / se), df),
             conf.low = estimate - q * se, conf.high = estimate + q * se, df = df,
             stringsAsFactors = FALSE)
}

# The fit's one row: the incremental outcome or, with spend, the iROAS (the
# incremental outcome divided by the incremental spend, taken as known: an
# interval flips with a negative spend), with the incremental outcome, its
# interval and its lift as columns either way.
geo_rows <- function(inc, spend_incremental, counterfactual, has_spend) {
  row <- inc
  if (has_spend) {
    s <- spend_incremental
    row$term <- "iroas"
    row$estimate <- inc$estimate / s
    row$std.error <- inc$std.error / abs(s)
    lim <- c(inc$conf.low, inc$conf.high) / s
    row$conf.low <- min(lim)
    row$conf.high <- max(lim)
  }
  row$incremental <- inc$estimate
  row$incremental.low <- inc$conf.low
  row$incremental.high <- inc$conf.high
  row$lift_pct <- 100 * inc$estimate / counterfactual
  row$spend_incremental <- if (has_spend) spend_incremental else NA_real_
  list(estimates = row, vcov = matrix(row$std.error^2, 1L, 1L))
}
