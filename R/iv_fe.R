#' Instrumental variables with unit and time fixed effects
#'
#' Two-stage least squares after removing unit and time fixed effects, with
#' clustered standard errors, first-stage diagnostics that stay valid under
#' clustering, and the Anderson-Rubin confidence set, which keeps its
#' coverage however weak the instruments are. With a randomized assignment as
#' the instrument for the treatment actually received, the coefficient is the
#' complier effect (local average treatment effect) of a geo experiment with
#' non-compliance.
#'
#' @section Formula grammar:
#' fixest's IV grammar on top of the package's panel grammar:
#' `outcome ~ exogenous | unit + time | endogenous ~ instruments`, for example
#' `sales ~ price | store + week | tv_grp ~ tv_cost_shifter`. Write
#' `outcome ~ 1 | unit + time | d ~ z` without exogenous covariates. The
#' endogenous and instrument parts may list several variables joined by `+`.
#'
#' @section Inference:
#' Standard errors are clustered (CR1) with fixest's default small-sample
#' correction \eqn{G/(G-1) \cdot (n-1)/(n-K)}, where \eqn{K} counts the
#' regressors and the fixed effects not nested in the clusters, and \eqn{G - 1}
#' degrees of freedom. So `coef()` and `vcov()` equal those of
#' `fixest::feols(y ~ x | unit + time | d ~ z, cluster = ~unit)`.
#'
#' For each endogenous variable, `first_stage` reports the first-stage F
#' (classical, `f_stat`), the cluster-robust Wald F (`f_robust`) and the
#' effective F of Montiel Olea and Pflueger (2013) (`f_effective`), which is
#' \eqn{\hat\pi' \tilde Z'\tilde Z \hat\pi / \mathrm{tr}(\hat V_\pi \tilde
#' Z'\tilde Z)} with \eqn{\tilde Z} the instruments after removing the fixed
#' effects and exogenous covariates. `f_robust` equals fixest's `fitstat(fit, "ivwald")`;
#' `f_stat` counts every absorbed fixed effect in its residual degrees of
#' freedom, so it is slightly smaller than fixest's `"ivf"`, which does not
#' count the effects nested in the clusters. When the effective F is below
#' `weak_threshold`, a warning of class `mktcausal_warning_weak_instruments`
#' says so and gives the Anderson-Rubin set.
#'
#' The Anderson-Rubin set (one endogenous variable) collects the values
#' \eqn{b} for which the instruments have no effect on \eqn{y - b d} by the
#' clustered Wald test at level `alpha`. It may be a bounded interval, the
#' union of two rays, the whole line (when the instruments carry no
#' information), or empty; `ar_set` holds one row per interval, with
#' infinite ends when unbounded. With one instrument the set is solved
#' exactly (a quadratic inequality); with several it is found on a grid of
#' 4,001 points over the 2SLS estimate plus or minus 100 standard errors,
#' each crossing refined by root finding, and its ends are unbounded exactly
#' when the first-stage Wald statistic is below the critical value.
#'
#' @section Geo experiments with non-compliance:
#' Put the experiment in long form with a pre and a test period, the
#' assignment interacted with the test period as the instrument and the
#' treatment received as the endogenous variable:
#' `iv_fe(sales ~ 1 | geo + period | received ~ assigned_post, data)`. With
#' two periods the coefficient equals the Wald complier effect of
#' [experiment_diagnostics()] on each geo's change in sales (post minus pre)
#' exactly; the standard errors differ only by the small-sample factors
#' (CR1 here, HC2 there).
#'
#' @param formula `outcome ~ exogenous | unit + time | endogenous ~ instruments`;
#'   see Formula grammar.
#' @param data A long data frame, tibble or data.table, one row per unit and
#'   period.
#' @param cluster `NULL` (default) clusters by the unit; a column name
#'   clusters by that column; `FALSE` gives heteroskedasticity-robust (HC1)
#'   standard errors.
#' @param weights Optional name of a column of positive weights.
#' @param alpha Level for confidence intervals and the Anderson-Rubin set.
#' @param weak_threshold Effective F below which the instruments are called
#'   weak (10, the rule of thumb of Staiger and Stock, by default).
#' @param ... Unused.
#' @return An object of class `c("mkt_iv_fe", "mkt_fit")` with `estimates`
#'   (the broom table of [tidy()]), `vcov`, `first_stage` (one row per
#'   endogenous variable), `ar_set`, `n`, `n_clusters`, `se_type`, `alpha`
#'   and the `panel`. With one endogenous variable, `tidy(fit, "ar")` gives
#'   the Anderson-Rubin statistic (divided by the number of instruments)
#'   over a grid of hypothesised effects with its critical value, and
#'   `plot(fit)` draws it.
#' @references Montiel Olea, J. L. and Pflueger, C. (2013). A robust test for
#'   weak instruments. *Journal of Business & Economic Statistics*, 31(3),
#'   358-369. Anderson, T. W. and Rubin, H. (1949). Estimation of the
#'   parameters of a single equation in a complete system of stochastic
#'   equations. *Annals of Mathematical Statistics*, 20(1), 46-63.
#' @seealso [experiment_diagnostics()] for the complier effect of a
#'   cross-sectional experiment.
#' @examples
#' set.seed(1)
#' d <- expand.grid(geo = 1:40, week = 1:8)
#' d$z <- rnorm(nrow(d))
#' u <- rnorm(nrow(d))
#' d$grp <- 0.8 * d$z + u + rnorm(nrow(d))
#' d$sales <- 2 * d$grp + d$geo / 10 + d$week + 2 * u + rnorm(nrow(d))
#' fit <- iv_fe(sales ~ 1 | geo + week | grp ~ z, d)
#' fit
#' tidy(fit)
#' fit$first_stage
#' @export
iv_fe <- function(formula, data, cluster = NULL, weights = NULL, alpha = 0.05,
                  weak_threshold = 10, ...) {
  alpha <- check_alpha(alpha)
  spec <- parse_iv_formula(formula)
  panel <- mkt_panel(spec$panel_formula, data)
  cells <- panel_cells(panel)
  cols <- c(spec$exogenous, spec$endogenous, spec$instruments)
  keep <- stats::complete.cases(cells$X[, cols, drop = FALSE])
  w <- check_weights_column(weights, panel, data, cells)
  if (!is.null(w)) w <- w[keep]
  fe <- list(unit = cells$unit[keep], time = cells$time[keep])
  cl <- fe_cluster(cluster, panel, data, cells, keep)
  M <- within_transform(cbind(y = cells$y[keep], cells$X[keep, cols, drop = FALSE]),
                        fe, weights = w)
  y <- M[, "y"]
  W <- M[, spec$exogenous, drop = FALSE]
  E <- M[, spec$endogenous, drop = FALSE]
  Z <- M[, spec$instruments, drop = FALSE]
  n_abs <- fe_absorbed(fe, cl)
  se_type <- if (is.null(cl)) "HC1" else "CR1"

  check_instruments(Z, cells$X[keep, spec$instruments, drop = FALSE], spec)
  # The classical F counts every absorbed fixed effect in its residual
  # degrees of freedom, nested in the clusters or not.
  first <- first_stage_fits(E, W, Z, y, cl, w, se_type, n_abs, fe_dof(fe))
  fitted_E <- vapply(first$fits, function(f) f$fitted, numeric(nrow(E)))
  if (!is.matrix(fitted_E)) fitted_E <- matrix(fitted_E, nrow = nrow(E))
  colnames(fitted_E) <- spec$endogenous
  Xhat <- cbind(W, fitted_E)
  fit <- ols_robust(Xhat, y, cluster = cl, weights = w, se_type = se_type,
                    n_absorbed = n_abs, resid_X = cbind(W, E))
  est <- fe_estimates(fit$coefficients, fit$vcov, fit$df, alpha,
                      terms = c(spec$endogenous, spec$exogenous))

  ar <- NULL
  if (length(spec$endogenous) == 1L) {
    ar <- ar_confidence_set(first$ar_parts, alpha, fit$df[[1]],
                            est$estimate[1], est$std.error[1])
    f_eff <- first$table$f_effective[1]
    if (is.finite(f_eff) && f_eff < weak_threshold) {
      warn_mkt("weak_instruments", c(
        "The instruments are weak: effective F = {signif(f_eff, 3)} < {weak_threshold} for {.field {spec$endogenous}}.",
        i = "The 2SLS estimate and its Wald interval are unreliable; the Anderson-Rubin {100 * (1 - alpha)}% set, valid however weak the instruments, is {format_ar_set(ar)}."
      ))
    }
  }
  structure(list(
    estimates = est, vcov = fit$vcov[est$term, est$term, drop = FALSE],
    first_stage = first$table, ar_set = ar, ar_parts = first$ar_parts, alpha = alpha,
    n = length(y), n_clusters = fit$n_clusters, se_type = se_type,
    n_units = length(unique(fe$unit)), n_periods = length(unique(fe$time)),
    spec = spec, panel = panel, formula = formula
  ), class = c("mkt_iv_fe", "mkt_fit"))
}

# Splits `y ~ x | unit + time | d ~ z` (which R parses as
# `(y ~ x | unit + time | d) ~ z`) into the panel formula that mkt_panel()
# reads and the names of the endogenous variables and instruments. The
# exogenous, endogenous and instrument columns all travel through the panel
# layer as covariates, so they get its checks and its missing-data policy.
parse_iv_formula <- function(formula, call = rlang::caller_env()) {
  hint <- c(i = "The grammar is {.code outcome ~ exogenous | unit + time | endogenous ~ instruments}, for example {.code sales ~ price | store + week | grp ~ cost_shifter}.")
  bad <- function(why) abort_mkt("bad_formula", c(x = why, hint), call = call)
  if (!inherits(formula, "formula") || length(formula) != 3L) {
    bad("{.arg formula} must be a two-sided formula.")
  }
  inner <- formula[[2]]
  if (!(is.call(inner) && identical(inner[[1]], as.name("~")) && length(inner) == 3L)) {
    bad("The formula has no {.code | endogenous ~ instruments} part.")
  }
  rhs <- inner[[3]]
  if (!(is.call(rhs) && identical(rhs[[1]], as.name("|")) &&
        is.call(rhs[[2]]) && identical(rhs[[2]][[1]], as.name("|")))) {
    bad("Give three parts separated by {.code |}: exogenous, fixed effects, endogenous ~ instruments.")
  }
  label <- function(e) paste(deparse(e, width.cutoff = 500L), collapse = " ")
  terms_of <- function(e) {
    t <- split_plus(e)
    t <- t[!vapply(t, function(x) identical(x, 0) || identical(x, 1), logical(1))]
    vapply(t, label, character(1))
  }
  endogenous <- terms_of(rhs[[3]])
  instruments <- terms_of(formula[[3]])
  exogenous <- terms_of(rhs[[2]][[2]])
  if (!length(endogenous) || !length(instruments)) {
    bad("Name at least one endogenous variable and one instrument.")
  }
  if (length(instruments) < length(endogenous)) {
    bad("The model is not identified: {length(endogenous)} endogenous variable{?s} but {length(instruments)} instrument{?s}.")
  }
  covs <- c(exogenous, endogenous, instruments)
  rhs_text <- paste(c("0", covs), collapse = " + ")
  panel_formula <- stats::as.formula(
    paste(label(inner[[2]]), "~", rhs_text, "|", label(rhs[[2]][[3]])),
    env = environment(formula))
  list(panel_formula = panel_formula, exogenous = exogenous,
       endogenous = endogenous, instruments = instruments)
}

# An instrument is absorbed when the fixed effects leave it (numerically) no
# variation relative to its raw scale.
check_instruments <- function(Z, Z_raw, spec, call = rlang::caller_env()) {
  flat <- apply(abs(Z), 2, max) <= 1e-10 * pmax(1, apply(abs(Z_raw), 2, max))
  if (any(flat)) {
    abort_mkt("instrument_absorbed", c(
      "The instrument{?s} {.field {spec$instruments[flat]}} {?has/have} no variation left once unit and time fixed effects are removed.",
      i = "A unit-level assignment is absorbed by the unit fixed effects: interact it with the post period, for example {.code I(assigned * post)}."
    ), call = call)
  }
  invisible(TRUE)
}

# First stages of each endogenous variable on exogenous covariates and
# instruments (all already within-transformed), with the classical, the
# cluster-robust and the effective F, and the pieces the Anderson-Rubin set
# needs: reduced-form and first-stage coefficients on the instruments and the
# three blocks of their joint clustered covariance.
first_stage_fits <- function(E, W, Z, y, cl, w, se_type, n_abs, fe_total) {
  Zfull <- cbind(W, Z)
  k <- ncol(Z)
  inst <- colnames(Z)
  # Instruments net of the exogenous covariates, for the effective F.
  Zt <- if (ncol(W)) qr_resid_weighted(W, Z, w) else Z
  ZtZ <- crossprod(Zt * if (is.null(w)) 1 else sqrt(w))
  fits <- list()
  rows <- list()
  for (j in seq_len(ncol(E))) {
    f <- ols_robust(Zfull, E[, j], cluster = cl, weights = w, se_type = se_type,
                    n_absorbed = n_abs)
    pi_hat <- f$coefficients[inst]
    V <- f$vcov[inst, inst, drop = FALSE]
    rss <- sum((f$residuals)^2)
    sigma2 <- rss / (length(y) - ncol(Zfull) - fe_total)
    f_stat <- as.numeric(t(pi_hat) %*% ZtZ %*% pi_hat) / k / sigma2
    f_rob <- as.numeric(t(pi_hat) %*% solve(V, pi_hat)) / k
    f_eff <- as.numeric(t(pi_hat) %*% ZtZ %*% pi_hat) / sum(diag(V %*% ZtZ))
    fits[[j]] <- list(fitted = as.vector(Zfull %*% f$coefficients), fit = f)
    rows[[j]] <- data.frame(endogenous = colnames(E)[j], f_stat = f_stat,
                            f_robust = f_rob, f_effective = f_eff,
                            p.value = stats::pf(f_rob, k, f$df[[1]], lower.tail = FALSE),
                            n_instruments = k, stringsAsFactors = FALSE)
  }
  ar_parts <- NULL
  if (ncol(E) == 1L) {
    ry <- ols_robust(Zfull, y, cluster = cl, weights = w, se_type = se_type, n_absorbed = n_abs)
    r1 <- ols_robust(Zfull, y - E[, 1], cluster = cl, weights = w, se_type = se_type,
                     n_absorbed = n_abs)
    Vaa <- ry$vcov[inst, inst, drop = FALSE]
    Vcc <- fits[[1]]$fit$vcov[inst, inst, drop = FALSE]
    V1 <- r1$vcov[inst, inst, drop = FALSE]
    ar_parts <- list(a = ry$coefficients[inst], c = fits[[1]]$fit$coefficients[inst],
                     Vaa = Vaa, Vcc = Vcc, Vac = (Vaa + Vcc - V1) / 2)
  }
  list(fits = fits, table = do.call(rbind, rows), ar_parts = ar_parts)
}

# Residuals of each column of Z on W by (weighted) least squares.
qr_resid_weighted <- function(W, Z, w) {
  sw <- if (is.null(w)) 1 else sqrt(w)
  qr.resid(qr(W * sw), Z * sw) / sw
}

# The Anderson-Rubin statistic at b: Wald test that the instruments have no
# effect on y - b d. Its coefficient is a - b c and its clustered covariance
# Vaa - 2 b Vac + b^2 Vcc, both exact in b.
ar_stat <- function(b, p) {
  g <- p$a - b * p$c
  V <- p$Vaa - 2 * b * p$Vac + b^2 * p$Vcc
  as.numeric(t(g) %*% solve(V, g))
}

ar_confidence_set <- function(p, alpha, df, est, se) {
  k <- length(p$a)
  q <- k * stats::qf(1 - alpha, k, df)
  if (k == 1L) {
    a <- p$a[[1]]; c <- p$c[[1]]
    A <- c^2 - q * p$Vcc[1, 1]
    B <- -2 * (a * c - q * p$Vac[1, 1])
    C <- a^2 - q * p$Vaa[1, 1]
    disc <- B^2 - 4 * A * C
    if (abs(A) < .Machine$double.eps * max(c^2, q * p$Vcc[1, 1])) {
      root <- -C / B
      return(if (B > 0) ar_rows(-Inf, root) else ar_rows(root, Inf))
    }
    if (disc < 0) return(if (A > 0) ar_rows(numeric(0), numeric(0)) else ar_rows(-Inf, Inf))
    r <- sort((-B + c(-1, 1) * sqrt(disc)) / (2 * A))
    return(if (A > 0) ar_rows(r[1], r[2]) else ar_rows(c(-Inf, r[2]), c(r[1], Inf)))
  }
  f <- function(b) ar_stat(b, p) - q
  grid <- est + se * seq(-100, 100, length.out = 4001)
  inside <- vapply(grid, f, numeric(1)) <= 0
  unbounded <- as.numeric(t(p$c) %*% solve(p$Vcc, p$c)) < q
  cross <- which(diff(inside) != 0)
  ends <- vapply(cross, function(i) stats::uniroot(f, grid[c(i, i + 1)], tol = 1e-10)$root,
                 numeric(1))
  starts <- c(if (inside[1]) (if (unbounded) -Inf else grid[1]), ends[diff(inside)[cross] > 0])
  stops <- c(ends[diff(inside)[cross] < 0], if (inside[length(grid)]) (if (unbounded) Inf else grid[length(grid)]))
  ar_rows(starts, stops)
}

# The Anderson-Rubin statistic over a grid of hypothesised effects, for
# tidy(fit, "ar") and the plot: the set is where it lies below `critical`.
ar_curve <- function(fit, n_grid = 401) {
  p <- fit$ar_parts
  est <- fit$estimates[1, ]
  k <- length(p$a)
  finite <- c(fit$ar_set$conf.low, fit$ar_set$conf.high)
  finite <- finite[is.finite(finite)]
  half <- max(4 * est$std.error, abs(finite - est$estimate) * 1.3)
  b <- seq(est$estimate - half, est$estimate + half, length.out = n_grid)
  data.frame(effect = b, statistic = vapply(b, ar_stat, numeric(1), p = p) / k,
             critical = stats::qf(1 - fit$alpha, k, est$df))
}

ar_rows <- function(low, high) {
  data.frame(conf.low = as.numeric(low), conf.high = as.numeric(high))
}

format_ar_set <- function(ar) {
  if (is.null(ar) || !nrow(ar)) return("empty")
  paste(sprintf("[%s, %s]", signif(ar$conf.low, 4), signif(ar$conf.high, 4)),
        collapse = " U ")
}
