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
#' The built-in learners are equivariant in the outcome, so they learn it
#' divided by a power of two near its largest value (and the answer is
#' scaled back): outcomes near 1e300 or 1e-300 give the scaled answer. A
#' custom learner sees the outcome as it is.
#'
#' @section Inference:
#' Standard errors are clustered by unit (or by `cluster`): \eqn{\hat V =
#' \frac{G}{G-1} \sum_g (\sum_{i \in g} \hat\psi_i)^2 / (\sum_i \hat
#' v_i^2)^2} with \eqn{\hat\psi_i = (\hat u_i - \hat\theta \hat v_i)\hat
#' v_i}; `inference = "heteroskedastic"` gives the heteroskedasticity-robust
#' version without the factor (as DoubleML's default). With `n_draws`
#' random sample splits, the estimate is the median of the
#' \eqn{\hat\theta_r} and the variance the median of \eqn{\hat V_r +
#' (\hat\theta_r - \hat\theta)^2}. The splits run through
#' [resample_chunks()], so `set.seed()` reproduces them under any future
#' plan.
#'
#' @param formula `outcome ~ treatment + controls | unit + time`, with at
#'   least one control, or a [mkt_panel()].
#' @param data A long data frame, tibble or data.table (`NULL` when
#'   `formula` is a panel).
#' @param learner `"ridge"`, `"linear"`, `"lasso"`, `"forest"` or a function;
#'   see Learners. A list of two gives the outcome and treatment learners.
#' @param basis Expand the controls before removing the fixed effects (see
#'   Learners); `FALSE` gives the learners the demeaned controls only.
#' @param n_folds Number of folds of units.
#' @param fold_by Optional name of a column giving each unit's fold
#'   (integers 1 to `n_folds`, constant within units); the split is then
#'   fixed and there is one draw.
#' @param inference `"cluster"` (default: clustered by `cluster`) or
#'   `"heteroskedastic"`.
#' @param cluster Name of the column of standard-error clusters, in which
#'   units must nest; `NULL` (default) clusters by the unit.
#' @param n_draws Number of random sample splits (repetitions of the
#'   cross-fitting).
#' @param alpha Level for confidence intervals.
#' @param ... Must be empty.
#' @return An object of class `c("mkt_dml", "mkt_fit")` (see [mkt_fit]): one
#'   row, the treatment, with its variance; `tidy(fit, "splits")` gives the
#'   estimate and standard error of each split.
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
#' fit <- dml(sales ~ discount + temp | store + week, d, n_draws = 2)
#' fit
#' @export
dml <- function(formula, data, learner = "ridge", basis = TRUE, n_folds = 5, fold_by = NULL,
                inference = c("cluster", "heteroskedastic"), cluster = NULL, n_draws = 3,
                alpha = 0.05, ...) {
  check_dots(...)
  inference <- check_choice(inference)
  check_fe_inference(inference, cluster)
  alpha <- check_alpha(alpha)
  n_folds <- check_count(n_folds, "n_folds", min = 2)
  n_draws <- check_count(n_draws, "n_draws", min = 1)
  basis <- check_flag(basis, "basis")
  learners <- resolve_learners(learner)
  if (!is.null(fold_by) && (!is.character(fold_by) || length(fold_by) != 1L || is.na(fold_by))) {
    abort_mkt("bad_argument", "{.arg fold_by} must be the name of one column.")
  }
  panel <- as_panel(formula, data, cluster = if (inference == "cluster") cluster,
                    extra = fold_by)
  dml_fit(panel, learners = learners, basis = basis, n_folds = n_folds, fold_by = fold_by,
          inference = inference, cluster = cluster, n_draws = n_draws, alpha = alpha,
          call = match.call())
}

# The core: a panel in, a fit out.
dml_fit <- function(panel, learners, basis = TRUE, n_folds = 5L, fold_by = NULL,
                    inference = "cluster", cluster = NULL, n_draws = 3L, alpha = 0.05,
                    call = NULL) {
  if (is.null(panel$D) || !length(panel$vars$covariates)) {
    abort_mkt("bad_formula", c(
      "{.fn dml} needs a treatment and at least one control: {.code outcome ~ treatment + controls | unit + time}.",
      i = "Without controls, {.fn dose_response} (continuous) or a fixed-effects regression is the estimator."
    ))
  }
  covs <- panel$vars$covariates
  keep <- panel$observed
  for (x in panel$X) keep <- keep & !is.na(x)
  cells <- which(keep)
  if (!length(cells)) {
    gone <- covs[vapply(panel$X, function(m) all(is.na(m[panel$observed])), logical(1))]
    abort_mkt("missing_values", c(
      "No cell has the outcome and every control observed.",
      x = if (length(gone)) "Missing on every observed cell: {.field {gone}}.",
      i = "Drop a control that is never observed, or fill its missing values."
    ))
  }
  raw <- vapply(panel$X, function(m) m[cells], numeric(length(cells)))
  raw <- matrix(raw, nrow = length(cells), dimnames = list(NULL, covs))
  # The nuisance g(x_it) enters the within-transformed outcome as the within
  # transform of g, which is not a function of the demeaned controls. Expanding
  # the controls into a basis before the transformation keeps learners that
  # are linear in their inputs exact: within(B(x)) beta = within(B(x) beta).
  feats <- if (isTRUE(basis)) control_basis(raw)(raw) else raw
  feat_grid <- lapply(seq_len(ncol(feats)), function(k) {
    m <- matrix(NA_real_, nrow(keep), ncol(keep))
    m[cells] <- feats[, k]
    m
  })
  names(feat_grid) <- paste0(".f", seq_len(ncol(feats)))
  clustered <- inference == "cluster"
  # The built-in learners are equivariant in their response (ridge, least
  # squares, the lasso's path relative to its largest penalty, forests), so
  # the outcome is fitted on a scale near 1 (see outcome_scale()) and the
  # answers scaled back; a user's learner sees the outcome as it is.
  s <- if (any(learners$names == "custom")) 1 else outcome_scale(panel$Y[keep])
  fg <- fe_grid(panel, c(list(.y = panel$Y / s, .d = panel$D), feat_grid),
                cluster = fe_cluster_codes(panel, inference, cluster))
  M <- fg$x
  X <- M[, -(1:2), drop = FALSE]
  colnames(X) <- colnames(feats)
  y <- M[, 1]
  d <- M[, 2]
  name <- panel$vars$treatment
  dml_check_variation(y, panel$Y[cells] / s, panel$vars$outcome, "outcome")
  dml_check_variation(d, panel$D[cells], name, "treatment")
  unit <- fg$unit
  units <- sort(unique(unit))
  if (length(units) < n_folds) {
    abort_mkt("bad_argument", c(
      "{.arg n_folds} ({n_folds}) exceeds the number of units ({length(units)}).",
      i = "Folds are made of whole units; use fewer folds."
    ))
  }
  fixed <- NULL
  if (!is.null(fold_by)) {
    fu <- suppressWarnings(as.integer(panel$extra[[fold_by]][cbind(fg$unit, fg$time)]))
    per_unit <- tapply(fu, unit, function(f) unique(f))
    if (anyNA(fu) || is.list(per_unit) || !all(per_unit %in% seq_len(n_folds))) {
      abort_mkt("bad_argument", c(
        "The folds column {.field {fold_by}} must hold one integer from 1 to {n_folds} per unit.",
        i = "Assign whole units to folds."
      ))
    }
    fixed <- fu
    n_draws <- 1L
  }
  cl <- if (clustered) fg$cluster else NULL
  if (clustered && length(unique(cl)) < 2L) {
    abort_mkt("too_few_clusters", c(
      "Clustered standard errors need at least two clusters; the cells used lie in one cluster of {.field {cluster %||% panel$vars$unit}}.",
      i = "Cluster by a finer grouping, or use {.code inference = \"heteroskedastic\"}."
    ))
  }

  one_split <- function(r) {
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
    v <- d - m_hat
    if (sum(v^2) <= 1e-20 * sum(d^2)) {
      abort_mkt("no_variation", c(
        "The controls predict the treatment {.field {name}} exactly (repetition {r}): no variation is left to estimate its effect from.",
        i = "Drop controls that are functions of the treatment."
      ), call = NULL)
    }
    dml_score(y - l_hat, v, cl)
  }
  reps <- resample_chunks(n_draws, one_split, chunk_size = 1L, label = "cross-fits",
                          globals = list())
  reps <- do.call(rbind, lapply(reps, as.data.frame))
  splits <- data.frame(split = seq_len(nrow(reps)), estimate = reps$estimate,
                       std.error = reps$std.error)
  theta <- stats::median(splits$estimate)
  v <- stats::median(splits$std.error^2 + (splits$estimate - theta)^2)
  G <- if (clustered) length(unique(cl)) else NA_integer_
  df <- if (clustered) G - 1 else length(y) - 1
  V <- matrix(v, 1, 1, dimnames = list(name, name))
  # Back on the outcome's scale.
  est <- unscale_table(fe_estimates(stats::setNames(theta, name), V, df, alpha), s)
  splits <- unscale_table(splits, s)
  V <- unscale_variance(V, s)
  by <- if (is.null(cluster)) panel$vars$unit else cluster
  new_fit(
    "dml", estimates = est,
    method = "Double machine learning, partially linear model with unit and time effects",
    estimand = sprintf("Effect on %s of one unit of %s given the controls and the fixed effects (constant, or a variance-weighted average)",
                       panel$vars$outcome, name),
    inference = sprintf("%s; median over %d random sample split%s",
                        if (clustered) sprintf("clustered by %s (%d clusters)", by, G) else
                          "heteroskedasticity-robust (HC0)",
                        n_draws, if (n_draws == 1L) "" else "s"),
    alpha = alpha, call = call,
    n = list(obs = length(y), units = fg$n_units, periods = fg$n_periods, treated = NA_integer_,
             clusters = G),
    vcov = V,
    vars = list(outcome = panel$vars$outcome, treatment = name, covariates = covs,
                unit = panel$vars$unit, time = panel$vars$time,
                cluster = if (clustered) by),
    glance = list(n_folds = n_folds, n_draws = n_draws, learner_outcome = learners$names[1],
                  learner_treatment = learners$names[2],
                  estimate_spread = diff(range(splits$estimate))),
    tables = list(splits = splits),
    learner = learners$names, n_folds = n_folds,
    options = list(inference = inference, cluster = cluster, basis = isTRUE(basis),
                   fold_by = fold_by, n_draws = n_draws)
  )
}

# A within-transformed column `x` (raw values on the used cells: `raw`)
# with nothing left: a constant, or a sum of unit and period effects.
dml_check_variation <- function(x, raw, name, what, call = rlang::caller_env()) {
  size <- suppressWarnings(max(abs(raw), na.rm = TRUE))
  if (!is.finite(size)) size <- 0
  if (sqrt(mean(x^2)) <= 1e-10 * size) {
    abort_mkt("no_variation", c(
      "The {what} {.field {name}} has no variation left once unit and time fixed effects are removed: it is constant, or the sum of a unit and a period effect.",
      i = if (what == "treatment") "A treatment constant within units (or periods) is absorbed by the fixed effects; {.fn dml} needs one that changes within units." else
        "Every effect on it is exactly zero, with no sampling error to test against; check that {.field {name}} is the outcome you meant."
    ), call = call)
  }
  invisible(TRUE)
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
  # Controls that the fixed effects absorbed entirely carry no information.
  if (!length(s$d) || max(s$d) == 0) return(rep(mean(y), nrow(newx)))
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
