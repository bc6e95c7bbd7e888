#' Direct and spillover effects under interference
#'
#' When treating one market moves its neighbours' outcomes (shoppers cross
#' borders, competitors react), the no-interference part of SUTVA fails and
#' a unit's outcome depends on its own treatment and on an exposure mapping
#' \eqn{h_i(D_{-i})} of the others' treatments. `spillover()` builds the
#' mapping from an adjacency or distance matrix, or from group membership,
#' and estimates the direct effect (own treatment) and the spillover effect
#' (exposure) by regression and, when the assignment came from
#' [rerandomize()], by the design-based Horvitz-Thompson and Hajek
#' estimators of Aronow and Samii (2017).
#'
#' @section Exposure mappings:
#' With \eqn{A} the neighbour weights (zero diagonal) and \eqn{D} the 0/1
#' treatment, `exposure = "count"` is \eqn{\sum_j A_{ij} D_j}, `"share"`
#' divides it by \eqn{\sum_j A_{ij}} (0 for units without neighbours) and
#' `"any"` is 1 when at least one neighbour is treated. In the regression
#' the `spillover` row is the coefficient of this exposure: for `"share"`,
#' the effect of going from no treated neighbour to all neighbours treated.
#'
#' @section Design-based estimators:
#' Units fall into four exposure conditions: own treatment (control or
#' treated) crossed with any treated neighbour (isolated or exposed). The
#' probability of each condition for each unit, and of each pair of
#' conditions for each pair of units, is computed from `n_draws` assignments
#' drawn from the design's own acceptance rule (all of them when the design
#' has few enough), so re-randomization and strata are taken into account.
#' Contrasts of condition means are estimated by inverse probability
#' weighting (Horvitz-Thompson) and its ratio form (Hajek), over the units
#' that can reach both conditions; their variance is Aronow and Samii's
#' conservative estimator, which bounds the terms of pairs that never appear
#' together. Rows: `direct` (treated-isolated minus control-isolated),
#' `spillover` (control-exposed minus control-isolated) and
#' `spillover_treated` (treated-exposed minus treated-isolated).
#'
#' When the design keeps buffer zones ([rerandomize()] with `buffer`), the
#' simulated assignments re-apply its buffer rule, admissibility and balance
#' criterion, so the exposure probabilities are those of the design actually
#' run. Give every designed cluster, buffer clusters included: with
#' `exposure = "any"` and the buffer's neighbours, buffer clusters are exactly
#' the exposed controls, and the `spillover` row measures the contamination
#' the buffer kept out of the comparison.
#'
#' The regression is unbiased only when exposure is as good as random given
#' the covariates; under a design, units with many neighbours are exposed
#' more often, and the design-based rows correct for that.
#'
#' @section Panels:
#' With a panel formula `outcome ~ treatment + covariates | unit + time`,
#' exposure is computed period by period from the neighbours' treatment in
#' that period, and the regression absorbs unit and time fixed effects
#' (standard errors clustered by unit unless `cluster` says otherwise, with
#' fixest's small-sample correction). A neighbour's treatment in a missing
#' cell counts as untreated. The design-based rows need one row per
#' randomized cluster and so are not offered for panels.
#'
#' @param formula `outcome ~ treatment` with a 0/1 treatment column and one
#'   row per unit, or a panel formula `outcome ~ treatment + covariates |
#'   unit + time` (see Panels).
#' @param data A data frame with one row per unit, or a long panel.
#' @param covariates Optional one-sided formula of numeric columns of `data`
#'   for the regression, such as `~ pre_sales`.
#' @param adjacency A square matrix with unit ids as row and column names
#'   (0/1 adjacency, non-negative weights, or distances with `radius`), a
#'   [stats::dist()] object with labels (distances), or the name of a column
#'   of `data` giving each unit's group (units of the same group are
#'   neighbours). Distances are never read as weights (farther units would
#'   count more): a `dist` object, or a matrix that is symmetric with a zero
#'   diagonal, positive entries off it and the triangle inequality, needs
#'   `radius` (error `mktcausal_error_bad_adjacency` otherwise). Weights that
#'   decay with distance break the triangle inequality and are used as they
#'   are; any matrix wrapped in [I()] is used as weights.
#' @param exposure `"share"`, `"any"` or `"count"`; see Exposure mappings.
#' @param radius With a distance matrix: units within `radius` are
#'   neighbours. Refused with a 0/1 matrix, a group column or neighbour
#'   pairs, which have no distances.
#' @param id Name of the unit id column matching the names of `adjacency`
#'   (and the design's ids). Defaults to the design's id column.
#' @param design Optional design from [rerandomize()] that drew the
#'   treatment; adds the design-based rows.
#' @param cluster Optional standard-error cluster column: CR2 instead of HC2
#'   for one row per unit; for panels, the clusters of CR1 standard errors
#'   (the unit by default).
#' @param n_draws Number of assignments drawn from the design to compute
#'   exposure probabilities.
#' @param alpha Significance level for confidence intervals.
#' @param ... Must be empty.
#' @return A fit of class `c("mkt_spillover", "mkt_fit")` (see [mkt_fit]).
#'   `tidy()` gives one row per estimator and effect: `term` (`"direct"` and
#'   `"spillover"` for the regression; `"direct_ht"`, `"spillover_ht"`,
#'   `"spillover_treated_ht"` and the same with `_hajek` for the
#'   design-based rows), broom's columns, `df`, `estimator`
#'   (`"regression"`, `"horvitz_thompson"`, `"hajek"`), `effect` (`"direct"`,
#'   `"spillover"`, `"spillover_treated"`) and `n_units`. `vcov()` is the
#'   regression's covariance of its two rows; with design-based rows (other
#'   estimators of the same effects) it is an error that says so.
#'   `tidy(fit, "exposure")` holds each unit's (or cell's) outcome, exposure
#'   and condition, and `tidy(fit, "exposure_prob")` the condition
#'   probabilities under the design (also `$exposure_prob`, a matrix).
#'   `plot(fit)` draws the estimates by effect; `plot(fit, type =
#'   "exposure")` the outcome against exposure by own treatment.
#' @references Aronow, P. M. and Samii, C. (2017). Estimating average causal
#'   effects under general interference, with application to a social
#'   network experiment. *Annals of Applied Statistics* 11(4), 1912-1947.
#' @examples
#' set.seed(3)
#' n <- 80
#' geo <- data.frame(id = sprintf("g%02d", 1:n), x = runif(n), y = runif(n))
#' dist <- as.matrix(stats::dist(geo[, c("x", "y")]))
#' dimnames(dist) <- list(geo$id, geo$id)
#' geo$pre <- rnorm(n, 100, 10)
#' des <- rerandomize(geo, ~ pre, n_treated = 20, accept = 0.2, id = "id")
#' geo$treated <- des$treated
#' near <- (dist <= 0.15) * 1
#' diag(near) <- 0
#' geo$sales <- geo$pre + 5 * geo$treated + 3 * (near %*% geo$treated > 0) +
#'   rnorm(n)
#' fit <- spillover(sales ~ treated, geo, adjacency = dist, covariates = ~ pre,
#'                  radius = 0.15, exposure = "any", id = "id", design = des,
#'                  n_draws = 1000)
#' tidy(fit)
#' @export
spillover <- function(formula, data, adjacency, covariates = NULL,
                      exposure = c("share", "any", "count"), radius = NULL, id = NULL,
                      design = NULL, cluster = NULL, n_draws = 2000, alpha = 0.05, ...) {
  check_dots(...)
  call <- match.call()
  exposure <- check_choice(exposure)
  alpha <- check_alpha(alpha)
  n_draws <- check_count(n_draws, "n_draws", min = 100)
  if (missing(data)) data <- NULL
  if (missing(adjacency)) {
    abort_mkt("bad_adjacency", c(
      "{.arg adjacency} is missing: {.fn spillover} needs to know who neighbours whom.",
      i = "Give a 0/1 adjacency matrix, distances with {.arg radius}, neighbour pairs, or a group column."
    ))
  }
  adjacency <- check_neighbour_input(adjacency, radius, "adjacency", "radius")
  if (inherits(formula, "mkt_panel") || is_panel_formula(formula)) {
    if (!is.null(design) || !is.null(covariates)) {
      abort_mkt("bad_argument", c(
        "With a panel formula, covariates go in the formula and {.arg design} is not used.",
        i = "For design-based estimates give one row per cluster: {.code spillover(sales ~ treated, clusters, adjacency, design = design)}."
      ))
    }
    group <- if (is.character(adjacency) && length(adjacency) == 1L) adjacency
    if (!is.null(group) && is.data.frame(data) && !group %in% names(data)) {
      abort_mkt("bad_adjacency", c(
        "{.arg adjacency} names column {.field {group}}, which is not in {.arg data}.",
        i = "Give a column of group labels, or a square matrix with unit ids as dimnames."
      ))
    }
    panel <- as_panel(formula, data, cluster = if (!isFALSE(cluster)) cluster, extra = group)
    return(spillover_panel_fit(panel, adjacency, exposure, radius, cluster, alpha, call))
  }
  data <- check_data_frame(data)
  if (!is.null(design)) check_design(design)
  check_two_cell(design, "spillover")
  vars <- effect_formula(formula)
  if (is.null(id)) id <- if (!is.null(design)) design$id_name
  if (is.null(id)) {
    abort_mkt("bad_argument", c(
      "{.arg id} must name the unit id column that labels {.arg adjacency}.",
      i = "For example {.code spillover(sales ~ treated, data, adjacency = adj, id = \"dma\")}."
    ))
  }
  check_columns(data, id, "id")
  if (!is.null(cluster)) check_columns(data, cluster, "cluster")
  cov_vars <- effect_covariates(covariates)
  check_columns(data, c(vars$outcome, vars$treatment, cov_vars), "formula")
  y <- check_numeric_column(data, vars$outcome, "outcome")
  require_varying_outcome(y, vars$outcome)
  d <- check_treatment(data[[vars$treatment]], vars$treatment)
  ids <- as.character(data[[id]])
  if (anyDuplicated(ids)) {
    abort_mkt("duplicated_rows", c(
      "Unit ids in {.field {id}} must be unique: {.val {utils::head(ids[duplicated(ids)], 3)}} repeat{?s}.",
      i = "Give one row per unit; aggregate finer rows first."
    ))
  }
  A <- neighbour_matrix(adjacency, ids, data, id, radius)
  Xc <- if (length(cov_vars)) effect_covariate_matrix(data, covariates, cov_vars)
  cl <- if (!is.null(cluster)) data[[cluster]]
  pos <- NULL
  if (!is.null(design)) {
    pos <- match(ids, design$ids)
    if (anyNA(pos) || length(unique(pos)) != length(design$ids)) {
      abort_mkt("misaligned", c(
        "The ids in {.field {id}} must be exactly the design's clusters.",
        i = "{sum(is.na(pos))} id{?s} of {.arg data} {?is/are} not in the design."
      ))
    }
    if (any(design$treated[pos] != d)) {
      abort_mkt("misaligned", c(
        "Treatment column {.field {vars$treatment}} disagrees with the design's assignment on {sum(design$treated[pos] != d)} unit{?s}.",
        i = "Estimate on the assignment the design drew."
      ))
    }
  }
  spillover_fit(y, d, ids, A, Xc, cl, design, pos, exposure, n_draws, alpha, call,
                vars = c(vars, id = id, cluster = cluster))
}

is_panel_formula <- function(formula) {
  inherits(formula, "formula") && length(formula) == 3L &&
    "|" %in% all.names(formula[[3]])
}

# One row per unit: the regression on own treatment and exposure, and with a
# design the Horvitz-Thompson and Hajek contrasts of exposure conditions.
spillover_fit <- function(y, d, ids, A, Xc, cl, design, pos, exposure, n_draws, alpha,
                          call, vars, caller = rlang::caller_env()) {
  h <- as.vector(exposure_of(A, matrix(d, ncol = 1L), exposure))
  condition <- as.vector(exposure_condition(A, matrix(d, ncol = 1L)))
  X <- cbind(`(Intercept)` = 1, direct = d, spillover = h)
  if (!is.null(Xc)) X <- cbind(X, scale(Xc, scale = FALSE))
  if (stats::var(h) == 0) {
    abort_mkt("no_variation", c(
      "Exposure ({exposure}) is the same for every unit, so the spillover effect is not identified.",
      i = "Check {.arg adjacency} (and {.arg radius}): every unit needs neighbours, some treated and some not."
    ), call = caller)
  }
  # The regression runs on the outcome on a scale near 1 (see
  # outcome_scale()) and its answers are scaled back.
  s <- outcome_scale(y)
  fit <- ols_robust(X, y / s, cluster = cl)
  terms <- c("direct", "spillover")
  rows <- lapply(terms, function(term) {
    r <- robust_row(fit$coefficients[[term]], sqrt(fit$vcov[term, term]), fit$df[[term]], alpha)
    data.frame(term = term, r, estimator = "regression", effect = term, n_units = length(y),
               stringsAsFactors = FALSE)
  })
  estimates <- unscale_table(do.call(rbind, rows), s)
  fit <- unscale_ols(fit, s)
  prob <- NULL
  n_used <- NULL
  if (!is.null(design)) {
    n_draws <- check_count(n_draws, "n_draws", min = 100, call = caller)
    pool <- exposure_pool(design, n_draws)
    W <- pool$assignments[pos, , drop = FALSE]
    n_used <- ncol(W)
    dz <- design_based_spillover(y, condition, exposure_condition(A, W), alpha)
    dz$rows$effect <- dz$rows$term
    dz$rows$term <- paste(dz$rows$term,
                          ifelse(dz$rows$estimator == "hajek", "hajek", "ht"), sep = "_")
    estimates <- rbind(estimates, dz$rows[names(estimates)])
    prob <- dz$prob
    dimnames(prob) <- list(ids, exposure_levels)
  }
  rownames(estimates) <- NULL
  cond <- factor(exposure_levels[condition], exposure_levels)
  expo <- data.frame(id = ids, treated = d, outcome = y, exposure = h, condition = cond,
                     n_neighbours = rowSums(A > 0), stringsAsFactors = FALSE)
  inference <- if (is.null(cl)) "HC2 (regression)" else
    sprintf("CR2 clustered by %s, Bell-McCaffrey df (regression)", vars$cluster)
  if (!is.null(design)) {
    inference <- sprintf(paste(
      "%s; Aronow-Samii conservative variance of the Horvitz-Thompson and Hajek rows,",
      "exposure probabilities from %s assignments of the design"),
      inference, format(n_used, big.mark = ","))
  }
  new_fit(
    "spillover", estimates,
    method = sprintf("Direct and spillover effects (exposure: %s)", exposure),
    estimand = spillover_estimand(exposure, !is.null(design)),
    inference = inference, alpha = alpha,
    n = list(obs = length(y), units = length(y), treated = sum(d),
             clusters = if (is.null(cl)) NA_integer_ else length(unique(cl)),
             exposed_controls = sum(cond == "control_exposed")),
    call = call,
    vcov = if (is.null(design)) fit$vcov[terms, terms],
    no_vcov = if (!is.null(design)) paste(
      "its rows are three estimators (regression, Horvitz-Thompson, Hajek) of the same",
      "effects, so they have no joint covariance; the regression's is in $regression$vcov"),
    vars = vars,
    glance = list(exposure = exposure, design_based = !is.null(design),
                  n_draws = if (is.null(n_used)) NA_integer_ else as.integer(n_used)),
    tables = c(list(exposure = expo),
               if (!is.null(prob)) list(exposure_prob = data.frame(
                 id = ids, prob, row.names = NULL, stringsAsFactors = FALSE))),
    exposure = expo, exposure_prob = prob, exposure_type = exposure, regression = fit
  )
}

spillover_estimand <- function(exposure, design_based) {
  what <- switch(exposure,
    share = "the share of treated neighbours going from 0 to 1",
    any = "having at least one treated neighbour",
    count = "one more treated neighbour")
  out <- sprintf("direct: own treatment at fixed exposure; spillover: %s", what)
  if (design_based) {
    out <- paste(out, "(design-based rows: contrasts of exposure conditions, any treated neighbour)")
  }
  out
}

# The panel regression: y_it = a_i + l_t + tau D_it + gamma h_it + x_it'b.
spillover_panel_fit <- function(panel, adjacency, exposure, radius, cluster, alpha, call) {
  require_binary_treatment(panel, "spillover", absorbing = FALSE, call = call)
  require_varying_outcome(panel$Y[panel$observed], panel$vars$outcome, call = call)
  ids <- as.character(panel$units)
  A <- if (is.character(adjacency) && length(adjacency) == 1L) {
    groups <- data.frame(.id = ids, stringsAsFactors = FALSE)
    groups[[adjacency]] <- panel_unit_values(panel, adjacency, extra = TRUE, call = call)
    neighbour_matrix(adjacency, ids, groups, ".id", radius, call = call)
  } else {
    neighbour_matrix(adjacency, ids, radius = radius, call = call)
  }
  D0 <- panel$D
  D0[is.na(D0)] <- 0
  H <- exposure_of(A, D0, exposure)
  cond <- exposure_condition(A, D0)
  cells <- panel_cells(panel, extra = list(h = H, condition = cond))
  covs <- panel$vars$covariates
  keep <- stats::complete.cases(cells$X[, covs, drop = FALSE])
  fe <- list(unit = cells$unit[keep], time = cells$time[keep])
  cl <- if (is.null(cluster)) cells$unit[keep] else if (isFALSE(cluster)) NULL else
    panel$cluster[cbind(cells$unit, cells$time)][keep]
  se_type <- if (is.null(cl)) "HC1" else "CR1"
  Xs <- cbind(direct = cells$d[keep], spillover = cells$extra$h[keep],
              cells$X[keep, covs, drop = FALSE])
  M <- within_transform(cbind(y = cells$y[keep], Xs), fe)
  if (max(abs(M[, "spillover"])) < 1e-10 * max(1, abs(Xs[, "spillover"]))) {
    abort_mkt("no_variation", c(
      "Exposure ({exposure}) does not vary once unit and time effects are removed, so the spillover effect is not identified.",
      i = "Check {.arg adjacency}: neighbours must switch treatment at different times."
    ), call = call)
  }
  s <- outcome_scale(M[, "y"])
  fit <- ols_robust(M[, -1, drop = FALSE], M[, "y"] / s, cluster = cl, se_type = se_type,
                    n_absorbed = fe_absorbed(fe, cl), call = call)
  terms <- c("direct", "spillover")
  est <- unscale_table(fe_estimates(fit$coefficients, fit$vcov, fit$df, alpha, terms = terms), s)
  fit <- unscale_ols(fit, s)
  n_units <- length(unique(fe$unit))
  estimates <- data.frame(est, estimator = "regression", effect = terms, n_units = n_units,
                          stringsAsFactors = FALSE)
  condition <- factor(exposure_levels[cells$extra$condition], exposure_levels)
  expo <- data.frame(id = ids[cells$unit], time = panel$times[cells$time],
                     treated = cells$d, outcome = cells$y, exposure = cells$extra$h,
                     condition = condition, n_neighbours = rowSums(A > 0)[cells$unit],
                     stringsAsFactors = FALSE)
  cl_name <- if (is.null(cluster)) panel$vars$unit else panel$vars$cluster
  new_fit(
    "spillover", estimates,
    method = sprintf("Direct and spillover effects (exposure: %s)", exposure),
    estimand = paste(spillover_estimand(exposure, FALSE), "(per period)"),
    inference = if (is.null(cl)) "HC1 with unit and time fixed effects" else
      sprintf("CR1 clustered by %s, unit and time fixed effects (fixest's small-sample correction)",
              cl_name),
    alpha = alpha,
    n = list(obs = sum(keep), units = n_units, periods = length(panel$times),
             treated = sum(!is.na(panel$cohort)),
             clusters = if (is.null(cl)) NA_integer_ else length(unique(cl))),
    call = call,
    vcov = fit$vcov[terms, terms],
    vars = panel$vars,
    glance = list(exposure = exposure, design_based = FALSE, n_draws = NA_integer_),
    tables = list(exposure = expo),
    exposure = expo, exposure_prob = NULL, exposure_type = exposure, regression = fit
  )
}

# Horvitz-Thompson and Hajek contrasts of exposure conditions with Aronow
# and Samii's conservative variance. `cond` is each unit's observed condition
# (1..4), `C` its condition under each simulated assignment (N x R).
design_based_spillover <- function(y, cond, C, alpha) {
  R <- ncol(C)
  ind <- lapply(1:4, function(k) (C == k) * 1)
  prob <- vapply(ind, rowMeans, numeric(length(y)))
  contrasts <- list(direct = c(3L, 1L), spillover = c(2L, 1L), spillover_treated = c(4L, 3L))
  z <- stats::qnorm(alpha / 2, lower.tail = FALSE)
  rows <- list()
  for (term in names(contrasts)) {
    k <- contrasts[[term]][1]
    l <- contrasts[[term]][2]
    keep <- prob[, k] > 0 & prob[, l] > 0
    n_u <- sum(keep)
    seen_k <- keep & cond == k
    seen_l <- keep & cond == l
    if (n_u < 2L || !any(seen_k) || !any(seen_l)) {
      for (est in c("horvitz_thompson", "hajek")) {
        rows[[length(rows) + 1L]] <- data.frame(
          estimator = est, term = term, estimate = NA_real_, std.error = NA_real_,
          statistic = NA_real_, p.value = NA_real_, conf.low = NA_real_,
          conf.high = NA_real_, df = Inf, n_units = n_u)
      }
      next
    }
    pk <- prob[keep, k]
    pl <- prob[keep, l]
    Ik <- as.numeric(seen_k[keep])
    Il <- as.numeric(seen_l[keep])
    yk <- y[keep]
    Pkk <- tcrossprod(ind[[k]][keep, , drop = FALSE]) / R
    Pll <- tcrossprod(ind[[l]][keep, , drop = FALSE]) / R
    Pkl <- tcrossprod(ind[[k]][keep, , drop = FALSE], ind[[l]][keep, , drop = FALSE]) / R
    ht_k <- sum(Ik * yk / pk)
    ht_l <- sum(Il * yk / pl)
    hajek_k <- ht_k / sum(Ik / pk)
    hajek_l <- ht_l / sum(Il / pl)
    for (est in c("horvitz_thompson", "hajek")) {
      if (est == "horvitz_thompson") {
        estimate <- (ht_k - ht_l) / n_u
        uk <- yk
        ul <- yk
      } else {
        estimate <- hajek_k - hajek_l
        uk <- yk - hajek_k
        ul <- yk - hajek_l
      }
      v <- as_variance(uk, Ik, pk, Pkk) + as_variance(ul, Il, pl, Pll) -
        2 * as_covariance(uk, Ik, pk, ul, Il, pl, Pkl)
      se <- sqrt(max(v, 0)) / n_u
      rows[[length(rows) + 1L]] <- data.frame(
        estimator = est, term = term, estimate = estimate, std.error = se,
        statistic = estimate / se, p.value = 2 * stats::pnorm(-abs(estimate / se)),
        conf.low = estimate - z * se, conf.high = estimate + z * se, df = Inf,
        n_units = n_u)
    }
  }
  list(rows = do.call(rbind, rows), prob = prob)
}

# Aronow-Samii variance estimator of the Horvitz-Thompson total of u over the
# units observed in a condition (I = 1), with first-order probabilities p and
# joint probabilities P (diagonal p). Pairs that never share the condition
# (P = 0) are bounded by Young's inequality.
as_variance <- function(u, I, p, P) {
  a <- I * u / p
  pos <- P > 0
  pp <- tcrossprod(p)
  term <- ifelse(pos, (P - pp) / ifelse(pos, P, 1), 0)
  zero_pairs <- rowSums(!pos)
  sum(term * tcrossprod(a)) + sum(I * u^2 / p * zero_pairs)
}

# Covariance of the totals in conditions k and l; P[i, j] is the probability
# that unit i is in k while unit j is in l (zero on the diagonal).
as_covariance <- function(uk, Ik, pk, ul, Il, pl, P) {
  ak <- Ik * uk / pk
  al <- Il * ul / pl
  pos <- P > 0
  term <- ifelse(pos, (P - tcrossprod(pk, pl)) / ifelse(pos, P, 1), 0)
  bound <- sum(Ik * uk^2 / (2 * pk) * rowSums(!pos)) + sum(Il * ul^2 / (2 * pl) * colSums(!pos))
  sum(term * outer(ak, al)) - bound
}
