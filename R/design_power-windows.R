# The historical windows of design_power(), shared by its two-arm and
# several-cell paths and by select_markets(): cluster x period totals, the
# window ends, the window totals and the summary of simulated fits.

# Cluster x period totals in the design's cluster order, and cluster sizes.
power_panel <- function(design, panel, randomize_by, size, call = rlang::caller_env()) {
  if (!is.null(panel$vars$treatment) || length(panel$vars$covariates)) {
    abort_mkt("bad_formula", c(
      "{.fn design_power} replays the experiment on untreated history: write {.code outcome ~ 0 | unit + time}.",
      i = "Leave out the treatment and covariates; the design holds the covariates."
    ), call = call)
  }
  live <- rowSums(panel$observed) > 0
  unit_cl <- randomization_clusters(panel, randomize_by, call = call)
  col <- if (is.null(randomize_by)) panel$vars$unit else randomize_by
  present <- unique(unit_cl[live])
  miss <- setdiff(design$ids, present)
  if (length(miss)) {
    abort_mkt("misaligned", c(
      "{length(miss)} cluster{?s} of {.arg design} {?is/are} not in column {.field {col}} of {.arg data}: {.val {utils::head(miss, 5)}}.",
      i = "{.arg randomize_by} must name the column whose values are the design's ids (the unit column when it is {.code NULL})."
    ), call = call)
  }
  extra <- setdiff(present, design$ids)
  if (length(extra)) {
    warn_mkt("dropped_rows", c(
      "Dropped {length(extra)} cluster{?s} of {.arg data} that the design does not randomize: {.val {utils::head(extra, 5)}}.",
      i = "Power is simulated for the design's clusters only."
    ))
  }
  ci <- match(unit_cl, design$ids)
  ci[!live] <- NA_integer_
  n_cl <- length(design$ids)
  Y <- cluster_totals(panel, ci, n_cl)
  sz <- NULL
  if (!is.null(size)) {
    s <- unit_sizes(panel, size, call = call)
    use <- !is.na(ci)
    sz <- numeric(n_cl)
    r <- rowsum(s[use], ci[use])
    sz[as.integer(rownames(r))] <- r[, 1L]
  }
  list(Y = Y, times = panel$times, size = sz)
}

# End periods (indices) of the windows; see the Windows section.
power_window_ends <- function(n_t, t_max, n_windows, times, pre, time,
                              call = rlang::caller_env()) {
  lo <- t_max
  if (!is.null(pre)) {
    pre <- geo_windows(pre, NULL, times, time, call = call)$pre
    lo_post <- max(t_max, max(match(pre, times)) + t_max)
    if (n_t - lo_post + 1L >= n_windows) {
      lo <- lo_post
    } else {
      warn_mkt("windows_overlap_pre", c(
        "Only {max(0, n_t - lo_post + 1L)} window end{?s} lie{?s/} {t_max} periods after the pre-period; backtest windows overlap it.",
        i = "Windows that reuse the design's pre-period flatter power; use fewer {.arg n_windows} or shorter {.arg test_length}."
      ))
    }
  }
  avail <- n_t - lo + 1L
  if (avail < n_windows) {
    warn_mkt("fewer_windows", c(
      "The panel allows {avail} window end{?s}, fewer than {.arg n_windows} = {n_windows}.",
      i = "Using {avail} window{?s}."
    ))
    n_windows <- avail
  }
  step <- if (n_windows > 1L) max(1L, min(t_max, (n_t - lo) %/% (n_windows - 1L))) else 1L
  sort(as.integer(n_t - step * (seq_len(n_windows) - 1L)))
}

# One entry per (test length, window): cluster totals over the window.
power_window_totals <- function(panel, ends, test_length, time,
                                call = rlang::caller_env()) {
  out <- list()
  for (tl in test_length) {
    for (e in ends) {
      cols <- seq.int(e - tl + 1L, e)
      y <- rowSums(panel$Y[, cols, drop = FALSE])
      if (anyNA(y)) {
        abort_mkt("missing_values", c(
          "{sum(is.na(y))} cluster{?s} {?has/have} no rows in some periods of a backtest window.",
          i = "Simulated power needs every cluster's outcome in every period of {.field {time}}; fill or drop those clusters."
        ), call = call)
      }
      out[[length(out) + 1L]] <- list(test_length = tl, end = e, y = y, mean = mean(y))
    }
  }
  out
}

# Bias and RMSE in percentage points of lift (`scale = 100`), or in the
# effect's own units (iROAS, `scale = 1`).
power_summarise <- function(sims, windows, effect, test_length, scale = 100) {
  tl <- vapply(windows, `[[`, integer(1), "test_length")
  rows <- lapply(test_length, function(t) {
    wi <- which(tl == t)
    est <- do.call(rbind, lapply(sims, function(s) do.call(rbind, lapply(s[wi], `[[`, "estimate"))))
    rej <- do.call(rbind, lapply(sims, function(s) do.call(rbind, lapply(s[wi], `[[`, "reject"))))
    n <- nrow(rej)
    p <- colMeans(rej)
    err <- sweep(est, 2, effect)
    data.frame(test_length = t, effect = effect, power = p,
               mc_se = sqrt(p * (1 - p) / n),
               bias = scale * colMeans(err), rmse = scale * sqrt(colMeans(err^2)),
               n_sims = n)
  })
  do.call(rbind, rows)
}
