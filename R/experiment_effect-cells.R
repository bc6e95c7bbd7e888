# experiment_effect() with several cells (control / heavy_up / go_dark, or
# two creatives against one control): every treated cell against the
# reference cell, plus chosen cell-vs-cell contrasts. The estimators are the
# two-arm ones written for k cells:
# * the difference in means is the regression of the outcome on the cell
#   indicators (no intercept), with the centred stratum indicators
#   interacted with every cell when there are strata (so each cell's
#   coefficient is its stratum-weighted mean);
# * Lin's estimator is the fully interacted regression: cell indicators,
#   the covariates centred at their full-sample mean, and their interactions
#   with every cell. Each cell's coefficient is its covariate-adjusted mean,
#   and a contrast is the difference of two of them.
# Both regressions are block diagonal across cells, so their HC2 covariance
# is too: the covariance of two contrasts comes only from the cells they
# share. The randomization columns (with a design) come from
# randomization_test_cells() in randomization_test-cells.R.

# The contrast matrix (contrasts x cells).
contrast_matrix <- function(pairs, k) {
  C <- matrix(0, nrow(pairs), k)
  C[cbind(seq_len(nrow(pairs)), pairs[, 1])] <- 1
  C[cbind(seq_len(nrow(pairs)), pairs[, 2])] <- -1
  C
}

# The regressors of one estimator: cell indicators (no intercept), then the
# centred covariates (and stratum indicators) interacted with every cell.
# `X` NULL and no strata: cell indicators only (the difference in means).
cells_model_matrix <- function(code, cells, X, centre = NULL) {
  k <- length(cells)
  D <- outer(code, seq_len(k) - 1L, "==") * 1
  colnames(D) <- cells
  if (is.null(X) || !ncol(X)) return(D)
  Xc <- sweep(X, 2, if (is.null(centre)) colMeans(X) else centre[colnames(X)])
  inter <- do.call(cbind, lapply(seq_len(k), function(j) D[, j] * Xc))
  colnames(inter) <- paste0(rep(cells, each = ncol(X)), ":", colnames(X))
  cbind(D, inter)
}

# One estimator on cell codes: the contrasts' estimates, their joint HC2
# covariance and the table rows (broom columns and df).
fit_cells <- function(y, code, cells, X, strata, pairs, alpha, welch,
                      call = rlang::caller_env(), buf = NULL) {
  k <- length(cells)
  C <- contrast_matrix(pairs, k)
  if (is.null(buf) && is.null(X) && is_matched_cells(strata, code, k)) {
    # Matched blocks: the contrast's difference within each block, their
    # size-weighted mean and the spread of the weighted block differences
    # (the matched-pair variance), S - 1 degrees of freedom.
    wD <- (block_cell_means(y, strata, code, k) %*% t(C)) * block_weights(strata)
    S <- nrow(wD)
    est <- colSums(wD)
    E <- sweep(wD, 2, est / S)
    V <- crossprod(E) * S / (S - 1)
    rows <- robust_row(est, sqrt(diag(V)), rep(S - 1, nrow(pairs)), alpha)
    return(list(rows = rows, vcov = V, means = NULL))
  }
  Z <- cells_regressors(X, strata, code, k, call = call)
  # With a buffer: weighted by one over each cluster's probability of its
  # arm and centred at the means over every designed cluster (buffer_units()
  # for two arms), so each cell's coefficient is its Hajek (stratum-weighted)
  # mean.
  M <- cells_model_matrix(code, cells, Z, centre = buf$centre)
  fit <- ols_robust(M, y, weights = buf$weights, call = call)
  est <- as.vector(C %*% fit$coefficients[seq_len(k)])
  V <- C %*% fit$vcov[seq_len(k), seq_len(k)] %*% t(C)
  se <- sqrt(diag(V))
  df <- if (welch) {
    # Welch df of each pair of cells (the difference in means without strata).
    v <- vapply(seq_len(k), function(j) stats::var(y[code == j - 1L]) / sum(code == j - 1L),
                numeric(1))
    n <- tabulate(code + 1L, k)
    a <- pairs[, 1]
    b <- pairs[, 2]
    (v[a] + v[b])^2 / (v[a]^2 / (n[a] - 1) + v[b]^2 / (n[b] - 1))
  } else rep(fit$df[[1]], nrow(pairs))
  rows <- robust_row(est, se, df, alpha)
  list(rows = rows, vcov = V, means = fit$coefficients[seq_len(k)])
}

# The multi-cell analysis on checked rows: `units` as in
# experiment_effect(), with `cell` the integer cell codes.
experiment_effect_cells <- function(units, cells, pairs, design, pos, estimand, n_draws,
                                    alpha, call, vars, n_rows) {
  all_units <- units
  all_pos <- pos
  rows <- design_rows(units, design, pos, cells_buffer_units)
  units <- rows$units
  pos <- rows$pos
  strata <- rows$strata
  buf <- rows$buf
  code <- units$cell
  n_cell <- tabulate(code + 1L, length(cells))
  used <- unique(c(pairs))
  if (any(n_cell[used] < 2L)) {
    small <- cells[used][n_cell[used] < 2L]
    abort_mkt("single_arm", c(
      "Cell{?s} {.val {small}} {?has/have} fewer than two clusters, so {?its/their} mean has no standard error.",
      i = "Every compared cell needs at least two clusters."
    ), call = call)
  }
  s <- outcome_scale(units$y)
  y <- units$y / s
  within <- tapply(y, code, function(v) if (length(v) > 1) stats::var(v) else 0)
  if (all(within == 0)) {
    abort_mkt("no_variation", c(
      "The outcome does not vary within any cell, so the effects have no standard error.",
      i = "Check the outcome column: a constant outcome carries no information on the effect."
    ), call = call)
  }
  fits <- list(diff_in_means = fit_cells(y, code, cells, NULL, strata, pairs, alpha,
                                         welch = is.null(strata) && is.null(buf),
                                         call = call, buf = buf))
  if (!is.null(units$X)) {
    fits$lin <- fit_cells(y, code, cells, units$X, strata, pairs, alpha, welch = FALSE,
                          call = call, buf = buf)
  }
  terms <- contrast_terms(pairs, cells)
  est <- do.call(rbind, lapply(names(fits), function(e) {
    cbind(term = terms, estimator = e, unscale_table(fits[[e]]$rows, s),
          stringsAsFactors = FALSE)
  }))
  rownames(est) <- NULL
  a <- rep(pairs[, 1], length(fits))
  b <- rep(pairs[, 2], length(fits))
  wt <- if (is.null(buf)) rep(1, length(code)) else buf$weights
  cell_mean <- vapply(seq_along(cells), function(j) {
    stats::weighted.mean(units$y[code == j - 1L], wt[code == j - 1L])
  }, numeric(1))
  est$lift_pct <- 100 * est$estimate / (cell_mean[a] - est$estimate)
  scale <- if (estimand == "total") n_cell else
    vapply(seq_along(cells), function(j) sum(units$size[code == j - 1L]), numeric(1))
  est$incremental <- est$estimate * scale[a]
  spend_incremental <- rep(NA_real_, nrow(pairs))
  if (!is.null(units$spend)) {
    spend_mean <- vapply(seq_along(cells), function(j) mean(units$spend[code == j - 1L]),
                         numeric(1))
    spend_incremental <- (spend_mean[pairs[, 1]] - spend_mean[pairs[, 2]]) * n_cell[pairs[, 1]]
    flat <- abs(spend_incremental) <= 1e-12 * max(abs(units$spend), 1)
    if (any(flat)) {
      abort_mkt("bad_spend", c(
        "{.arg spend} does not differ between the two cells of {.val {terms[flat]}}, so no iROAS is defined for {cli::qty(sum(flat))}{?that contrast/those contrasts}.",
        i = "Analyse {cli::qty(sum(flat))}{?it/them} in a call without {.arg spend}, or leave {cli::qty(sum(flat))}{?it/them} out of {.arg contrasts}."
      ), call = call)
    }
  }
  est$spend_incremental <- rep(spend_incremental, length(fits))
  est$iroas <- est$incremental / est$spend_incremental

  if (!is.null(design)) {
    est <- add_randomization_cells(est, design, all_units, all_pos, pairs, n_draws)
  }
  vc <- lapply(fits, function(f) {
    V <- f$vcov * s^2
    dimnames(V) <- list(terms, terms)
    V
  })
  n_strata <- if (is.null(strata)) 1L else nlevels(strata)
  print_columns <- c(estimator = "estimator", lift_pct = "lift %",
                     p.value_randomization = if (!is.null(design)) "p (rand.)",
                     p.value_familywise = if (!is.null(design)) "p (max-T)")
  fit <- new_fit(
    "effect", est,
    method = paste0("Experiment effect, ", length(cells), " cells: difference in means",
                    if (length(fits) > 1L) " and Lin adjustment"),
    estimand = paste0(effect_estimand(estimand, FALSE, !is.null(buf)), "; each cell against ",
                      cells[1], " and the chosen contrasts"),
    inference = cells_inference(strata, design, n_draws,
                                is.null(buf) && is_matched_cells(strata, code, length(cells)),
                                !is.null(buf)),
    alpha = alpha,
    n = list(obs = length(units$y), units = length(units$y),
             treated = sum(code != 0L), clusters = NA_integer_,
             strata = if (n_strata > 1L) n_strata else NA_integer_,
             buffer = if (is.null(buf)) NA_integer_ else buf$n_buffer,
             cells = length(cells)),
    call = call,
    no_vcov = "its rows hold two estimators; vcov(fit, estimator = ) gives the joint covariance of one estimator's contrasts",
    vars = vars,
    glance = list(estimand = estimand, n_contrasts = nrow(pairs),
                  randomization = !is.null(design),
                  n_draws = if (!is.null(design)) as.integer(n_draws) else NA_integer_,
                  n_rows = as.integer(n_rows)),
    tables = list(outcomes = data.frame(
      id = if (!is.null(units$key)) units$key else as.character(seq_along(units$y)),
      cell = factor(cells[code + 1L], levels = cells), outcome = units$y,
      stringsAsFactors = FALSE),
      cells = data.frame(cell = cells, n = as.integer(n_cell), mean = cell_mean,
                         stringsAsFactors = FALSE)),
    print_columns = print_columns
  )
  fit$cells <- cells
  fit$contrasts <- pairs
  fit$cell_vcov <- vc
  fit
}

cells_inference <- function(strata, design, n_draws, matched = FALSE, buffered = FALSE) {
  base <- if (buffered) {
    paste0("buffer clusters left out; cells and kept controls weighted by one over their probability under the rule (Hajek); HC2 of the weighted regression",
           if (!is.null(strata)) " with stratum indicators interacted with every cell")
  } else if (is.null(strata)) "HC2 (Neyman), block diagonal across cells; Welch df for the difference in means" else
    if (matched) "HC2; matched-block variance (S - 1 df) for the difference in means" else
    "HC2 with stratum indicators interacted with every cell"
  if (is.null(design)) return(base)
  if (buffered) {
    return(sprintf("%s; randomization p-values for the difference in means conditional on the design's rule, buffer re-applied to each of %s draws, max-T family-wise",
                   base, format(n_draws, big.mark = ",")))
  }
  sprintf("%s; randomization p-values conditional on the design's rule (%s draws), max-T family-wise",
          base, format(n_draws, big.mark = ","))
}

# Per-contrast and family-wise (max-T) randomization p-values, conditional
# on the design's rule, for each estimator's rows: the difference in means
# with the plain difference as statistic, Lin's with its HC2 t.
add_randomization_cells <- function(est, design, units, pos, pairs, n_draws) {
  y <- numeric(length(design$ids))
  y[pos] <- units$y
  est$p.value_randomization <- NA_real_
  est$p.value_familywise <- NA_real_
  statistic <- c(diff_in_means = "diff_in_means", lin = "lin_t")
  ref <- NULL
  for (e in unique(est$estimator)) {
    # Lin's t cannot follow a buffer that changes with the assignment.
    if (!is.null(design$buffer) && e == "lin") next
    rows <- which(est$estimator == e)
    res <- randomization_test_cells(design, y, statistic = statistic[[e]], pairs = pairs,
                                    n_draws = n_draws, reference = ref)
    ref <- res$reference_draws
    est$p.value_randomization[rows] <- res$p.value
    est$p.value_familywise[rows] <- res$p.value_familywise
  }
  est
}

#' @rdname experiment_effect
#' @export
vcov.mkt_effect <- function(object, estimator = NULL, ...) {
  if (is.null(object$cell_vcov)) return(NextMethod())
  if (!called_from_package(parent.frame())) check_dots(...)
  have <- names(object$cell_vcov)
  if (is.null(estimator)) {
    if (length(have) > 1L) {
      abort_mkt("not_available", c(
        "This fit has two estimators of each contrast ({.val {have}}); their joint covariance is not estimated.",
        i = "Choose one: {.code vcov(fit, estimator = \"lin\")} gives the joint covariance of Lin's contrasts."
      ))
    }
    estimator <- have
  }
  estimator <- check_choice(estimator, have)
  object$cell_vcov[[estimator]]
}

#' @rdname experiment_effect
#' @export
coef.mkt_effect <- function(object, estimator = NULL, ...) {
  if (is.null(object$cell_vcov)) return(NextMethod())
  if (!called_from_package(parent.frame())) check_dots(...)
  est <- object$estimates
  if (is.null(estimator)) return(stats::setNames(est$estimate, paste0(est$term, " (", est$estimator, ")")))
  estimator <- check_choice(estimator, unique(est$estimator))
  keep <- est$estimator == estimator
  stats::setNames(est$estimate[keep], est$term[keep])
}

# The checks of experiment_effect() for several cells, up to the fit.
experiment_effect_cells_front <- function(data, design, covariates, cov_vars, vars, estimand,
                                          spend, size, cluster, n_draws, alpha, contrasts,
                                          call) {
  if (!is.null(cluster)) {
    abort_mkt("inference_unsupported", c(
      "With several cells, {.fn experiment_effect} analyses one row per cluster; {.arg cluster} is not supported.",
      i = "Sum the rows of each cluster first, e.g. {.code aggregate(sales ~ geo + cell, data, sum)}."
    ), call = call)
  }
  cl <- check_cells_treatment(data[[vars$treatment]], vars$treatment, design, call = call)
  pairs <- check_contrasts(contrasts, cl$cells, call = call)
  y <- check_numeric_column(data, vars$outcome, "outcome", call = call)
  X <- effect_covariate_matrix(data, covariates, cov_vars, call = call)
  sp <- if (!is.null(spend)) check_numeric_column(data, spend, "spend", call = call)
  if (!is.null(sp) && any(sp < 0)) {
    abort_mkt("bad_spend", c(
      "{.arg spend} column {.field {spend}} has {sum(sp < 0)} negative value{?s}.",
      i = "Give each cluster's spend in the test window (0 for a go-dark cell, whose spend was removed)."
    ), call = call)
  }
  sz <- if (!is.null(size)) check_numeric_column(data, size, "size", positive = TRUE, call = call)
  units <- list(y = y, treat = cl$code, cell = cl$code, X = X, spend = sp, size = sz,
                cluster = NULL, key = effect_keys(data, design, NULL))
  check_one_row_per_cluster(data, units, design, vars, c(cov_vars, spend, size), call = call)
  if (estimand == "mean") {
    units <- per_capita_units(units)
    units$cell <- units$treat
  }
  pos <- NULL
  if (!is.null(design)) {
    pos <- align_design_cells(units, design, vars$treatment, cl$cells, call = call)
    if (is.null(units$X) && is.null(covariates)) {
      units$X <- design$X[pos, , drop = FALSE]
      cov_vars <- design$covariates
    }
  }
  vars$covariates <- cov_vars
  experiment_effect_cells(units, cl$cells, pairs, design, pos, estimand, n_draws, alpha,
                          call, vars, nrow(data))
}

# The analysis rows of a buffered multi-cell design: buffer clusters
# dropped, the rest weighted by one over their probability of the arm they
# are in, and the centring values of covariates and stratum indicators taken
# over every designed cluster before dropping (buffer_units() for two arms).
cells_buffer_units <- function(units, design, pos, strata) {
  b <- buffer_subset(units, design, pos, strata)
  kept <- b$units
  pos <- b$pos
  centre <- b$centre
  w <- cells_arm_weights(design)
  list(units = kept, pos = pos, strata = b$strata,
       weights = unname(w[cbind(pos, kept$cell + 1L)]), centre = centre,
       n_buffer = sum(design$arm[b$orig_pos] == "buffer"))
}
