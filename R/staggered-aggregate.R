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
#' pointwise interval from its bootstrap standard error.
#'
#' @param x A [staggered()] fit (for `aggregate()`), or an aggregation (for
#'   its methods).
#' @param object An aggregation, for `coef()`.
#' @param type `"simple"`, `"event"`, `"group"` or `"calendar"`.
#' @param min_e,max_e Event times kept (in periods). `max_e` also limits the
#'   post-treatment cells of `"simple"` and `"group"`.
#' @param balance_e For `"event"`: keep only the cohorts observed for at
#'   least `balance_e` periods after adoption, so that every event time up to
#'   `balance_e` averages the same cohorts.
#' @param ... Unused.
#' @return An object of class `c("mkt_staggered_agg", "mkt_fit")`; `tidy()`
#'   gives `term`, `type`, `event`/`group`/`time` (as applies), `estimate`,
#'   `std.error`, `conf.low`, `conf.high`, `p.value` and `std.error.boot`.
#' @examples
#' mpdta$post <- as.integer(mpdta$first.treat > 0 & mpdta$year >= mpdta$first.treat)
#' fit <- staggered(lemp ~ post | countyreal + year, mpdta, n_boot = 0)
#' tidy(aggregate(fit, "event"))
#' tidy(aggregate(fit, "group"))
#' @importFrom stats aggregate
#' @export
aggregate.mkt_staggered <- function(x, type = c("simple", "event", "group", "calendar"),
                                    min_e = -Inf, max_e = Inf, balance_e = NULL, ...) {
  type <- match.arg(type)
  if (!is.numeric(min_e) || !is.numeric(max_e) || length(min_e) != 1L ||
      length(max_e) != 1L || min_e > max_e) {
    abort_mkt("bad_argument", c(
      "{.arg min_e} and {.arg max_e} must be single numbers with {.code min_e <= max_e}.",
      x = "You supplied {.val {min_e}} and {.val {max_e}}."
    ))
  }
  if (!is.null(balance_e)) balance_e <- check_count(balance_e, "balance_e", min = 0)
  cl <- x$cells
  ok <- !is.na(cl$estimate)
  g <- cl$group_idx
  t <- cl$time_idx
  e <- t - g
  att <- cl$estimate
  n <- x$n
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

  rows <- list()
  label <- NULL
  if (type == "simple") {
    keep <- which(ok & t >= g & e <= max_e)
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
    }
    es <- es[es >= min_e & es <= max_e]
    detail <- lapply(es, function(ev) combine(which(ok & incl & e == ev)))
    label <- es
    pos <- es >= 0
    overall <- list(est = mean(vapply(detail[pos], `[[`, numeric(1), "est")),
                    inf = rowMeans(matrix(vapply(detail[pos], `[[`, numeric(n), "inf"), nrow = n)))
  } else if (type == "group") {
    detail <- lapply(groups, function(h) {
      keep <- which(ok & g == h & t >= g & e <= max_e)
      if (!length(keep)) return(NULL)
      list(est = mean(att[keep]), inf = rowMeans(inf[, keep, drop = FALSE]))
    })
    has <- !vapply(detail, is.null, logical(1))
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
  if (type == "simple" && !length(keep)) {
    abort_mkt("no_post_cells", "No post-treatment cell is left to aggregate.",
              i = "Widen {.arg max_e}.")
  }
  est <- c(overall$est, vapply(detail, `[[`, numeric(1), "est"))
  IF <- cbind(overall$inf, matrix(vapply(detail, `[[`, numeric(n), "inf"), nrow = n))
  S <- rowsum_clusters(IF, x$cluster_id)
  se <- sqrt(colSums(S^2)) / n
  se[se <= sqrt(.Machine$double.eps) * 10] <- NA_real_
  boot <- staggered_bootstrap(S, n, x$n_boot, x$seed, x$alpha)
  detail_boot <- if (length(detail) && x$n_boot > 0) {
    staggered_bootstrap(S[, -1, drop = FALSE], n, x$n_boot, x$seed, x$alpha)
  } else {
    list(se = rep(NA_real_, length(detail)), crit = NA_real_)
  }
  out <- structure(list(
    type = type, estimate = est, std.error = se, boot_se = boot$se,
    crit = detail_boot$crit, label = label, times = x$times, alpha = x$alpha,
    n_boot = x$n_boot, inf = IF, vars = x$vars, balance_e = balance_e,
    table = NULL
  ), class = c("mkt_staggered_agg", "mkt_fit"))
  out$table <- tidy.mkt_staggered_agg(out)
  out
}

#' @rdname aggregate.mkt_staggered
#' @export
tidy.mkt_staggered_agg <- function(x, ...) {
  k <- length(x$estimate)
  z <- stats::qnorm(1 - x$alpha / 2)
  se_for_overall <- if (x$n_boot > 0 && !is.na(x$boot_se[1])) x$boot_se[1] else x$std.error[1]
  low <- c(x$estimate[1] - z * se_for_overall, rep(NA_real_, k - 1L))
  high <- c(x$estimate[1] + z * se_for_overall, rep(NA_real_, k - 1L))
  if (k > 1L) {
    idx <- 2:k
    lim <- band_limits(x$estimate[idx], x$std.error[idx], x$boot_se[idx], x$crit, x$alpha)
    low[idx] <- lim$low
    high[idx] <- lim$high
  }
  lab <- x$label
  col <- switch(x$type, event = "event", group = "group", calendar = "time", simple = NULL)
  labv <- if (is.null(col)) NULL else if (x$type == "event") lab else x$times[lab]
  term <- c("overall", if (length(lab)) paste(col, as.character(labv)) else character())
  out <- data.frame(term = term, type = x$type, stringsAsFactors = FALSE)
  if (!is.null(col)) {
    out[[col]] <- c(labv[NA_integer_], labv)
  }
  out$estimate <- x$estimate
  out$std.error <- x$std.error
  out$conf.low <- low
  out$conf.high <- high
  out$p.value <- 2 * stats::pnorm(-abs(x$estimate / x$std.error))
  out$std.error.boot <- x$boot_se
  out
}

#' @rdname aggregate.mkt_staggered
#' @export
print.mkt_staggered_agg <- function(x, ...) {
  cat(sprintf("<mkt_staggered_agg> %s aggregation of ATT(g,t)\n", x$type))
  print.data.frame(x$table, row.names = FALSE, digits = 4)
  invisible(x)
}

#' @rdname aggregate.mkt_staggered
#' @export
coef.mkt_staggered_agg <- function(object, ...) {
  stats::setNames(object$table$estimate, object$table$term)
}

#' @rdname aggregate.mkt_staggered
#' @export
plot.mkt_staggered_agg <- function(x, ...) {
  td <- x$table[-1, , drop = FALSE]
  if (!nrow(td)) {
    abort_mkt("bad_argument", "A {.val simple} aggregation has no detail rows to plot.",
              i = "Use {.code aggregate(fit, \"event\")}.")
  }
  xcol <- switch(x$type, event = "event", group = "group", calendar = "time")
  td$x <- td[[xcol]]
  td$phase <- if (x$type == "event") ifelse(td$event >= 0, "post", "pre") else "post"
  ggplot2::ggplot(td, ggplot2::aes(x = .data$x, y = .data$estimate, colour = .data$phase)) +
    ggplot2::geom_hline(yintercept = 0, colour = "grey50") +
    ggplot2::geom_pointrange(ggplot2::aes(ymin = .data$conf.low, ymax = .data$conf.high),
                             na.rm = TRUE) +
    ggplot2::scale_colour_manual(values = c(pre = "grey40", post = "#08519c")) +
    ggplot2::labs(x = xcol, y = "ATT", colour = NULL) +
    ggplot2::theme_minimal()
}
