#' Re-randomize a cluster-level experiment until the covariates balance
#'
#' Draws complete randomizations of clusters (within strata when strata are
#' given) and returns the first one whose balance criterion passes a
#' pre-specified threshold (Morgan and Rubin 2012). The draws are made and
#' scored in C++, on whitened covariates, summing only over the smaller arm
#' of each stratum. The returned design records the whole rule, so that
#' [randomization_test()] can draw reference assignments from exactly the
#' same rule and inference is conditional on it.
#'
#' @section Criteria:
#' * `"mahalanobis"`: \eqn{M = \hat\tau_x' \mathrm{Cov}(\hat\tau_x)^{-1}
#'   \hat\tau_x}, where \eqn{\hat\tau_x} is the (stratum-weighted) difference
#'   in covariate means and the covariance is its covariance under the base
#'   design. Under complete randomization \eqn{E[M] = k} and \eqn{M} is close
#'   to \eqn{\chi^2_k}.
#' * `"max_abs"`: the largest absolute standardized difference,
#'   \eqn{\max_k |\hat\tau_{x,k}| / \mathrm{sd}(\hat\tau_{x,k})}. Its threshold
#'   is always calibrated empirically.
#' * `"tiers"`: Morgan and Rubin (2015). Give `covariates` as a list of
#'   one-sided formulas in order of importance and `accept` as one probability
#'   per tier; each tier is residualized on the earlier ones and must pass its
#'   own Mahalanobis threshold. The overall acceptance probability is the
#'   product.
#'
#' @section Thresholds:
#' `threshold = "chisq"` sets \eqn{a = \chi^2_{k, p_a}}; `"empirical"` draws
#' `n_draws` assignments from the base design and takes the empirical
#' `accept` quantile of the criterion. The calibration draws are made in
#' either case: they give the realized acceptance rate and the distribution
#' shown by [plot()][plot.mkt_design].
#'
#' @section Buffer zones:
#' When treating a cluster can move its neighbours' outcomes (shoppers cross
#' the border, media spill over), untreated neighbours of treated clusters
#' make poor controls: their outcomes are contaminated, which biases the
#' difference in means toward zero. With `buffer`, every candidate assignment
#' is split into three arms: treated clusters; *buffer* clusters, untreated
#' but with at least one treated neighbour; and *controls*, the rest.
#' Buffer clusters are excluded from estimation by [experiment_effect()] and
#' [randomization_test()] (their outcomes remain useful to [spillover()],
#' which measures the contamination).
#'
#' The rule is part of the design and is re-applied to every assignment drawn
#' for inference:
#' * an assignment is admissible only if every stratum keeps `min_per_arm`
#'   controls; if too few draws are admissible, the error
#'   `mktcausal_error_buffer_too_wide` says how many controls a typical draw
#'   keeps;
#' * balance is measured between the treated and the retained controls (the
#'   comparison that will be estimated), as the stratum-weighted difference
#'   in covariate means whitened by its covariance under the base design.
#'   That criterion is not chi-squared, so its threshold is always the
#'   empirical `accept` quantile over admissible calibration draws;
#' * the probability that each cluster ends up treated, control or buffer
#'   under the whole rule is estimated from 2,000 accepted draws and stored
#'   in `$arm_prob`. Clusters with many neighbours are buffered more often,
#'   so retained controls over-represent isolated clusters;
#'   [experiment_effect()] reweights by these probabilities.
#'
#' @section Several cells:
#' A named vector in `n_treated` (or `prop_treated`), such as
#' `c(heavy_up = 20, go_dark = 20)`, makes a design with several treated
#' cells; the clusters left over form the shared control cell, `"control"`
#' (no treated cell may be called that). With strata each cell's size is
#' shared out across strata in proportion to their sizes (largest
#' remainders), and every stratum must hold `min_per_arm` clusters of every
#' cell. Matched sets of one cluster per cell come from
#' `stratify(method = "matched", block_size = k)`.
#'
#' The criterion is the joint Mahalanobis distance of the stacked vector of
#' (stratum-weighted) covariate mean differences of every treated cell
#' against control, whitened by its covariance under complete randomization
#' within strata: under the base design its mean is \eqn{(k-1)d} for \eqn{k}
#' cells and \eqn{d} covariates, and it is close to \eqn{\chi^2_{(k-1)d}}.
#' It does not depend on which cell is the reference, so it bounds the
#' imbalance between every pair of cells, and the rule shrinks the variance
#' of every covariate's imbalance in every pair by the same factor. Both
#' thresholds apply; `criterion` must be `"mahalanobis"`. The design has `$cells` (`"control"` first, then the
#' treated cells in the order given), `$cell` (a factor, one value per
#' cluster), `$n_by_stratum` (cell sizes, strata x cells) and
#' `$multi_cell = TRUE`, but no `$treated`; [balance()] and [tidy()] give one
#' row per covariate per pair of cells. Functions that analyse two arms only
#' (such as [spillover()] and [rem_asymptotic()]) refuse it with the error
#' `mktcausal_error_multi_cell_unsupported`.
#'
#' With `buffer`, a control cluster with a neighbour in *any* treated cell is
#' a buffer cluster (the shared control must be clean of every cell's
#' spillover). As for two arms, a candidate is admissible only if every
#' stratum keeps `min_per_arm` retained controls, and the criterion is the
#' joint Mahalanobis distance of the stacked differences between each
#' treated cell's (stratum-weighted) covariate means and the retained
#' controls' means, whitened by the covariance of the base design (so that
#' with no neighbours it is the criterion above); its threshold is the
#' empirical `accept` quantile over admissible calibration draws. `$arm` is
#' a factor over the cells and `"buffer"` (`$cell` keeps the drawn cells,
#' buffer clusters in `"control"`), and `$arm_prob` has one column per
#' treated cell, `"control"` (retained control) and `"buffer"`, from 2,000
#' accepted draws. Reference draws re-apply the whole rule to every
#' candidate.
#'
#' @param data A data frame with one row per cluster (for example from
#'   [geo_units()]), at least two.
#' @param covariates A one-sided formula of numeric cluster-level covariates,
#'   or, for tiers, a list of at least two of them.
#' @param n_treated Number of treated clusters. With strata it is shared out
#'   across strata in proportion to their sizes. For several treated cells, a
#'   named vector of sizes, one per treated cell (see Several cells).
#' @param prop_treated Share of treated clusters, used when `n_treated` is
#'   `NULL` (give one of the two). Defaults to one half, or to the cells of a
#'   [stratify()] object made for several cells given as `strata`. For
#'   several treated cells, a named vector of shares.
#' @param strata `NULL`, the name of a column of `data`, a vector with one
#'   stratum label per row, or the result of [stratify()].
#' @param accept Acceptance probability \eqn{p_a} in (0, 1] (one per tier for
#'   tiers). `accept = 1` means complete randomization.
#' @param threshold `"chisq"` or `"empirical"`; see Thresholds.
#' @param criterion `"mahalanobis"`, `"max_abs"` or `"tiers"`.
#' @param id Name of the column holding cluster ids; by default the id column
#'   of a [geo_units()] table, otherwise row numbers.
#' @param max_candidates Largest number of candidates to draw before giving
#'   up with the error `mktcausal_error_no_acceptable_assignment`, up to
#'   `1e12`. The search stops at the first accepted candidate; `$candidates`
#'   (a double) is its position in the stream of candidates.
#' @param n_draws Number of base-design draws used to calibrate and
#'   describe the criterion.
#' @param min_per_arm Smallest number of treated and of control clusters
#'   allowed in a stratum. With a buffer, an assignment is admissible only if
#'   every stratum keeps at least this many controls outside the buffer.
#' @param buffer Optional buffer rule: a square matrix with cluster ids as
#'   dimnames (0/1 adjacency or weights, or distances with `buffer_radius`;
#'   a matrix that looks like distances, symmetric with a zero diagonal,
#'   positive entries and the triangle inequality, needs `buffer_radius`,
#'   and weights that look like that are passed as they are with [I()]),
#'   a labelled [stats::dist()] object, a data frame whose first two columns
#'   are pairs of neighbouring cluster ids, or the name of a column of
#'   group labels (clusters of a group are neighbours). Defaults to the
#'   buffer of a [stratify()] object given as `strata`. See Buffer zones.
#' @param buffer_radius With a distance matrix in `buffer`: clusters within
#'   this distance of each other are neighbours. Refused with anything but
#'   distances.
#' @param ... Must be empty.
#' @return An object of class `mkt_design` with, among others, `$treated` (0/1
#'   in the row order of `data`), `$criterion`, `$threshold`, `$strata`,
#'   `$n_treated_by_stratum`, `$candidates`, `$acceptance_rate` and
#'   `$variance_reduction`, and for every design `$cells`, `$cell` (a factor
#'   over `$cells`; two arms: `"control"`, `"treated"`), `$n_by_stratum` and
#'   `$multi_cell` (see Several cells); with a buffer also `$arm` (a factor: treated,
#'   control or buffer; with several cells, the cells and buffer), `$arm_prob` (each cluster's probability of each arm
#'   under the rule) and `$buffer` (the 0/1 neighbour matrix and how it was
#'   built). It is a design, not a fit: use [tidy()][tidy.mkt_design],
#'   [glance()][glance.mkt_design], [balance()] and [plot()][plot.mkt_design].
#' @references Morgan, K. L. and Rubin, D. B. (2012). Rerandomization to
#'   improve covariate balance in experiments. *Annals of Statistics* 40(2),
#'   1263-1282. Morgan, K. L. and Rubin, D. B. (2015). Rerandomization to
#'   balance tiers of covariates. *JASA* 110, 1412-1421.
#' @examples
#' units <- geo_units(sales ~ 0 | zone + week, geo_sales, randomize_by = "dma",
#'                    size = "population", pre = 1:52)
#' set.seed(42)
#' des <- rerandomize(units, ~ outcome_mean + outcome_trend + size,
#'                    n_treated = 50, accept = 0.01)
#' des
#' glance(des)
#'
#' # Buffer zones: 64 markets on a grid, neighbours share an edge.
#' grid <- expand.grid(row = 1:8, col = 1:8)
#' grid$id <- sprintf("m%02d", 1:64)
#' grid$pre <- rnorm(64, 100, 10)
#' dist <- as.matrix(stats::dist(grid[, c("row", "col")]))
#' dimnames(dist) <- list(grid$id, grid$id)
#' buf <- rerandomize(grid, ~ pre, n_treated = 12, accept = 0.1, id = "id",
#'                    buffer = dist, buffer_radius = 1, n_draws = 5000)
#' buf
#' table(buf$arm)
#'
#' # Three cells: a shared control and two treated cells.
#' cells <- rerandomize(units, ~ outcome_mean + outcome_trend + size,
#'                      n_treated = c(heavy_up = 40, go_dark = 40), accept = 0.01)
#' cells
#' balance(cells)
#' @export
rerandomize <- function(data, covariates, n_treated = NULL, prop_treated = NULL,
                        strata = NULL, accept = 0.01,
                        threshold = c("chisq", "empirical"),
                        criterion = c("mahalanobis", "max_abs", "tiers"),
                        id = NULL, max_candidates = 1e7, n_draws = 1e5,
                        min_per_arm = 1L, buffer = NULL, buffer_radius = NULL, ...) {
  check_dots(...)
  call <- match.call()
  threshold_missing <- missing(threshold)
  if (missing(covariates)) {
    abort_mkt("bad_argument", c(
      "{.arg covariates} is missing: name the cluster covariates to balance.",
      i = "For example {.code rerandomize(units, ~ pre_sales + population, n_treated = 20)}."
    ))
  }
  data <- check_data_frame(data)
  if (nrow(data) < 2L) {
    abort_mkt("bad_data", c(
      "{.arg data} must have at least 2 rows (clusters) to randomize; it has {nrow(data)}.",
      i = "Give one row per cluster, for example from {.fn geo_units}."
    ))
  }
  min_per_arm <- check_count(min_per_arm, "min_per_arm", min = 1)
  # Strata made for several cells bring their cells when none are given.
  if (is.null(n_treated) && is.null(prop_treated) && inherits(strata, "mkt_strata") &&
      !is.null(strata$n_by_stratum)) {
    prop_treated <- strata$prop_treated
  }
  if (is.null(buffer) && inherits(strata, "mkt_strata") && !is.null(strata$buffer)) {
    buffer <- strata$buffer
  }
  if (!is.null(buffer_radius) && (is.null(buffer) || inherits(buffer, "mkt_buffer"))) {
    abort_mkt("bad_argument", c(
      "{.arg buffer_radius} is used only with a distance matrix as {.arg buffer}.",
      i = if (is.null(buffer)) "Give the distance matrix as {.arg buffer}, or leave out {.arg buffer_radius}." else
        "{.arg buffer} already holds its rule; leave out {.arg buffer_radius}."
    ))
  }
  if (!is.null(buffer) && !inherits(buffer, "mkt_buffer")) {
    buffer <- check_neighbour_input(buffer, buffer_radius, "buffer", "buffer_radius")
  }
  criterion <- if (is.list(covariates) && !inherits(covariates, "formula") &&
                   missing(criterion)) "tiers" else check_choice(criterion)
  threshold <- check_choice(threshold)
  if (!is.null(buffer) && threshold == "chisq") {
    if (!threshold_missing) {
      abort_mkt("bad_argument", c(
        "{.code threshold = \"chisq\"} does not apply to designs with a buffer.",
        i = "Balance is measured against the controls the buffer leaves, which is not chi-squared; use {.code threshold = \"empirical\"}."
      ))
    }
    threshold <- "empirical"
  }
  if (criterion == "max_abs") {
    if (!threshold_missing && threshold == "chisq") {
      abort_mkt("bad_argument", c(
        "{.code threshold = \"chisq\"} applies to Mahalanobis criteria only.",
        i = "Use {.code threshold = \"empirical\"} with {.code criterion = \"max_abs\"}."
      ))
    }
    threshold <- "empirical"
  }
  max_candidates <- check_count(max_candidates, "max_candidates", min = 1, max = 1e12, large = TRUE)
  n_draws <- check_count(n_draws, "n_draws", min = 100, max = 1e8)

  ids <- design_ids(data, id)
  tiers <- design_tiers(covariates, criterion)
  accept <- check_probability(accept, "accept")
  if (length(accept) != length(tiers)) {
    abort_mkt("bad_argument", c(
      "{.arg accept} needs one acceptance probability per tier ({length(tiers)}).",
      x = "You supplied {length(accept)}."
    ))
  }
  cov <- design_covariates(data, tiers)
  strata <- design_strata(data, strata)
  sizes <- design_cell_sizes(n_treated, prop_treated, nrow(data))
  if (!is.null(sizes)) {
    arg <- if (!is.null(n_treated)) "n_treated" else "prop_treated"
    if (criterion != "mahalanobis") {
      abort_mkt("bad_argument", c(
        "Designs with several cells balance on the joint Mahalanobis criterion only.",
        x = "You asked for {.code criterion = \"{criterion}\"}.",
        i = "Drop {.arg criterion} (and give {.arg covariates} as one formula)."
      ))
    }
    rule <- if (!is.null(buffer)) {
      buffer_rule(buffer, ids, data, attr(ids, "id_name"), buffer_radius)
    }
    return(rerandomize_cells(call, data, ids, cov, strata, sizes, accept, threshold,
                             max_candidates, n_draws, min_per_arm, arg, rule))
  }
  alloc <- allocate_treated(strata, nrow(data), n_treated, prop_treated)
  check_strata_sizes(strata, alloc, min_per_arm)

  spec <- design_spec(cov$X, strata, alloc, cov$tier, criterion)
  rule <- NULL
  if (!is.null(buffer)) {
    rule <- buffer_rule(buffer, ids, data, attr(ids, "id_name"), buffer_radius)
    spec$buffer <- buffer_spec(rule, cov$X, strata, alloc, min_per_arm)
    calib <- calibrate_buffered(spec, accept, n_draws, strata)
    spec$buffer$rate <- calib$acceptance_rate
  } else {
    calib <- calibrate_threshold(spec, accept, threshold, n_draws)
  }
  spec$threshold <- calib$threshold

  res <- run_search(spec, want = 1, max_candidates = max_candidates, label = "candidates")
  if (ncol(res$assignments) < 1L) {
    abort_mkt("no_acceptable_assignment", c(
      "No assignment passed the balance rule in {format(res$candidates, big.mark = ',')} candidates.",
      i = "The best criterion seen was {signif(res$best, 4)}; the threshold is {signif(sum(spec$threshold), 4)}.",
      i = "Raise {.arg accept}, balance fewer covariates, or raise {.arg max_candidates}."
    ), candidates = res$candidates, best = res$best)
  }
  treated <- as.integer(res$assignments[, 1])
  values <- res$values[, 1]

  des <- structure(list(
    call = call,
    ids = plain_ids(ids),
    id_name = attr(ids, "id_name"),
    treated = treated,
    covariates = colnames(cov$X),
    X = cov$X,
    tier = cov$tier,
    strata = strata,
    n_treated_by_stratum = alloc,
    criterion = criterion,
    criterion_value = if (criterion == "max_abs") values else sum(values),
    criterion_by_tier = if (criterion == "tiers") values else NULL,
    accept = accept,
    threshold_type = threshold,
    threshold = spec$threshold,
    candidates = res$candidates,
    acceptance_rate = calib$acceptance_rate,
    calibration = calib$values,
    n_acceptable = expected_acceptable(strata, alloc, prod(accept)) *
      if (is.null(rule)) 1 else calib$admissible_rate,
    variance_reduction = if (is.null(rule)) {
      variance_reduction(spec, cov$X, strata, alloc, calib$acceptance_rate)
    } else {
      calib$variance_reduction
    },
    min_per_arm = min_per_arm,
    spec = spec
  ), class = "mkt_design")
  des$multi_cell <- FALSE
  des$cells <- c("control", "treated")
  des$cell <- factor(des$cells[treated + 1L], levels = des$cells)
  sizes_s <- as.vector(table(strata))
  des$n_by_stratum <- matrix(c(as.integer(sizes_s - alloc), as.integer(alloc)), ncol = 2L,
                             dimnames = list(levels(strata), des$cells))
  if (!is.null(rule)) {
    des$arm <- buffer_arm(rule$nb, treated)
    des$buffer <- list(A = rule$A, source = rule$source, radius = rule$radius,
                       n_links = rule$n_links, degree = rule$degree,
                       admissible_rate = calib$admissible_rate,
                       imbalance_sd = calib$imbalance_sd)
    des$arm_prob <- arm_probabilities(spec, calib$threshold, ids)
  }
  des$hash <- design_hash(des)
  warn_granular(des)
  des
}

# --- inputs -----------------------------------------------------------------

# --- the kernel specification ---------------------------------------------

calibrate_threshold <- function(spec, accept, threshold, n_draws) {
  values <- cpp_rerandomize_score(
    spec$z, spec$units, spec$start, spec$n_small, spec$small_treated,
    spec$crit_type, spec$block_start, draw_cpp_seed(), n_draws,
    4096L, threads_for()
  )
  if (threshold == "chisq") {
    k <- diff(spec$block_start)
    a <- stats::qchisq(accept, k)
  } else {
    a <- vapply(seq_len(nrow(values)), function(b) {
      stats::quantile(values[b, ], accept[b], type = 1, names = FALSE)
    }, numeric(1))
  }
  a[accept >= 1] <- Inf
  pass <- rep(TRUE, ncol(values))
  for (b in seq_len(nrow(values))) pass <- pass & values[b, ] <= a[b]
  list(threshold = a, acceptance_rate = mean(pass),
       values = if (spec$crit_type == 0L) colSums(values) else values[1, ])
}

# Expected share of each covariate's imbalance variance removed by the rule
# (1 - v_a). In whitened coordinates each block b shrinks its variance by
# v_b = P(chi2_{k_b+2} <= a_b) / P(chi2_{k_b} <= a_b); a covariate mixes the
# blocks through the rows of the Cholesky factor.
variance_reduction <- function(spec, X, strata, alloc, rate) {
  k <- diff(spec$block_start)
  a <- spec$threshold
  if (spec$crit_type == 1L) {
    return(empirical_variance_reduction(spec, X, rate))
  }
  v <- rem_va(a, k)
  vb <- rep(v, k)
  L2 <- spec$L^2
  red <- 1 - as.vector(L2 %*% vb) / rowSums(L2)
  names(red) <- colnames(X)
  red
}

empirical_variance_reduction <- function(spec, X, rate, n = 2000L) {
  acc <- run_search(spec, want = n, max_candidates = n * max(1e6, 100 / max(rate, 1e-9)))
  imb <- crossprod(acc$assignments, t(spec$z))  # n x k standardized imbalances
  red <- 1 - apply(imb, 2, stats::var)
  names(red) <- colnames(X)
  red
}

# --- buffer zones ----------------------------------------------------------------

# Calibration with a buffer: admissibility, empirical thresholds over the
# admissible draws, and the variance of each covariate's imbalance before and
# after the rule (for the balance table and the variance reduction).
calibrate_buffered <- function(spec, accept, n_draws, strata,
                               call = rlang::caller_env()) {
  cap <- max(256, floor(4e6 / length(spec$units)))
  values <- list()
  tau <- list()
  n_retained <- list()
  short <- 0
  done <- 0
  while (done < n_draws) {
    m <- min(cap, n_draws - done)
    W <- base_draws(spec, m)
    v <- buffered_values(spec, W)
    values[[length(values) + 1L]] <- v$values
    tau[[length(tau) + 1L]] <- v$tau
    n_retained[[length(n_retained) + 1L]] <- colSums(v$kept)
    short <- short + rowSums(v$kept < spec$buffer$min_controls)
    done <- done + m
  }
  values <- do.call(cbind, values)
  tau <- do.call(cbind, tau)
  n_retained <- unlist(n_retained)
  admissible <- is.finite(values[1, ])
  if (mean(admissible) < 0.01) {
    n_untreated <- length(spec$units) - sum(spec$n_treated)
    worst <- which.max(short)
    abort_mkt("buffer_too_wide", c(
      "The buffer leaves too few controls: a typical assignment keeps {stats::median(n_retained)} of {n_untreated} untreated cluster{?s} as controls and buffers the rest.",
      x = "Only {signif(100 * mean(admissible), 2)}% of draws keep {spec$buffer$min_controls} control{?s} in every stratum; stratum {.val {levels(strata)[worst]}} falls short in {round(100 * short[worst] / done)}% of them.",
      i = "Use a narrower buffer (smaller {.arg buffer_radius} or fewer neighbour links), treat fewer clusters ({.arg n_treated}), or merge strata."
    ), n_retained = stats::median(n_retained), n_untreated = n_untreated, call = call)
  }
  adm <- values[, admissible, drop = FALSE]
  a <- vapply(seq_len(nrow(adm)), function(k) {
    stats::quantile(adm[k, ], accept[k], type = 1, names = FALSE)
  }, numeric(1))
  a[accept >= 1] <- Inf
  pass <- passes(values, a)
  sd_before <- apply(tau[, admissible, drop = FALSE], 1, stats::sd)
  sd_after <- if (sum(pass) > 2) apply(tau[, pass, drop = FALSE], 1, stats::sd) else sd_before
  red <- 1 - sd_after^2 / sd_before^2
  names(red) <- names(sd_before) <- colnames(spec$buffer$X)
  list(threshold = a, acceptance_rate = mean(pass), admissible_rate = mean(admissible),
       values = colSums(adm), variance_reduction = red,
       imbalance_sd = rbind(before = sd_before, after = sd_after))
}

# Each cluster's probability of being treated, control or buffer under the
# design's whole rule, from accepted draws. Fixed once the design is made, so
# statistics weighted by them are fixed functions of the assignment.
arm_probabilities <- function(spec, threshold, ids, n = 2000L) {
  res <- run_search(spec, n, n * max(1e6, 100 / max(spec$buffer$rate, 1e-9)), threshold)
  W <- res$assignments
  retained <- W == 0L & !treated_neighbour(spec$buffer$nb, W)
  p <- cbind(treated = rowMeans(W), control = rowMeans(retained))
  p <- cbind(p, buffer = pmax(1 - p[, 1] - p[, 2], 0))
  rownames(p) <- plain_ids(ids)
  p
}
