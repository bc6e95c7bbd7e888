#' Sensitivity of an event study to violations of parallel trends
#'
#' `honest_sensitivity()` computes the robust confidence sets of Rambachan
#' and Roth (2023) for a post-period effect of an event study: sets that stay
#' valid when the trend violation in the post-periods is bounded by what the
#' pre-periods show, rather than assumed to be zero. Two restrictions are
#' offered:
#'
#' * `type = "relative_magnitudes"` (Delta^RM(Mbar)): the change in the
#'   violation between consecutive post-periods is at most `Mbar` times the
#'   largest such change between consecutive pre-periods. `Mbar = 1` says
#'   post-period shocks are no larger than the worst pre-period shock.
#'   Confidence sets come from the conditional test of Andrews, Roth and
#'   Pakes (2023), or its hybrid with a least-favourable first stage (the
#'   default, as Rambachan and Roth recommend).
#' * `type = "smoothness"` (Delta^SD(M)): the violation's slope may change
#'   by at most `M` per period, so `M = 0` allows a linear trend carried on
#'   from the pre-periods. The set is the optimal fixed-length confidence
#'   interval (FLCI) of Armstrong and Kolesar, built from the affine
#'   estimator of the target with the shortest worst-case interval.
#'
#' @section Event-study fits:
#' Rambachan and Roth's restrictions bound a violation of parallel trends
#' `delta` measured against the period before adoption (event time -1).
#' The coefficients of `"sa"`, `"twfe"` and `"cs"` with
#' `base_period = "universal"` are already relative to that period and are
#' used as they are. The others are first restated against it, by a linear
#' map that is applied to the covariance too:
#'
#' * `"cs"` with `base_period = "varying"`: its pre-period coefficients
#'   compare each period with the one before, so the violation at event time
#'   `k` against -1 is minus the sum of the coefficients from `k + 1` to -1
#'   (this adds one pre-period, before the earliest coefficient).
#' * `"imputation"`: an effect compares treated outcomes with untreated
#'   outcomes imputed from unit effects fitted on all of a unit's
#'   pre-adoption periods, so a violation biases the effect at `e` by
#'   `delta(e)` minus a weighted mean of the pre-period violations, with the
#'   estimator's own weights (they sum to one; some can be negative). The
#'   leads, from the regression on untreated cells, measure the violations
#'   against the earliest event time. The pre-periods become the leads minus
#'   the lead at -1, and each effect becomes the effect plus its weighted
#'   mean of those restated leads: an estimate of `tau(e) + delta(e) -
#'   delta(-1)`, which is what the restrictions need. Leads and effects are
#'   estimated on the same untreated cells, and their covariance comes from
#'   the per-cluster scores of both. The `"original"` row then shows the
#'   restated effect, not the imputation estimate (they agree when parallel
#'   trends hold), and the window keeps all leads inside `min_e`.
#'
#' Both restatements are exact when the violation is a path `delta(e)` of
#' event time shared by the adoption cohorts, the assumption under which
#' pooled leads and pre-trend tests are read anyway; with cohort-specific
#' paths, `delta` is a weighted mean of them whose weights differ slightly
#' from one coefficient to the next.
#'
#' @section Computation:
#' The FLCI is found by a one-dimensional search along a lasso path
#' (coordinate descent; the problems have one coordinate per pre-period) and
#' the exact folded-normal quantile, so it needs no convex solver. The ARP
#' test is a small linear program whose dual feasible set does not depend on
#' the data. With one or two post-periods its vertices are listed once per
#' restriction in C++ and every test value, conditioning interval and
#' least-favourable draw becomes a matrix product. With more (their number
#' grows like `choose(2 * n_post, n_post)`), every program is solved exactly
#' by a dense simplex method in C++, warm-started from one test value or
#' draw to the next; the ends of the conditioning interval are two more
#' programs per run of test values that share their optimal vertex. Both
#' give the same sets; 24 post-periods and 8 pre-periods take from seconds
#' (one post-period as the target) to half a minute (their average, with
#' the breakdown value). Following Rambachan and Roth's own implementation,
#' the test uses the moments that involve post-period violations, evaluates
#' the set on a grid of `grid_points` values (by default 20 standard errors
#' of the target either side of its estimate, widened while the set touches
#' an end) and then refines both ends by testing two successively finer
#' grids inside the boundary cells (`refine = FALSE` keeps the grid values).
#' The hybrid's least-favourable critical value is simulated
#' from `n_draws` normal draws taken from R's generator, reproducible with
#' [set.seed()]; the same draws serve every restriction and every `Mbar`.
#'
#' The breakdown value is the largest `M` (or `Mbar`) at which a zero
#' effect is still rejected (the FLCI excludes zero; the ARP test rejects
#' zero), found by bisection to a relative precision of 1e-4; it is `NA`
#' when zero is not rejected even at `M = 0`.
#'
#' @param object An [event_study()] fit of any method (`"cs"`, `"sa"`,
#'   `"twfe"` or `"imputation"`; see the section on event-study fits for
#'   how each is put against the period before adoption), or a numeric
#'   vector of event-study coefficients relative to the period before
#'   adoption, pre-periods first and that reference period left out, with
#'   `sigma` and `n_pre`. Any
#'   other object, or a vector without `sigma` and `n_pre`, is an error of
#'   class `mktcausal_error_honest_input`. A request whose draws or grid
#'   cannot fit in memory is one of class `mktcausal_error_too_large`.
#' @param type `"relative_magnitudes"` or `"smoothness"`.
#' @param M The values of `Mbar` (relative magnitudes) or `M` (smoothness)
#'   to report. By default `Mbar` runs from 0 to 2 and `M` from 0 to the
#'   upper end of a confidence interval for the largest pre-period second
#'   difference.
#' @param target `"first"` (the first post-period), `"average"` (the mean
#'   over post-periods), one post-period event time (for a fit: the event
#'   time itself, for example `2`; for a vector: its position), or a numeric
#'   weight vector with one entry per post-period.
#' @param inference For relative magnitudes, the test inverted into the
#'   set: `"hybrid"` (conditional test with a least-favourable first stage
#'   of size `alpha / 10`) or `"conditional"`. Smoothness sets are always
#'   the FLCI.
#' @param alpha Significance level.
#' @param n_draws Draws for the least-favourable critical value.
#' @param grid_points,grid_lb,grid_ub The grid of target values tested for
#'   relative magnitudes; `NULL` bounds give the default grid.
#' @param refine Refine the ends of relative-magnitude sets beyond the grid.
#' @param breakdown Compute the breakdown value.
#' @param ... Must be empty.
#' @return A fit of class `c("mkt_honest", "mkt_fit")` (see [mkt_fit]). Its
#'   estimates have one row for the conventional interval (term
#'   `"original"`) and one per value of `M` (terms `"M = 0.5"`): `estimate`
#'   is the target's estimate on every row, `std.error` its standard error
#'   (original row), `conf.low` and `conf.high` the sets, with the columns
#'   `M`, `method` (`"original"`, `"C-LF"`, `"Conditional"` or `"FLCI"`),
#'   `open` (the set reached the end of its grid) and `target`. The sets are
#'   not Wald intervals, so the fit has no `vcov()`. `glance()` adds the
#'   breakdown value; the fit also holds `breakdown`, `estimate`,
#'   `std.error` and `weights` (the target vector `l`).
#' @references Rambachan, A. and Roth, J. (2023). A more credible approach
#'   to parallel trends. *Review of Economic Studies* 90(5), 2555-2591.
#'
#'   Andrews, I., Roth, J. and Pakes, A. (2023). Inference for linear
#'   conditional moment inequalities. *Review of Economic Studies* 90(6),
#'   2763-2791.
#'
#'   Armstrong, T. B. and Kolesar, M. (2018). Optimal inference in a class
#'   of regression models. *Econometrica* 86(2), 655-683.
#' @examples
#' mpdta$post <- as.integer(mpdta$first.treat > 0 & mpdta$year >= mpdta$first.treat)
#' es <- event_study(lemp ~ post | countyreal + year, mpdta, method = "sa")
#' set.seed(1)
#' hs <- honest_sensitivity(es, "relative_magnitudes", M = c(0, 0.5, 1))
#' hs
#' honest_sensitivity(es, "smoothness", M = c(0, 0.01, 0.02))
#' @export
honest_sensitivity <- function(object, ...) UseMethod("honest_sensitivity")

#' @rdname honest_sensitivity
#' @export
honest_sensitivity.default <- function(object, ...) {
  abort_mkt("honest_input", c(
    "{.fn honest_sensitivity} needs an {.fn event_study} fit or a numeric vector of coefficients.",
    x = "You supplied {.obj_type_friendly {object}}."
  ))
}

#' @rdname honest_sensitivity
#' @export
honest_sensitivity.mkt_event_study <- function(object,
                                               type = c("relative_magnitudes", "smoothness"),
                                               M = NULL, target = "first",
                                               inference = c("hybrid", "conditional"),
                                               alpha = 0.05, n_draws = 1000,
                                               grid_points = 1000, grid_lb = NULL,
                                               grid_ub = NULL, refine = TRUE,
                                               breakdown = TRUE, ...) {
  check_dots(...)
  type <- check_choice(type)
  inference <- check_choice(inference)
  ref <- honest_reference(object)
  ev <- ref$event
  r <- -1
  if (any(diff(sort(c(ev, r))) != 1) || !any(ev < r) || !any(ev > r)) {
    abort_mkt("honest_input", c(
      "The event times must be consecutive, with pre-periods before and post-periods after event time -1.",
      i = "Widen `min_e`/`max_e` in `event_study()` or drop the gaps."
    ))
  }
  post_events <- ev[ev > r]
  if (is.numeric(target) && length(target) == 1) {
    if (!target %in% post_events) {
      abort_mkt("honest_target", c(
        sprintf("`target = %s` is not a post-period event time.", format(target)),
        i = sprintf("Choose one of %s, \"first\" or \"average\".", paste(post_events, collapse = ", "))
      ))
    }
    target <- match(target, post_events)
  }
  # Event-study fits keep their covariance on the internal scale of the
  # outcome (that of outcomes near 1e300 overflows): the sets are found on
  # that scale and reported in the outcome's units.
  scale <- object$scale %||% 1
  out <- honest_fit(ref$estimate, sigma = ref$sigma, n_pre = sum(ev < r), type = type,
                    M = M, target = target, inference = inference, alpha = alpha, n_draws = n_draws,
                    grid_points = grid_points, grid_lb = grid_lb, grid_ub = grid_ub,
                    refine = refine, breakdown = breakdown, n = object$n,
                    vars = object$vars, call = method_call(match.call(), "honest_sensitivity"),
                    post_events = post_events, scale = scale)
  out$events <- ev
  out$post_events <- post_events
  out$restated <- if (identical(object$estimator, "imputation")) {
    "Imputation effects"
  } else if (identical(object$base_period, "varying")) {
    "Varying-base pre-periods"
  }
  out
}

#' @rdname honest_sensitivity
#' @param sigma Covariance matrix of the coefficients (numeric method).
#' @param n_pre Number of pre-period coefficients (numeric method).
#' @export
honest_sensitivity.numeric <- function(object, sigma, n_pre,
                                       type = c("relative_magnitudes", "smoothness"),
                                       M = NULL, target = "first",
                                       inference = c("hybrid", "conditional"), alpha = 0.05,
                                       n_draws = 1000, grid_points = 1000, grid_lb = NULL,
                                       grid_ub = NULL, refine = TRUE, breakdown = TRUE, ...) {
  check_dots(...)
  type <- check_choice(type)
  inference <- check_choice(inference)
  if (missing(sigma) || missing(n_pre) || is.null(sigma) || is.null(n_pre)) {
    if (!missing(sigma) && is.null(sigma)) sigma <- rlang::missing_arg()
    if (!missing(n_pre) && is.null(n_pre)) n_pre <- rlang::missing_arg()
    abort_mkt("honest_input", c(
      "A numeric vector of coefficients needs {.arg sigma} (their covariance) and {.arg n_pre} (how many are pre-periods).",
      x = "{.arg {c('sigma', 'n_pre')[c(missing(sigma), missing(n_pre))]}} {?is/are} missing.",
      i = "Call {.code honest_sensitivity(beta, sigma = V, n_pre = 3)}, or pass an {.fn event_study} fit."
    ))
  }
  if (length(dim(object)) > 1L && sum(dim(object) > 1L) > 1L) {
    abort_mkt("honest_input", c(
      "{.arg object} must be a vector of event-study coefficients, not a matrix.",
      x = "You supplied a {nrow(object)} x {ncol(object)} matrix.",
      i = "Pass the coefficients (pre-periods first) with {.arg sigma} and {.arg n_pre}, or an {.fn event_study} fit."
    ))
  }
  honest_fit(object, sigma = sigma, n_pre = n_pre, type = type, M = M, target = target,
             inference = inference, alpha = alpha, n_draws = n_draws,
             grid_points = grid_points, grid_lb = grid_lb, grid_ub = grid_ub,
             refine = refine, breakdown = breakdown,
             call = method_call(match.call(), "honest_sensitivity"))
}

# The coefficients of an event-study fit restated against event time -1,
# the reference period of Rambachan and Roth, with their covariance mapped
# by the same linear map; event time -1 itself is left out. Returns the
# event times, estimates and covariance on the fit's internal scale. Every
# restatement is exact when the violation of parallel trends is a path
# delta(e) of event time shared by the adoption cohorts (see the Rd).
honest_reference <- function(object, call = rlang::caller_env()) {
  if (identical(object$estimator, "imputation")) return(honest_reference_imputation(object, call))
  tab <- object$estimates
  scale <- object$scale %||% 1
  sigma <- object$vcov_scaled %||% object$vcov
  ev <- tab$event
  no_se <- function(at) {
    abort_mkt("honest_input", c(
      sprintf("Event time(s) %s have no standard error.", paste(ev[at], collapse = ", ")),
      i = "Restrict the event window with `min_e`/`max_e` in `event_study()`."
    ), call = call)
  }
  if (identical(object$base_period, "varying")) {
    # Pre-period coefficients compare each period with the one before:
    # beta_k = delta(k) - delta(k - 1). Against event time -1,
    # delta(k) - delta(-1) = -(beta_{k+1} + ... + beta_{-1}), for k from one
    # before the earliest estimated lead to -2; effects are unchanged.
    if (anyNA(tab$std.error)) no_se(is.na(tab$std.error))
    pre <- which(ev < 0)
    if (!length(pre) || any(diff(sort(ev[pre])) != 1) || max(ev[pre]) != -1) {
      abort_mkt("honest_input", c(
        "The event times must be consecutive, with pre-periods before and post-periods after event time -1.",
        i = "Widen `min_e`/`max_e` in `event_study()` or drop the gaps."
      ), call = call)
    }
    new_pre <- seq(min(ev[pre]) - 1L, -2L)
    post <- which(ev >= 0)
    Tm <- matrix(0, length(new_pre) + length(post), length(ev))
    for (i in seq_along(new_pre)) Tm[i, ev > new_pre[i] & ev < 0] <- -1
    Tm[cbind(length(new_pre) + seq_along(post), post)] <- 1
    return(list(event = c(new_pre, ev[post]), estimate = drop(Tm %*% (tab$estimate / scale)),
                sigma = Tm %*% sigma %*% t(Tm)))
  }
  # Every coefficient of the other estimators is relative to event time -1;
  # the regressions leave it out and "cs" reports it as a zero without an SE.
  at_ref <- ev == -1
  if (any(at_ref & !(is.na(tab$std.error) & tab$estimate == 0))) {
    abort_mkt("honest_input", c(
      "Event time -1 is estimated, so the coefficients are not relative to a common reference period.",
      i = "Fit the event study with `base_period = \"universal\"` (the default of `event_study()`)."
    ), call = call)
  }
  keep <- which(!at_ref)
  if (anyNA(tab$std.error[keep])) no_se(keep[is.na(tab$std.error[keep])])
  list(event = ev[keep], estimate = tab$estimate[keep] / scale,
       sigma = sigma[keep, keep, drop = FALSE])
}

# The imputation estimator's effects are not relative to event time -1: an
# effect compares treated outcomes with unit effects fitted on all of the
# unit's untreated periods, so a violation delta(e) shared by cohorts biases
# the effect at e by delta(e) - sum_k w_ek delta(k), with w_ek the
# estimator's own weights on the pre-adoption event times k (they sum to
# one). Its leads L_k, from the regression on untreated cells, estimate
# delta(k) - delta(k0), k0 the earliest event time. So
#   pre:  L_k - L_{-1}                        estimates delta(k) - delta(-1),
#   post: tau_e + sum_k w_ek (L_k - L_{-1})   estimates tau_e + delta(e) - delta(-1),
# for k from k0 (where L_k0 = 0) to -2: the input Rambachan and Roth's sets
# need, with the joint covariance of leads and effects mapped alike.
honest_reference_imputation <- function(object, call) {
  imp <- object$imputation
  if (is.null(imp) || !length(imp$leads) || is.null(imp$pre_weights)) {
    abort_mkt("honest_input", c(
      "The imputation event study has no pre-adoption leads to compare trends with.",
      i = "Use a panel where treated units are observed for at least two periods before adoption."
    ), call = call)
  }
  if (anyNA(imp$estimate) || anyNA(imp$vcov)) {
    abort_mkt("honest_input", c(
      sprintf("Event time(s) %s have no estimate or no standard error.",
              paste(c(imp$leads, imp$events)[is.na(imp$estimate) | is.na(diag(imp$vcov))],
                    collapse = ", ")),
      i = "Drop the periods or units that leave them unidentified, or use {.code method = \"cs\"}."
    ), call = call)
  }
  nl <- length(imp$leads)
  ne <- length(imp$events)
  pre <- seq(imp$ref, -2L)
  Tm <- matrix(0, length(pre) + ne, nl + ne)
  at_m1 <- match(-1L, imp$leads)
  for (i in seq_along(pre)) {
    if (pre[i] > imp$ref) Tm[i, match(pre[i], imp$leads)] <- 1
    Tm[i, at_m1] <- Tm[i, at_m1] - 1
  }
  post <- length(pre) + seq_len(ne)
  Tm[cbind(post, nl + seq_len(ne))] <- 1
  w <- imp$pre_weights[, as.character(pre), drop = FALSE]
  Tm[post, ] <- Tm[post, , drop = FALSE] + w %*% Tm[seq_along(pre), , drop = FALSE]
  event <- c(pre, imp$events)
  # The fit's event window: its leads start at k0 + 1 unless `min_e` cut
  # them, and k0 belongs to the window when they do not.
  tab_ev <- object$estimates$event
  lo <- if (min(tab_ev) <= imp$ref + 1L) imp$ref else min(tab_ev)
  keep <- which(event >= lo & (event < 0 | event %in% tab_ev))
  Tm <- Tm[keep, , drop = FALSE]
  list(event = event[keep], estimate = drop(Tm %*% imp$estimate),
       sigma = Tm %*% imp$vcov %*% t(Tm), map = Tm)
}

# A method's call as the user wrote it: the generic's name, not the method's.
method_call <- function(call, generic) {
  call[[1]] <- as.name(generic)
  call
}

# The core of honest_sensitivity(): robust sets for the target l'beta_post
# from coefficients and their covariance, as a fit. With `scale`, the
# coefficients and covariance are those of the outcome divided by `scale`,
# while `M` (for smoothness; Mbar has no unit), the grid bounds and the
# results are in the outcome's units.
honest_fit <- function(object, sigma, n_pre, type, M, target, inference, alpha, n_draws,
                       grid_points, grid_lb, grid_ub, refine, breakdown, n = NULL,
                       vars = NULL, call = NULL, post_events = NULL, scale = 1) {
  alpha <- check_alpha(alpha)
  n_draws <- check_count(n_draws, "n_draws", min = 10)
  grid_points <- check_count(grid_points, "grid_points", min = 10)
  for (arg in c("refine", "breakdown")) {
    flag <- get(arg)
    if (!is.logical(flag) || length(flag) != 1L || is.na(flag)) {
      abort_mkt("bad_argument", c("{.arg {arg}} must be {.code TRUE} or {.code FALSE}.",
                                  x = "You supplied {.obj_type_friendly {flag}}."))
    }
  }
  for (arg in c("grid_lb", "grid_ub")) {
    b <- get(arg)
    if (!is.null(b) && (!is.numeric(b) || length(b) != 1L || !is.finite(b))) {
      abort_mkt("bad_argument", c("{.arg {arg}} must be {.code NULL} or one finite number.",
                                  x = "You supplied {.obj_type_friendly {b}}."))
    }
  }
  if (!is.null(grid_lb) && !is.null(grid_ub) && grid_lb >= grid_ub) {
    abort_mkt("bad_argument", c("{.arg grid_lb} must be below {.arg grid_ub}.",
                                x = "You supplied {grid_lb} and {grid_ub}."))
  }
  betahat <- as.numeric(object)
  k <- length(betahat)
  n_pre <- check_count(n_pre, "n_pre", min = 1)
  if (n_pre >= k) {
    abort_mkt("honest_input", c(
      sprintf("`n_pre = %d` leaves no post-period among %d coefficients.", n_pre, k),
      i = "Give the pre-period coefficients first, then at least one post-period."
    ))
  }
  sigma <- as.matrix(sigma)
  if (!is.numeric(sigma) || !identical(dim(sigma), c(k, k)) || !all(is.finite(sigma)) ||
      !all(is.finite(betahat))) {
    abort_mkt("honest_input", c(
      sprintf("`sigma` must be a %d x %d covariance matrix of finite numbers, and the coefficients finite.", k, k),
      i = "Pass the covariance of exactly the coefficients in `object`."
    ))
  }
  sigma <- (sigma + t(sigma)) / 2
  if (min(eigen(sigma, symmetric = TRUE, only.values = TRUE)$values) < -1e-10 * max(abs(sigma))) {
    abort_mkt("honest_input", c("`sigma` is not positive semi-definite.",
                                i = "Check the covariance matrix of the event study."))
  }
  n_post <- k - n_pre
  # The hybrid's normal draws (n_draws x 2 n_post, with their products) and
  # the grid of tested values are held in memory: a request that cannot fit
  # is refused before any work (the tests check again with the number of
  # dual vertices, see honest-arp.R).
  if (type == "relative_magnitudes") {
    check_memory(8 * as.double(n_draws) * (4 * n_post + 2),
                 sprintf("The hybrid test's %s draws", format(n_draws, big.mark = ",", scientific = FALSE)),
                 "Use fewer draws: the default {.code n_draws = 1000} is usually enough.")
    check_memory(8 * as.double(grid_points) * (2 * n_post + 8),
                 sprintf("A grid of %s values", format(grid_points, big.mark = ",", scientific = FALSE)),
                 "Use fewer {.arg grid_points}: the ends of the set are refined beyond the grid anyway.")
  }
  l <- honest_target(target, n_post)
  post <- n_pre + seq_len(n_post)
  estimate <- sum(l * betahat[post])
  se <- sqrt(drop(crossprod(l, sigma[post, post, drop = FALSE] %*% l)))
  m_unit <- if (type == "smoothness") scale else 1
  if (is.null(M)) M <- honest_default_M(type, betahat, sigma, n_pre) * m_unit
  if (!is.numeric(M) || !length(M) || anyNA(M) || any(M < 0) || any(!is.finite(M))) {
    abort_mkt("honest_input", c("`M` must be finite non-negative numbers.",
                                i = "For example `M = seq(0, 2, by = 0.5)`."))
  }
  M <- sort(unique(M))
  M_int <- M / m_unit
  z <- stats::qnorm(1 - alpha / 2)
  set_method <- if (type == "smoothness") "FLCI" else
    switch(inference, hybrid = "C-LF", conditional = "Conditional")
  # For each M: the set, and whether it rejects a zero effect (what the
  # breakdown value tracks).
  if (type == "smoothness") {
    set_at <- function(m) {
      f <- sd_flci(betahat, sigma, n_pre, l, m, alpha)
      list(conf.low = f$conf.low, conf.high = f$conf.high, open = FALSE)
    }
    rejects_zero <- function(m) {
      s <- set_at(m)
      s$conf.low > 0 || s$conf.high < 0
    }
  } else {
    Z <- matrix(stats::rnorm(n_draws * 2 * n_post), n_draws, 2 * n_post, byrow = TRUE)
    hybrid <- inference == "hybrid"
    user_grid <- !is.null(grid_lb) || !is.null(grid_ub)
    lb <- if (is.null(grid_lb)) estimate - 20 * se else grid_lb / scale
    ub <- if (is.null(grid_ub)) estimate + 20 * se else grid_ub / scale
    set_at <- function(m) {
      accept <- rm_acceptance(betahat, sigma, n_pre, l, m, alpha, hybrid, Z)
      lo <- lb
      hi <- ub
      for (widen in 0:4) {
        res <- grid_interval(accept, lo, hi, grid_points, refine)
        if (!res$open || user_grid) break
        width <- hi - lo
        lo <- lo - width
        hi <- hi + width
      }
      res
    }
    rejects_zero <- function(m) {
      !rm_acceptance(betahat, sigma, n_pre, l, m, alpha, hybrid, Z)(0)
    }
  }
  rows <- lapply(M_int, set_at)
  label <- honest_target_label(target, n_post, post_events)
  m_name <- if (type == "smoothness") "M" else "Mbar"
  terms <- paste(m_name, "=", trimws(formatC(signif(M, 4), digits = 4, format = "fg")))
  terms <- make.unique(terms)
  estimates <- data.frame(
    term = c("original", terms), estimate = estimate * scale,
    std.error = c(se * scale, rep(NA_real_, length(M))),
    p.value = c(2 * stats::pnorm(-abs(estimate / se)), rep(NA_real_, length(M))),
    conf.low = c(estimate - z * se, vapply(rows, `[[`, numeric(1), "conf.low")) * scale,
    conf.high = c(estimate + z * se, vapply(rows, `[[`, numeric(1), "conf.high")) * scale,
    M = c(NA_real_, M), method = c("original", rep(set_method, length(M))),
    open = c(FALSE, vapply(rows, `[[`, logical(1), "open")),
    target = label, stringsAsFactors = FALSE
  )
  bd <- if (breakdown) honest_breakdown(rejects_zero, max(M_int)) * m_unit else NA_real_
  estimate <- estimate * scale
  se <- se * scale
  if (any(estimates$open)) {
    warn_mkt("honest_open", c(
      "The robust set reaches the end of the grid of target values for some `M`.",
      i = "Its bounds are the grid's ends; widen `grid_lb`/`grid_ub`."
    ))
  }
  restriction <- if (type == "smoothness") "smoothness, Delta^SD(M)" else
    "relative magnitudes, Delta^RM(Mbar)"
  inference_label <- if (type == "smoothness") {
    "fixed-length confidence intervals (Armstrong-Kolesar FLCI)"
  } else if (inference == "hybrid") {
    sprintf("conditional-least-favourable hybrid test (Andrews-Roth-Pakes), %s draws",
            format(n_draws, big.mark = ","))
  } else {
    "conditional test (Andrews-Roth-Pakes)"
  }
  new_fit(
    "honest", estimates = estimates,
    method = sprintf("Rambachan-Roth sensitivity: %s", restriction),
    estimand = sprintf("the %s under violations of parallel trends bounded by %s",
                       label, if (type == "smoothness") "M" else "Mbar"),
    inference = inference_label, alpha = alpha,
    n = n %||% list(obs = NA_integer_), call = call, vcov = NULL,
    no_vcov = "robust confidence sets are found by test inversion, not from a covariance",
    vars = vars,
    glance = list(type = type, breakdown = bd, estimate = estimate, std.error = se,
                  n_pre = n_pre, n_post = n_post),
    breakdown = bd, estimate = estimate, std.error = se, weights = l, n_pre = n_pre,
    n_post = n_post, target = target, type = type, set_method = set_method
  )
}

# The target weights l over post-periods.
honest_target <- function(target, n_post) {
  if (is.character(target)) {
    target <- check_choice(target, c("first", "average"))
    return(if (target == "first") c(1, rep(0, n_post - 1)) else rep(1 / n_post, n_post))
  }
  if (is.numeric(target) && length(target) == 1 && n_post >= 1 &&
      target == round(target) && target >= 1 && target <= n_post && n_post > 1) {
    l <- numeric(n_post)
    l[target] <- 1
    return(l)
  }
  if (is.numeric(target) && length(target) == n_post && !anyNA(target) && any(target != 0)) {
    return(as.numeric(target))
  }
  abort_mkt("honest_target", c(
    sprintf("`target` must be \"first\", \"average\", a post-period, or %d weights.", n_post),
    i = "For example `target = \"average\"`."
  ))
}

honest_target_label <- function(target, n_post, post_events = NULL) {
  if (is.character(target)) {
    return(paste(check_choice(target, c("first", "average")), "post-period effect"))
  }
  if (length(target) == 1) {
    if (!is.null(post_events)) return(sprintf("effect at event time %s", post_events[target]))
    return(sprintf("post-period %d effect", target))
  }
  "weighted post-period effect"
}

# Default grids of M: relative magnitudes 0 to 2; smoothness from 0 to the
# upper end of a Bonferroni-free pointwise interval for the largest
# pre-period second difference (at least a small positive value).
honest_default_M <- function(type, betahat, sigma, n_pre) {
  if (type == "relative_magnitudes") return(seq(0, 2, by = 0.25))
  b <- c(betahat[seq_len(n_pre)], 0)
  if (length(b) < 3) {
    top <- 2 * sqrt(sigma[1, 1])
  } else {
    D <- matrix(0, length(b) - 2, length(b))
    for (i in seq_len(nrow(D))) D[i, i:(i + 2)] <- c(1, -2, 1)
    S <- matrix(0, length(b), length(b))
    S[seq_len(n_pre), seq_len(n_pre)] <- sigma[seq_len(n_pre), seq_len(n_pre)]
    est <- drop(D %*% b)
    se <- sqrt(pmax(diag(D %*% S %*% t(D)), 0))
    top <- max(abs(est) + stats::qnorm(0.975) * se)
  }
  seq(0, top, length.out = 6)
}

# Largest M at which a zero effect is still rejected, by bisection on a
# bracket grown from the largest M reported.
honest_breakdown <- function(excludes_zero, m_max) {
  if (!excludes_zero(0)) return(NA_real_)
  hi <- max(m_max, 1e-8)
  grow <- 0
  while (excludes_zero(hi) && grow < 20) {
    hi <- 2 * hi
    grow <- grow + 1
  }
  if (grow == 20) return(Inf)
  lo <- 0
  for (i in seq_len(40)) {
    mid <- (lo + hi) / 2
    if (excludes_zero(mid)) lo <- mid else hi <- mid
    if (hi - lo <= 1e-4 * hi) break
  }
  lo
}
