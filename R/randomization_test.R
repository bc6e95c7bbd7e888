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
#' @section Several cells:
#' For a design with several cells ([rerandomize()] with a named
#' `n_treated`), the treatment column holds each cluster's cell label and the
#' test is of the sharp null that no cell has any effect on any cluster, so
#' every outcome is fixed under every reference assignment of the rule
#' (drawn by `reference_cells()`). Each contrast (every treated cell against
#' control, plus `contrasts`) gets its own p-value from its studentized
#' statistic (the stratum-weighted difference of cell means over its Neyman
#' or matched-block standard error, or with `"lin_t"` the HC2 t of the
#' difference of Lin's adjusted cell means), and a family-wise
#' p-value by max-T: in each reference draw the largest |t| over the
#' contrasts (t being the difference over its Neyman, stratum-weighted,
#' standard error for `"diff_in_means"`), and the adjusted p-value of a
#' contrast is the share of draws whose maximum reaches its observed |t|.
#' Rejecting where `p.value_familywise <= alpha` keeps the chance of any
#' false rejection at most `alpha`. Only `null = 0` and the two-sided
#' alternative are available; there is no interval.
#' With a buffer, each reference draw gets its own buffer (controls next to
#' any treated cell, coded -1 by `reference_cells()`) and the statistic is
#' each cell's stratum-weighted Hajek mean minus the kept controls' (the
#' weights of [experiment_effect()]) over its linearized standard error;
#' only `statistic = "diff_in_means"` is available.
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
#' @param formula `outcome ~ treatment`: two columns of `data`, the outcome
#'   of each cluster and its 0/1 treatment, which must be the design's
#'   assignment.
#' @param data A data frame with one row per designed cluster (for example
#'   a [geo_units()] table with the test-window totals). Rows are matched to
#'   the design by its id column when `data` has it, otherwise by row order.
#' @param design A design from [rerandomize()].
#' @param statistic `"diff_in_means"` (stratum-weighted difference in means)
#'   or `"lin_t"` (Lin's regression-adjusted estimator on the design
#'   covariates, divided by its HC2 standard error; Zhao and Ding 2021 show
#'   it also keeps asymptotic validity for the weak null). Stratum indicators
#'   join the covariates when every stratum holds at least two clusters in
#'   each arm, exactly as in the Lin row of [experiment_effect()]; matched
#'   pairs therefore use the covariates alone. When Lin's regression cannot
#'   be fitted under some assignment (an arm with fewer clusters than
#'   regressors, or a covariate constant within an arm), the error
#'   `mktcausal_error_collinear` says so.
#' @param alternative `"two.sided"`, `"greater"` or `"less"`.
#' @param null The constant effect \eqn{\tau_0} under the null hypothesis.
#' @param exact_max Enumerate when the base design has at most this many
#'   assignments.
#' @param n_draws Number of reference assignments for each reference
#'   distribution when not enumerating.
#' @param chunk_size Reference draws per chunk of the resampling layer: the
#'   unit of work and of progress. It does not change the results: each
#'   reference draw comes from its own random stream, fixed by the seed and
#'   the draw's index, so the same seed gives the same p-value for any chunk
#'   size, future plan and number of threads.
#' @param alpha One minus the confidence level of the interval.
#' @param contrasts With several cells, further comparisons besides every
#'   treated cell against control: a list of pairs of cell labels, e.g.
#'   `list(c("heavy_up", "go_dark"))`.
#' @param ... Must be empty.
#' @return A fit of class `c("mkt_randomization_test", "mkt_fit")` (see
#'   [mkt_fit]): one row, the estimate with the p-value conditional on the
#'   acceptance rule and the interval that inverts it. `glance()` adds the
#'   p-value and interval that ignore the rule (`p.value_unconditional`,
#'   `conf.low_unconditional`, `conf.high_unconditional`), the numbers of
#'   reference draws (`n_draws`, `n_draws_unconditional`), whether they were
#'   enumerated (`exact`), the Monte Carlo standard error of the p-value
#'   (`mc_se`) and the number of assignments of the base design.
#'   `tidy(fit, "reference")` gives the two reference distributions of the
#'   statistic under the null, `tidy(fit, "clusters")` each cluster's outcome
#'   and probability of treatment under the rule. `plot(fit)` draws the
#'   reference distributions; `plot(fit, type = "pvalue")` the p-value as a
#'   function of the null effect, whose cut at `alpha` is the interval, from
#'   `tidy(fit, "pvalue")` (columns `null`, `reference`, `p.value`).
#' @examples
#' set.seed(3)
#' n <- 60
#' d <- data.frame(id = sprintf("g%02d", 1:n), x1 = rnorm(n), x2 = rnorm(n))
#' des <- rerandomize(d, ~ x1 + x2, n_treated = 30, accept = 0.05, id = "id")
#' d$treated <- des$treated
#' d$sales <- 2 * d$x1 + rnorm(n) + 0.8 * d$treated
#' rt <- randomization_test(sales ~ treated, d, design = des, n_draws = 2000)
#' rt
#' glance(rt)
#' @export
randomization_test <- function(formula, data, design,
                               statistic = c("diff_in_means", "lin_t"),
                               alternative = c("two.sided", "greater", "less"),
                               null = 0, exact_max = 2e5, n_draws = 10000,
                               chunk_size = 1000L, alpha = 0.05, contrasts = NULL, ...) {
  check_dots(...)
  call <- match.call()
  if (missing(design)) design <- NULL
  check_design(design)
  statistic <- check_choice(statistic)
  alternative <- check_choice(alternative)
  if (isTRUE(design$multi_cell)) {
    return(randomization_test_cells_front(formula, data, design, statistic, alternative,
                                          null, n_draws, chunk_size, alpha, contrasts, call))
  }
  if (!is.null(contrasts)) {
    abort_mkt("bad_contrast", c(
      "{.arg contrasts} compares cells, but this design has two arms.",
      i = "Leave {.arg contrasts} out, or make a design with several cells in {.fn rerandomize}."
    ))
  }
  input <- design_cluster_outcome(formula, data, design)
  randomization_test_fit(design, input$y, statistic = statistic,
                         alternative = alternative, null = null, exact_max = exact_max,
                         n_draws = n_draws, chunk_size = chunk_size, alpha = alpha,
                         call = call, vars = input$vars)
}

# The test on the outcome vector `y` of a checked design, in the design's
# row order: the core that experiment_effect() also calls.
randomization_test_fit <- function(design, y, statistic = "diff_in_means",
                                   alternative = "two.sided", null = 0, exact_max = 2e5,
                                   n_draws = 10000, chunk_size = 1000L, alpha = 0.05,
                                   call = NULL, vars = NULL, caller = rlang::caller_env()) {
  alpha <- check_alpha(alpha, call = caller)
  n_draws <- check_count(n_draws, "n_draws", min = 100, max = 1e7, call = caller)
  exact_max <- check_count(exact_max, "exact_max", min = 0, large = TRUE, call = caller)
  chunk_size <- check_count(chunk_size, "chunk_size", min = 1, call = caller)
  if (!is.numeric(null) || length(null) != 1L || !is.finite(null)) {
    abort_mkt("bad_argument", "{.arg null} must be one finite number.", call = caller)
  }
  spec <- design$spec
  buffered <- !is.null(spec$buffer)
  if (buffered && statistic == "lin_t") {
    abort_mkt("bad_argument", c(
      "{.code statistic = \"lin_t\"} is not available for a design with a buffer.",
      i = "Use {.code statistic = \"diff_in_means\"}, which compares treated clusters with the controls each assignment leaves outside the buffer."
    ), call = caller)
  }
  sizes <- as.vector(table(design$strata))
  n_total <- exp(sum(lchoose(sizes, design$n_treated_by_stratum)))
  exact <- n_total <= exact_max

  summarise <- statistic_summary(design, y, statistic)
  obs <- summarise(matrix(design$treated, ncol = 1L))
  check_statistic(obs, statistic, "the observed assignment", caller)
  # Each chunk of reference draws is reduced to its summaries at once.
  pools <- list(
    conditional = reference_pool(spec, design$threshold, exact, n_draws, chunk_size,
                                 design$acceptance_rate, summarise = summarise, call = caller),
    unconditional = reference_pool(spec, rep(Inf, length(design$threshold)), exact,
                                   n_draws, chunk_size, 1, summarise = summarise, call = caller)
  )
  refs <- lapply(pools, `[[`, "summaries")
  check_statistic(refs$conditional, statistic, "some reference assignments", caller)
  check_statistic(refs$unconditional, statistic, "some reference assignments", caller)

  curves <- lapply(refs, function(ref) {
    function(tau0) randomization_p(tau0, obs, ref, alternative, exact)
  })
  estimate <- unname(obs["A", 1])
  scale <- if (statistic == "lin_t") sqrt(obs["P", 1]) else neyman_se(design, y)
  ci <- lapply(curves, invert_test, estimate = estimate, scale = scale,
               alpha = alpha, alternative = alternative)
  p <- vapply(curves, function(f) f(null), numeric(1))
  n_ref <- vapply(pools, `[[`, numeric(1), "n")
  mc_se <- if (exact) c(0, 0) else sqrt(p * (1 - p) / n_ref)

  if (buffered && null != 0) {
    warn_mkt("buffer_null", c(
      "With a buffer, only the sharp null of no effect at all ({.code null = 0}) is tested without assuming away spillovers.",
      i = "A p-value for {.code null = {null}} assumes a constant effect and no interference; see {.fn randomization_test}."
    ))
  }
  est <- data.frame(
    term = statistic, estimate = estimate,
    std.error = if (statistic == "lin_t") sqrt(unname(obs["P", 1])) else NA_real_,
    statistic = unname(stat_at(null, obs)[1]), p.value = p[["conditional"]],
    conf.low = ci$conditional[1], conf.high = ci$conditional[2],
    stringsAsFactors = FALSE
  )
  reference <- lapply(refs, function(ref) stat_at(null, ref))
  # The p-value function of both references on a grid around the estimate
  # (what plot(fit, "pvalue") draws): tidy(fit, "pvalue").
  width <- est$conf.high - est$conf.low
  if (!is.finite(width) || width <= 0) width <- max(abs(estimate), 1)
  grid <- seq(estimate - 1.2 * width, estimate + 1.2 * width, length.out = 241)
  pvalue <- do.call(rbind, lapply(names(curves), function(r) {
    data.frame(null = grid, reference = r, p.value = vapply(grid, curves[[r]], numeric(1)),
               stringsAsFactors = FALSE)
  }))
  arm <- if (buffered) as.character(design$arm) else
    ifelse(design$treated == 1, "treated", "control")
  n_strata <- nlevels(design$strata)
  how <- if (exact) {
    sprintf("exact enumeration of the %s assignments the rule accepts",
            format(n_ref[["conditional"]], big.mark = ","))
  } else {
    sprintf("%s assignments drawn from the rule", format(n_ref[["conditional"]], big.mark = ","))
  }
  new_fit(
    "randomization_test", est,
    method = "Randomization test conditional on the design's acceptance rule",
    estimand = paste0(
      sprintf("sharp null of a constant effect of %s on every cluster's outcome; ", format(null)),
      if (statistic == "lin_t") "estimate: Lin's regression-adjusted difference, statistic its HC2 t" else
        if (buffered) "estimate: weighted difference between treated clusters and controls outside the buffer" else
        if (n_strata > 1L) "estimate: stratum-weighted difference in means" else
        "estimate: difference in means"),
    inference = sprintf("Fisher test, %s; interval by inverting the test", how),
    alpha = alpha,
    n = list(obs = length(y), units = length(y), treated = sum(design$treated),
             strata = if (n_strata > 1L) n_strata else NA_integer_,
             buffer = if (buffered) sum(design$arm == "buffer") else NA_integer_),
    call = call,
    no_vcov = "a randomization test gives a p-value and the interval that inverts it, not a covariance",
    vars = vars,
    glance = list(
      p.value_unconditional = p[["unconditional"]],
      conf.low_unconditional = ci$unconditional[1],
      conf.high_unconditional = ci$unconditional[2],
      n_draws = as.integer(n_ref[["conditional"]]),
      n_draws_unconditional = as.integer(n_ref[["unconditional"]]),
      exact = exact, mc_se = mc_se[[1]], null = null, alternative = alternative,
      n_assignments = n_total
    ),
    tables = list(
      reference = rbind(
        data.frame(reference = "conditional", statistic = reference$conditional,
                   stringsAsFactors = FALSE),
        data.frame(reference = "unconditional", statistic = reference$unconditional,
                   stringsAsFactors = FALSE)),
      pvalue = pvalue,
      clusters = data.frame(id = design$ids, stratum = as.character(design$strata),
                            treated = design$treated, arm = arm, outcome = y,
                            prob_treated = pools$conditional$row_sums / n_ref[["conditional"]],
                            stringsAsFactors = FALSE)
    ),
    exact = exact, reference = reference, summaries = list(obs = obs, refs = refs),
    statistic_name = statistic, null = null, alternative = alternative,
    buffered = buffered, mc_se = mc_se
  )
}

# The statistic must exist for every assignment: Lin's estimator needs more
# clusters in each arm than it has regressors, and regressors that vary
# within each arm.
check_statistic <- function(s, statistic, what, call) {
  bad <- !is.finite(s["A", ]) | !is.finite(s["B", ]) |
    (statistic == "lin_t" & (!is.finite(s["P", ]) | !is.finite(s["Q", ]) | !is.finite(s["S", ])))
  if (!any(bad)) return(invisible(TRUE))
  abort_mkt("collinear", c(
    "Lin's regression cannot be fitted under {what}: an arm has fewer clusters than regressors, or a covariate that does not vary within it.",
    i = "Balance on fewer covariates in {.fn rerandomize}, or use {.code statistic = \"diff_in_means\"}."
  ), call = call)
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
  function(W) cpp_lin_stats(y, as.numeric(w_obs), x, W, threads_for())
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
