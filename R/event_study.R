#' Event studies under staggered adoption: four estimators, one output
#'
#' `event_study()` estimates the effect of adoption by event time (periods
#' since a unit's first treated period) with one of four estimators and
#' returns them in one shape, so they can be compared and plotted together:
#'
#' * `"cs"`: Callaway and Sant'Anna's ATT(g,t) from [staggered()],
#'   aggregated by event time with cohort-size weights.
#' * `"sa"`: Sun and Abraham's interaction-weighted estimator: a two-way
#'   fixed effects regression on cohort x event-time indicators (event time
#'   -1 left out, never-treated units as controls), averaged within event
#'   time with the cohorts' shares of observations.
#' * `"imputation"`: Borusyak, Jaravel and Spiess's estimator: unit and
#'   period effects are fitted on untreated observations only, the untreated
#'   outcome of each treated observation is imputed, and the differences are
#'   averaged by event time. Its pre-period coefficients are the lead
#'   indicators of a regression on untreated observations (their test of
#'   parallel trends), relative to periods before `min_e`.
#' * `"twfe"`: the dynamic two-way fixed effects regression on event-time
#'   indicators (event time -1 left out), which is biased when effects differ
#'   across cohorts.
#'
#' @section Inference:
#' Standard errors are clustered by unit, or by `cluster`: influence
#' functions for `"cs"`; the cluster-robust sandwich with a G/(G-1)
#' correction for the regressions `"sa"` and `"twfe"`; the conservative
#' variance of Borusyak, Jaravel and Spiess (Theorem 3, residuals of
#' cohort x event-time means on treated cells) for `"imputation"`. The
#' uniform band uses the sup-t critical value over the event times shown,
#' simulated from the joint normal distribution of the estimates with `n_sim`
#' draws through [resample_chunks()] (reproducible with [set.seed()]).
#' `pretest` is the joint Wald test that all pre-period coefficients are
#' zero.
#'
#' @param formula `outcome ~ treatment | unit + time` (see [mkt_panel()]);
#'   the treatment is the absorbing treated-and-post indicator. Covariates
#'   are passed to `"cs"` only.
#' @param data A long data frame, tibble or data.table.
#' @param method `"cs"`, `"sa"`, `"imputation"` or `"twfe"`.
#' @param min_e,max_e Event times reported; regressions bin nothing and
#'   estimate all event times, then keep this window.
#' @param cluster `NULL` (unit) or a column constant within units.
#' @param weights `NULL` or a column of unit weights (for example
#'   population), constant within units. Regressions become weighted least
#'   squares with weighted fixed effects, the imputation estimator fits its
#'   unit and period effects by weighted least squares and averages treated
#'   cells with these weights, and `"cs"` passes them to [staggered()].
#' @param n_sim Draws for the sup-t critical value of the uniform band.
#' @param alpha Significance level.
#' @param ... For `"cs"`, passed to [staggered()] (for example `control`,
#'   `base_period`, `method`); `base_period` defaults to `"universal"` here,
#'   so that every coefficient is relative to event time -1 as in the
#'   regressions.
#' @return An object of class `c("mkt_event_study", "mkt_fit")` with
#'   `table` (what `tidy()` returns: `term`, `event`, `estimate`,
#'   `std.error`, `conf.low`, `conf.high` pointwise, `conf.low.uniform`,
#'   `conf.high.uniform`, `p.value`), `vcov` (of the event-time estimates),
#'   `pretest` (Wald statistic, degrees of freedom, p-value) and `crit`.
#' @references Sun, L. and Abraham, S. (2021). Estimating dynamic treatment
#'   effects in event studies with heterogeneous treatment effects. *Journal
#'   of Econometrics* 225(2), 175-199.
#'
#'   Borusyak, K., Jaravel, X. and Spiess, J. (2024). Revisiting event-study
#'   designs: robust and efficient estimation. *Review of Economic Studies*
#'   91(6), 3253-3285.
#' @examples
#' mpdta$post <- as.integer(mpdta$first.treat > 0 & mpdta$year >= mpdta$first.treat)
#' set.seed(1)
#' es <- event_study(lemp ~ post | countyreal + year, mpdta, method = "sa")
#' tidy(es)
#' es$pretest
#' @export
event_study <- function(formula, data, method = c("cs", "sa", "imputation", "twfe"),
                        min_e = -Inf, max_e = Inf, cluster = NULL, weights = NULL,
                        n_sim = 2000, alpha = 0.05, ...) {
  method <- match.arg(method)
  alpha <- check_alpha(alpha)
  n_sim <- check_count(n_sim, "n_sim", min = 1)
  data <- check_data_frame(data)
  if (method == "cs") {
    args <- list(...)
    if (is.null(args$base_period)) args$base_period <- "universal"
    if (is.null(args$n_boot)) args$n_boot <- 0
    fit <- do.call(staggered, c(list(formula, data, cluster = cluster, weights = weights,
                                     alpha = alpha), args))
    agg <- aggregate.mkt_staggered(fit, "event", min_e = min_e, max_e = max_e)
    S <- rowsum_clusters(agg$inf[, -1, drop = FALSE], fit$cluster_id)
    V <- crossprod(S) / fit$n^2
    est <- list(event = agg$label, estimate = agg$estimate[-1], vcov = V,
                n_units = fit$n, times = fit$times, vars = fit$vars)
  } else {
    panel <- mkt_panel(formula, data)
    prep <- staggered_prepare(panel, data, "not_yet", cluster, weights, 0)
    est <- switch(method,
      sa = es_regression(prep, "sa"),
      twfe = es_regression(prep, "twfe"),
      imputation = es_imputation(prep)
    )
    keep <- est$event >= min_e & est$event <= max_e
    est$event <- est$event[keep]
    est$estimate <- est$estimate[keep]
    est$vcov <- est$vcov[keep, keep, drop = FALSE]
    est$n_units <- prep$n
    est$times <- panel$times
    est$vars <- panel$vars
  }
  es_finish(est, method, n_sim, alpha)
}

# Standard errors, bands and the pre-trend Wald test, for every method.
es_finish <- function(est, method, n_sim, alpha) {
  V <- est$vcov
  se <- sqrt(pmax(diag(V), 0))
  se[se <= sqrt(.Machine$double.eps) * 10 | !is.finite(est$estimate)] <- NA_real_
  ok <- !is.na(se)
  crit <- sup_t_crit(V[ok, ok, drop = FALSE], n_sim, alpha)
  z <- stats::qnorm(1 - alpha / 2)
  pre <- which(est$event < 0 & ok)
  pretest <- if (length(pre)) {
    b <- est$estimate[pre]
    # A generalised inverse keeps the test defined when pre-period estimates
    # are collinear; the degrees of freedom are then the rank.
    e <- eigen(V[pre, pre, drop = FALSE], symmetric = TRUE)
    pos <- e$values > 1e-10 * max(e$values)
    proj <- crossprod(e$vectors[, pos, drop = FALSE], b)
    stat <- sum(proj^2 / e$values[pos])
    data.frame(statistic = stat, df = sum(pos),
               p.value = stats::pchisq(stat, sum(pos), lower.tail = FALSE))
  } else {
    data.frame(statistic = NA_real_, df = 0L, p.value = NA_real_)
  }
  table <- data.frame(
    term = paste("event", est$event), event = est$event, estimate = est$estimate,
    std.error = se, conf.low = est$estimate - z * se, conf.high = est$estimate + z * se,
    conf.low.uniform = est$estimate - crit * se, conf.high.uniform = est$estimate + crit * se,
    p.value = 2 * stats::pnorm(-abs(est$estimate / se)), stringsAsFactors = FALSE
  )
  dimnames(V) <- list(table$term, table$term)
  structure(list(table = table, vcov = V, pretest = pretest, crit = crit, method = method,
                 alpha = alpha, n_units = est$n_units, times = est$times, vars = est$vars),
            class = c("mkt_event_study", "mkt_fit"))
}

# Sup-t critical value of a joint normal with covariance V, by simulation.
sup_t_crit <- function(V, n_sim, alpha) {
  k <- ncol(V)
  if (k == 0L) return(NA_real_)
  sd <- sqrt(diag(V))
  R <- V / outer(sd, sd)
  e <- eigen(R, symmetric = TRUE)
  root <- e$vectors %*% (sqrt(pmax(e$values, 0)) * t(e$vectors))
  draws <- resample_chunks(n_sim, function(idx) {
    z <- matrix(stats::rnorm(length(idx) * k), length(idx), k) %*% root
    apply(abs(z), 1, max)
  }, chunk_size = 500L, label = "sup-t draws")
  unname(stats::quantile(unlist(draws), 1 - alpha, type = 1))
}

# Long vectors of observed cells with unit/time indices, event time and cohort.
es_long <- function(prep) {
  obs <- which(!is.na(prep$Y), arr.ind = TRUE)
  unit <- obs[, 1]
  time <- obs[, 2]
  g <- prep$cohort[unit]
  list(y = prep$Y[obs], unit = unit, time = time, cohort = g, w = prep$w[unit],
       event = ifelse(g > 0, time - g, NA_integer_), cluster = prep$cluster_id[unit])
}

# Two-way (weighted) demeaning through the package's fixed-effects engine.
demean_2way <- function(M, unit, time, w) {
  demean_fe(as.matrix(M), list(unit, time), weights = w)
}

# Cluster-robust weighted least squares on demeaned data with a G/(G-1)
# correction.
cluster_ols <- function(X, y, cluster, w) {
  sw <- sqrt(w)
  qx <- qr(X * sw)
  keep <- qx$pivot[seq_len(qx$rank)]
  X <- X[, keep, drop = FALSE]
  XtXi <- chol2inv(qr.R(qr(X * sw)))
  b <- drop(XtXi %*% crossprod(X, w * y))
  u <- drop(y - X %*% b)
  S <- rowsum(X * (w * u), cluster)
  G <- nrow(S)
  V <- XtXi %*% crossprod(S) %*% XtXi * G / (G - 1)
  list(coef = b, vcov = V, keep = keep)
}

# Weighted two-way FE regression of the outcome on indicator columns X, with
# coefficients and covariance padded with NA where a column was collinear.
es_dummy_fit <- function(X, L) {
  Xd <- demean_2way(X, L$unit, L$time, L$w)
  yd <- demean_2way(L$y, L$unit, L$time, L$w)
  fit <- cluster_ols(Xd, yd, L$cluster, L$w)
  k <- ncol(X)
  coef <- rep(NA_real_, k)
  coef[fit$keep] <- fit$coef
  V <- matrix(NA_real_, k, k)
  V[fit$keep, fit$keep] <- fit$vcov
  list(coef = coef, vcov = V)
}

es_regression <- function(prep, method) {
  L <- es_long(prep)
  ev <- L$event
  if (method == "sa" && !any(prep$cohort == 0L)) {
    abort_mkt("no_never_treated", c(
      "Sun and Abraham's estimator needs never-treated units as the control cohort.",
      i = "Drop the periods after the last cohort adopts and use it as control, or use {.code method = \"cs\"} with {.code control = \"not_yet\"}."
    ))
  }
  events <- sort(unique(ev[!is.na(ev) & ev != -1L]))
  if (method == "twfe") {
    X <- vapply(events, function(e) as.numeric(!is.na(ev) & ev == e), numeric(length(ev)))
    fit <- es_dummy_fit(matrix(X, ncol = length(events)), L)
    return(list(event = events, estimate = fit$coef, vcov = fit$vcov))
  }
  cells <- unique(data.frame(g = L$cohort, e = ev)[!is.na(ev) & ev != -1L, ])
  cells <- cells[order(cells$e, cells$g), ]
  key <- paste(L$cohort, ev)
  X <- vapply(paste(cells$g, cells$e), function(k) as.numeric(key == k), numeric(length(ev)))
  X <- matrix(X, ncol = nrow(cells))
  fit <- es_dummy_fit(X, L)
  beta <- fit$coef
  Vb <- fit$vcov
  Vb[is.na(Vb)] <- 0
  # Interaction weights: each cohort's (weighted) share of the observations
  # at event e.
  nobs <- colSums(X * L$w)
  W <- vapply(events, function(e) ifelse(cells$e == e & !is.na(beta), nobs, 0), numeric(nrow(cells)))
  W <- matrix(W, ncol = length(events))
  W <- sweep(W, 2, colSums(W), "/")
  beta0 <- ifelse(is.na(beta), 0, beta)
  list(event = events, estimate = drop(crossprod(W, beta0)), vcov = crossprod(W, Vb %*% W))
}

# Unit and period effects fitted on the cells flagged `use` by Gauss-Seidel
# sweeps; returns a (units) and b (periods), NA where a unit or period has
# no such cell.
fit_2way_effects <- function(y, unit, time, use, n_units, n_periods, w, tol = 1e-13,
                             max_iter = 10000L) {
  u <- unit[use]
  t <- time[use]
  yy <- y[use]
  ww <- w[use]
  nu <- rowsum_full(ww, u, n_units)
  nt <- rowsum_full(ww, t, n_periods)
  a <- numeric(n_units)
  b <- numeric(n_periods)
  for (it in seq_len(max_iter)) {
    b_new <- rowsum_full(ww * (yy - a[u]), t, n_periods) / nt
    a_new <- rowsum_full(ww * (yy - b_new[t]), u, n_units) / nu
    a_new[nu == 0] <- 0
    b_new[nt == 0] <- 0
    done <- max(abs(c(a_new - a, b_new - b))) < tol
    a <- a_new
    b <- b_new
    if (done) break
  }
  a[nu == 0] <- NA_real_
  b[nt == 0] <- NA_real_
  list(a = a, b = b)
}

# Solves the weighted normal equations Z0'W0 Z0 (a, b) = Z1'w of unit and
# period effects, where Z0 are the untreated cells (with weights W0) and w
# lives on the treated ones,
# by Gauss-Seidel sweeps (the minimum-norm solution is not needed: only the
# fitted a_i + b_t on untreated cells enters, and it is unique).
project_2way <- function(w, unit, time, untreated, n_units, n_periods, omega,
                         tol = 1e-14, max_iter = 10000L) {
  u0 <- unit[untreated]
  t0 <- time[untreated]
  o0 <- omega[untreated]
  r <- rowsum_full(w[!untreated], unit[!untreated], n_units)
  s <- rowsum_full(w[!untreated], time[!untreated], n_periods)
  nu <- rowsum_full(o0, u0, n_units)
  nt <- rowsum_full(o0, t0, n_periods)
  a <- numeric(n_units)
  b <- numeric(n_periods)
  for (it in seq_len(max_iter)) {
    b_new <- ifelse(nt > 0, (s - rowsum_full(o0 * a[u0], t0, n_periods)) / ifelse(nt > 0, nt, 1), 0)
    a_new <- ifelse(nu > 0, (r - rowsum_full(o0 * b_new[t0], u0, n_units)) / ifelse(nu > 0, nu, 1), 0)
    done <- max(abs(c(a_new - a, b_new - b))) < tol
    a <- a_new
    b <- b_new
    if (done) break
  }
  list(a = a, b = b)
}

rowsum_full <- function(x, g, n) {
  out <- numeric(n)
  s <- rowsum(x, g, reorder = TRUE)
  out[as.integer(rownames(s))] <- s
  out
}

es_imputation <- function(prep) {
  L <- es_long(prep)
  N <- prep$n
  Tn <- prep$n_periods
  treated <- !is.na(L$event) & L$event >= 0
  fe <- fit_2way_effects(L$y, L$unit, L$time, !treated, N, Tn, L$w)
  y0hat <- fe$a[L$unit] + fe$b[L$time]
  tau <- L$y - y0hat
  usable <- treated & is.finite(tau)
  events <- sort(unique(L$event[usable]))
  # Weights of each event-time estimand on treated cells, and their
  # projection onto untreated cells (BJS Theorem 3: v0 = -Z0 (Z0'Z0)^-1 Z1'w1).
  W <- vapply(events, function(e) {
    w <- as.numeric(usable & L$event == e) * L$w
    w / sum(w)
  }, numeric(length(L$y)))
  W <- matrix(W, ncol = length(events))
  estimate <- colSums(W * ifelse(usable, tau, 0))
  V <- W
  for (k in seq_along(events)) {
    p <- project_2way(W[, k], L$unit, L$time, !treated, N, Tn, L$w)
    V[!treated, k] <- -L$w[!treated] * (p$a[L$unit[!treated]] + p$b[L$time[!treated]])
  }
  # Residuals: untreated cells from the fitted effects, treated cells net of
  # their cohort x event-time mean effect.
  eps <- L$y - y0hat
  key <- paste(L$cohort, L$event)
  cell_mean <- rowsum_full(ifelse(usable, L$w * tau, 0), match(key, unique(key)), length(unique(key))) /
    rowsum_full(ifelse(usable, L$w, 0), match(key, unique(key)), length(unique(key)))
  cell_mean <- cell_mean[match(key, unique(key))]
  eps[usable] <- tau[usable] - cell_mean[usable]
  eps[treated & !usable] <- 0
  eps[!is.finite(eps)] <- 0
  S <- rowsum(V * eps, L$cluster)
  post <- list(event = events, estimate = estimate, vcov = crossprod(S))

  # Pre-trend leads on untreated cells only (BJS's test), relative to the
  # earliest pre-treatment periods.
  pre_e <- L$event[!treated & !is.na(L$event)]
  leads <- if (length(pre_e)) seq.int(-1L, max(min(pre_e) + 1L, -(Tn - 2L)), by = -1L) else integer()
  leads <- sort(leads[leads >= min(pre_e, 0) + 1L])
  if (length(leads)) {
    u0 <- !treated
    X <- vapply(leads, function(e) as.numeric(!is.na(L$event[u0]) & L$event[u0] == e),
                numeric(sum(u0)))
    L0 <- lapply(L[c("y", "unit", "time", "w", "cluster")], function(v) v[u0])
    fit <- es_dummy_fit(matrix(X, ncol = length(leads)), L0)
    b <- fit$coef
    Vp <- fit$vcov
  } else {
    b <- numeric()
    Vp <- matrix(0, 0, 0)
  }
  K <- length(leads) + length(events)
  Vall <- matrix(0, K, K)
  if (length(leads)) Vall[seq_along(leads), seq_along(leads)] <- Vp
  Vall[length(leads) + seq_along(events), length(leads) + seq_along(events)] <- post$vcov
  list(event = c(leads, events), estimate = c(b, estimate), vcov = Vall)
}

#' Methods for event studies
#'
#' @param x An [event_study()] fit.
#' @param ... Unused.
#' @return `tidy()`: the event-time table; `glance()`: method, number of
#'   units, the pre-trend Wald test and the uniform critical value; `vcov()`:
#'   the covariance of the estimates; `plot()`: a ggplot with pointwise
#'   (thick) and uniform (thin) bands.
#' @name event_study-methods
#' @examples
#' mpdta$post <- as.integer(mpdta$first.treat > 0 & mpdta$year >= mpdta$first.treat)
#' es <- event_study(lemp ~ post | countyreal + year, mpdta, method = "imputation")
#' glance(es)
#' plot(es)
NULL

#' @rdname event_study-methods
#' @export
tidy.mkt_event_study <- function(x, ...) x$table

#' @rdname event_study-methods
#' @export
glance.mkt_event_study <- function(x, ...) {
  data.frame(method = x$method, n_units = x$n_units, n_events = nrow(x$table),
             pretest_statistic = x$pretest$statistic, pretest_df = x$pretest$df,
             pretest_p.value = x$pretest$p.value, crit = x$crit, stringsAsFactors = FALSE)
}

#' @rdname event_study-methods
#' @param object An [event_study()] fit.
#' @export
vcov.mkt_event_study <- function(object, ...) object$vcov

#' @rdname event_study-methods
#' @export
coef.mkt_event_study <- function(object, ...) {
  stats::setNames(object$table$estimate, object$table$term)
}

#' @rdname event_study-methods
#' @export
print.mkt_event_study <- function(x, ...) {
  label <- c(cs = "Callaway-Sant'Anna", sa = "Sun-Abraham", imputation = "imputation (BJS)",
             twfe = "dynamic TWFE")[[x$method]]
  cat(sprintf("<mkt_event_study> %s, %d units\n", label, x$n_units))
  print.data.frame(x$table[c("event", "estimate", "std.error", "conf.low", "conf.high",
                             "conf.low.uniform", "conf.high.uniform")],
                   row.names = FALSE, digits = 4)
  if (x$pretest$df > 0) {
    cat(sprintf("Pre-trend Wald test: chi2(%d) = %.3f, p = %.4f\n", x$pretest$df,
                x$pretest$statistic, x$pretest$p.value))
  }
  invisible(x)
}

#' @rdname event_study-methods
#' @export
plot.mkt_event_study <- function(x, ...) {
  td <- x$table
  td$phase <- ifelse(td$event >= 0, "post", "pre")
  ggplot2::ggplot(td, ggplot2::aes(x = .data$event, y = .data$estimate, colour = .data$phase)) +
    ggplot2::geom_hline(yintercept = 0, colour = "grey50") +
    ggplot2::geom_vline(xintercept = -0.5, colour = "grey70", linetype = "dashed") +
    ggplot2::geom_linerange(ggplot2::aes(ymin = .data$conf.low.uniform,
                                         ymax = .data$conf.high.uniform), na.rm = TRUE) +
    ggplot2::geom_linerange(ggplot2::aes(ymin = .data$conf.low, ymax = .data$conf.high),
                            linewidth = 1.2, na.rm = TRUE) +
    ggplot2::geom_point(size = 2, na.rm = TRUE) +
    ggplot2::scale_colour_manual(values = c(pre = "grey40", post = "#08519c")) +
    ggplot2::labs(x = "periods since adoption", y = "effect", colour = NULL,
                  caption = "thick: pointwise band; thin: uniform band") +
    ggplot2::theme_minimal()
}
