#' Randomization test conditional on the design's acceptance rule
#'
#' Fisher randomization test of the sharp null of a constant additive effect,
#' \eqn{Y_j(1) - Y_j(0) = \tau_0} for every cluster, whose reference
#' distribution is drawn only from assignments that pass the design's own
#' rule: the same strata, arm sizes, criterion and threshold. This is what
#' makes the test exact after re-randomization. The unrestricted reference
#' distribution (all assignments of the base design) is computed beside it
#' and labelled, so users can see what ignoring the rule does: with
#' prognostic covariates that test is conservative, its p-values too large
#' and its intervals too wide.
#'
#' When the base design has at most `exact_max` assignments, all of them are
#' enumerated and the p-value is exact; otherwise `n_draws` accepted
#' assignments are drawn (in C++, on the resampling layer: the user's future
#' plan, progress through progressr, reproducible under `set.seed()`) and the
#' p-value \eqn{(1 + \#\{|T_r| \ge |T_{obs}|\}) / (R + 1)} is exactly valid,
#' with its Monte Carlo standard error reported. The confidence interval
#' inverts the test over \eqn{\tau_0}: each draw's statistic is a closed-form
#' function of \eqn{\tau_0}, so no refit is needed.
#'
#' @section Buffer zones:
#' For a design with a buffer (see [rerandomize()]), every reference
#' assignment gets its own buffer, recomputed by the design's rule, and must
#' pass the same admissibility and balance rule as the assignment that was
#' drawn. The statistic compares treated clusters with the controls outside
#' the buffer, each weighted by one over its probability of that arm under
#' the rule (a stratum-weighted Hajek difference); only
#' `statistic = "diff_in_means"` is available. Buffer clusters' outcomes never
#' enter it.
#'
#' What remains testable: the sharp null of no effect whatsoever (no direct
#' effect and no spillover, `null = 0`) fixes every cluster's outcome under
#' every assignment, so its p-value is exact whatever the interference, even
#' though which clusters are compared changes from one assignment to the next.
#' A shifted null \eqn{\tau_0 \ne 0} is different: imputing a buffer
#' cluster's outcome as a control then requires that its observed outcome
#' was not moved by its treated neighbours, which is exactly what the buffer
#' guards against. The p-value for `null != 0` and the interval obtained by
#' inverting the test are therefore valid only under a constant effect
#' without interference, and a warning says so. Under spillovers, read the
#' interval as a sensitivity check, and use the Neyman-style interval of
#' [experiment_effect()] (valid in large samples for the weighted contrast of
#' treated and isolated controls) or [spillover()] for the spillover itself.
#'
#' @param design A design from [rerandomize()].
#' @param outcome Numeric outcome per cluster, in the design's row order or
#'   named by cluster id.
#' @param statistic `"diff_in_means"` (stratum-weighted difference in means)
#'   or `"lin_t"` (Lin's regression-adjusted estimator on the design
#'   covariates and stratum indicators, divided by its HC2 standard error;
#'   Zhao and Ding 2021 show it also keeps asymptotic validity for the weak
#'   null).
#' @param n_draws Number of reference assignments for each reference
#'   distribution when not enumerating.
#' @param alternative `"two.sided"`, `"greater"` or `"less"`.
#' @param alpha One minus the confidence level of the interval.
#' @param null The constant effect \eqn{\tau_0} under the null hypothesis.
#' @param exact_max Enumerate when the base design has at most this many
#'   assignments.
#' @param chunk_size Reference draws per chunk of the resampling layer.
#' @return An object of class `mkt_randomization_test`; see [tidy()],
#'   [glance()] and [plot()][plot.mkt_randomization_test].
#' @examples
#' set.seed(3)
#' n <- 60
#' d <- data.frame(x1 = rnorm(n), x2 = rnorm(n))
#' des <- rerandomize(d, ~ x1 + x2, n_treated = 30, accept = 0.05)
#' y <- 2 * d$x1 + rnorm(n) + 0.8 * des$treated
#' rt <- randomization_test(des, y, n_draws = 2000)
#' tidy(rt)
#' glance(rt)
#' @export
randomization_test <- function(design, outcome, statistic = c("diff_in_means", "lin_t"),
                               n_draws = 10000, alternative = c("two.sided", "greater", "less"),
                               alpha = 0.05, null = 0, exact_max = 2e5, chunk_size = 1000L) {
  check_design(design)
  statistic <- match.arg(statistic)
  alternative <- match.arg(alternative)
  alpha <- check_alpha(alpha)
  n_draws <- check_count(n_draws, "n_draws", min = 100, max = 1e7)
  if (!is.numeric(null) || length(null) != 1L || !is.finite(null)) {
    abort_mkt("bad_argument", "{.arg null} must be one finite number.")
  }
  y <- design_outcome(design, outcome)
  spec <- design$spec
  buffered <- !is.null(spec$buffer)
  if (buffered && statistic == "lin_t") {
    abort_mkt("bad_argument", c(
      "{.code statistic = \"lin_t\"} is not available for a design with a buffer.",
      i = "Use {.code statistic = \"diff_in_means\"}, which compares treated clusters with the controls each assignment leaves outside the buffer."
    ))
  }
  sizes <- as.vector(table(design$strata))
  n_total <- exp(sum(lchoose(sizes, design$n_treated_by_stratum)))
  exact <- n_total <= exact_max

  pools <- list(
    conditional = reference_pool(spec, design$threshold, exact, n_draws, chunk_size,
                                 design$acceptance_rate),
    unconditional = reference_pool(spec, rep(Inf, length(design$threshold)), exact,
                                   n_draws, chunk_size, 1)
  )
  summarise <- statistic_summary(design, y, statistic)
  obs <- summarise(matrix(design$treated, ncol = 1L))
  refs <- lapply(pools, function(p) summarise(p$assignments))

  curves <- lapply(refs, function(ref) {
    function(tau0) randomization_p(tau0, obs, ref, alternative, exact)
  })
  estimate <- unname(obs["A", 1])
  scale <- if (statistic == "lin_t") sqrt(obs["P", 1]) else neyman_se(design, y)
  ci <- lapply(curves, invert_test, estimate = estimate, scale = scale,
               alpha = alpha, alternative = alternative)
  p <- vapply(curves, function(f) f(null), numeric(1))
  n_ref <- vapply(pools, function(x) ncol(x$assignments), numeric(1))

  cond_prob <- rowMeans(pools$conditional$assignments)
  names(cond_prob) <- design$ids
  if (buffered && null != 0) {
    warn_mkt("buffer_null", c(
      "With a buffer, only the sharp null of no effect at all ({.code null = 0}) is tested without assuming away spillovers.",
      i = "A p-value for {.code null = {null}} assumes a constant effect and no interference; see {.fn randomization_test}."
    ))
  }
  structure(list(
    design = design,
    statistic_name = statistic,
    estimate = estimate,
    std.error = if (statistic == "lin_t") sqrt(unname(obs["P", 1])) else NA_real_,
    statistic = unname(stat_at(null, obs)[1]),
    null = null,
    alternative = alternative,
    alpha = alpha,
    p.value = p[["conditional"]],
    p.value_unconditional = p[["unconditional"]],
    mc_se = if (exact) c(0, 0) else sqrt(p * (1 - p) / n_ref),
    conf.int = unname(ci$conditional),
    conf.int_unconditional = unname(ci$unconditional),
    exact = exact,
    n_draws = n_ref,
    n_assignments = n_total,
    candidates = pools$conditional$candidates,
    reference = lapply(refs, function(ref) stat_at(null, ref)),
    assignment_prob = cond_prob,
    buffer = buffered
  ), class = c("mkt_randomization_test", "mkt_fit"))
}

# The outcome as a numeric vector in the design's row order.
design_outcome <- function(design, outcome, call = rlang::caller_env()) {
  if (!is.numeric(outcome)) {
    abort_mkt("misaligned", c(
      "{.arg outcome} must be a numeric vector with one value per cluster.",
      x = "It is of class {.cls {class(outcome)}}."
    ), call = call)
  }
  n <- length(design$treated)
  if (!is.null(names(outcome))) {
    miss <- setdiff(design$ids, names(outcome))
    if (length(miss) || length(outcome) != n) {
      abort_mkt("misaligned", c(
        "The names of {.arg outcome} do not match the design's cluster ids.",
        i = "{length(miss)} design cluster{?s} {?has/have} no outcome, e.g. {.val {utils::head(miss, 3)}}.",
        i = "Give one value per cluster, named by id or in the design's row order."
      ), call = call)
    }
    outcome <- outcome[design$ids]
  } else if (length(outcome) != n) {
    abort_mkt("misaligned", c(
      "{.arg outcome} has {length(outcome)} value{?s}; the design has {n} clusters.",
      i = "Give one value per cluster, in the design's row order or named by id."
    ), call = call)
  }
  if (anyNA(outcome) || any(!is.finite(outcome))) {
    abort_mkt("missing_values", c(
      "{.arg outcome} has {sum(!is.finite(outcome))} missing or infinite value{?s}.",
      i = "A randomization test needs every cluster's outcome; see {.fn experiment_diagnostics} for attrition."
    ), call = call)
  }
  as.numeric(unname(outcome))
}

# Accepted assignments (columns) of the rule with thresholds `threshold`:
# all of them when enumerating, otherwise `n_draws` drawn on the resampling layer.
# With a buffer the same rule is re-applied to every assignment: the buffer
# is recomputed, inadmissible assignments are dropped, and balance is
# measured against the retained controls (buffered_values()).
reference_pool <- function(spec, threshold, exact, n_draws, chunk_size, rate) {
  if (exact) {
    open <- if (is.null(spec$buffer)) threshold else rep(Inf, length(threshold))
    en <- cpp_rerandomize_enumerate(spec$z, spec$units, spec$start, spec$n_treated,
                                    spec$crit_type, spec$block_start, open)
    if (!is.null(spec$buffer)) {
      keep <- passes(buffered_values(spec, en$assignments)$values, threshold)
      return(list(assignments = en$assignments[, keep, drop = FALSE], candidates = en$total))
    }
    return(list(assignments = en$assignments, candidates = en$total))
  }
  budget <- max(1e6, 100 * chunk_size / max(rate, 1e-12))
  chunks <- resample_chunks(n_draws, function(idx) {
    res <- run_search(spec, want = length(idx), max_candidates = budget,
                      threshold = threshold)
    if (ncol(res$assignments) < length(idx)) {
      abort_mkt("no_acceptable_assignment", c(
        "Drawing reference assignments failed: {ncol(res$assignments)} of {length(idx)} found in {format(budget)} candidates.",
        i = "The rule accepts too rarely; re-create the design with a larger {.arg accept}."
      ))
    }
    res
  }, chunk_size = chunk_size, label = "reference assignments")
  list(assignments = do.call(cbind, lapply(chunks, `[[`, "assignments")),
       candidates = sum(vapply(chunks, `[[`, numeric(1), "candidates")))
}

# Returns a function mapping assignments (n x R) to the 5 x R summaries
# A, B, P, Q, S of src/lin_stats.h for the chosen statistic.
statistic_summary <- function(design, y, statistic) {
  w_obs <- design$treated
  if (!is.null(design$spec$buffer)) return(buffered_summary(design, y))
  if (statistic == "diff_in_means") {
    s <- as.integer(design$strata)
    sizes <- as.vector(table(design$strata))
    n1 <- design$n_treated_by_stratum
    pi_s <- sizes / length(y)
    # Stratum-weighted difference in means is linear in the assignment:
    # sum_j w_j c_j v_j - sum_j d_j v_j with the weights below.
    c_j <- pi_s[s] * (1 / n1[s] + 1 / (sizes[s] - n1[s]))
    d_j <- pi_s[s] / (sizes[s] - n1[s])
    return(function(W) {
      A <- as.vector(crossprod(W, c_j * y)) - sum(d_j * y)
      B <- as.vector(crossprod(W, c_j * w_obs)) - sum(d_j * w_obs)
      rbind(A = A, B = B, P = NA_real_, Q = NA_real_, S = NA_real_)
    })
  }
  x <- lin_covariates(design)
  function(W) cpp_lin_stats(y, as.numeric(w_obs), x, W, mkt_threads())
}

# With a buffer, the statistic is the stratum-weighted Hajek difference
# between treated clusters and the controls each assignment leaves outside
# the buffer, each weighted by one over its probability of that arm under the
# rule (the design's fixed $arm_prob). It is linear in the outcome, so the
# A - tau0 B form of stat_at() holds: B is the same statistic applied to the
# observed assignment vector, and the statistic applied to the assignment
# itself is 1.
buffered_summary <- function(design, y) {
  w_obs <- as.numeric(design$treated)
  wt <- arm_weights(design)
  b <- design$spec$buffer
  function(W) {
    retained <- W == 0L & !treated_neighbour(b$nb, W)
    A <- B <- numeric(ncol(W))
    for (s in seq_along(b$n1)) {
      rows <- which(b$s_idx == s)
      Ws <- W[rows, , drop = FALSE] * 1
      Cs <- retained[rows, , drop = FALSE] * 1
      at <- wt$treated[rows]
      ac <- wt$control[rows]
      dt <- pmax(as.vector(crossprod(Ws, at)), 1e-300)
      dc <- pmax(as.vector(crossprod(Cs, ac)), 1e-300)
      A <- A + b$pi_s[s] * (as.vector(crossprod(Ws, at * y[rows])) / dt -
                              as.vector(crossprod(Cs, ac * y[rows])) / dc)
      B <- B + b$pi_s[s] * (as.vector(crossprod(Ws, at * w_obs[rows])) / dt -
                              as.vector(crossprod(Cs, ac * w_obs[rows])) / dc)
    }
    rbind(A = A, B = B, P = NA_real_, Q = NA_real_, S = NA_real_)
  }
}

# Inverse-probability weights of each cluster in the treated and control
# arms under a buffered design. Probabilities are estimated from a finite set
# of accepted draws, so they are floored at half a draw: a cluster that was
# never a control in those draws gets the largest weight, not an infinite one.
arm_weights <- function(design) {
  p <- design$arm_prob
  floor_p <- 0.5 / 2000
  list(treated = 1 / pmax(p[, "treated"], floor_p), control = 1 / pmax(p[, "control"], floor_p))
}

# Design covariates plus stratum indicators, centred at the full-sample mean.
lin_covariates <- function(design) {
  x <- design$X
  if (nlevels(design$strata) > 1L) {
    dummies <- stats::model.matrix(~ design$strata)[, -1, drop = FALSE]
    x <- cbind(x, dummies)
  }
  x <- sweep(x, 2, colMeans(x))
  storage.mode(x) <- "double"
  x
}

# Statistic of each draw (columns of a summary) under the null tau0.
stat_at <- function(tau0, s) {
  num <- unname(s["A", ] - tau0 * s["B", ])
  if (anyNA(s["P", ])) return(num)
  num / sqrt(pmax(s["P", ] - 2 * tau0 * s["Q", ] + tau0^2 * s["S", ], 1e-300))
}

randomization_p <- function(tau0, obs, ref, alternative, exact) {
  t_obs <- stat_at(tau0, obs)
  t_ref <- stat_at(tau0, ref)
  tol <- 1e-10 * max(1, abs(t_obs))
  hits <- switch(alternative,
    two.sided = sum(abs(t_ref) >= abs(t_obs) - tol),
    greater = sum(t_ref >= t_obs - tol),
    less = sum(t_ref <= t_obs + tol)
  )
  # Enumerated pools contain the observed assignment; drawn pools do not.
  if (exact) hits / length(t_ref) else (1 + hits) / (length(t_ref) + 1)
}

# The set of tau0 not rejected at level alpha, connected to the estimate:
# step out from the estimate until the test rejects, then bisect.
invert_test <- function(pfun, estimate, scale, alpha, alternative) {
  if (!is.finite(scale) || scale <= 0) scale <- max(abs(estimate), 1)
  bound <- function(direction) {
    inside <- estimate
    step <- scale
    outside <- estimate + direction * step
    tries <- 0
    while (pfun(outside) > alpha) {
      inside <- outside
      step <- step * 2
      outside <- estimate + direction * step
      tries <- tries + 1
      if (tries > 60) return(direction * Inf)
    }
    for (i in 1:60) {
      mid <- (inside + outside) / 2
      if (pfun(mid) > alpha) inside <- mid else outside <- mid
      if (abs(outside - inside) < 1e-9 * scale) break
    }
    (inside + outside) / 2
  }
  lo <- if (alternative == "less") -Inf else bound(-1)
  hi <- if (alternative == "greater") Inf else bound(1)
  c(lo, hi)
}

neyman_se <- function(design, y) {
  s <- as.integer(design$strata)
  w <- design$treated
  pi_s <- as.vector(table(s)) / length(y)
  v <- 0
  for (j in seq_along(pi_s)) {
    y1 <- y[s == j & w == 1]
    y0 <- y[s == j & w == 0]
    v1 <- if (length(y1) > 1) stats::var(y1) / length(y1) else 0
    v0 <- if (length(y0) > 1) stats::var(y0) / length(y0) else 0
    v <- v + pi_s[j]^2 * (v1 + v0)
  }
  sqrt(v)
}
