#' Aggregate a unit-level panel to one row per unit of randomization
#'
#' Turns long panel data at a fine level (e.g. zone x week) into the table
#' that geo-experiment designs randomize: one row per unit of randomization
#' (e.g. DMA, the `randomize_by` column) with its size, covariates and
#' features of its pre-period outcome. The panel is read with the package's
#' one grammar (`outcome ~ 0 | unit + time`, see [mkt_panel()]), so it is
#' checked once, as for every estimator. The table carries
#' `attr(x, "id")`, the name of its id column, so design functions such as
#' [rerandomize()] find the cluster id without being told.
#'
#' The panel's unit is the finest unit (a zone); `randomize_by` names the
#' column of the clusters that will be assigned (a DMA), which must be
#' constant within each unit (units nest in clusters). Without
#' `randomize_by`, each unit is randomized on its own.
#'
#' Outcome features describe the cluster's **total** outcome series (the sum
#' over its units in each period) over the `pre` window:
#' `outcome_total` (sum over pre periods), `outcome_mean` (mean per observed
#' period), `outcome_trend` (OLS slope per period, periods counted in the
#' sorted order of the data's times, so the slope is per week for weekly
#' data whatever the time column's type) and `outcome_sd` (sd of the
#' residuals around that trend, divisor \eqn{n - 2}: the series' volatility;
#' `NA` with fewer than three pre periods). With `post`, `post_total` and
#' `post_mean` describe the test window the same way.
#'
#' Covariates: categorical ones (character, factor, logical) must be constant
#' within each cluster, such as the region of a DMA, and are passed through.
#' Numeric ones are averaged first over each unit's pre-period rows (so
#' time-varying covariates give their pre-period mean), then across the
#' cluster's units **weighted by unit size** (equally when `size` is `NULL`),
#' so that, for example, income per head stays per head. To get a cluster
#' total of an extensive quantity, pass it as `size` or sum it yourself.
#'
#' @param formula `outcome ~ 0 | unit + time`: the numeric outcome, the
#'   finest unit and the time column (numeric, integer or Date). Rows with a
#'   missing outcome are dropped with a warning. A [mkt_panel()] carrying
#'   the `randomize_by`, `size` and covariate columns (as `extra`) may be
#'   given instead, with `data` left out.
#' @param data A long data frame, tibble or data.table: one row per unit and
#'   period.
#' @param randomize_by `NULL` or the name of the column of the units of
#'   randomization (e.g. `"dma"`), constant within each unit.
#' @param size `NULL` or the name of a numeric, time-invariant column giving
#'   each unit's size (e.g. population). A cluster's size is the sum over its
#'   units. With `NULL`, size is the pre-period outcome total.
#' @param covariates `NULL` or a one-sided formula of columns to carry to the
#'   cluster level, such as `~ region + income` (see Details).
#' @param pre Time values of the pre-period window. Default: every time
#'   before the first `post` time, or every time when `post` is `NULL`.
#' @param post `NULL` or the time values of the test window.
#' @param ... Must be empty.
#' @return A data frame of class `c("mkt_units", "data.frame")`, one row per
#'   cluster sorted by id, with columns named after `randomize_by` (or the
#'   unit column when it is `NULL`), `n_units`, `size`, the covariates,
#'   `outcome_total`, `outcome_mean`, `outcome_trend`, `outcome_sd`,
#'   `per_capita_mean` (`outcome_mean / size`, only when `size` is given), and
#'   `post_total`, `post_mean` (only with `post`). Attributes: `id` (the name
#'   of the id column), `randomize_by`, `unit_col`, `time_col`,
#'   `outcome_col`, `size_col`, `pre`, `post` and `series` (each cluster's
#'   total outcome in each period of the windows, a matrix with the periods
#'   in its attribute `times`), from which [experiment_effect()] draws the
#'   effect over time.
#' @seealso [compare_clusterings()] to compare candidate units of
#'   randomization.
#' @export
#' @examples
#' units <- geo_units(sales ~ 0 | zone + week, geo_sales, randomize_by = "dma",
#'                    size = "population", covariates = ~ region, post = 79:104)
#' head(units)
#' # Between-DMA R^2 of test-window sales on pre-period sales
#' summary(lm(post_total ~ outcome_total, data = units))$r.squared
geo_units <- function(formula, data, randomize_by = NULL, size = NULL, covariates = NULL,
                      pre = NULL, post = NULL, ...) {
  check_dots(...)
  if (missing(data)) data <- NULL
  if (!is.null(randomize_by)) check_name(randomize_by, "randomize_by")
  if (!is.null(size)) check_name(size, "size")
  cov_vars <- geo_covariates(covariates)
  if (is.data.frame(data)) {
    check_columns(data, randomize_by, "randomize_by")
    check_columns(data, size, "size")
    check_columns(data, cov_vars, "covariates")
  }
  panel <- as_panel(formula, data, extra = unique(c(randomize_by, size, cov_vars)))
  geo_units_fit(panel, randomize_by, size, cov_vars, pre, post)
}

# The cluster table from a checked panel.
geo_units_fit <- function(panel, randomize_by, size, cov_vars, pre, post,
                          call = rlang::caller_env()) {
  v <- panel$vars
  if (identical(randomize_by, v$unit)) randomize_by <- NULL
  if (!is.null(v$treatment) || length(v$covariates)) {
    abort_mkt("bad_formula", c(
      "{.fn geo_units} reads {.code outcome ~ 0 | unit + time}: the pre-period of an experiment has no treatment.",
      i = "Give covariates in {.arg covariates}, for example {.code covariates = ~ region}."
    ), call = call)
  }
  id_col <- if (is.null(randomize_by)) v$unit else randomize_by
  if (id_col %in% cov_vars) {
    abort_mkt("bad_argument", c(
      "Covariate {.field {id_col}} is the id column of the table.",
      i = "Leave it out of {.arg covariates}."
    ), call = call)
  }
  warn_dropped_rows(panel)

  obs <- panel$observed
  live <- rowSums(obs) > 0
  unit_cl <- randomization_clusters(panel, randomize_by, call = call)
  ids <- sort(unique(unit_cl[live]))
  ci <- match(unit_cl, ids)
  ci[!live] <- NA_integer_
  n_cl <- length(ids)
  times <- panel$times
  pre_post <- geo_windows(pre, post, times, v$time, call = call)
  pre_idx <- match(pre_post$pre, times)
  Y <- cluster_totals(panel, ci, n_cl)
  pre_f <- series_features(Y[, pre_idx, drop = FALSE], pre_idx)
  if (anyNA(pre_f$mean)) {
    bad <- ids[is.na(pre_f$mean)]
    warn_mkt("no_pre_data", c(
      "{.field {id_col}} value{cli::qty(length(bad))}{?s} {.val {utils::head(bad, 5)}} {cli::qty(length(bad))}{?has/have} no rows in the pre-period.",
      i = "Their pre-period features are missing; drop them or widen {.arg pre}."
    ))
  }

  s_unit <- if (!is.null(size)) unit_sizes(panel, size, call = call)
  n_units <- tabulate(ci[live], n_cl)
  cl_size <- if (is.null(size)) pre_f$total else
    as.vector(rowsum(s_unit[live], ci[live], reorder = TRUE))
  if (!is.null(size) && any(cl_size <= 0)) {
    # A cluster of size zero has no per-capita outcome and cannot be weighted.
    empty <- ids[cl_size <= 0]
    abort_mkt("bad_size", c(
      "{length(empty)} cluster{?s} of {.field {id_col}} ha{?s/ve} a total {.field {size}} of zero: {.val {utils::head(empty, 5)}}.",
      i = "Sizes weight the clusters and divide per-capita outcomes; give each cluster a positive size or drop it."
    ), call = call)
  }

  out <- data.frame(id = ids, n_units = n_units, size = cl_size, stringsAsFactors = FALSE)
  names(out)[1] <- id_col
  in_pre <- matrix(seq_along(times) %in% pre_idx, nrow(obs), ncol(obs), byrow = TRUE)
  for (cv in cov_vars) {
    out[[cv]] <- cluster_covariate(panel$extra[[cv]], cv, obs, in_pre, ci, n_cl, ids,
                                   if (is.null(s_unit)) rep(1, length(ci)) else s_unit,
                                   id_col, call = call)
  }
  out$outcome_total <- pre_f$total
  out$outcome_mean <- pre_f$mean
  out$outcome_trend <- pre_f$trend
  out$outcome_sd <- pre_f$sd
  if (!is.null(size)) out$per_capita_mean <- out$outcome_mean / out$size
  if (!is.null(pre_post$post)) {
    post_idx <- match(pre_post$post, times)
    post_f <- series_features(Y[, post_idx, drop = FALSE], post_idx)
    out$post_total <- post_f$total
    out$post_mean <- post_f$mean
  }
  # The clusters' total outcome in each period of the windows, which
  # experiment_effect() turns into the effect over time.
  keep <- sort(c(pre_idx, if (!is.null(pre_post$post)) match(pre_post$post, times)))
  series <- Y[, keep, drop = FALSE]
  dimnames(series) <- list(as.character(ids), NULL)
  attr(series, "times") <- times[keep]
  structure(out, class = c("mkt_units", "data.frame"), id = id_col,
            randomize_by = randomize_by, unit_col = v$unit, time_col = v$time,
            outcome_col = v$outcome, size_col = size, pre = pre_post$pre,
            post = pre_post$post, series = series)
}

#' Compare candidate units of randomization by closed-form power
#'
#' For each candidate `randomize_by` column (e.g. DMA vs zone), builds the
#' cluster table with [geo_units()] and reports what the choice implies for
#' power: the number of clusters, the mean and coefficient of variation of
#' cluster size, the between-cluster \eqn{R^2} of the test-window outcome
#' total on the pre-period total, and the closed-form MDE
#' ([power_closed_form()]) of the difference in means of cluster totals and
#' of the pre-outcome-adjusted estimator, in absolute terms and in percent of
#' the mean cluster total. The panel is read once for all candidates.
#'
#' This quantifies the size side of the trade-off in cluster definition
#' (MMM 303-1): more, smaller clusters give more power, but finer units
#' leak more treatment across their borders (commuting and shopping trips,
#' media bought by DMA, geo-targeting error), which contaminates controls
#' and biases effects towards zero. The table shows only the variance side;
#' it cannot see spillovers. Randomize at the coarsest unit at which the
#' treatment can be delivered cleanly, and note that an MDE at zone level is
#' not comparable with one at DMA level when spillovers are present.
#'
#' @inheritParams geo_units
#' @param randomize_by A named character vector of candidate columns of
#'   units of randomization, e.g. `c(DMA = "dma", zone = "zone")`; the panel's
#'   unit column stands for randomizing each unit on its own.
#' @param post Time values of the test window (required).
#' @param effect Relative lift (e.g. `0.05` for 5%) at which to report power.
#' @param power Target power for the MDE.
#' @param prop_treated Share of clusters treated.
#' @param alpha Two-sided significance level.
#' @return A data frame, one row per candidate: `clustering`, `column`,
#'   `n_clusters`, `mean_size`, `cv_size`, `r2`, `mean_post`, `sd_post`,
#'   `mde_dim`, `mde_dim_pct`, `power_dim`, `mde_adj`, `mde_adj_pct`,
#'   `power_adj`. `dim` is the difference in means of test-window totals
#'   (df \eqn{M - 2}); `adj` adjusts for the pre-period total (df
#'   \eqn{M - 3}). Percentages are of the mean cluster test-window total, so
#'   they are comparable across clusterings as relative lifts.
#' @export
#' @examples
#' compare_clusterings(sales ~ 0 | zone + week, geo_sales,
#'                     randomize_by = c(DMA = "dma", zone = "zone"),
#'                     size = "population", post = 79:104)
compare_clusterings <- function(formula, data, randomize_by, size = NULL, pre = NULL,
                                post = NULL, effect = 0.05, power = 0.8,
                                prop_treated = 0.5, alpha = 0.05, ...) {
  check_dots(...)
  if (missing(data)) data <- NULL
  if (missing(randomize_by) || !is.character(randomize_by) || !length(randomize_by) ||
      anyNA(randomize_by)) {
    abort_mkt("bad_argument", c(
      "{.arg randomize_by} must be a named character vector of candidate columns.",
      i = "For example {.code randomize_by = c(DMA = \"dma\", zone = \"zone\")}."
    ))
  }
  if (is.null(post)) {
    abort_mkt("bad_argument", c(
      "{.arg post} must give the time values of the test window.",
      i = "For example {.code post = 79:104} for the last 26 of 104 weeks."
    ))
  }
  if (!is.numeric(effect) || length(effect) != 1L || is.na(effect) || effect <= 0) {
    abort_mkt("bad_argument", "{.arg effect} must be one positive relative lift, e.g. {.code 0.05}.")
  }
  if (!is.null(size)) check_name(size, "size")
  if (is.data.frame(data)) {
    check_columns(data, randomize_by, "randomize_by")
    check_columns(data, size, "size")
  }
  if (is.null(names(randomize_by))) names(randomize_by) <- randomize_by
  names(randomize_by)[names(randomize_by) == ""] <- randomize_by[names(randomize_by) == ""]
  panel <- as_panel(formula, data, extra = unique(c(randomize_by, size)))

  rows <- lapply(seq_along(randomize_by), function(i) {
    col <- randomize_by[[i]]
    u <- geo_units_fit(panel, col, size, character(), pre, post)
    m <- nrow(u)
    if (m < 4L) {
      abort_mkt("too_few_clusters", c(
        "Randomizing by {.field {col}} gives only {m} cluster{?s}.",
        i = "A randomized comparison needs at least 4 clusters."
      ))
    }
    sd_post <- stats::sd(u$post_total)
    r2 <- if (stats::var(u$outcome_total) > 0) {
      stats::cor(u$post_total, u$outcome_total)^2
    } else 0
    mean_post <- mean(u$post_total)
    lift <- effect * mean_post
    dim <- power_closed_form(m, sd_post, power = power, alpha = alpha,
                             prop_treated = prop_treated, df = m - 2)
    adj <- power_closed_form(m, sd_post, power = power, alpha = alpha,
                             prop_treated = prop_treated, r2 = min(r2, 1 - 1e-12),
                             df = m - 3)
    pw_dim <- power_closed_form(m, sd_post, effect = lift, alpha = alpha,
                                prop_treated = prop_treated, df = m - 2)$power
    pw_adj <- power_closed_form(m, sd_post, effect = lift, alpha = alpha,
                                prop_treated = prop_treated,
                                r2 = min(r2, 1 - 1e-12), df = m - 3)$power
    data.frame(
      clustering = names(randomize_by)[i], column = col, n_clusters = m,
      mean_size = mean(u$size), cv_size = stats::sd(u$size) / mean(u$size),
      r2 = r2, mean_post = mean_post, sd_post = sd_post,
      mde_dim = dim$effect, mde_dim_pct = 100 * dim$effect / mean_post,
      power_dim = pw_dim,
      mde_adj = adj$effect, mde_adj_pct = 100 * adj$effect / mean_post,
      power_adj = pw_adj, stringsAsFactors = FALSE
    )
  })
  do.call(rbind, rows)
}

# --- helpers ----------------------------------------------------------------

check_name <- function(x, arg, call = rlang::caller_env()) {
  if (!is.character(x) || length(x) != 1L || is.na(x) || !nzchar(x)) {
    abort_mkt("bad_argument", c(
      "{.arg {arg}} must be the name of one column of {.arg data}, as a string.",
      x = "You supplied {.obj_type_friendly {x}}."
    ), call = call)
  }
  invisible(x)
}

# Column names of a one-sided covariate formula.
geo_covariates <- function(covariates, call = rlang::caller_env()) {
  if (is.null(covariates)) return(character())
  # `~ .` has no meaning here (the columns are not known yet): refuse it
  # with the same advice rather than let terms() fail.
  ok <- inherits(covariates, "formula") && length(covariates) == 2L &&
    !"." %in% all.vars(covariates)
  terms <- if (ok) attr(stats::terms(covariates), "term.labels") else character()
  if (!ok || !length(terms) || !all(terms %in% all.vars(covariates))) {
    abort_mkt("bad_argument", c(
      "{.arg covariates} must be a one-sided formula of column names.",
      i = "For example {.code covariates = ~ region + income}."
    ), call = call)
  }
  reserved <- intersect(terms, c("n_units", "size", "outcome_total", "outcome_mean",
                                 "outcome_trend", "outcome_sd", "per_capita_mean",
                                 "post_total", "post_mean"))
  if (length(reserved)) {
    abort_mkt("bad_argument", c(
      "Covariate name{cli::qty(length(reserved))}{?s} {.field {reserved}} would overwrite {cli::qty(length(reserved))}{?a/} column{?s} that {.fn geo_units} computes.",
      i = "Rename {cli::qty(length(reserved))}{?it/them} in {.arg data} first."
    ), call = call)
  }
  terms
}

# Rows the panel dropped, said once.
warn_dropped_rows <- function(panel) {
  dropped <- panel$dropped
  if (!nrow(dropped)) return(invisible())
  reasons <- table(dropped$reason)
  warn_mkt("dropped_rows", c(
    "Dropped {nrow(dropped)} row{?s}: {paste(as.vector(reasons), names(reasons), collapse = ', ')}.",
    i = "Cluster features use the remaining periods of each cluster."
  ))
}

# The unit of randomization of each unit of the panel (its own label without
# `randomize_by`): known on every observed cell and constant within units,
# which must nest in the clusters.
randomization_clusters <- function(panel, randomize_by, call = rlang::caller_env()) {
  units <- as.character(panel$units)
  if (is.null(randomize_by)) return(units)
  m <- panel$extra[[randomize_by]]
  miss <- is.na(m) & panel$observed
  if (any(miss)) {
    abort_mkt("missing_values", c(
      "Column {.field {randomize_by}} is missing on {sum(miss)} observed row{?s}, e.g. for {.field {panel$vars$unit}} {.val {utils::head(units[rowSums(miss) > 0], 3)}}.",
      i = "Every row needs its unit of randomization; fill in those rows first."
    ), call = call)
  }
  lab <- tryCatch(panel_unit_values(panel, randomize_by, extra = TRUE, call = call),
    mktcausal_error_varies_within_unit = function(e) {
      first <- m[cbind(seq_len(nrow(m)), max.col(panel$observed, ties.method = "first"))]
      differs <- panel$observed & m != first
      bad <- units[rowSums(differs, na.rm = TRUE) > 0]
      abort_mkt("not_nested", c(
        "{.field {panel$vars$unit}} value{cli::qty(length(bad))}{?s} {.val {utils::head(bad, 5)}} belong{cli::qty(length(bad))}{?s/} to several {.field {randomize_by}} clusters.",
        i = "Units must nest in the units of randomization; fix the mapping or randomize at a coarser level."
      ), call = call, parent = NA)
    })
  as.character(lab)
}

# Each unit's size: numeric, known, non-negative and constant over time.
unit_sizes <- function(panel, size, call = rlang::caller_env()) {
  m <- panel$extra[[size]]
  if (!is.numeric(m)) {
    abort_mkt("non_numeric", c(
      "The size column {.field {size}} must be numeric.",
      x = "It is of class {.cls {class(m)}}."
    ), call = call)
  }
  miss <- is.na(m) & panel$observed
  if (any(miss)) {
    abort_mkt("missing_values", c(
      "Column {.field {size}} has {sum(miss)} missing value{?s}.",
      i = "Every row needs a {.field {size}}; drop or fill those rows first."
    ), call = call)
  }
  if (any(m[panel$observed] < 0)) {
    abort_mkt("bad_size", "The size column {.field {size}} has negative values; sizes must be >= 0.",
              call = call)
  }
  s <- panel_unit_values(panel, size, extra = TRUE, call = call)
  s[is.na(s)] <- 0
  as.numeric(s)
}

# Cluster x period sums of the outcome over the units of each cluster (codes
# `ci`, NA for units left out), NA where a cluster has no observed cell.
cluster_totals <- function(panel, ci, n_cl) {
  obs <- panel$observed
  use <- !is.na(ci)
  Yz <- panel$Y[use, , drop = FALSE]
  Yz[!obs[use, , drop = FALSE]] <- 0
  tot <- rowsum(Yz, ci[use], reorder = TRUE)
  cnt <- rowsum(obs[use, , drop = FALSE] * 1, ci[use], reorder = TRUE)
  out <- matrix(NA_real_, n_cl, ncol(obs))
  rows <- as.integer(rownames(tot))
  out[rows, ] <- ifelse(cnt > 0, tot, NA_real_)
  out
}

# Validates the windows against the data's times and fills the default pre
# window, so that every feature is computed on periods that exist.
geo_windows <- function(pre, post, times, time, call = rlang::caller_env()) {
  check_in <- function(w, arg) {
    if (is.list(w) || !is.atomic(w)) {
      abort_mkt("bad_window", c(
        "{.arg {arg}} must be a vector of times of column {.field {time}}.",
        x = "It is {.obj_type_friendly {w}}."
      ), call = call)
    }
    if (!length(w)) {
      abort_mkt("bad_window", "{.arg {arg}} selects no periods.", call = call)
    }
    miss <- w[!w %in% times]
    if (length(miss)) {
      abort_mkt("bad_window", c(
        "{.arg {arg}} has value{cli::qty(length(miss))}{?s} {.val {format(utils::head(miss, 5))}} not found in column {.field {time}}.",
        i = "Its times run from {.val {format(min(times))}} to {.val {format(max(times))}}; use values of the same type."
      ), call = call)
    }
    sort(unique(w))
  }
  if (!is.null(post)) post <- check_in(post, "post")
  if (is.null(pre)) {
    pre <- if (is.null(post)) times else times[times < min(post)]
    if (!length(pre)) {
      abort_mkt("bad_window", c(
        "No time in {.field {time}} lies before {.arg post}, so the default pre-period is empty.",
        i = "Give {.arg pre} explicitly, or start {.arg post} later."
      ), call = call)
    }
  } else {
    pre <- check_in(pre, "pre")
  }
  if (!is.null(post) && any(pre %in% post)) {
    abort_mkt("bad_window", c(
      "{.arg pre} and {.arg post} overlap.",
      i = "Pre-period features must not use test-window outcomes."
    ), call = call)
  }
  list(pre = pre, post = post)
}

# Level, OLS trend and residual volatility of each row of Y (clusters x
# periods, NA where a cluster has no rows), vectorised over clusters.
series_features <- function(Y, x) {
  W <- !is.na(Y)
  Y[!W] <- 0
  n <- rowSums(W)
  total <- rowSums(Y)
  sx <- as.vector(W %*% x)
  sxx <- as.vector(W %*% x^2)
  sxy <- as.vector(Y %*% x)
  den <- n * sxx - sx^2
  slope <- ifelse(den > 0, (n * sxy - sx * total) / den, NA_real_)
  icpt <- (total - slope * sx) / n
  fit <- icpt + outer(slope, x)
  rss <- rowSums(W * (Y - fit)^2)
  list(total = total, mean = total / n, trend = slope,
       sd = ifelse(n > 2, sqrt(rss / (n - 2)), NA_real_))
}


# A covariate at the cluster level: numeric ones as size-weighted means of
# each unit's pre-period mean (all periods for clusters without a pre-period
# value); categorical ones must be constant within each cluster.
cluster_covariate <- function(m, col, obs, in_pre, ci, n_cl, ids, s_unit, id_col,
                              call = rlang::caller_env()) {
  if (is.numeric(m)) {
    res <- weighted_cluster_mean(m, obs & in_pre, ci, n_cl, s_unit)
    miss <- is.na(res)
    if (any(miss)) res[miss] <- weighted_cluster_mean(m, obs, ci, n_cl, s_unit)[miss]
    return(res)
  }
  if (!(is.character(m) || is.logical(m))) {
    abort_mkt("bad_covariate", c(
      "Covariate {.field {col}} is of class {.cls {class(m)}}.",
      i = "Covariates must be numeric, character, factor or logical."
    ), call = call)
  }
  use <- obs & !is.na(m) & !is.na(ci)
  vals <- m[use]
  cl <- ci[row(m)[use]]
  n_val <- tapply(vals, factor(cl, levels = seq_len(n_cl)), function(z) length(unique(z)))
  n_val[is.na(n_val)] <- 0L
  if (any(n_val > 1L)) {
    bad <- ids[n_val > 1L]
    abort_mkt("varies_within_unit", c(
      "Categorical covariate {.field {col}} takes several values within {.field {id_col}} {.val {utils::head(bad, 5)}}.",
      i = "Categorical covariates must be constant within a cluster; recode them or pass a numeric share instead."
    ), call = call)
  }
  out <- vals[match(seq_len(n_cl), cl)]
  if (is.null(out)) out <- rep(NA, n_cl)
  out
}

# Size-weighted mean over a cluster's units of each unit's mean over the
# cells in `keep`; units without such a cell do not count.
weighted_cluster_mean <- function(m, keep, ci, n_cl, s_unit) {
  keep <- keep & !is.na(m)
  n_u <- rowSums(keep)
  mean_u <- rowSums(ifelse(keep, m, 0)) / pmax(n_u, 1)
  has <- n_u > 0 & !is.na(ci)
  res <- rep(NA_real_, n_cl)
  if (!any(has)) return(res)
  r <- rowsum(cbind(s_unit[has] * mean_u[has], s_unit[has]), ci[has])
  res[as.integer(rownames(r))] <- r[, 1L] / r[, 2L]
  res[!is.finite(res)] <- NA_real_
  res
}
