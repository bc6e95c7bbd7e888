# The analysis rows of experiment_effect(), shared by its two-arm and
# several-cell paths: the estimand's wording, the per-capita collapse of
# finer rows and the rows a buffered design keeps.

effect_estimand <- function(estimand, fine, buffered) {
  what <- if (estimand == "total") {
    if (fine) "average effect on one row's outcome (incremental: times the treated rows)" else
      "average effect on a cluster's total outcome (incremental: times the treated clusters)"
  } else {
    "average over clusters of the per-capita effect (incremental: times the treated population)"
  }
  if (buffered) paste0(what, ", relative to isolated controls") else what
}

# One row per cluster: per-capita outcome and covariates, total spend.
per_capita_units <- function(units) {
  if (is.null(units$cluster)) {
    units$y <- units$y / units$size
    return(units)
  }
  g <- factor(units$cluster, levels = unique(units$cluster))
  sum_by <- function(v) as.vector(rowsum(v, g, reorder = FALSE))
  size <- sum_by(units$size)
  first <- !duplicated(g)
  list(
    y = sum_by(units$y) / size,
    treat = units$treat[first],
    X = if (!is.null(units$X)) {
      X <- rowsum(units$X, g, reorder = FALSE) / as.vector(table(g)[levels(g)])
      dimnames(X) <- list(NULL, colnames(units$X))
      X
    },
    spend = if (!is.null(units$spend)) sum_by(units$spend),
    size = size,
    cluster = NULL,
    key = if (!is.null(units$key)) units$key[first] else levels(g)
  )
}

# The rows a buffered design keeps (buffer clusters dropped) and the centring
# values of covariates and stratum indicators, taken over every designed
# cluster before dropping. `pos` is each row's position in the design.
buffer_subset <- function(units, design, pos, strata) {
  keep <- design$arm[pos] != "buffer"
  full <- units$X
  if (!is.null(strata)) full <- cbind(full, stats::model.matrix(~ strata)[, -1, drop = FALSE])
  take <- function(v) {
    if (is.null(v)) return(NULL)
    if (is.matrix(v)) v[keep, , drop = FALSE] else v[keep]
  }
  list(units = lapply(units, take), pos = pos[keep], orig_pos = pos,
       strata = if (!is.null(strata)) strata[keep],
       centre = if (!is.null(full)) colMeans(full))
}

# The design's strata of the analysed rows and, with a buffer, the rows it
# keeps with their weights (`keep_rows`: buffer_units() for two arms,
# cells_buffer_units() for several cells). `buf` is NULL without a buffer.
design_rows <- function(units, design, pos, keep_rows) {
  strata <- if (!is.null(design) && nlevels(design$strata) > 1L) {
    droplevels(design$strata[pos])
  }
  buf <- NULL
  if (!is.null(design) && !is.null(design$buffer)) {
    buf <- keep_rows(units, design, pos, strata)
    units <- buf$units
    pos <- buf$pos
    strata <- buf$strata
  }
  list(units = units, pos = pos, strata = strata, buf = buf)
}
