# The one robust least-squares fit of the package. Every regression that
# needs design-based standard errors (difference in means, Lin adjustment,
# blocked estimators, IV/Wald ratios) goes through it, so that all of them
# share the same HC2 / CR2 conventions as estimatr.
#
# X: numeric model matrix with column names (intercept included by the caller).
# cluster: NULL for HC2; otherwise one cluster label per row for CR2
#   (Bell and McCaffrey 2002) with the Imbens-Kolesar/Bell-McCaffrey
#   degrees of freedom of each coefficient.
# weights: NULL or positive weights; the fit is then least squares on
#   sqrt(weights)-scaled rows, as in estimatr.
# se_type: NULL for the design-based HC2 / CR2 above; "CR1" or "HC1" for the
#   econometric panel convention of fixest (its default small-sample
#   correction), used by the fixed-effects estimators: the sandwich times
#   G/(G-1) * (n-1)/(n-K) with G - 1 degrees of freedom for CR1, and
#   n/(n-K) with n - K degrees of freedom for HC1, where K counts the
#   regressors plus `n_absorbed` absorbed fixed-effect parameters (those not
#   nested in the clusters, as fixest does).
# resid_X: for two-stage least squares, the matrix of structural regressors
#   (X holds their first-stage fitted values): residuals are y - resid_X beta.
ols_robust <- function(X, y, cluster = NULL, weights = NULL, se_type = NULL,
                       n_absorbed = 0, resid_X = NULL,
                       call = rlang::caller_env()) {
  X <- as.matrix(X)
  n <- nrow(X)
  if (!is.null(weights)) {
    if (length(weights) != n || anyNA(weights) || any(weights <= 0)) {
      abort_mkt("bad_weights", c(
        "Weights must be positive and complete, one per row ({n}).",
        x = "Got {length(weights)} value{?s}."
      ), call = call)
    }
    sw <- sqrt(weights)
    X <- X * sw
    y <- y * sw
    if (!is.null(resid_X)) resid_X <- as.matrix(resid_X) * sw
  }
  qx <- qr(X)
  p <- ncol(X)
  if (qx$rank < p) {
    aliased <- colnames(X)[qx$pivot[seq.int(qx$rank + 1L, p)]]
    abort_mkt("collinear", c(
      "The regression is rank deficient: {.field {aliased}} {?is/are} collinear with other terms.",
      i = "Drop redundant covariates, or strata that leave an arm empty."
    ), call = call)
  }
  beta <- qr.coef(qx, y)
  names(beta) <- colnames(X)
  resid <- as.vector(y - X %*% beta)
  R_inv <- backsolve(qr.R(qx), diag(p))
  bread <- tcrossprod(R_inv[order(qx$pivot), , drop = FALSE])
  if (!is.null(resid_X)) resid <- as.vector(y - as.matrix(resid_X) %*% beta)
  if (!is.null(se_type)) {
    return(ols_robust_cr1(X, resid, beta, bread, cluster, se_type, n_absorbed,
                          call = call))
  }
  XB <- X %*% bread

  if (is.null(cluster)) {
    h <- rowSums(XB * X)
    if (any(h > 1 - 1e-10)) {
      abort_mkt("saturated_design", c(
        "HC2 standard errors are undefined: {sum(h > 1 - 1e-10)} observation{?s} {?has/have} leverage one.",
        i = "Each arm (within each stratum) needs at least two observations."
      ), call = call)
    }
    u <- resid / sqrt(1 - h)
    meat_rows <- X * u
    vcov <- crossprod(meat_rows %*% bread)
    df <- rep(n - p, p)
    se_type <- "HC2"
  } else {
    if (length(cluster) != n || anyNA(cluster)) {
      abort_mkt("bad_cluster", "Cluster labels must be complete, one per row ({n}).",
                call = call)
    }
    cl <- as.integer(factor(cluster))
    G <- max(cl)
    rows <- split(seq_len(n), cl)
    # A_g = (I - H_gg)^(-1/2): the CR2 adjustment that makes the meat unbiased
    # under homoskedastic working errors.
    adj <- lapply(rows, function(r) {
      Hgg <- X[r, , drop = FALSE] %*% bread %*% t(X[r, , drop = FALSE])
      e <- eigen(diag(length(r)) - Hgg, symmetric = TRUE)
      if (any(e$values < 1e-10)) {
        abort_mkt("saturated_design", c(
          "CR2 standard errors are undefined: a cluster is perfectly fitted by the model.",
          i = "Each arm (within each stratum) needs at least two clusters."
        ), call = call)
      }
      e$vectors %*% (t(e$vectors) / sqrt(e$values))
    })
    scores <- matrix(0, G, p)
    AXB <- matrix(0, n, p)
    for (g in seq_len(G)) {
      r <- rows[[g]]
      AXB[r, ] <- adj[[g]] %*% XB[r, , drop = FALSE]
      scores[g, ] <- crossprod(AXB[r, , drop = FALSE], resid[r])
    }
    vcov <- crossprod(scores)
    # Satterthwaite df with (I - H) as working covariance: for coefficient k,
    # G_k has columns (I - H)[, g] A_g X_g bread[, k]; df = tr(G'G)^2 / tr((G'G)^2).
    df <- vapply(seq_len(p), function(k) {
      B <- matrix(0, n, G)
      B[cbind(seq_len(n), cl)] <- AXB[, k]
      XtB <- crossprod(X, B)
      GG <- crossprod(B) - crossprod(XtB, bread %*% XtB)
      ev <- eigen(GG, symmetric = TRUE, only.values = TRUE)$values
      sum(ev)^2 / sum(ev^2)
    }, numeric(1))
    se_type <- "CR2"
  }
  dimnames(vcov) <- list(colnames(X), colnames(X))
  names(df) <- colnames(X)
  list(coefficients = beta, vcov = vcov, df = df, residuals = resid,
       n = n, n_clusters = if (is.null(cluster)) n else G, se_type = se_type)
}

# The CR1 / HC1 sandwich of the panel estimators (fixest's default small-sample
# correction). Scores are rows of X times residuals (already weighted by the
# caller's sqrt-weight scaling), summed within clusters.
ols_robust_cr1 <- function(X, resid, beta, bread, cluster, se_type, n_absorbed,
                           call = rlang::caller_env()) {
  n <- nrow(X)
  p <- ncol(X)
  K <- p + n_absorbed
  scores <- X * resid
  if (se_type == "CR1") {
    if (is.null(cluster) || length(cluster) != n || anyNA(cluster)) {
      abort_mkt("bad_cluster", "Cluster labels must be complete, one per row ({n}).",
                call = call)
    }
    cl <- as.integer(factor(cluster))
    G <- max(cl)
    if (G < 2L) {
      abort_mkt("bad_cluster", c(
        "Clustered standard errors need at least two clusters; there is {G}.",
        i = "Cluster by a coarser grouping only when it has many groups."
      ), call = call)
    }
    scores <- rowsum(scores, cl, reorder = FALSE)
    adj <- G / (G - 1) * (n - 1) / (n - K)
    df <- rep(G - 1, p)
  } else {
    G <- n
    adj <- n / (n - K)
    df <- rep(n - K, p)
  }
  vcov <- adj * bread %*% crossprod(scores) %*% bread
  dimnames(vcov) <- list(colnames(X), colnames(X))
  names(df) <- colnames(X)
  list(coefficients = beta, vcov = vcov, df = df, residuals = resid,
       n = n, n_clusters = G, se_type = se_type, bread = bread)
}

# broom-style inference for one coefficient of an ols_robust() fit, with
# t critical values on the fit's degrees of freedom.
robust_row <- function(estimate, se, df, alpha) {
  stat <- estimate / se
  crit <- stats::qt(alpha / 2, df, lower.tail = FALSE)
  data.frame(estimate = estimate, std.error = se, statistic = stat,
             p.value = 2 * stats::pt(-abs(stat), df),
             conf.low = estimate - crit * se, conf.high = estimate + crit * se,
             df = df)
}
