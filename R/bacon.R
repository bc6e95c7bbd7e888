#' Goodman-Bacon decomposition of the two-way fixed effects estimator
#'
#' With staggered adoption, the static two-way fixed effects (TWFE)
#' coefficient on a treated-and-post indicator is a weighted average of
#' every 2x2 difference-in-differences that the data contain (Goodman-Bacon
#' 2021): each adoption cohort against never-treated units, earlier against
#' later adopters before the later ones adopt, and later against earlier
#' adopters after the earlier ones have adopted. The last kind uses treated
#' units as controls, so with effects that change over time it can carry the
#' wrong sign: the decomposition shows how much of the TWFE estimate rests on
#' such comparisons.
#'
#' @section Unbalanced panels:
#' The decomposition is an identity for balanced panels only. Units with a
#' missing period are dropped (with a warning naming how many) and the
#' decomposition is that of the TWFE coefficient on the balanced panel that
#' remains, reported as `twfe`; it can differ from the TWFE coefficient on
#' the unbalanced data.
#'
#' @section Groups:
#' Units are grouped by their first treated period. Units treated from the
#' first period on form an "always treated" group, which enters only as a
#' control for later adopters (`type = "Later vs Always Treated"`).
#' Never-treated units are the untreated group. The treatment must be an
#' absorbing 0/1 indicator, and the formula may not contain covariates.
#'
#' @param formula `outcome ~ treatment | unit + time`, see [mkt_panel()].
#' @param data A long data frame, tibble or data.table.
#' @return An object of class `c("mkt_bacon", "mkt_fit")` with `twfe` (the
#'   coefficient), `comparisons` (the table `tidy()` returns) and `dropped`.
#'   `tidy()` gives one row per 2x2 comparison: `treated` and `control` (the
#'   cohorts' first treated periods; `NA` control for never treated),
#'   `type`, `estimate`, `weight` (summing to one); `glance()` gives the TWFE
#'   coefficient and the weight and average estimate by type.
#' @references Goodman-Bacon, A. (2021). Difference-in-differences with
#'   variation in treatment timing. *Journal of Econometrics* 225(2),
#'   254-277.
#' @examples
#' b <- bacon(l_homicide ~ post | state + year, castle)
#' b
#' head(tidy(b))
#' sum(tidy(b)$estimate * tidy(b)$weight)
#' @export
bacon <- function(formula, data) {
  panel <- mkt_panel(formula, data)
  require_binary_treatment(panel, "bacon")
  if (length(panel$vars$covariates)) {
    abort_mkt("covariates_not_supported", c(
      "{.fn bacon} decomposes the TWFE estimator without covariates.",
      x = "The formula has covariates {.field {panel$vars$covariates}}.",
      i = "Drop them from the formula, or partial them out of the outcome first."
    ))
  }
  complete <- rowSums(!panel$observed) == 0
  dropped <- panel$units[!complete]
  if (any(!complete)) {
    warn_mkt("unbalanced_panel", c(
      "{sum(!complete)} unit{?s} with missing periods dropped: the decomposition holds for balanced panels.",
      i = "The TWFE coefficient reported is that of the balanced panel of {sum(complete)} units."
    ))
  }
  Y <- panel$Y[complete, , drop = FALSE]
  D <- panel$D[complete, , drop = FALSE]
  Tn <- ncol(Y)
  N <- nrow(Y)
  first <- match(as.character(panel$cohort[complete]), as.character(panel$times))
  first[is.na(first)] <- Tn + 1L  # never treated: "adopts" after the sample
  if (length(unique(first)) < 2L) {
    abort_mkt("no_variation", c(
      "All units share the same treatment timing, so there is no 2x2 comparison.",
      i = "The decomposition needs at least two timing groups (cohorts or never treated)."
    ))
  }
  # TWFE by the within transformation (exact on a balanced panel).
  Dt <- D - rowMeans(D) - rep(colMeans(D), each = N) + mean(D)
  vd <- mean(Dt^2)
  twfe <- sum(Dt * Y) / sum(Dt^2)

  groups <- sort(unique(first))
  share <- as.numeric(table(factor(first, levels = groups))) / N
  dbar <- (Tn + 1 - pmin(groups, Tn + 1)) / Tn
  ybar <- rowsum(Y, first, reorder = TRUE) / as.numeric(table(first))
  mean_over <- function(g, periods) mean(ybar[match(g, groups), periods])
  did2 <- function(a, b, pre, post) {
    (mean_over(a, post) - mean_over(a, pre)) - (mean_over(b, post) - mean_over(b, pre))
  }
  rows <- list()
  never <- Tn + 1L
  for (i in seq_along(groups)) {
    for (j in seq_along(groups)) {
      k <- groups[i]
      l <- groups[j]
      if (k >= l || k == never) next
      nk <- share[i]
      nl <- share[j]
      nkl <- nk / (nk + nl)
      if (l == never) {
        if (k == 1L) next  # always treated vs never treated: no variation
        w <- (nk + nl)^2 * nkl * (1 - nkl) * dbar[i] * (1 - dbar[i]) / vd
        est <- did2(k, l, seq_len(k - 1L), k:Tn)
        rows[[length(rows) + 1L]] <- list(k, NA, "Treated vs Untreated", est, w)
        next
      }
      mid <- k:(l - 1L)
      if (k > 1L) {
        w_early <- ((nk + nl) * (1 - dbar[j]))^2 * nkl * (1 - nkl) *
          ((dbar[i] - dbar[j]) / (1 - dbar[j])) * ((1 - dbar[i]) / (1 - dbar[j])) / vd
        est <- did2(k, l, seq_len(k - 1L), mid)
        rows[[length(rows) + 1L]] <- list(k, l, "Earlier vs Later Treated", est, w_early)
      }
      w_late <- ((nk + nl) * dbar[i])^2 * nkl * (1 - nkl) *
        (dbar[j] / dbar[i]) * ((dbar[i] - dbar[j]) / dbar[i]) / vd
      est <- did2(l, k, mid, l:Tn)
      type <- if (k == 1L) "Later vs Always Treated" else "Later vs Earlier Treated"
      rows[[length(rows) + 1L]] <- list(l, k, type, est, w_late)
    }
  }
  tab <- data.frame(
    treated_idx = vapply(rows, function(r) as.integer(r[[1]]), integer(1)),
    control_idx = vapply(rows, function(r) as.integer(r[[2]]), integer(1)),
    type = vapply(rows, `[[`, character(1), 3),
    estimate = vapply(rows, `[[`, numeric(1), 4),
    weight = vapply(rows, `[[`, numeric(1), 5),
    stringsAsFactors = FALSE
  )
  structure(list(
    twfe = twfe, comparisons = tab, times = panel$times, dropped = dropped,
    n_units = N, n_periods = Tn, vars = panel$vars
  ), class = c("mkt_bacon", "mkt_fit"))
}

#' Methods for the Goodman-Bacon decomposition
#'
#' @param x A [bacon()] fit.
#' @param ... Unused.
#' @return `tidy()`: one row per 2x2 comparison (`term`, `treated`,
#'   `control`, `type`, `estimate`, `weight`); `glance()`: one row with the
#'   TWFE coefficient, the weighted sum of the 2x2 estimates and the weight
#'   of comparisons that use already-treated units as controls; `plot()`: a
#'   ggplot of estimate against weight by type, with the TWFE coefficient as
#'   a horizontal line.
#' @name bacon-methods
#' @examples
#' b <- bacon(l_homicide ~ post | state + year, castle)
#' glance(b)
#' plot(b)
NULL

#' @rdname bacon-methods
#' @export
tidy.mkt_bacon <- function(x, ...) {
  tab <- x$comparisons
  treated <- x$times[tab$treated_idx]
  control <- x$times[tab$control_idx]
  data.frame(
    term = paste0(as.character(treated), " vs ",
                  ifelse(is.na(tab$control_idx), "never", as.character(control))),
    treated = treated, control = control, type = tab$type,
    estimate = tab$estimate, weight = tab$weight, stringsAsFactors = FALSE
  )
}

#' @rdname bacon-methods
#' @export
glance.mkt_bacon <- function(x, ...) {
  tab <- x$comparisons
  bad <- tab$type %in% c("Later vs Earlier Treated", "Later vs Always Treated")
  data.frame(
    twfe = x$twfe, weighted_sum = sum(tab$estimate * tab$weight),
    weight_already_treated_controls = sum(tab$weight[bad]),
    n_comparisons = nrow(tab), n_units = x$n_units, n_periods = x$n_periods,
    n_dropped_units = length(x$dropped)
  )
}

#' @rdname bacon-methods
#' @export
print.mkt_bacon <- function(x, ...) {
  g <- glance.mkt_bacon(x)
  cat(sprintf("<mkt_bacon> Goodman-Bacon decomposition: TWFE = %.4f from %d 2x2 comparisons\n",
              g$twfe, g$n_comparisons))
  tab <- x$comparisons
  by_type <- do.call(rbind, lapply(split(tab, factor(tab$type, unique(tab$type))), function(s) {
    data.frame(type = s$type[1], weight = sum(s$weight),
               avg_estimate = sum(s$weight * s$estimate) / sum(s$weight))
  }))
  print.data.frame(by_type, row.names = FALSE, digits = 4)
  if (g$n_dropped_units) cat(sprintf("%d unbalanced units dropped\n", g$n_dropped_units))
  invisible(x)
}

#' @rdname bacon-methods
#' @export
plot.mkt_bacon <- function(x, ...) {
  td <- tidy.mkt_bacon(x)
  ggplot2::ggplot(td, ggplot2::aes(x = .data$weight, y = .data$estimate, colour = .data$type,
                                   shape = .data$type)) +
    ggplot2::geom_hline(yintercept = x$twfe, linetype = "dashed") +
    ggplot2::geom_point(size = 2.5) +
    ggplot2::labs(x = "weight", y = "2x2 estimate", colour = NULL, shape = NULL,
                  caption = sprintf("dashed line: TWFE = %.4f", x$twfe)) +
    ggplot2::theme_minimal()
}
