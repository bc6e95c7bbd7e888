# The cells of a several-cell analysis, shared by experiment_effect(),
# randomization_test() and design_power(): the cell codes and labels, the
# checks of the treatment column and of `contrasts`, alignment with a
# design, Lin's regressors and the matched-block estimator's pieces.

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

# Position of each analysis row in the design (by id when `data` has the
# design's id column, else by row order), after checking that the
# treatment column gives every cluster its designed cell.
align_design_cells <- function(units, design, treatment, cells, call = rlang::caller_env()) {
  id_label <- if (is.null(design$id_name)) "id" else design$id_name
  at <- design_positions(units$key, length(units$cell), design,
                         !is.null(units$key) && !is.null(design$id_name), call = call)
  pos <- at$pos
  how <- at$how
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
