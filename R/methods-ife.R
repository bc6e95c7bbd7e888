#' Tidy, glance, print and plot interactive fixed effects fits
#'
#' Methods for [ife()] and [counterfactual()] fits. `tidy()` returns one
#' table selected by `what`:
#' * `"att"`: the overall ATT (`term`, `estimate`, `std.error`, `p.value`,
#'   `conf.low`, `conf.high`, `n_cells`);
#' * `"event"`: the average gap by event time (0 = first treated period;
#'   negative event times are pre-treatment fit errors, a diagnostic);
#' * `"period"`: the ATT by calendar period;
#' * `"unit"`: the ATT of each treated unit;
#' * `"beta"`: the covariate coefficients;
#' * `"factors"`: one row per period and factor (`time`, `factor`, `value`);
#' * `"loadings"`: one row per unit and factor (`unit`, `factor`, `value`,
#'   `treated`);
#' * `"cv"`: the cross-validation table (r or lambda, MSPE, cells);
#' * `"placebo"`: the average gap over placebo periods, and `"equivalence"`
#'   the equivalence test by placebo period (see [counterfactual()]);
#' * `"counterfactual"`: the mean observed outcome and mean imputed Y(0) of
#'   the treated units by event time;
#' * `"ic"`: the Bai and Ng criteria by r (for [ife()] fits, and for
#'   counterfactual fits whose r was chosen by a criterion);
#' * `"bias"`: for [ife()] fits with a bias correction, one row per
#'   regressor: the uncorrected estimate, the estimated bias terms
#'   (`cross_section`, `time`, `predetermined`; `NA` when not corrected),
#'   their `total` and the `corrected` estimate.
#'
#' `glance()` gives one row with at least r, `pre_mspe`, `att` and
#' `std.error` for counterfactual fits, and r, `sigma2`, `nobs`, `iter` and
#' `converged` for ife fits. `plot()` draws from `tidy()`:
#' `"counterfactual"`, `"gap"` (event-time gaps with intervals),
#' `"factors"`, `"loadings"`, `"cv"` and `"status"` (the treatment pattern).
#'
#' @param x,object A fit from [ife()] or [counterfactual()].
#' @param what Which table; see Description.
#' @param type Which plot; see Description.
#' @param ... Unused.
#' @return `tidy()` and `glance()` return data frames; `plot()` a ggplot;
#'   `coef()` a named vector (the ATT first for counterfactual fits).
#' @examples
#' set.seed(2)
#' d <- expand.grid(store = 1:30, week = 1:20)
#' lambda <- rnorm(30)[d$store]
#' d$promo <- as.integer(d$store <= 5 & d$week > 14)
#' d$sales <- 10 + lambda * cos(d$week / 4) + 2 * d$promo + rnorm(nrow(d), sd = 0.2)
#' fit <- counterfactual(sales ~ promo | store + week, d)
#' glance(fit)
#' tidy(fit, "cv")
#' plot(fit, "gap")
#' @name ife-methods
NULL

# --- counterfactual -------------------------------------------------------

#' @rdname ife-methods
#' @export
tidy.mkt_counterfactual <- function(x, what = c("att", "event", "period", "unit", "beta",
                                                "factors", "loadings", "cv",
                                                "counterfactual", "placebo",
                                                "equivalence", "ic"), ...) {
  what <- match.arg(what)
  p <- x$panel
  switch(what,
    att = x$att,
    event = x$event,
    period = cbind(period = p$times[x$period$period_index], x$period[, -1]),
    unit = cbind(unit = p$units[x$unit_att$unit_index], x$unit_att[, -1]),
    beta = x$beta,
    factors = factors_long(x$factors, p$times),
    loadings = loadings_long(x$loadings, p$units, x$structure$ever),
    cv = if (is.null(x$cv)) data.frame() else x$cv,
    counterfactual = cf_paths(x),
    placebo = if (is.null(x$placebo)) data.frame() else x$placebo,
    equivalence = if (is.null(x$equivalence)) data.frame() else x$equivalence,
    ic = if (is.null(x$ic)) data.frame() else x$ic
  )
}

factors_long <- function(Fm, times) {
  r <- ncol(Fm)
  if (!r) return(data.frame(time = times[0], factor = character(0), value = numeric(0)))
  data.frame(time = rep(times, r), factor = rep(paste0("f", seq_len(r)), each = length(times)),
             value = as.vector(Fm), stringsAsFactors = FALSE)
}

loadings_long <- function(L, units, treated) {
  r <- ncol(L)
  if (!r) return(data.frame(unit = units[0], factor = character(0), value = numeric(0),
                            treated = logical(0)))
  data.frame(unit = rep(units, r), factor = rep(paste0("f", seq_len(r)), each = length(units)),
             value = as.vector(L), treated = rep(treated, r), stringsAsFactors = FALSE)
}

# Observed and imputed means of the treated units by event time.
cf_paths <- function(x) {
  st <- x$structure
  cells <- st$mask & st$ever & (st$treated_cells | st$event < 0)
  ev <- st$event[cells]
  data.frame(event_time = sort(unique(ev)),
             observed = as.numeric(tapply(x$panel$Y[cells], ev, mean)),
             counterfactual = as.numeric(tapply(x$y0[cells], ev, mean)))
}

#' @rdname ife-methods
#' @export
glance.mkt_counterfactual <- function(x, ...) {
  data.frame(
    method = x$method, em = x$em, force = x$force,
    r = x$r, r_rule = switch(x$criterion, cv = "cross-validation (smallest MSPE)",
                             user = "given", x$criterion),
    lambda = if (is.null(x$lambda)) NA_real_ else x$lambda,
    att = x$att$estimate, std.error = x$att$std.error,
    conf.low = x$att$conf.low, conf.high = x$att$conf.high,
    pre_mspe = x$pre_mspe,
    n_treated_units = sum(x$structure$ever), n_controls = x$structure$n_controls,
    n_treated_cells = x$att$n_cells, se = x$se, n_boot = x$n_boot,
    placebo_estimate = if (is.null(x$placebo)) NA_real_ else x$placebo$estimate,
    placebo_p.value = if (is.null(x$placebo)) NA_real_ else x$placebo$p.value,
    equivalence_p.value = if (is.null(x$equivalence)) NA_real_ else max(x$equivalence$p.value),
    iter = x$iter, converged = x$converged,
    stringsAsFactors = FALSE
  )
}

#' @rdname ife-methods
#' @export
coef.mkt_counterfactual <- function(object, ...) {
  c(ATT = object$att$estimate, stats::setNames(object$beta$estimate, object$beta$term))
}

#' @rdname ife-methods
#' @export
print.mkt_counterfactual <- function(x, ...) {
  g <- glance.mkt_counterfactual(x)
  how <- switch(x$method,
    ife = if (x$em) "interactive fixed effects, EM over untreated cells" else
      "generalized synthetic control (factors from never-treated units)",
    mc = "matrix completion (soft-impute)",
    fe = "two-way fixed effects imputation")
  tuning <- if (x$method == "mc") paste0("lambda = ", signif(x$lambda, 4)) else
    paste0("r = ", x$r)
  rule <- if (!is.null(x$cv)) " (cross-validated)" else if (!is.null(x$ic)) paste0(" (", x$criterion, ")") else ""
  say("{.strong Counterfactual estimator}: {how}; {tuning}{rule}")
  say("{g$n_treated_units} treated unit{?s}, {g$n_controls} never treated; {g$n_treated_cells} treated cell{?s}; pre-period MSPE {signif(g$pre_mspe, 4)}")
  se <- if (is.na(g$std.error)) "" else
    sprintf(" (s.e. %s, %d%% interval [%s, %s], %s)", signif(g$std.error, 4),
            round(100 * (1 - x$alpha_level)), signif(g$conf.low, 4), signif(g$conf.high, 4), x$se)
  say("ATT = {signif(g$att, 5)}{se}")
  if (!is.null(x$placebo)) {
    say("Placebo test ({x$structure$placebo} pre-period{?s} held out): mean gap {signif(g$placebo_estimate, 3)}{if (is.na(g$placebo_p.value)) '' else paste0(', p = ', format.pval(g$placebo_p.value, digits = 3))}")
  }
  if (!is.null(x$equivalence)) {
    say("Equivalence test (bound +/- {signif(x$equivalence$bound[1], 3)}): p = {format.pval(g$equivalence_p.value, digits = 3)}")
  }
  if (nrow(x$beta)) {
    cat("Covariates:\n")
    print.data.frame(x$beta[, c("term", "estimate")], row.names = FALSE)
  }
  invisible(x)
}

#' @rdname ife-methods
#' @export
summary.mkt_counterfactual <- function(object, ...) {
  structure(list(fit = object, att = object$att, event = object$event,
                 beta = object$beta, cv = object$cv),
            class = "summary.mkt_counterfactual")
}

#' @export
print.summary.mkt_counterfactual <- function(x, ...) {
  print.mkt_counterfactual(x$fit)
  cat("\nBy event time (0 = first treated period):\n")
  print.data.frame(x$event, row.names = FALSE, digits = 4)
  if (!is.null(x$cv)) {
    cat("\nCross-validation (leave-block-out on pre-periods; smallest MSPE chosen):\n")
    print.data.frame(x$cv, row.names = FALSE, digits = 4)
  }
  invisible(x)
}

#' @rdname ife-methods
#' @export
plot.mkt_counterfactual <- function(x, type = c("gap", "counterfactual", "factors", "loadings",
                                                "cv", "status"), ...) {
  type <- match.arg(type)
  theme <- ggplot2::theme_minimal()
  switch(type,
    gap = {
      ev <- tidy.mkt_counterfactual(x, "event")
      p <- ggplot2::ggplot(ev, ggplot2::aes(x = .data$event_time, y = .data$estimate)) +
        ggplot2::geom_hline(yintercept = 0, colour = "grey50") +
        ggplot2::geom_vline(xintercept = -0.5, colour = "grey50", linetype = "dashed")
      if (any(is.finite(ev$conf.low))) {
        p <- p + ggplot2::geom_ribbon(ggplot2::aes(ymin = .data$conf.low, ymax = .data$conf.high),
                                      fill = "steelblue", alpha = 0.2)
      }
      p + ggplot2::geom_line(colour = "steelblue") + ggplot2::geom_point(colour = "steelblue") +
        ggplot2::labs(x = "event time (0 = first treated period)", y = "Y - Y(0)",
                      title = "Gap between observed and imputed outcomes") + theme
    },
    counterfactual = {
      cp <- tidy.mkt_counterfactual(x, "counterfactual")
      long <- rbind(data.frame(event_time = cp$event_time, value = cp$observed, series = "observed"),
                    data.frame(event_time = cp$event_time, value = cp$counterfactual,
                               series = "imputed Y(0)"))
      ggplot2::ggplot(long, ggplot2::aes(x = .data$event_time, y = .data$value,
                                         colour = .data$series, linetype = .data$series)) +
        ggplot2::geom_vline(xintercept = -0.5, colour = "grey50", linetype = "dashed") +
        ggplot2::geom_line() +
        ggplot2::labs(x = "event time", y = x$panel$vars$outcome, colour = NULL, linetype = NULL,
                      title = "Treated units: observed and counterfactual means") +
        theme + ggplot2::theme(legend.position = "bottom")
    },
    factors = plot_factors(tidy.mkt_counterfactual(x, "factors"), x$panel$vars$time),
    loadings = plot_loadings(tidy.mkt_counterfactual(x, "loadings")),
    cv = plot_cv(tidy.mkt_counterfactual(x, "cv")),
    status = plot_status(x$panel)
  )
}

plot_factors <- function(df, time_name) {
  if (!nrow(df)) {
    abort_mkt("bad_argument", "The fit has no factors to plot (r = 0).")
  }
  ggplot2::ggplot(df, ggplot2::aes(x = .data$time, y = .data$value, colour = .data$factor)) +
    ggplot2::geom_line() +
    ggplot2::labs(x = time_name, y = "factor value", colour = NULL, title = "Estimated factors") +
    ggplot2::theme_minimal()
}

plot_loadings <- function(df) {
  if (!nrow(df)) {
    abort_mkt("bad_argument", "The fit has no loadings to plot (r = 0).")
  }
  if (!"treated" %in% names(df)) df$treated <- FALSE
  wide <- stats::reshape(df[, c("unit", "factor", "value", "treated")], idvar = c("unit", "treated"),
                         timevar = "factor", direction = "wide")
  if (ncol(wide) < 4) {
    return(ggplot2::ggplot(df, ggplot2::aes(x = .data$value, fill = .data$treated)) +
      ggplot2::geom_histogram(bins = 30, alpha = 0.6, position = "identity") +
      ggplot2::labs(x = "loading on f1", fill = "treated", title = "Estimated loadings") +
      ggplot2::theme_minimal())
  }
  ggplot2::ggplot(wide, ggplot2::aes(x = .data$value.f1, y = .data$value.f2,
                                     colour = .data$treated)) +
    ggplot2::geom_point() +
    ggplot2::labs(x = "loading on f1", y = "loading on f2", colour = "treated",
                  title = "Estimated loadings") +
    ggplot2::theme_minimal()
}

plot_cv <- function(cv) {
  if (!nrow(cv)) {
    abort_mkt("bad_argument", c("The fit has no cross-validation table.",
                                i = "Refit with {.code r = NULL} (or {.code lambda = NULL})."))
  }
  xv <- names(cv)[1]
  p <- ggplot2::ggplot(cv, ggplot2::aes(x = .data[[xv]], y = .data$mspe)) +
    ggplot2::geom_line() + ggplot2::geom_point(ggplot2::aes(colour = .data$selected), size = 2.5) +
    ggplot2::scale_colour_manual(values = c(`FALSE` = "grey40", `TRUE` = "firebrick")) +
    ggplot2::labs(x = xv, y = "MSPE (held-out pre-period cells)", colour = "chosen",
                  title = "Cross-validation") +
    ggplot2::theme_minimal()
  if (xv == "lambda") p <- p + ggplot2::scale_x_log10()
  p
}

# --- ife -------------------------------------------------------------------

#' @rdname ife-methods
#' @export
tidy.mkt_ife <- function(x, what = c("beta", "factors", "loadings", "ic", "bias"), ...) {
  what <- match.arg(what)
  switch(what,
    beta = x$beta,
    bias = if (is.null(x$bias)) data.frame() else x$bias,
    factors = factors_long(x$factors, x$panel$times),
    loadings = loadings_long(x$loadings, x$panel$units, rep(FALSE, nrow(x$loadings))),
    ic = if (is.null(x$ic)) data.frame() else x$ic
  )
}

#' @rdname ife-methods
#' @export
glance.mkt_ife <- function(x, ...) {
  data.frame(r = x$r, force = x$force, sigma2 = x$sigma2, nobs = x$nobs,
             n_units = length(x$panel$units), n_periods = length(x$panel$times),
             r_chosen_by = if (is.null(x$ic)) "user" else x$criterion,
             se = x$se_type, iter = x$iter, converged = x$converged,
             stringsAsFactors = FALSE)
}

#' @rdname ife-methods
#' @export
coef.mkt_ife <- function(object, ...) object$coefficients

#' @rdname ife-methods
#' @export
vcov.mkt_ife <- function(object, ...) object$vcov

#' @rdname ife-methods
#' @export
print.mkt_ife <- function(x, ...) {
  g <- glance.mkt_ife(x)
  say("{.strong Interactive fixed effects} (Bai 2009): r = {g$r}{if (is.null(x$ic)) '' else paste0(' (', x$criterion, ')')}, {g$force} effects")
  say("{g$n_units} units x {g$n_periods} periods, {g$nobs} observed cells; sigma^2 = {signif(g$sigma2, 4)}; {g$iter} iteration{?s}{if (g$converged) '' else ' (not converged)'}")
  if (nrow(x$beta)) {
    if (!is.null(x$bias)) {
      say("Bias-corrected ({x$bias_correction}): {.code tidy(fit, \"bias\")} gives the terms removed.")
    }
    cat(sprintf("Coefficients (%s standard errors):\n", g$se))
    print.data.frame(x$beta, row.names = FALSE, digits = 4)
  }
  invisible(x)
}

#' @rdname ife-methods
#' @export
summary.mkt_ife <- function(object, ...) {
  structure(list(fit = object, ic = object$ic), class = "summary.mkt_ife")
}

#' @export
print.summary.mkt_ife <- function(x, ...) {
  print.mkt_ife(x$fit)
  if (!is.null(x$ic)) {
    cat("\nBai and Ng (2002) criteria:\n")
    print.data.frame(x$ic, row.names = FALSE, digits = 4)
  }
  invisible(x)
}

#' @rdname ife-methods
#' @export
plot.mkt_ife <- function(x, type = c("factors", "loadings", "ic"), ...) {
  type <- match.arg(type)
  switch(type,
    factors = plot_factors(tidy.mkt_ife(x, "factors"), x$panel$vars$time),
    loadings = plot_loadings(tidy.mkt_ife(x, "loadings")),
    ic = {
      ic <- tidy.mkt_ife(x, "ic")
      if (!nrow(ic)) abort_mkt("bad_argument", "The fit was given r, so it has no criteria table.")
      long <- rbind(data.frame(r = ic$r, value = ic$IC_p1, criterion = "IC_p1"),
                    data.frame(r = ic$r, value = ic$IC_p2, criterion = "IC_p2"))
      ggplot2::ggplot(long, ggplot2::aes(x = .data$r, y = .data$value, colour = .data$criterion)) +
        ggplot2::geom_line() + ggplot2::geom_point() +
        ggplot2::labs(x = "number of factors", y = "criterion", colour = NULL,
                      title = "Bai and Ng criteria") +
        ggplot2::theme_minimal()
    })
}
