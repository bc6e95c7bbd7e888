#' Build strata of clusters for a randomized experiment
#'
#' Groups clusters (one row of `data` each) into strata within which
#' treatment is then randomized, for example by [rerandomize()] with
#' `strata = stratify(...)`.
#'
#' @section Methods:
#' * `"quantile"`: bins of the size measure `size` at its empirical quantiles
#'   (`bins` groups, labelled `Q1`, `Q2`, ...). With `by`, the bins are formed
#'   within each crossing of the `by` columns, so every crossing gets bins of
#'   equal size. Tied values never straddle two bins, so bins can be fewer or
#'   unequal when `size` has many ties.
#' * `"exact"`: one stratum per observed crossing of the categorical columns
#'   in `by`.
#' * `"matched"`: matched sets of `block_size` similar clusters by
#'   Mahalanobis distance on the numeric `covariates`. Matching is greedy:
#'   the closest remaining pair starts a block, which then grows by the
#'   remaining cluster with the smallest mean distance to its members until
#'   it holds `block_size` clusters. The M mod `block_size` clusters left over
#'   join the block nearest to them (smallest mean distance). Greedy matching
#'   is not optimal matching, but it is fast and deterministic.
#'
#' @section Guard against over-stratification:
#' Every stratum must hold `min_per_arm` treated and `min_per_arm` control
#' clusters at `prop_treated`, otherwise the error
#' `mktcausal_error_strata_too_small` names the strata and suggests merging
#' them or using coarser bins. Two per arm is the default because
#' within-stratum variances need two clusters per arm. Matched pairs
#' (`block_size = 2`) are checked with one per arm: they cannot hold more,
#' and their analysis must use the pair variance estimator instead. With
#' `"quantile"` and `"exact"`, the warning `mktcausal_warning_many_strata` is
#' raised when there are more than M/6 strata for M clusters: each stratum
#' costs a degree of freedom. Matched sets are many strata by construction
#' and are not warned about.
#'
#' @param data A data frame with one row per cluster.
#' @param by Categorical columns to stratify on: a character vector of column
#'   names or a one-sided formula such as `~ region + channel`.
#' @param size Name of the numeric size measure column for `"quantile"`.
#' @param bins Number of quantile bins of `size`.
#' @param method `"quantile"`, `"exact"` or `"matched"`; see Methods.
#' @param covariates A one-sided formula of numeric columns for `"matched"`.
#' @param block_size Number of clusters per matched set (2 = pairs).
#' @param min_per_arm Smallest number of treated and of control clusters each
#'   stratum must be able to hold.
#' @param prop_treated Share of clusters to be treated, in (0, 1). For
#'   designs with several treated cells, a named vector of one share per
#'   treated cell, such as `c(heavy_up = 1/3, go_dark = 1/3)` (the rest is
#'   the shared control): the strata then report each cell's expected size,
#'   and matched sets of `block_size` = number of cells hold one cluster per
#'   cell.
#' @param buffer,buffer_radius Optional buffer rule, as in [rerandomize()]:
#'   untreated neighbours of treated clusters will be excluded from the
#'   control arm. The strata then report expected control and buffer counts
#'   (averages over 500 stratified random draws), check that each stratum
#'   keeps `min_per_arm` controls in most draws (error
#'   `mktcausal_error_buffer_too_wide` otherwise), and pass the rule on to
#'   [rerandomize()] when given as its `strata`.
#' @param id Name of the cluster id column that labels `buffer`; by default
#'   the id column of a [geo_units()] table, otherwise row numbers.
#' @param ... Must be empty.
#' @return An object of class `mkt_strata`, a list with `stratum` (a factor in
#'   the row order of `data`), `method`, `table` (clusters per stratum),
#'   `n_treated` and `n_control` (expected arm sizes per stratum, as
#'   allocated by the package's designs; with a buffer, expected controls
#'   outside the buffer), `n_buffer` (expected buffer clusters, with a
#'   buffer), `buffer` (the rule), `n_by_stratum` (with several cells: the
#'   cell sizes per stratum, strata x cells, control first), `min_per_arm`,
#'   `prop_treated` and the
#'   inputs used.
#' @examples
#' set.seed(1)
#' geos <- data.frame(
#'   region = rep(c("north", "south"), each = 12),
#'   population = rlnorm(24, 12),
#'   sales = rnorm(24, 100, 10)
#' )
#' stratify(geos, by = "region", size = "population", bins = 2)
#' stratify(geos, by = ~ region, method = "exact")
#' pairs <- stratify(geos, method = "matched", covariates = ~ population + sales)
#' head(pairs$stratum)
#' @export
stratify <- function(data, by = NULL, size = NULL, bins = 3,
                     method = c("quantile", "exact", "matched"),
                     covariates = NULL, block_size = 2, min_per_arm = 2,
                     prop_treated = 0.5, buffer = NULL, buffer_radius = NULL, id = NULL,
                     ...) {
  check_dots(...)
  data <- check_data_frame(data)
  method <- check_choice(method)
  M <- nrow(data)
  if (M < 2L) {
    abort_mkt("bad_data", "{.arg data} must have at least 2 rows (clusters); it has {M}.")
  }
  min_per_arm <- check_count(min_per_arm, "min_per_arm", min = 1)
  block_size <- check_count(block_size, "block_size", min = 2, max = max(2, M))
  if (is.null(prop_treated)) {
    abort_mkt("bad_argument", c(
      "{.arg prop_treated} must be a share of clusters to treat, in (0, 1].",
      i = "The default, 0.5, treats half of each stratum."
    ))
  }
  if (!is.null(covariates) && method != "matched") {
    abort_mkt("bad_argument", c(
      "{.arg covariates} is used by {.code method = \"matched\"} only.",
      i = "Drop it, or set {.code method = \"matched\"} to match clusters on it."
    ))
  }
  by <- strata_by(by, data)

  stratum <- switch(method,
    quantile = strata_quantile(data, by, size, check_count(bins, "bins", min = 1)),
    exact = strata_exact(data, by),
    matched = strata_matched(data, covariates,
                             check_count(block_size, "block_size", min = 2, max = M))
  )
  stratum <- droplevels(stratum)

  cell_sizes <- design_cell_sizes(NULL, prop_treated, M)
  n_cells <- if (is.null(cell_sizes)) 2L else length(cell_sizes) + 1L
  # Matched sets of one cluster per cell (pairs for two arms) cannot hold
  # more than one per cell.
  if (method == "matched" && block_size == n_cells) min_per_arm <- 1L
  n_by_stratum <- NULL
  if (is.null(cell_sizes)) {
    alloc <- allocate_treated(stratum, M, NULL, prop_treated)
    check_strata_sizes(stratum, alloc, min_per_arm)
  } else {
    # With several cells the buffer holds the neighbours of any treated
    # cell, so the expected arms below count the cells together.
    n_by_stratum <- allocate_cells(stratum, M, cell_sizes)
    check_cell_strata(stratum, n_by_stratum, min_per_arm, "prop_treated")
    alloc <- stats::setNames(as.integer(rowSums(n_by_stratum[, -1L, drop = FALSE])),
                             levels(stratum))
  }
  S <- nlevels(stratum)
  if (method != "matched" && S > M / 6) {
    warn_mkt("many_strata", c(
      "{S} strata for {M} clusters is more than M/6 = {format(M / 6, digits = 3)}.",
      i = "Each stratum costs a degree of freedom; consider fewer {.arg bins} or fewer {.arg by} columns."
    ))
  }

  tab <- table(stratum, dnn = NULL)
  n_control <- stats::setNames(as.integer(tab) - alloc, names(alloc))
  rule <- NULL
  n_buffer <- NULL
  if (!is.null(buffer_radius) && is.null(buffer)) {
    abort_mkt("bad_argument", c(
      "{.arg buffer_radius} is used only with a distance matrix as {.arg buffer}.",
      i = "Give the distance matrix as {.arg buffer}, or leave out {.arg buffer_radius}."
    ))
  }
  # An id is checked even without a buffer, so that a misspelt column is
  # caught where it is given rather than ignored.
  if (!is.null(id)) design_ids(data, id)
  if (!is.null(buffer)) {
    if (!inherits(buffer, "mkt_buffer")) {
      buffer <- check_neighbour_input(buffer, buffer_radius, "buffer", "buffer_radius")
    }
    ids <- design_ids(data, id)
    rule <- buffer_rule(buffer, ids, data, attr(ids, "id_name"), buffer_radius)
    arms <- strata_buffer_arms(rule, stratum, alloc, min_per_arm)
    n_control <- arms$n_control
    n_buffer <- arms$n_buffer
  }
  structure(list(
    stratum = stratum,
    method = method,
    table = tab,
    n_treated = alloc,
    n_control = n_control,
    n_buffer = n_buffer,
    buffer = rule,
    by = by,
    size = size,
    bins = if (method == "quantile") bins else NULL,
    covariates = covariates,
    block_size = if (method == "matched") as.integer(block_size) else NULL,
    min_per_arm = min_per_arm,
    prop_treated = prop_treated,
    n_by_stratum = n_by_stratum
  ), class = "mkt_strata")
}

# Expected controls and buffer clusters per stratum under complete
# stratified randomization with the buffer (means over 500 draws from R's
# generator), and the error when the buffer leaves a stratum short of
# controls in most draws.
strata_buffer_arms <- function(rule, stratum, alloc, min_per_arm, n_draws = 500L,
                               call = rlang::caller_env()) {
  s_idx <- as.integer(stratum)
  W <- matrix(0L, length(s_idx), n_draws)
  for (s in seq_along(alloc)) {
    rows <- which(s_idx == s)
    for (r in seq_len(n_draws)) W[rows[sample.int(length(rows), alloc[s])], r] <- 1L
  }
  exposed <- treated_neighbour(rule$nb, W)
  ctrl <- rowsum((W == 0L & !exposed) * 1, s_idx)
  buf <- rowsum((W == 0L & exposed) * 1, s_idx)
  short <- rowMeans(ctrl < min_per_arm)
  if (any(short > 0.5)) {
    bad <- levels(stratum)[short > 0.5]
    abort_mkt("buffer_too_wide", c(
      "The buffer leaves too few controls in {length(bad)} strat{?um/a}: {.val {utils::head(bad, 5)}}.",
      x = "On average {.val {utils::head(bad, 1)}} keeps {signif(mean(ctrl[match(bad[1], levels(stratum)), ]), 2)} of {sum(s_idx == match(bad[1], levels(stratum))) - alloc[[bad[1]]]} untreated clusters as controls; {min_per_arm} {?is/are} needed.",
      i = "Use a narrower buffer (smaller {.arg buffer_radius} or fewer neighbour links), a smaller {.arg prop_treated}, or coarser strata."
    ), strata = bad, call = call)
  }
  list(n_control = stats::setNames(rowMeans(ctrl), names(alloc)),
       n_buffer = stats::setNames(rowMeans(buf), names(alloc)))
}

# --- methods of forming strata ---------------------------------------------

strata_by <- function(by, data, call = rlang::caller_env()) {
  if (is.null(by)) return(character())
  if (inherits(by, "formula")) {
    if (length(by) != 2L) {
      abort_mkt("bad_argument", c(
        "{.arg by} must be a one-sided formula such as {.code ~ region + channel}."
      ), call = call)
    }
    by <- all.vars(by)
  }
  if (!is.character(by)) {
    abort_mkt("bad_argument", c(
      "{.arg by} must be column names, such as {.code c(\"region\", \"channel\")}, or a one-sided formula."
    ), call = call)
  }
  check_columns(data, by, "by", call = call)
  for (v in by) {
    x <- data[[v]]
    if (is.list(x) || !is.atomic(x)) {
      abort_mkt("bad_argument", c(
        "The stratifying column {.field {v}} must hold labels (character, factor or numbers).",
        x = "It is {.obj_type_friendly {x}}.",
        i = "Convert a list column first, for example with {.code unlist()}."
      ), call = call)
    }
    if (anyNA(x)) {
      abort_mkt("missing_values", c(
        "The stratifying column {.field {v}} has {sum(is.na(x))} missing value{?s}.",
        i = "Give those clusters an explicit level such as {.val unknown}."
      ), call = call)
    }
    if (is.double(x) && length(unique(x)) > max(10, length(x) / 4)) {
      abort_mkt("bad_argument", c(
        "The column {.field {v}} in {.arg by} looks continuous ({length(unique(x))} distinct values).",
        i = "Stratify on a continuous measure with {.code size = \"{v}\"} and {.code method = \"quantile\"}."
      ), call = call)
    }
  }
  by
}

strata_crossing <- function(data, by) {
  if (!length(by)) return(factor(rep("all", nrow(data))))
  interaction(lapply(data[by], function(x) as.factor(x)), sep = ":",
              drop = TRUE, lex.order = TRUE)
}

strata_exact <- function(data, by, call = rlang::caller_env()) {
  if (!length(by)) {
    abort_mkt("bad_argument", c(
      "{.code method = \"exact\"} needs categorical columns in {.arg by}.",
      i = "For example {.code stratify(units, by = ~ region, method = \"exact\")}."
    ), call = call)
  }
  strata_crossing(data, by)
}

strata_quantile <- function(data, by, size, bins, call = rlang::caller_env()) {
  if (!is.character(size) || length(size) != 1L) {
    abort_mkt("bad_argument", c(
      "{.code method = \"quantile\"} needs {.arg size}, the name of a numeric size column.",
      i = "For example {.code stratify(units, size = \"population\", bins = 3)}."
    ), call = call)
  }
  check_columns(data, size, "size", call = call)
  x <- data[[size]]
  if (!is.numeric(x)) {
    abort_mkt("non_numeric", c(
      "The size column {.field {size}} must be numeric.",
      x = "It is of class {.cls {class(x)}}.",
      i = "Use a categorical column in {.arg by} with {.code method = \"exact\"} instead."
    ), call = call)
  }
  if (anyNA(x)) {
    abort_mkt("missing_values", c(
      "The size column {.field {size}} has {sum(is.na(x))} missing value{?s}.",
      i = "Impute the size or drop those clusters first."
    ), call = call)
  }
  group <- strata_crossing(data, by)
  bin <- integer(length(x))
  for (g in levels(group)) {
    rows <- which(group == g)
    br <- unique(stats::quantile(x[rows], probs = seq(0, 1, length.out = bins + 1L),
                                 names = FALSE, type = 7))
    bin[rows] <- if (length(br) < 2L) 1L else
      as.integer(cut(x[rows], br, include.lowest = TRUE, labels = FALSE))
  }
  q <- paste0("Q", bin)
  lab <- if (length(by)) paste(as.character(group), q, sep = ":") else q
  lev <- if (length(by)) {
    as.vector(t(outer(levels(group), paste0("Q", seq_len(bins)), paste, sep = ":")))
  } else {
    paste0("Q", seq_len(bins))
  }
  factor(lab, levels = lev)
}

strata_matched <- function(data, covariates, block_size, call = rlang::caller_env()) {
  if (is.null(covariates)) {
    abort_mkt("bad_argument", c(
      "{.code method = \"matched\"} needs {.arg covariates}, a one-sided formula of numeric columns.",
      i = "For example {.code stratify(units, method = \"matched\", covariates = ~ pre_sales + population)}."
    ), call = call)
  }
  tiers <- design_tiers(covariates, "mahalanobis", call = call)
  check_columns(data, all.vars(covariates), "covariates", call = call)
  X <- design_covariates(data, tiers, call = call)$X
  D <- mahalanobis_matrix(X)
  M <- nrow(X)
  block <- rep(NA_integer_, M)
  n_blocks <- M %/% block_size
  diag(D) <- Inf
  # Walking all pairs once in order of distance finds each closest remaining
  # pair without rescanning the distance matrix for every block.
  upper <- which(upper.tri(D))
  upper <- upper[order(D[upper])]
  b <- 0L
  for (k in upper) {
    if (b == n_blocks) break
    members <- c((k - 1L) %% M + 1L, (k - 1L) %/% M + 1L)
    if (!all(is.na(block[members]))) next
    while (length(members) < block_size) {
      free <- setdiff(which(is.na(block)), members)
      score <- rowMeans(D[free, members, drop = FALSE])
      members <- c(members, free[which.min(score)])
    }
    b <- b + 1L
    block[members] <- b
  }
  for (j in which(is.na(block))) {
    score <- vapply(seq_len(n_blocks), function(b) mean(D[j, block == b & !is.na(block)]),
                    numeric(1))
    block[j] <- which.min(score)
  }
  # Blocks are numbered by their first row, so labels follow the data order.
  relabel <- match(block, unique(block))
  width <- nchar(n_blocks)
  factor(sprintf("B%0*d", width, relabel), levels = sprintf("B%0*d", width, seq_len(n_blocks)))
}

# Pairwise Mahalanobis distances under the pooled covariance of X; a
# pseudo-inverse keeps collinear covariates from failing the match.
mahalanobis_matrix <- function(X) {
  S <- stats::cov(X)
  e <- eigen(S, symmetric = TRUE)
  keep <- e$values > max(e$values) * 1e-10
  W <- e$vectors[, keep, drop = FALSE] %*% diag(1 / sqrt(e$values[keep]), sum(keep))
  Z <- X %*% W
  as.matrix(stats::dist(Z))
}
