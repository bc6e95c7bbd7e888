#' Dose-response with unit and time fixed effects, and continuous DiD
#'
#' Estimates how an outcome responds to the intensity of a treatment (GRPs,
#' depth of discount, spend) on a panel. Two estimators answer two
#' questions under two assumptions.
#'
#' @section Two-way fixed effects (`method = "twfe"`):
#' Regresses the outcome on the dose (or a binned or spline curve of it)
#' after removing unit and time fixed effects, with clustered (CR1) standard
#' errors. Identification is conditional unconfoundedness of the dose's
#' changes within units given the fixed effects (and covariates). With
#' `shape = "linear"` `coef()` is one slope and equals
#' `fixest::feols(y ~ dose | unit + time, cluster = ~unit)`. `"bins"` puts
#' positive doses into `n_bins` quantile bins (reference: dose 0 when the
#' data have zeros, else the lowest bin); `"spline"` uses a natural cubic
#' spline with `spline_df` degrees of freedom, centred at the reference dose (0, or
#' the smallest dose). `tidy(fit, "curve")` gives the effect of moving from
#' the reference dose to each dose, with delta-method intervals.
#'
#' @section Continuous DiD (`method = "cgbs"`):
#' For a design in which no unit is dosed before a common date, each dosed
#' unit keeps one dose afterwards, and some units stay at dose 0 (the
#' untreated group), Callaway, Goodman-Bacon and Sant'Anna (2024) define
#' \eqn{ATT(d) = E[Y_{post}(d) - Y_{post}(0) | D = d]}, identified under
#' parallel trends by \eqn{E[\Delta Y | D = d] - E[\Delta Y | D = 0]}, and
#' the average causal response on the treated \eqn{ACRT(d) = ATT'(d)}, which
#' needs the stronger assumption that trends are parallel across all doses
#' (strong parallel trends). Here \eqn{\Delta Y} is each unit's mean outcome
#' after minus before. The curve is fitted on dosed units by least squares
#' on the `shape` basis (a cubic B-spline with `spline_df` degrees of freedom for
#' `"spline"`; ACRT is not reported for `"bins"`), with HC2 standard errors
#' plus the sampling variance of the untreated mean. `tidy()` gives the
#' overall averages: `ATT` (the mean of \eqn{ATT(D)} over dosed units) and
#' `ACRT` (the mean of \eqn{ACRT(D)} over dosed units), each with its own
#' standard error (they come from separate regressions, so the fit has no
#' joint covariance: `vcov()` says so); `glance()` puts the TWFE slope
#' beside them. This estimator takes no covariates, weights or clusters.
#'
#' @section What TWFE on doses estimates:
#' In the same design, the TWFE slope is a weighted average of
#' \eqn{ACRT(d)} with weights proportional to \eqn{E[(D - E D) 1\{D \ge d\}]}
#' (mass in the middle of the dose distribution, none at its tails), not
#' the dose distribution itself; and with parallel trends only (not strong)
#' it adds selection bias from units choosing their dose. When effects are
#' heterogeneous in the dose it differs from `ACRT`. `method = "twfe"` on
#' such a design warns with class `mktcausal_warning_twfe_dose`. A `"cgbs"`
#' fit holds these weights in `tidy(fit, "twfe_weights")` (columns `dose`,
#' `weight`, and `dose_density`, a kernel density of the dosed units' doses,
#' for comparison).
#'
#' @param formula `outcome ~ dose + covariates | unit + time`, or a
#'   [mkt_panel()].
#' @param data A long data frame, tibble or data.table (`NULL` when
#'   `formula` is a panel).
#' @param method `"twfe"` (default) or `"cgbs"`; see the sections.
#' @param shape `"linear"` (default), `"bins"` or `"spline"`.
#' @param n_bins Number of quantile bins of positive doses for `"bins"`.
#' @param spline_df Degrees of freedom of the spline for `"spline"`.
#' @param inference For `"twfe"`: `"cluster"` (default, CR1 clustered by
#'   `cluster`) or `"heteroskedastic"` (HC1).
#' @param cluster Name of the column of standard-error clusters; `NULL`
#'   (default) clusters by the unit.
#' @param weights Optional name of a column of non-negative weights
#'   (`"twfe"` only); cells of weight zero are left out.
#' @param alpha Level for confidence intervals.
#' @param ... Must be empty.
#' @return An object of class `c("mkt_dose_response", "mkt_fit")` (see
#'   [mkt_fit]): the dose terms (`"twfe"`) or `ATT` and `ACRT` (`"cgbs"`);
#'   `tidy(fit, "curve")` gives the curve (`dose`, `estimand`, `estimate`,
#'   `std.error`, `conf.low`, `conf.high`) that `plot()` draws.
#' @references Callaway, B., Goodman-Bacon, A. and Sant'Anna, P. H. C.
#'   (2024). Difference-in-differences with a continuous treatment. NBER
#'   Working Paper 32117.
#' @examples
#' set.seed(1)
#' d <- expand.grid(geo = 1:200, week = 1:4)
#' dose <- ifelse(runif(200) < 0.3, 0, runif(200))
#' d$grp <- ifelse(d$week >= 3, dose[d$geo], 0)
#' d$sales <- d$geo / 50 + d$week + d$grp^2 + rnorm(nrow(d), sd = 0.2)
#' fit <- dose_response(sales ~ grp | geo + week, d, method = "cgbs",
#'                      shape = "spline")
#' fit
#' tidy(fit, "curve")[1:3, ]
#' plot(fit)
#' @export
dose_response <- function(formula, data, method = c("twfe", "cgbs"),
                          shape = c("linear", "bins", "spline"), n_bins = 5, spline_df = 4,
                          inference = c("cluster", "heteroskedastic"), cluster = NULL,
                          weights = NULL, alpha = 0.05, ...) {
  check_dots(...)
  inference_given <- !missing(inference)
  method <- check_choice(method)
  shape <- check_choice(shape)
  inference <- check_choice(inference)
  check_fe_inference(inference, cluster)
  alpha <- check_alpha(alpha)
  n_bins <- check_count(n_bins, "n_bins", min = 2)
  spline_df <- check_count(spline_df, "spline_df", min = 1)
  if (method == "cgbs" && (!is.null(cluster) || !is.null(weights) || inference_given)) {
    abort_mkt("inference_unsupported", c(
      "{.code method = \"cgbs\"} has its own inference (HC2 over units) and takes no {.arg inference}, {.arg cluster} or {.arg weights}.",
      i = "Drop them, or use {.code method = \"twfe\"}."
    ))
  }
  panel <- as_panel(formula, data, cluster = if (inference == "cluster") cluster,
                    weights = weights)
  dose_response_fit(panel, method = method, shape = shape, n_bins = n_bins,
                    spline_df = spline_df,
                    inference = inference, cluster = cluster, alpha = alpha,
                    call = match.call())
}

# The core: a panel in, a fit out.
dose_response_fit <- function(panel, method = "twfe", shape = "linear", n_bins = 5L,
                              spline_df = 4L,
                              inference = "cluster", cluster = NULL, alpha = 0.05,
                              call = NULL) {
  if (is.null(panel$D)) {
    abort_mkt("bad_formula", c(
      "{.fn dose_response} needs a dose: the first term after {.code ~}.",
      i = "Write {.code sales ~ grp | geo + week}."
    ))
  }
  design <- cgbs_design(panel)
  if (method == "cgbs") {
    return(dose_cgbs(panel, design, shape, n_bins, spline_df, alpha, call))
  }
  dose_twfe(panel, design, shape, inference, cluster, n_bins, spline_df, alpha, call)
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

dose_twfe <- function(panel, design, shape, inference, cluster, n_bins, df, alpha,
                      call = NULL) {
  covs <- panel$vars$covariates
  name <- panel$vars$treatment
  # The cells used: observed, covariates known, positive weight.
  keep <- panel$observed
  for (x in panel$X) keep <- keep & !is.na(x)
  if (!is.null(panel$weights)) keep <- keep & panel$weights > 0
  cells <- which(keep)
  dose <- panel$D[cells]
  check_dose_variation(panel$D, keep, name)
  basis <- dose_basis(dose, shape, n_bins, df, name)
  B <- basis$B(dose)
  grid_of <- function(v) {
    m <- matrix(NA_real_, nrow(keep), ncol(keep))
    m[cells] <- v
    m
  }
  B_cols <- if (shape == "linear") stats::setNames(list(panel$D), name) else
    stats::setNames(lapply(seq_len(ncol(B)), function(k) grid_of(B[, k])), colnames(B))
  clustered <- inference == "cluster"
  # The outcome on a scale near 1 (see outcome_scale()), scaled back below.
  s <- outcome_scale(panel$Y[keep])
  Ys <- panel$Y / s
  fg <- fe_grid(panel, c(list(.outcome = Ys), B_cols, panel$X), weights = panel$weights,
                cluster = fe_cluster_codes(panel, inference, cluster))
  mom <- fe_moments(fg, clustered, by = cluster %||% panel$vars$unit)
  fe_check_outcome(mom, ".outcome", Ys, panel$vars$outcome, panel$weights)
  terms <- colnames(B)
  flat <- sqrt(pmax(diag(mom$gram)[terms], 0) / mom$n) <
    1e-10 * pmax(1, sqrt(colMeans(B^2)))
  if (any(flat)) {
    abort_mkt("no_variation", c(
      "The dose {.field {name}} has no within-unit variation in {sum(flat)} of its {shape} terms ({.field {terms[flat]}}).",
      i = "Use fewer bins or spline degrees of freedom."
    ))
  }
  fit <- fe_ols(mom, ".outcome", c(terms, covs), fe_grid_absorbed(fg, clustered))
  est <- unscale_table(fe_estimates(fit$coefficients, fit$vcov, fit$df, alpha, terms = terms), s)
  V <- fit$vcov[terms, terms, drop = FALSE]
  grid <- basis$grid
  G <- basis$B(grid) - matrix(basis$B(basis$reference), length(grid), length(terms),
                              byrow = TRUE)
  curve <- unscale_table(curve_table(grid, "effect", as.vector(G %*% fit$coefficients[terms]),
                                     sqrt(pmax(rowSums((G %*% V) * G), 0)), fit$df[[1]], alpha),
                         s)
  V <- unscale_variance(V, s)
  if (design$ok) {
    warn_mkt("twfe_dose", c(
      "TWFE on doses is a weighted average of the causal responses ACRT(d), weighted towards the middle of the dose distribution, plus selection bias unless trends are parallel across all doses.",
      i = "This panel has an untreated group and a common start: {.code method = \"cgbs\"} estimates ATT(d) and ACRT(d) (Callaway, Goodman-Bacon and Sant'Anna 2024)."
    ))
  }
  dosed <- rowSums(keep & !is.na(panel$D) & panel$D != 0) > 0
  new_fit(
    "dose_response", estimates = est,
    method = sprintf("Dose-response with unit and time fixed effects (%s)", shape),
    estimand = if (shape == "linear") {
      sprintf("Change in %s per unit of %s within units, net of period effects",
              panel$vars$outcome, name)
    } else {
      sprintf("Effect on %s of each %s term relative to dose %s, within units, net of period effects",
              panel$vars$outcome, name, format(signif(basis$reference, 4)))
    },
    inference = fe_inference_label(inference, panel, cluster, mom$G),
    alpha = alpha, call = call,
    n = list(obs = fg$n, units = fg$n_units, periods = fg$n_periods, treated = sum(dosed),
             clusters = if (clustered) mom$G else NA_integer_),
    vcov = V,
    vars = dose_vars(panel, cluster = if (clustered) cluster %||% panel$vars$unit),
    glance = list(shape = shape, reference_dose = basis$reference, twfe_slope = NA_real_),
    tables = list(curve = curve),
    shape = shape, reference = basis$reference,
    options = list(method = "twfe", shape = shape, inference = inference, cluster = cluster,
                   weights = panel$vars$weights)
  )
}

dose_vars <- function(panel, cluster = NULL) {
  list(outcome = panel$vars$outcome, treatment = panel$vars$treatment,
       covariates = panel$vars$covariates, unit = panel$vars$unit, time = panel$vars$time,
       cluster = cluster, weights = panel$vars$weights)
}

# The dose must move within some unit, or the unit effects absorb it.
check_dose_variation <- function(D, keep, name, call = rlang::caller_env()) {
  D[!keep] <- 0
  k <- rowSums(keep)
  centre <- rowSums(D) / pmax(k, 1)
  dev <- rowSums(((D - centre) * keep)^2)
  scale <- max(1, abs(D))
  if (all(dev <= (1e-12 * scale)^2 * k)) {
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
  crit <- stats::qt(alpha / 2, df, lower.tail = FALSE)
  data.frame(dose = dose, estimand = estimand, estimate = estimate, std.error = se,
             conf.low = estimate - crit * se, conf.high = estimate + crit * se,
             stringsAsFactors = FALSE)
}

# Continuous DiD: each unit's change (mean after minus mean before), a curve
# of the change on the dose among dosed units, minus the untreated mean.
dose_cgbs <- function(panel, design, shape, n_bins, df, alpha, call = NULL) {
  if (!design$ok) {
    abort_mkt("not_continuous_did", c(
      "{.code method = \"cgbs\"} needs a continuous DiD design, but {design$why}.",
      i = "It needs periods with no dose for anyone, then one dose per unit from a common start, and some units left at dose 0; otherwise use {.code method = \"twfe\"}."
    ), call = call)
  }
  if (length(panel$vars$covariates)) {
    abort_mkt("bad_argument", c(
      "{.code method = \"cgbs\"} takes no covariates; the formula has {.field {panel$vars$covariates}}.",
      i = "Remove them, or use {.code method = \"twfe\"} or {.fn dml} to adjust for covariates."
    ), call = call)
  }
  # The outcome on a scale near 1 (see outcome_scale()), scaled back below.
  s <- outcome_scale(panel$Y[panel$observed])
  Y <- panel$Y / s
  pre <- seq_len(design$first - 1L)
  post <- seq.int(design$first, ncol(Y))
  change <- rowMeans(Y[, post, drop = FALSE], na.rm = TRUE) -
    rowMeans(Y[, pre, drop = FALSE], na.rm = TRUE)
  ok <- is.finite(change) & !is.na(design$dose)
  dose <- design$dose[ok]
  change <- change[ok]
  if (length(change) && max(change) - min(change) <= 1e-10 * max(abs(Y), na.rm = TRUE)) {
    abort_mkt("no_variation", c(
      "The outcome {.field {panel$vars$outcome}} changes by the same amount in every unit from before to after, so every effect is exactly zero with no sampling error.",
      i = "Check that {.field {panel$vars$outcome}} is the outcome you meant."
    ), call = call)
  }
  treated <- dose > 0
  n0 <- sum(!treated)
  n1 <- sum(treated)
  if (n0 < 2L || n1 < 4L) {
    abort_mkt("not_continuous_did", c(
      "Continuous DiD needs at least 2 untreated and 4 dosed units with outcomes before and after; there are {n0} and {n1}.",
      i = "Use {.code method = \"twfe\"} on small designs."
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
  # Back on the outcome's scale.
  est <- unscale_table(est, s)
  curve <- unscale_table(curve, s)
  twfe <- stats::cov(dose, change) / stats::var(dose) * s
  # What TWFE weights: w(l) = E[(D - E D) 1{D >= l}] / Var(D) over all units
  # (dosed and untreated), which integrates to one over [0, max dose].
  wgrid <- seq(0, rng[2], length.out = 101)
  dc <- dose - mean(dose)
  vpop <- mean(dc^2)
  weights_tab <- data.frame(dose = wgrid, weight = vapply(wgrid, function(l) mean(dc * (dose >= l)),
                                                          numeric(1)) / vpop,
                            dose_density = stats::approx(stats::density(d1, from = 0, to = rng[2], n = 101),
                                                         xout = wgrid)$y)
  new_fit(
    "dose_response", estimates = est,
    method = sprintf("Continuous DiD (Callaway, Goodman-Bacon, Sant'Anna), %s curve", shape),
    estimand = sprintf("ATT: mean over dosed units of ATT(d), the effect on %s of dose d of %s%s",
                       panel$vars$outcome, panel$vars$treatment,
                       if (is.null(dpsi)) "" else
                         "; ACRT: mean of its derivative ATT'(d) (needs strong parallel trends)"),
    inference = sprintf("HC2 over %d dosed units plus the variance of the %d untreated units' mean",
                        n1, n0),
    alpha = alpha, call = call,
    n = list(obs = length(dose), units = length(dose), periods = ncol(Y), treated = n1,
             clusters = NA_integer_, untreated = n0),
    # With bins there is no ACRT and the one row's variance is the covariance.
    vcov = if (nrow(est) == 1L) matrix(est$std.error^2, 1, 1),
    no_vcov = "ATT and ACRT come from separate regressions, so their joint covariance is not estimated",
    vars = dose_vars(panel),
    glance = list(shape = shape, reference_dose = 0, twfe_slope = twfe),
    tables = list(curve = curve, twfe_weights = weights_tab),
    shape = shape, reference = 0,
    options = list(method = "cgbs", shape = shape, inference = "HC2", cluster = NULL,
                   weights = NULL)
  )
}
