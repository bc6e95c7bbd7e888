#' Difference-in-differences for a common shock with differential exposure
#'
#' A national campaign, a price change or a competitor's entry hits every
#' market at once, but markets differ in how much of it they get (GRPs per
#' capita, share of affected stores). `exposure_did()` fits
#' \deqn{y_{it} = \alpha_i + \lambda_t + \beta \cdot exposure_i \cdot post_t +
#' \varepsilon_{it}}
#' with unit and time fixed effects and clustered (CR1) standard errors, and
#' its event-study version, one coefficient \eqn{\beta_s} of
#' \eqn{exposure_i \cdot 1\{t = s\}} for every period but a base period.
#'
#' @section Assumption:
#' Outcomes of more and less exposed units would have moved in parallel
#' without the shock (parallel trends across exposure levels), and the
#' effect is linear in exposure. \eqn{\beta} is then the effect of one unit
#' of exposure. The event study checks the first part: the pre-period
#' coefficients should be near zero; `glance()` reports their joint test
#' (`pretrend_stat`, `pretrend_df`, `pretrend_p.value`, `pretrend_method`,
#' `pretrend_n_draws`; see *Pre-trend test*).
#'
#' The static coefficient equals
#' `fixest::feols(y ~ I(exposure * post) | unit + time, cluster = ~unit)` and
#' the event study `feols(y ~ i(time, exposure, ref = base) | unit + time)`.
#'
#' @section Pre-trend test:
#' The statistic is the Wald statistic of the \eqn{k} pre-period
#' coefficients with their clustered covariance, in F form (divided by
#' \eqn{k}). Its F(k, G - 1) reference holds only when the clusters
#' \eqn{G} are many against \eqn{k}: the clustered covariance of many leads
#' from few clusters is near singular, and the F test then rejects a true
#' null far too often (at 5%, about 10% with 200 clusters and 14 leads,
#' 80% with 54 leads, 43% with 50 clusters and 14 leads). The p-value is
#' therefore a wild cluster bootstrap under the null: the model without the
#' leads is fitted (unit and time effects partialled out), its residuals are
#' multiplied by one random sign per cluster (Rademacher weights; Webb's
#' six-point weights below 12 clusters; one per cell with
#' `inference = "heteroskedastic"`) and added back to its fitted values, and
#' each draw refits the event study and recomputes the clustered covariance
#' and the statistic, so the near-singular covariance is in the reference
#' distribution. The p-value counts the data as one draw:
#' `(1 + sum(draws >= W)) / (1 + n_draws)`, with the draws in
#' `fit$pretrend_draws`. The draws run through [resample_chunks()]:
#' reproducible with [set.seed()] for any [future::plan()]. `n_draws = 0`
#' gives the F(k, G - 1) p-value instead, and so do 100 clusters or more per
#' lead, where that reference is accurate (`pretrend_method = "F"`).
#'
#' @param formula `outcome ~ exposure + covariates | unit + time`, or a
#'   [mkt_panel()]. The exposure column is either constant within each unit
#'   (then give `post`), or the exposure switched on at the shock: zero for
#'   every unit before one common period and constant within each unit from
#'   then on (for example GRPs recorded only while the campaign airs). In
#'   the second form the exposure is read from the post periods and `post`
#'   defaults to the first of them.
#' @param data A long data frame, tibble or data.table (`NULL` when
#'   `formula` is a panel).
#' @param post The first period of the shock, on the scale of the time
#'   column (for example `as.Date("2024-03-04")` or `8`), or the name of a
#'   0/1 column of `data` marking post periods (carried by the panel as an
#'   extra column). Optional when the exposure column switches on at the
#'   shock.
#' @param factors `NULL` (parallel trends across exposure), or the number
#'   of interactive factors \eqn{r}: the model then adds
#'   \eqn{\lambda_i'f_t}, so that units may load differently on common
#'   shocks, and \eqn{\beta} is estimated by the core of [ife()] (Bai 2009)
#'   on the same panel, with its analytic standard errors clustered by unit.
#'   The event study is not fitted with factors.
#' @param event_study Also fit the event study (default `TRUE`).
#' @param base Base period of the event study (its coefficient is 0); the
#'   last period before the shock by default.
#' @param inference `"cluster"` (default, CR1 clustered by `cluster`) or
#'   `"heteroskedastic"` (HC1). With `factors`, Bai's analytic variance
#'   clustered by unit.
#' @param cluster Name of the column of standard-error clusters; `NULL`
#'   (default) clusters by the unit.
#' @param weights Optional name of a column of non-negative weights; cells
#'   of weight zero are left out.
#' @param n_draws Bootstrap draws for the pre-trend test (see *Pre-trend
#'   test*); `0` for the F reference.
#' @param alpha Level for confidence intervals.
#' @param ... Must be empty.
#' @return An object of class `c("mkt_exposure_did", "mkt_fit")` (see
#'   [mkt_fit]): one coefficient, term `"<exposure>:post"`, with its
#'   covariance. `tidy(fit, "event_study")` gives the event study (`time`,
#'   `relative_period`, `term`, `estimate`, `std.error`, `conf.low`,
#'   `conf.high`, `p.value`, with the base period at 0) that `plot()` draws;
#'   `glance()` adds the pre-trend test (`pretrend_stat`, `pretrend_df`,
#'   `pretrend_p.value`, `pretrend_method`, `pretrend_n_draws`) and the
#'   first post period; `tidy(fit, "pretrend")` gives the test as a table
#'   (`statistic`, `df`, `p.value`, `method`, `n_draws`) and
#'   `fit$pretrend_draws` the bootstrap draws of the statistic.
#' @examples
#' set.seed(1)
#' d <- expand.grid(dma = 1:50, week = 1:12)
#' grp <- runif(50, 0, 3)
#' d$grp <- grp[d$dma]
#' d$sales <- d$dma / 10 + d$week / 4 + 0.5 * d$grp * (d$week >= 8) + rnorm(nrow(d))
#' fit <- exposure_did(sales ~ grp | dma + week, d, post = 8)
#' fit
#' plot(fit)
#' @export
exposure_did <- function(formula, data, post = NULL, factors = NULL, event_study = TRUE,
                         base = NULL, inference = c("cluster", "heteroskedastic"),
                         cluster = NULL, weights = NULL, n_draws = 999, alpha = 0.05, ...) {
  check_dots(...)
  inference <- check_choice(inference)
  n_draws <- check_count(n_draws, "n_draws", min = 0)
  check_fe_inference(inference, cluster)
  alpha <- check_alpha(alpha)
  if (!is.null(factors)) factors <- check_count(factors, "factors", min = 0)
  event_study <- check_flag(event_study, "event_study")
  # A post column travels with the panel as an extra column.
  post_column <- is.character(post) && length(post) == 1L && !is.na(post) &&
    (if (inherits(formula, "mkt_panel")) post %in% names(formula$extra) else
      is.data.frame(data) && post %in% names(data))
  panel <- as_panel(formula, data, cluster = if (inference == "cluster") cluster,
                    weights = weights, extra = if (post_column) post)
  exposure_did_fit(panel, post = post, post_column = post_column, factors = factors,
                   event_study = event_study, base = base, inference = inference,
                   cluster = cluster, n_draws = n_draws, alpha = alpha, call = match.call())
}

# The core: a panel in, a fit out.
exposure_did_fit <- function(panel, post = NULL, post_column = FALSE, factors = NULL,
                             event_study = TRUE, base = NULL, inference = "cluster",
                             cluster = NULL, n_draws = 999L, alpha = 0.05, call = NULL,
                             chunk_size = 100L) {
  expo_name <- panel$vars$treatment
  if (is.null(expo_name)) {
    abort_mkt("bad_formula", c(
      "{.fn exposure_did} needs an exposure: the first term after {.code ~}.",
      i = "Write {.code sales ~ grp | dma + week}."
    ))
  }
  switched <- exposure_switched_on(panel)
  if (!is.null(switched)) {
    expo <- switched$exposure
    if (is.null(post)) post <- switched$start
  } else {
    expo <- unit_exposure(panel, expo_name)
  }
  post_t <- post_periods(post, post_column, panel)
  first_post <- panel$times[which(post_t == 1)[1]]
  term <- paste0(expo_name, ":post")
  N <- length(panel$units)
  check_exposure_variation(expo, expo_name)
  regressor <- outer(expo, post_t)
  if (!is.null(factors)) {
    return(exposure_did_factors(panel, regressor, expo, term, first_post, factors,
                                alpha, call))
  }
  covs <- panel$vars$covariates
  clustered <- inference == "cluster"
  codes <- fe_cluster_codes(panel, inference, cluster)
  by <- cluster %||% panel$vars$unit
  # The outcome on a scale near 1 (see outcome_scale()), scaled back below.
  s <- outcome_scale(panel$Y[panel$observed])
  Ys <- panel$Y / s
  fg <- fe_grid(panel, c(list(.outcome = Ys), stats::setNames(list(regressor), term),
                         panel$X), weights = panel$weights, cluster = codes)
  mom <- fe_moments(fg, clustered, by = by)
  fe_check_outcome(mom, ".outcome", Ys, panel$vars$outcome, panel$weights)
  n_abs <- fe_grid_absorbed(fg, clustered)
  fit <- fe_ols(mom, ".outcome", c(term, covs), n_abs)
  est <- unscale_table(fe_estimates(fit$coefficients, fit$vcov, fit$df, alpha, terms = term), s)

  es <- NULL
  pre <- data.frame(statistic = NA_real_, df = NA_integer_, p.value = NA_real_,
                    method = NA_character_, n_draws = NA_integer_)
  if (isTRUE(event_study)) {
    times <- panel$times
    base_idx <- event_base(base, times, post_t)
    others <- setdiff(seq_along(times), base_idx)
    es_terms <- paste0(expo_name, ":", as.character(times[others]))
    E <- lapply(others, function(s) {
      m <- matrix(0, N, length(times))
      m[, s] <- expo
      m
    })
    names(E) <- es_terms
    fge <- fe_grid(panel, c(list(.outcome = Ys), E, panel$X), weights = panel$weights,
                   cluster = codes)
    mome <- fe_moments(fge, clustered, by = by)
    es_fit <- fe_ols(mome, ".outcome", c(es_terms, covs), n_abs)
    tab <- unscale_table(fe_estimates(es_fit$coefficients, es_fit$vcov, es_fit$df, alpha,
                                      terms = es_terms), s)
    first_idx <- which(post_t == 1)[1]
    base_row <- data.frame(term = paste0(expo_name, ":", as.character(times[base_idx])),
                           estimate = 0, std.error = 0, statistic = NA_real_,
                           p.value = NA_real_, conf.low = 0, conf.high = 0,
                           df = es_fit$df[[1]])
    tab <- rbind(tab, base_row)
    idx <- c(others, base_idx)
    es <- data.frame(time = times[idx], relative_period = idx - first_idx, tab,
                     stringsAsFactors = FALSE, row.names = NULL)
    es <- es[order(idx), , drop = FALSE]
    rownames(es) <- NULL
    pre_terms <- es_terms[post_t[others] == 0]
    if (length(pre_terms)) {
      setup <- pretrend_setup(mome, ".outcome", c(es_terms, covs), pre_terms, n_abs,
                              cluster = fge$cluster)
      pre <- pretrend_test(setup, n_draws, es_fit$df[[1]], chunk_size = chunk_size)
    }
  }
  new_fit(
    "exposure_did", estimates = est,
    method = "Exposure difference-in-differences (unit and time fixed effects)",
    estimand = sprintf("Effect on %s of one unit of %s after the shock (from %s), under parallel trends across exposure",
                       panel$vars$outcome, expo_name, format(first_post)),
    inference = fe_inference_label(inference, panel, cluster, mom$G),
    alpha = alpha, call = call,
    n = list(obs = fg$n, units = fg$n_units, periods = fg$n_periods,
             treated = sum(expo != 0, na.rm = TRUE),
             clusters = if (clustered) mom$G else NA_integer_),
    vcov = unscale_variance(fit$vcov[term, term, drop = FALSE], s),
    vars = list(outcome = panel$vars$outcome, treatment = expo_name,
                covariates = covs, unit = panel$vars$unit, time = panel$vars$time,
                cluster = if (clustered) cluster %||% panel$vars$unit,
                weights = panel$vars$weights),
    glance = list(first_post = format(first_post), pretrend_stat = pre$statistic,
                  pretrend_df = pre$df, pretrend_p.value = pre$p.value,
                  pretrend_method = pre$method, pretrend_n_draws = pre$n_draws),
    tables = if (!is.null(es)) {
      list(event_study = es, pretrend = `attr<-`(pre, "draws", NULL))
    },
    pretrend_draws = attr(pre, "draws"),
    exposure = stats::setNames(expo, as.character(panel$units)), first_post = first_post,
    options = list(inference = inference, cluster = cluster, weights = panel$vars$weights,
                   factors = NULL)
  )
}

# A common shock with the same exposure everywhere leaves no contrast: the
# exposure-by-post regressor is then a time effect.
check_exposure_variation <- function(expo, name, call = rlang::caller_env()) {
  e <- expo[is.finite(expo)]
  if (length(e) < 2L || max(e) - min(e) <= 1e-12 * max(abs(e))) {
    abort_mkt("no_variation", c(
      "The exposure {.field {name}} is the same for every unit, so the time effects absorb exposure x post.",
      i = "The design compares more and less exposed units: it needs exposures that differ across units."
    ), call = call)
  }
  invisible(TRUE)
}

# Each unit's exposure; an exposure that changes within a unit is not a
# common-shock design.
unit_exposure <- function(panel, name, call = rlang::caller_env()) {
  D <- panel$D
  rng <- apply(D, 1, function(r) diff(range(r, na.rm = TRUE)))
  if (any(rng > 1e-12 * max(1, abs(D), na.rm = TRUE))) {
    bad <- panel$units[rng > 1e-12 * max(1, abs(D), na.rm = TRUE)]
    abort_mkt("varies_within_unit", c(
      "The exposure {.field {name}} changes over time within {length(bad)} unit{?s}, such as {.val {as.character(utils::head(bad, 3))}}.",
      i = "{.fn exposure_did} takes one exposure per unit (for example pre-campaign GRPs); for a dose that varies over time use {.fn dose_response}."
    ), call = call)
  }
  apply(D, 1, function(r) r[!is.na(r)][1])
}

# The exposure-response model with interactive fixed effects: the regressor
# exposure_i * post_t goes, with the covariates, through ife()'s core on the
# same panel (Bai's estimator, analytic variance clustered by unit).
exposure_did_factors <- function(panel, regressor, expo, term, first_post, r, alpha, call) {
  regs <- c(stats::setNames(list(regressor), term), panel$X)
  fit <- ife_fit(panel, r = r, inference = "cluster", alpha = alpha, regressors = regs,
                 call = call)
  est <- fit$estimates[fit$estimates$term == term, , drop = FALSE]
  rownames(est) <- NULL
  V <- fit$vcov[term, term, drop = FALSE]
  new_fit(
    "exposure_did", estimates = est,
    method = sprintf("Exposure difference-in-differences with %d interactive factor%s", r,
                     if (r == 1L) "" else "s"),
    estimand = sprintf("Effect on %s of one unit of %s after the shock (from %s), allowing units to load differently on %d common factor%s",
                       panel$vars$outcome, panel$vars$treatment, format(first_post), r,
                       if (r == 1L) "" else "s"),
    inference = fit$inference, alpha = alpha, call = call,
    n = list(obs = fit$n$obs, units = fit$n$units, periods = fit$n$periods,
             treated = sum(expo != 0, na.rm = TRUE), clusters = fit$n$units),
    vcov = V,
    vars = list(outcome = panel$vars$outcome, treatment = panel$vars$treatment,
                covariates = panel$vars$covariates, unit = panel$vars$unit,
                time = panel$vars$time),
    glance = list(first_post = format(first_post), pretrend_stat = NA_real_,
                  pretrend_df = NA_integer_, pretrend_p.value = NA_real_,
                  pretrend_method = NA_character_, pretrend_n_draws = NA_integer_, r = r),
    tables = list(factors = fit$tables$factors, loadings = fit$tables$loadings),
    exposure = stats::setNames(expo, as.character(panel$units)), first_post = first_post,
    factors = r, ife = fit,
    options = list(inference = "cluster", cluster = NULL, weights = NULL, factors = r)
  )
}

# An exposure recorded only once the shock starts: zero for every unit before
# one common period, constant within each unit from it on, and not zero
# everywhere after it. Returns each unit's exposure and the start, or NULL.
exposure_switched_on <- function(panel) {
  D <- panel$D
  if (is.null(D)) return(NULL)
  on <- colSums(abs(D) > 0, na.rm = TRUE) > 0
  if (!any(on)) return(NULL)
  start <- which(on)[1]
  if (start == 1L || !all(on[start:length(on)])) return(NULL)
  after <- D[, start:ncol(D), drop = FALSE]
  rng <- apply(after, 1, function(r) diff(range(r, na.rm = TRUE)))
  if (any(!is.finite(rng)) || any(rng > 1e-12 * max(1, abs(after), na.rm = TRUE))) return(NULL)
  list(exposure = apply(after, 1, function(r) r[!is.na(r)][1]), start = panel$times[start])
}

# 0/1 for each period of the panel: after the shock or not.
post_periods <- function(post, post_column, panel, call = rlang::caller_env()) {
  times <- panel$times
  if (is.null(post) || length(post) != 1L || is.na(post)) {
    abort_mkt("bad_argument", c(
      "{.arg post} must be the first period of the shock or the name of a 0/1 column.",
      i = "For example {.code post = 8} or {.code post = \"campaign_on\"}."
    ), call = call)
  }
  if (isTRUE(post_column)) {
    m <- panel$extra[[post]]
    val <- suppressWarnings(as.numeric(m))
    val[!as.vector(panel$observed)] <- NA
    val <- matrix(val, nrow = nrow(m))
    lo <- suppressWarnings(apply(val, 2, min, na.rm = TRUE))
    hi <- suppressWarnings(apply(val, 2, max, na.rm = TRUE))
    if (any(!is.finite(lo)) || any(lo != hi) || !all(lo %in% c(0, 1))) {
      abort_mkt("bad_argument", c(
        "The post column {.field {post}} must be 0/1 and the same for every unit in a period.",
        i = "A common shock starts at one date for all units."
      ), call = call)
    }
    out <- as.numeric(lo)
  } else {
    out <- tryCatch(as.numeric(times >= post), error = function(e) NULL)
    if (is.null(out) || anyNA(out)) {
      abort_mkt("bad_argument", c(
        "{.arg post} ({.val {format(post)}}) cannot be compared with the periods of {.field {panel$vars$time}}.",
        i = "Give it on the same scale, for example a {.cls Date} when periods are dates."
      ), call = call)
    }
  }
  if (all(out == 1) || all(out == 0)) {
    abort_mkt("bad_argument", c(
      "{.arg post} leaves no period {if (all(out == 1)) 'before' else 'after'} the shock.",
      i = "The periods run from {format(times[1])} to {format(times[length(times)])}."
    ), call = call)
  }
  if (any(diff(out) < 0)) {
    abort_mkt("bad_argument", "{.arg post} must switch from 0 to 1 once and stay on.", call = call)
  }
  out
}

event_base <- function(base, times, post_t, call = rlang::caller_env()) {
  if (is.null(base)) return(max(which(post_t == 0)))
  idx <- match(as.character(base), as.character(times))
  if (length(base) != 1L || is.na(idx)) {
    abort_mkt("bad_argument", c(
      "{.arg base} must be one of the periods of the panel.",
      x = "You supplied {.val {format(base)}}."
    ), call = call)
  }
  idx
}
