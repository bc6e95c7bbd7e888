# The joint pre-trend test of the regression event studies: a wild
# (cluster) bootstrap of the Wald statistic under the restricted model.
#
# The Wald statistic of k leads with a cluster-robust covariance is F(k, G-1)
# only when the clusters are many against k: the covariance of many leads
# from few clusters is near singular, its inverse blows small coefficients
# up, and the F reference rejects far too often under the null (30-80% at
# 5% with 50 leads and 200 clusters, bench/pretrend_size.R). The bootstrap
# draws the statistic's own distribution, near-singular covariance included:
#
# * the restricted model (the leads set to zero) is fitted on the data with
#   the unit and time effects partialled out (Frisch-Waugh-Lovell), giving
#   fitted values X_r b_r and residuals e_r;
# * draw b: y* = X_r b_r + w_g e_r, one weight w_g per cluster (Rademacher,
#   or Webb's six-point weights with fewer than 12 clusters, where
#   Rademacher has too few distinct draws), or per cell without clusters;
# * y* is regressed on the full design, the cluster-robust covariance is
#   recomputed from the draw's own residuals (a studentized bootstrap), and
#   the Wald statistic of the leads is formed as in the data;
# * p = (1 + #{W* >= W}) / (1 + n_draws).
#
# Each draw needs no pass over the cells: with q_g = X_g' e_r (the
# restricted residual's scores) and C_g = X_g' X_g (the cluster's Gram
# matrix, from fe_moments()), the draw's coefficients are b_r + B Q'w
# (B the bread) and its cluster scores w_g q_g - C_g B Q'w: a few products
# of G x p matrices.
#
# The statistic is the F form W / k of the observed test, on k = the rank
# of the leads' covariance (a generalized inverse, as Stata drops the
# constraints it cannot test, when clusters are fewer than leads).

# The pieces of the test, from the moments of an fe_grid() regression.
# mom: fe_moments(); y: the outcome column; x: the regressors (columns of
# mom$A); leads: those of x set to zero under the null; n_abs: absorbed
# fixed-effect parameters (for the small-sample factor, as fe_vcov()).
# Returns the observed statistic and `stat_at(w)`, the statistic of the
# bootstrap draw with weights w (one per cluster of mom, or per row).
pretrend_setup <- function(mom, y, x, leads, n_abs, call = rlang::caller_env()) {
  p <- length(x)
  in_lead <- x %in% leads
  restricted <- x[!in_lead]
  full <- fe_ls(mom, fe_select(mom, x), fe_select(mom, y)[, 1], call = call)
  B <- full$bread
  # Residual of the restricted fit as coefficients on the columns of A.
  c_r <- if (length(restricted)) {
    fe_ls(mom, fe_select(mom, restricted), fe_select(mom, y)[, 1], call = call)$resid
  } else {
    fe_select(mom, y)[, 1]
  }
  n <- mom$n
  K <- p + n_abs
  ix <- match(x, mom$cols)
  if (mom$clustered) {
    G_all <- mom$G_all
    m <- mom$m
    G <- mom$G
    adj <- G / (G - 1) * (n - 1) / (n - K)
    # Restricted scores, one row per cluster (empty clusters give zeros).
    Q <- matrix(mom$cgram %*% c_r, G_all, m)[, ix, drop = FALSE]
    # The cluster Gram matrices restricted to the regressors, stacked as
    # fe_moments() stacks them: row (j - 1) G_all + g, column l.
    rows <- as.vector(outer(seq_len(G_all), (ix - 1L) * G_all, "+"))
    Cx <- mom$cgram[rows, ix, drop = FALSE]
    n_weights <- G_all
    scores <- function(w, delta) Q * w - matrix(Cx %*% delta, G_all, p)
    n_clusters <- mom$G
  } else {
    Xr <- mom$A[, ix, drop = FALSE]
    er <- drop(mom$A %*% c_r)
    adj <- n / (n - K)
    Q <- Xr * er
    n_weights <- n
    scores <- function(w, delta) Q * w - Xr * drop(Xr %*% delta)
    n_clusters <- n
  }
  BQt <- B %*% t(Q)
  lead_idx <- which(in_lead)
  BL <- B[lead_idx, , drop = FALSE]
  full_rank <- FALSE
  stat_at <- function(w) {
    delta <- drop(BQt %*% w)
    SB <- scores(w, delta) %*% t(BL)
    V <- adj * crossprod(SB)
    b <- delta[lead_idx]
    # A full-rank covariance in the data is full rank in the draws: a
    # Cholesky solve is then enough (the eigen route is 3-4 times slower).
    if (full_rank) {
      R <- tryCatch(chol(V), error = function(e) NULL)
      if (!is.null(R)) {
        return(c(stat = sum(backsolve(R, b, transpose = TRUE)^2) / length(b),
                 df1 = length(b)))
      }
    }
    wald_f(b, V)
  }
  # The data themselves are the draw with every weight 1: y* = y.
  observed <- stat_at(rep(1, n_weights))
  full_rank <- observed[["df1"]] == length(lead_idx)
  list(stat = observed[["stat"]], df1 = observed[["df1"]], stat_at = stat_at,
       n_weights = n_weights, n_clusters = n_clusters, clustered = mom$clustered)
}

# The F form of a Wald statistic, b'V^+b / rank, with the generalized
# inverse on the directions V identifies.
wald_f <- function(b, V) {
  e <- eigen((V + t(V)) / 2, symmetric = TRUE)
  keep <- e$values > 1e-12 * max(e$values, 0)
  k <- sum(keep)
  if (k == 0L) return(c(stat = NA_real_, df1 = 0))
  z <- crossprod(e$vectors[, keep, drop = FALSE], b)
  c(stat = sum(z^2 / e$values[keep]) / k, df1 = k)
}

# Weights of one draw: Rademacher, or Webb's six points (+-sqrt(1/2), +-1,
# +-sqrt(3/2), each with probability 1/6) when clusters are fewer than 12.
pretrend_weights <- function(n, webb) {
  if (webb) {
    pts <- c(-sqrt(1.5), -1, -sqrt(0.5), sqrt(0.5), 1, sqrt(1.5))
    return(pts[sample.int(6L, n, replace = TRUE)])
  }
  2 * stats::rbinom(n, 1L, 0.5) - 1
}

# The test: the setup's observed statistic against n_draws bootstrap draws
# on the resampling layer (the same answer for any plan and chunk size).
# Returns a one-row data frame: statistic (F form), df, p.value, method,
# n_draws, with the draws' statistics as attribute "draws". n_draws = 0
# gives the F(k, df) reference instead.
pretrend_test <- function(setup, n_draws, df, chunk_size = 100L) {
  k <- setup$df1
  if (k == 0L || !is.finite(setup$stat)) {
    return(data.frame(statistic = NA_real_, df = 0L, p.value = NA_real_,
                      method = "none", n_draws = 0L, stringsAsFactors = FALSE))
  }
  if (n_draws == 0L) {
    return(data.frame(statistic = setup$stat, df = as.integer(k),
                      p.value = stats::pf(setup$stat, k, df, lower.tail = FALSE),
                      method = "F", n_draws = 0L, stringsAsFactors = FALSE))
  }
  webb <- setup$clustered && setup$n_clusters < 12L
  stat_at <- setup$stat_at
  nw <- setup$n_weights
  draws <- resample_chunks(n_draws, function(i) {
    stat_at(pretrend_weights(nw, webb))[["stat"]]
  }, chunk_size = chunk_size, label = "pre-trend bootstrap", globals = list())
  draws <- unlist(draws)
  # A draw whose covariance identifies nothing counts against the data.
  exceed <- sum(!is.finite(draws) | draws >= setup$stat * (1 - 1e-12))
  method <- sprintf("wild %sbootstrap, %s weights",
                    if (setup$clustered) "cluster " else "",
                    if (webb) "Webb" else "Rademacher")
  out <- data.frame(statistic = setup$stat, df = as.integer(k),
                    p.value = (1 + exceed) / (1 + n_draws), method = method,
                    n_draws = as.integer(n_draws), stringsAsFactors = FALSE)
  attr(out, "draws") <- draws
  out
}
