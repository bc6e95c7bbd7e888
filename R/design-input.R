# Reading the inputs of design functions: cluster tables for rerandomize()
# and stratify(), and the cross-sectional `outcome ~ treatment` data of
# experiment_effect(), randomization_test(), rem_asymptotic() and
# spillover(), aligned with a design. Every check of those user data happens
# here, once, with a classed error that names the column.

design_ids <- function(data, id, call = rlang::caller_env()) {
  if (is.null(id)) id <- attr(data, "id")
  if (is.null(id)) {
    return(as.character(seq_len(nrow(data))))
  }
  if (!is.character(id) || length(id) != 1L) {
    abort_mkt("bad_argument", "{.arg id} must be the name of one column of {.arg data}.",
              call = call)
  }
  check_columns(data, id, "id", call = call)
  ids <- data[[id]]
  if (anyNA(ids)) {
    abort_mkt("missing_values", c(
      "The id column {.field {id}} has {sum(is.na(ids))} missing value{?s}.",
      i = "Every cluster needs an id; drop or label those rows."
    ), call = call)
  }
  if (anyDuplicated(ids)) {
    dup <- unique(ids[duplicated(ids)])
    abort_mkt("duplicated_rows", c(
      "The id column {.field {id}} has duplicated values: {.val {utils::head(dup, 5)}}.",
      i = "A design needs one row per cluster; aggregate first with {.fn geo_units}."
    ), call = call)
  }
  ids <- as.character(ids)
  attr(ids, "id_name") <- id
  ids
}

# Cluster ids without the attribute that records their column.
plain_ids <- function(ids) {
  attr(ids, "id_name") <- NULL
  ids
}

design_tiers <- function(covariates, criterion, call = rlang::caller_env()) {
  tiers <- if (inherits(covariates, "formula")) list(covariates) else covariates
  ok <- is.list(tiers) && length(tiers) >= 1L &&
    all(vapply(tiers, function(f) inherits(f, "formula") && length(f) == 2L, logical(1)))
  if (!ok) {
    abort_mkt("bad_argument", c(
      "{.arg covariates} must be a one-sided formula such as {.code ~ pop + pre_sales},",
      " " = "or, for tiers, a list of them in order of importance."
    ), call = call)
  }
  if (criterion != "tiers" && length(tiers) > 1L) {
    abort_mkt("bad_argument", c(
      "A list of covariate formulas defines tiers.",
      i = "Use {.code criterion = \"tiers\"} or give one formula."
    ), call = call)
  }
  if (criterion == "tiers" && length(tiers) < 2L) {
    abort_mkt("bad_argument", c(
      "{.code criterion = \"tiers\"} needs at least two tiers of covariates.",
      x = "{.arg covariates} holds one.",
      i = "Give a list of one-sided formulas in order of importance, e.g. {.code list(~ pre_sales, ~ population + region_share)}, with one {.arg accept} per tier.",
      i = "With one set of covariates use {.code criterion = \"mahalanobis\"}."
    ), call = call)
  }
  tiers
}

# Numeric covariate matrix, tier by tier. Constant covariates are dropped with
# a warning; so are covariates that are linear combinations of earlier ones.
design_covariates <- function(data, tiers, call = rlang::caller_env()) {
  cols <- list()
  tier <- integer()
  for (t in seq_along(tiers)) {
    vars <- all.vars(tiers[[t]])
    if (!length(vars)) {
      abort_mkt("bad_argument", "Covariate formula {t} names no column.", call = call)
    }
    check_columns(data, vars, "covariates", call = call)
    terms <- attr(stats::terms(tiers[[t]]), "term.labels")
    for (term in terms) {
      x <- eval(str2lang(term), data, environment(tiers[[t]]))
      if (!is.numeric(x) || is.matrix(x)) {
        abort_mkt("non_numeric", c(
          "Covariate {.field {term}} must be numeric.",
          x = "It is of class {.cls {class(x)}}.",
          i = "Balance on numeric summaries, or stratify on categories with {.fn stratify}."
        ), call = call)
      }
      if (anyNA(x) || any(!is.finite(x))) {
        abort_mkt("missing_values", c(
          "Covariate {.field {term}} has {sum(!is.finite(x))} missing or infinite value{?s}.",
          i = "Impute or drop those clusters before designing."
        ), call = call)
      }
      cols[[term]] <- as.numeric(x)
      tier <- c(tier, t)
    }
  }
  X <- do.call(cbind, cols)
  colnames(X) <- names(cols)
  const <- apply(X, 2, function(v) stats::sd(v) == 0)
  if (any(const)) {
    dropped <- colnames(X)[const]
    warn_mkt("dropped_covariate", c(
      "Dropping constant covariate{?s} {.field {dropped}}.",
      i = "A covariate that never varies carries no balance information."
    ))
    X <- X[, !const, drop = FALSE]
    tier <- tier[!const]
  }
  if (!ncol(X)) {
    abort_mkt("bad_argument", "No usable covariate is left to balance.", call = call)
  }
  keep <- independent_columns(X)
  if (!all(keep)) {
    dropped <- colnames(X)[!keep]
    warn_mkt("dropped_covariate", c(
      "Dropping collinear covariate{?s} {.field {dropped}}.",
      i = "Balance on the earlier covariates already implies balance on linear combinations of them."
    ))
    X <- X[, keep, drop = FALSE]
    tier <- tier[keep]
  }
  list(X = X, tier = tier)
}

independent_columns <- function(X, tol = 1e-9) {
  Xc <- scale(X, center = TRUE, scale = apply(X, 2, stats::sd))
  keep <- logical(ncol(X))
  basis <- NULL
  for (j in seq_len(ncol(X))) {
    v <- Xc[, j]
    if (!is.null(basis)) v <- v - basis %*% crossprod(basis, v)
    nv <- sqrt(sum(v^2))
    if (nv > tol * sqrt(nrow(X))) {
      keep[j] <- TRUE
      basis <- cbind(basis, v / nv)
    }
  }
  keep
}

design_strata <- function(data, strata, call = rlang::caller_env()) {
  if (is.null(strata)) return(factor(rep("all", nrow(data))))
  if (inherits(strata, "mkt_strata")) strata <- strata$stratum
  if (is.character(strata) && length(strata) == 1L && nrow(data) != 1L) {
    check_columns(data, strata, "strata", call = call)
    strata <- data[[strata]]
  }
  if (is.list(strata) || !is.atomic(strata)) {
    abort_mkt("bad_strata", c(
      "{.arg strata} must be a column of labels (character, factor or numbers).",
      x = "It is {.obj_type_friendly {strata}}.",
      i = "Convert a list column first, for example with {.code unlist()}."
    ), call = call)
  }
  if (length(strata) != nrow(data)) {
    abort_mkt("bad_strata", c(
      "{.arg strata} must have one value per row of {.arg data} ({nrow(data)}).",
      x = "It has {length(strata)}."
    ), call = call)
  }
  if (anyNA(strata)) {
    abort_mkt("missing_values", "{.arg strata} has {sum(is.na(strata))} missing value{?s}.",
              call = call)
  }
  droplevels(as.factor(strata))
}

allocate_treated <- function(strata, n, n_treated, prop_treated,
                             call = rlang::caller_env()) {
  sizes <- as.vector(table(strata))
  if (!is.null(n_treated) && !is.null(prop_treated)) {
    abort_mkt("bad_argument", c(
      "Give {.arg n_treated} or {.arg prop_treated}, not both.",
      x = "You supplied {.code n_treated = {format(n_treated)}} and {.code prop_treated = {format(prop_treated)}}.",
      i = "{.arg n_treated} counts treated clusters; {.arg prop_treated} is their share."
    ), call = call)
  }
  if (!is.null(n_treated)) {
    n_treated <- check_count(n_treated, "n_treated", min = 1, max = n - 1, call = call)
    prop <- n_treated / n
  } else {
    prop <- if (is.null(prop_treated)) 0.5 else prop_treated
    if (!is.numeric(prop) || length(prop) != 1L || is.na(prop) || prop <= 0 || prop >= 1) {
      abort_mkt("bad_argument", c(
        "{.arg prop_treated} must be a single number strictly between 0 and 1.",
        x = "You supplied {.val {format(prop)}}."
      ), call = call)
    }
    n_treated <- round(prop * n)
    if (n_treated < 1 || n_treated > n - 1) {
      abort_mkt("bad_argument", "{.arg prop_treated} leaves an empty arm with {n} clusters.",
                call = call)
    }
  }
  # Largest-remainder shares, so the total is exactly n_treated.
  raw <- sizes * n_treated / n
  alloc <- floor(raw)
  left <- n_treated - sum(alloc)
  if (left > 0) alloc[order(raw - alloc, decreasing = TRUE)[seq_len(left)]] <-
    alloc[order(raw - alloc, decreasing = TRUE)[seq_len(left)]] + 1
  out <- as.integer(alloc)
  names(out) <- levels(strata)
  out
}

check_strata_sizes <- function(strata, alloc, min_per_arm, call = rlang::caller_env()) {
  sizes <- as.vector(table(strata))
  bad <- alloc < min_per_arm | (sizes - alloc) < min_per_arm
  if (any(bad)) {
    nm <- levels(strata)[bad]
    abort_mkt("strata_too_small", c(
      "{sum(bad)} strat{?um/a} cannot hold {min_per_arm} treated and {min_per_arm} control cluster{?s}: {.val {utils::head(nm, 8)}}.",
      i = "Sizes: {paste0(utils::head(nm, 8), '=', utils::head(sizes[bad], 8), collapse = ', ')}.",
      i = "Merge small strata, use coarser bins in {.fn stratify}, or lower {.arg min_per_arm}."
    ), strata = nm, call = call)
  }
  invisible(TRUE)
}

effect_formula <- function(formula, call = rlang::caller_env()) {
  ok <- inherits(formula, "formula") && length(formula) == 3L &&
    length(all.vars(formula[[2]])) == 1L && length(all.vars(formula[[3]])) == 1L &&
    is.name(formula[[2]]) && is.name(formula[[3]])
  if (!ok) {
    abort_mkt("bad_formula", c(
      "{.arg formula} must be {.code outcome ~ treatment}, two column names.",
      i = "Covariates go in {.arg covariates}, e.g. {.code covariates = ~ pre_sales}."
    ), call = call)
  }
  list(outcome = as.character(formula[[2]]), treatment = as.character(formula[[3]]))
}

effect_covariates <- function(covariates, call = rlang::caller_env()) {
  if (is.null(covariates)) return(character())
  if (!inherits(covariates, "formula") || length(covariates) != 2L) {
    abort_mkt("bad_argument", c(
      "{.arg covariates} must be a one-sided formula such as {.code ~ pre_sales + pop}."
    ), call = call)
  }
  all.vars(covariates)
}

check_treatment <- function(x, name, call = rlang::caller_env()) {
  if (anyNA(x)) {
    abort_mkt("missing_values", c(
      "Treatment column {.field {name}} has {sum(is.na(x))} missing value{?s}.",
      i = "Every analysed unit was assigned an arm; recover the assignment or drop those rows."
    ), column = name, call = call)
  }
  if (is.logical(x)) x <- as.integer(x)
  if (!is.numeric(x) || !all(x %in% c(0, 1))) {
    bad <- utils::head(unique(x[!(x %in% c(0, 1))]), 5)
    abort_mkt("non_binary_treatment", c(
      "Treatment column {.field {name}} must be 0/1 (or logical).",
      x = "It holds {.val {as.character(bad)}}.",
      i = "Recode it, e.g. {.code data${name} <- as.integer(data${name} == \"treatment\")}."
    ), column = name, call = call)
  }
  if (length(unique(x)) < 2L) {
    abort_mkt("single_arm", c(
      "Treatment column {.field {name}} has only one arm ({unique(x)}).",
      i = "An effect needs both treated and control units."
    ), column = name, call = call)
  }
  as.integer(x)
}

check_numeric_column <- function(data, name, role, positive = FALSE,
                                 call = rlang::caller_env()) {
  x <- data[[name]]
  if (!is.numeric(x)) {
    abort_mkt("non_numeric", c(
      "The {role} column {.field {name}} must be numeric.",
      x = "It is of class {.cls {class(x)}}."
    ), column = name, call = call)
  }
  if (anyNA(x) || any(!is.finite(x))) {
    abort_mkt("missing_values", c(
      "The {role} column {.field {name}} has {sum(!is.finite(x))} missing or infinite value{?s}.",
      i = "Check differential attrition with {.fn experiment_diagnostics} before dropping rows."
    ), column = name, call = call)
  }
  if (positive && any(x <= 0)) {
    abort_mkt("bad_size", c(
      "The {role} column {.field {name}} must be positive.",
      x = "It has {sum(x <= 0)} value{?s} at or below zero."
    ), column = name, call = call)
  }
  as.numeric(x)
}

check_cluster_column <- function(data, name, treat, call = rlang::caller_env()) {
  cl <- data[[name]]
  if (anyNA(cl)) {
    abort_mkt("missing_values", "Cluster column {.field {name}} has {sum(is.na(cl))} missing value{?s}.",
              column = name, call = call)
  }
  varies <- tapply(treat, cl, function(t) length(unique(t)) > 1L)
  if (any(varies)) {
    abort_mkt("treatment_varies_within_cluster", c(
      "Treatment varies within {sum(varies)} cluster{?s} of {.field {name}}: {.val {utils::head(names(varies)[varies], 5)}}.",
      i = "Clusters are the randomized units; each must be wholly treated or wholly control."
    ), column = name, call = call)
  }
  as.character(cl)
}

effect_covariate_matrix <- function(data, covariates, cov_vars,
                                    call = rlang::caller_env()) {
  if (!length(cov_vars)) return(NULL)
  terms <- attr(stats::terms(covariates), "term.labels")
  cols <- lapply(terms, function(term) {
    x <- eval(str2lang(term), data, environment(covariates))
    if (!is.numeric(x) || anyNA(x) || any(!is.finite(x))) {
      abort_mkt("bad_covariate", c(
        "Covariate {.field {term}} must be numeric without missing values.",
        i = "Impute or drop, and recode categories as indicator columns."
      ), column = term, call = call)
    }
    check_regressor_scale(x, term, "covariate", call = call)
    as.numeric(x)
  })
  X <- do.call(cbind, cols)
  colnames(X) <- terms
  X
}

# The column that ties rows to design ids: the design's id column if the data
# has it, else the cluster column, else none (row order).
effect_keys <- function(data, design, cl) {
  if (!is.null(design) && !is.null(design$id_name) && design$id_name %in% names(data)) {
    return(as.character(data[[design$id_name]]))
  }
  cl
}

# Position of each analysis row in the design: by the design's ids when the
# rows carry them (`by_id`), else by row order (one row per designed
# cluster). Every designed cluster must have rows, and no row may name a
# cluster the design does not hold. Shared by align_design() and
# align_design_cells().
design_positions <- function(key, n_rows, design, by_id, call = rlang::caller_env()) {
  n_design <- length(design$ids)
  id_label <- if (is.null(design$id_name)) "id" else design$id_name
  if (by_id) {
    pos <- match(key, design$ids)
    unknown <- unique(key[is.na(pos)])
    if (length(unknown)) {
      abort_mkt("misaligned", c(
        "{length(unknown)} id{?s} in {.arg data} {?is/are} not in the design: {.val {utils::head(unknown, 5)}}.",
        i = "Analyse the clusters that {.fn rerandomize} assigned."
      ), call = call)
    }
    missing_ids <- setdiff(design$ids, key)
    if (length(missing_ids)) {
      abort_mkt("misaligned", c(
        "{length(missing_ids)} designed cluster{?s} {?has/have} no row in {.arg data}: {.val {utils::head(missing_ids, 5)}}.",
        i = "Every randomized cluster must be analysed; check attrition with {.fn experiment_diagnostics}."
      ), call = call)
    }
    return(list(pos = pos, how = "by id"))
  }
  if (n_rows != n_design) {
    abort_mkt("misaligned", c(
      "{.arg data} has {n_rows} rows but the design has {n_design} clusters.",
      i = "Give one row per designed cluster, or keep the design's id column {.field {id_label}} in {.arg data}."
    ), call = call)
  }
  list(pos = seq_len(n_design), how = "by row order")
}

# Position of each analysis row in the design, after checking that the
# treatment column reproduces the drawn assignment.
align_design <- function(units, design, treatment, call = rlang::caller_env()) {
  id_label <- if (is.null(design$id_name)) "id" else design$id_name
  at <- design_positions(units$key, length(units$treat), design,
                         !is.null(units$key) && (!is.null(design$id_name) || !is.null(units$cluster)),
                         call = call)
  pos <- at$pos
  how <- at$how
  wrong <- units$treat != design$treated[pos]
  if (any(wrong)) {
    abort_mkt("misaligned", c(
      "Treatment column {.field {treatment}} disagrees with the design's assignment on {sum(wrong)} row{?s} (matched {how}).",
      i = "Rows must be the design's clusters; if they are sorted differently, keep the id column {.field {id_label}} in {.arg data}."
    ), column = treatment, call = call)
  }
  pos
}

# One outcome per designed cluster, in the design's row order, from data
# `outcome ~ treatment` with one row per cluster whose treatment column
# reproduces the design's assignment. Rows are matched to the design by its
# id column when `data` has it, else by row order.
design_cluster_outcome <- function(formula, data, design, call = rlang::caller_env()) {
  data <- check_data_frame(data, call = call)
  vars <- effect_formula(formula, call = call)
  check_columns(data, vars$outcome, "formula", call = call)
  check_columns(data, vars$treatment, "formula", call = call)
  treat <- check_treatment(data[[vars$treatment]], vars$treatment, call = call)
  y <- check_numeric_column(data, vars$outcome, "outcome", call = call)
  units <- list(y = y, treat = treat, cluster = NULL, key = effect_keys(data, design, NULL))
  pos <- align_design(units, design, vars$treatment, call = call)
  if (anyDuplicated(pos)) {
    dup <- unique(design$ids[pos[duplicated(pos)]])
    abort_mkt("misaligned", c(
      "{length(dup)} designed cluster{?s} {?has/have} several rows in {.arg data}: {.val {utils::head(dup, 5)}}.",
      i = "Give one row per cluster (sum finer rows first), or use {.fn experiment_effect} with {.arg cluster}."
    ), call = call)
  }
  out <- numeric(length(design$treated))
  out[pos] <- y
  list(y = out, vars = c(vars, id = design$id_name), n_rows = nrow(data))
}

# Neighbour inputs (spillover()'s `adjacency`, rerandomize()'s and
# stratify()'s `buffer`) with their radius, checked before
# neighbour_matrix() reads them. Distances given without a radius would be
# read as neighbour weights, so that farther units count more: refused. A
# radius given with anything but distances would be ignored (groups, pairs)
# or make every non-neighbour (0 <= radius) a neighbour: refused too.
# Distances are a dist object, or a square matrix that is symmetric, zero
# on the diagonal, positive off it, not 0/1, and satisfies the triangle
# inequality (which weights decaying with distance break); weights that
# happen to look like that are passed as they are with I(). Returns the
# input without the AsIs class.
check_neighbour_input <- function(adjacency, radius, arg, radius_arg,
                                  call = rlang::caller_env()) {
  as_is <- inherits(adjacency, "AsIs")
  if (as_is) class(adjacency) <- setdiff(class(adjacency), "AsIs")
  if (!is.null(radius)) {
    if (!is.numeric(radius) || length(radius) != 1L || !is.finite(radius) || radius <= 0) {
      abort_mkt("bad_argument", c(
        "{.arg {radius_arg}} must be one positive number.",
        x = "You supplied {.val {format(radius)}}."
      ), call = call)
    }
    matrix_like <- is.matrix(adjacency) || inherits(adjacency, "dist")
    binary <- is.matrix(adjacency) && is.numeric(adjacency) &&
      all(adjacency %in% c(0, 1))
    if (!matrix_like || binary || as_is) {
      abort_mkt("bad_argument", c(
        "{.arg {radius_arg}} applies only when {.arg {arg}} is a matrix of distances.",
        x = if (as_is) "{.arg {arg}} is marked with {.fn I} as weights to use as they are." else
          if (binary) "{.arg {arg}} is a 0/1 adjacency matrix: with a radius every non-neighbour (0) would become a neighbour." else
          "{.arg {arg}} is a group column or a table of neighbour pairs, which has no distances.",
        i = "Leave out {.arg {radius_arg}}, or give distances."
      ), call = call)
    }
    return(adjacency)
  }
  if (!as_is && looks_like_distances(adjacency)) {
    abort_mkt("bad_adjacency", c(
      "{.arg {arg}} looks like a matrix of distances, but {.arg {radius_arg}} is missing.",
      x = "Without {.arg {radius_arg}} its entries would be read as neighbour weights, so that farther units would count more.",
      i = "Give {.arg {radius_arg}}: units within that distance of each other are neighbours, e.g. {.code {radius_arg} = 50}.",
      i = "If these are weights (larger for closer units), pass them as they are with {.code {arg} = I(weights)}."
    ), call = call)
  }
  adjacency
}

# TRUE for a dist object, or a square numeric matrix that is symmetric, zero
# on the diagonal, positive off it, not all 0/1, and satisfies the triangle
# inequality d_ij <= d_ik + d_kj. The inequality is checked through up to 40
# pivots k spread over the units (every k would cost N^3), enough to catch
# weights, which break it for most k.
looks_like_distances <- function(x) {
  if (inherits(x, "dist")) return(TRUE)
  if (!is.matrix(x) || !is.numeric(x) || nrow(x) != ncol(x) || nrow(x) < 3L ||
      anyNA(x) || any(!is.finite(x))) {
    return(FALSE)
  }
  off <- x[row(x) != col(x)]
  if (any(diag(x) != 0) || any(off <= 0) || all(off == 1)) return(FALSE)
  if (!isTRUE(all.equal(x, t(x), check.attributes = FALSE))) return(FALSE)
  n <- nrow(x)
  tol <- 1e-8 * max(off)
  for (k in unique(round(seq(1, n, length.out = min(n, 40L))))) {
    if (any(x > outer(x[, k], x[k, ], "+") + tol)) return(FALSE)
  }
  TRUE
}

# --- long panels given as one row per cluster -----------------------------------

# The columns that make `data` a long panel, several rows per randomized
# unit over time: a unit column (every value on several rows, the treatment
# constant within it, at least three values) and a time column (varying
# within units, its values shared by most units: at least 90% of rows hold a
# value that half the units have). Coarsest units are tried first. Returns
# list(unit, time) or NULL. Columns in `skip` (outcome, treatment,
# covariates, ...) are never taken for either. A store number within
# markets looks like time too, and rows are not clusters then either.
long_panel_columns <- function(data, treat, skip) {
  n <- nrow(data)
  if (n < 4L) return(NULL)
  atomic <- vapply(data, function(v) is.atomic(v) && is.null(dim(v)), logical(1))
  cols <- setdiff(names(data)[atomic], skip)
  codes <- lapply(data[cols], function(v) match(v, unique(v)))
  is_unit <- vapply(cols, function(cn) {
    g <- codes[[cn]]
    n_g <- max(g, 0L)
    if (n_g < 3L || n_g >= n || anyNA(g)) return(FALSE)
    share <- rowsum(treat, g, reorder = FALSE)[, 1] / tabulate(g, n_g)
    all(share == 0 | share == 1)
  }, logical(1))
  units <- cols[is_unit]
  units <- units[order(vapply(codes[units], max, integer(1)))]
  for (u in units) {
    g <- codes[[u]]
    n_g <- max(g)
    for (tc in setdiff(cols, u)) {
      tt <- codes[[tc]]
      if (anyNA(tt)) next
      first <- !duplicated(cbind(g, tt))
      # distinct values of the column per unit, and units per value
      if (sum(first) < 1.5 * n_g) next
      units_per_value <- tabulate(tt[first], max(tt))
      shared <- units_per_value >= max(2, 0.5 * n_g)
      if (mean(shared[tt]) >= 0.9) return(list(unit = u, time = tc))
    }
  }
  NULL
}

# experiment_effect() without `cluster` analyses each row as a randomized
# cluster, so rows must be clusters. A long panel (several rows per unit over
# time, long_panel_columns()) or several rows of one designed cluster is
# refused, with the code that sums it to one row per cluster; with
# `cluster` named, finer rows get standard errors clustered at that level.
check_one_row_per_cluster <- function(data, units, design, vars, skip,
                                      call = rlang::caller_env()) {
  y <- vars$outcome
  d <- vars$treatment
  long <- long_panel_columns(data, units$treat, c(y, d, skip))
  if (!is.null(long)) {
    unit <- long$unit
    time <- long$time
    n_units <- length(unique(data[[unit]]))
    abort_mkt("long_panel", c(
      "{.arg data} is a long panel: {nrow(data)} rows for {n_units} values of {.field {unit}}, repeated over {.field {time}}.",
      x = "Analysed row by row, each of its rows would count as a separately randomized cluster, with standard errors far too small.",
      i = "Sum the test window to one row per cluster first:",
      " " = "{.code units <- aggregate({y} ~ {unit} + {d}, data = subset(data, {time} %in% test_window), FUN = sum)}",
      " " = "{.code experiment_effect({y} ~ {d}, units)}",
      i = "Or name the cluster to keep the rows, with standard errors clustered by it: {.code experiment_effect({y} ~ {d}, data, cluster = \"{unit}\")}."
    ), unit = unit, time = time, call = call)
  }
  if (!is.null(design) && !is.null(units$key) && anyDuplicated(units$key)) {
    id <- design$id_name
    dup <- unique(units$key[duplicated(units$key)])
    abort_mkt("long_panel", c(
      "{.arg data} has several rows for {length(dup)} designed cluster{?s} of {.field {id}}: {.val {utils::head(dup, 5)}}.",
      x = "Analysed row by row, rows of one cluster would count as separately randomized.",
      i = "Sum them to one row per cluster: {.code units <- aggregate({y} ~ {id} + {d}, data = data, FUN = sum)}.",
      i = "Or name the cluster to keep the rows: {.code cluster = \"{id}\"}."
    ), call = call)
  }
  invisible(TRUE)
}
