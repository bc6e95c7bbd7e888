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
#' `n_calibration` assignments from the base design and takes the empirical
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
#' @param data A data frame with one row per cluster (for example from
#'   [geo_units()]).
#' @param covariates A one-sided formula of numeric cluster-level covariates,
#'   or a list of them for tiers.
#' @param n_treated Number of treated clusters. With strata it is shared out
#'   across strata in proportion to their sizes.
#' @param prop_treated Share of treated clusters, used when `n_treated` is
#'   `NULL`. Defaults to one half.
#' @param strata `NULL`, the name of a column of `data`, a vector with one
#'   stratum label per row, or the result of [stratify()].
#' @param accept Acceptance probability \eqn{p_a} in (0, 1] (one per tier for
#'   tiers). `accept = 1` means complete randomization.
#' @param threshold `"chisq"` or `"empirical"`; see Thresholds.
#' @param criterion `"mahalanobis"`, `"max_abs"` or `"tiers"`.
#' @param id Name of the column holding cluster ids; by default the id column
#'   of a [geo_units()] table, otherwise row numbers.
#' @param max_candidates Largest number of candidates to draw before giving
#'   up with the error `mktcausal_error_no_acceptable_assignment`.
#' @param n_calibration Number of base-design draws used to calibrate and
#'   describe the criterion.
#' @param min_per_arm Smallest number of treated and of control clusters
#'   allowed in a stratum. With a buffer, an assignment is admissible only if
#'   every stratum keeps at least this many controls outside the buffer.
#' @param buffer Optional buffer rule: a square matrix with cluster ids as
#'   dimnames (0/1 adjacency or weights, or distances with `buffer_radius`),
#'   a labelled [stats::dist()] object, a data frame whose first two columns
#'   are pairs of neighbouring cluster ids, or the name of a column of
#'   group labels (clusters of a group are neighbours). Defaults to the
#'   buffer of a [stratify()] object given as `strata`. See Buffer zones.
#' @param buffer_radius With a distance matrix in `buffer`: clusters within
#'   this distance of each other are neighbours.
#' @return An object of class `mkt_design` with, among others, `$treated` (0/1
#'   in the row order of `data`), `$criterion`, `$threshold`, `$strata`,
#'   `$n_treated_by_stratum`, `$candidates`, `$acceptance_rate` and
#'   `$variance_reduction`; with a buffer also `$arm` (a factor: treated,
#'   control or buffer), `$arm_prob` (each cluster's probability of each arm
#'   under the rule) and `$buffer` (the 0/1 neighbour matrix and how it was
#'   built). Use [tidy()][tidy.mkt_design], [glance()][glance.mkt_design],
#'   [balance()] and [plot()][plot.mkt_design].
#' @references Morgan, K. L. and Rubin, D. B. (2012). Rerandomization to
#'   improve covariate balance in experiments. *Annals of Statistics* 40(2),
#'   1263-1282. Morgan, K. L. and Rubin, D. B. (2015). Rerandomization to
#'   balance tiers of covariates. *JASA* 110, 1412-1421.
#' @examples
#' units <- geo_units(geo_sales, cluster = "dma", time = "week",
#'                    outcome = "sales", size = "population", pre = 1:52)
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
#'                    buffer = dist, buffer_radius = 1, n_calibration = 5000)
#' buf
#' table(buf$arm)
#' @export
rerandomize <- function(data, covariates, n_treated = NULL, prop_treated = NULL,
                        strata = NULL, accept = 0.01,
                        threshold = c("chisq", "empirical"),
                        criterion = c("mahalanobis", "max_abs", "tiers"),
                        id = NULL, max_candidates = 1e7, n_calibration = 1e5,
                        min_per_arm = 1L, buffer = NULL, buffer_radius = NULL) {
  call <- match.call()
  threshold_missing <- missing(threshold)
  data <- check_data_frame(data)
  criterion <- if (is.list(covariates) && !inherits(covariates, "formula") &&
                   missing(criterion)) "tiers" else match.arg(criterion)
  threshold <- match.arg(threshold)
  if (is.null(buffer) && inherits(strata, "mkt_strata") && !is.null(strata$buffer)) {
    buffer <- strata$buffer
  }
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
  max_candidates <- check_count(max_candidates, "max_candidates", min = 1, max = 1e12)
  n_calibration <- check_count(n_calibration, "n_calibration", min = 100, max = 1e8)

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
  alloc <- allocate_treated(strata, nrow(data), n_treated, prop_treated)
  check_strata_sizes(strata, alloc, min_per_arm)

  spec <- design_spec(cov$X, strata, alloc, cov$tier, criterion)
  rule <- NULL
  if (!is.null(buffer)) {
    rule <- buffer_rule(buffer, ids, data, attr(ids, "id_name"), buffer_radius)
    spec$buffer <- buffer_spec(rule, cov$X, strata, alloc, min_per_arm)
    calib <- calibrate_buffered(spec, accept, n_calibration, strata)
    spec$buffer$rate <- calib$acceptance_rate
  } else {
    calib <- calibrate_threshold(spec, accept, threshold, n_calibration)
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
    variance_reduction = if (is.null(rule)) variance_reduction(spec, cov$X, strata, alloc) else
      calib$variance_reduction,
    min_per_arm = min_per_arm,
    spec = spec
  ), class = c("mkt_design", "mkt_fit"))
  if (!is.null(rule)) {
    des$arm <- buffer_arm(rule$nb, treated)
    des$buffer <- list(A = rule$A, source = rule$source, radius = rule$radius,
                       n_links = rule$n_links, degree = rule$degree,
                       admissible_rate = calib$admissible_rate,
                       imbalance_sd = calib$imbalance_sd)
    des$arm_prob <- arm_probabilities(spec, calib$threshold, ids)
  }
  des$hash <- design_hash(des)
  if (des$n_acceptable < 1e4) {
    warn_mkt("granular_inference", c(
      "About {format(round(des$n_acceptable))} distinct assignments pass this rule.",
      i = "The smallest attainable randomization p-value is near {signif(1 / des$n_acceptable, 2)}.",
      i = "Raise {.arg accept} or use more clusters for finer inference."
    ))
  }
  des
}

# --- inputs -----------------------------------------------------------------

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

# --- the kernel specification ---------------------------------------------

# Per-cluster vectors z_j such that the criterion is a function of the sum of
# z_j over treated clusters (see src/rerandomize.h). Works for any strata;
# without strata it reduces to Morgan and Rubin's statistic.
design_spec <- function(X, strata, alloc, tier, criterion) {
  n <- nrow(X)
  lev <- levels(strata)
  s_idx <- as.integer(strata)
  sizes <- as.vector(table(strata))
  n1 <- alloc
  n0 <- sizes - alloc
  pi_s <- sizes / n
  Xc <- X
  cov_sre <- matrix(0, ncol(X), ncol(X))
  for (s in seq_along(lev)) {
    rows <- which(s_idx == s)
    xs <- X[rows, , drop = FALSE]
    Xc[rows, ] <- sweep(xs, 2, colMeans(xs))
    if (length(rows) > 1L) {
      cov_sre <- cov_sre + pi_s[s]^2 * stats::cov(xs) * (1 / n1[s] + 1 / n0[s])
    }
  }
  U <- Xc * (pi_s[s_idx] * sizes[s_idx] / (n1[s_idx] * n0[s_idx]))
  if (criterion == "max_abs") {
    sd_tau <- sqrt(diag(cov_sre))
    Z <- sweep(U, 2, sd_tau, "/")
    L <- diag(sd_tau, ncol(X))
    block_start <- c(0L, ncol(X))
    crit_type <- 1L
  } else {
    # Columns come tier by tier (design_covariates), so the Cholesky factor
    # residualizes each tier on the earlier ones.
    R <- chol(cov_sre)  # cov = R'R; L = R' maps whitened sums to imbalances
    L <- t(R)
    Z <- t(backsolve(R, t(U), transpose = TRUE))
    block_start <- as.integer(c(0L, cumsum(table(factor(tier, levels = unique(tier))))))
    crit_type <- 0L
  }
  units <- unlist(lapply(seq_along(lev), function(s) which(s_idx == s))) - 1L
  list(
    z = t(Z), crit_type = crit_type, block_start = block_start,
    units = as.integer(units), start = as.integer(c(0L, cumsum(sizes))),
    n_small = as.integer(pmin(n1, n0)), small_treated = as.integer(n1 <= n0),
    n_treated = as.integer(n1), L = L, cov = cov_sre, n_blocks = length(block_start) - 1L
  )
}

calibrate_threshold <- function(spec, accept, threshold, n_calibration) {
  values <- cpp_rerandomize_score(
    spec$z, spec$units, spec$start, spec$n_small, spec$small_treated,
    spec$crit_type, spec$block_start, draw_cpp_seed(), n_calibration,
    4096L, mkt_threads()
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

# Draws `want` accepted assignments (columns) from the design's rule.
# Long searches report progress through progressr: the kernel calls back
# between rounds on the main thread, where it also polls for interrupts.
run_search <- function(spec, want, max_candidates, threshold = spec$threshold,
                       label = NULL, threads = mkt_threads()) {
  if (!is.null(spec$buffer)) {
    return(buffered_search(spec, want, max_candidates, threshold, threads))
  }
  progress <- NULL
  if (!is.null(label)) {
    p <- progressr::progressor(steps = 100L, label = label)
    reported <- 0L
    progress <- function(done) {
      now <- as.integer(floor(100 * done / max_candidates))
      if (now > reported) {
        p(amount = now - reported)
        reported <<- now
      }
      invisible(NULL)
    }
  }
  cpp_rerandomize_search(
    spec$z, spec$units, spec$start, spec$n_small, spec$small_treated,
    spec$crit_type, spec$block_start, threshold, draw_cpp_seed(),
    want, max_candidates, 4096L, threads, progress
  )
}

expected_acceptable <- function(strata, alloc, p_accept) {
  sizes <- as.vector(table(strata))
  exp(sum(lchoose(sizes, alloc))) * p_accept
}

# Expected share of each covariate's imbalance variance removed by the rule
# (1 - v_a). In whitened coordinates each block b shrinks its variance by
# v_b = P(chi2_{k_b+2} <= a_b) / P(chi2_{k_b} <= a_b); a covariate mixes the
# blocks through the rows of the Cholesky factor.
variance_reduction <- function(spec, X, strata, alloc) {
  k <- diff(spec$block_start)
  a <- spec$threshold
  if (spec$crit_type == 1L) {
    return(empirical_variance_reduction(spec, X))
  }
  v <- rem_va(a, k)
  vb <- rep(v, k)
  L2 <- spec$L^2
  red <- 1 - as.vector(L2 %*% vb) / rowSums(L2)
  names(red) <- colnames(X)
  red
}

empirical_variance_reduction <- function(spec, X, n = 2000L) {
  acc <- run_search(spec, want = n, max_candidates = 1e8)
  imb <- crossprod(acc$assignments, t(spec$z))  # n x k standardized imbalances
  red <- 1 - apply(imb, 2, stats::var)
  names(red) <- colnames(X)
  red
}

design_hash <- function(des) {
  con <- rawConnection(raw(0), "wb")
  on.exit(close(con))
  parts <- list(des$treated, des$X, as.integer(des$strata), des$n_treated_by_stratum,
                des$threshold, des$tier, nchar(des$criterion), des$spec$z)
  if (!is.null(des$buffer)) {
    parts <- c(parts, list(des$buffer$A, des$arm_prob, des$spec$buffer$A,
                           des$spec$buffer$min_controls, as.integer(des$arm)))
  }
  for (x in parts) {
    writeBin(as.vector(x), con)
  }
  bytes <- rawConnectionValue(con)
  tmp <- tempfile()
  on.exit(unlink(tmp), add = TRUE)
  writeBin(bytes, tmp)
  unname(tools::md5sum(tmp))
}

check_design <- function(design, call = rlang::caller_env()) {
  if (!inherits(design, "mkt_design")) {
    abort_mkt("bad_design", c(
      "{.arg design} must be a design made by {.fn rerandomize}.",
      x = "It is of class {.cls {class(design)}}."
    ), call = call)
  }
  if (!identical(design_hash(design), design$hash)) {
    abort_mkt("design_modified", c(
      "This design object was altered after {.fn rerandomize} created it.",
      i = "Inference conditional on the acceptance rule needs the rule as it was drawn.",
      i = "Re-create the design with {.fn rerandomize} instead of editing it."
    ), call = call)
  }
  invisible(design)
}

# --- buffer zones ----------------------------------------------------------------

# What the buffered criterion needs besides the kernel specification; the
# neighbour lists also go to C++ in compressed form (0-based).
buffer_spec <- function(rule, X, strata, alloc, min_per_arm) {
  sizes <- as.vector(table(strata))
  list(nb = rule$nb, A = rule$A, s_idx = as.integer(strata), n1 = as.numeric(alloc),
       pi_s = sizes / length(strata), X = X, min_controls = as.integer(min_per_arm),
       nb_start = as.integer(c(0L, cumsum(lengths(rule$nb)))),
       nb_idx = as.integer(unlist(rule$nb) - 1L), rate = 1)
}

# Criterion values of assignments W (N x R) under the buffer: the
# stratum-weighted difference in covariate means between treated and
# retained controls, whitened by the base design's covariance (so that, with
# an empty buffer, it equals the kernel's criterion). Assignments leaving a
# stratum fewer than `min_controls` controls are inadmissible (value Inf).
# Scored in C++ (src/rerandomize.h); `kept` counts retained controls per
# stratum (S x R).
buffered_values <- function(spec, W, threads = mkt_threads()) {
  b <- spec$buffer
  if (!is.matrix(W) || nrow(W) != nrow(b$X) || anyNA(W)) {
    abort_mkt("bad_argument", "Assignments must be a complete 0/1 matrix with one row per cluster.")
  }
  storage.mode(W) <- "integer"
  if (as.numeric(ncol(W)) * nrow(W) < 4e6) threads <- 1L
  res <- cpp_buffer_values(b$X, b$s_idx - 1L, b$n1, b$pi_s, b$nb_start, b$nb_idx,
                           spec$L, spec$crit_type, spec$block_start, b$min_controls, W,
                           threads)
  res$admissible <- is.finite(res$values[1, ])
  res
}

# Candidates of the base design (complete randomization within strata) from
# the C++ kernel, with every threshold open. Small requests run on one
# thread: starting a parallel region costs more than they take, and the
# draws do not depend on the thread count.
base_draws <- function(spec, m, threads = mkt_threads()) {
  if (as.numeric(m) * length(spec$units) < 4e6) threads <- 1L
  cpp_rerandomize_search(
    spec$z, spec$units, spec$start, spec$n_small, spec$small_treated,
    spec$crit_type, spec$block_start, rep(Inf, spec$n_blocks), draw_cpp_seed(),
    m, m, 4096L, threads, NULL
  )$assignments
}

# Which buffered candidates pass: admissible (finite values; an open
# threshold of Inf must not admit them) and within every block's threshold.
passes <- function(values, threshold) {
  ok <- is.finite(values[1, ])
  for (k in seq_len(nrow(values))) ok <- ok & values[k, ] <= threshold[k]
  ok
}

# The buffered counterpart of the kernel search: base candidates are drawn
# in C++ in chunks, the buffer and the criterion are applied in R, and the
# first `want` that pass are kept, in the order drawn.
buffered_search <- function(spec, want, max_candidates, threshold, threads = mkt_threads()) {
  cap <- max(256, floor(4e6 / length(spec$units)))
  found <- list()
  vals <- list()
  n_found <- 0
  candidates <- 0
  best <- Inf
  while (n_found < want && candidates < max_candidates) {
    need <- ceiling(1.5 * (want - n_found) / max(spec$buffer$rate, 1e-6)) + 64
    m <- min(cap, max_candidates - candidates, need)
    W <- base_draws(spec, m, threads)
    v <- buffered_values(spec, W)
    total <- colSums(v$values)
    best <- min(best, total)
    ok <- which(passes(v$values, threshold))
    if (length(ok) > want - n_found) {
      ok <- ok[seq_len(want - n_found)]
      m <- max(ok)
    }
    candidates <- candidates + m
    n_found <- n_found + length(ok)
    found[[length(found) + 1L]] <- W[, ok, drop = FALSE]
    vals[[length(vals) + 1L]] <- v$values[, ok, drop = FALSE]
  }
  list(assignments = do.call(cbind, found), values = do.call(cbind, vals),
       candidates = candidates, best = best)
}

# Calibration with a buffer: admissibility, empirical thresholds over the
# admissible draws, and the variance of each covariate's imbalance before and
# after the rule (for the balance table and the variance reduction).
calibrate_buffered <- function(spec, accept, n_calibration, strata,
                               call = rlang::caller_env()) {
  cap <- max(256, floor(4e6 / length(spec$units)))
  values <- list()
  tau <- list()
  n_retained <- list()
  short <- 0
  done <- 0
  while (done < n_calibration) {
    m <- min(cap, n_calibration - done)
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
  res <- buffered_search(spec, n, max(1e6, 100 * n / max(spec$buffer$rate, 1e-9)), threshold)
  W <- res$assignments
  retained <- W == 0L & !treated_neighbour(spec$buffer$nb, W)
  p <- cbind(treated = rowMeans(W), control = rowMeans(retained))
  p <- cbind(p, buffer = pmax(1 - p[, 1] - p[, 2], 0))
  rownames(p) <- plain_ids(ids)
  p
}
