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
#' @param formula `outcome ~ treatment | unit + time`, see [mkt_panel()],
#'   or a [mkt_panel()] in place of the formula.
#' @param data A long data frame, tibble or data.table.
#' @param ... Must be empty.
#' @return A fit of class `c("mkt_bacon", "mkt_fit")` (see [mkt_fit]). Its
#'   estimates are the TWFE coefficient (term `"TWFE"`) and, for each type
#'   of comparison, the weighted average of its 2x2 estimates, with the
#'   column `weight` (the type's total weight; the TWFE row has weight 1).
#'   The decomposition is an identity of point estimates, so the fit has no
#'   standard errors or `vcov()`. `tidy(fit, "comparisons")` gives one row
#'   per 2x2 comparison: `treated` and `control` (the cohorts' first treated
#'   periods; `NA` control for never treated), `type`, `estimate` and
#'   `weight` (summing to one). `glance()` adds the TWFE coefficient, the
#'   weighted sum of the 2x2 estimates and the weight of comparisons that use
#'   already-treated units as controls.
#' @references Goodman-Bacon, A. (2021). Difference-in-differences with
#'   variation in treatment timing. *Journal of Econometrics* 225(2),
#'   254-277.
#' @examples
#' b <- bacon(l_homicide ~ post | state + year, castle)
#' b
#' head(tidy(b, "comparisons"))
#' plot(b)
#' @export
bacon <- function(formula, data, ...) {
  check_dots(...)
  panel <- as_panel(formula, data)
  bacon_fit(panel, call = match.call())
}

# The core of bacon(): the decomposition of the panel's TWFE coefficient.
bacon_fit <- function(panel, call = NULL, error_call = rlang::caller_env()) {
  require_binary_treatment(panel, "bacon", call = error_call)
  if (length(panel$vars$covariates)) {
    abort_mkt("covariates_not_supported", c(
      "{.fn bacon} decomposes the TWFE estimator without covariates.",
      x = "The formula has covariates {.field {panel$vars$covariates}}.",
      i = "Drop them from the formula, or partial them out of the outcome first."
    ), call = error_call)
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
  # The decomposition is linear in the outcome: it runs on Y / scale (an
  # exact power of two, see outcome_scale()) and the estimates are scaled
  # back, so outcomes near 1e300 do not overflow in the sums.
  scale <- outcome_scale(Y)
  if (scale != 1) Y <- Y / scale
  D <- panel$D[complete, , drop = FALSE]
  Tn <- ncol(Y)
  N <- nrow(Y)
  first <- unname(panel$cohort_index[complete])
  first[is.na(first)] <- Tn + 1L  # never treated: "adopts" after the sample
  if (length(unique(first)) < 2L) {
    abort_mkt("no_variation", c(
      "All units share the same treatment timing, so there is no 2x2 comparison.",
      i = "The decomposition needs at least two timing groups (cohorts or never treated)."
    ), call = error_call)
  }
  # TWFE by the within transformation (exact on a balanced panel).
  Dt <- D - rowMeans(D) - rep(colMeans(D), each = N) + mean(D)
  vd <- mean(Dt^2)
  twfe <- sum(Dt * Y) / sum(Dt^2) * scale

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
    estimate = vapply(rows, `[[`, numeric(1), 4) * scale,
    weight = vapply(rows, `[[`, numeric(1), 5),
    stringsAsFactors = FALSE
  )
  times <- panel$times
  treated <- times[tab$treated_idx]
  control <- times[tab$control_idx]
  comparisons <- data.frame(
    term = paste0(as.character(treated), " vs ",
                  ifelse(is.na(tab$control_idx), "never", as.character(control))),
    treated = treated, control = control, type = tab$type,
    estimate = tab$estimate, weight = tab$weight, stringsAsFactors = FALSE
  )
  types <- unique(tab$type)
  by_type <- vapply(types, function(ty) {
    s <- tab[tab$type == ty, ]
    c(sum(s$weight), sum(s$weight * s$estimate) / sum(s$weight))
  }, numeric(2))
  estimates <- data.frame(term = c("TWFE", types), estimate = c(twfe, by_type[2, ]),
                          weight = c(1, by_type[1, ]), stringsAsFactors = FALSE)
  already <- tab$type %in% c("Later vs Earlier Treated", "Later vs Always Treated")
  new_fit(
    "bacon", estimates = estimates,
    method = "Goodman-Bacon decomposition of two-way fixed effects",
    estimand = "the static TWFE coefficient on the treatment, as a weighted average of 2x2 DiD comparisons",
    inference = "none: the decomposition is an identity of point estimates",
    alpha = 0.05,
    n = list(obs = N * Tn, units = N, periods = Tn, treated = sum(first <= Tn),
             clusters = NA_integer_, cohorts = length(unique(first[first <= Tn]))),
    call = call, vcov = NULL,
    no_vcov = "the decomposition is an identity of point estimates, without a sampling distribution",
    vars = panel$vars,
    glance = list(twfe = twfe, weighted_sum = sum(tab$estimate * tab$weight),
                  weight_already_treated_controls = sum(tab$weight[already]),
                  n_comparisons = nrow(tab), n_dropped_units = length(dropped)),
    tables = list(comparisons = comparisons),
    twfe = twfe, comparisons = tab, times = times, dropped = dropped,
    print_columns = c(weight = "weight")
  )
}
