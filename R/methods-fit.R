# Helpers shared by the methods of every fit whose `estimates` table has the
# broom columns (term, estimate, std.error, df): one confint() and one coef()
# for all of them.

fit_coef <- function(object) stats::setNames(object$estimates$estimate, object$estimates$term)

fit_confint <- function(object, parm, level) {
  est <- object$estimates
  if (missing(parm) || is.null(parm)) parm <- est$term
  if (is.numeric(parm)) parm <- est$term[parm]
  est <- est[match(parm, est$term), , drop = FALSE]
  crit <- stats::qt(1 - (1 - level) / 2, est$df)
  out <- cbind(est$estimate - crit * est$std.error, est$estimate + crit * est$std.error)
  pct <- paste(format(100 * c((1 - level) / 2, 1 - (1 - level) / 2), trim = TRUE,
                      scientific = FALSE, digits = 3), "%")
  dimnames(out) <- list(est$term, pct)
  out
}
