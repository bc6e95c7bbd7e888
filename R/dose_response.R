#' Dose-response with unit and time fixed effects, and continuous DiD
#'
#' Estimates how an outcome responds to the intensity of a treatment (GRPs,
#' depth of discount, spend) on a panel. Two estimators answer two
#' questions under two assumptions.
#'
#' @section Two-way fixed effects (`estimator = "twfe"`):
#' Regresses the outcome on the dose (or a binned or spline curve of it)
#' after removing unit and time fixed effects, with clustered (CR1) standard
#' errors. Identification is conditional unconfoundedness of the dose's
#' changes within units given the fixed effects (and covariates). With
#' `shape = "linear"` `coef()` is one slope and equals
#' `fixest::feols(y ~ dose | unit + time, cluster = ~unit)`. `"bins"` puts
#' positive doses into `n_bins` quantile bins (reference: dose 0 when the
#' data have zeros, else the lowest bin); `"spline"` uses a natural cubic
#' spline with `df` degrees of freedom, centred at the reference dose (0, or
#' the smallest dose). `tidy(fit, "curve")` gives the effect of moving from
#' the reference dose to each dose, with delta-method intervals.
#'
#' @section Continuous DiD (`estimator = "cgbs"`):
#' For a design in which no unit is dosed before a common date, each dosed
#' unit keeps one dose afterwards, and some units stay at dose 0 (the
#' untreated group), Callaway, Goodman-Bacon and Sant'Anna (2024) define
#' \eqn{ATT(d) = E[Y_{post}(d) - Y_{post}(0) | D = d]}, identified under
#' parallel trends by \eqn{E[\Delta Y | D = d] - E[\Delta Y | D = 0]}, and
#' the average causal response on the treated \eqn{ACRT(d) = ATT'(d)}, which
#' needs the stronger assumption that trends are parallel across all doses
#' (strong parallel trends). Here \eqn{\Delta Y} is each unit's mean outcome
#' after minus before. The curve is fitted on dosed units by least squares
#' on the `shape` basis (a cubic B-spline with `df` degrees of freedom for
#' `"spline"`; ACRT is not reported for `"bins"`), with HC2 standard errors
#' plus the sampling variance of the untreated mean. `tidy()` gives the
#' overall averages: `ATT` (the mean of \eqn{ATT(D)} over dosed units) and
#' `ACRT` (the mean of \eqn{ACRT(D)} over dosed units); `glance()` puts the
#' TWFE slope beside them.
#'
#' @section What TWFE on doses estimates:
#' In the same design, the TWFE slope is a weighted average of
#' \eqn{ACRT(d)} with weights proportional to \eqn{E[(D - E D) 1\{D \ge d\}]}
#' (mass in the middle of the dose distribution, none at its tails), not
#' the dose distribution itself; and with parallel trends only (not strong)
#' it adds selection bias from units choosing their dose. When effects are
#' heterogeneous in the dose it differs from `ACRT`. `estimator = "twfe"` on
#' such a design warns with class `mktcausal_warning_twfe_dose`. A `"cgbs"`
#' fit holds these weights in `twfe_weights` (columns `dose`, `weight`, and
#' `dose_density`, a kernel density of the dosed units' doses, for
#' comparison); `tidy(fit, "twfe_weights")` returns them.
#'
#' @param formula `outcome ~ dose + covariates | unit + time`.
#' @param data A long data frame, tibble or data.table.
#' @param shape `"linear"` (default), `"bins"` or `"spline"`.
#' @param estimator `"twfe"` (default) or `"cgbs"`; see the sections.
#' @param cluster `NULL` (default) clusters by unit; a column name, or
#'   `FALSE` for HC1 (TWFE only).
#' @param weights Optional name of a column of positive weights (TWFE only).
#' @param n_bins Number of quantile bins of positive doses for `"bins"`.
#' @param df Degrees of freedom of the spline for `"spline"`.
#' @param alpha Level for confidence intervals.
#' @param ... Unused.
#' @return An object of class `c("mkt_dose_response", "mkt_fit")` with
#'   `estimates` (see [tidy()][continuous-methods]), `vcov`, `curve` (the
#'   table of `tidy(fit, "curve")`: `dose`, `estimand`, `estimate`,
#'   `std.error`, `conf.low`, `conf.high`), `estimator`, `shape` and counts.
#' @references Callaway, B., Goodman-Bacon, A. and Sant'Anna, P. H. C.
#'   (2024). Difference-in-differences with a continuous treatment. NBER
#'   Working Paper 32117.
#' @examples
#' set.seed(1)
#' d <- expand.grid(geo = 1:200, week = 1:4)
#' dose <- ifelse(runif(200) < 0.3, 0, runif(200))
#' d$grp <- ifelse(d$week >= 3, dose[d$geo], 0)
#' d$sales <- d$geo / 50 + d$week + d$grp^2 + rnorm(nrow(d), sd = 0.2)
#' fit <- dose_response(sales ~ grp | geo + week, d, estimator = "cgbs",
#'                      shape = "spline")
#' tidy(fit)
#' plot(fit)
#' @export
dose_response <- function(formula, data, shape = c("linear", "bins", "spline"),
                          estimator = c("twfe", "cgbs"), cluster = NULL,
                          weights = NULL, n_bins = 5, df = 4, alpha = 0.05, ...) {
  shape <- match.arg(shape)
  estimator <- match.arg(estimator)
  alpha <- check_alpha(alpha)
  n_bins <- check_count(n_bins, "n_bins", min = 2)
  df <- check_count(df, "df", min = 1)
  panel <- mkt_panel(formula, data)
  if (is.null(panel$D)) {
    abort_mkt("bad_formula", c(
      "{.fn dose_response} needs a dose: the first term after {.code ~}.",
      i = "Write {.code sales ~ grp | geo + week}."
    ))
  }
  cells <- panel_cells(panel)
  design <- cgbs_design(panel)
  if (estimator == "cgbs") {
    return(dose_cgbs(panel, design, shape, n_bins, df, alpha))
  }
  dose_twfe(panel, cells, data, design, shape, cluster, weights, n_bins, df, alpha)
}

# Is the panel a continuous DiD design (common start, constant dose after,
# an untreated group)? Returns the first dosed period and each unit's dose,
# or the reason it is not.
cgbs_design <- function(panel) {
  D <- panel$D
  dosed <- !is.na(D) & D != 0
  if (!any(dosed)) return(list(ok = FALSE, why = "no unit is ever dosed"))
  first <- min(which(colSums(dosed) > 0))
  if (first == 1L) return(list(ok = FALSE, why = "units are dosed in the first period"))
  post <- seq.int(first, ncol(D))
  dose <- apply(D[, post, drop = FALSE], 1, function(r) {
    r <- r[!is.na(r)]
    if (!length(r)) return(NA_real_)
    if (max(r) - min(r) > 1e-12 * max(1, abs(r))) return(NaN)
    r[1]
  })
  if (any(is.nan(dose))) return(list(ok = FALSE, why = "doses change after the start"))
  if (!any(dose == 0, na.rm = TRUE)) return(list(ok = FALSE, why = "no unit stays at dose 0"))
  list(ok = TRUE, first = first, dose = dose)
}

dose_twfe <- function(panel, cells, data, design, shape, cluster, weights, n_bins,
                      df, alpha, call = rlang::caller_env()) {
  covs <- panel$vars$covariates
  keep <- stats::complete.cases(cells$X[, covs, drop = FALSE])
  w <- check_weights_column(weights, panel, data, cells, call = call)
  if (!is.null(w)) w <- w[keep]
  fe <- list(unit = cells$unit[keep], time = cells$time[keep])
  cl <- fe_cluster(cluster, panel, data, cells, keep, call = call)
  dose <- cells$d[keep]
  check_dose_variation(dose, fe$unit, panel$vars$treatment, call = call)
  basis <- dose_basis(dose, shape, n_bins, df, panel$vars$treatment)
  B <- basis$B(dose)
  M <- within_transform(cbind(y = cells$y[keep], B, cells$X[keep, covs, drop = FALSE]),
                        fe, weights = w, call = call)
  X <- M[, -1, drop = FALSE]
  flat <- apply(abs(X[, colnames(B), drop = FALSE]), 2, max) < 1e-10
  if (any(flat)) {
    abort_mkt("no_variation", c(
      "The dose {.field {panel$vars$treatment}} has no within-unit variation in {sum(flat)} of its {shape} terms ({.field {colnames(B)[flat]}}).",
      i = "Use fewer bins or spline degrees of freedom."
    ), call = call)
  }
  se_type <- if (is.null(cl)) "HC1" else "CR1"
  fit <- ols_robust(X, M[, "y"], cluster = cl, weights = w, se_type = se_type,
                    n_absorbed = fe_absorbed(fe, cl), call = call)
  terms <- colnames(B)
  est <- fe_estimates(fit$coefficients, fit$vcov, fit$df, alpha, terms = terms)
  V <- fit$vcov[terms, terms, drop = FALSE]
  grid <- basis$grid
  G <- basis$B(grid) - matrix(basis$B(basis$reference), length(grid), length(terms),
                              byrow = TRUE)
  curve <- curve_table(grid, "effect", as.vector(G %*% fit$coefficients[terms]),
                       sqrt(pmax(rowSums((G %*% V) * G), 0)), fit$df[[1]], alpha)
  if (design$ok) {
    warn_mkt("twfe_dose", c(
      "TWFE on doses is a weighted average of the causal responses ACRT(d), weighted towards the middle of the dose distribution, plus selection bias unless trends are parallel across all doses.",
      i = "This panel has an untreated group and a common start: {.code estimator = \"cgbs\"} estimates ATT(d) and ACRT(d) (Callaway, Goodman-Bacon and Sant'Anna 2024)."
    ))
  }
  structure(list(
    estimates = est, vcov = V, curve = curve, estimator = "twfe", shape = shape,
    reference = basis$reference, alpha = alpha, n = nrow(X),
    n_units = length(unique(fe$unit)), n_periods = length(unique(fe$time)),
    n_clusters = fit$n_clusters, se_type = se_type, panel = panel,
    twfe_slope = NA_real_
  ), class = c("mkt_dose_response", "mkt_fit"))
}

check_dose_variation <- function(dose, unit, name, call = rlang::caller_env()) {
  spread <- tapply(dose, unit, function(x) max(x) - min(x))
  if (all(spread <= 1e-12 * max(1, abs(dose)))) {
    abort_mkt("no_variation", c(
      "The dose {.field {name}} never changes within a unit, so unit fixed effects absorb it.",
      i = "A dose fixed per unit needs a before/after contrast: set it to 0 before the campaign, or use {.fn exposure_did} for a common shock with unit-level exposure."
    ), call = call)
  }
  invisible(TRUE)
}

# The dose terms of each shape as a function of the dose, the reference dose
# at which the curve is zero, and a grid over the observed doses for curves.
dose_basis <- function(dose, shape, n_bins, df, name) {
  has_zero <- any(dose == 0)
  reference <- if (has_zero) 0 else min(dose)
  rng <- range(dose)
  grid <- seq(rng[1], rng[2], length.out = 101)
  if (shape == "linear") {
    B <- function(x) {
      out <- cbind(x)
      colnames(out) <- name
      out
    }
    return(list(B = B, reference = reference, grid = grid))
  }
  if (shape == "bins") {
    pos <- dose[dose > 0]
    if (!has_zero) pos <- dose
    breaks <- unique(stats::quantile(pos, seq(0, 1, length.out = n_bins + 1), names = FALSE))
    lab <- sprintf("%s(%s,%s]", name, signif(breaks[-length(breaks)], 3), signif(breaks[-1], 3))
    bin_of <- function(x) findInterval(x, breaks, rightmost.closed = TRUE, left.open = TRUE)
    nb <- length(breaks) - 1L
    B <- function(x) {
      b <- pmin(pmax(bin_of(x), 1L), nb)
      out <- outer(b, seq_len(nb), "==") * 1
      if (has_zero) out[x == 0, ] <- 0
      out <- if (has_zero) out else out[, -1, drop = FALSE]
      colnames(out) <- if (has_zero) lab else lab[-1]
      out
    }
    mids <- (breaks[-1] + breaks[-length(breaks)]) / 2
    return(list(B = B, reference = reference,
                grid = sort(unique(c(if (has_zero) 0, mids)))))
  }
  knots <- stats::quantile(dose, seq(0, 1, length.out = df + 1)[-c(1, df + 1)], names = FALSE)
  knots <- unique(knots[knots > rng[1] & knots < rng[2]])
  B <- function(x) {
    out <- splines::ns(x, knots = knots, Boundary.knots = rng)
    out <- matrix(out, nrow = length(x))
    colnames(out) <- paste0("dose_ns", seq_len(ncol(out)))
    out
  }
  list(B = B, reference = reference, grid = grid)
}

curve_table <- function(dose, estimand, estimate, se, df, alpha) {
  crit <- stats::qt(1 - alpha / 2, df)
  data.frame(dose = dose, estimand = estimand, estimate = estimate, std.error = se,
             conf.low = estimate - crit * se, conf.high = estimate + crit * se,
             stringsAsFactors = FALSE)
}

# Continuous DiD: each unit's change (mean after minus mean before), a curve
# of the change on the dose among dosed units, minus the untreated mean.
dose_cgbs <- function(panel, design, shape, n_bins, df, alpha,
                      call = rlang::caller_env()) {
  if (!design$ok) {
    abort_mkt("not_continuous_did", c(
      "{.code estimator = \"cgbs\"} needs a continuous DiD design, but {design$why}.",
      i = "It needs periods with no dose for anyone, then one dose per unit from a common start, and some units left at dose 0; otherwise use {.code estimator = \"twfe\"}."
    ), call = call)
  }
  if (length(panel$vars$covariates)) {
    abort_mkt("bad_argument", c(
      "{.code estimator = \"cgbs\"} takes no covariates; the formula has {.field {panel$vars$covariates}}.",
      i = "Remove them, or use {.code estimator = \"twfe\"} or {.fn dml} to adjust for covariates."
    ), call = call)
  }
  Y <- panel$Y
  pre <- seq_len(design$first - 1L)
  post <- seq.int(design$first, ncol(Y))
  change <- rowMeans(Y[, post, drop = FALSE], na.rm = TRUE) -
    rowMeans(Y[, pre, drop = FALSE], na.rm = TRUE)
  ok <- is.finite(change) & !is.na(design$dose)
  dose <- design$dose[ok]
  change <- change[ok]
  treated <- dose > 0
  n0 <- sum(!treated)
  n1 <- sum(treated)
  if (n0 < 2L || n1 < 4L) {
    abort_mkt("not_continuous_did", c(
      "Continuous DiD needs at least 2 untreated and 4 dosed units with outcomes before and after; there are {n0} and {n1}.",
      i = "Use {.code estimator = \"twfe\"} on small designs."
    ), call = call)
  }
  m0 <- mean(change[!treated])
  v0 <- stats::var(change[!treated]) / n0
  d1 <- dose[treated]
  y1 <- change[treated]
  rng <- range(d1)
  if (shape == "linear") {
    psi <- function(x) cbind(`(Intercept)` = 1, dose = x)
    dpsi <- function(x) cbind(0, rep(1, length(x)))
  } else if (shape == "spline") {
    knots <- stats::quantile(d1, seq(0, 1, length.out = df + 1)[-c(1, df + 1)], names = FALSE)
    knots <- unique(knots[knots > rng[1] & knots < rng[2]])
    all_knots <- c(rep(rng[1], 4), knots, rep(rng[2], 4))
    psi <- function(x) {
      out <- splines::splineDesign(all_knots, x, ord = 4, outer.ok = TRUE)
      colnames(out) <- paste0("bs", seq_len(ncol(out)))
      out
    }
    dpsi <- function(x) splines::splineDesign(all_knots, x, ord = 4, derivs = 1, outer.ok = TRUE)
  } else {
    breaks <- unique(stats::quantile(d1, seq(0, 1, length.out = n_bins + 1), names = FALSE))
    nb <- length(breaks) - 1L
    psi <- function(x) {
      b <- pmin(pmax(findInterval(x, breaks, rightmost.closed = TRUE, left.open = TRUE), 1L), nb)
      out <- outer(b, seq_len(nb), "==") * 1
      colnames(out) <- sprintf("bin%d", seq_len(nb))
      out
    }
    dpsi <- NULL
  }
  fit <- ols_robust(psi(d1), y1, call = call)
  beta <- fit$coefficients
  V <- fit$vcov
  dfree <- fit$df[[1]]
  grid <- if (shape == "bins") {
    (breaks[-1] + breaks[-length(breaks)]) / 2
  } else seq(rng[1], rng[2], length.out = 101)
  P <- psi(grid)
  att <- as.vector(P %*% beta) - m0
  att_se <- sqrt(rowSums((P %*% V) * P) + v0)
  curve <- curve_table(grid, "ATT", att, att_se, dfree, alpha)
  acrt_bar <- NA_real_
  acrt_se <- NA_real_
  if (!is.null(dpsi)) {
    dP <- dpsi(grid)
    curve <- rbind(curve, curve_table(grid, "ACRT", as.vector(dP %*% beta),
                                      sqrt(pmax(rowSums((dP %*% V) * dP), 0)), dfree, alpha))
    dbar <- colMeans(dpsi(d1))
    acrt_bar <- sum(dbar * beta)
    acrt_se <- sqrt(as.numeric(t(dbar) %*% V %*% dbar))
  }
  att_bar <- mean(y1) - m0
  att_bar_se <- sqrt(stats::var(y1) / n1 + v0)
  est <- rbind(
    fe_estimates(c(ATT = att_bar), matrix(att_bar_se^2, 1, 1, dimnames = list("ATT", "ATT")),
                 n1 + n0 - 2, alpha),
    if (!is.null(dpsi)) fe_estimates(c(ACRT = acrt_bar),
                                     matrix(acrt_se^2, 1, 1, dimnames = list("ACRT", "ACRT")),
                                     dfree, alpha)
  )
  V_out <- diag(est$std.error^2, nrow(est))
  dimnames(V_out) <- list(est$term, est$term)
  twfe <- stats::cov(dose, change) / stats::var(dose)
  # What TWFE weights: w(l) = E[(D - E D) 1{D >= l}] / Var(D) over all units
  # (dosed and untreated), which integrates to one over [0, max dose].
  wgrid <- seq(0, rng[2], length.out = 101)
  dc <- dose - mean(dose)
  vpop <- mean(dc^2)
  weights_tab <- data.frame(dose = wgrid, weight = vapply(wgrid, function(l) mean(dc * (dose >= l)),
                                                          numeric(1)) / vpop,
                            dose_density = stats::approx(stats::density(d1, from = 0, to = rng[2], n = 101),
                                                         xout = wgrid)$y)
  structure(list(
    estimates = est, vcov = V_out, curve = curve, estimator = "cgbs", shape = shape,
    reference = 0, alpha = alpha, n = length(dose), n_units = length(dose),
    n_periods = ncol(Y), n_untreated = n0, n_treated = n1, n_clusters = length(dose),
    se_type = "HC2", twfe_slope = twfe, twfe_weights = weights_tab, panel = panel
  ), class = c("mkt_dose_response", "mkt_fit"))
}
