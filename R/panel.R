#' Build the validated panel that every panel estimator consumes
#'
#' `mkt_panel()` reads a long data frame (one row per unit and period) with
#' the package's one formula grammar, checks it once, and returns the unit by
#' time matrices that the estimators need. Every check of user data happens
#' here, with a classed error that names the column and says what to do.
#' Besides the formula's columns, the panel carries the other columns an
#' estimator may need (the standard-error cluster, weights and any extra
#' column), on the same grid; every estimator accepts a panel in place of
#' its formula, so data that are used several times are read and checked
#' once.
#'
#' @section Formula grammar:
#' `outcome ~ treatment + covariates | unit + time`, for example
#' `sales ~ promo + price | store + week`. The first term after `~` is the
#' treatment and the others are covariates; write `sales ~ 0 | store + week`
#' (or `~ 1 |`) for a panel without treatment, and `sales ~ 0 + price | store +
#' week` for covariates without a treatment. The outcome, treatment and
#' covariates may be expressions of columns (`log(sales)`); unit and time must
#' be column names.
#'
#' @section Missing data policy:
#' Unbalanced panels are accepted. Rows with a missing unit or time, and rows
#' with a missing outcome, are dropped and listed in `$dropped` with the
#' reason; the cell then counts as missing (`$observed` is `FALSE`, `Y` and `D`
#' are `NA`). A dropped row with a missing outcome but a known treatment still
#' counts when the unit's first treated period (`$cohort`) is found, so a
#' missing outcome never shifts a cohort. A missing treatment on a row with an
#' outcome is an error: the package will not guess who was treated. Missing
#' covariate values are kept as `NA` in `X`; infinite values of the outcome,
#' treatment or covariates are an error. The cluster and weights must be
#' known on every observed cell.
#'
#' @param formula A formula `outcome ~ treatment + covariates | unit + time`;
#'   see Formula grammar.
#' @param data A long data frame, tibble or data.table with one row per unit
#'   and period.
#' @param cluster Optional name of the column of standard-error clusters
#'   (for example a market or state).
#' @param weights Optional name (or expression, as a string) of a column of
#'   non-negative observation weights.
#' @param extra Optional names of further columns carried on the grid (in
#'   `$extra`), such as predictors of a synthetic control.
#' @param ... Must be empty.
#' @return An object of class `mkt_panel`, a list with
#'   * `units`, `times`: sorted unique unit labels and periods (periods keep
#'     their class, such as `Date`);
#'   * `Y`, `D`: N x T outcome and treatment matrices (`NA` where the cell is
#'     missing; `D` is `NULL` without treatment);
#'   * `X`: a named list of N x T covariate matrices;
#'   * `observed`: N x T logical matrix of observed cells;
#'   * `cohort`: each unit's first treated period (`NA` = never treated), and
#'     `cohort_index`, the same as a position in `times`; `cohort_known` is
#'     `FALSE` for a unit whose period just before its first treated one is
#'     missing, so that it may have adopted earlier than `cohort` says;
#'   * `cluster`: `NULL`, or an N x T integer matrix of cluster codes whose
#'     labels are `cluster_levels`;
#'   * `weights`: `NULL`, or an N x T matrix of weights;
#'   * `extra`: a named list of N x T matrices of the `extra` columns;
#'   * `balanced`: `TRUE` when every cell is observed;
#'   * `dropped`: a data frame of the dropped rows (`row` is the row number in
#'     `data`) with a `reason` column;
#'   * `vars`: the names of the outcome, treatment, covariates, unit, time,
#'     cluster, weights and extra columns;
#'   * `treatment_type`: `"binary"`, `"continuous"` or `"none"`;
#'   * `absorbing`: `TRUE` when no unit leaves treatment once treated (`NA`
#'     without treatment);
#'   * `formula` and `n_rows`: the formula given and the number of rows read.
#' @seealso [plot_status()], [tidy()][tidy.mkt_panel].
#' @examples
#' set.seed(1)
#' d <- expand.grid(store = paste0("s", 1:4), week = 1:6)
#' d$promo <- as.integer(d$store %in% c("s1", "s2") & d$week >= 4)
#' d$sales <- 100 + 5 * d$promo + rnorm(nrow(d))
#' d$region <- ifelse(d$store %in% c("s1", "s3"), "north", "south")
#' p <- mkt_panel(sales ~ promo | store + week, d, cluster = "region")
#' p
#' p$cohort
#' head(tidy(p, "status"))
#' @export
mkt_panel <- function(formula, data, cluster = NULL, weights = NULL, extra = NULL, ...) {
  check_dots(...)
  spec <- parse_panel_formula(formula)
  if (!is.data.frame(data)) check_data_frame(data)
  side <- panel_side_names(cluster, weights, extra)
  check_columns(data, spec$columns, "formula")
  for (arg in names(side)) check_columns(data, side[[arg]], arg)
  n <- nrow(data)

  unit <- panel_column(data, spec$unit, "unit")
  time <- panel_column(data, spec$time, "time")
  check_time_sortable(time, spec$time)
  y <- panel_eval(spec$outcome, data, spec$env, "outcome")
  d <- if (is.null(spec$treatment)) NULL else
    panel_eval(spec$treatment, data, spec$env, "treatment")
  X <- lapply(stats::setNames(spec$covariates, spec$covariates), function(v)
    panel_eval(v, data, spec$env, "covariate"))

  on_grid <- !(is.na(unit) | is.na(time))
  keep <- on_grid & !is.na(y)
  all_kept <- all(keep)
  # A panel without one observed outcome has nothing for any estimator: say
  # so here rather than let each fail on empty matrices.
  if (!any(keep)) {
    abort_mkt("missing_values", c(
      "The outcome {.field {spec$outcome}} is missing on every row (or its unit or time is).",
      i = "Check the outcome column and the {.arg data} passed."
    ))
  }
  if (any(is.infinite(y))) {
    bad <- which(keep & is.infinite(y))
    abort_mkt("non_finite", c(
      "The outcome {.field {spec$outcome}} has {length(bad)} infinite value{?s}.",
      x = "First at {cell_labels(unit, time, bad)}.",
      i = "Replace them with {.code NA} (the cell is then treated as missing) or fix the data."
    ))
  }
  for (v in names(X)) {
    if (any(is.infinite(X[[v]][keep]))) {
      bad <- which(keep & is.infinite(X[[v]]))
      abort_mkt("non_finite", c(
        "The covariate {.field {v}} has {length(bad)} infinite value{?s}.",
        x = "First at {cell_labels(unit, time, bad)}.",
        i = "Replace them with {.code NA} (a missing covariate) or fix the data."
      ))
    }
  }
  if (!is.null(d) && any(is.infinite(if (all_kept) d else d[keep]))) {
    bad <- which(keep & is.infinite(d))
    abort_mkt("non_finite", c(
      "The treatment {.field {spec$treatment}} has {length(bad)} infinite value{?s}.",
      x = "First at {cell_labels(unit, time, bad)}.",
      i = "Fix the data: a dose must be a finite number."
    ))
  }
  for (v in names(X)) check_regressor_scale(X[[v]][keep], v, "covariate")
  if (!is.null(d)) check_regressor_scale(d[keep], spec$treatment, "treatment")
  if (is.numeric(time) && any(is.infinite(time[on_grid]))) {
    bad <- which(on_grid & is.infinite(time))
    abort_mkt("non_finite", c(
      "The time column {.field {spec$time}} has {length(bad)} infinite value{?s}.",
      x = "First at {cell_labels(unit, time, bad)}.",
      i = "Periods must be finite numbers or dates; fix or drop those rows."
    ))
  }
  if (!is.null(d) && anyNA(if (all_kept) d else d[keep])) {
    bad <- which(keep & is.na(d))
    abort_mkt("missing_values", c(
      "The treatment {.field {spec$treatment}} is missing on {length(bad)} row{?s} with an observed outcome.",
      x = "For example {cell_labels(unit, time, bad)}.",
      i = "Fill in the treatment (0 for untreated cells) or drop those rows before calling {.fn mkt_panel}."
    ))
  }

  # Labels come from the rows on the grid: a unit seen only on rows without
  # a period is not part of the panel.
  uc <- panel_codes(if (all(on_grid)) unit else replace(unit, !on_grid, NA))
  tc <- panel_codes(if (all(on_grid)) time else replace(time, !on_grid, NA))
  units <- uc$labels
  times <- tc$labels
  check_distinct_labels(units, spec$unit, "unit")
  check_distinct_labels(times, spec$time, "time")
  N <- length(units)
  Tn <- length(times)
  if (N < 2L) {
    abort_mkt("too_few_units", c(
      "The panel has {N} unit{?s} in {.field {spec$unit}}; at least 2 are needed.",
      i = "Check that {.field {spec$unit}} is the unit column and that rows were not all dropped."
    ))
  }
  if (Tn < 2L) {
    abort_mkt("too_few_periods", c(
      "The panel has {Tn} period{?s} in {.field {spec$time}}; at least 2 are needed.",
      i = "Check that {.field {spec$time}} is the time column, or use a cross-sectional design function such as {.fn rerandomize}."
    ))
  }
  # The outcome, treatment, covariate and side matrices, and the observed
  # mask: refuse a grid too large to hold before allocating it.
  n_matrices <- 2 + !is.null(d) + length(X) + length(side$cluster) + length(side$weights) +
    length(side$extra)
  check_memory(8 * as.double(N) * Tn * n_matrices,
               sprintf("A panel of %s units x %s periods", format(N, big.mark = ","),
                       format(Tn, big.mark = ",")),
               "Check that unit and time are the right columns, or aggregate the periods.")
  # Position of each row's cell in the column-major N x T matrices.
  cell <- if (as.double(N) * Tn < .Machine$integer.max) {
    uc$codes + (tc$codes - 1L) * N
  } else {
    uc$codes + (tc$codes - 1) * N
  }
  check_unique_cells(cell, on_grid, N * Tn, unit, time, spec)

  unit_names <- as.character(units)
  time_names <- as.character(times)
  rows <- if (all_kept) NULL else which(keep)
  fill <- function(v, na = NA_real_) {
    m <- rep(na, N * Tn)
    if (is.null(rows) || length(v) == 1L) {
      m[if (is.null(rows)) cell else cell[rows]] <- v
    } else {
      m[cell[rows]] <- v[rows]
    }
    dim(m) <- c(N, Tn)
    dimnames(m) <- list(unit_names, time_names)
    m
  }
  observed <- fill(TRUE, na = FALSE)
  Y <- fill(as.numeric(y))
  D <- if (is.null(d)) NULL else fill(as.numeric(d))
  Xm <- lapply(X, function(v) fill(as.numeric(v)))

  treatment_type <- if (is.null(d)) "none" else {
    dk <- if (all_kept) d else d[keep]
    if (all(dk == 0 | dk == 1)) "binary" else "continuous"
  }
  first <- NULL
  if (!is.null(d)) {
    # Cohorts and absorption use every grid row with a known treatment, so a
    # dropped outcome does not move a unit's first treated period.
    Dall <- if (all_kept) D else {
      known <- which(on_grid & !is.na(d))
      m <- rep(NA_real_, N * Tn)
      m[cell[known]] <- as.numeric(d[known])
      dim(m) <- c(N, Tn)
      m
    }
    on <- !is.na(Dall) & Dall != 0
    first <- max.col(on, ties.method = "first")
    first[rowSums(on) == 0] <- NA_integer_
    after <- col(on) >= first
    absorbing <- !any(after & !is.na(Dall) & !on, na.rm = TRUE)
    # A unit's first treated period is known only when the period before it
    # was seen untreated: with that row absent (or its treatment missing) the
    # unit may have adopted earlier.
    before <- cbind(seq_len(N), pmax(first - 1L, 1L))
    cohort_known <- is.na(first) | first == 1L | !is.na(Dall[before])
  } else {
    first <- rep(NA_integer_, N)
    absorbing <- NA
    cohort_known <- rep(TRUE, N)
  }
  cohort <- times[first]
  if (is.factor(cohort)) cohort <- as.character(cohort)
  names(cohort) <- unit_names
  cohort_index <- stats::setNames(as.integer(first), unit_names)
  names(cohort_known) <- unit_names

  side_values <- panel_side_values(data, side, spec, fill, keep, unit, time)

  dropped <- panel_dropped(n, on_grid, keep, unit, time, spec)
  structure(list(
    formula = formula,
    units = units,
    times = times,
    Y = Y,
    D = D,
    X = Xm,
    observed = observed,
    cohort = cohort,
    cohort_index = cohort_index,
    cohort_known = cohort_known,
    cluster = side_values$cluster,
    cluster_levels = side_values$cluster_levels,
    weights = side_values$weights,
    extra = side_values$extra,
    balanced = all(observed),
    dropped = dropped,
    vars = list(outcome = spec$outcome, treatment = spec$treatment,
                covariates = spec$covariates, unit = spec$unit, time = spec$time,
                cluster = side$cluster, weights = side$weights, extra = side$extra),
    treatment_type = treatment_type,
    absorbing = absorbing,
    n_rows = n
  ), class = "mkt_panel")
}

# --- building blocks of mkt_panel() -------------------------------------------

# The side columns, each NULL or names of columns.
panel_side_names <- function(cluster, weights, extra, call = rlang::caller_env()) {
  one <- function(x, arg) {
    if (is.null(x)) return(NULL)
    if (!is.character(x) || length(x) != 1L || is.na(x) || !nzchar(x)) {
      abort_mkt("bad_argument", c(
        "{.arg {arg}} must be the name of one column of {.arg data}.",
        x = "You supplied {.obj_type_friendly {x}}."
      ), call = call)
    }
    x
  }
  if (!is.null(extra) && (!is.character(extra) || anyNA(extra) || any(!nzchar(extra)))) {
    abort_mkt("bad_argument", c(
      "{.arg extra} must be a character vector of column names.",
      x = "You supplied {.obj_type_friendly {extra}}."
    ), call = call)
  }
  out <- list(cluster = one(cluster, "cluster"), weights = one(weights, "weights"),
              extra = if (length(extra)) unique(extra))
  out[!vapply(out, is.null, logical(1))]
}

# Sorted labels and each row's position among them (factor codes are
# remapped rather than matched as text).
panel_codes <- function(x) {
  if (is.factor(x)) {
    used <- tabulate(x, nlevels(x)) > 0L
    # Factors sort in the order of their levels, as sort() sorts them.
    lev <- levels(x)[used]
    map <- integer(nlevels(x))
    map[used] <- seq_along(lev)
    labels <- if (is.ordered(x)) factor(lev, levels = levels(x), ordered = TRUE) else lev
    return(list(labels = labels, codes = map[as.integer(x)]))
  }
  u <- unique(x)
  u <- u[!is.na(u)]
  # Numbers and dates sort the same by radix, which is much faster; text
  # keeps the locale's collation.
  labels <- if (is.character(u)) sort.int(u) else u[order(u, method = "radix")]
  list(labels = labels, codes = match(x, labels))
}

# Units and periods are labelled by their text (matrix dimnames, cohorts,
# tables): numbers that differ only beyond 15 significant digits (1e15 + 1
# and 1e15 + 2) print alike and would be merged or mismatched downstream.
check_distinct_labels <- function(labels, name, role, call = rlang::caller_env()) {
  if (!is.numeric(labels)) return(invisible(TRUE))
  text <- as.character(labels)
  if (!anyDuplicated(text)) return(invisible(TRUE))
  clash <- labels[text %in% text[duplicated(text)]]
  abort_mkt("bad_data", c(
    "The {role} column {.field {name}} has distinct values that print alike, e.g. {.val {utils::head(format(clash, digits = 17), 2)}}.",
    x = "Values that differ only beyond 15 significant digits cannot label {role}s.",
    i = "Number them instead, for example {.code match({name}, sort(unique({name})))}."
  ), call = call)
}

check_unique_cells <- function(cell, on_grid, n_cells, unit, time, spec,
                               call = rlang::caller_env()) {
  g <- if (all(on_grid)) cell else cell[on_grid]
  dup <- if (n_cells < .Machine$integer.max && n_cells <= 20 * length(g) + 1e6) {
    any(tabulate(g, n_cells) > 1L)
  } else {
    anyDuplicated(g) > 0L
  }
  if (!dup) return(invisible(TRUE))
  rows <- which(on_grid)
  dup_rows <- rows[duplicated(g) | duplicated(g, fromLast = TRUE)]
  n_pairs <- length(unique(cell[dup_rows]))
  abort_mkt("duplicated_rows", c(
    "{n_pairs} ({spec$unit}, {spec$time}) {cli::qty(n_pairs)}pair{?s} appear{?s/} on more than one row.",
    x = "For example {cell_labels(unit, time, dup_rows[!duplicated(cell[dup_rows])])}.",
    i = "A panel has one row per {.field {spec$unit}} and {.field {spec$time}}: aggregate first (sum or mean the outcome within each cell)."
  ), call = call)
}

# Only the outcome is rescaled before the estimators' cross-products and
# solvers (see outcome_scale()); treatments, covariates, instruments and
# weights enter as given. Values beyond 1e100 (or non-zero values all below
# 1e-100) would overflow or underflow those products, so they are refused
# here, once, with the fix, rather than surfacing as a singular system or a
# NaN standard error deep in one estimator.
check_regressor_scale <- function(v, name, role, call = rlang::caller_env()) {
  if (!is.numeric(v)) return(invisible())
  a <- abs(v[is.finite(v) & v != 0])
  if (!length(a)) return(invisible())
  big <- max(a)
  if (big > 1e100 || big < 1e-100) {
    abort_mkt("bad_scale", c(
      "The {role} {.field {name}} has values of order {format(signif(big, 2))}, too {if (big > 1) 'large' else 'small'} for the regressions' cross-products.",
      i = if (role == "weights") {
        "Divide the weights by a constant first: weighted estimates do not depend on their scale."
      } else {
        "Rescale it before the call, for example into millions ({.code {name} / 1e6}); its estimates then refer to the new units."
      }
    ), call = call)
  }
  invisible()
}

# The cluster, weights and extra columns on the grid, checked on the
# observed cells.
panel_side_values <- function(data, side, spec, fill, keep, unit, time,
                              call = rlang::caller_env()) {
  out <- list(cluster = NULL, cluster_levels = NULL, weights = NULL, extra = list())
  if (!is.null(side$cluster)) {
    cl <- panel_column(data, side$cluster, "cluster", call = call)
    if (anyNA(cl[keep])) {
      bad <- which(keep & is.na(cl))
      abort_mkt("bad_cluster", c(
        "The cluster column {.field {side$cluster}} is missing on {length(bad)} observed row{?s}.",
        x = "For example {cell_labels(unit, time, bad)}.",
        i = "Fill it in, or leave {.arg cluster} unset to cluster by unit."
      ), call = call)
    }
    codes <- panel_codes(cl)
    out$cluster <- fill(codes$codes, na = NA_integer_)
    out$cluster_levels <- codes$labels
  }
  if (!is.null(side$weights)) {
    w <- panel_eval(side$weights, data, spec$env, "weights", call = call)
    wk <- w[keep]
    if (anyNA(wk) || any(!is.finite(wk)) || any(wk < 0) || !any(wk > 0)) {
      abort_mkt("bad_weights", c(
        "The weights {.field {side$weights}} must be finite, non-negative and not all zero on observed rows.",
        x = "They have {sum(is.na(wk) | !is.finite(wk))} missing or infinite and {sum(wk < 0, na.rm = TRUE)} negative value{?s}.",
        i = "Fix or drop the rows with missing or negative weights."
      ), call = call)
    }
    check_regressor_scale(wk, side$weights, "weights", call = call)
    out$weights <- fill(as.numeric(w))
  }
  for (v in side$extra) {
    x <- panel_column(data, v, "extra", call = call)
    if (is.factor(x)) x <- as.character(x)
    out$extra[[v]] <- fill(x, na = x[NA_integer_])
  }
  out
}

panel_dropped <- function(n, on_grid, keep, unit, time, spec) {
  rows <- which(!keep)
  reason <- if (length(rows)) {
    ifelse(is.na(unit[rows]), "missing unit",
           ifelse(is.na(time[rows]), "missing time", "missing outcome"))
  } else character()
  # Built directly: data.frame() costs more than the rest of a small panel.
  out <- list(rows, unit[rows], time[rows], reason)
  names(out) <- c("row", spec$unit, spec$time, "reason")
  structure(out, class = "data.frame", row.names = .set_row_names(length(rows)))
}

# The panel an estimator works on: `formula` may be a panel already (then
# `data` is not needed, and the panel must carry the side columns the call
# names), else the panel is built here.
as_panel <- function(formula, data, cluster = NULL, weights = NULL, extra = NULL,
                     call = rlang::caller_env()) {
  if (!inherits(formula, "mkt_panel")) {
    if (missing(data) || is.null(data)) {
      abort_mkt("bad_argument", c(
        "{.arg data} is missing.",
        i = "Give the long data frame after the formula, or pass a {.fn mkt_panel} in place of the formula."
      ), call = call)
    }
    return(mkt_panel(formula, data, cluster = cluster, weights = weights, extra = extra))
  }
  panel <- formula
  if (!missing(data) && !is.null(data)) {
    abort_mkt("bad_argument", c(
      "{.arg data} must be left out when a {.fn mkt_panel} is given.",
      i = "The panel already holds the data."
    ), call = call)
  }
  want <- list(cluster = cluster, weights = weights)
  for (arg in names(want)) {
    if (!is.null(want[[arg]]) && !identical(want[[arg]], panel$vars[[arg]])) {
      abort_mkt("bad_argument", c(
        "The panel does not carry {.arg {arg}} = {.val {want[[arg]]}}.",
        i = "Build it with {.code mkt_panel(..., {arg} = \"{want[[arg]]}\")}."
      ), call = call)
    }
  }
  miss <- setdiff(extra, names(panel$extra))
  if (length(miss)) {
    abort_mkt("bad_argument", c(
      "The panel does not carry the column{?s} {.field {miss}}.",
      i = "Build it with {.code mkt_panel(..., extra = {deparse(unique(c(names(panel$extra), miss)))})}."
    ), call = call)
  }
  panel
}

# One value per unit of a column a method needs constant within units: the
# standard-error cluster (`what = "cluster"`), the weights (`"weights"`) or
# the extra column named `what` (`extra = TRUE` says so for an extra column
# called "cluster" or "weights"). Checked on the observed cells; a column
# that varies within a unit is a classed error.
panel_unit_values <- function(panel, what, extra = FALSE, call = rlang::caller_env()) {
  extra <- extra || !what %in% c("cluster", "weights")
  m <- if (extra) panel$extra[[what]] else switch(what, cluster = panel$cluster,
                                                   weights = panel$weights)
  if (is.null(m)) return(NULL)
  obs <- panel$observed
  first_col <- max.col(obs, ties.method = "first")
  first <- m[cbind(seq_len(nrow(m)), first_col)]
  differs <- obs & (m != first)
  differs[is.na(differs)] <- FALSE
  bad <- which(rowSums(differs) > 0)
  if (length(bad)) {
    col <- if (extra) what else panel$vars[[what]]
    role <- if (extra) "column" else paste(what, "column")
    abort_mkt("varies_within_unit", c(
      "The {role} {.field {col}} varies within {length(bad)} unit{?s}, e.g. {.val {utils::head(as.character(panel$units[bad]), 3)}}.",
      i = "Give one value per unit: units must nest in clusters, and unit weights are constant over time."
    ), call = call)
  }
  if (!extra && what == "cluster") first <- panel$cluster_levels[first]
  stats::setNames(first, as.character(panel$units))
}

# --- formula ---------------------------------------------------------------

panel_grammar_hint <- function() {
  c(i = "The grammar is {.code outcome ~ treatment + covariates | unit + time}, for example {.code sales ~ promo + price | store + week}.",
    i = "Without treatment write {.code sales ~ 0 | store + week}.")
}

# Splits `a + b + c` into its terms in the order written, keeping expressions
# such as log(x) whole.
split_plus <- function(e) {
  if (is.call(e) && identical(e[[1]], as.name("+")) && length(e) == 3L) {
    c(split_plus(e[[2]]), list(e[[3]]))
  } else {
    list(e)
  }
}

parse_panel_formula <- function(formula, call = rlang::caller_env()) {
  bad <- function(why) {
    abort_mkt("bad_formula", c(x = why, panel_grammar_hint()), call = call)
  }
  if (!inherits(formula, "formula")) {
    bad("{.arg formula} must be a formula, not {.obj_type_friendly {formula}}.")
  }
  if (length(formula) != 3L) bad("The formula has no outcome on the left of {.code ~}.")
  rhs <- formula[[3]]
  if (!(is.call(rhs) && identical(rhs[[1]], as.name("|")) && length(rhs) == 3L)) {
    bad("The formula has no {.code | unit + time} part.")
  }
  idx <- split_plus(rhs[[3]])
  if (length(idx) != 2L || !all(vapply(idx, is.name, logical(1)))) {
    bad("After {.code |} give exactly two column names, the unit then the time: {.code | unit + time}.")
  }
  lhs <- formula[[2]]
  if (is.call(lhs) && identical(lhs[[1]], as.name("|"))) bad("The outcome cannot contain {.code |}.")
  terms <- split_plus(rhs[[2]])
  if (any(vapply(terms, function(t) is.call(t) && identical(t[[1]], as.name("|")), logical(1)))) {
    bad("The formula has more than one {.code |}.")
  }
  is_const <- vapply(terms, function(t) is.numeric(t) && length(t) == 1L, logical(1))
  if (any(is_const & !vapply(terms, function(t) identical(t, 0) || identical(t, 1), logical(1)))) {
    bad("The only numbers allowed before {.code |} are {.code 0} or {.code 1}, meaning no treatment.")
  }
  if (any(is_const[-1])) bad("Write {.code 0} or {.code 1} first, in place of the treatment.")
  labels <- vapply(terms, expr_label, character(1))
  treatment <- if (is_const[1]) NULL else labels[1]
  covariates <- labels[-1]
  unit <- as.character(idx[[1]])
  time <- as.character(idx[[2]])
  outcome <- expr_label(lhs)
  used <- c(outcome, treatment, covariates)
  if (anyDuplicated(c(used, unit, time))) {
    bad("Each variable may appear only once; {.val {unique(c(used, unit, time)[duplicated(c(used, unit, time))])}} is repeated.")
  }
  list(
    outcome = outcome, treatment = treatment, covariates = covariates,
    unit = unit, time = time, env = environment(formula),
    columns = unique(c(all.vars(lhs), all.vars(rhs[[2]]), unit, time))
  )
}

# The text of a term: a column name as it is, an expression deparsed.
expr_label <- function(e) {
  if (is.name(e)) as.character(e) else paste(deparse(e, width.cutoff = 500L), collapse = " ")
}

# --- columns ---------------------------------------------------------------

panel_column <- function(data, name, role, call = rlang::caller_env()) {
  x <- data[[name]]
  if (is.list(x) || is.matrix(x)) {
    abort_mkt("bad_column_type", c(
      "The {role} column {.field {name}} must be an atomic vector, not {.cls {class(x)}}.",
      i = "Unnest or convert it before calling {.fn mkt_panel}."
    ), call = call)
  }
  x
}

panel_eval <- function(label, data, env, role, call = rlang::caller_env()) {
  # A plain column name (the usual case) needs no evaluation.
  x <- if (label %in% names(data)) data[[label]] else eval(str2lang(label), data, env)
  if (length(x) != nrow(data) || is.list(x) || is.matrix(x)) {
    abort_mkt("bad_column_type", c(
      "The {role} {.field {label}} must give one value per row of {.arg data}.",
      x = "It gives {length(x)} value{?s} of class {.cls {class(x)}}."
    ), call = call)
  }
  if (is.logical(x)) x <- as.integer(x)
  if (!is.numeric(x)) {
    hint <- switch(role,
      treatment = "Code the treatment as 0/1 (or a numeric dose), for example {.code as.integer(group == \"treated\")}.",
      outcome = "Convert it with {.code as.numeric()} after removing thousands separators or units.",
      weights = "Give weights as numbers, such as population.",
      "Use numeric covariates; turn a category into indicator columns first.")
    abort_mkt("non_numeric", c(
      "The {role} {.field {label}} must be numeric (or logical).",
      x = "It is of class {.cls {class(x)}}.",
      i = hint
    ), call = call)
  }
  x
}

# The treatment checks shared by the estimators of a 0/1 treatment (and,
# with `absorbing`, of one that never switches off), so that each names the
# same problem with the same class; `fn` names the estimator in the message.
require_binary_treatment <- function(panel, fn, absorbing = TRUE, call = rlang::caller_env()) {
  if (panel$treatment_type == "none") {
    abort_mkt("no_treatment", c(
      "The formula has no treatment.",
      i = "Give the 0/1 treatment first after {.code ~}: {.code y ~ treated | unit + time}."
    ), call = call)
  }
  if (panel$treatment_type != "binary") {
    abort_mkt("non_binary_treatment", c(
      "{.fn {fn}} needs a 0/1 treatment; {.field {panel$vars$treatment}} is {panel$treatment_type}.",
      i = "Code treated unit-periods as 1 and all others as 0; for a dose see {.fn dose_response}."
    ), call = call)
  }
  if (absorbing && !isTRUE(panel$absorbing)) {
    abort_mkt("treatment_switches_off", c(
      "The treatment {.field {panel$vars$treatment}} switches off for some units.",
      x = "{.fn {fn}} needs an absorbing treatment: once treated, always treated.",
      i = "Recode it as treated from the first treated period on, or use {.fn counterfactual}, which imputes with reversals."
    ), call = call)
  }
  invisible(panel)
}

# An outcome that is the same number everywhere carries no information on
# any effect: its estimate is 0 with a standard error of 0, and every test
# statistic 0/0. Refused once, with one class, by the estimators that would
# otherwise report NaN statistics.
require_varying_outcome <- function(y, name, call = rlang::caller_env()) {
  y <- y[!is.na(y)]
  if (length(y) && all(y == y[1])) {
    abort_mkt("no_variation", c(
      "The outcome {.field {name}} is {format(y[1])} in every observed cell, so there is no effect to estimate and no standard error.",
      i = "Check the outcome column (a join or a filter may have emptied it)."
    ), call = call)
  }
  invisible(y)
}

check_time_sortable <- function(time, name, call = rlang::caller_env()) {
  ok <- (is.numeric(time) && !is.complex(time)) || inherits(time, c("Date", "POSIXt")) ||
    is.ordered(time)
  if (!ok) {
    abort_mkt("time_not_sortable", c(
      "The time column {.field {name}} must be sortable: numeric, {.cls Date}, {.cls POSIXct} or an ordered factor.",
      x = "It is of class {.cls {class(time)}}, whose order may not be the calendar order (\"week10\" sorts before \"week2\").",
      i = "Convert it, for example {.code as.Date(week)} or {.code as.integer(sub(\"week\", \"\", week))}, or {.code factor(week, levels = ..., ordered = TRUE)}."
    ), call = call)
  }
  invisible(TRUE)
}

cell_labels <- function(unit, time, rows, n = 3L) {
  rows <- utils::head(rows, n)
  paste0("(", as.character(unit[rows]), ", ", as.character(time[rows]), ")",
         collapse = ", ")
}

# --- methods ---------------------------------------------------------------

#' @export
print.mkt_panel <- function(x, ...) {
  if (!called_from_package(parent.frame())) check_dots(...)
  N <- length(x$units)
  Tn <- length(x$times)
  n_miss <- sum(!x$observed)
  num <- function(v) format(v, big.mark = ",", scientific = FALSE, trim = TRUE)
  # Long lines (many covariates, long labels) wrap under their field.
  line <- function(text, indent = 14L) {
    if (nchar(text) > 80L) {
      # The label ("  cohorts:    ") is kept as it is; the rest wraps under it.
      label <- regmatches(text, regexpr("^ *[^ ]*: +|^ *", text))
      rest <- strwrap(substring(text, nchar(label) + 1L), width = 80 - nchar(label))
      text <- c(paste0(label, rest[1]), paste0(strrep(" ", indent), rest[-1]))
    }
    cat(text, sep = "\n")
  }
  line(sprintf("<mkt_panel> %s units x %s periods (%s to %s), %s", num(N), num(Tn),
               format(x$times[1]), format(x$times[Tn]),
               if (x$balanced) "balanced" else
                 sprintf("unbalanced: %s of %s cells missing", num(n_miss), num(N * Tn))),
       indent = 2L)
  cat(sprintf("  outcome:    %s\n", x$vars$outcome))
  if (x$treatment_type == "none") {
    cat("  treatment:  none\n")
  } else {
    cat(sprintf("  treatment:  %s (%s, %s)\n", x$vars$treatment, x$treatment_type,
                if (isTRUE(x$absorbing)) "absorbing" else "units switch off"))
    n_never <- sum(is.na(x$cohort))
    n_coh <- length(unique(x$cohort[!is.na(x$cohort)]))
    n_unsure <- sum(!x$cohort_known)
    line(sprintf("  cohorts:    %d (treated units %d, never treated %d)%s",
                 n_coh, N - n_never, n_never,
                 if (n_unsure) sprintf("; %d with an uncertain first period", n_unsure) else ""))
  }
  if (length(x$vars$covariates)) {
    line(sprintf("  covariates: %s", paste(x$vars$covariates, collapse = ", ")))
  }
  cat(sprintf("  unit: %s, time: %s\n", x$vars$unit, x$vars$time))
  side <- c(if (!is.null(x$cluster)) sprintf("cluster: %s (%d)", x$vars$cluster,
                                             length(x$cluster_levels)),
            if (!is.null(x$weights)) sprintf("weights: %s", x$vars$weights),
            if (length(x$extra)) sprintf("extra: %s", paste(names(x$extra), collapse = ", ")))
  if (length(side)) line(sprintf("  %s", paste(side, collapse = "; ")), indent = 4L)
  if (nrow(x$dropped)) {
    tab <- table(x$dropped$reason)
    line(sprintf("  dropped rows: %s",
                 paste0(names(tab), " (", as.integer(tab), ")", collapse = ", ")), indent = 16L)
  }
  invisible(x)
}

#' Summarise a panel: cohorts, missing cells and dropped rows
#'
#' @param object A [mkt_panel()] object.
#' @param ... Must be empty.
#' @return An object of class `summary.mkt_panel` with `dims`, `cohorts` (from
#'   `tidy(object, "cohorts")`), `missing_by_unit`, `missing_by_time` and
#'   `dropped` (a data frame of dropped rows by `reason`).
#' @examples
#' d <- expand.grid(unit = 1:3, time = 1:4)
#' d$y <- rnorm(12)
#' d$y[2] <- NA
#' summary(mkt_panel(y ~ 0 | unit + time, d))
#' @export
summary.mkt_panel <- function(object, ...) {
  if (!called_from_package(parent.frame())) check_dots(...)
  miss_u <- rowSums(!object$observed)
  miss_t <- colSums(!object$observed)
  structure(list(
    dims = c(units = length(object$units), periods = length(object$times),
             cells = length(object$observed), observed = sum(object$observed),
             rows = object$n_rows),
    balanced = object$balanced,
    treatment_type = object$treatment_type,
    absorbing = object$absorbing,
    cohorts = tidy.mkt_panel(object, "cohorts"),
    missing_by_unit = miss_u[miss_u > 0],
    missing_by_time = miss_t[miss_t > 0],
    dropped = dropped_by_reason(object$dropped)
  ), class = "summary.mkt_panel")
}

# Counts of dropped rows, one row per reason.
dropped_by_reason <- function(dropped) {
  counts <- table(factor(dropped$reason))
  data.frame(reason = names(counts), rows = as.integer(counts), stringsAsFactors = FALSE)
}

#' @export
print.summary.mkt_panel <- function(x, ...) {
  if (!called_from_package(parent.frame())) check_dots(...)
  d <- x$dims
  num <- function(v) format(v, big.mark = ",", scientific = FALSE, trim = TRUE)
  cat(strwrap(sprintf("Panel of %s units x %s periods: %s of %s cells observed (%s), from %s rows.",
                      num(d[["units"]]), num(d[["periods"]]), num(d[["observed"]]),
                      num(d[["cells"]]), if (x$balanced) "balanced" else "unbalanced",
                      num(d[["rows"]])), width = 80, exdent = 2), sep = "\n")
  if (x$treatment_type != "none") {
    cat(sprintf("Treatment: %s, %s.\n", x$treatment_type,
                if (isTRUE(x$absorbing)) "absorbing" else "not absorbing"))
    cat("\nCohorts (first treated period; NA = never treated):\n")
    n_coh <- nrow(x$cohorts)
    print.data.frame(utils::head(x$cohorts, 12L), row.names = FALSE)
    if (n_coh > 12L) {
      cat(sprintf("# %d more rows: tidy(panel, \"cohorts\") returns all %d\n",
                  n_coh - 12L, n_coh))
    }
  }
  if (length(x$missing_by_unit)) {
    cat(sprintf("\nUnits with missing cells: %d (most: %s with %d)\n",
                length(x$missing_by_unit), names(which.max(x$missing_by_unit)),
                max(x$missing_by_unit)))
  }
  if (nrow(x$dropped)) {
    cat("\nDropped rows by reason:\n")
    print.data.frame(x$dropped, row.names = FALSE)
  }
  invisible(x)
}

#' Tidy a panel: treatment status by cell, or cohorts
#'
#' @param x A [mkt_panel()] object.
#' @param what `"status"`: one row per unit and period with `unit`, `time`,
#'   `outcome`, `treatment`, `observed`, `cohort` and `status` (`"treated"`,
#'   `"not yet treated"`, `"never treated"`, `"no longer treated"` when
#'   treatment is not absorbing, `"missing"`; `"observed"` when the panel has
#'   no treatment). `"cohorts"`: one row per cohort with `cohort` (`NA` for
#'   never treated) and `n_units`.
#' @param ... Must be empty.
#' @return A data frame. Rows of `"status"` are ordered by unit, then time.
#' @examples
#' d <- expand.grid(unit = c("a", "b", "c"), time = 1:4)
#' d$d <- as.integer(d$unit == "a" & d$time >= 3)
#' d$y <- rnorm(12)
#' p <- mkt_panel(y ~ d | unit + time, d)
#' tidy(p, "cohorts")
#' head(tidy(p, "status"))
#' @export
tidy.mkt_panel <- function(x, what = c("status", "cohorts"), ...) {
  if (!called_from_package(parent.frame())) check_dots(...)
  what <- check_choice(what)
  N <- length(x$units)
  Tn <- length(x$times)
  if (what == "cohorts") {
    key <- ifelse(is.na(x$cohort), NA_character_, as.character(x$cohort))
    counts <- table(factor(key, levels = as.character(x$times)), useNA = "no")
    counts <- counts[counts > 0]
    out <- data.frame(cohort = x$times[match(names(counts), as.character(x$times))],
                      n_units = as.integer(counts), stringsAsFactors = FALSE)
    if (any(is.na(key))) {
      out <- rbind(out, data.frame(cohort = x$times[NA_integer_],
                                   n_units = sum(is.na(key))))
    }
    if (is.factor(out$cohort)) out$cohort <- as.character(out$cohort)
    return(out)
  }
  ui <- rep(seq_len(N), each = Tn)
  ti <- rep(seq_len(Tn), times = N)
  cell <- cbind(ui, ti)
  obs <- x$observed[cell]
  treat <- if (is.null(x$D)) rep(NA_real_, N * Tn) else x$D[cell]
  cohort_idx <- match(as.character(x$cohort), as.character(x$times))[ui]
  status <- if (x$treatment_type == "none") {
    ifelse(obs, "observed", "missing")
  } else {
    ifelse(!obs, "missing",
      ifelse(treat != 0, "treated",
        ifelse(is.na(cohort_idx), "never treated",
          ifelse(ti < cohort_idx, "not yet treated", "no longer treated"))))
  }
  out <- data.frame(unit = x$units[ui], time = x$times[ti],
                    outcome = x$Y[cell], treatment = treat, observed = obs,
                    cohort = x$cohort[ui], status = status,
                    stringsAsFactors = FALSE, row.names = NULL)
  out
}

#' @export
as.data.frame.mkt_panel <- function(x, row.names = NULL, optional = FALSE, ...) {
  N <- length(x$units)
  Tn <- length(x$times)
  ui <- rep(seq_len(N), each = Tn)
  ti <- rep(seq_len(Tn), times = N)
  cell <- cbind(ui, ti)
  keep <- x$observed[cell]
  cell <- cell[keep, , drop = FALSE]
  out <- data.frame(x$units[cell[, 1]], x$times[cell[, 2]], stringsAsFactors = FALSE)
  names(out) <- c(x$vars$unit, x$vars$time)
  out[[x$vars$outcome]] <- x$Y[cell]
  if (!is.null(x$D)) out[[x$vars$treatment]] <- x$D[cell]
  for (v in names(x$X)) out[[v]] <- x$X[[v]][cell]
  rownames(out) <- row.names
  out
}

#' Plot treatment status by unit and period
#'
#' A heatmap of units (rows) by periods (columns) coloured by treatment status:
#' treated, not yet treated, never treated, or missing. A continuous treatment
#' is drawn as a gradient, with missing cells in grey. Units are ordered by
#' cohort (earliest first, never treated last), then by label. The plot is
#' drawn from `tidy(panel, "status")`, so the same data can be restyled.
#'
#' @param x A [mkt_panel()] object, or a panel formula (then give `data`).
#' @param data The data when `x` is a formula.
#' @param ... Must be empty.
#' @return A ggplot object.
#' @examples
#' d <- expand.grid(unit = paste0("u", 1:5), time = 1:8)
#' d$d <- as.integer((d$unit == "u1" & d$time >= 3) | (d$unit == "u2" & d$time >= 6))
#' d$y <- rnorm(nrow(d))
#' plot_status(y ~ d | unit + time, d)
#' @export
plot_status <- function(x, data = NULL, ...) {
  check_dots(...)
  if (inherits(x, "formula")) {
    if (is.null(data)) {
      abort_mkt("bad_argument", c(
        "{.arg data} is needed when {.arg x} is a formula.",
        i = "Call {.code plot_status(y ~ d | unit + time, data)} or pass a {.fn mkt_panel}."
      ))
    }
    x <- mkt_panel(x, data)
  }
  if (!inherits(x, "mkt_panel")) {
    abort_mkt("bad_argument", c(
      "{.arg x} must be a {.fn mkt_panel} object or a panel formula.",
      x = "You supplied {.obj_type_friendly {x}}."
    ))
  }
  df <- tidy.mkt_panel(x, "status")
  coh <- match(as.character(x$cohort), as.character(x$times))
  coh[is.na(coh)] <- length(x$times) + 1L
  unit_order <- as.character(x$units)[order(coh, seq_along(x$units))]
  # Reversed so that the earliest cohort sits at the top of the plot.
  df$unit <- factor(as.character(df$unit), levels = rev(unit_order))
  if (is.factor(df$time)) df$time <- factor(as.character(df$time), levels = levels(df$time))

  # Tile borders would swamp the fill colours on large panels.
  large <- length(x$units) * length(x$times) > 2000
  border <- if (large) NA else "grey60"
  p <- ggplot2::ggplot(df, ggplot2::aes(x = .data$time, y = .data$unit))
  if (x$treatment_type == "continuous") {
    p <- p + ggplot2::geom_tile(ggplot2::aes(fill = .data$treatment),
                                colour = if (large) NA else "white") +
      ggplot2::scale_fill_gradient(low = "#deebf7", high = "#08519c", na.value = "grey85",
                                   name = x$vars$treatment)
  } else {
    pal <- c("treated" = mkt_colours[["treated"]], "not yet treated" = mkt_colours[["band"]],
             "no longer treated" = "#fdae6b", "never treated" = "#bdbdbd",
             "observed" = "#9ecae1", "missing" = "white")
    present <- names(pal)[names(pal) %in% df$status]
    df$status <- factor(df$status, levels = present)
    p <- ggplot2::ggplot(df, ggplot2::aes(x = .data$time, y = .data$unit)) +
      ggplot2::geom_tile(ggplot2::aes(fill = .data$status), colour = border) +
      ggplot2::scale_fill_manual(values = pal[present], name = "status", drop = FALSE)
  }
  # On large panels every label cannot be read: at most 30 unit labels
  # (evenly spaced, first and last included) and 20 period labels.
  n_units <- nlevels(df$unit)
  shown <- thin_labels(levels(df$unit), 30L)
  p <- p + ggplot2::scale_y_discrete(breaks = shown)
  if (is.factor(df$time)) {
    p <- p + ggplot2::scale_x_discrete(breaks = thin_labels(levels(df$time), 20L))
  }
  p + ggplot2::labs(x = x$vars$time, y = x$vars$unit, title = "Treatment status",
                    caption = if (length(shown) < n_units)
                      sprintf("%d of %d %s labels shown", length(shown), n_units, x$vars$unit)) +
    theme_mkt() +
    ggplot2::theme(panel.grid = ggplot2::element_blank(), legend.position = "right")
}
