#' Double machine learning for the partially linear panel model
#'
#' Estimates the effect \eqn{\theta} of a (continuous or binary) treatment in
#' \deqn{y_{it} = \theta d_{it} + g(x_{it}) + \alpha_i + \lambda_t +
#' \varepsilon_{it}, \quad d_{it} = m(x_{it}) + \mu_i + \tau_t + v_{it}}
#' where \eqn{g} and \eqn{m} are unknown functions of the controls, learned
#' by machine learning (Chernozhukov et al. 2018). Unit and time fixed
#' effects are removed first (the within transformation of all variables);
#' then \eqn{E[\tilde y | \tilde x]} and \eqn{E[\tilde d | \tilde x]} are
#' learned by cross-fitting, with folds made of whole units so that no unit
#' is used to predict itself, and \eqn{\theta} is the slope of the outcome
#' residuals on the treatment residuals (the partialling-out score, pooled
#' over folds: "DML2").
#'
#' @section Assumption:
#' Conditional unconfoundedness: given the controls and the fixed effects,
#' the treatment's remaining variation is as good as random, and the
#' treatment effect is constant (or \eqn{\theta} is read as a
#' variance-weighted average). The learners only decide how flexibly the
#' controls are adjusted for; they cannot fix a missing confounder.
#'
#' @section Learners:
#' Learners see the controls after the fixed effects are removed. Because
#' \eqn{g(x_{it})} enters the demeaned outcome as the within transform of
#' \eqn{g}, which is not a function of the demeaned controls, by default
#' (`basis = TRUE`) the controls are first expanded into a natural-spline
#' basis of each control (4 degrees of freedom, knots at quantiles) plus the
#' pairwise products of the standardized controls (up to 10 controls), and
#' the expanded columns are within-transformed: a learner linear in these
#' columns then fits \eqn{g} and \eqn{m} exactly as they enter.
#' * `"ridge"` (default, needs nothing): ridge regression with the penalty
#'   chosen by generalized cross-validation in closed form from one SVD.
#' * `"linear"`: least squares.
#' * `"lasso"`: `glmnet::cv.glmnet()` (penalty `lambda.min`), when glmnet is
#'   installed.
#' * `"forest"`: `ranger::ranger()` with 500 trees, when ranger is installed.
#' * Any function `function(x, y, newx)` returning predictions for the rows
#'   of the matrix `newx` after learning from `x` and `y`. If it fails, the
#'   error (class `mktcausal_error_learner_failed`) names the repetition, the
#'   fold and the nuisance function being learned.
#'
#' @section Inference:
#' Standard errors are clustered by unit: \eqn{\hat V = \frac{G}{G-1}
#' \sum_g (\sum_{i \in g} \hat\psi_i)^2 / (\sum_i \hat v_i^2)^2} with
#' \eqn{\hat\psi_i = (\hat u_i - \hat\theta \hat v_i)\hat v_i};
#' `cluster = FALSE` gives the heteroskedasticity-robust version without the
#' factor (as DoubleML's default). With `n_rep` repetitions of the random
#' split, the estimate is the median of the \eqn{\hat\theta_r} and the
#' variance the median of \eqn{\hat V_r + (\hat\theta_r - \hat\theta)^2}.
#' Repetitions run through [resample_chunks()], so `set.seed()` reproduces
#' them under any future plan.
#'
#' @param formula `outcome ~ treatment + controls | unit + time`; at least one
#'   control.
#' @param data A long data frame, tibble or data.table.
#' @param learner `"ridge"`, `"linear"`, `"lasso"`, `"forest"` or a function;
#'   see Learners. A list of two gives the outcome and treatment learners.
#' @param n_folds Number of folds of units.
#' @param n_rep Number of repetitions of the random split.
#' @param basis Expand the controls before removing the fixed effects (see
#'   Learners); `FALSE` gives the learners the demeaned controls only.
#' @param folds Optional name of a column giving each unit's fold (integers
#'   1 to `n_folds`, constant within units); the split is then fixed and
#'   `n_rep` is 1.
#' @param cluster `NULL` (default) clusters by unit; `FALSE` for
#'   heteroskedasticity-robust standard errors.
#' @param alpha Level for confidence intervals.
#' @param ... Unused.
#' @return An object of class `c("mkt_dml", "mkt_fit")` with `estimates` (one
#'   row, the treatment), `vcov`, `repetitions` (one row per repetition:
#'   `estimate`, `std.error`), the learner names and counts.
#' @references Chernozhukov, V., Chetverikov, D., Demirer, M., Duflo, E.,
#'   Hansen, C., Newey, W. and Robins, J. (2018). Double/debiased machine
#'   learning for treatment and structural parameters. *The Econometrics
#'   Journal*, 21(1), C1-C68.
#' @examples
#' set.seed(1)
#' d <- expand.grid(store = 1:60, week = 1:6)
#' d$temp <- rnorm(nrow(d))
#' d$discount <- sin(d$temp) + rnorm(nrow(d))
#' d$sales <- 0.5 * d$discount + d$temp^2 + d$store / 20 + rnorm(nrow(d))
#' fit <- dml(sales ~ discount + temp | store + week, d, n_rep = 2)
#' fit
#' @export
dml <- function(formula, data, learner = "ridge", n_folds = 5, n_rep = 3,
                basis = TRUE, folds = NULL, cluster = NULL, alpha = 0.05, ...) {
  alpha <- check_alpha(alpha)
  n_folds <- check_count(n_folds, "n_folds", min = 2)
  n_rep <- check_count(n_rep, "n_rep", min = 1)
  learners <- resolve_learners(learner)
  panel <- mkt_panel(formula, data)
  if (is.null(panel$D) || !length(panel$vars$covariates)) {
    abort_mkt("bad_formula", c(
      "{.fn dml} needs a treatment and at least one control: {.code outcome ~ treatment + controls | unit + time}.",
      i = "Without controls, {.fn dose_response} (continuous) or a fixed-effects regression is the estimator."
    ))
  }
  cells <- panel_cells(panel)
  covs <- panel$vars$covariates
  keep <- stats::complete.cases(cells$X[, covs, drop = FALSE])
  fe <- list(unit = cells$unit[keep], time = cells$time[keep])
  raw <- cells$X[keep, covs, drop = FALSE]
  # The nuisance g(x_it) enters the within-transformed outcome as the within
  # transform of g, which is not a function of the demeaned controls. Expanding
  # the controls into a basis before the transformation keeps learners that
  # are linear in their inputs exact: within(B(x)) beta = within(B(x) beta).
  feats <- if (isTRUE(basis)) control_basis(raw)(raw) else raw
  M <- within_transform(cbind(y = cells$y[keep], d = cells$d[keep], feats), fe)
  X <- M[, -(1:2), drop = FALSE]
  y <- M[, "y"]
  d <- M[, "d"]
  unit <- fe$unit
  units <- sort(unique(unit))
  if (length(units) < n_folds) {
    abort_mkt("bad_argument", c(
      "{.arg n_folds} ({n_folds}) exceeds the number of units ({length(units)}).",
      i = "Folds are made of whole units; use fewer folds."
    ))
  }
  fixed <- NULL
  if (!is.null(folds)) {
    m <- panel_side_column(panel, data, folds, "folds")
    fu <- suppressWarnings(as.integer(m[cbind(cells$unit, cells$time)][keep]))
    per_unit <- tapply(fu, unit, function(f) unique(f))
    if (anyNA(fu) || is.list(per_unit) || !all(per_unit %in% seq_len(n_folds))) {
      abort_mkt("bad_argument", c(
        "The folds column {.field {folds}} must hold one integer from 1 to {n_folds} per unit.",
        i = "Assign whole units to folds."
      ))
    }
    fixed <- fu
    n_rep <- 1L
  }
  cl <- if (isFALSE(cluster)) NULL else unit

  one_rep <- function(r) {
    fold <- if (is.null(fixed)) {
      unit_fold <- sample(rep_len(seq_len(n_folds), length(units)))
      unit_fold[match(unit, units)]
    } else fixed
    l_hat <- m_hat <- numeric(length(y))
    for (k in seq_len(n_folds)) {
      test <- fold == k
      l_hat[test] <- run_learner(learners$outcome, X[!test, , drop = FALSE], y[!test],
                                 X[test, , drop = FALSE], r, k, "outcome")
      m_hat[test] <- run_learner(learners$treatment, X[!test, , drop = FALSE], d[!test],
                                 X[test, , drop = FALSE], r, k, "treatment")
    }
    dml_score(y - l_hat, d - m_hat, cl)
  }
  reps <- resample_chunks(n_rep, function(idx) lapply(idx, one_rep), chunk_size = 1L,
                          label = "cross-fits")
  reps <- do.call(rbind, lapply(unlist(reps, recursive = FALSE), as.data.frame))
  theta <- stats::median(reps$estimate)
  v <- stats::median(reps$std.error^2 + (reps$estimate - theta)^2)
  name <- panel$vars$treatment
  G <- length(units)
  df <- if (is.null(cl)) length(y) - 1 else G - 1
  est <- fe_estimates(stats::setNames(theta, name),
                      matrix(v, 1, 1, dimnames = list(name, name)), df, alpha)
  structure(list(
    estimates = est, vcov = matrix(v, 1, 1, dimnames = list(name, name)),
    repetitions = reps, learner = learners$names, n_folds = n_folds, n_rep = n_rep,
    alpha = alpha, n = length(y), n_units = G, n_periods = length(unique(fe$time)),
    se_type = if (is.null(cl)) "HC0" else "CR1", panel = panel
  ), class = c("mkt_dml", "mkt_fit"))
}

# The partialling-out score: theta from pooled residuals and its variance,
# clustered when cluster labels are given.
dml_score <- function(u, v, cluster) {
  theta <- sum(u * v) / sum(v^2)
  psi <- (u - theta * v) * v
  if (is.null(cluster)) {
    var <- sum(psi^2) / sum(v^2)^2
  } else {
    s <- rowsum(psi, cluster, reorder = FALSE)
    G <- length(s)
    var <- G / (G - 1) * sum(s^2) / sum(v^2)^2
  }
  list(estimate = theta, std.error = sqrt(var))
}

resolve_learners <- function(learner, call = rlang::caller_env()) {
  if (is.list(learner) && !is.function(learner)) {
    if (length(learner) != 2L) {
      abort_mkt("bad_argument", "A list {.arg learner} must hold two learners: outcome, then treatment.",
                call = call)
    }
    a <- resolve_learners(learner[[1]], call)
    b <- resolve_learners(learner[[2]], call)
    return(list(outcome = a$outcome, treatment = b$outcome, names = c(a$names[1], b$names[1])))
  }
  if (is.function(learner)) {
    return(list(outcome = learner, treatment = learner, names = c("custom", "custom")))
  }
  if (!is.character(learner) || length(learner) != 1L ||
      !learner %in% c("ridge", "linear", "lasso", "forest")) {
    abort_mkt("bad_argument", c(
      "{.arg learner} must be {.val ridge}, {.val linear}, {.val lasso}, {.val forest} or a function {.code function(x, y, newx)}.",
      x = "You supplied {.obj_type_friendly {learner}}."
    ), call = call)
  }
  pkg <- c(lasso = "glmnet", forest = "ranger")[learner]
  if (!is.na(pkg) && !requireNamespace(pkg, quietly = TRUE)) {
    abort_mkt("missing_package", c(
      "The {.val {learner}} learner needs the {.pkg {pkg}} package.",
      i = "Install it with {.code install.packages(\"{pkg}\")}, or use the built-in {.code learner = \"ridge\"}."
    ), call = call)
  }
  f <- switch(learner, ridge = learner_ridge, linear = learner_linear,
              lasso = learner_lasso, forest = learner_forest)
  list(outcome = f, treatment = f, names = c(learner, learner))
}

run_learner <- function(f, x, y, newx, rep, fold, what) {
  pred <- tryCatch(f(x, y, newx), error = function(e) {
    abort_mkt("learner_failed", c(
      "The learner failed on fold {fold} of repetition {rep} while learning the {what} (E[{what} | controls]).",
      x = conditionMessage(e),
      i = "Check that the learner takes {.code function(x, y, newx)} and returns one prediction per row of {.code newx}."
    ), call = NULL, parent = e)
  })
  pred <- as.numeric(pred)
  if (length(pred) != nrow(newx) || anyNA(pred)) {
    abort_mkt("learner_failed", c(
      "The learner returned {length(pred)} prediction{?s} on fold {fold} of repetition {rep} for the {what}, with {sum(is.na(pred))} missing; {nrow(newx)} were needed.",
      i = "It must return one finite prediction per row of {.code newx}."
    ), call = NULL)
  }
  pred
}

learner_linear <- function(x, y, newx) {
  fit <- stats::lm.fit(cbind(1, x), y)
  beta <- fit$coefficients
  beta[is.na(beta)] <- 0
  as.vector(cbind(1, newx) %*% beta)
}

# Ridge with the penalty minimising generalized cross-validation. With the
# SVD X = U S V' of the standardized columns, the fitted values for penalty l
# are U diag(s^2 / (s^2 + l)) U'y and their degrees of freedom the sum of
# those shrinkage factors, so the whole GCV path costs one SVD.
learner_ridge <- function(x, y, newx) {
  mu <- colMeans(x)
  sdv <- apply(x, 2, stats::sd)
  sdv[!is.finite(sdv) | sdv == 0] <- 1
  xc <- sweep(sweep(x, 2, mu), 2, sdv, "/")
  yc <- y - mean(y)
  s <- svd(xc)
  Uy <- crossprod(s$u, yc)
  n <- length(y)
  lambdas <- max(s$d)^2 * 10^seq(-8, 2, by = 0.25)
  gcv <- vapply(lambdas, function(l) {
    shrink <- s$d^2 / (s$d^2 + l)
    fitted <- s$u %*% (shrink * Uy)
    (sum((yc - fitted)^2) / n) / (1 - sum(shrink) / n)^2
  }, numeric(1))
  l <- lambdas[which.min(gcv)]
  beta <- s$v %*% ((s$d / (s$d^2 + l)) * Uy)
  newc <- sweep(sweep(newx, 2, mu), 2, sdv, "/")
  as.vector(mean(y) + newc %*% beta)
}

# The basis of the controls: each control standardized, a natural spline of
# each control with more than five distinct values, and pairwise products of
# the standardized controls. It uses the controls only, never the outcome or
# the treatment, so building it on all rows does not leak across folds.
control_basis <- function(x) {
  p <- ncol(x)
  specs <- lapply(seq_len(p), function(j) {
    v <- x[, j]
    if (length(unique(v)) <= 5) return(NULL)
    splines::ns(v, df = 4)
  })
  ctr <- colMeans(x)
  scl <- apply(x, 2, stats::sd)
  scl[!is.finite(scl) | scl == 0] <- 1
  function(newx) {
    z <- sweep(sweep(newx, 2, ctr), 2, scl, "/")
    colnames(z) <- colnames(x)
    parts <- list(z)
    for (j in seq_len(p)) {
      if (is.null(specs[[j]])) next
      sp <- matrix(stats::predict(specs[[j]], newx[, j]), nrow = nrow(newx))
      colnames(sp) <- paste0(colnames(x)[j], "_ns", seq_len(ncol(sp)))
      parts[[length(parts) + 1L]] <- sp
    }
    if (p >= 2 && p <= 10) {
      pairs <- utils::combn(p, 2)
      pr <- z[, pairs[1, ], drop = FALSE] * z[, pairs[2, ], drop = FALSE]
      colnames(pr) <- paste0(colnames(x)[pairs[1, ]], ":", colnames(x)[pairs[2, ]])
      parts[[length(parts) + 1L]] <- pr
    }
    do.call(cbind, parts)
  }
}

learner_lasso <- function(x, y, newx) {
  fit <- glmnet::cv.glmnet(x, y, nfolds = 5)
  as.vector(stats::predict(fit, newx = newx, s = "lambda.min"))
}

learner_forest <- function(x, y, newx) {
  colnames(x) <- colnames(newx) <- paste0("x", seq_len(ncol(x)))
  fit <- ranger::ranger(x = x, y = y, num.trees = 500, num.threads = 1)
  stats::predict(fit, data = newx, num.threads = 1)$predictions
}
