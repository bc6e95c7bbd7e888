# Geo-based regression (Vaver and Koehler 2011) on the per-geo totals of
# geo_totals(): weighted least squares of the test-window total on the
# pre-period total and the treatment indicator (or the incremental spend),
# with weights one over the pre-period total.

geo_gbr <- function(geo, alpha, call = rlang::caller_env()) {
  keep <- geo$keep
  y <- geo$post_total[keep]
  x <- geo$pre_total[keep]
  treat <- geo$treat[keep]
  if (any(x <= 0)) {
    bad <- geo$ids[keep][x <= 0]
    abort_mkt("bad_weights", c(
      "GBR weights each geo by one over its pre-period outcome total, which is zero or negative for {length(bad)} geo{?s}: {.val {utils::head(bad, 5)}}.",
      i = "Drop those geos, or widen {.arg pre} so that every geo has a positive pre-period total."
    ), call = call)
  }
  M <- length(y)
  if (M < 4L) {
    abort_mkt("too_few_clusters", c(
      "GBR fits three coefficients and a variance across geos: it needs at least 4 geos; there are {M}.",
      i = "Use {.code method = \"tbr\"}, which works on the time series of the two groups."
    ), call = call)
  }
  w <- 1 / x
  has_spend <- geo$has_spend
  z <- if (has_spend) geo$spend_delta[keep] else treat
  X <- cbind(`(Intercept)` = 1, pre = x, z = z)
  colnames(X)[3] <- if (has_spend) "spend_incremental" else "treatment"
  fit <- gbr_wls(X, y, w)
  if (is.null(fit)) {
    abort_mkt("collinear", c(
      "The GBR regressors are collinear: {if (has_spend) 'incremental spend' else 'treatment'} is a linear function of the pre-period outcome across geos.",
      i = if (has_spend) "Check the {.arg spend} column: its change must differ between treated and control geos." else
        "Check the treatment column and the windows."
    ), call = call)
  }
  df <- M - 3L
  se <- sqrt(diag(fit$vcov))
  n_treated <- sum(treat)
  beta <- fit$coefficients[[3]]
  if (has_spend) {
    s_inc <- check_spend_delta(sum(z[treat == 1]), "the treated geos", call = call)
    # The incremental outcome is the iROAS coefficient scaled by the known
    # incremental spend, so its interval is the coefficient's scaled.
    ir <- geo_row("iroas", beta, se[[3]], df, alpha)
    lim <- c(ir$conf.low, ir$conf.high) * s_inc
    inc <- geo_row("incremental", beta * s_inc, se[[3]] * abs(s_inc), df, alpha)
    inc$conf.low <- min(lim)
    inc$conf.high <- max(lim)
  } else {
    s_inc <- NA_real_
    inc <- geo_row("incremental", beta * n_treated, se[[3]] * n_treated, df, alpha)
  }
  counterfactual <- sum(y[treat == 1]) - inc$estimate
  rows <- geo_rows(inc, s_inc, counterfactual, has_spend)
  regression <- data.frame(term = colnames(X), estimate = unname(fit$coefficients),
                           std.error = unname(se), stringsAsFactors = FALSE)
  fitted_control <- fit$coefficients[[1]] + fit$coefficients[[2]] * x
  list(
    estimates = rows$estimates, vcov = rows$vcov,
    inference = sprintf("WLS with weights 1 / pre-period total, classical variance, t(%d)", df),
    glance = list(sigma = fit$sigma, n_treated_geos = n_treated,
                  n_control_geos = M - n_treated),
    tables = list(regression = regression,
                  fitted = data.frame(id = geo$ids[keep], treated = treat, pre = x, test = y,
                                      z = z, weight = w, baseline = fitted_control,
                                      fitted = fit$fitted, stringsAsFactors = FALSE))
  )
}

# Weighted least squares with the classical variance sigma^2 (X'WX)^{-1},
# sigma^2 = sum(w e^2) / (n - p); NULL when X is rank deficient. Columns are
# scaled before the QR so that totals of very different magnitudes (sales
# and spend) do not fool the rank test.
gbr_wls <- function(X, y, w) {
  sw <- sqrt(w)
  sc <- sqrt(colSums(X^2))
  Xs <- sweep(X * sw, 2, sc, "/")
  qx <- qr(Xs)
  if (qx$rank < ncol(X)) return(NULL)
  coef_s <- qr.coef(qx, y * sw)
  coef <- coef_s / sc
  fitted <- as.vector(X %*% coef)
  e <- y - fitted
  n <- length(y)
  sigma2 <- sum(w * e^2) / (n - ncol(X))
  R_inv <- backsolve(qr.R(qx), diag(ncol(X)))
  v <- sigma2 * (R_inv %*% t(R_inv)) / outer(sc, sc)
  dimnames(v) <- list(colnames(X), colnames(X))
  names(coef) <- colnames(X)
  list(coefficients = coef, vcov = v, sigma = sqrt(sigma2), fitted = fitted)
}
