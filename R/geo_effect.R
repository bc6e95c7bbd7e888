#' Analyse a geo test with the industry's estimators: TBR, GBR, Trimmed Match
#'
#' Estimates the incremental outcome of a geo experiment (and, with spend,
#' its incremental return on ad spend, iROAS) with one of the three
#' estimators that marketing science teams use for geo tests, from the long
#' geo x period panel of the test and the weeks before it. Each works with a
#' design drawn by the package ([rerandomize()], with strata from
#' [stratify()]) or with an assignment made elsewhere; the fit keeps the
#' package's contract (`print`, `summary`, `coef`, `vcov`, `confint`, `nobs`,
#' `tidy`, `glance`, `plot`).
#'
#' @section Data:
#' `formula` is the panel grammar `outcome ~ treatment | unit + time`. The
#' treatment column is 0/1 and marks the treated geos, either in every period
#' (an arm indicator; then give `post`) or only in the test window (treated x
#' test window; then `post` defaults to the periods where it is 1). With
#' `randomize_by`, the rows' units (zones) are summed to the units of
#' randomization (DMAs); the treatment must then be constant within each of
#' them. Every analysed geo needs a row in every period of `pre` and `post`.
#'
#' `spend` names the column of media spend per row. A geo's incremental spend
#' is its spend in the test window minus its pre-period spend per period
#' times the test-window length (the change in its spend; for a column of
#' experiment spend, zero before the test and in control geos, it is simply
#' the treated geo's test-window spend). Incremental spend is taken as known:
#' the iROAS interval is the incremental outcome's interval divided by it.
#'
#' @section Methods:
#' * `"tbr"`, time-based regression (Kerman, Wang and Vaver 2017). The
#'   treated and control geos are summed into two series. In the pre-period
#'   OLS fits \eqn{y_{T,t} = a + b\,y_{C,t} + e_t}; the counterfactual of the
#'   treated series in test period \eqn{t} is \eqn{\hat a + \hat b\,y_{C,t}},
#'   and the cumulative incremental outcome \eqn{\Delta} is the sum over the
#'   \eqn{m} test periods of observed minus counterfactual. Its variance is
#'   the predictive variance of the paper, which includes the uncertainty of
#'   \eqn{\hat a} and \eqn{\hat b}: \eqn{\hat\sigma^2[m + m^2/n +
#'   m^2(\bar y_{C,test} - \bar y_{C,pre})^2/S_{xx}]} with \eqn{n} pre
#'   periods and \eqn{S_{xx}} the pre-period sum of squares of the control
#'   series about its mean; intervals and p-values use \eqn{t_{n-2}} (the
#'   paper's flat-prior posterior). `tidy(fit, "series")` holds the
#'   counterfactual and the cumulative effect with pointwise intervals.
#' * `"gbr"`, geo-based regression (Vaver and Koehler 2011). One row per geo:
#'   weighted least squares of the test-window total on an intercept, the
#'   pre-period total and the treatment indicator (or, with `spend`, the
#'   geo's incremental spend, whose coefficient is the iROAS), with weights
#'   one over the pre-period total, because the variance of a geo's outcome
#'   grows with its size. Classical WLS standard errors, \eqn{t_{M-3}}.
#'   Without spend, `incremental` is the treatment coefficient times the
#'   number of treated geos.
#' * `"trimmed_match"` (Chen and Au 2022), for paired designs. For pair
#'   \eqn{i} let \eqn{\Delta y_i} and \eqn{\Delta s_i} be the treated-minus-
#'   control differences of test-window outcome and incremental spend, and
#'   \eqn{e_i(\theta) = \Delta y_i - \theta\Delta s_i}. For a trim of
#'   \eqn{k} pairs from each tail, \eqn{\hat\theta_k} solves "the mean of
#'   the \eqn{n - 2k} middle \eqn{e_i(\theta)} is zero"; its standard error
#'   is \eqn{\sqrt{W_k}/|\sum_{body}\Delta s_i|}, with \eqn{W_k} the
#'   winsorized sum of squared residuals. \eqn{k} runs from 0 to
#'   \eqn{\lceil 0.25 n \rceil} (at most \eqn{n/2 - 1}) and the smallest
#'   \eqn{k} whose standard error is within \eqn{1 + 0.25/\sqrt n} of the
#'   smallest is chosen (the data-driven trim of the reference
#'   implementation). The interval inverts the studentized trimmed mean
#'   (winsorized variance) against \eqn{t_{n-2k-1}}, and the p-value is the
#'   same test at \eqn{\theta = 0}, so they agree. With \eqn{k = 0} the
#'   estimate is \eqn{\sum\Delta y_i / \sum\Delta s_i}. Without spend,
#'   \eqn{\Delta s_i = 1}: the estimate is the trimmed mean effect per pair
#'   and `incremental` is it times the number of pairs. `tidy(fit, "trims")`
#'   gives every trim level, `tidy(fit, "pairs")` the pairs.
#'
#' @section Pairs for Trimmed Match:
#' The pairs are, in order of preference: the `pairs` column; the strata of
#' `design` when every stratum is a pair (a design drawn with
#' `strata = stratify(..., method = "matched")`); otherwise treated and
#' control geos matched by rank of pre-period outcome (which needs as many
#' treated as control geos). Each pair must hold one treated and one control
#' geo.
#'
#' @section Design and inference:
#' With `design`, the treated geos must be the design's (error
#' `mktcausal_error_misaligned` otherwise), a buffered design's buffer geos
#' are left out of the control group, and Trimmed Match uses its pairs. The
#' intervals stay those of each method: TBR's and GBR's rest on their
#' regression models (randomization makes them unbiased, not exact);
#' Trimmed Match's rest on randomization within pairs, which a paired design
#' provides. For TBR and GBR a design also gives `p.value_randomization`:
#' the method's studentized statistic (TBR: the t of the cumulative effect;
#' GBR: the t of the treatment indicator, with or without spend) recomputed
#' for `n_draws` reference assignments drawn from the design's own
#' acceptance rule (all of them when at most 20,000 pass it), under the sharp
#' null that the test changed no geo's outcome; a buffer is re-applied to
#' every reference assignment. It is exact whatever the regression model,
#' so it is the test to quote when the model is in doubt. Without a design (an assignment made elsewhere), or when
#' Trimmed Match must form its own pairs, a warning of class
#' `mktcausal_warning_model_based_inference` says which assumption the
#' interval then rests on.
#'
#' @section Several cells:
#' With a design of several cells ([rerandomize()] with a named
#' `n_treated`), the treatment column is 1 for the geos of every treated cell
#' (and must agree with the design), and each treated cell is compared with
#' the shared control: the method runs on the geos of that cell and the
#' control, the other cells sitting the contrast out. The fit has one row
#' per contrast (`term` such as `"heavy_up - control"`, `quantity` saying
#' whether it is the iROAS or the incremental outcome); the method's tables
#' gain a `contrast` column. Trimmed Match pairs, in each of the design's
#' matched blocks, the cell's geo with the block's control geo nearest to it
#' in pre-period outcome. Randomization p-values and a joint covariance of
#' the contrasts (which share the control geos) are not given; use
#' [experiment_effect()] and [randomization_test()] for those.
#'
#' @param formula `outcome ~ treatment | unit + time` (see Data), or a
#'   [mkt_panel()] carrying the `randomize_by`, `spend` and `pairs` columns.
#' @param data A long data frame: one row per unit and period.
#' @param method `"tbr"`, `"gbr"` or `"trimmed_match"`; see Methods.
#' @param design Optional design from [rerandomize()] whose `$ids` are values
#'   of the `randomize_by` column (of the unit column without it).
#' @param randomize_by `NULL` or the name of the column of units of
#'   randomization (e.g. `"dma"`), constant within units.
#' @param pre Time values of the pre-period. Default: every time before the
#'   test window.
#' @param post Time values of the test window. Default: the periods where
#'   the treatment column is 1.
#' @param spend `NULL` or the name of the column of spend per row (see Data).
#' @param pairs `NULL` or the name of a column of pair labels, constant
#'   within units of randomization (Trimmed Match only).
#' @param n_draws With `design` (TBR and GBR): number of reference
#'   assignments for the randomization p-value.
#' @param alpha Significance level of the intervals.
#' @param ... Must be empty.
#' @return A fit of class `c("mkt_geo_effect", "mkt_fit")` (see [mkt_fit])
#'   with one row: `iroas` with `spend`, otherwise `incremental` (the total
#'   incremental outcome of the treated geos over the test window), with
#'   broom's columns, `df`, `incremental`, `incremental.low`,
#'   `incremental.high` (the incremental outcome and its interval either
#'   way), `lift_pct` (100 times the incremental outcome over the treated
#'   geos' counterfactual test-window total), `spend_incremental` and, with
#'   a design (TBR and GBR), `p.value_randomization`; `glance()` then gives
#'   `n_draws` and `exact`.
#'   Further tables: `tidy(fit, "geos")` (one row per geo: arm, pre and test
#'   totals, incremental spend) and, by method, `"series"` and
#'   `"regression"` (TBR), `"regression"` and `"fitted"` (GBR), `"pairs"`
#'   and `"trims"` (Trimmed Match). `plot(fit)` draws, for TBR, the treated
#'   series against its counterfactual and the cumulative effect; for GBR,
#'   test-window against pre-period outcome by arm; for Trimmed Match, the
#'   estimate at every trim level (`type = "pairs"`: the pair differences).
#' @references Kerman, J., Wang, P. and Vaver, J. (2017). Estimating ad
#'   effectiveness using geo experiments in a time-based regression
#'   framework. Google Inc. Vaver, J. and Koehler, J. (2011). Measuring ad
#'   effectiveness using geo experiments. Google Inc. Chen, A. and Au, T. C.
#'   (2022). Robust causal inference for incremental return on ad spend with
#'   randomized paired geo experiments. *Annals of Applied Statistics*
#'   16(1), 1-20.
#' @seealso [experiment_effect()] for the difference in means and Lin's
#'   estimator on one row per geo, with randomization inference.
#' @examples
#' d <- stats::aggregate(cbind(sales, spend) ~ dma + week, geo_sales, sum)
#' d <- d[d$week >= 53 & d$week <= 90, ]
#' units <- geo_units(sales ~ 0 | dma + week, d, pre = 53:78)
#' set.seed(3)
#' pairs <- stratify(units, method = "matched", covariates = ~ outcome_mean)
#' des <- rerandomize(units, ~ outcome_mean, strata = pairs, accept = 0.2)
#' d$treated <- as.integer(d$dma %in% des$ids[des$treated == 1])
#' d$spend <- ifelse(d$week >= 79 & d$treated == 1, 0.2 * d$sales, 0)
#' d$sales <- d$sales + 1.5 * d$spend
#' tbr <- geo_effect(sales ~ treated | dma + week, d, design = des,
#'                   post = 79:90, spend = "spend")
#' tbr
#' tm <- geo_effect(sales ~ treated | dma + week, d, method = "trimmed_match",
#'                  design = des, post = 79:90, spend = "spend")
#' tidy(tm)
#' @export
geo_effect <- function(formula, data, method = c("tbr", "gbr", "trimmed_match"),
                       design = NULL, randomize_by = NULL, pre = NULL, post = NULL,
                       spend = NULL, pairs = NULL, n_draws = 2000, alpha = 0.05, ...) {
  check_dots(...)
  call <- match.call()
  if (missing(data)) data <- NULL
  method <- check_choice(method)
  alpha <- check_alpha(alpha)
  n_draws <- check_count(n_draws, "n_draws", min = 100, max = 1e7)
  if (!is.null(design)) check_design(design)
  for (arg in c("randomize_by", "spend", "pairs")) {
    if (!is.null(get(arg))) check_name(get(arg), arg)
  }
  if (!is.null(pairs) && method != "trimmed_match") {
    abort_mkt("bad_argument", c(
      "{.arg pairs} is used by {.code method = \"trimmed_match\"} only.",
      i = "Drop it, or set {.code method = \"trimmed_match\"}."
    ))
  }
  if (is.data.frame(data)) {
    for (arg in c("randomize_by", "spend", "pairs")) check_columns(data, get(arg), arg)
  }
  panel <- as_panel(formula, data, extra = unique(c(randomize_by, spend, pairs)))
  geo_effect_fit(panel, method = method, design = design, randomize_by = randomize_by,
                 pre = pre, post = post, spend = spend, pairs = pairs, n_draws = n_draws,
                 alpha = alpha, call = call)
}

# The core: the geo x period totals of the panel, then the method.
geo_effect_fit <- function(panel, method, design = NULL, randomize_by = NULL, pre = NULL,
                           post = NULL, spend = NULL, pairs = NULL, n_draws = 2000,
                           alpha = 0.05, call = NULL) {
  env <- rlang::caller_env()
  geo <- geo_totals(panel, design, randomize_by, pre, post, spend, call = env)
  if (is.null(design)) {
    warn_mkt("model_based_inference", geo_external_message(method))
  }
  cells <- isTRUE(design$multi_cell)
  if (cells && !is.null(design$buffer)) {
    abort_mkt("unsupported_design", c(
      "{.fn geo_effect} does not analyse a design with several cells and a buffer yet.",
      i = "Use {.fn experiment_effect}, which leaves the buffer out and reweights each cell and the kept controls."
    ), call = env)
  }
  res <- if (cells) {
    geo_effect_cells(geo, panel, design, method, pairs, randomize_by, alpha, call = env)
  } else {
    switch(method,
      tbr = geo_tbr(geo, alpha),
      gbr = geo_gbr(geo, alpha, call = env),
      trimmed_match = geo_trimmed_match(geo, panel, design, pairs, randomize_by, alpha,
                                        call = env)
    )
  }
  est <- res$estimates
  rand <- NULL
  if (!is.null(design) && method != "trimmed_match" && !cells) {
    rand <- geo_randomization(geo, design, method, n_draws)
    est$p.value_randomization <- rand$p.value
  }
  spend_incremental <- if (geo$has_spend && !cells) est$spend_incremental[1] else NA_real_
  label <- c(tbr = "Geo test: time-based regression (TBR)",
             gbr = "Geo test: geo-based regression (GBR)",
             trimmed_match = "Geo test: Trimmed Match on pairs")[[method]]
  if (cells) geo$arm <- as.character(design$cell)
  geos <- data.frame(id = geo$ids, arm = geo$arm, pre = geo$pre_total,
                     test = geo$post_total, stringsAsFactors = FALSE)
  if (geo$has_spend) geos$spend_incremental <- geo$spend_delta
  new_fit(
    "geo_effect", est,
    method = label,
    estimand = paste("total incremental outcome of the treated geos over the test window",
                     if (geo$has_spend) "(iROAS: per unit of incremental spend)"),
    inference = res$inference,
    alpha = alpha,
    n = list(obs = length(geo$ids) * (length(geo$pre) + length(geo$post)),
             units = length(geo$ids), periods = length(geo$pre) + length(geo$post),
             treated = sum(geo$treat), pre_periods = length(geo$pre),
             test_periods = length(geo$post), pairs = res$n_pairs %||% NA_integer_),
    call = call,
    vcov = res$vcov,
    no_vcov = if (cells) "the contrasts share the control geos, and these methods give no joint covariance; use vcov() of experiment_effect() for the cells' joint covariance",
    vars = list(outcome = panel$vars$outcome, treatment = panel$vars$treatment,
                unit = panel$vars$unit, time = panel$vars$time,
                randomize_by = randomize_by, spend = spend),
    glance = c(list(geo_method = method, spend_incremental = spend_incremental,
                    design = !is.null(design),
                    n_draws = if (!is.null(rand)) as.integer(rand$n_draws) else NA_integer_,
                    exact = if (!is.null(rand)) rand$exact else NA), res$glance),
    tables = c(list(geos = geos), res$tables),
    geo_method = method,
    multi_cell = cells,
    print_columns = c(lift_pct = "lift %", incremental = if (geo$has_spend) "incremental",
                      p.value_randomization = if (!is.null(rand)) "p (rand.)")
  )
}

geo_external_message <- function(method) {
  c(
    "The assignment was not made by {.fn rerandomize}, so {.fn geo_effect} cannot check how geos were chosen.",
    i = switch(method,
      tbr = "TBR's interval is model-based in any case: it is valid if the pre-period regression of the treated series on the control series holds through the test window; a non-random choice of treated geos can break that.",
      gbr = "GBR's interval is model-based: it is valid if the weighted regression of test-window on pre-period outcome is right; without randomization it also needs treated and control geos to be comparable given their pre-period outcome.",
      trimmed_match = "Trimmed Match's interval assumes that in every pair the treated geo was picked by a fair coin, independently across pairs; for an assignment made elsewhere that is an assumption, not a fact."
    ),
    i = "Pass the design from {.fn rerandomize} as {.arg design} when the package drew the assignment."
  )
}

# --- the geo x period totals ------------------------------------------------

# Units summed to the units of randomization (the design's, in design
# order, when there is one), their arms, the windows, and per-geo totals.
geo_totals <- function(panel, design, randomize_by, pre, post, spend,
                       call = rlang::caller_env()) {
  if (length(panel$vars$covariates)) {
    abort_mkt("covariates_not_supported", c(
      "{.fn geo_effect} takes no covariates: write {.code outcome ~ treatment | unit + time}.",
      i = "TBR adjusts with the control series, GBR with the pre-period outcome, Trimmed Match with its pairs."
    ), call = call)
  }
  require_binary_treatment(panel, "geo_effect", absorbing = FALSE, call = call)
  obs <- panel$observed
  live <- rowSums(obs) > 0
  unit_cl <- randomization_clusters(panel, randomize_by, call = call)
  col <- if (is.null(randomize_by)) panel$vars$unit else randomize_by
  if (is.null(design)) {
    ids <- sort(unique(unit_cl[live]))
  } else {
    ids <- design$ids
    present <- unique(unit_cl[live])
    miss <- setdiff(ids, present)
    if (length(miss)) {
      abort_mkt("misaligned", c(
        "{length(miss)} geo{?s} of {.arg design} {?is/are} not in column {.field {col}} of {.arg data}: {.val {utils::head(miss, 5)}}.",
        i = "{.arg randomize_by} must name the column whose values are the design's ids (the unit column when it is {.code NULL})."
      ), call = call)
    }
    extra <- setdiff(present, ids)
    if (length(extra)) {
      warn_mkt("dropped_rows", c(
        "Dropped {length(extra)} geo{?s} of {.arg data} that the design does not randomize: {.val {utils::head(extra, 5)}}."
      ))
    }
  }
  ci <- match(unit_cl, ids)
  ci[!live] <- NA_integer_
  n_cl <- length(ids)
  times <- panel$times

  # Arms: a geo is treated if its treatment is 1 in any period.
  D <- panel$D
  D[!obs] <- NA
  unit_treated <- rowSums(D == 1, na.rm = TRUE) > 0
  use <- !is.na(ci)
  arm_min <- tapply(unit_treated[use], ci[use], min)
  arm_max <- tapply(unit_treated[use], ci[use], max)
  if (any(arm_min != arm_max)) {
    bad <- ids[as.integer(names(arm_min))[arm_min != arm_max]]
    abort_mkt("treatment_varies_within_cluster", c(
      "Treatment {.field {panel$vars$treatment}} differs between the units of {length(bad)} {.field {col}} value{?s}: {.val {utils::head(bad, 5)}}.",
      i = "A unit of randomization is wholly treated or wholly control; fix the treatment or {.arg randomize_by}."
    ), call = call)
  }
  treat <- integer(n_cl)
  treat[as.integer(names(arm_max))] <- as.integer(arm_max)
  designed <- if (isTRUE(design$multi_cell)) as.integer(design$cell != "control") else
    as.integer(design$treated)
  if (!is.null(design) && !identical(treat, designed)) {
    bad <- ids[treat != designed]
    abort_mkt("misaligned", c(
      "The treatment column disagrees with {.arg design} for {length(bad)} geo{?s}: {.val {utils::head(bad, 5)}}.",
      i = "Analyse the assignment the design drew: the treatment column is 1 for the geos the design treats (any treated cell)."
    ), call = call)
  }
  if (all(treat == 1) || all(treat == 0)) {
    abort_mkt("single_arm", c(
      "All {n_cl} geo{?s} are in the same arm.",
      i = "A geo test compares treated geos with control geos."
    ), call = call)
  }

  # Windows: the test window defaults to the periods with treatment 1.
  if (is.null(post)) {
    on <- colSums(D == 1, na.rm = TRUE) > 0
    if (on[1]) {
      abort_mkt("bad_window", c(
        "The treatment column is 1 in the first period, so the test window cannot be read from it.",
        i = "Give the test weeks as {.arg post}, e.g. {.code post = 79:90}."
      ), call = call)
    }
    post <- times[on]
  }
  win <- geo_windows(pre, post, times, panel$vars$time, call = call)
  pre_idx <- match(win$pre, times)
  post_idx <- match(win$post, times)
  Y <- cluster_totals(panel, ci, n_cl)
  geo_complete(Y, c(pre_idx, post_idx), ids, col, call = call)

  arm <- ifelse(treat == 1, "treated", "control")
  keep <- rep(TRUE, n_cl)
  if (!is.null(design) && !is.null(design$arm)) {
    keep <- design$arm != "buffer"
    arm[!keep] <- "buffer"
  }
  S <- NULL
  if (!is.null(spend)) S <- geo_spend(panel, spend, ci, n_cl, call = call)
  n_pre <- length(pre_idx)
  n_post <- length(post_idx)
  pre_total <- rowSums(Y[, pre_idx, drop = FALSE])
  post_total <- rowSums(Y[, post_idx, drop = FALSE])
  spend_delta <- if (!is.null(S)) {
    rowSums(S[, post_idx, drop = FALSE]) - rowSums(S[, pre_idx, drop = FALSE]) * n_post / n_pre
  }
  list(ids = ids, treat = treat, arm = arm, keep = keep, Y = Y, pre = win$pre,
       post = win$post, pre_idx = pre_idx, post_idx = post_idx, pre_total = pre_total,
       post_total = post_total, spend_delta = spend_delta, has_spend = !is.null(S),
       times = times, col = col, spend_name = spend)
}

# Every analysed geo has a total in every period of the windows.
geo_complete <- function(Y, idx, ids, col, call = rlang::caller_env()) {
  gap <- is.na(Y[, idx, drop = FALSE])
  if (any(gap)) {
    bad <- ids[rowSums(gap) > 0]
    abort_mkt("unbalanced_panel", c(
      "{length(bad)} {.field {col}} value{?s} ha{?s/ve} no rows in some periods of the pre-period or test window: {.val {utils::head(bad, 5)}}.",
      i = "Geo-test estimators sum each geo over both windows; fill those periods (zero sales are a value) or drop the geos."
    ), call = call)
  }
  invisible(TRUE)
}

# Geo x period spend totals: numeric, known and non-negative on every
# observed row.
geo_spend <- function(panel, spend, ci, n_cl, call = rlang::caller_env()) {
  m <- panel$extra[[spend]]
  if (!is.numeric(m)) {
    abort_mkt("non_numeric", c(
      "The spend column {.field {spend}} must be numeric.",
      x = "It is of class {.cls {class(m)}}."
    ), call = call)
  }
  obs <- panel$observed
  if (any(is.na(m[obs]) | !is.finite(m[obs]))) {
    abort_mkt("missing_values", c(
      "The spend column {.field {spend}} has {sum(!is.finite(m[obs]))} missing or infinite value{?s}.",
      i = "Spend is known for every row; a week without media has spend 0."
    ), call = call)
  }
  if (any(m[obs] < 0)) {
    abort_mkt("bad_spend", c(
      "The spend column {.field {spend}} has {sum(m[obs] < 0)} negative value{?s}.",
      i = "Give what was spent in each row (zero or more); {.fn geo_effect} computes the change in spend itself."
    ), call = call)
  }
  p <- panel
  p$Y <- m
  cluster_totals(p, ci, n_cl)
}
