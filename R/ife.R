#' Interactive fixed effects regression (Bai 2009)
#'
#' `ife()` fits
#' \deqn{y_{it} = \mu + \alpha_i + \xi_t + x_{it}'\beta + \lambda_i' f_t + \varepsilon_{it}}
#' by alternating least squares in C++: given the factors, \eqn{\beta} and the
#' additive effects are one within regression; given \eqn{\beta}, the factors
#' are the leading eigenvectors of the residual's cross-product, computed on
#' the smaller of its two dimensions. The regressors may be continuous or
#' binary: with a common shock whose intensity varies by unit, this is the
#' exposure-response model. Unbalanced panels are handled by EM: missing cells
#' are filled with the current fit, which converges to the least-squares fit
#' on the observed cells alone.
#'
#' @section Regressors:
#' Every term before `|` is a regressor (the package grammar calls the first
#' one the treatment; here it is just the first regressor). Write
#' `y ~ 0 | unit + time` for a pure factor model. Under unit effects
#' (`force = "unit"` or `"two-way"`) a regressor constant within every unit
#' is absorbed by \eqn{\alpha_i}, and under time effects one constant within
#' every period is absorbed by \eqn{\xi_t}: such regressors are dropped with
#' a message and listed in `$absorbed`, not refused. Observed cells with a
#' missing regressor are treated as missing cells.
#'
#' @section Number of factors:
#' When r is `NULL` the model is fitted for every r from 0 to `r_max` and r is
#' the minimiser of the Bai and Ng (2002) criterion named by `criterion`;
#' `tidy(fit, "ic")` reports IC_p1, IC_p2 and PC_p1 for every r.
#'
#' @section Inference:
#' `inference` chooses among Bai's (2009) analytic variances, with the
#' nuisance directions (additive effects, loadings and factors) projected
#' out of each regressor: `"homoskedastic"` (default), `"cluster"`
#' (clustered by unit, robust to heteroskedasticity and serial correlation
#' within units) and `"heteroskedastic"` (the sandwich of Moon and Weidner
#' 2017 without serial correlation); `"bootstrap"` resamples whole units
#' (`n_draws` times, through [resample_chunks()]) and refits each replicate
#' in C++ warm-started from the main fit, with percentile intervals (the
#' replicates of a chunk run on [mkt_threads()] threads, each from its own
#' random stream, so the answer depends on neither the threads nor
#' `chunk_size`); and `"none"`. Analytic intervals use the normal
#' distribution.
#'
#' @section Bias correction:
#' With N and T both large the least-squares \eqn{\hat\beta} is
#' consistent but its limiting distribution is not centred at
#' \eqn{\beta} when the errors are heteroskedastic or the regressors are
#' only predetermined (Bai 2009, Section 7; Moon and Weidner 2017). The
#' bias has up to three terms, each estimated from the residuals, the
#' regressors with the additive effects removed, the loadings
#' \eqn{\Lambda} and the factors \eqn{F}; `tidy(fit, "bias")` reports
#' them and the estimates are \eqn{\hat\beta} minus their sum:
#' * **cross-section** (order 1/N): error variances that differ across
#'   units, \eqn{\sigma_i^2}, combined with regressors that load on the
#'   factors. Needs errors independent across units and over time (their
#'   variance may differ by unit and by period) and strictly exogenous
#'   regressors.
#' * **time** (order 1/T): error variances that differ across periods,
#'   \eqn{\sigma_t^2}, under the same assumptions.
#' * **predetermined** (order 1/T): regressors correlated with past errors,
#'   such as a lagged outcome; the covariances of \eqn{x_{is}} with
#'   \eqn{e_{it}}, \eqn{t < s \le t +} `bias_lags`, weighted by the
#'   projection on the factors (and on the constant, under unit effects:
#'   this is the Nickell bias of the within estimator). Needs errors that
#'   are serially uncorrelated given the past (a martingale difference) and
#'   independent across units; the truncation at `bias_lags` lags assumes
#'   that the correlation dies out, as it does for a stationary lagged
#'   outcome.
#'
#' `bias_correction = "bai"` removes the cross-section and time terms
#' (Bai's 2009 correction for heteroskedastic errors, as written by Moon and
#' Weidner); `"dynamic"` removes all three (Moon and Weidner 2017). The
#' corrected estimator has the same limiting variance, so the analytic
#' standard errors are unchanged; it needs a balanced panel, at least one
#' factor for the cross-section and time terms to be non-zero, and an
#' analytic `inference` (or `"none"`). Serial or cross-sectional correlation of the
#' errors beyond this (which create further bias terms) is not corrected.
#'
#' @param formula `outcome ~ regressors | unit + time` (see [mkt_panel()]),
#'   or a [mkt_panel()].
#' @param data A long data frame, tibble or data.table (`NULL` when
#'   `formula` is a panel).
#' @param r Number of factors, or `NULL` to choose it by `criterion`.
#' @param force Additive effects: `"two-way"` (unit and time), `"unit"`,
#'   `"time"` or `"none"` (a grand mean only, fitted jointly with the
#'   factors). With a grand mean only the least-squares fit need not exist:
#'   a grand mean growing against a factor tends to additive unit and time
#'   effects with one factor fewer, and when those fit at least as well the
#'   fit is refused with an error of class
#'   `mktcausal_error_fit_not_attained`.
#' @param r_max Largest r tried when r is `NULL`.
#' @param criterion Bai and Ng criterion used when r is `NULL`: `"IC_p1"`,
#'   `"IC_p2"` or `"PC_p1"`.
#' @param bias_correction `"none"`, `"bai"` (heteroskedasticity across units
#'   and periods) or `"dynamic"` (also predetermined regressors); see Bias
#'   correction.
#' @param bias_lags Lags of the regressor-error covariances estimated by the
#'   predetermined-regressor term of `bias_correction = "dynamic"`.
#' @param tol Convergence tolerance: relative change of the fitted matrix
#'   between iterations.
#' @param max_iter Maximum iterations.
#' @param inference `"homoskedastic"`, `"heteroskedastic"`, `"cluster"` (by
#'   unit), `"bootstrap"` or `"none"`; see Inference.
#' @param n_draws Bootstrap draws for `inference = "bootstrap"`.
#' @param chunk_size Bootstrap replicates per chunk of [resample_chunks()]:
#'   the unit of work sent to a future worker and of progress. Each
#'   replicate draws from its own stream, so the answer does not depend on
#'   it (nor on the plan or [mkt_threads()]).
#' @param alpha Significance level of the intervals.
#' @param ... Must be empty.
#' @return An object of class `c("mkt_ife", "mkt_fit")` (see [mkt_fit]):
#'   the coefficients (bias-corrected when asked) with their covariance, and
#'   `factors` (T x r), `loadings` (N x r), `unit_effects`, `time_effects`,
#'   `intercept`, `sigma2`, `r`, `force`, `iterations`, `converged` and
#'   `absorbed`. `tidy(fit, what)` gives the tables `"factors"` and
#'   `"loadings"` (long form), `"ic"` (the Bai and Ng criteria by r, empty
#'   when r was given) and `"bias"` (empty without correction); `glance()`
#'   adds r, `sigma2` and the criteria at the fitted r.
#' @references Bai, J. (2009). Panel data models with interactive fixed
#'   effects. *Econometrica* 77(4), 1229-1279. Bai, J. and Ng, S. (2002).
#'   Determining the number of factors in approximate factor models.
#'   *Econometrica* 70(1), 191-221. Moon, H. R. and Weidner, M. (2015).
#'   Linear regression for panel with unknown number of factors as
#'   interactive fixed effects. *Econometrica* 83(4), 1543-1579. Moon, H. R.
#'   and Weidner, M. (2017). Dynamic linear panel regression models with
#'   interactive fixed effects. *Econometric Theory* 33(1), 158-195.
#' @seealso [counterfactual()] for treatment effects with factor-model
#'   counterfactuals.
#' @examples
#' set.seed(1)
#' d <- expand.grid(unit = 1:40, time = 1:20)
#' f <- sin(d$time / 3); lambda <- rnorm(40)[d$unit]
#' d$price <- rnorm(nrow(d)) + lambda * f
#' d$sales <- 2 - 1.5 * d$price + 3 * lambda * f + rnorm(nrow(d), sd = 0.3)
#' fit <- ife(sales ~ price | unit + time, d, r = 1)
#' fit
#' tidy(fit)
#' # Bai's bias correction, with heteroskedasticity-robust standard errors
#' fit_bc <- ife(sales ~ price | unit + time, d, r = 1, bias_correction = "bai",
#'               inference = "heteroskedastic")
#' tidy(fit_bc, "bias")
#' @export
ife <- function(formula, data, r = NULL, force = c("two-way", "unit", "time", "none"),
                r_max = 5, criterion = c("IC_p1", "IC_p2", "PC_p1"),
                bias_correction = c("none", "bai", "dynamic"), bias_lags = 4,
                tol = 1e-8, max_iter = 1000,
                inference = c("homoskedastic", "heteroskedastic", "cluster", "bootstrap", "none"),
                n_draws = 200, chunk_size = 50, alpha = 0.05, ...) {
  check_dots(...)
  force <- check_choice(force)
  criterion <- check_choice(criterion)
  bias_correction <- check_choice(bias_correction)
  chunk_size <- check_count(chunk_size, "chunk_size", min = 1)
  inference <- check_choice(inference)
  bias_lags <- check_count(bias_lags, "bias_lags", min = 1)
  alpha <- check_alpha(alpha)
  r_max <- check_count(r_max, "r_max", min = 0)
  max_iter <- check_count(max_iter, "max_iter", min = 1)
  n_draws <- check_count(n_draws, "n_draws", min = 2)
  if (!is.null(r)) r <- check_count(r, "r", min = 0)
  check_tol(tol)
  panel <- as_panel(formula, data)
  ife_fit(panel, r = r, force = force, r_max = r_max, criterion = criterion,
          bias_correction = bias_correction, bias_lags = bias_lags, tol = tol,
          max_iter = max_iter, inference = inference, n_draws = n_draws,
          chunk_size = chunk_size, alpha = alpha, call = match.call())
}

# The core: a panel in, a fit out. `regressors` (a named list of N x T
# matrices) replaces the panel's treatment and covariates, so that other
# estimators (exposure_did) fit a constructed regressor on the same panel.
ife_fit <- function(panel, r = NULL, force = "two-way", r_max = 5L, criterion = "IC_p1",
                    bias_correction = "none", bias_lags = 4L, tol = 1e-8, max_iter = 1000L,
                    inference = "homoskedastic", n_draws = 200L, chunk_size = 50L,
                    alpha = 0.05, regressors = NULL, call = NULL) {
  des <- ife_design(panel, force, regressors = regressors)
  # The fit is equivariant in the outcome: it runs on the outcome divided by
  # a power of two near its largest value (see outcome_scale()), so that
  # outcomes near 1e300 or 1e-300 do not overflow or underflow, and the
  # answers are scaled back below.
  s <- outcome_scale(des$Y[des$mask > 0])
  des$Y <- des$Y / s
  N <- nrow(des$Y)
  Tn <- ncol(des$Y)
  limit <- min(N, Tn) - 2L
  if (!is.null(r) && r > limit) {
    abort_mkt("r_too_large", c(
      "{.arg r} = {r} factors is too many for a panel of {N} units x {Tn} periods.",
      i = "Use at most {max(limit, 0)} factors (min(N, T) - 2)."
    ))
  }
  ctl <- list(force = force, tol = tol, max_iter = max_iter)
  if (bias_correction != "none") {
    if (inference == "bootstrap") {
      abort_mkt("bad_argument", c(
        "The bias correction comes with analytic standard errors.",
        i = "Use an analytic {.arg inference} (or {.code \"none\"}) with {.arg bias_correction}."
      ))
    }
    if (any(des$mask == 0)) {
      abort_mkt("unbalanced_panel", c(
        "The bias correction needs a balanced panel: {sum(des$mask == 0)} cell{?s} {?is/are} missing.",
        i = "Use {.code bias_correction = \"none\"}, or keep the units and periods observed throughout."
      ))
    }
  }

  ic <- NULL
  given_r <- !is.null(r)
  if (is.null(r)) {
    ks <- 0:min(r_max, limit)
    fits <- lapply(ks, function(k) ife_fit_started(des, k, ctl))
    ic <- bai_ng_table(fits, ks, N, Tn)
    r <- ic$r[which.min(ic[[criterion]])]
    ic$selected <- ic$r == r
    main <- fits[[r + 1L]]
  } else {
    main <- ife_fit_started(des, r, ctl)
  }
  ife_check_attained(des$Y, des$mask, des$X, main, r, ctl)
  warn_not_converged(main)

  p <- length(des$X)
  dof <- main$nobs - p - ife_fe_dof(force, N, Tn) - r * (N + Tn - r)
  sigma2 <- main$ssr / max(dof, 1)
  V <- NULL
  boot <- NULL
  if (p > 0 && inference %in% c("homoskedastic", "heteroskedastic", "cluster")) {
    V <- ife_vcov_analytic(des, main, sigma2, inference, force)
  } else if (p > 0 && inference == "bootstrap") {
    boot <- ife_unit_bootstrap(des, main, r, ctl, n_draws, chunk_size)
    V <- stats::cov(boot)
    dimnames(V) <- list(names(des$X), names(des$X))
  }
  beta_hat <- main$beta
  bias <- NULL
  if (p > 0 && bias_correction != "none") {
    terms <- if (bias_correction == "bai") c("cross_section", "time") else
      c("cross_section", "time", "predetermined")
    bt <- ife_bias_terms(des, main, force, bias_lags)
    total <- rowSums(bt[, terms, drop = FALSE])
    bias <- data.frame(term = names(des$X), uncorrected = main$beta, bt, total = total,
                       corrected = main$beta - total, stringsAsFactors = FALSE)
    for (nm in setdiff(c("cross_section", "time", "predetermined"), terms)) bias[[nm]] <- NA_real_
    rownames(bias) <- NULL
    beta_hat <- bias$corrected
  }
  est <- ife_beta_table(beta_hat, V, names(des$X), alpha, boot)

  # Back on the outcome's scale: coefficients, effects and loadings scale
  # with it, variances with its square; the factors are normalised.
  est <- unscale_table(est, s)
  if (!is.null(V)) V <- unscale_variance(V, s)
  bias <- unscale_table(bias, s, c("uncorrected", "cross_section", "time", "predetermined",
                                   "total", "corrected"))
  sigma2 <- unscale_variance(sigma2, s)
  main$L <- main$L * s
  main$mu <- main$mu * s
  main$alpha <- main$alpha * s
  main$xi <- main$xi * s
  dn_u <- as.character(panel$units)
  dn_t <- as.character(panel$times)
  factors <- main$F
  loadings <- main$L
  dimnames(factors) <- list(dn_t, if (r) paste0("f", seq_len(r)))
  dimnames(loadings) <- list(dn_u, if (r) paste0("f", seq_len(r)))
  ic_fit <- ife_unscale_ic(bai_ng_table(list(main), r, N, Tn), s)
  if (!is.null(ic)) ic <- ife_unscale_ic(ic, s)
  r_rule <- if (given_r) "given" else criterion
  empty_bias <- data.frame(term = character(0), uncorrected = numeric(0),
                           cross_section = numeric(0), time = numeric(0),
                           predetermined = numeric(0), total = numeric(0),
                           corrected = numeric(0))
  new_fit(
    "ife", estimates = est,
    method = sprintf("Interactive fixed effects (Bai 2009), r = %d, %s effects", r, force),
    estimand = if (p) {
      sprintf("Effect on %s of one unit of each regressor, net of %s effects and %d common factor%s%s",
              panel$vars$outcome, force, r, if (r == 1L) "" else "s",
              if (bias_correction != "none") sprintf(" (bias-corrected: %s)", bias_correction) else "")
    } else {
      sprintf("A pure factor model of %s: no regressors", panel$vars$outcome)
    },
    inference = if (p) ife_inference_label(inference, n_draws, N) else "none (no regressors)",
    alpha = alpha, call = call,
    n = list(obs = as.integer(main$nobs), units = N, periods = Tn, treated = NA_integer_,
             clusters = if (inference %in% c("cluster", "bootstrap")) N else NA_integer_),
    vcov = V,
    no_vcov = if (is.null(V)) {
      if (p == 0) "the model has no regressors" else "it was fitted with inference = \"none\""
    },
    vars = list(outcome = panel$vars$outcome, treatment = names(des$X)[1],
                regressors = names(des$X), unit = panel$vars$unit, time = panel$vars$time),
    glance = list(r = as.integer(r), r_rule = r_rule, force = force, sigma2 = sigma2,
                  IC_p1 = ic_fit$IC_p1, IC_p2 = ic_fit$IC_p2,
                  iterations = as.integer(main$iter), converged = isTRUE(main$converged)),
    tables = list(factors = factors_long(factors, panel$times),
                  loadings = loadings_long(loadings, panel$units, rep(FALSE, N)),
                  ic = if (is.null(ic)) data.frame() else ic,
                  bias = if (is.null(bias)) empty_bias else bias),
    factors = factors, loadings = loadings,
    unit_effects = stats::setNames(main$alpha, dn_u),
    time_effects = stats::setNames(main$xi, dn_t),
    intercept = main$mu, sigma2 = sigma2, r = as.integer(r), force = force,
    iterations = as.integer(main$iter), converged = isTRUE(main$converged),
    absorbed = des$absorbed, bias_correction = bias_correction,
    options = list(inference = inference, n_draws = if (inference == "bootstrap") n_draws else 0L,
                   criterion = criterion, force = force, bias_correction = bias_correction)
  )
}

ife_inference_label <- function(inference, n_draws, N) {
  switch(inference,
    homoskedastic = "Bai (2009) analytic variance, homoskedastic errors",
    heteroskedastic = "Bai (2009) analytic variance, heteroskedasticity-robust",
    cluster = sprintf("Bai (2009) analytic variance clustered by unit (%d clusters)", N),
    bootstrap = sprintf("unit bootstrap, %d draws (percentile intervals)", n_draws),
    none = "none")
}

# The factors and loadings in long form, one row per period (unit) and factor.
factors_long <- function(Fm, times) {
  r <- ncol(Fm)
  if (!r) return(data.frame(time = times[0], factor = character(0), value = numeric(0)))
  data.frame(time = rep(times, r), factor = rep(paste0("f", seq_len(r)), each = length(times)),
             value = as.vector(Fm), stringsAsFactors = FALSE)
}

loadings_long <- function(L, units, treated) {
  r <- ncol(L)
  if (!r) return(data.frame(unit = units[0], factor = character(0), value = numeric(0),
                            treated = logical(0)))
  data.frame(unit = rep(units, r), factor = rep(paste0("f", seq_len(r)), each = length(units)),
             value = as.vector(L), treated = rep(treated, r), stringsAsFactors = FALSE)
}

# --- shared with counterfactual() ------------------------------------------

force_code <- function(force) {
  c("none" = 0L, "unit" = 1L, "time" = 2L, "two-way" = 3L)[[force]]
}

check_tol <- function(tol, call = rlang::caller_env()) {
  if (!is.numeric(tol) || length(tol) != 1L || is.na(tol) || tol <= 0 || tol >= 1) {
    abort_mkt("bad_argument", c(
      "{.arg tol} must be a single number in (0, 1).",
      x = "You supplied {.val {format(tol)}}."
    ), call = call)
  }
  tol
}

# Outcome, regressors and the mask of cells the fit may use. Regressors that
# the additive effects absorb are dropped (with a message); the rest must not
# be collinear with the additive effects.
ife_design <- function(panel, force, regressors = NULL, call = rlang::caller_env()) {
  if (is.null(regressors)) {
    regressors <- c(if (!is.null(panel$D)) list(panel$D), panel$X)
    names(regressors) <- c(panel$vars$treatment, names(panel$X))
  }
  mask <- panel$observed
  for (x in regressors) mask <- mask & !is.na(x)
  absorbed <- character(0)
  keep <- vapply(names(regressors), function(v) {
    x <- regressors[[v]]
    x[!mask] <- NA
    !((force %in% c("unit", "two-way") && constant_within(x, 1L)) ||
        (force %in% c("time", "two-way") && constant_within(x, 2L)))
  }, logical(1))
  if (any(!keep)) {
    absorbed <- names(regressors)[!keep]
    cli::cli_inform(c(
      i = "{.field {absorbed}} {cli::qty(length(absorbed))}{?is/are} constant within units or periods and absorbed by the {force} fixed effects; dropped from the regression."
    ))
    regressors <- regressors[keep]
  }
  Y <- panel$Y
  Y[!mask] <- 0
  X <- lapply(regressors, function(x) {
    x[!mask] <- 0
    x
  })
  # An outcome that the additive effects fit exactly leaves nothing for the
  # factors and the regressors: every coefficient is zero with no error.
  # (Relative to its largest value, so that tiny outcomes do not underflow.)
  y_max <- max(abs(Y))
  if (any(mask) && (y_max == 0 ||
      sqrt(sum(mask_within(Y / y_max, mask, force)^2)) <= 1e-10 * sqrt(sum(mask)))) {
    abort_mkt("no_variation", c(
      "The outcome {.field {panel$vars$outcome}} has no variation left once the {switch(force, 'two-way' = 'unit and time effects are', unit = 'unit effects are', time = 'time effects are', none = 'grand mean is')} removed.",
      i = "Every effect on it is exactly zero, with no sampling error to test against; check that {.field {panel$vars$outcome}} is the outcome you meant."
    ), call = call)
  }
  if (length(X)) check_collinear(X, mask, force, call)
  list(Y = Y, mask = mask * 1, X = X, absorbed = absorbed)
}

# TRUE when x (NA on unused cells) is constant along each row (margin 1) or
# each column (margin 2).
constant_within <- function(x, margin) {
  if (margin == 2L) x <- t(x)
  m <- rowMeans(x, na.rm = TRUE)
  m[!is.finite(m)] <- 0
  dev <- rowSums(abs(x - m), na.rm = TRUE)
  all(dev <= 1e-10 * pmax(1, abs(m)) * ncol(x))
}

# Rank of the regressors after the additive effects, on the observed cells:
# weighted alternating demeaning (one pass when the panel is balanced), then
# a pivoted Cholesky of the correlation of what is left.
check_collinear <- function(X, mask, force, call) {
  w <- mask > 0
  R <- lapply(X, mask_within, mask = mask, force = force)
  p <- length(R)
  H <- matrix(0, p, p, dimnames = list(names(X), names(X)))
  for (k in seq_len(p)) for (l in seq_len(k)) H[k, l] <- H[l, k] <- sum(R[[k]] * R[[l]])
  scale <- sqrt(pmax(diag(H), 0))
  ok <- scale > 1e-8 * vapply(X, function(x) sqrt(sum((x * w)^2)) + 1e-300, numeric(1))
  rank_ok <- all(ok)
  bad <- names(X)[!ok]
  if (rank_ok && p > 1) {
    C <- H / outer(scale, scale)
    ch <- suppressWarnings(chol(C, pivot = TRUE, tol = 1e-9))
    rk <- attr(ch, "rank")
    if (rk < p) {
      rank_ok <- FALSE
      bad <- names(X)[attr(ch, "pivot")[(rk + 1):p]]
    }
  }
  if (!rank_ok) {
    abort_mkt("collinear", c(
      "The regressors are collinear once the {force} fixed effects are removed.",
      x = "{.field {bad}} {cli::qty(length(bad))}{?is/are} a linear combination of the others.",
      i = "Drop {.field {bad}} from the formula."
    ), call = call)
  }
  invisible(TRUE)
}

# x (N x T) with the additive effects of `force` removed on the cells where
# mask is true: weighted alternating demeaning, one pass when the panel is
# balanced. Zero on the other cells.
mask_within <- function(x, mask, force) {
  w <- mask > 0
  nr <- pmax(rowSums(w), 1)
  nc <- pmax(colSums(w), 1)
  z <- x * w
  for (pass in 1:100) {
    old <- z
    z <- (z - sum(z) / sum(w)) * w
    if (force %in% c("unit", "two-way")) z <- (z - rowSums(z) / nr) * w
    if (force %in% c("time", "two-way")) z <- (z - rep(colSums(z) / nc, each = nrow(z))) * w
    if (all(w) || max(abs(z - old)) <= 1e-10 * max(abs(x))) break
  }
  z
}

ife_fe_dof <- function(force, N, Tn) {
  1 + switch(force, "two-way" = (N - 1) + (Tn - 1), "unit" = N - 1, "time" = Tn - 1, "none" = 0)
}

# On an unbalanced panel, EM from a crude fill can crawl when the regressors
# load on the factors; the fully observed units, fitted without EM, give a
# start close to the answer when there are enough of them.
ife_fit_started <- function(des, r, ctl) {
  full <- rowSums(des$mask) == ncol(des$mask)
  if (r > 0 && !all(full) && sum(full) >= max(r + 2L, 3L)) {
    start <- ife_engine(des$Y[full, , drop = FALSE], des$mask[full, , drop = FALSE],
                        lapply(des$X, function(x) x[full, , drop = FALSE]), r, ctl)
    return(ife_engine(des$Y, des$mask, des$X, r, ctl, F0 = start$F, beta0 = start$beta))
  }
  ife_engine(des$Y, des$mask, des$X, r, ctl)
}

# The one caller of the C++ fit. Turns C++ failures into classed R errors.
ife_engine <- function(Y, mask, X, r, ctl, F0 = NULL, beta0 = NULL, soft = FALSE,
                       lambda = 0, fill0 = NULL, call = rlang::caller_env()) {
  if (is.null(F0)) F0 <- matrix(0, 0, 0)
  if (is.null(beta0)) beta0 <- numeric(0)
  if (is.null(fill0) || !identical(dim(fill0), dim(Y))) fill0 <- matrix(0, 0, 0)
  tryCatch(
    cpp_ife_fit(Y, mask, unname(X), as.integer(r), force_code(ctl$force), ctl$tol,
                as.integer(ctl$max_iter), soft, lambda, F0, beta0, fill0),
    error = function(e) {
      if (grepl("collinear", conditionMessage(e))) {
        abort_mkt("collinear", c(
          "The regressors are collinear with the fixed effects.",
          i = "Drop regressors that are constant within units or periods, or linear combinations of others."
        ), call = call)
      }
      abort_mkt("fit_failed", c("The interactive fixed effects fit failed.",
                                x = conditionMessage(e)), call = call)
    })
}

# The one caller of the C++ projection of new units on known factors.
ife_project <- function(Y, pre, X, fit, force) {
  cpp_ife_project(Y, pre * 1, unname(X), fit$beta, fit$mu, fit$xi, fit$F, force_code(force))
}

# With a grand mean only the fits mu 11' + L F' (r factors) do not form a
# closed set: letting mu grow without bound against a factor whose loadings
# are nearly constant, mu 11' + L F' tends to a_i + b_t plus r - 1 factors,
# additive unit and time effects. When that edge fits the data at least as
# well as anything inside, the least-squares fit does not exist: the
# iterations drift towards the edge and wherever they stop is arbitrary.
# The edge is fitted (two-way effects, r - 1 factors, the regressors that
# two-way effects do not absorb) and the fit refused when it is not better.
ife_check_attained <- function(Y, mask, X, fit, r, ctl, call = rlang::caller_env()) {
  if (ctl$force != "none" || is.na(r) || r < 1L) return(invisible(TRUE))
  keep <- vapply(X, function(x) {
    x[mask == 0] <- NA
    !(constant_within(x, 1L) || constant_within(x, 2L))
  }, logical(1))
  edge_ctl <- list(force = "two-way", tol = ctl$tol, max_iter = ctl$max_iter)
  edge <- tryCatch(ife_engine(Y, mask, X[keep], r - 1L, edge_ctl),
                   mktcausal_error = function(e) NULL)
  if (is.null(edge) || edge$ssr > fit$ssr * (1 + 1e-9)) return(invisible(TRUE))
  abort_mkt("fit_not_attained", c(
    "With a grand mean only ({.code force = \"none\"}) and {r} factor{?s}, the least-squares fit does not exist for these data.",
    x = "The fit keeps improving as the grand mean grows against a factor, towards additive unit and time effects with {r - 1} factor{?s} (sum of squared residuals {signif(edge$ssr, 6)}, against {signif(fit$ssr, 6)} after {fit$iter} iterations).",
    i = "Use {.code force = \"two-way\"} with {.code r = {r - 1}} (the limit), or {.code force = \"two-way\"} with more factors."
  ), call = call)
}

warn_not_converged <- function(fit) {
  if (!isTRUE(fit$converged)) {
    warn_mkt("not_converged", c(
      "The fit did not converge after {fit$iter} iterations.",
      i = "Raise {.arg max_iter}, loosen {.arg tol}, or use fewer factors."
    ))
  }
  invisible(fit)
}

# --- number of factors ------------------------------------------------------

bai_ng_table <- function(fits, ks, N, Tn) {
  NT <- N * Tn
  V <- vapply(fits, function(f) f$ssr / f$nobs, numeric(1))
  pen <- (N + Tn) / NT
  sigma2_max <- V[length(V)]
  data.frame(
    r = ks,
    V = V,
    IC_p1 = log(V) + ks * pen * log(NT / (N + Tn)),
    IC_p2 = log(V) + ks * pen * log(min(N, Tn)),
    PC_p1 = V + ks * sigma2_max * pen * log(NT / (N + Tn)),
    iterations = vapply(fits, function(f) f$iter, numeric(1)),
    converged = vapply(fits, function(f) f$converged, logical(1))
  )
}

# The Bai and Ng table of a fit of the outcome divided by s, on the
# outcome's scale: V and PC_p1 are variances, and the log criteria move by
# log(s^2) (so the choice of r does not change).
ife_unscale_ic <- function(tab, s) {
  if (s == 1) return(tab)
  tab$V <- tab$V * s^2
  tab$IC_p1 <- tab$IC_p1 + 2 * log(s)
  tab$IC_p2 <- tab$IC_p2 + 2 * log(s)
  tab$PC_p1 <- tab$PC_p1 * s^2
  tab
}

# --- inference --------------------------------------------------------------

# Each regressor with the nuisance directions projected out: the additive
# effects, then M_L (.) M_F for the factor part. The cross-product of these
# is Bai's D_0 (times NT), so the variance is its inverse times sigma^2, or
# the unit-clustered sandwich around it.
ife_vcov_analytic <- function(des, fit, sigma2, inference, force) {
  mask <- des$mask
  Z <- lapply(des$X, function(x) {
    z <- x * mask
    z <- ife_within(z, fit, force)
    z * mask
  })
  p <- length(Z)
  H <- matrix(0, p, p)
  for (k in seq_len(p)) for (l in seq_len(k)) H[k, l] <- H[l, k] <- sum(Z[[k]] * Z[[l]])
  ife_check_hessian(H, des$X, Z)
  Hinv <- solve(H)
  if (inference == "homoskedastic") {
    V <- sigma2 * Hinv
  } else if (inference == "heteroskedastic") {
    e2 <- ((des$Y - fit$fit) * mask)^2
    S <- matrix(0, p, p)
    for (k in seq_len(p)) for (l in seq_len(k)) S[k, l] <- S[l, k] <- sum(Z[[k]] * Z[[l]] * e2)
    V <- Hinv %*% S %*% Hinv
  } else {
    e <- (des$Y - fit$fit) * mask
    S <- vapply(Z, function(z) rowSums(z * e), numeric(nrow(e)))
    S <- matrix(S, ncol = p)
    N <- nrow(e)
    V <- Hinv %*% crossprod(S) %*% Hinv * N / (N - 1)
  }
  dimnames(V) <- list(names(des$X), names(des$X))
  V
}

# A regressor that the additive effects, the loadings and the factors
# explain entirely (for example exactly lambda_i f_t) has no variation left
# to estimate its coefficient from: a pivoted Cholesky of the correlation of
# what is left (Z) finds it, relative to each regressor's own size.
ife_check_hessian <- function(H, X, Z, call = rlang::caller_env()) {
  p <- ncol(H)
  size <- vapply(X, function(x) sum(x^2), numeric(1))
  ok <- diag(H) > 1e-20 * size
  bad <- names(X)[!ok]
  if (!length(bad) && p > 1L) {
    d <- sqrt(diag(H))
    ch <- suppressWarnings(chol(H / outer(d, d), pivot = TRUE, tol = 1e-10))
    rk <- attr(ch, "rank")
    if (rk < p) bad <- names(X)[attr(ch, "pivot")[seq.int(rk + 1L, p)]]
  }
  if (length(bad)) {
    abort_mkt("collinear", c(
      "Once the fixed effects, the loadings and the factors are projected out, nothing of {.field {bad}} is left (or {?it is/they are} collinear with the other regressors).",
      i = "Drop {.field {bad}}, or fit fewer factors."
    ), call = call)
  }
  invisible(TRUE)
}

# The asymptotic bias terms of Bai's estimator on a balanced panel, as
# Moon and Weidner (2017) write them, each already multiplied by the inverse
# Hessian so that beta_hat minus a column removes that term. X is used with
# the additive effects removed; the additive effects are known factors (a
# constant factor under unit effects) and known loadings (a constant
# loading under time effects), so they join the projections. With
# A = L (L'L)^-1 (F'F)^-1 F' and e the residuals:
#   cross_section: tr(X' M_L diag_i(sum_t e_it^2) A)
#   time:          tr(diag_t(sum_i e_it^2) M_F X' A)
#   predetermined: sum over 1 <= s - t <= lags of P_F[s, t] sum_i e_it x_is
# and each is -H^-1 times the vector over regressors, H the Hessian of
# ife_vcov_analytic().
ife_bias_terms <- function(des, fit, force, lags) {
  N <- nrow(des$Y)
  Tn <- ncol(des$Y)
  e <- des$Y - fit$fit
  unit_fe <- force %in% c("unit", "two-way")
  time_fe <- force %in% c("time", "two-way")
  Fa <- cbind(fit$F, if (unit_fe) rep(1, Tn))
  La <- cbind(fit$L, if (time_fe) rep(1, N))
  Fq <- if (NCOL(Fa)) qr.Q(qr(Fa)) else matrix(0, Tn, 0)
  Lq <- if (NCOL(La)) qr.Q(qr(La)) else matrix(0, N, 0)
  r <- ncol(fit$F)
  A <- if (r) fit$L %*% solve(crossprod(fit$L)) %*% solve(crossprod(fit$F)) %*% t(fit$F) else
    matrix(0, N, Tn)
  PF <- tcrossprod(Fq)
  s_unit <- rowSums(e^2)
  s_time <- colSums(e^2)
  lags <- min(lags, Tn - 1L)
  p <- length(des$X)
  raw <- matrix(0, p, 3, dimnames = list(names(des$X), c("cross_section", "time", "predetermined")))
  Z <- vector("list", p)
  for (k in seq_len(p)) {
    x <- ife_within(des$X[[k]], list(F = matrix(0, Tn, 0)), force)
    xl <- x - Lq %*% crossprod(Lq, x)
    xf <- x - (x %*% Fq) %*% t(Fq)
    Z[[k]] <- xl - (xl %*% Fq) %*% t(Fq)
    raw[k, "cross_section"] <- sum(xl * (s_unit * A))
    raw[k, "time"] <- sum(xf * A * rep(s_time, each = N))
    G <- crossprod(e, x)
    pre <- 0
    for (d in seq_len(lags)) {
      t1 <- seq_len(Tn - d)
      pre <- pre + sum(PF[cbind(t1 + d, t1)] * G[cbind(t1, t1 + d)])
    }
    raw[k, "predetermined"] <- pre
  }
  # With a grand mean only, the Hessian's projection is ife_within()'s.
  if (force == "none" && r > 0) Z <- lapply(des$X, function(x) ife_within(x, fit, force))
  H <- matrix(0, p, p)
  for (k in seq_len(p)) for (l in seq_len(k)) H[k, l] <- H[l, k] <- sum(Z[[k]] * Z[[l]])
  ife_check_hessian(H, des$X, Z)
  out <- -solve(H, raw)
  dimnames(out) <- dimnames(raw)
  out
}

# z with the nuisance directions of the fit projected out: the additive
# effects, then M_L (.) M_F. Under unit (time) effects the factors
# (loadings) are orthogonal to the constant, so demeaning first and then
# projecting is the projection on the complement of both. A grand mean alone
# is not orthogonal to L f' + g F', so there the constant's own residual
# direction, M_L 11' M_F, is removed after the factor projections.
ife_within <- function(z, fit, force) {
  r <- ncol(fit$F)
  if (force == "none" && r > 0) {
    mf <- function(m) {
      m <- m - (m %*% Fq) %*% t(Fq)
      m - Lq %*% crossprod(Lq, m)
    }
    Fq <- qr.Q(qr(fit$F))
    Lq <- qr.Q(qr(fit$L))
    z <- mf(z)
    v <- mf(matrix(1, nrow(z), ncol(z)))
    vv <- sum(v * v)
    if (vv > 1e-12 * length(v)) z <- z - (sum(z * v) / vv) * v
    return(z)
  }
  z <- z - mean(z)
  if (force %in% c("unit", "two-way")) z <- z - rowMeans(z)
  if (force %in% c("time", "two-way")) z <- z - rep(colMeans(z), each = nrow(z))
  if (r > 0) {
    Fq <- qr.Q(qr(fit$F))
    Lq <- qr.Q(qr(fit$L))
    z <- z - (z %*% Fq) %*% t(Fq)
    z <- z - Lq %*% crossprod(Lq, z)
  }
  z
}

# Replicate b resamples whole units in C++ from stream b of one seed drawn
# from R's RNG here, so set.seed() fixes the result under any plan and
# chunking; each chunk of replicates is one C++ call, warm-started from the
# main fit's factors and beta. The closure holds what the chunk uses, so
# future's scan for globals is skipped.
ife_unit_bootstrap <- function(des, main, r, ctl, n_draws, chunk_size = 50L) {
  seed <- draw_cpp_seed()
  F0 <- if (r > 0) main$F else matrix(0, 0, 0)
  ife_check_replicate_memory(dim(des$Y), length(des$X), "The unit bootstrap")
  # The replicates of a chunk run on mkt_threads() threads (read in the
  # process that runs the chunk, so a future worker uses its own share).
  res <- resample_chunks(n_draws, function(idx) {
    cpp_ife_boot_chunk(des$Y, des$mask, unname(des$X), as.integer(r), force_code(ctl$force),
                       ctl$tol, as.integer(ctl$max_iter), F0, main$beta, as.integer(idx), seed,
                       threads_for())
  }, chunk_size = chunk_size, label = "unit bootstrap", each = "chunk",
    globals = list())
  out <- do.call(rbind, lapply(res, function(x) matrix(x$beta, ncol = length(des$X))))
  failed <- sum(unlist(lapply(res, `[[`, "failed")))
  check_replicates_left(n_draws, failed, "bootstrap")
  if (failed > 0) {
    warn_mkt("bootstrap_failed", c(
      "Dropped {failed} of {n_draws} bootstrap replicates: their resampled regressors were collinear.",
      i = "The standard errors use the other {n_draws - failed}."
    ))
    out <- out[stats::complete.cases(out), , drop = FALSE]
  }
  colnames(out) <- names(des$X)
  out
}

# A variance needs two replicates: when (almost) every replicate's fit
# failed, there is no standard error to report.
check_replicates_left <- function(n, failed, what, call = rlang::caller_env()) {
  if (n - failed < 2L) {
    abort_mkt("fit_failed", c(
      "{failed} of the {n} {what} replicates failed (their resampled regressors were collinear, or a treated unit had too few pre-periods), which leaves no standard error.",
      i = "Use fewer covariates or factors, or another {.arg inference}."
    ), call = call)
  }
  invisible(TRUE)
}

# Each thread of a replicate loop holds one replicate's fit: the resampled
# outcome, mask and regressors and about a dozen N x T work matrices.
ife_check_replicate_memory <- function(dims, p, what, call = rlang::caller_env()) {
  bytes <- mkt_threads() * (p + 14) * prod(as.numeric(dims)) * 8
  check_memory(bytes, paste(what, "with", mkt_threads(), "threads"),
               "Use fewer threads ({.code mkt_threads(1)}) or a smaller panel.", call = call)
}

ife_beta_table <- function(beta, V, terms, alpha, boot = NULL) {
  if (!length(terms)) {
    return(data.frame(term = character(0), estimate = numeric(0), std.error = numeric(0),
                      statistic = numeric(0), p.value = numeric(0), conf.low = numeric(0),
                      conf.high = numeric(0)))
  }
  se <- if (is.null(V)) rep(NA_real_, length(beta)) else sqrt(diag(V))
  z <- stats::qnorm(alpha / 2, lower.tail = FALSE)
  out <- data.frame(term = terms, estimate = beta, std.error = se,
                    statistic = beta / se, p.value = 2 * stats::pnorm(-abs(beta / se)),
                    conf.low = beta - z * se, conf.high = beta + z * se,
                    stringsAsFactors = FALSE)
  if (!is.null(boot)) {
    q <- apply(boot, 2, stats::quantile, probs = c(alpha / 2, 1 - alpha / 2), names = FALSE)
    out$conf.low <- q[1, ]
    out$conf.high <- q[2, ]
  }
  rownames(out) <- NULL
  out
}
