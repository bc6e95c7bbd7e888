#' Difference-in-differences for a common shock with differential exposure
#'
#' A national campaign, a price change or a competitor's entry hits every
#' market at once, but markets differ in how much of it they get (GRPs per
#' capita, share of affected stores). `exposure_did()` fits
#' \deqn{y_{it} = \alpha_i + \lambda_t + \beta \cdot exposure_i \cdot post_t +
#' \varepsilon_{it}}
#' with unit and time fixed effects and clustered (CR1) standard errors, and
#' its event-study version, one coefficient \eqn{\beta_s} of
#' \eqn{exposure_i \cdot 1\{t = s\}} for every period but a base period.
#'
#' @section Assumption:
#' Outcomes of more and less exposed units would have moved in parallel
#' without the shock (parallel trends across exposure levels), and the
#' effect is linear in exposure. \eqn{\beta} is then the effect of one unit
#' of exposure. The event study checks the first part: the pre-period
#' coefficients should be near zero; `glance()` reports their joint Wald
#' test (`pretrend_stat`, `pretrend_p.value`).
#'
#' The static coefficient equals
#' `fixest::feols(y ~ I(exposure * post) | unit + time, cluster = ~unit)` and
#' the event study `feols(y ~ i(time, exposure, ref = base) | unit + time)`.
#'
#' @param formula `outcome ~ exposure + covariates | unit + time`. The
#'   exposure column is either constant within each unit (then give
#'   `post`), or the exposure switched on at the shock: zero for every unit
#'   before one common period and constant within each unit from then on
#'   (for example GRPs recorded only while the campaign airs). In the second
#'   form the exposure is read from the post periods and `post` defaults to
#'   the first of them.
#' @param data A long data frame, tibble or data.table.
#' @param post The first period of the shock, on the scale of the time
#'   column (for example `as.Date("2024-03-04")` or `8`), or the name of a
#'   0/1 column of `data` marking post periods. Optional when the exposure
#'   column switches on at the shock.
#' @param factors `NULL` (parallel trends across exposure), or the number
#'   of interactive factors \eqn{r}: the model then adds
#'   \eqn{\lambda_i'f_t}, so that units may load differently on common
#'   shocks, and \eqn{\beta} is estimated by [ife()] (Bai 2009) with its
#'   analytic standard errors (`se_type = "cluster"`, clustered by unit). The
#'   event study is not fitted with factors.
#' @param event_study Also fit the event study (default `TRUE`).
#' @param base Base period of the event study (its coefficient is 0); the
#'   last period before the shock by default.
#' @param cluster `NULL` (default) clusters by unit; a column name, or
#'   `FALSE` for HC1.
#' @param weights Optional name of a column of positive weights.
#' @param alpha Level for confidence intervals.
#' @param ... Unused.
#' @return An object of class `c("mkt_exposure_did", "mkt_fit")` with
#'   `estimates` (one row, term `"<exposure>:post"`), `vcov`,
#'   `event_study` (the table of `tidy(fit, "event_study")`: `time`,
#'   `relative_period`, `term`, `estimate`, `std.error`, `conf.low`,
#'   `conf.high`, `p.value`, with the base period at 0), its covariance
#'   `vcov_event_study`, and the pre-trend test.
#' @examples
#' set.seed(1)
#' d <- expand.grid(dma = 1:50, week = 1:12)
#' grp <- runif(50, 0, 3)
#' d$grp <- grp[d$dma]
#' d$sales <- d$dma / 10 + d$week / 4 + 0.5 * d$grp * (d$week >= 8) + rnorm(nrow(d))
#' fit <- exposure_did(sales ~ grp | dma + week, d, post = 8)
#' fit
#' plot(fit)
#' @export
exposure_did <- function(formula, data, post, factors = NULL, event_study = TRUE, base = NULL,
                         cluster = NULL, weights = NULL, alpha = 0.05, ...) {
  alpha <- check_alpha(alpha)
  panel <- mkt_panel(formula, data)
  expo_name <- panel$vars$treatment
  if (is.null(expo_name)) {
    abort_mkt("bad_formula", c(
      "{.fn exposure_did} needs an exposure: the first term after {.code ~}.",
      i = "Write {.code sales ~ grp | dma + week}."
    ))
  }
  cells <- panel_cells(panel)
  switched <- exposure_switched_on(panel)
  if (!is.null(switched)) {
    expo <- switched$exposure
    if (missing(post) || is.null(post)) post <- switched$start
  } else {
    expo <- unit_exposure(panel, expo_name)
  }
  post_t <- post_periods(post, panel, data)
  if (!is.null(factors)) {
    return(exposure_did_factors(panel, data, expo, post_t, expo_name, factors, alpha))
  }
  covs <- panel$vars$covariates
  keep <- stats::complete.cases(cells$X[, covs, drop = FALSE])
  w <- check_weights_column(weights, panel, data, cells)
  if (!is.null(w)) w <- w[keep]
  fe <- list(unit = cells$unit[keep], time = cells$time[keep])
  cl <- fe_cluster(cluster, panel, data, cells, keep)
  se_type <- if (is.null(cl)) "HC1" else "CR1"
  n_abs <- fe_absorbed(fe, cl)
  e <- expo[fe$unit]
  term <- paste0(expo_name, ":post")
  Xs <- cbind(e * post_t[fe$time], cells$X[keep, covs, drop = FALSE])
  colnames(Xs)[1] <- term
  M <- within_transform(cbind(y = cells$y[keep], Xs), fe, weights = w)
  fit <- ols_robust(M[, -1, drop = FALSE], M[, "y"], cluster = cl, weights = w,
                    se_type = se_type, n_absorbed = n_abs)
  est <- fe_estimates(fit$coefficients, fit$vcov, fit$df, alpha, terms = term)

  es <- NULL
  V_es <- NULL
  pre <- c(stat = NA_real_, p = NA_real_, df1 = NA_real_)
  if (isTRUE(event_study)) {
    times <- panel$times
    base_idx <- event_base(base, times, post_t)
    others <- setdiff(seq_along(times), base_idx)
    E <- vapply(others, function(s) e * (fe$time == s), numeric(length(e)))
    E <- matrix(E, nrow = length(e))
    colnames(E) <- paste0(expo_name, ":", as.character(times[others]))
    Me <- within_transform(cbind(y = cells$y[keep], E, cells$X[keep, covs, drop = FALSE]),
                           fe, weights = w)
    fe_fit <- ols_robust(Me[, -1, drop = FALSE], Me[, "y"], cluster = cl, weights = w,
                         se_type = se_type, n_absorbed = n_abs)
    tab <- fe_estimates(fe_fit$coefficients, fe_fit$vcov, fe_fit$df, alpha,
                        terms = colnames(E))
    V_es <- fe_fit$vcov[colnames(E), colnames(E), drop = FALSE]
    first_post <- which(post_t == 1)[1]
    base_row <- data.frame(term = paste0(expo_name, ":", as.character(times[base_idx])),
                           estimate = 0, std.error = 0, statistic = NA_real_,
                           p.value = NA_real_, conf.low = 0, conf.high = 0,
                           df = fe_fit$df[[1]])
    tab <- rbind(tab, base_row)
    idx <- c(others, base_idx)
    es <- data.frame(time = times[idx], relative_period = idx - first_post, tab,
                     stringsAsFactors = FALSE, row.names = NULL)
    es <- es[order(idx), , drop = FALSE]
    rownames(es) <- NULL
    pre_terms <- colnames(E)[post_t[others] == 0]
    if (length(pre_terms)) {
      b <- fe_fit$coefficients[pre_terms]
      k <- length(pre_terms)
      stat <- as.numeric(t(b) %*% solve(fe_fit$vcov[pre_terms, pre_terms, drop = FALSE], b)) / k
      pre <- c(stat = stat, p = stats::pf(stat, k, fe_fit$df[[1]], lower.tail = FALSE), df1 = k)
    }
  }
  structure(list(
    estimates = est, vcov = fit$vcov[term, term, drop = FALSE], event_study = es,
    vcov_event_study = V_es, pretrend = pre, alpha = alpha, n = nrow(M),
    n_units = length(unique(fe$unit)), n_periods = length(unique(fe$time)),
    n_clusters = fit$n_clusters, se_type = se_type, exposure = expo,
    first_post = panel$times[which(post_t == 1)[1]], panel = panel
  ), class = c("mkt_exposure_did", "mkt_fit"))
}

# Each unit's exposure; an exposure that changes within a unit is not a
# common-shock design.
unit_exposure <- function(panel, name, call = rlang::caller_env()) {
  D <- panel$D
  rng <- apply(D, 1, function(r) diff(range(r, na.rm = TRUE)))
  if (any(rng > 1e-12 * max(1, abs(D), na.rm = TRUE))) {
    bad <- panel$units[rng > 1e-12 * max(1, abs(D), na.rm = TRUE)]
    abort_mkt("varies_within_unit", c(
      "The exposure {.field {name}} changes over time within {length(bad)} unit{?s}, such as {.val {as.character(utils::head(bad, 3))}}.",
      i = "{.fn exposure_did} takes one exposure per unit (for example pre-campaign GRPs); for a dose that varies over time use {.fn dose_response}."
    ), call = call)
  }
  apply(D, 1, function(r) r[!is.na(r)][1])
}

# The exposure-response model with interactive fixed effects: the regressor
# exposure_i * post_t goes through ife(), the package's Bai estimator.
exposure_did_factors <- function(panel, data, expo, post_t, expo_name, factors, alpha,
                                 call = rlang::caller_env()) {
  r <- check_count(factors, "factors", min = 0, call = call)
  v <- panel$vars
  d <- data.frame(unit = rep(panel$units, times = length(panel$times)),
                  time = rep(panel$times, each = length(panel$units)),
                  y = as.vector(panel$Y), exposure_post = expo * rep(post_t, each = length(panel$units)))
  for (k in v$covariates) d[[k]] <- as.vector(panel$X[[k]])
  d <- d[as.vector(panel$observed), , drop = FALSE]
  rhs <- paste(c("exposure_post", sprintf("`%s`", v$covariates)), collapse = " + ")
  fit <- ife(stats::as.formula(paste("y ~", rhs, "| unit + time")), d, r = r,
             se_type = "cluster", alpha = alpha)
  term <- paste0(expo_name, ":post")
  est <- fit$beta[fit$beta$term == "exposure_post", , drop = FALSE]
  est$term <- term
  est$df <- Inf
  rownames(est) <- NULL
  V <- fit$vcov["exposure_post", "exposure_post", drop = FALSE]
  dimnames(V) <- list(term, term)
  structure(list(
    estimates = est, vcov = V, event_study = NULL, vcov_event_study = NULL,
    pretrend = c(stat = NA_real_, p = NA_real_, df1 = NA_real_), alpha = alpha,
    n = sum(panel$observed), n_units = length(panel$units), n_periods = length(panel$times),
    n_clusters = length(panel$units), se_type = "IFE cluster", exposure = expo,
    first_post = panel$times[which(post_t == 1)[1]], panel = panel, factors = r, ife = fit
  ), class = c("mkt_exposure_did", "mkt_fit"))
}

# An exposure recorded only once the shock starts: zero for every unit before
# one common period, constant within each unit from it on, and not zero
# everywhere after it. Returns each unit's exposure and the start, or NULL.
exposure_switched_on <- function(panel) {
  D <- panel$D
  if (is.null(D)) return(NULL)
  on <- colSums(abs(D) > 0, na.rm = TRUE) > 0
  if (!any(on)) return(NULL)
  start <- which(on)[1]
  if (start == 1L || !all(on[start:length(on)])) return(NULL)
  after <- D[, start:ncol(D), drop = FALSE]
  rng <- apply(after, 1, function(r) diff(range(r, na.rm = TRUE)))
  if (any(!is.finite(rng)) || any(rng > 1e-12 * max(1, abs(after), na.rm = TRUE))) return(NULL)
  list(exposure = apply(after, 1, function(r) r[!is.na(r)][1]), start = panel$times[start])
}

# 0/1 for each period of the panel: after the shock or not.
post_periods <- function(post, panel, data, call = rlang::caller_env()) {
  times <- panel$times
  if (missing(post) || is.null(post) || length(post) != 1L || is.na(post)) {
    abort_mkt("bad_argument", c(
      "{.arg post} must be the first period of the shock or the name of a 0/1 column.",
      i = "For example {.code post = 8} or {.code post = \"campaign_on\"}."
    ), call = call)
  }
  if (is.character(post) && post %in% names(data)) {
    m <- panel_side_column(panel, data, post, "post", call = call)
    val <- suppressWarnings(as.numeric(m))
    per_time <- apply(matrix(val, nrow = nrow(m)), 2, function(v) unique(v[!is.na(v)]))
    ok <- is.list(per_time) == FALSE && all(per_time %in% c(0, 1))
    if (!ok) {
      abort_mkt("bad_argument", c(
        "The post column {.field {post}} must be 0/1 and the same for every unit in a period.",
        i = "A common shock starts at one date for all units."
      ), call = call)
    }
    out <- as.numeric(per_time)
  } else {
    out <- tryCatch(as.numeric(times >= post), error = function(e) NULL)
    if (is.null(out) || anyNA(out)) {
      abort_mkt("bad_argument", c(
        "{.arg post} ({.val {format(post)}}) cannot be compared with the periods of {.field {panel$vars$time}}.",
        i = "Give it on the same scale, for example a {.cls Date} when periods are dates."
      ), call = call)
    }
  }
  if (all(out == 1) || all(out == 0)) {
    abort_mkt("bad_argument", c(
      "{.arg post} leaves no period {if (all(out == 1)) 'before' else 'after'} the shock.",
      i = "The periods run from {format(times[1])} to {format(times[length(times)])}."
    ), call = call)
  }
  if (any(diff(out) < 0)) {
    abort_mkt("bad_argument", "{.arg post} must switch from 0 to 1 once and stay on.", call = call)
  }
  out
}

event_base <- function(base, times, post_t, call = rlang::caller_env()) {
  if (is.null(base)) return(max(which(post_t == 0)))
  idx <- match(as.character(base), as.character(times))
  if (length(base) != 1L || is.na(idx)) {
    abort_mkt("bad_argument", c(
      "{.arg base} must be one of the periods of the panel.",
      x = "You supplied {.val {format(base)}}."
    ), call = call)
  }
  idx
}
