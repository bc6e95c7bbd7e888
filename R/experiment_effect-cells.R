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

# The cell of every analysis row as integer codes 0..k-1 (0 = the reference
# cell) and the cell labels, the reference first. With a design the cells
# are the design's; without one the column's levels (a factor's in their
# order, a character column's sorted), with "control" first when it is one
# of them, else the first level.
check_cells_treatment <- function(x, name, design = NULL, call = rlang::caller_env()) {
  if (anyNA(x)) {
    abort_mkt("missing_values", c(
      "Treatment column {.field {name}} has {sum(is.na(x))} missing value{?s}.",
      i = "Every analysed unit was assigned a cell; recover the assignment or drop those rows."
    ), column = name, call = call)
  }
  if (!is.null(design)) {
    cells <- design_cells(design)
    lab <- as.character(x)
    if (is.numeric(x) && all(x %in% c(0, 1)) && identical(cells, c("control", "treated"))) {
      lab <- cells[x + 1L]
    }
    bad <- unique(lab[!lab %in% cells])
    if (length(bad)) {
      abort_mkt("misaligned", c(
        "Treatment column {.field {name}} holds cell{?s} the design does not have: {.val {utils::head(bad, 5)}}.",
        i = "The design's cells are {.val {cells}}; give each cluster's cell label as assigned."
      ), column = name, call = call)
    }
  } else {
    if (!(is.character(x) || is.factor(x))) {
      abort_mkt("non_binary_treatment", c(
        "Treatment column {.field {name}} must be 0/1 for two arms, or cell labels (character or factor) for several cells.",
        x = "It is of class {.cls {class(x)}}."
      ), column = name, call = call)
    }
    lev <- if (is.factor(x)) levels(droplevels(x)) else sort(unique(x))
    ref <- if ("control" %in% lev) "control" else lev[1]
    cells <- c(ref, setdiff(lev, ref))
    lab <- as.character(x)
  }
  n <- table(factor(lab, levels = cells))
  if (sum(n > 0) < 2L) {
    abort_mkt("single_arm", c(
      "Treatment column {.field {name}} has only one cell ({.val {cells[n > 0]}}).",
      i = "An effect needs at least two cells."
    ), column = name, call = call)
  }
  list(code = match(lab, cells) - 1L, cells = cells)
}

# The cells of a design: `$cells` of the multi-cell contract, or the two
# arms of a design made before it.
design_cells <- function(design) {
  design$cells %||% c("control", "treated")
}

# Cell codes (0..k-1) of a design, in design row order.
design_cell_codes <- function(design) {
  if (!is.null(design$cell)) return(as.integer(design$cell) - 1L)
  as.integer(design$treated)
}

# The contrasts to report, as a two-column matrix of cell indices (1-based;
# first minus second): every other cell against the reference cell, then the
# chosen ones in `contrasts` (a list of pairs of cell labels), without
# repeats.
check_contrasts <- function(contrasts, cells, call = rlang::caller_env()) {
  pairs <- lapply(cells[-1], function(cl) c(cl, cells[1]))
  if (!is.null(contrasts)) {
    if (is.character(contrasts) && length(contrasts) == 2L) contrasts <- list(contrasts)
    ok <- is.list(contrasts) && all(vapply(contrasts, function(p) {
      is.character(p) && length(p) == 2L && !anyNA(p)
    }, logical(1)))
    if (!ok) {
      abort_mkt("bad_contrast", c(
        "{.arg contrasts} must be a list of pairs of cell labels, each pair the cell and the cell it is compared with.",
        i = "For example {.code contrasts = list(c(\"heavy_up\", \"go_dark\"))}."
      ), call = call)
    }
    for (p in contrasts) {
      unknown <- setdiff(p, cells)
      if (length(unknown)) {
        abort_mkt("bad_contrast", c(
          "{.arg contrasts} names {?a cell/cells} that {?is/are} not in the experiment: {.val {unknown}}.",
          i = "The cells are {.val {cells}}."
        ), call = call)
      }
      if (p[1] == p[2]) {
        abort_mkt("bad_contrast", c(
          "{.arg contrasts} compares cell {.val {p[1]}} with itself.",
          i = "Each pair needs two different cells, e.g. {.code c(\"{cells[length(cells)]}\", \"{cells[min(2, length(cells))]}\")}."
        ), call = call)
      }
    }
    pairs <- c(pairs, contrasts)
  }
  m <- t(vapply(pairs, function(p) match(p, cells), integer(2)))
  m <- m[!duplicated(m), , drop = FALSE]
  colnames(m) <- c("cell", "versus")
  m
}

contrast_terms <- function(pairs, cells) {
  paste(cells[pairs[, 1]], "-", cells[pairs[, 2]])
}

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

# The covariates of the cell regressions with strata: stratum indicators
# join `X` when every stratum holds at least two clusters of every cell
# (as lin_regressors() does for two arms); otherwise the stratum-weighted
# means have no variance estimate, and the error says so.
cells_regressors <- function(X, strata, code, k, call = rlang::caller_env()) {
  if (is.null(strata) || nlevels(strata) < 2L) return(X)
  n_cell <- table(strata, factor(code, levels = seq_len(k) - 1L))
  # Matched blocks (every cell in every stratum, some with one cluster):
  # their indicators would leave no residual; the covariates alone, as for
  # matched pairs.
  if (all(n_cell >= 1L) && any(n_cell == 1L)) return(X)
  if (any(n_cell < 2L)) {
    abort_mkt("strata_too_small", c(
      "Some strata hold fewer than two clusters of some cell, so the cell means within them have no variance estimate.",
      i = "Merge small strata into larger ones, so that every stratum holds at least two clusters of every cell."
    ), call = call)
  }
  cbind(X, stats::model.matrix(~ strata)[, -1, drop = FALSE])
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
  strata <- if (!is.null(design) && nlevels(design$strata) > 1L) {
    droplevels(design$strata[pos])
  }
  all_units <- units
  all_pos <- pos
  buf <- NULL
  if (!is.null(design) && !is.null(design$buffer)) {
    buf <- cells_buffer_units(units, design, pos, strata)
    units <- buf$units
    pos <- buf$pos
    strata <- buf$strata
  }
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

# Position of each analysis row in the design (by id when `data` has the
# design's id column, else by row order), after checking that the
# treatment column gives every cluster its designed cell.
align_design_cells <- function(units, design, treatment, cells, call = rlang::caller_env()) {
  n_design <- length(design$ids)
  id_label <- if (is.null(design$id_name)) "id" else design$id_name
  if (!is.null(units$key) && !is.null(design$id_name)) {
    pos <- match(units$key, design$ids)
    how <- "by id"
    unknown <- unique(units$key[is.na(pos)])
    if (length(unknown)) {
      abort_mkt("misaligned", c(
        "{length(unknown)} id{?s} in {.arg data} {?is/are} not in the design: {.val {utils::head(unknown, 5)}}.",
        i = "Analyse the clusters that {.fn rerandomize} assigned."
      ), call = call)
    }
    missing_ids <- setdiff(design$ids, units$key)
    if (length(missing_ids)) {
      abort_mkt("misaligned", c(
        "{length(missing_ids)} designed cluster{?s} {?has/have} no row in {.arg data}: {.val {utils::head(missing_ids, 5)}}.",
        i = "Every randomized cluster must be analysed; check attrition with {.fn experiment_diagnostics}."
      ), call = call)
    }
  } else {
    if (length(units$cell) != n_design) {
      abort_mkt("misaligned", c(
        "{.arg data} has {length(units$cell)} rows but the design has {n_design} clusters.",
        i = "Give one row per designed cluster, or keep the design's id column {.field {id_label}} in {.arg data}."
      ), call = call)
    }
    pos <- seq_len(n_design)
    how <- "by row order"
  }
  wrong <- units$cell != design_cell_codes(design)[pos]
  if (any(wrong)) {
    abort_mkt("misaligned", c(
      "Treatment column {.field {treatment}} disagrees with the design's cells on {sum(wrong)} row{?s} (matched {how}).",
      i = "Give each cluster the cell the design assigned it ({.val {cells}}); if rows are sorted differently, keep the id column {.field {id_label}}."
    ), column = treatment, call = call)
  }
  pos
}

# Whether the strata are matched blocks: every stratum holds every cell and
# some hold a single cluster of a cell (so within-stratum variances do not
# exist). Blocks of one cluster per cell are the usual case; a block with
# a leftover cluster (200 DMAs in blocks of 3) is one too.
is_matched_cells <- function(strata, code, k) {
  if (is.null(strata) || nlevels(strata) < 2L) return(FALSE)
  n <- table(strata, factor(code, levels = seq_len(k) - 1L))
  all(n >= 1L) && any(n == 1L)
}

# The mean outcome of each block's clusters of each cell (blocks x cells).
block_cell_means <- function(y, strata, code, k) {
  s <- as.integer(strata)
  g <- code + 1L
  sums <- matrix(0, nlevels(strata), k)
  counts <- matrix(0L, nlevels(strata), k)
  for (j in seq_len(k)) {
    sums[, j] <- tabulate_sum(y[g == j], s[g == j], nlevels(strata))
    counts[, j] <- tabulate(s[g == j], nlevels(strata))
  }
  sums / counts
}

# Sums of x by integer group 1..n.
tabulate_sum <- function(x, group, n) {
  out <- numeric(n)
  sums <- rowsum(x, group, reorder = TRUE)
  out[as.integer(rownames(sums))] <- sums[, 1]
  out
}

# Each block's weight in the stratum-weighted estimator: its share N_s / N
# of the clusters (1 / S for equal blocks).
block_weights <- function(strata) {
  as.vector(table(strata)) / length(strata)
}

# Inverse-probability weights of a buffered multi-cell design (N x k, cells
# in design order, control first): a cluster's weight if it lands in each
# cell, the control's being one over its probability of being a retained
# control. Floored at half a draw as arm_weights() does.
cells_arm_weights <- function(design) {
  p <- design$arm_prob
  floor_p <- 0.5 / 2000
  cells <- design_cells(design)
  1 / pmax(p[, c("control", cells[-1L]), drop = FALSE], floor_p)
}

# The analysis rows of a buffered multi-cell design: buffer clusters
# dropped, the rest weighted by one over their probability of the arm they
# are in, and the centring values of covariates and stratum indicators taken
# over every designed cluster before dropping (buffer_units() for two arms).
cells_buffer_units <- function(units, design, pos, strata) {
  keep <- design$arm[pos] != "buffer"
  full <- units$X
  if (!is.null(strata)) full <- cbind(full, stats::model.matrix(~ strata)[, -1, drop = FALSE])
  centre <- if (!is.null(full)) colMeans(full)
  take <- function(v) {
    if (is.null(v)) return(NULL)
    if (is.matrix(v)) v[keep, , drop = FALSE] else v[keep]
  }
  kept <- lapply(units, take)
  pos <- pos[keep]
  w <- cells_arm_weights(design)
  list(units = kept, pos = pos, strata = if (!is.null(strata)) strata[keep],
       weights = unname(w[cbind(pos, kept$cell + 1L)]), centre = centre,
       n_buffer = sum(!keep))
}
