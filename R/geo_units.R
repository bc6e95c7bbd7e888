#' Aggregate a unit-level panel to one row per cluster
#'
#' Turns long panel data at a fine level (e.g. zone x week) into the
#' cluster table that geo-experiment designs randomize: one row per cluster
#' (e.g. DMA) with its size, covariates and features of its pre-period
#' outcome. The table carries `attr(x, "id") == "cluster"`, so design
#' functions such as [rerandomize()] find the cluster id without being told.
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
#' @param data A data frame, tibble or data.table in long form.
#' @param cluster Name of the column holding the cluster id (the level at
#'   which treatment will be assigned).
#' @param time Name of the time column (numeric, integer or Date).
#' @param outcome Name of the numeric outcome column. Rows with a missing
#'   outcome are dropped with a warning.
#' @param size `NULL` or the name of a numeric, time-invariant column giving
#'   each unit's size (e.g. population). A cluster's size is the sum over its
#'   units, each counted once. With `NULL`, size is the pre-period outcome
#'   total.
#' @param covariates `NULL` or names of columns to carry to the cluster level
#'   (see Details).
#' @param pre Time values of the pre-period window. Default: every time
#'   before the first `post` time, or every time when `post` is `NULL`.
#' @param post `NULL` or the time values of the test window.
#' @param unit `NULL` or the name of the column identifying units within
#'   clusters (e.g. `"zone"`). Naming it lets `geo_units()` check that each
#'   unit has one row per period and nests in one cluster, and count each
#'   unit's size once even in unbalanced panels. With `NULL`, each row of a
#'   cluster-period cell is taken as one unit: `n_units` is the largest
#'   number of rows a cluster has in a period, `size` the largest period
#'   total of the size column (the same in every period for a balanced
#'   panel with time-invariant sizes, else with a warning), and only exact
#'   duplicate rows can be detected.
#' @return A data frame of class `c("mkt_units", "data.frame")`, one row per
#'   cluster sorted by id, with columns `cluster`, `n_units`, `size`, the
#'   covariates, `outcome_total`, `outcome_mean`, `outcome_trend`,
#'   `outcome_sd`, `per_capita_mean` (`outcome_mean / size`, only when `size`
#'   is given), and `post_total`, `post_mean` (only with `post`). Attributes:
#'   `id` (`"cluster"`), `cluster_col`, `unit_col`, `outcome_col`, `size_col`,
#'   `pre`, `post`.
#' @seealso [compare_clusterings()] to compare candidate cluster definitions.
#' @export
#' @examples
#' units <- geo_units(geo_sales, cluster = "dma", time = "week",
#'                    outcome = "sales", size = "population",
#'                    covariates = "region", post = 79:104, unit = "zone")
#' head(units)
#' # Between-DMA R^2 of test-window sales on pre-period sales
#' summary(lm(post_total ~ outcome_total, data = units))$r.squared
geo_units <- function(data, cluster, time, outcome, size = NULL,
                      covariates = NULL, pre = NULL, post = NULL, unit = NULL) {
  data <- check_data_frame(data)
  check_name(cluster, "cluster")
  check_name(time, "time")
  check_name(outcome, "outcome")
  if (!is.null(size)) check_name(size, "size")
  if (!is.null(unit)) check_name(unit, "unit")
  if (!is.null(covariates) && (!is.character(covariates) || anyNA(covariates))) {
    abort_mkt("bad_argument", c(
      "{.arg covariates} must be a character vector of column names.",
      i = "For example {.code covariates = c(\"region\", \"income\")}."
    ))
  }
  reserved <- intersect(covariates, c("cluster", "n_units", "size",
                                      "outcome_total", "outcome_mean",
                                      "outcome_trend", "outcome_sd",
                                      "per_capita_mean", "post_total", "post_mean"))
  if (length(reserved)) {
    abort_mkt("bad_argument", c(
      "Covariate name{cli::qty(length(reserved))}{?s} {.field {reserved}} would overwrite {cli::qty(length(reserved))}{?a/} column{?s} that {.fn geo_units} computes.",
      i = "Rename {cli::qty(length(reserved))}{?it/them} in {.arg data} first."
    ))
  }
  check_columns(data, cluster, "cluster")
  check_columns(data, time, "time")
  check_columns(data, outcome, "outcome")
  if (!is.null(size)) check_columns(data, size, "size")
  if (!is.null(unit)) check_columns(data, unit, "unit")
  if (!is.null(covariates)) check_columns(data, covariates, "covariates")

  for (col in c(cluster, unit, time)) check_no_na(data[[col]], col)
  y <- data[[outcome]]
  if (!is.numeric(y)) {
    abort_mkt("non_numeric", c(
      "The outcome column {.field {outcome}} must be numeric.",
      x = "It is of class {.cls {class(y)}}.",
      i = "Convert it first, e.g. {.code data${outcome} <- as.numeric(data${outcome})}."
    ))
  }
  if (anyNA(y)) {
    warn_mkt("dropped_rows", c(
      "Dropped {sum(is.na(y))} row{?s} with a missing {.field {outcome}}.",
      i = "Cluster features use the remaining periods of each cluster."
    ))
    data <- data[!is.na(y), , drop = FALSE]
    y <- data[[outcome]]
  }

  cl <- as.character(data[[cluster]])
  un <- if (is.null(unit)) NULL else as.character(data[[unit]])
  tm <- data[[time]]
  check_geo_rows(data, cl, un, tm, cluster, unit, time)

  times <- sort(unique(tm))
  pre_post <- geo_windows(pre, post, times, time)
  pidx <- match(tm, times)
  in_pre <- pidx %in% match(pre_post$pre, times)

  ids <- sort(unique(cl))
  ci <- match(cl, ids)
  n_cl <- length(ids)
  n_t <- length(times)
  cell <- ci + (pidx - 1L) * n_cl
  Y <- cell_sums(y, cell, n_cl, n_t)
  pre_f <- series_features(Y[, match(pre_post$pre, times), drop = FALSE],
                           match(pre_post$pre, times))
  if (anyNA(pre_f$mean)) {
    bad <- ids[is.na(pre_f$mean)]
    warn_mkt("no_pre_data", c(
      "{.field {cluster}} value{cli::qty(length(bad))}{?s} {.val {utils::head(bad, 5)}} {cli::qty(length(bad))}{?has/have} no rows in the pre-period.",
      i = "Their pre-period features are missing; drop them or widen {.arg pre}."
    ))
  }

  s <- if (is.null(size)) NULL else check_size(data[[size]], size, un)
  if (is.null(un)) {
    # Anonymous units: each row of a cluster-period cell is one unit, so a
    # cluster holds as many units, and as much size, as its fullest period.
    cnt <- cell_sums(rep(1, length(cell)), cell, n_cl, n_t)
    n_units <- as.integer(apply(cnt, 1L, max, na.rm = TRUE))
    if (!is.null(s)) {
      S <- cell_sums(s, cell, n_cl, n_t)
      cl_size <- apply(S, 1L, max, na.rm = TRUE)
      if (any(apply(S, 1L, function(r) diff(range(r, na.rm = TRUE))) > 0)) {
        warn_mkt("size_varies", c(
          "The clusters' total {.field {size}} changes from period to period.",
          i = "Each cluster's size is its largest period total; name the unit column (e.g. {.code unit = \"zone\"}) to count each unit's size once."
        ))
      }
    }
  } else {
    unit_ids <- unique(un)
    unit_cl <- ci[match(unit_ids, un)]
    n_units <- tabulate(unit_cl, n_cl)
    if (!is.null(s)) {
      cl_size <- as.numeric(rowsum(s[match(unit_ids, un)], unit_cl, reorder = TRUE)[, 1L])
    }
  }
  if (is.null(s)) cl_size <- pre_f$total

  out <- data.frame(cluster = ids, n_units = n_units, size = cl_size,
                    stringsAsFactors = FALSE)
  for (cv in covariates) {
    out[[cv]] <- cluster_covariate(data[[cv]], cv, cl, ci, n_cl, ids, un,
                                   if (is.null(s)) rep(1, length(cl)) else s,
                                   in_pre, cluster)
  }
  out$outcome_total <- pre_f$total
  out$outcome_mean <- pre_f$mean
  out$outcome_trend <- pre_f$trend
  out$outcome_sd <- pre_f$sd
  if (!is.null(size)) out$per_capita_mean <- out$outcome_mean / out$size
  if (!is.null(pre_post$post)) {
    post_f <- series_features(Y[, match(pre_post$post, times), drop = FALSE],
                              match(pre_post$post, times))
    out$post_total <- post_f$total
    out$post_mean <- post_f$mean
  }
  structure(out, class = c("mkt_units", "data.frame"), id = "cluster",
            cluster_col = cluster, unit_col = unit, outcome_col = outcome,
            size_col = size, pre = pre_post$pre, post = pre_post$post)
}

#' Compare candidate cluster definitions by closed-form power
#'
#' For each candidate cluster column (e.g. DMA vs zone), builds the cluster
#' table with [geo_units()] and reports what the choice implies for power:
#' the number of clusters, the mean and coefficient of variation of cluster
#' size, the between-cluster \eqn{R^2} of the test-window outcome total on
#' the pre-period total, and the closed-form MDE ([power_closed_form()]) of
#' the difference in means of cluster totals and of the pre-outcome-adjusted
#' estimator, in absolute terms and in percent of the mean cluster total.
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
#' @param clusterings A named character vector of alternative cluster
#'   columns, e.g. `c(DMA = "dma", zone = "zone")`.
#' @param size `NULL` or the name of the unit size column.
#' @param post Time values of the test window (required).
#' @param effect Relative lift (e.g. `0.05` for 5%) at which to report power.
#' @param alpha Two-sided significance level.
#' @param power Target power for the MDE.
#' @param prop_treated Share of clusters treated.
#' @param unit `NULL` or the unit column; by default the clustering with the
#'   most distinct values, which must be the finest level of the data.
#' @return A data frame, one row per clustering: `clustering`, `column`,
#'   `n_clusters`, `mean_size`, `cv_size`, `r2`, `mean_post`, `sd_post`,
#'   `mde_dim`, `mde_dim_pct`, `power_dim`, `mde_adj`, `mde_adj_pct`,
#'   `power_adj`. `dim` is the difference in means of test-window totals
#'   (df \eqn{M - 2}); `adj` adjusts for the pre-period total (df
#'   \eqn{M - 3}). Percentages are of the mean cluster test-window total, so
#'   they are comparable across clusterings as relative lifts.
#' @export
#' @examples
#' compare_clusterings(geo_sales, c(DMA = "dma", zone = "zone"),
#'                     time = "week", outcome = "sales", size = "population",
#'                     post = 79:104)
compare_clusterings <- function(data, clusterings, time, outcome, size = NULL,
                                pre = NULL, post, effect = 0.05, alpha = 0.05,
                                power = 0.8, prop_treated = 0.5, unit = NULL) {
  data <- check_data_frame(data)
  if (!is.character(clusterings) || !length(clusterings) || anyNA(clusterings)) {
    abort_mkt("bad_argument", c(
      "{.arg clusterings} must be a named character vector of cluster columns.",
      i = "For example {.code c(DMA = \"dma\", zone = \"zone\")}."
    ))
  }
  if (missing(post) || is.null(post)) {
    abort_mkt("bad_argument", c(
      "{.arg post} must give the time values of the test window.",
      i = "For example {.code post = 79:104} for the last 26 of 104 weeks."
    ))
  }
  if (!is.numeric(effect) || length(effect) != 1L || is.na(effect) || effect <= 0) {
    abort_mkt("bad_argument", "{.arg effect} must be one positive relative lift, e.g. {.code 0.05}.")
  }
  check_columns(data, clusterings, "clusterings")
  if (is.null(names(clusterings))) names(clusterings) <- clusterings
  names(clusterings)[names(clusterings) == ""] <- clusterings[names(clusterings) == ""]
  if (is.null(unit)) {
    n_lvl <- vapply(clusterings, function(col) length(unique(data[[col]])), integer(1))
    unit <- clusterings[[which.max(n_lvl)]]
  }

  rows <- lapply(seq_along(clusterings), function(i) {
    col <- clusterings[[i]]
    u <- geo_units(data, cluster = col, time = time, outcome = outcome,
                   size = size, pre = pre, post = post,
                   unit = if (identical(col, unit)) NULL else unit)
    m <- nrow(u)
    if (m < 4L) {
      abort_mkt("too_few_clusters", c(
        "Clustering {.field {col}} gives only {m} cluster{?s}.",
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
      clustering = names(clusterings)[i], column = col, n_clusters = m,
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

check_no_na <- function(x, col, call = rlang::caller_env()) {
  if (anyNA(x)) {
    abort_mkt("missing_values", c(
      "Column {.field {col}} has {sum(is.na(x))} missing value{?s}.",
      i = "Every row needs a {.field {col}}; drop or fill those rows first."
    ), call = call)
  }
  invisible(x)
}

# Validates the windows against the data's times and fills the default pre
# window, so that every feature is computed on periods that exist.
geo_windows <- function(pre, post, times, time, call = rlang::caller_env()) {
  check_in <- function(w, arg) {
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

cluster_covariate <- function(v, col, cl, ci, n_cl, ids, un, s_row, in_pre,
                              cluster, call = rlang::caller_env()) {
  if (is.numeric(v)) {
    res <- weighted_cluster_mean(v, ci, n_cl, un, s_row, in_pre & !is.na(v))
    # Clusters without a pre-period value fall back on all their rows.
    miss <- is.na(res)
    if (any(miss)) {
      res[miss] <- weighted_cluster_mean(v, ci, n_cl, un, s_row, !is.na(v))[miss]
    }
    return(res)
  }
  if (!(is.character(v) || is.factor(v) || is.logical(v))) {
    abort_mkt("bad_covariate", c(
      "Covariate {.field {col}} is of class {.cls {class(v)}}.",
      i = "Covariates must be numeric, character, factor or logical."
    ), call = call)
  }
  n_val <- tapply(as.character(v), cl, function(z) length(unique(z[!is.na(z)])))
  if (any(n_val > 1L)) {
    bad <- names(n_val)[n_val > 1L]
    abort_mkt("varies_within_unit", c(
      "Categorical covariate {.field {col}} takes several values within {.field {cluster}} {.val {utils::head(bad, 5)}}.",
      i = "Categorical covariates must be constant within a cluster; recode them or pass a numeric share instead."
    ), call = call)
  }
  first <- match(ids, cl[!is.na(v)])
  v[!is.na(v)][first]
}

# Size-weighted mean of each unit's mean: a row of unit u weighs
# size_u / (rows of u kept), so units count by size, not by row count.
weighted_cluster_mean <- function(v, ci, n_cl, un, s_row, keep) {
  res <- rep(NA_real_, n_cl)
  if (!any(keep)) return(res)
  w <- s_row[keep]
  if (!is.null(un)) w <- w / stats::ave(w, un[keep], FUN = length)
  r <- rowsum(cbind(w * v[keep], w), ci[keep])
  res[as.integer(rownames(r))] <- r[, 1L] / r[, 2L]
  res[!is.finite(res)] <- NA_real_
  res
}

# Sums of x by cluster-period cell as a clusters x periods matrix, NA where
# a cluster has no row in a period.
cell_sums <- function(x, cell, n_cl, n_t) {
  tot <- rowsum(x, cell, reorder = FALSE)
  out <- matrix(NA_real_, n_cl, n_t)
  out[as.integer(rownames(tot))] <- tot[, 1L]
  out
}

check_geo_rows <- function(data, cl, un, tm, cluster, unit, time,
                           call = rlang::caller_env()) {
  if (is.null(un)) {
    d <- anyDuplicated(data)
    if (d) {
      abort_mkt("duplicated_rows", c(
        "Row {d} of {.arg data} repeats an earlier row exactly.",
        i = "Drop duplicated rows, or name the unit column (e.g. {.code unit = \"zone\"}) so that each unit is checked to have one row per {.field {time}}."
      ), call = call)
    }
    return(invisible())
  }
  d <- anyDuplicated(paste(un, as.character(tm), sep = "\r"))
  if (d) {
    abort_mkt("duplicated_rows", c(
      "Several rows share {.field {unit}} = {.val {un[d]}} and {.field {time}} = {.val {format(tm[d])}}.",
      i = "Keep one row per {.field {unit}} and {.field {time}}, or aggregate duplicates first."
    ), call = call)
  }
  n_cl <- tapply(cl, un, function(v) length(unique(v)))
  if (any(n_cl > 1L)) {
    bad <- names(n_cl)[n_cl > 1L]
    abort_mkt("not_nested", c(
      "{.field {unit}} value{cli::qty(length(bad))}{?s} {.val {utils::head(bad, 5)}} belong{cli::qty(length(bad))}{?s/} to several {.field {cluster}} clusters.",
      i = "Units must nest in clusters; fix the mapping or cluster at a coarser level."
    ), call = call)
  }
  invisible()
}

check_size <- function(s, size, un, call = rlang::caller_env()) {
  if (!is.numeric(s)) {
    abort_mkt("non_numeric", c(
      "The size column {.field {size}} must be numeric.",
      x = "It is of class {.cls {class(s)}}."
    ), call = call)
  }
  check_no_na(s, size, call = call)
  if (any(s < 0)) {
    abort_mkt("bad_size", "The size column {.field {size}} has negative values; sizes must be >= 0.",
              call = call)
  }
  if (!is.null(un)) {
    rng <- tapply(s, un, function(v) max(v) - min(v))
    if (any(rng > 0)) {
      bad <- names(rng)[rng > 0]
      abort_mkt("varies_within_unit", c(
        "The size column {.field {size}} varies over time within unit{cli::qty(length(bad))}{?s} {.val {utils::head(bad, 5)}}.",
        i = "Size must be time-invariant per unit: use e.g. the population at the start of the pre-period."
      ), call = call)
    }
  }
  as.numeric(s)
}
