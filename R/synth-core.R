# The single-fit engine of the synthetic control family: the donors and
# treated groups of a panel (synth_setup), one weight problem (fit_one and
# its solvers) and the summaries of a set of fits (summarise_fits). The front
# (synth.R), the inference files and the robustness checks all call down into
# this file; it calls nothing of theirs.

# A data frame from equal-length columns, without data.frame()'s checks
# (which cost more than the fits they describe).
new_df <- function(...) {
  cols <- list(...)
  attr(cols, "row.names") <- c(NA_integer_, -length(cols[[1L]]))
  class(cols) <- "data.frame"
  cols
}

# --- setup ------------------------------------------------------------------

# Donors, treated units, their first treated periods and the checks that
# belong to this estimator rather than to the panel.
synth_setup <- function(panel, method, predictors = NULL, call = rlang::caller_env()) {
  require_binary_treatment(panel, "synth", call = call)
  require_varying_outcome(panel$Y[panel$observed], panel$vars$outcome, call = call)
  t0_index <- unname(panel$cohort_index)
  never <- is.na(t0_index)
  unit_names <- rownames(panel$Y)
  if (!any(never)) {
    abort_mkt("no_donors", c(
      "No unit is never treated, so there is no donor pool.",
      i = "Synthetic control compares treated units with never-treated ones; keep some untreated units in {.arg data}."
    ), call = call)
  }
  if (all(never)) {
    abort_mkt("no_treated", c(
      "No unit is ever treated by {.field {panel$vars$treatment}}.",
      i = "Check the treatment column: treated unit-periods are coded 1."
    ), call = call)
  }
  no_pre <- !never & t0_index == 1L
  if (any(no_pre)) {
    abort_mkt("too_few_pre_periods", c(
      "{cli::qty(sum(no_pre))}Treated unit{?s} {.val {unit_names[no_pre]}} {cli::qty(sum(no_pre))}{?is/are} treated from the first period, so there is nothing to fit on.",
      i = "Drop {cli::qty(sum(no_pre))}{?it/them} or extend the panel back in time."
    ), call = call)
  }
  # Documented rule for unbalanced panels: donors with any missing outcome
  # are dropped and named.
  donors <- which(never)
  if (!panel$balanced) {
    incomplete <- donors[rowSums(!panel$observed[donors, , drop = FALSE]) > 0]
    if (length(incomplete)) {
      cli::cli_inform(c(
        "i" = "Dropping {length(incomplete)} donor{?s} with missing outcomes: {.val {unit_names[incomplete]}}."
      ))
      donors <- setdiff(donors, incomplete)
      if (!length(donors)) {
        abort_mkt("no_donors", c(
          "Every never-treated unit has a missing outcome, so no donor is left.",
          i = "Fill or impute the donors' missing periods."
        ), call = call)
      }
    }
  }
  if (method == "asc" && length(donors) < 2L) {
    abort_mkt("too_few_controls", c(
      "{.code method = \"asc\"} needs at least two donors; there {?is/are} {length(donors)}.",
      i = "The ridge augmentation regresses across donors. With one donor use {.code method = \"sc\"} (the synthetic control is that donor) or {.code method = \"did\"}."
    ), call = call)
  }
  treated <- which(!never)
  if (method %in% c("sc", "asc")) {
    groups <- lapply(treated, function(i) list(treated = i, t0 = t0_index[i]))
    names(groups) <- unit_names[treated]
  } else {
    groups <- lapply(split(treated, t0_index[treated]),
                     function(ii) list(treated = ii, t0 = t0_index[ii[1]]))
    names(groups) <- as.character(panel$times[vapply(groups, `[[`, 1L, "t0")])
  }
  check_pre_periods(panel, groups, method, predictors, call = call)
  list(panel = panel, donors = donors, treated = treated, t0_index = t0_index,
       groups = groups, method = method)
}

# Pre-treatment periods each fit needs. With one pre-period the
# outcome-only weights are not identified: any mix of donors that matches
# the treated value in that period fits it exactly, and which mix the solver
# returns sets the estimate. sdid needs two (its noise level is a standard
# deviation of first differences). did is the classic two-period design.
# With predictors the weights rest on the predictors, so one pre-period is
# allowed, with a warning: the V search then fits a single period.
check_pre_periods <- function(panel, groups, method, predictors, call = rlang::caller_env()) {
  min_pre <- switch(method, sdid = 2L, did = 1L, if (is.null(predictors)) 2L else 1L)
  times <- panel$times
  n_pre <- vapply(groups, function(g) {
    pre <- seq_len(g$t0 - 1L)
    sum(colSums(panel$observed[g$treated, pre, drop = FALSE]) > 0)
  }, integer(1))
  short <- n_pre < min_pre
  if (any(short)) {
    g <- groups[[which(short)[1]]]
    seen <- which(colSums(panel$observed[g$treated, seq_len(g$t0 - 1L), drop = FALSE]) > 0)
    why <- switch(method,
      sdid = "its noise level is the standard deviation of the donors' first differences before treatment",
      "with one, any mix of donors that matches the treated value in that period fits it exactly, so the weights and the estimate are not identified")
    fix <- if (method %in% c("sc", "asc")) {
      "Use a panel with more periods before treatment, give {.arg predictors} (with {.code method = \"sc\"}), or use {.code method = \"did\"}."
    } else {
      "Use a panel with more periods before treatment, or {.code method = \"did\"}."
    }
    had <- if (length(seen)) {
      "{.val {names(groups)[short]}} {cli::qty(sum(short))}ha{?s/ve} {n_pre[short][1]}: {.val {format(times[seen])}}."
    } else {
      "{.val {names(groups)[short]}} {cli::qty(sum(short))}ha{?s/ve} none observed."
    }
    abort_mkt("too_few_pre_periods", c(
      "{.code method = \"{method}\"} needs at least {min_pre} pre-treatment periods: {why}.",
      x = had, i = fix), call = call)
  }
  if (method == "sc" && !is.null(predictors) && any(n_pre == 1L)) {
    one <- which(n_pre == 1L)
    g <- groups[[one[1]]]
    seen <- which(colSums(panel$observed[g$treated, seq_len(g$t0 - 1L), drop = FALSE]) > 0)
    warn_mkt("too_few_pre_periods", c(
      "{.val {names(groups)[one]}} {cli::qty(length(one))}ha{?s/ve} one pre-treatment period ({format(times[seen])}): the V search fits that single period, and the weights rest on the predictors alone.",
      i = "Use a panel with more periods before treatment to check the fit out of the predictors' sample."
    ))
  }
  invisible(n_pre)
}

# --- scale ------------------------------------------------------------------

scale_setup <- function(setup, s) {
  if (s != 1) setup$panel$Y <- setup$panel$Y / s
  setup
}

# c^2 x as (x c) c: a zero stays zero where c^2 alone would overflow.
times_sq <- function(x, s) x * s * s

# A fit_one() result in the outcome's own units.
unscale_fit <- function(f, s) {
  if (s == 1) return(f)
  for (nm in c("y1", "synthetic", "gap", "att", "pre_rmspe", "post_rmspe", "sigma")) {
    if (!is.null(f[[nm]])) f[[nm]] <- f[[nm]] * s
  }
  if (!is.null(f$v_loss)) f$v_loss <- times_sq(f$v_loss, s)
  if (!is.null(f$ridge)) f$ridge <- times_sq(f$ridge, s)
  if (!is.null(f$balance)) f$balance <- unscale_balance(f$balance, s, f$outcome_rows)
  f
}

# Balance rows that read the outcome (all of them without predictors).
unscale_balance <- function(b, s, rows = NULL) {
  if (is.null(rows)) rows <- rep(TRUE, nrow(b))
  for (col in c("treated", "synthetic", "donor_mean")) b[[col]][rows] <- b[[col]][rows] * s
  b
}

# A summarise_fits() result in the outcome's own units.
unscale_summary <- function(smry, s, outcome_rows = NULL) {
  if (s == 1) return(smry)
  for (nm in c("att", "pre_rmspe", "post_rmspe", "outcome_sd")) smry[[nm]] <- smry[[nm]] * s
  smry$v_loss <- times_sq(smry$v_loss, s)
  if (!is.null(smry$ridge_lambda)) smry$ridge_lambda <- times_sq(smry$ridge_lambda, s)
  tb <- smry$tables
  for (col in c("estimate", "pre_rmspe", "post_rmspe")) tb$fits[[col]] <- tb$fits[[col]] * s
  tb$period$estimate <- tb$period$estimate * s
  for (col in c("treated", "synthetic", "gap")) tb$series[[col]] <- tb$series[[col]] * s
  tb$balance <- unscale_balance(tb$balance, s, outcome_rows)
  smry$tables <- tb
  smry
}

# Inference that permutes or conformalises around one treated unit.
require_one_treated <- function(setup, what, call = rlang::caller_env()) {
  if (length(setup$treated) > 1L) {
    abort_mkt("inference_unsupported", c(
      paste(what, "needs exactly one treated unit; there are {length(setup$treated)}."),
      i = "Use {.code method = \"sdid\"} with {.code inference = \"placebo\"} for several treated units."
    ), call = call)
  }
  invisible(TRUE)
}

# --- one fit ----------------------------------------------------------------

# Fits one treated series (a unit, or the mean of a cohort) from `donors`
# whose treatment starts at column t0. Returns the weights and the gap of
# every period. w0: a warm start for sdid's unit weights (the problem is
# strictly convex, so it changes the path, not the answer).
fit_one <- function(setup, treated, t0, donors, method, predictors, fit_periods,
                    sigma = NULL, max_iter = NULL, w0 = numeric(0)) {
  panel <- setup$panel
  Y <- panel$Y
  Tn <- ncol(Y)
  pre <- seq_len(t0 - 1L)
  post <- t0:Tn
  if (length(treated) == 1L) {
    y1 <- Y[treated, ]
  } else {
    y1 <- colMeans(Y[treated, , drop = FALSE], na.rm = TRUE)
    y1[colSums(!is.na(Y[treated, , drop = FALSE])) == 0] <- NA
  }
  Y0 <- Y[donors, , drop = FALSE]
  pre_ok <- if (anyNA(y1)) pre[!is.na(y1[pre])] else pre
  if (!length(pre_ok)) {
    abort_mkt("too_few_pre_periods", "Treated unit {.val {rownames(Y)[treated]}} has no observed pre-period outcome.")
  }
  J <- length(donors)
  lambda <- NULL
  ridge <- NULL
  v <- NULL
  v_loss <- NULL
  balance <- NULL
  conv <- list(converged = TRUE, kkt = 0, iterations = 0L, v_converged = NA)
  outcome_rows <- NULL
  if (method == "did") {
    w <- rep(1 / J, J)
    lambda <- rep(0, Tn)
    lambda[pre_ok] <- 1 / length(pre_ok)
  } else if (method == "sdid") {
    n_tr <- length(treated)
    diffs <- diff(t(Y0[, pre, drop = FALSE]))
    # The noise level sets both penalties; placebo replications pass the
    # original fit's value, as the reference implementation does.
    if (is.null(sigma)) sigma <- if (length(diffs) > 1L) stats::sd(as.vector(diffs)) else 0
    zeta_w <- (n_tr * length(post))^(1 / 4) * sigma
    # Intercepts: centre over time for the unit weights, over donors for the
    # time weights; the ridge scale is the number of rows, as in the paper.
    A <- t(Y0[, pre_ok, drop = FALSE])
    b <- y1[pre_ok]
    rw <- solve_simplex(sweep(A, 2, colMeans(A)), b - mean(b),
                        length(pre_ok) * zeta_w^2, w0)
    w <- rw$w
    B <- Y0[, pre_ok, drop = FALSE]
    c0 <- rowMeans(Y0[, post, drop = FALSE])
    zeta_l <- 1e-6 * sigma
    rl <- solve_simplex(sweep(B, 2, colMeans(B)), c0 - mean(c0), J * zeta_l^2)
    lambda <- rep(0, Tn)
    lambda[pre_ok] <- rl$w
    conv <- list(converged = rw$converged && rl$converged, kkt = max(rw$kkt, rl$kkt),
                 iterations = rw$iterations + rl$iterations)
  } else if (is.null(predictors)) {
    r <- solve_simplex(t(Y0[, pre_ok, drop = FALSE]), y1[pre_ok], 0)
    w <- r$w
    conv <- r[c("converged", "kkt", "iterations")]
    if (method == "asc") {
      aug <- ridge_augment(Y0[, pre_ok, drop = FALSE], y1[pre_ok], w, Y0[, post, drop = FALSE])
      w <- w + aug$adjust
      ridge <- aug$lambda
    }
  } else {
    pm <- predictor_matrix(panel, predictors, c(treated, donors), t0)
    fp <- synth_fit_periods(panel, fit_periods, t0, pre_ok)
    nested <- nested_weights(pm, Y[treated, fp], Y0[, fp, drop = FALSE], max_iter)
    w <- nested$w
    v <- stats::setNames(nested$v, rownames(pm))
    v_loss <- nested$loss
    conv <- list(converged = nested$converged, kkt = nested$kkt, iterations = nested$evaluations,
                 v_converged = nested$v_converged, capped_starts = nested$capped_starts,
                 starts = length(nested$start_loss), max_eval = nested$max_eval)
    # Balance rows read from the outcome are in the outcome's (scaled) units.
    outcome_rows <- names(predictors) == panel$vars$outcome
    balance <- new_df(
      term = rownames(pm), treated = unname(pm[, 1]),
      synthetic = unname(drop(pm[, -1, drop = FALSE] %*% w)),
      donor_mean = unname(rowMeans(pm[, -1, drop = FALSE])), v = nested$v)
  }
  names(w) <- rownames(Y0)
  synthetic <- drop(crossprod(Y0, w))
  offset <- if (is.null(lambda)) 0 else sum(lambda * (y1 - synthetic), na.rm = TRUE)
  gap <- y1 - synthetic - offset
  g_pre <- gap[pre]
  g_post <- gap[post]
  if (anyNA(gap)) {
    g_pre <- g_pre[!is.na(g_pre)]
    g_post <- g_post[!is.na(g_post)]
  }
  list(treated = treated, t0 = t0, w = w, lambda = lambda, ridge = ridge,
       sigma = if (method == "sdid") sigma, v = v, v_loss = v_loss,
       balance = balance, outcome_rows = outcome_rows, y1 = y1,
       synthetic = synthetic + offset, gap = gap,
       att = sum(g_post) / length(g_post),
       pre_rmspe = sqrt(sum(g_pre^2) / length(g_pre)),
       post_rmspe = sqrt(sum(g_post^2) / length(g_post)),
       convergence = conv)
}

# Least squares on the simplex, min ||y - X w||^2 + eta ||w||^2 (rows with a
# missing y left out); the one caller of the compiled solver.
solve_simplex <- function(X, y, eta, w0 = numeric(0)) {
  ok <- is.finite(y)
  if (!all(ok)) {
    X <- X[ok, , drop = FALSE]
    y <- y[ok]
  }
  cpp_simplex_ls(X, y, eta, w0, 1e-12, 100000L)
}

# Ridge augmentation (Ben-Michael, Feller and Rothstein 2021): a ridge
# regression of the donors' post-period outcomes on their pre-period outcomes
# corrects the synthetic control for its remaining pre-period imbalance
# d = x1 - X0'w. In weight form the correction is Xc (Xc'Xc + lambda I)^-1 d
# with Xc the centred donor pre-period matrix, so the augmented weights still
# sum to one (they may be negative). lambda minimises the leave-one-donor-out
# error of predicting the donors' post-period outcomes, computed in closed
# form from one SVD.
ridge_augment <- function(X0, x1, w, Ypost) {
  mu <- colMeans(X0)
  Xc <- sweep(X0, 2, mu)
  n <- nrow(X0)
  sv <- svd(Xc)
  d <- sv$d[sv$d > 1e-10 * sv$d[1]]
  if (!length(d) || n < 2L) {
    # The donors' pre-period outcomes do not differ (or there is one donor):
    # the regression has no direction to correct along, and no penalty.
    return(list(adjust = numeric(n), lambda = NA_real_, cv = numeric(0), grid = numeric(0)))
  }
  U <- sv$u[, seq_along(d), drop = FALSE]
  V <- sv$v[, seq_along(d), drop = FALSE]
  grid <- d[1]^2 * 10^seq(-6, 2, length.out = 41)
  Yc <- sweep(Ypost, 2, colMeans(Ypost))
  UtY <- crossprod(U, Yc)
  cv <- vapply(grid, function(l) {
    shrink <- d^2 / (d^2 + l)
    fitted <- U %*% (shrink * UtY)
    h <- 1 / n + rowSums(sweep(U^2, 2, shrink, `*`))
    mean(((Yc - fitted) / (1 - h))^2)
  }, numeric(1))
  lambda <- grid[which.min(cv)]
  gap <- x1 - drop(crossprod(X0, w))
  adjust <- drop(U %*% ((d / (d^2 + lambda)) * crossprod(V, gap)))
  list(adjust = adjust, lambda = lambda, cv = cv, grid = grid)
}

# Predictors: each column averaged over its periods, one row per predictor
# and one column per unit (treated first). A predictor named like the
# outcome reads the outcome matrix; the others read the panel's extra
# columns. Missing values are an error that names the unit and the period.
predictor_matrix <- function(panel, predictors, units, t0, call = rlang::caller_env()) {
  times <- as.character(panel$times)
  rows <- lapply(seq_along(predictors), function(k) {
    var <- names(predictors)[k]
    per <- as.character(predictors[[k]])
    idx <- match(per, times)
    if (anyNA(idx)) {
      abort_mkt("bad_predictors", c(
        "Predictor {.field {var}} names period{?s} {.val {per[is.na(idx)]}} that {?is/are} not in the panel.",
        i = "Use periods of the time column {.field {panel$vars$time}}."
      ), call = call)
    }
    if (any(idx >= t0)) {
      abort_mkt("bad_predictors", c(
        "Predictor {.field {var}} uses period{?s} {.val {per[idx >= t0]}}, on or after the first treated period {.val {times[t0]}}.",
        i = "Predictors must be measured before treatment."
      ), call = call)
    }
    M <- if (var == panel$vars$outcome) panel$Y else panel$extra[[var]]
    if (!is.numeric(M)) {
      abort_mkt("non_numeric", c(
        "Predictor {.field {var}} must be numeric (or logical).",
        x = "It is of type {.cls {typeof(M)}}."
      ), call = call)
    }
    sub <- M[units, idx, drop = FALSE]
    if (anyNA(sub)) {
      bad <- which(is.na(sub), arr.ind = TRUE)[1, ]
      abort_mkt("missing_values", c(
        "Predictor {.field {var}} is missing for unit {.val {rownames(panel$Y)[units][bad[1]]}} in period {.val {times[idx][bad[2]]}}.",
        i = "Choose periods in which {.field {var}} is observed for every unit, or drop the unit."
      ), call = call)
    }
    rowMeans(sub)
  })
  pm <- do.call(rbind, rows)
  labels <- vapply(seq_along(predictors), function(k) {
    per <- predictors[[k]]
    rng <- if (length(per) == 1L) format(per) else paste0(format(min(per)), "-", format(max(per)))
    paste0(names(predictors)[k], " (", rng, ")")
  }, character(1))
  dimnames(pm) <- list(labels, rownames(panel$Y)[units])
  pm
}

synth_fit_periods <- function(panel, fit_periods, t0, pre_ok, call = rlang::caller_env()) {
  if (is.null(fit_periods)) return(pre_ok)
  idx <- match(as.character(fit_periods), as.character(panel$times))
  if (anyNA(idx) || any(idx >= t0)) {
    abort_mkt("bad_argument", c(
      "{.arg fit_periods} must be periods of the panel before the first treated period.",
      x = "Problem with {.val {fit_periods[is.na(idx) | idx >= t0][1]}}."
    ), call = call)
  }
  fp <- intersect(idx, pre_ok)
  if (!length(fp)) {
    abort_mkt("bad_argument", c(
      "{.arg fit_periods} leaves no period in which the treated unit's outcome is observed before treatment.",
      i = "Give pre-treatment periods of {.field {panel$vars$time}} in which the outcome is observed, or leave {.arg fit_periods} out."
    ), call = call)
  }
  fp
}

# The nested V search. Predictors are scaled by their standard deviation
# across all units (as Synth does) so that V is unit-free; each row is first
# brought near 1 by a power of two (exact), so that the standard deviation
# of a predictor measured in units of 1e300 does not overflow. `max_iter`
# caps the evaluations of each Nelder-Mead run (default 200 per predictor:
# at 100 the Prop 99 fit with the ADH predictors stops at the cap in two of
# its three starts; at 200 their restarts converge).
nested_weights <- function(pm, y1, Y0, max_iter = NULL) {
  s <- apply(pm, 1, function(r) {
    p2 <- outcome_scale(r)
    stats::sd(r / p2) * p2
  })
  s[!(s > 0)] <- 1
  ps <- pm / s
  X1 <- ps[, 1]
  X0 <- ps[, -1, drop = FALSE]
  k <- nrow(ps)
  max_eval <- if (is.null(max_iter)) 200L * k else as.integer(max_iter)
  starts <- cbind(rep(1 / k, k), regression_v(ps, cbind(y1, t(Y0))))
  starts <- cbind(starts, starts[, 2]^2 / sum(starts[, 2]^2))
  r <- cpp_synth_nested(X1, X0, y1, t(Y0), starts, 1e-12, 100000L, max_eval, 1e-8)
  r$max_eval <- max_eval
  r
}

# Regression-based start: each predictor's weight is proportional to the sum
# over fit periods of its squared coefficient when the outcome is regressed
# across units on the scaled predictors (a small ridge keeps it defined when
# there are more predictors than units).
regression_v <- function(ps, Yfit) {
  Xc <- t(ps - rowMeans(ps))
  Yc <- sweep(t(Yfit), 2, colMeans(t(Yfit)))
  G <- crossprod(Xc)
  beta <- solve(G + diag(1e-8 * max(1, sum(diag(G))), ncol(G)), crossprod(Xc, Yc))
  v <- rowSums(beta^2)
  if (!(sum(v) > 0) || anyNA(v)) return(rep(1 / length(v), length(v)))
  v <- v / sum(v)
  # Keep every predictor in play: Nelder-Mead cannot revive an exact zero.
  v <- pmax(v, 1e-4)
  v / sum(v)
}

# Placebo in space for the outcome-only synthetic control: every donor in
# turn fitted from the others on the pre-period, in one compiled call on
# mkt_threads() threads. Returns each donor's gap (T x J) and convergence.
placebo_gaps <- function(setup, t0, label = "placebos in space") {
  Y0 <- setup$panel$Y[setup$donors, , drop = FALSE]
  J <- nrow(Y0)
  p <- progressr::progressor(steps = J, label = label)
  done <- 0L
  progress <- function(now) {
    p(amount = now - done)
    done <<- now
  }
  # Threads pay off only when the loop is long: on Prop 99 (38 problems of
  # 19 x 37) the whole loop takes a few milliseconds on one thread, less than
  # the cost of waking a second one on a busy machine (forced onto two
  # threads it ran 2.6x slower on a loaded 2-core machine; a loop of 40 ms,
  # 1.2x slower; from 0.1 s on, 0.8x). So the kernel times its first
  # problems and stays on one thread when the loop would take less than
  # 0.1 s; past that it runs each round in the mode measured faster.
  r <- cpp_synth_placebo(Y0, t0 - 1L, 1e-12, 100000L, threads_for(), 0.1, progress)
  if (r$failed) {
    abort_mkt("fit_failed", c(
      "The placebo weight problems could not be solved.",
      i = "The machine may be out of memory; try fewer threads with {.fn mkt_threads}."))
  }
  r
}

# --- summaries of a set of fits --------------------------------------------

# What every synth fit reports, from its per-group fits: the overall ATT
# (each fit weighted by its number of treated units), the tables behind
# tidy(), the donor weights and the fit quality. Written with plain vectors:
# on a small panel this bookkeeping, not the solver, sets the fit's time.
summarise_fits <- function(setup, fits) {
  panel <- setup$panel
  times <- panel$times
  Tn <- length(times)
  K <- length(fits)
  labels <- names(setup$groups)
  if (K == 1L) {
    f <- fits[[1L]]
    n_tr <- length(f$treated)
    att_fit <- f$att
    pre_fit <- f$pre_rmspe
    post_fit <- f$post_rmspe
    t0 <- f$t0
    conv <- isTRUE(f$convergence$converged)
    kkt <- f$convergence$kkt
    gap <- unname(f$gap)
    event <- seq_len(Tn) - t0
    series <- new_df(fit = rep.int(labels, Tn), time = times, event_time = event,
                     post = event >= 0L, treated = unname(f$y1),
                     synthetic = unname(f$synthetic), gap = gap)
  } else {
    n_tr <- att_fit <- pre_fit <- post_fit <- kkt <- numeric(K)
    t0 <- integer(K)
    conv <- logical(K)
    for (k in seq_len(K)) {
      f <- fits[[k]]
      n_tr[k] <- length(f$treated)
      att_fit[k] <- f$att
      pre_fit[k] <- f$pre_rmspe
      post_fit[k] <- f$post_rmspe
      t0[k] <- f$t0
      conv[k] <- isTRUE(f$convergence$converged)
      kkt[k] <- f$convergence$kkt
    }
    event <- rep.int(seq_len(Tn), K) - rep(t0, each = Tn)
    gap <- unlist(lapply(fits, `[[`, "gap"), use.names = FALSE)
    series <- new_df(
      fit = rep(labels, each = Tn), time = rep(times, K), event_time = event,
      post = event >= 0L, treated = unlist(lapply(fits, `[[`, "y1"), use.names = FALSE),
      synthetic = unlist(lapply(fits, `[[`, "synthetic"), use.names = FALSE), gap = gap)
  }
  share <- n_tr / sum(n_tr)
  # ATT by event time: the share-weighted mean gap over the fits observed
  # at that event time.
  ok <- !is.na(gap)
  if (K == 1L) {
    e <- event[ok]
    by_event <- gap[ok]
  } else {
    s <- rep(share, each = Tn)[ok]
    num <- rowsum(s * gap[ok], event[ok])
    by_event <- drop(num / rowsum(s, event[ok]))
    e <- as.integer(rownames(num))
  }
  period <- new_df(term = paste0("event_time_", e), event_time = e,
                   estimate = unname(by_event), post = e >= 0L)
  donors <- rownames(panel$Y)[setup$donors]
  if (K == 1L) {
    w_avg <- unname(fits[[1]]$w)
    W <- matrix(w_avg, ncol = 1L, dimnames = list(donors, labels))
  } else {
    W <- matrix(unlist(lapply(fits, `[[`, "w"), use.names = FALSE), nrow = length(donors),
                dimnames = list(donors, labels))
    w_avg <- drop(W %*% share)
  }
  names(w_avg) <- donors
  ord <- order(w_avg, decreasing = TRUE, method = "radix")
  weights_tab <- new_df(term = donors[ord], estimate = unname(w_avg[ord]))
  lambda <- fits[[1]]$lambda
  if (!is.null(lambda)) names(lambda) <- as.character(times)
  balance <- if (!is.null(fits[[1]]$balance)) {
    b <- fits[[1]]$balance
    if (K > 1L) {
      for (col in c("treated", "synthetic", "donor_mean", "v")) {
        b[[col]] <- Reduce(`+`, lapply(seq_len(K), function(k) share[k] * fits[[k]]$balance[[col]]))
      }
    }
    b
  } else {
    outcome_balance(panel, fits, setup$donors, share)
  }
  first <- times[t0]
  if (is.factor(first)) first <- as.character(first)
  fits_tab <- new_df(term = labels, estimate = att_fit, n_treated = as.integer(n_tr),
                     first_treated = first, pre_rmspe = pre_fit, post_rmspe = post_fit)
  list(
    att = sum(share * att_fit),
    tables = list(fits = fits_tab, period = period, weights = weights_tab,
                  series = series, balance = balance),
    weights = w_avg,
    weight_matrix = W,
    time_weights = lambda,
    v = if (K == 1L) fits[[1]]$v,
    ridge_lambda = if (!is.null(fits[[1]]$ridge)) unname(vapply(fits, `[[`, 1, "ridge")),
    v_loss = if (!is.null(fits[[1]]$v_loss)) sum(vapply(fits, `[[`, 1, "v_loss")) else NA_real_,
    pre_rmspe = sqrt(sum(share * pre_fit^2)),
    post_rmspe = sqrt(sum(share * post_fit^2)),
    converged = all(conv),
    kkt = max(kkt),
    v_search = v_search_status(fits),
    outcome_sd = sd_finite(panel$Y[c(setup$treated, setup$donors), seq_len(min(t0) - 1L)])
  )
}

# Whether every nested V search stopped on its tolerance (NA without
# predictors), the evaluation cap of each Nelder-Mead run and how many
# starts hit it.
v_search_status <- function(fits) {
  conv <- fits[[1]]$convergence
  if (is.null(conv$max_eval)) {
    return(list(converged = NA, max_eval = NA_integer_, capped = 0L, starts = 0L))
  }
  capped <- sum(vapply(fits, function(f) as.integer(f$convergence$capped_starts), integer(1)))
  list(converged = capped == 0L, max_eval = conv$max_eval, capped = capped,
       starts = sum(vapply(fits, function(f) f$convergence$starts, integer(1))))
}

# stats::sd() of the finite values, without its dispatch.
sd_finite <- function(x) {
  x <- x[!is.na(x)]
  n <- length(x)
  if (n < 2L) return(NA_real_)
  m <- sum(x) / n
  sqrt(sum((x - m)^2) / (n - 1L))
}

# Balance without predictors: the outcome's pre-period mean and its value in
# the last pre-period, treated vs synthetic vs donor average.
outcome_balance <- function(panel, fits, donors, share) {
  m <- numeric(6L)
  for (k in seq_along(fits)) {
    f <- fits[[k]]
    last <- f$t0 - 1L
    pre <- seq_len(last)
    y1 <- f$y1[pre]
    dm <- .colMeans(panel$Y[donors, pre, drop = FALSE], length(donors), last)
    m <- m + share[k] * c(sum(y1, na.rm = TRUE) / sum(!is.na(y1)), f$y1[[last]],
                          sum(f$synthetic[pre]) / last, f$synthetic[[last]],
                          sum(dm) / last, dm[[last]])
  }
  new_df(term = paste(panel$vars$outcome, c("(pre-period mean)", "(last pre-period)")),
         treated = m[1:2], synthetic = m[3:4], donor_mean = m[5:6])
}

# Classed warnings about the quality of a fit: an optimiser that stopped
# short (the weights' solver, or the nested V search at its evaluation cap),
# and treated units whose pre-period RMSPE is a large share (`rel`, named by
# fit) of the outcome's standard deviation.
warn_fit_quality <- function(converged, kkt, rel, poor_fit, v_search = NULL) {
  if (!converged) {
    warn_mkt("not_converged", c(
      "The weight optimiser did not reach its KKT tolerance (residual {signif(kkt, 3)}).",
      i = "The weights may be inexact; check for duplicated or constant donors."
    ))
  }
  if (isFALSE(v_search$converged)) {
    warn_mkt("not_converged", c(
      "The nested V search stopped at its cap of {v_search$max_eval} evaluations per Nelder-Mead run before converging (from {v_search$capped} of {v_search$starts} start{?s}).",
      i = "The predictor weights V, and so the donor weights, may not be the best; raise {.arg max_iter} (for example {.code max_iter = {4L * v_search$max_eval}})."
    ))
  }
  bad <- !is.na(rel) & rel > poor_fit
  if (any(bad)) {
    warn_mkt("poor_fit", c(
      "The pre-period fit is poor for {.val {names(rel)[bad]}}: RMSPE is {signif(100 * max(rel[bad]), 3)}% of the outcome's standard deviation.",
      i = "The treated unit may lie outside the donors' range; the estimate then rests on extrapolation. Consider {.code method = \"sdid\"}."
    ))
  }
  invisible(TRUE)
}
