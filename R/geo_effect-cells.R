# geo_effect() on a design of several cells: each treated cell against the
# shared control, by the chosen method run on the geos of those two cells
# (the other treated cells are left out of that contrast). Trimmed Match
# takes its pairs from the design's matched blocks: in each block, the
# cell's geo and the control geo closest to it in pre-period outcome.

geo_effect_cells <- function(geo, panel, design, method, pairs, randomize_by, alpha,
                             call = rlang::caller_env()) {
  cells <- design$cells
  cell <- as.character(design$cell)
  runs <- lapply(cells[-1], function(cl) {
    g <- geo
    g$keep <- geo$keep & cell %in% c("control", cl)
    g$treat <- as.integer(cell == cl)
    view <- NULL
    if (method == "trimmed_match" && is.null(pairs)) {
      g$keep <- g$keep & block_pair_keep(g, design$strata, cell, cl)
      view <- list(strata = design$strata)
    }
    res <- switch(method,
      tbr = geo_tbr(g, alpha, call = call),
      gbr = geo_gbr(g, alpha, call = call),
      trimmed_match = geo_trimmed_match(g, panel, view, pairs, randomize_by, alpha,
                                        call = call)
    )
    label <- paste(cl, "- control")
    res$estimates$quantity <- res$estimates$term
    res$estimates$term <- label
    res$tables <- lapply(res$tables, function(t) cbind(contrast = label, t))
    res
  })
  tables <- lapply(stats::setNames(nm = names(runs[[1]]$tables)), function(nm) {
    out <- do.call(rbind, lapply(runs, function(r) r$tables[[nm]]))
    rownames(out) <- NULL
    out
  })
  glance <- runs[[1]]$glance
  glance <- glance[!vapply(glance, function(v) is.numeric(v), logical(1))]
  list(
    estimates = do.call(rbind, lapply(runs, `[[`, "estimates")),
    inference = paste0(
      if (method == "trimmed_match") "Trimmed Match, data-driven trim and Yuen's trimmed t per contrast (tidy(fit, \"trims\"))" else
        runs[[1]]$inference,
      "; each treated cell against the shared control"),
    tables = tables,
    glance = c(glance, list(n_cells = length(cells))),
    n_pairs = if (method == "trimmed_match") max(vapply(runs, function(r) r$n_pairs, numeric(1)))
  )
}

# Which geos a contrast's pairs keep: in every block holding the cell and
# control, the cell's first geo and the control geo nearest to it in
# pre-period outcome; other geos of the two cells (a block's leftover
# cluster) sit this contrast out.
block_pair_keep <- function(geo, strata, cell, cl) {
  keep <- rep(FALSE, length(cell))
  for (rows in split(seq_along(cell), strata)) {
    a <- rows[cell[rows] == cl & geo$keep[rows]]
    b <- rows[cell[rows] == "control" & geo$keep[rows]]
    if (!length(a) || !length(b)) next
    a <- a[1]
    keep[c(a, b[which.min(abs(geo$pre_total[b] - geo$pre_total[a]))])] <- TRUE
  }
  keep
}
