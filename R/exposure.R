# Exposure mappings h_i(D_-i): how much of a unit's neighbourhood is
# treated. One neighbour matrix serves the regression and the design-based
# estimators of spillover(), and the exposure probabilities simulated from a
# design's acceptance rule.

# The N x N neighbour weights among `ids` (zero diagonal), from
# * a square matrix with dimnames (0/1 adjacency or weights), or distances
#   when `radius` is given (neighbours lie within `radius`);
# * the name of a column of `data` holding each unit's group: units in the
#   same group are neighbours;
# * a data frame of neighbour pairs (its first two columns hold unit ids;
#   links are symmetric, units without a pair have no neighbours).
neighbour_matrix <- function(adjacency, ids, data = NULL, id_col = NULL, radius = NULL,
                             call = rlang::caller_env()) {
  ids <- as.character(ids)
  if (is.character(adjacency) && length(adjacency) == 1L) {
    if (is.null(data) || !adjacency %in% names(data)) {
      abort_mkt("bad_adjacency", c(
        "{.arg adjacency} names column {.field {adjacency}}, which is not in {.arg data}.",
        i = "Give a column of group labels, or a square matrix with unit ids as dimnames."
      ), call = call)
    }
    group <- as.character(data[[adjacency]])
    key <- as.character(data[[id_col]])
    by_unit <- tapply(group, key, function(g) length(unique(g)))
    if (any(by_unit > 1L)) {
      abort_mkt("bad_adjacency", c(
        "Group column {.field {adjacency}} changes within {sum(by_unit > 1L)} unit{?s}, e.g. {.val {utils::head(names(by_unit)[by_unit > 1L], 3)}}.",
        i = "Each unit belongs to one group."
      ), call = call)
    }
    g <- group[match(ids, key)]
    if (anyNA(g)) {
      abort_mkt("bad_adjacency", "Group column {.field {adjacency}} is missing for some units.",
                call = call)
    }
    A <- outer(g, g, "==") * 1
  } else if (is.data.frame(adjacency)) {
    A <- pairs_matrix(adjacency, ids, call = call)
  } else {
    if (!is.matrix(adjacency) && !inherits(adjacency, "dist")) {
      abort_mkt("bad_adjacency", c(
        "{.arg adjacency} must be a square matrix with unit ids as dimnames, a {.cls dist} object, or the name of a group column.",
        x = "It is {.obj_type_friendly {adjacency}}."
      ), call = call)
    }
    A <- as.matrix(adjacency)
    if (nrow(A) != ncol(A) || is.null(rownames(A))) {
      abort_mkt("bad_adjacency", c(
        "{.arg adjacency} must be square with unit ids as row (and column) names.",
        i = "Label it with {.code dimnames(adj) <- list(ids, ids)}."
      ), call = call)
    }
    if (is.null(colnames(A))) colnames(A) <- rownames(A)
    missing_ids <- setdiff(ids, rownames(A))
    if (length(missing_ids)) {
      abort_mkt("bad_adjacency", c(
        "{length(missing_ids)} unit{?s} of {.arg data} {?is/are} not in {.arg adjacency}: {.val {utils::head(missing_ids, 5)}}.",
        i = "The matrix needs a row and a column for every unit."
      ), call = call)
    }
    if (!identical(rownames(A), colnames(A))) {
      abort_mkt("bad_adjacency", "The row and column names of {.arg adjacency} differ.",
                call = call)
    }
    A <- A[ids, ids, drop = FALSE]
    storage.mode(A) <- "double"
    if (anyNA(A) || any(A < 0)) {
      abort_mkt("bad_adjacency", "{.arg adjacency} must be complete and non-negative.",
                call = call)
    }
    if (!is.null(radius)) {
      if (!is.numeric(radius) || length(radius) != 1L || !is.finite(radius) || radius <= 0) {
        abort_mkt("bad_argument", "{.arg radius} must be one positive number.", call = call)
      }
      A <- (A <= radius) * 1
    }
  }
  diag(A) <- 0
  dimnames(A) <- list(ids, ids)
  A
}

# Exposure of each unit (row) under each assignment (column of the N x R
# 0/1 matrix W).
exposure_of <- function(A, W, exposure) {
  treated_nb <- A %*% W
  switch(exposure,
    count = treated_nb,
    any = (treated_nb > 0) * 1,
    share = {
      deg <- rowSums(A)
      out <- treated_nb / ifelse(deg > 0, deg, 1)
      out[deg == 0, ] <- 0
      out
    }
  )
}

# The four exposure conditions of Aronow and Samii (2017) for a binary own
# treatment and "any treated neighbour": 1 control, isolated; 2 control,
# exposed; 3 treated, isolated; 4 treated, exposed.
exposure_levels <- c("control_isolated", "control_exposed", "treated_isolated",
                     "treated_exposed")

exposure_condition <- function(A, W) {
  1L + (A %*% W > 0) + 2L * W
}

# Symmetric 0/1 adjacency among `ids` from a data frame of neighbour pairs.
# Pairs must name known units; a unit absent from every pair is isolated.
pairs_matrix <- function(pairs, ids, call = rlang::caller_env()) {
  if (ncol(pairs) < 2L) {
    abort_mkt("bad_adjacency", c(
      "A data frame of neighbour pairs needs two columns of unit ids.",
      x = "It has {ncol(pairs)} column{?s}."
    ), call = call)
  }
  from <- as.character(pairs[[1]])
  to <- as.character(pairs[[2]])
  if (anyNA(from) || anyNA(to)) {
    abort_mkt("bad_adjacency", "The neighbour pairs have missing ids.", call = call)
  }
  unknown <- setdiff(c(from, to), ids)
  if (length(unknown)) {
    abort_mkt("bad_adjacency", c(
      "{length(unknown)} id{?s} in the neighbour pairs {?is/are} not among the units: {.val {utils::head(unknown, 5)}}.",
      i = "Pairs must use the same ids as the unit id column."
    ), call = call)
  }
  A <- matrix(0, length(ids), length(ids))
  i <- match(from, ids)
  j <- match(to, ids)
  A[cbind(i, j)] <- 1
  A[cbind(j, i)] <- 1
  A
}

# --- buffer zones --------------------------------------------------------------

# A buffer rule for a design: cluster i is a buffer cluster under an
# assignment when it is untreated and A[i, j] > 0 for some treated j (the
# "any treated neighbour" exposure of exposure_of()). Buffer clusters are
# neither treated nor control: they are left out of estimation, which keeps
# controls whose outcome could be contaminated by a treated neighbour out of
# the comparison. The rule keeps the 0/1 matrix (for printing and the
# design's hash) and each cluster's neighbour list (for fast evaluation).
buffer_rule <- function(buffer, ids, data, id_col, radius, call = rlang::caller_env()) {
  if (inherits(buffer, "mkt_buffer")) {
    A <- neighbour_matrix(buffer$A, ids, call = call)
    source <- buffer$source
    radius <- buffer$radius
  } else {
    if (is.character(buffer) && length(buffer) == 1L && is.null(id_col)) {
      data <- data.frame(.id = ids, data[buffer], stringsAsFactors = FALSE)
      id_col <- ".id"
    }
    A <- neighbour_matrix(buffer, ids, data, id_col, radius, call = call)
    source <- if (is.data.frame(buffer)) "neighbour pairs" else
      if (is.character(buffer)) paste0("group column '", buffer, "'") else
      if (!is.null(radius)) paste0("distance <= ", format(radius)) else "adjacency matrix"
  }
  A <- (A > 0) * 1
  nb <- lapply(seq_along(ids), function(i) which(A[i, ] > 0))
  structure(list(A = A, nb = nb, source = source, radius = radius,
                 n_links = sum(A) / 2, degree = lengths(nb)), class = "mkt_buffer")
}

# TRUE where a cluster (row) has at least one treated neighbour under an
# assignment (column of the 0/1 matrix W). A loop over neighbour lists costs
# the number of links per assignment rather than N^2.
treated_neighbour <- function(nb, W) {
  E <- matrix(FALSE, nrow(W), ncol(W))
  for (i in which(lengths(nb) > 0L)) {
    E[i, ] <- colSums(W[nb[[i]], , drop = FALSE]) > 0
  }
  E
}

# Arm of each cluster under one assignment `w`: treated, control or buffer.
buffer_arm <- function(nb, w) {
  exposed <- as.vector(treated_neighbour(nb, matrix(as.integer(w), ncol = 1L)))
  arm <- ifelse(w == 1, "treated", ifelse(exposed, "buffer", "control"))
  factor(arm, levels = c("treated", "control", "buffer"))
}
