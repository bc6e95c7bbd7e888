#' Aggregate group-time effects: overall, by event time, cohort or period
#'
#' Summarises the ATT(g,t) of a [staggered()] fit as in Callaway and
#' Sant'Anna (2021). Cells are weighted by cohort size (sum of the sampling
#' weights), and the influence functions include the estimation of those
#' weights, so the standard errors match the did package.
#'
#' * `"simple"`: the average over all post-treatment cells, weighted by
#'   cohort size.
#' * `"event"`: one effect per event time `e` (periods since adoption),
#'   averaging the cohorts observed `e` periods after adoption; the overall
#'   row is the mean over `e >= 0`.
#' * `"group"`: one effect per cohort (the mean of its post-treatment
#'   cells); the overall row weights cohorts by size.
#' * `"calendar"`: one effect per period, averaging the cohorts treated by
#'   then; the overall row is the mean over periods.
#'
#' Cells that are `NA` (see [staggered()]) are left out and the weights of
#' the rest rescaled. The first row of `tidy()` is always the overall
#' estimate. With a bootstrap in the fit, the detail rows get a uniform band
#' from the same multipliers (sup-t over the rows), and the overall row a
#' pointwise interval from its bootstrap standard error; `vcov()` is the
#' covariance of all rows from their influence functions.
#'
#' @param x A [staggered()] fit.
#' @param type `"simple"`, `"event"`, `"group"` or `"calendar"`.
#' @param min_e,max_e Event times kept (in periods). `max_e` also limits the
#'   post-treatment cells of `"simple"` and `"group"` (none left is an error
#'   of class `mktcausal_error_no_post_cells`). For `"event"`, a window with
#'   no estimated event time is an error of class
#'   `mktcausal_error_bad_window`; a window of pre-periods only has an `NA`
#'   overall row.
#' @param balance_e For `"event"`: keep only the cohorts observed for at
#'   least `balance_e` periods after adoption, so that every event time up to
#'   `balance_e` averages the same cohorts.
#' @param ... Must be empty.
#' @return A fit of class `c("mkt_staggered_agg", "mkt_fit")` (see
#'   [mkt_fit]): its estimates have the terms `"overall"` then `"event e"`,
#'   `"group g"` or `"time t"`, with the columns `type`, `event`, `group` or
#'   `time` (as applies) and `std.error.boot` besides broom's.
#' @examples
#' mpdta$post <- as.integer(mpdta$first.treat > 0 & mpdta$year >= mpdta$first.treat)
#' fit <- staggered(lemp ~ post | countyreal + year, mpdta, n_draws = 0)
#' aggregate(fit, "event")
#' tidy(aggregate(fit, "group"))
#' @importFrom stats aggregate
#' @export
aggregate.mkt_staggered <- function(x, type = c("simple", "event", "group", "calendar"),
                                    min_e = -Inf, max_e = Inf, balance_e = NULL, ...) {
  check_dots(...)
  type <- check_choice(type)
  if (!is.numeric(min_e) || !is.numeric(max_e) || length(min_e) != 1L ||
      length(max_e) != 1L || is.na(min_e) || is.na(max_e) || min_e > max_e) {
    abort_mkt("bad_argument", c(
      "{.arg min_e} and {.arg max_e} must be single numbers with {.code min_e <= max_e}.",
      x = "You supplied {.val {min_e}} and {.val {max_e}}."
    ))
  }
  if (!is.null(balance_e)) balance_e <- check_count(balance_e, "balance_e", min = 0)
  call <- match.call()
  call[[1]] <- as.name("aggregate")
  staggered_aggregate_fit(x, type, min_e, max_e, balance_e, n_draws = x$n_draws, call = call)
}

# The core of aggregate(): the aggregated estimates and their influence
# functions (n units x rows, the overall row first), as a fit.
# `n_draws = 0` skips the bootstrap (for printing a fit's overall effect).
staggered_aggregate_fit <- function(x, type, min_e = -Inf, max_e = Inf, balance_e = NULL,
                                    n_draws = x$n_draws, call = NULL) {
  agg <- staggered_combine(x, type, min_e, max_e, balance_e)
  n <- x$n_units
  S <- rowsum_clusters(agg$inf, x$cluster_id)
  se <- sqrt(colSums(S^2)) / n
  se[se <= sqrt(.Machine$double.eps) * 10] <- NA_real_
  k <- length(agg$est)
  boot <- staggered_bootstrap(S, n, n_draws, x$seed, x$alpha,
                              band = if (k > 1L) 2:k else integer())
  crit <- if (k > 1L) boot$crit else NA_real_
  # The influence functions are on the fit's internal scale (see
  # staggered_fit()); the estimates and standard errors go back to the
  # outcome's units.
  sc <- x$scale %||% 1
  agg$est <- agg$est * sc
  se <- se * sc
  boot$se <- boot$se * sc
  z <- stats::qnorm(x$alpha / 2, lower.tail = FALSE)
  se_overall <- if (n_draws > 0 && !is.na(boot$se[1])) boot$se[1] else se[1]
  low <- c(agg$est[1] - z * se_overall, rep(NA_real_, k - 1L))
  high <- c(agg$est[1] + z * se_overall, rep(NA_real_, k - 1L))
  if (k > 1L) {
    idx <- 2:k
    lim <- band_limits(agg$est[idx], se[idx], boot$se[idx], crit, x$alpha)
    low[idx] <- lim$low
    high[idx] <- lim$high
  }
  col <- switch(type, event = "event", group = "group", calendar = "time", simple = NULL)
  labv <- if (is.null(col)) NULL else if (type == "event") agg$label else x$times[agg$label]
  term <- c("overall", if (length(agg$label)) paste(col, as.character(labv)) else character())
  est <- data.frame(term = term, estimate = agg$est, std.error = se,
                    p.value = 2 * stats::pnorm(-abs(agg$est / se)),
                    conf.low = low, conf.high = high, type = type, stringsAsFactors = FALSE)
  if (!is.null(col)) est[[col]] <- c(labv[NA_integer_], labv)
  est$std.error.boot <- boot$se
  what <- c(simple = "the mean over all post-treatment cells",
            event = "by event time (periods since adoption); overall: the mean over event times >= 0",
            group = "by cohort (mean of its post-treatment cells); overall: cohorts weighted by size",
            calendar = "by period; overall: the mean over periods")[[type]]
  new_fit(
    "staggered_agg", estimates = est,
    method = sprintf("Callaway-Sant'Anna ATT, %s aggregation", type),
    estimand = sprintf("ATT(g,t) averaged with cohort-size weights %s", what),
    inference = staggered_inference_label(x$vars$cluster, n_draws, crit),
    alpha = x$alpha, n = x$n, call = call,
    vcov = unscale_variance(influence_vcov(S, n), sc), vars = x$vars,
    glance = list(type = type, n_draws = n_draws, crit = crit),
    type = type, label = agg$label, times = x$times, inf = agg$inf, scale = sc,
    balance_e = balance_e, boot_se = boot$se, crit = crit, n_draws = n_draws
  )
}

# An event window [min_e, max_e] must hold at least one of the event times
# `events` that were estimated; the message lists them.
check_event_window <- function(events, min_e, max_e, call = rlang::caller_env()) {
  if (any(events >= min_e & events <= max_e)) return(invisible(TRUE))
  abort_mkt("bad_window", c(
    "No estimated event time lies between {.arg min_e} = {format(min_e)} and {.arg max_e} = {format(max_e)}.",
    i = if (length(events)) {
      "The event times estimated are {.val {events}}{if (!(-1 %in% events) && any(events < -1)) ' (-1 is the reference period)' else ''}; choose the window among them."
    } else {
      "No event time has an estimate."
    }
  ), call = call)
}

# The aggregated estimates and their influence functions (did's aggte()),
# including the estimation of the cohort-share weights.
staggered_combine <- function(x, type, min_e, max_e, balance_e) {
  cl <- x$cells
  ok <- !is.na(cl$estimate)
  g <- cl$group_idx
  t <- cl$time_idx
  e <- t - g
  # On the scale of the influence functions.
  att <- cl$estimate / (x$scale %||% 1)
  n <- x$n_units
  w <- x$unit_weight / mean(x$unit_weight)
  G <- x$unit_cohort
  groups <- sort(unique(g))
  pg_group <- vapply(groups, function(h) mean(w * (G == h)), numeric(1))
  pg <- pg_group[match(g, groups)]
  inf <- x$inf

  # Influence function of the estimated cohort-share weights (did's wif()).
  wif <- function(keep, pgv, grp) {
    ind <- vapply(keep, function(k) w * (G == grp[k]) - pgv[k], numeric(n))
    ind <- matrix(ind, nrow = n)
    s <- sum(pgv[keep])
    ind / s - rowSums(ind) %o% (pgv[keep] / s^2)
  }
  combine <- function(keep) {
    wt <- pg[keep] / sum(pg[keep])
    list(est = sum(att[keep] * wt),
         inf = drop(inf[, keep, drop = FALSE] %*% wt + wif(keep, pg, g) %*% att[keep]))
  }

  label <- NULL
  if (type == "simple") {
    keep <- which(ok & t >= g & e <= max_e)
    if (!length(keep)) {
      abort_mkt("no_post_cells", c("No post-treatment cell is left to aggregate.",
                                   i = "Widen {.arg max_e}."))
    }
    overall <- combine(keep)
    detail <- list()
  } else if (type == "event") {
    incl <- rep(TRUE, length(g))
    es <- sort(unique(e[ok]))
    if (!is.null(balance_e)) {
      Tn <- length(x$times)
      incl <- (Tn - g) >= balance_e
      es <- sort(unique(e[ok & incl]))
      es <- es[es <= balance_e & es >= balance_e - (Tn - 1)]
      if (!length(es)) {
        abort_mkt("bad_argument", c(
          "{.arg balance_e} = {balance_e} keeps no cohort: none is observed that many periods after adopting.",
          i = "The longest is {max(Tn - g[ok])} period{?s}; use a smaller {.arg balance_e}."
        ))
      }
    }
    check_event_window(es, min_e, max_e)
    es <- es[es >= min_e & es <= max_e]
    detail <- lapply(es, function(ev) combine(which(ok & incl & e == ev)))
    label <- es
    pos <- es >= 0
    # A window of pre-periods only has no overall effect.
    overall <- if (any(pos)) {
      list(est = mean(vapply(detail[pos], `[[`, numeric(1), "est")),
           inf = rowMeans(matrix(vapply(detail[pos], `[[`, numeric(n), "inf"), nrow = n)))
    } else {
      list(est = NA_real_, inf = numeric(n))
    }
  } else if (type == "group") {
    detail <- lapply(groups, function(h) {
      keep <- which(ok & g == h & t >= g & e <= max_e)
      if (!length(keep)) return(NULL)
      list(est = mean(att[keep]), inf = rowMeans(inf[, keep, drop = FALSE]))
    })
    has <- !vapply(detail, is.null, logical(1))
    if (!any(has)) {
      abort_mkt("no_post_cells", c("No post-treatment cell is left to aggregate.",
                                   i = "Widen {.arg max_e}."))
    }
    detail <- detail[has]
    label <- groups[has]
    att_g <- vapply(detail, `[[`, numeric(1), "est")
    inf_g <- matrix(vapply(detail, `[[`, numeric(n), "inf"), nrow = n)
    pgg <- pg_group[has]
    wt <- pgg / sum(pgg)
    overall <- list(est = sum(att_g * wt),
                    inf = drop(inf_g %*% wt + wif(seq_along(pgg), pgg, label) %*% att_g))
  } else {
    periods <- sort(unique(t[ok & t >= min(g)]))
    detail <- lapply(periods, function(p) {
      keep <- which(ok & t == p & g <= p)
      if (!length(keep)) return(NULL)
      combine(keep)
    })
    has <- !vapply(detail, is.null, logical(1))
    detail <- detail[has]
    label <- periods[has]
    overall <- list(est = mean(vapply(detail, `[[`, numeric(1), "est")),
                    inf = rowMeans(matrix(vapply(detail, `[[`, numeric(n), "inf"), nrow = n)))
  }
  list(est = c(overall$est, vapply(detail, `[[`, numeric(1), "est")),
       inf = cbind(overall$inf, matrix(vapply(detail, `[[`, numeric(n), "inf"), nrow = n)),
       label = label)
}
