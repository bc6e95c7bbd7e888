#' Estimate the effect of a randomized (geo) experiment
#'
#' Analyses a cluster-randomized experiment with two estimators, each with
#' design-based (HC2, or CR2 on finer rows) standard errors: the difference
#' in means, stratum-weighted when the design has strata, and the Lin (2013)
#' regression-adjusted estimator. Alongside the effect it reports the lift,
#' the total incremental outcome and, with spend, the incremental return on
#' ad spend. When the design object is given, it checks that the data match
#' the assignment that was drawn and adds randomization-inference columns
#' conditional on the design's acceptance rule.
#'
#' @section Estimands:
#' * `estimand = "total"` (the revenue question). The outcome column holds
#'   totals (for example sales of a geo in the test window), so large
#'   clusters weigh more simply because their totals are larger. `estimate`
#'   is the average effect of treatment on a cluster's total, \eqn{\tau =
#'   M^{-1}\sum_j [T_j(1) - T_j(0)]}, and `incremental` = `estimate` times the
#'   number of treated clusters: the estimated total incremental outcome
#'   caused in the treated arm. With finer rows (`cluster` given), `estimate`
#'   is the average effect on one row's outcome and `incremental` is it times
#'   the number of treated rows, again the total incremental outcome.
#' * `estimand = "mean"` (the per-capita question). Each cluster's outcome
#'   is divided by its `size` (summed over its rows when rows are finer), and
#'   each cluster counts once: `estimate` is the average over clusters of the
#'   per-capita effect, \eqn{M^{-1}\sum_j [\bar Y_j(1) - \bar Y_j(0)]}. A
#'   small cluster moves it as much as a large one, so it answers "how much
#'   does a typical market respond per head", not "how much revenue did we
#'   make". `incremental` = `estimate` times the treated population, which
#'   equals the total incremental outcome only if per-capita effects do not
#'   vary with cluster size; use `"total"` for revenue.
#'
#' @section Estimators:
#' * `"diff_in_means"`: difference of arm means. Without strata its standard
#'   error is the Neyman one (equal to HC2 of the regression on treatment)
#'   with Welch degrees of freedom. With the design's strata it is the
#'   stratum-weighted estimator \eqn{\sum_s (N_s/N)\hat\tau_s} with the
#'   within-stratum Neyman variance and \eqn{N - 2S} degrees of freedom, or,
#'   when every stratum is a pair, the matched-pair variance with \eqn{S - 1}
#'   degrees of freedom (as `estimatr::difference_in_means(blocks = )`).
#' * `"lin"`: OLS of the outcome on treatment, centred covariates and their
#'   interactions with treatment (Lin 2013), HC2 standard errors and residual
#'   degrees of freedom; with strata of at least two clusters per arm the
#'   centred stratum indicators are among the covariates. Reported when
#'   covariates are given or taken from the design. A pre-period outcome
#'   column as covariate gives the ANCOVA estimator.
#'
#' @section Several cells:
#' When the treatment column holds cell labels (character or factor, such
#' as `"control"`, `"heavy_up"`, `"go_dark"`), or `design` has several cells
#' ([rerandomize()] with a named `n_treated`), every cell is compared with
#' the reference cell: the design's control cell, or without a design
#' `"control"` when it is one of the labels, else the first level (a
#' factor's first level, a character column's first in sorted order;
#' reorder the factor to choose another). `contrasts` adds cell-vs-cell
#' comparisons. There is one row per contrast and estimator, named like
#' `"heavy_up - control"` (the first cell minus the second), with the
#' estimator in column `estimator`.
#'
#' The difference in means is the regression of the outcome on the cell
#' indicators (with strata, the centred stratum indicators interacted with
#' every cell, which gives each cell's stratum-weighted mean); Lin's
#' estimator is the fully interacted regression: cell indicators, the
#' covariates centred at their full-sample mean, and their interactions with
#' every cell. Each cell's coefficient is then its covariate-adjusted mean,
#' and a contrast is the difference of two of them. Both regressions are
#' block diagonal across cells, so their HC2 covariance is too: two
#' contrasts covary only through a shared cell. Degrees of freedom are
#' Welch's for each pair of cells (difference in means without strata), else
#' the residual degrees of freedom of the regression. `lift_pct` divides by
#' the first cell's counterfactual mean, `incremental` is the estimate times
#' the first cell's clusters (or population for `estimand = "mean"`), and
#' with `spend` the incremental spend is the difference in mean spend times
#' the same clusters: a go-dark cell (spend removed) whose outcome falls has
#' a positive iROAS. A contrast whose two cells have the same mean spend
#' has no iROAS and is refused (`mktcausal_error_bad_spend`), as is negative
#' spend. With a design, `p.value_randomization` and `p.value_familywise`
#' (max-T over the contrasts) come from [randomization_test()] on the same
#' reference assignments. `vcov(fit, estimator = "lin")` gives the joint
#' covariance of one estimator's contrasts; `coef(fit, estimator = )` their
#' estimates. Several cells need one row per cluster (no `cluster`). With a
#' buffered multi-cell design, buffer clusters (controls next to a cluster
#' of any treated cell) are left out, each cell's clusters are weighted by
#' one over their probability of that cell and kept controls by one over
#' their probability of being a kept control (see Buffer zones); the
#' randomization columns are then given for the difference in means only.
#'
#' @section Buffer zones:
#' With a design that keeps buffer zones ([rerandomize()] with `buffer`),
#' `data` still holds every designed cluster, but the estimators use only
#' treated clusters and retained controls: buffer clusters (untreated
#' neighbours of treated ones) are dropped. Because clusters with many
#' neighbours land in the buffer more often, retained controls are not a
#' random sample of the untreated; both estimators therefore weight each
#' cluster by one over its probability of its arm under the design
#' (`$arm_prob`), and the Lin regression centres covariates and stratum
#' indicators at their means over all designed clusters. `diff_in_means` is
#' then the (stratum-weighted) Hajek difference, which targets the average
#' over all clusters of the effect of treatment relative to an isolated
#' control, with HC2 standard errors from the weighted regression. The
#' randomization columns of `diff_in_means` come from
#' [randomization_test()] with the same buffer re-applied to each reference
#' assignment (they need the buffer clusters' outcomes: under the sharp null
#' they are the outcomes those clusters would have in any arm); they are
#' `NA` for `lin`. `glance()` reports `n_buffer`.
#'
#' With finer rows and `cluster`, both are the same regressions on rows with
#' CR2 standard errors and Bell-McCaffrey degrees of freedom at the cluster
#' level (as `estimatr::lm_robust(se_type = "CR2")`).
#'
#' @param formula `outcome ~ treatment`, with a 0/1 treatment column, or a
#'   column of cell labels for several cells (see Several cells).
#' @param data A data frame with one row per cluster, or finer rows (stores,
#'   zip codes, weeks) with `cluster` naming the cluster column. Without
#'   `cluster`, every row is analysed as a randomized cluster, so a long panel
#'   (a column whose values each span several rows with one arm, and a time
#'   column repeating across them, as in a DMA x week table) or several rows
#'   of one designed cluster is refused with the error
#'   `mktcausal_error_long_panel`, whose message shows the code that sums
#'   the rows to one per cluster.
#' @param design Optional design from [rerandomize()]. Its assignment must
#'   match the treatment column; its strata are used by the estimators and
#'   its covariates (read from the design) when `covariates` is `NULL`.
#' @param covariates Optional one-sided formula of numeric columns of `data`
#'   for the Lin estimator, such as `~ pre_sales + pop`.
#' @param estimand `"total"` or `"mean"`; see Estimands.
#' @param spend Optional name of the column of spend in the test window
#'   (per cluster, or per row with finer rows).
#' @param size Name of the column of cluster sizes (population), required
#'   for `estimand = "mean"`.
#' @param cluster Optional name of the standard-error cluster column when
#'   rows are finer than the randomized clusters (each cluster must be wholly
#'   treated or wholly control).
#' @param n_draws Number of reference assignments for the randomization test
#'   when `design` is given.
#' @param alpha Significance level for confidence intervals.
#' @param contrasts With several cells, further comparisons besides every
#'   cell against the reference cell: a list of pairs of cell labels, each
#'   the cell and the cell it is compared with, e.g.
#'   `list(c("heavy_up", "go_dark"))`.
#' @param estimator For `coef()` and `vcov()` of a fit with several cells:
#'   `"diff_in_means"` or `"lin"`.
#' @param ... Must be empty.
#' @return A fit of class `c("mkt_effect", "mkt_fit")` (see [mkt_fit]).
#'   `tidy()` gives one row per estimator with broom's columns, `df`,
#'   `lift_pct` (100 times the estimate over the treated arm's
#'   counterfactual mean, that is the treated mean minus the estimate),
#'   `incremental`, `iroas` (incremental outcome over incremental spend, the
#'   latter being the difference in mean spend times the number of treated
#'   units) and, with a design, `p.value_randomization`,
#'   `conf.low_randomization` and `conf.high_randomization`. `glance()` adds
#'   `estimand`, `spend_incremental`, `randomization`, `n_draws` and `n_rows`
#'   (rows of `data`, buffer clusters included) to the shared columns
#'   (`n_units` counts the analysed clusters, `n_buffer` the buffer
#'   clusters left out). `vcov()` is the variance of the one estimate when
#'   there are no covariates; with two rows (two estimators of one effect)
#'   it is an error that says so. `tidy(fit, "outcomes")` gives the analysed
#'   rows; `plot(fit)` draws the estimates with their intervals and lifts,
#'   `plot(fit, type = "outcomes")` the outcomes by arm with the treated
#'   arm's counterfactual mean.
#' @references Lin, W. (2013). Agnostic notes on regression adjustments to
#'   experimental data: reexamining Freedman's critique. *Annals of Applied
#'   Statistics* 7(1), 295-318. Bell, R. M. and McCaffrey, D. F. (2002). Bias
#'   reduction in standard errors for linear regression with multi-stage
#'   samples. *Survey Methodology* 28(2), 169-181.
#' @examples
#' set.seed(1)
#' geos <- data.frame(geo = 1:40, pop = round(runif(40, 1e4, 1e5)))
#' geos$pre_sales <- geos$pop * rnorm(40, 2, 0.2)
#' geos$treated <- sample(rep(0:1, 20))
#' geos$spend <- 500 * geos$treated
#' geos$sales <- 1.05 * geos$pre_sales + 3000 * geos$treated + rnorm(40, 0, 2000)
#' fit <- experiment_effect(sales ~ treated, geos, covariates = ~ pre_sales,
#'                          spend = "spend")
#' fit
#' tidy(fit)
#' @export
experiment_effect <- function(formula, data, design = NULL, covariates = NULL,
                              estimand = c("total", "mean"), spend = NULL,
                              size = NULL, cluster = NULL, n_draws = 2000,
                              alpha = 0.05, contrasts = NULL, ...) {
  check_dots(...)
  call <- match.call()
  data <- check_data_frame(data)
  estimand <- check_choice(estimand)
  alpha <- check_alpha(alpha)
  vars <- effect_formula(formula)
  if (!is.null(design)) check_design(design)
  cov_vars <- effect_covariates(covariates)
  for (arg in c("spend", "size", "cluster")) {
    value <- get(arg)
    if (!is.null(value) && !(is.character(value) && length(value) == 1L)) {
      abort_mkt("bad_argument", "{.arg {arg}} must be the name of one column of {.arg data}.")
    }
  }
  if (estimand == "mean" && is.null(size)) {
    abort_mkt("bad_argument", c(
      "{.code estimand = \"mean\"} divides outcomes by cluster size, so it needs {.arg size}.",
      i = "Name the population column, e.g. {.code size = \"pop\"}, or use {.code estimand = \"total\"}."
    ))
  }
  check_columns(data, vars$outcome, "formula")
  check_columns(data, vars$treatment, "formula")
  check_columns(data, cov_vars, "covariates")
  for (arg in c("spend", "size", "cluster")) {
    if (!is.null(get(arg))) check_columns(data, get(arg), arg)
  }

  tr <- data[[vars$treatment]]
  if (isTRUE(design$multi_cell) || is.character(tr) || is.factor(tr)) {
    return(experiment_effect_cells_front(data, design, covariates, cov_vars, vars, estimand,
                                         spend, size, cluster, n_draws, alpha, contrasts,
                                         call))
  }
  if (!is.null(contrasts)) {
    abort_mkt("bad_contrast", c(
      "{.arg contrasts} compares cells, but treatment column {.field {vars$treatment}} holds two arms (0/1).",
      i = "Give the cells' labels in the treatment column (character or factor), or leave {.arg contrasts} out."
    ))
  }
  treat <- check_treatment(tr, vars$treatment)
  y <- check_numeric_column(data, vars$outcome, "outcome")
  X <- effect_covariate_matrix(data, covariates, cov_vars)
  sp <- if (!is.null(spend)) check_numeric_column(data, spend, "spend")
  sz <- if (!is.null(size)) check_numeric_column(data, size, "size", positive = TRUE)
  cl <- if (!is.null(cluster)) check_cluster_column(data, cluster, treat)

  units <- list(y = y, treat = treat, X = X, spend = sp, size = sz, cluster = cl,
                key = effect_keys(data, design, cl))
  if (is.null(cluster)) {
    check_one_row_per_cluster(data, units, design, vars, c(cov_vars, spend, size))
  }
  if (estimand == "mean") {
    units <- per_capita_units(units)
  }
  pos <- if (!is.null(design)) align_design(units, design, vars$treatment)
  # Without covariates of its own, the Lin row balances on the design's
  # covariates, read from the design (checked when it was drawn).
  if (is.null(units$X) && is.null(covariates) && !is.null(design)) {
    units$X <- design$X[pos, , drop = FALSE]
    cov_vars <- design$covariates
  }
  vars$covariates <- cov_vars
  vars$cluster <- cluster
  experiment_effect_fit(units, design, pos, estimand = estimand, n_draws = n_draws,
                        alpha = alpha, call = call, vars = vars, n_rows = nrow(data),
                        series = if (estimand == "total" && is.null(cluster)) effect_series(data))
}

# The estimators on the checked analysis rows `units` (aligned with the
# design at positions `pos` when there is one).
experiment_effect_fit <- function(units, design, pos, estimand, n_draws, alpha,
                                  call = NULL, vars = NULL, n_rows = length(units$y),
                                  series = NULL) {
  all_units <- units
  all_pos <- pos
  rows <- design_rows(units, design, pos, buffer_units)
  units <- rows$units
  pos <- rows$pos
  strata <- rows$strata
  buf <- rows$buf

  # Both estimators are equivariant in the outcome: they fit it divided by an
  # exact power of two (outcome_scale()), so that outcomes near 1e300 or
  # 1e-300 do not overflow the variances and the Welch df.
  s <- outcome_scale(units$y)
  scaled <- units
  scaled$y <- units$y / s
  within <- tapply(scaled$y, units$treat, function(v) if (length(v) > 1) stats::var(v) else 0)
  if (all(is.finite(within)) && all(within == 0)) {
    abort_mkt("no_variation", c(
      "The outcome does not vary within either arm, so the effect has no standard error.",
      i = "Check the outcome column: a constant outcome carries no information on the effect."
    ), call = call %||% rlang::caller_env())
  }
  rows <- list(diff_in_means = fit_diff_in_means(scaled, strata, alpha, buf))
  if (!is.null(units$X)) rows$lin <- fit_lin(scaled, strata, alpha, buf)
  est <- unscale_table(do.call(rbind, rows), s)
  est <- cbind(term = names(rows), est, stringsAsFactors = FALSE)
  rownames(est) <- NULL

  n_treated_units <- sum(units$treat)
  counterfactual <- mean(units$y[units$treat == 1]) - est$estimate
  est$lift_pct <- 100 * est$estimate / counterfactual
  scale <- if (estimand == "total") n_treated_units else sum(units$size[units$treat == 1])
  est$incremental <- est$estimate * scale
  spend_incremental <- if (!is.null(units$spend)) {
    (mean(units$spend[units$treat == 1]) - mean(units$spend[units$treat == 0])) *
      n_treated_units
  } else NA_real_
  est$iroas <- est$incremental / spend_incremental

  if (!is.null(design)) {
    est <- add_randomization(est, design, all_units, all_pos, n_draws, alpha)
  }

  fine <- !is.null(units$cluster)
  n_clusters <- if (fine) length(unique(units$cluster)) else length(units$y)
  n_treated <- if (fine) length(unique(units$cluster[units$treat == 1])) else n_treated_units
  n_strata <- if (is.null(strata)) 1L else nlevels(strata)
  n_buffer <- if (is.null(buf)) NA_integer_ else buf$n_buffer
  single <- nrow(est) == 1L
  # The table shows the lift and the randomization p-value; the incremental
  # outcome, iROAS and randomization intervals follow it (print_details), so
  # that it stays within 80 columns.
  over_time <- NULL
  if (!is.null(series)) {
    values <- series$values
    if (!is.null(buf)) values <- values[design$arm[all_pos] != "buffer", , drop = FALSE]
    over_time <- experiment_effect_over_time(values, series$times, series$post, units,
                                             strata, alpha, buf)
    attr(over_time, "time_name") <- series$time_name
  }
  print_columns <- c(lift_pct = "lift %",
                     p.value_randomization = if (!is.null(design)) "p (rand.)")
  new_fit(
    "effect", est,
    method = paste0("Experiment effect: difference in means",
                    if (!single) " and Lin regression adjustment"),
    estimand = effect_estimand(estimand, fine, !is.null(buf)),
    inference = effect_inference(units, strata, buf, design, n_draws, vars$cluster),
    alpha = alpha,
    n = list(obs = if (fine) length(units$y) else n_clusters, units = n_clusters,
             treated = n_treated, clusters = if (fine) n_clusters else NA_integer_,
             strata = if (n_strata > 1L) n_strata else NA_integer_, buffer = n_buffer),
    call = call,
    vcov = if (single) matrix(est$std.error^2, 1L, 1L),
    no_vcov = if (!single) paste(
      "its rows are two estimators of one effect (difference in means and Lin",
      "regression adjustment), so they have no joint covariance"),
    vars = vars,
    glance = list(estimand = estimand, spend_incremental = spend_incremental,
                  randomization = !is.null(design),
                  n_draws = if (!is.null(design)) as.integer(n_draws) else NA_integer_,
                  n_rows = as.integer(n_rows)),
    tables = list(outcomes = effect_outcomes(units, est, buf), effect_over_time = over_time),
    print_columns = print_columns
  )
}

effect_inference <- function(units, strata, buf, design, n_draws, cluster) {
  base <- if (!is.null(units$cluster)) {
    sprintf("CR2 clustered by %s, Bell-McCaffrey df", cluster)
  } else if (!is.null(buf)) {
    "HC2 on inverse arm-probability weights"
  } else if (is.null(strata)) {
    "HC2 (Neyman); Welch df for the difference in means"
  } else if (all(table(strata) == 2L)) {
    "HC2; matched-pair variance for the difference in means"
  } else {
    "HC2 with stratum indicators"
  }
  if (is.null(design)) return(base)
  sprintf("%s; randomization p-values conditional on the design's rule (%s draws)",
          base, format(n_draws, big.mark = ","))
}

# The clusters' outcome series that a geo_units() table with a test window
# carries (attribute "series"), in the order of `data`'s rows; NULL when
# `data` carries none or its ids do not match them.
effect_series <- function(data) {
  s <- attr(data, "series")
  id <- attr(data, "id")
  post <- attr(data, "post")
  if (is.null(s) || is.null(id) || is.null(post) || !id %in% names(data)) return(NULL)
  rows <- match(as.character(data[[id]]), rownames(s))
  if (anyNA(rows)) return(NULL)
  times <- attr(s, "times")
  list(values = s[rows, , drop = FALSE], times = times, post = times %in% post,
       time_name = attr(data, "time_col"))
}

# The analysed rows, for the plot of outcomes by arm.
effect_outcomes <- function(units, est, buf) {
  n <- length(units$y)
  data.frame(
    id = if (!is.null(units$key)) units$key else as.character(seq_len(n)),
    treated = units$treat,
    outcome = units$y,
    weight = if (is.null(buf)) rep(1, n) else buf$weights,
    stringsAsFactors = FALSE
  )
}

# --- inputs -----------------------------------------------------------------

# --- estimators -------------------------------------------------------------

fit_diff_in_means <- function(units, strata, alpha, buf = NULL) {
  y <- units$y
  t <- units$treat
  if (!is.null(buf) && is.null(strata)) {
    # Weighted least squares on the treatment indicator is the Hajek
    # difference of inverse-probability weighted arm means.
    fit <- ols_robust(cbind(`(Intercept)` = 1, treatment = t), y, cluster = units$cluster,
                      weights = buf$weights)
    return(robust_row(fit$coefficients[["treatment"]], sqrt(fit$vcov[2, 2]),
                      fit$df[["treatment"]], alpha))
  }
  if (is.null(strata)) {
    fit <- ols_robust(cbind(`(Intercept)` = 1, treatment = t), y, cluster = units$cluster)
    df <- fit$df[["treatment"]]
    if (is.null(units$cluster)) {
      v1 <- stats::var(y[t == 1]) / sum(t == 1)
      v0 <- stats::var(y[t == 0]) / sum(t == 0)
      df <- (v1 + v0)^2 / (v1^2 / (sum(t == 1) - 1) + v0^2 / (sum(t == 0) - 1))
    }
    return(robust_row(fit$coefficients[["treatment"]], sqrt(fit$vcov[2, 2]), df, alpha))
  }
  if (is.null(units$cluster) && all(table(strata) == 2L)) {
    # Matched pairs: the within-pair variance is not estimable, so the
    # variance comes from the spread of pair differences (intercept-only HC2).
    d <- as.vector(tapply(y * (2 * t - 1), strata, sum))
    fit <- ols_robust(cbind(`(Intercept)` = rep(1, length(d))), d)
    return(robust_row(fit$coefficients[[1]], sqrt(fit$vcov[1, 1]), fit$df[[1]], alpha))
  }
  lin_row(units, NULL, strata, alpha, buf = buf)
}

fit_lin <- function(units, strata, alpha, buf = NULL) {
  lin_row(units, units$X, strata, alpha, buf = buf)
}

# Lin (2013) regression; stratum indicators enter as centred covariates, which
# makes it the stratum-weighted difference in means when X is NULL.
# With a buffer the regression is weighted by one over each cluster's arm
# probability and centred at the means over all designed rows (buffer
# clusters included), so it targets the average over every cluster rather
# than over the clusters that happen to stay outside the buffer.
lin_row <- function(units, X, strata, alpha, buf = NULL, call = rlang::caller_env()) {
  if (!is.null(strata)) {
    first <- if (is.null(units$cluster)) TRUE else !duplicated(units$cluster)
    n_arm <- table(strata[first], factor(units$treat[first], levels = 0:1))
    # The same rule as the randomization test's Lin statistic.
    X <- lin_regressors(X, strata, n_arm[, "1"], n_arm[, "0"])
    if (is.null(X)) {
      abort_mkt("strata_too_small", c(
        "Some strata have a single treated or control cluster, so their variance cannot be estimated.",
        i = "Merge small strata into larger ones, or pair every cluster (all strata of size two)."
      ), call = call)
    }
  }
  t <- units$treat
  centre <- if (is.null(buf)) colMeans(X) else buf$centre[colnames(X)]
  Xc <- sweep(X, 2, centre)
  colnames(Xc) <- colnames(X)
  M <- cbind(`(Intercept)` = 1, treatment = t, Xc, Xc * t)
  colnames(M)[-(1:2)] <- c(colnames(X), paste0("treatment:", colnames(X)))
  fit <- ols_robust(M, units$y, cluster = units$cluster, weights = buf$weights, call = call)
  robust_row(fit$coefficients[["treatment"]], sqrt(fit$vcov["treatment", "treatment"]),
             fit$df[["treatment"]], alpha)
}

# The analysis rows of a buffered design: buffer clusters dropped, the
# others weighted by one over their probability of the arm they are in, and
# the centring values of covariates and stratum indicators taken over all
# designed rows before dropping.
buffer_units <- function(units, design, pos, strata) {
  b <- buffer_subset(units, design, pos, strata)
  kept <- b$units
  pos <- b$pos
  centre <- b$centre
  aw <- arm_weights(design)
  weights <- ifelse(kept$treat == 1, aw$treated[pos], aw$control[pos])
  list(units = kept, pos = pos, strata = b$strata,
       weights = unname(weights), centre = centre,
       n_buffer = length(unique(design$ids[design$arm == "buffer"])))
}

# Randomization inference conditional on the design's acceptance rule, from
# randomization_test_fit() on cluster-level outcomes in design order. The Lin
# row uses the studentized Lin statistic on the design's own covariates.
add_randomization <- function(est, design, units, pos, n_draws, alpha) {
  est$p.value_randomization <- NA_real_
  est$conf.low_randomization <- NA_real_
  est$conf.high_randomization <- NA_real_
  outcome <- numeric(length(design$treated))
  # With finer rows the test runs on cluster totals: its p-value tests the
  # same sharp null, but its interval is on the cluster-total scale.
  outcome[] <- as.vector(tapply(units$y, factor(pos, levels = seq_along(outcome)), sum))
  same_scale <- is.null(units$cluster)
  statistic <- c(diff_in_means = "diff_in_means", lin = "lin_t")
  for (i in seq_len(nrow(est))) {
    # lin_t cannot follow a buffer that changes with the assignment.
    if (!is.null(design$buffer) && est$term[i] == "lin") next
    res <- randomization_test_fit(design, outcome, statistic = statistic[[est$term[i]]],
                                  n_draws = n_draws, alpha = alpha)$estimates
    est$p.value_randomization[i] <- res$p.value[1]
    if (same_scale) {
      est$conf.low_randomization[i] <- res$conf.low[1]
      est$conf.high_randomization[i] <- res$conf.high[1]
    }
  }
  est
}

# experiment_effect() on a geo_units() table: the treated arm's total in
# each period, and its counterfactual, the treated total minus the number
# of treated clusters times that period's estimated effect: the controls'
# prediction of the treated arm. The estimator is the fit's most precise
# row, Lin's regression adjustment when the fit has covariates, else the
# difference in means, with the fit's strata, weights and buffer. The
# cumulative effect at `time` is that estimator on each cluster's total
# over the post periods up to `time`, times the treated clusters, with its
# t interval; at the last period it is the row's `incremental` when the
# outcome is the post-window total. `series` has one row per analysed
# cluster and one column per period; `post` flags the test window. (It lives
# here, beside the estimators it reruns; plot-effect-over-time.R draws it.)
experiment_effect_over_time <- function(series, times, post, units, strata, alpha, buf) {
  n_tr <- sum(units$treat)
  treated <- units$treat == 1
  lin <- !is.null(units$X)
  dim_row <- function(y) {
    if (anyNA(y)) return(c(NA_real_, NA_real_, NA_real_))
    s <- outcome_scale(y)
    u <- units
    u$y <- y / s
    r <- if (lin) fit_lin(u, strata, alpha, buf) else fit_diff_in_means(u, strata, alpha, buf)
    s * c(r$estimate, r$conf.low, r$conf.high)
  }
  per <- vapply(seq_along(times), function(j) dim_row(series[, j]), numeric(3))
  observed <- colSums(series[treated, , drop = FALSE])
  effect <- n_tr * per[1, ]
  cum <- low <- high <- rep(NA_real_, length(times))
  running <- rep(0, nrow(series))
  for (j in which(post)) {
    running <- running + series[, j]
    r <- dim_row(running)
    cum[j] <- n_tr * r[1]
    low[j] <- n_tr * r[2]
    high[j] <- n_tr * r[3]
  }
  first <- if (any(post)) min(which(post)) else NA_integer_
  event_time <- as.integer(seq_along(times) - first)
  data.frame(term = if (lin) "lin" else "diff_in_means", time = times,
             event_time = event_time, post = post, observed = unname(observed),
             counterfactual = unname(observed - effect), effect = unname(effect),
             cumulative = cum, conf.low = low, conf.high = high, stringsAsFactors = FALSE)
}
