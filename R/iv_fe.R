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
#' `inference = "heteroskedastic"` gives HC1 standard errors with
#' \eqn{n/(n-K)} and \eqn{n - K} degrees of freedom.
#'
#' For each endogenous variable, `tidy(fit, "first_stage")` reports the first-stage F
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
#' information), or empty; `tidy(fit, "ar_set")` holds one row per interval, with
#' infinite ends when unbounded. With one instrument the set is solved
#' exactly (a quadratic inequality); with several it is found on a grid of
#' 4,001 points over the 2SLS estimate plus or minus 100 standard errors,
#' each crossing refined by root finding, and its ends are unbounded exactly
#' when the first-stage Wald statistic is below the critical value.
#'
#' @section Computation:
#' The panel's columns are demeaned in one pass of a C++ kernel that solves
#' for the unit and time effects through the smaller of the two dimensions
#' (conjugate gradients on the Schur complement, exact in one iteration on a
#' balanced panel). Every regression after that -- first stages, reduced
#' forms, 2SLS, the Anderson-Rubin pieces -- comes from the cross-product
#' matrix of the demeaned columns and, for clustered standard errors, the
#' cross-products within each cluster, so the rows are read twice in all.
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
#' @param weak_threshold Effective F below which the instruments are called
#'   weak (10, the rule of thumb of Staiger and Stock, by default).
#' @param inference `"cluster"` (default): CR1 standard errors clustered by
#'   `cluster`; `"heteroskedastic"`: HC1 standard errors.
#' @param cluster Name of the column of standard-error clusters; `NULL`
#'   (default) clusters by the unit, as fixest does with unit fixed effects
#'   first.
#' @param weights Optional name of a column of non-negative weights; cells
#'   of weight zero are left out.
#' @param alpha Level for confidence intervals and the Anderson-Rubin set.
#' @param ... Must be empty.
#' @return An object of class `c("mkt_iv_fe", "mkt_fit")` (see [mkt_fit]):
#'   the 2SLS coefficients (endogenous variables first) with their clustered
#'   covariance. `tidy(fit, "first_stage")` gives one row per endogenous
#'   variable with `f_stat`, `f_robust`, `f_effective` and the p-value of the
#'   robust first-stage test; with one endogenous variable,
#'   `tidy(fit, "ar_set")` gives the Anderson-Rubin set (one row per
#'   interval) and `tidy(fit, "ar")` the Anderson-Rubin statistic (divided
#'   by the number of instruments) over a grid of hypothesised effects with
#'   its critical value, which `plot(fit)` draws. `glance()` adds the
#'   smallest effective and robust first-stage F and the Anderson-Rubin set.
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
#' tidy(fit, "first_stage")
#' tidy(fit, "ar_set")
#' @export
iv_fe <- function(formula, data, weak_threshold = 10,
                  inference = c("cluster", "heteroskedastic"), cluster = NULL,
                  weights = NULL, alpha = 0.05, ...) {
  check_dots(...)
  inference <- check_choice(inference)
  check_fe_inference(inference, cluster)
  alpha <- check_alpha(alpha)
  if (!is.numeric(weak_threshold) || length(weak_threshold) != 1L || is.na(weak_threshold) ||
      weak_threshold < 0) {
    abort_mkt("bad_argument", "{.arg weak_threshold} must be one non-negative number.")
  }
  if (inherits(formula, "mkt_panel")) {
    abort_mkt("bad_formula", c(
      "{.fn iv_fe} reads the endogenous variables and instruments from its formula, so it takes no panel.",
      i = "Give {.code outcome ~ exogenous | unit + time | endogenous ~ instruments} and the data."
    ))
  }
  spec <- parse_iv_formula(formula)
  panel <- as_panel(spec$panel_formula, data,
                    cluster = if (inference == "cluster") cluster, weights = weights)
  iv_fe_fit(panel, spec, weak_threshold = weak_threshold, inference = inference,
            cluster = cluster, alpha = alpha, call = match.call())
}

# The core: two-stage least squares on a panel whose covariates hold the
# exogenous, endogenous and instrument columns named by `spec`. One pass of
# the fixed-effects kernel demeans every column, and one more (with
# clusters) sums each cluster's cross-products; every regression below --
# the first stages, 2SLS and the Anderson-Rubin pieces -- is then algebra on
# the (m x m) Gram matrices (see fe_ls() in fixed_effects.R).
iv_fe_fit <- function(panel, spec, weak_threshold = 10, inference = "cluster", cluster = NULL,
                      alpha = 0.05, call = NULL) {
  y_name <- ".outcome"
  # The outcome on a scale near 1 (see outcome_scale()); answers are scaled
  # back at the end.
  s <- outcome_scale(panel$Y[panel$observed])
  cols <- c(stats::setNames(list(panel$Y / s), y_name),
            panel$X[unique(c(spec$exogenous, spec$endogenous, spec$instruments))])
  clustered <- inference == "cluster"
  fg <- fe_grid(panel, cols, weights = panel$weights,
                cluster = fe_cluster_codes(panel, inference, cluster))
  if (fg$n == 0L) {
    abort_mkt("missing_values", "No cell has the outcome and every variable of the model.")
  }
  mom <- fe_moments(fg, clustered, by = cluster %||% panel$vars$unit)
  n_abs <- fe_grid_absorbed(fg, clustered)
  fe_total <- fg$n_units + fg$n_periods - 1L
  fe_check_outcome(mom, y_name, panel$Y / s, panel$vars$outcome, panel$weights)
  check_instruments(mom, panel, spec)

  sel <- function(v) fe_select(mom, v)
  target_y <- sel(y_name)[, 1]
  W <- spec$exogenous
  E <- spec$endogenous
  Zf <- c(W, spec$instruments)
  flat <- fe_flat(mom, E, panel$X[E], panel$weights)
  if (any(flat)) {
    abort_mkt("no_variation", c(
      "The endogenous variable{?s} {.field {E[flat]}} {?has/have} no variation left once unit and time fixed effects are removed.",
      i = "A variable constant within units (or periods) is absorbed by the fixed effects and has no effect to estimate; drop it or give one that changes within units."
    ))
  }
  fe_check_rank(mom$gram[Zf, Zf, drop = FALSE], Zf)
  GZ <- sel(Zf)
  first <- iv_first_stages(mom, spec, n_abs, fe_total)
  Pi <- vapply(first$fits, function(f) f$coefficients, numeric(length(Zf)))
  Pi <- matrix(Pi, nrow = length(Zf), dimnames = list(Zf, E))
  Gamma <- cbind(sel(W), GZ %*% Pi)
  colnames(Gamma) <- c(W, E)
  fit <- fe_ls(mom, Gamma, target_y)
  # Residuals use the structural regressors, not their first-stage fits.
  fit$resid <- drop(target_y - sel(c(W, E)) %*% fit$coefficients)
  vc <- fe_vcov(mom, fit, n_abs)
  terms <- c(E, W)
  est <- fe_estimates(fit$coefficients, vc$vcov, vc$df, alpha, terms = terms)
  df_res <- vc$df[[1]]

  ar <- NULL
  ar_curve_tab <- NULL
  ar_parts <- NULL
  if (length(E) == 1L) {
    ar_parts <- iv_ar_parts(mom, spec, first$fits[[1]], target_y, n_abs)
    ar <- ar_confidence_set(ar_parts, alpha, df_res, est$estimate[1], est$std.error[1])
    ar_curve_tab <- ar_curve(ar_parts, ar, est$estimate[1], est$std.error[1], alpha, df_res)
    f_eff <- first$table$f_effective[1]
    if (is.finite(f_eff) && f_eff < weak_threshold) {
      warn_mkt("weak_instruments", c(
        "The instruments are weak: effective F = {signif(f_eff, 3)} < {weak_threshold} for {.field {E}}.",
        i = "The 2SLS estimate and its Wald interval are unreliable; the Anderson-Rubin {100 * (1 - alpha)}% set, valid however weak the instruments, is {format_ar_set(ar)}."
      ))
    }
  }
  fs <- first$table
  # Back on the outcome's scale: the estimates, their covariance, the
  # Anderson-Rubin set and curve (in effect units) and the reduced-form
  # pieces; the F statistics and the AR statistic do not change.
  est <- unscale_table(est, s)
  vc$vcov <- unscale_variance(vc$vcov, s)
  if (!is.null(ar)) {
    ar$conf.low <- ar$conf.low * s
    ar$conf.high <- ar$conf.high * s
    ar_curve_tab$effect <- ar_curve_tab$effect * s
    ar_parts$a <- ar_parts$a * s
    ar_parts$Vaa <- unscale_variance(ar_parts$Vaa, s)
    ar_parts$Vac <- ar_parts$Vac * s
  }
  new_fit(
    "iv_fe", estimates = est,
    method = "2SLS with unit and time fixed effects",
    estimand = sprintf("Effect of one unit of %s on %s, identified by %s (a local average effect when effects vary)",
                       paste(E, collapse = ", "), panel$vars$outcome,
                       paste(spec$instruments, collapse = ", ")),
    inference = fe_inference_label(inference, panel, cluster, mom$G),
    alpha = alpha, call = call,
    n = list(obs = fg$n, units = fg$n_units, periods = fg$n_periods, treated = NA_integer_,
             clusters = if (clustered) mom$G else NA_integer_),
    vcov = vc$vcov[terms, terms, drop = FALSE],
    vars = list(outcome = panel$vars$outcome, treatment = E, unit = panel$vars$unit,
                time = panel$vars$time, exogenous = W, instruments = spec$instruments,
                cluster = if (clustered) cluster %||% panel$vars$unit),
    glance = list(n_instruments = length(spec$instruments),
                  f_effective = min(fs$f_effective), f_robust = min(fs$f_robust),
                  ar_set = if (is.null(ar)) NA_character_ else format_ar_set(ar)),
    tables = c(list(first_stage = fs),
               if (!is.null(ar)) list(ar_set = ar, ar = ar_curve_tab)),
    spec = spec, ar_parts = ar_parts, weak_threshold = weak_threshold,
    options = list(inference = inference, cluster = cluster, weights = panel$vars$weights)
  )
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
check_instruments <- function(mom, panel, spec, call = rlang::caller_env()) {
  inst <- spec$instruments
  left <- sqrt(pmax(diag(mom$gram)[inst], 0) / mom$n)
  raw <- vapply(panel$X[inst], function(x) max(abs(x), na.rm = TRUE), numeric(1))
  wmax <- if (is.null(panel$weights)) 1 else sqrt(max(panel$weights, na.rm = TRUE))
  flat <- left <= 1e-10 * pmax(1, raw) * wmax
  if (any(flat)) {
    abort_mkt("instrument_absorbed", c(
      "The instrument{?s} {.field {inst[flat]}} {?has/have} no variation left once unit and time fixed effects are removed.",
      i = "A unit-level assignment is absorbed by the unit fixed effects: interact it with the post period, for example {.code I(assigned * post)}."
    ), call = call)
  }
  invisible(TRUE)
}

# First stages of each endogenous variable on the exogenous covariates and
# the instruments (all within-transformed), with the classical, the
# cluster-robust and the effective F (Montiel Olea and Pflueger 2013). The
# classical F counts every absorbed fixed effect in its residual degrees of
# freedom (fe_total), nested in the clusters or not.
iv_first_stages <- function(mom, spec, n_abs, fe_total) {
  W <- spec$exogenous
  inst <- spec$instruments
  Zf <- c(W, inst)
  k <- length(inst)
  GZ <- fe_select(mom, Zf)
  # The instruments' cross-product net of the exogenous covariates.
  ZtZ <- mom$gram[inst, inst, drop = FALSE]
  if (length(W)) {
    ZtZ <- ZtZ - mom$gram[inst, W, drop = FALSE] %*%
      solve(mom$gram[W, W, drop = FALSE], mom$gram[W, inst, drop = FALSE])
  }
  fits <- list()
  rows <- list()
  for (e in spec$endogenous) {
    f <- fe_ls(mom, GZ, fe_select(mom, e)[, 1])
    f <- c(f, fe_vcov(mom, f, n_abs))
    pi_hat <- f$coefficients[inst]
    V <- f$vcov[inst, inst, drop = FALSE]
    sigma2 <- fe_rss(mom, f) / (mom$n - length(Zf) - fe_total)
    quad <- as.numeric(t(pi_hat) %*% ZtZ %*% pi_hat)
    f_rob <- wald_quad(pi_hat, V, paste("first stage of", e)) / k
    fits[[e]] <- f
    rows[[e]] <- data.frame(endogenous = e, f_stat = quad / k / sigma2, f_robust = f_rob,
                            f_effective = quad / sum(diag(V %*% ZtZ)),
                            p.value = stats::pf(f_rob, k, f$df[[1]], lower.tail = FALSE),
                            n_instruments = k, stringsAsFactors = FALSE)
  }
  tab <- do.call(rbind, rows)
  rownames(tab) <- NULL
  list(fits = fits, table = tab)
}

# The pieces of the Anderson-Rubin statistic with one endogenous variable:
# reduced-form and first-stage coefficients on the instruments and the three
# blocks of their joint clustered covariance (the cross block from the fit
# of y - d, since the sandwich is bilinear in the residuals).
iv_ar_parts <- function(mom, spec, first, target_y, n_abs) {
  inst <- spec$instruments
  GZ <- fe_select(mom, c(spec$exogenous, inst))
  ry <- fe_ls(mom, GZ, target_y)
  Vy <- fe_vcov(mom, ry, n_abs)$vcov
  r1 <- fe_ls(mom, GZ, target_y - fe_select(mom, spec$endogenous)[, 1])
  V1 <- fe_vcov(mom, r1, n_abs)$vcov
  Vaa <- Vy[inst, inst, drop = FALSE]
  Vcc <- first$vcov[inst, inst, drop = FALSE]
  list(a = ry$coefficients[inst], c = first$coefficients[inst],
       Vaa = Vaa, Vcc = Vcc, Vac = (Vaa + Vcc - V1[inst, inst, drop = FALSE]) / 2)
}

# The Anderson-Rubin statistic at b: Wald test that the instruments have no
# effect on y - b d. Its coefficient is a - b c and its clustered covariance
# Vaa - 2 b Vac + b^2 Vcc, both exact in b.
ar_stat <- function(b, p) {
  g <- p$a - b * p$c
  V <- p$Vaa - 2 * b * p$Vac + b^2 * p$Vcc
  wald_quad(g, V, "Anderson-Rubin test")
}

# g' V^-1 g of a Wald test. A clustered covariance from fewer clusters than
# coefficients is singular, and the test is then not defined.
# An exact fit (a first stage without residual) has V = 0: the statistic is
# then infinite.
wald_quad <- function(g, V, what, call = rlang::caller_env()) {
  if (all(V == 0)) return(if (any(g != 0)) Inf else 0)
  if (length(g) > 1L && rcond(V) < 1e-12) {
    abort_mkt("too_few_clusters", c(
      "The covariance of the {what} is singular: too few clusters for {length(g)} instruments.",
      i = "Use fewer instruments, more clusters, or {.code inference = \"heteroskedastic\"}."
    ), call = call)
  }
  as.numeric(t(g) %*% solve(V, g))
}

ar_confidence_set <- function(p, alpha, df, est, se) {
  k <- length(p$a)
  q <- k * stats::qf(alpha, k, df, lower.tail = FALSE)
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
  unbounded <- wald_quad(p$c, p$Vcc, "first stage") < q
  cross <- which(diff(inside) != 0)
  ends <- vapply(cross, function(i) stats::uniroot(f, grid[c(i, i + 1)], tol = 1e-10)$root,
                 numeric(1))
  starts <- c(if (inside[1]) (if (unbounded) -Inf else grid[1]), ends[diff(inside)[cross] > 0])
  stops <- c(ends[diff(inside)[cross] < 0], if (inside[length(grid)]) (if (unbounded) Inf else grid[length(grid)]))
  ar_rows(starts, stops)
}

# The Anderson-Rubin statistic over a grid of hypothesised effects, for
# tidy(fit, "ar") and the plot: the set is where it lies below `critical`.
ar_curve <- function(p, ar_set, estimate, se, alpha, df, n_grid = 401) {
  k <- length(p$a)
  finite <- c(ar_set$conf.low, ar_set$conf.high)
  finite <- finite[is.finite(finite)]
  half <- max(4 * se, abs(finite - estimate) * 1.3)
  b <- seq(estimate - half, estimate + half, length.out = n_grid)
  stat <- if (k == 1L) {
    (p$a[[1]] - b * p$c[[1]])^2 / (p$Vaa[1, 1] - 2 * b * p$Vac[1, 1] + b^2 * p$Vcc[1, 1])
  } else {
    vapply(b, ar_stat, numeric(1), p = p)
  }
  data.frame(effect = b, statistic = stat / k, critical = stats::qf(alpha, k, df, lower.tail = FALSE))
}

ar_rows <- function(low, high) {
  data.frame(conf.low = as.numeric(low), conf.high = as.numeric(high))
}

format_ar_set <- function(ar) {
  if (is.null(ar) || !nrow(ar)) return("empty")
  paste(sprintf("[%s, %s]", signif(ar$conf.low, 4), signif(ar$conf.high, 4)),
        collapse = " U ")
}
