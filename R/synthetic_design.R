#' Synthetic design: choose the treated markets and their control by
#' synthetic-control weights
#'
#' When only a few markets can be treated, Abadie and Zhao (2021, "Synthetic
#' controls for experimental design") choose the treated markets and the
#' controls together: treated weights \eqn{w} on at most `n_treated` markets
#' and control weights \eqn{v} on the other markets, both nonnegative and
#' summing to one, such that the \eqn{w}-weighted treated path and the
#' \eqn{v}-weighted synthetic control both reproduce the population's average
#' path over the pre-experiment weeks. After the test, the effect is the
#' difference of the two weighted paths ([synthetic_design_effect()]).
#'
#' @section The problem:
#' Let \eqn{X} be the \eqn{T_f \times J} matrix of the markets' outcomes over
#' the fit periods and \eqn{\bar X} its row means (the population's average
#' path). The design solves
#' \deqn{\min_{w, v} \|\bar X - X w\|^2 + \|\bar X - X v\|^2}
#' over \eqn{w, v \ge 0}, \eqn{\sum w = \sum v = 1}, \eqn{w_j v_j = 0} (a
#' market is treated or control, not both), with \eqn{w} supported on at
#' most `n_treated` markets (the markets of `include` always among them,
#' those of `exclude` never). This is the unpenalized base design of
#' Abadie and Zhao. For a fixed treated set \eqn{S} the problem splits into
#' two least-squares fits on the simplex, one on the columns of \eqn{S} and
#' one on the others, each solved exactly by the package's simplex kernel
#' (the one [synth()] uses); the combinatorial part is the choice of
#' \eqn{S}, of exactly `n_treated` markets. A market of \eqn{S} whose
#' treated weight is zero does not enter the estimate (role
#' `"set, zero weight"` in `$weights`): it need not be treated, and it is
#' not a control.
#'
#' @section Search:
#' * `"exhaustive"` scores every treated set, in order of its treated
#'   objective \eqn{\|\bar X - X w\|^2}, and solves the control problem only
#'   while the treated objective plus the control objective over all markets
#'   (a lower bound on any set's control objective) can still beat the best
#'   set found: the answer is the exact optimum.
#' * `"swap"` is a local search with several starts: a greedy start (add the
#'   market that most lowers the treated objective, one at a time) and
#'   `n_starts - 1` random sets; from each, replace one treated market by one
#'   other market as long as the best such swap lowers the objective, with
#'   the same bound pruning the control problems. The best of these local
#'   optima is then polished: when no single swap helps, two markets are
#'   replaced by two others, and single swaps resume. It returns a local optimum;
#'   `$search` records each start's value, and the tests compare it with the
#'   exhaustive answer on small panels.
#' * `"auto"` is exhaustive when there are at most `max_sets` treated sets,
#'   the swap search otherwise.
#'
#' @section Blank periods:
#' The last `n_blank` periods of the history are left out of the fit (Abadie
#' and Zhao's blank periods). The weighted difference of the paths over
#' them is out of sample, like the one after the test starts, so their
#' non-overlapping blocks of `test_length` periods give the reference
#' distribution of the test in [synthetic_design_effect()]. A test at level
#' \eqn{\alpha} needs \eqn{1/\alpha - 1} blocks, so by default `n_blank`
#' is `test_length` times that (76 weeks for a 4-week test at 5%) when the
#' fit keeps at least \eqn{\max(8, 2 n_{treated} + 2)} periods; otherwise
#' it is the largest multiple of `test_length` that leaves them, with a
#' warning of class `mktcausal_warning_granular_inference` that the test of
#' the average effect cannot reach `alpha`.
#'
#' @param formula `outcome ~ 0 | market + time` on pre-experiment weeks, or a
#'   [mkt_panel()] (with `data` left out). The panel must be balanced, with
#'   no missing outcome.
#' @param data A long data frame: one row per market and period.
#' @param n_treated Largest number of treated markets.
#' @param test_length Planned length of the test, in periods.
#' @param n_blank Number of last pre-experiment periods left out of the fit
#'   and used for inference; `NULL` for the default (see Blank periods).
#' @param include,exclude Markets that must be, or must not be, treated.
#' @param search `"auto"`, `"exhaustive"` or `"swap"` (see Search).
#' @param max_sets Largest number of treated sets searched exhaustively.
#' @param n_starts Starts of the swap search.
#' @param alpha Level of the planned test (sets the default `n_blank`).
#' @param ... Must be empty.
#' @return An object of class `mkt_synthetic_design`: `$treated` (markets),
#'   `$weights` (a data frame of every market's treated weight `w` and
#'   control weight `v`), `$objective` (treated and control parts),
#'   `$rmse` (root mean square of the weighted difference of the paths over
#'   the fit and the blank periods), `$series` (the treated, control and
#'   population paths), `$fit_periods`, `$blank_periods`, `$search` and the
#'   settings. Methods: `print()`, `tidy()` (`what = "weights"`, `"series"`
#'   or `"search"`), `glance()`, `plot()`.
#' @references Abadie, A. and Zhao, J. (2021). Synthetic controls for
#'   experimental design. arXiv:2108.02196.
#' @seealso [synthetic_design_effect()] to analyse the test,
#'   [compare_designs()] to compare it with randomized and selected designs.
#' @export
#' @examples
#' dma <- aggregate(sales ~ dma + week, geo_sales, sum)
#' small <- dma[dma$dma %in% unique(dma$dma)[1:20], ]
#' des <- synthetic_design(sales ~ 0 | dma + week, small, n_treated = 2,
#'                         test_length = 4)
#' des
#' tidy(des)
#' plot(des)
synthetic_design <- function(formula, data, n_treated, test_length, n_blank = NULL,
                             include = NULL, exclude = NULL,
                             search = c("auto", "exhaustive", "swap"),
                             max_sets = 1e5, n_starts = 10, alpha = 0.05, ...) {
  check_dots(...)
  call <- match.call()
  if (missing(data)) data <- NULL
  search <- check_choice(search)
  alpha <- check_alpha(alpha)
  max_sets <- check_count(max_sets, "max_sets", min = 1, large = TRUE)
  n_starts <- check_count(n_starts, "n_starts", min = 1)
  if (missing(n_treated)) {
    abort_mkt("bad_argument", c("{.arg n_treated} is missing.",
                                i = "Give the largest number of markets the test may treat, e.g. {.code n_treated = 3}."))
  }
  if (missing(test_length)) {
    abort_mkt("bad_argument", c("{.arg test_length} is missing.",
                                i = "Give the planned length of the test in periods, e.g. {.code test_length = 4}."))
  }
  n_treated <- check_count(n_treated, "n_treated", min = 1)
  test_length <- check_count(test_length, "test_length", min = 1)
  panel <- as_panel(formula, data)
  hist <- design_history(panel)
  sd_design_fit(hist, n_treated, test_length, n_blank, include, exclude, search,
                max_sets, n_starts, alpha, call = call)
}

# The outcome matrix of an untreated, complete history (markets x periods).
design_history <- function(panel, call = rlang::caller_env()) {
  if (!is.null(panel$vars$treatment) || length(panel$vars$covariates)) {
    abort_mkt("bad_formula", c(
      "A synthetic design is chosen on untreated history: write {.code outcome ~ 0 | market + time}.",
      i = "Leave out the treatment and covariates."
    ), call = call)
  }
  require_varying_outcome(panel$Y[panel$observed], panel$vars$outcome, call = call)
  Y <- panel$Y
  if (anyNA(Y)) {
    bad <- which(rowSums(is.na(Y)) > 0)
    abort_mkt("missing_values", c(
      "{length(bad)} market{?s} {?has/have} missing outcomes: {.val {utils::head(rownames(Y)[bad], 5)}}.",
      i = "The design matches every market's path week by week; fill the missing weeks or drop those markets."
    ), call = call)
  }
  list(Y = Y, times = panel$times, vars = panel$vars)
}

# Default blank periods: enough non-overlapping blocks of the test's length
# for a test at level alpha (1/alpha - 1 of them: 76 periods for a 4-period
# test at 5%), while the fit keeps at least `min_fit` periods; else as many
# whole blocks as leave `min_fit`, with a warning that the test cannot
# reach alpha.
sd_blank <- function(n_blank, test_length, n_t, alpha, n_treated, call = rlang::caller_env()) {
  min_ref <- ceiling(1 / alpha - 1e-9) - 1L
  min_fit <- max(8L, 2L * n_treated + 2L)
  if (test_length + 2L > n_t) {
    abort_mkt("bad_argument", c(
      "{.arg test_length} = {test_length} is longer than the history allows: it has {n_t} period{?s}.",
      i = "A test of {test_length} periods needs a history of at least {test_length + 2L} periods to fit on, and {test_length * min_ref + min_fit} for a test at {.arg alpha} = {alpha}; shorten the test or give a longer history."
    ), call = call)
  }
  if (is.null(n_blank)) {
    n_blank <- test_length * min_ref
    if (n_t - n_blank < min_fit) {
      n_blank <- test_length * max(1L, (n_t - min_fit) %/% test_length)
      if (n_t - n_blank < 2L) n_blank <- test_length
    }
  } else {
    n_blank <- check_count(n_blank, "n_blank", min = test_length, call = call)
    if (n_t - n_blank < 2L) {
      abort_mkt("bad_argument", c(
        "{.arg n_blank} = {n_blank} leaves {n_t - n_blank} fit period{?s} of {n_t}; the fit needs at least 2.",
        i = "Use fewer blank periods."
      ), call = call)
    }
  }
  n_blocks <- n_blank %/% test_length
  if (n_blocks < min_ref) {
    warn_mkt("granular_inference", c(
      "{n_blank} blank periods hold {n_blocks} block{?s} of {test_length} periods; a test at {.arg alpha} = {alpha} needs {min_ref} ({test_length * min_ref} blank periods).",
      x = "The smallest attainable p-value is {signif(1 / (n_blocks + 1), 2)}: the test of the average effect cannot reject, and its interval is unbounded.",
      i = "Give a longer history, plan a shorter test, or raise {.arg alpha}; per-period tests (blocks of one period) remain available."
    ))
  }
  as.integer(n_blank)
}

# Markets named in include/exclude, as row indices of Y.
sd_markets <- function(x, units, arg, call = rlang::caller_env()) {
  if (is.null(x)) return(integer(0))
  x <- as.character(x)
  idx <- match(x, units)
  if (anyNA(idx)) {
    abort_mkt("bad_argument", c(
      "{.arg {arg}} names market{?s} not in the panel: {.val {x[is.na(idx)]}}.",
      i = "Use values of the market column."
    ), call = call)
  }
  unique(idx)
}

# The design on a checked history.
sd_design_fit <- function(hist, n_treated, test_length, n_blank, include, exclude,
                          search, max_sets, n_starts, alpha, call = NULL,
                          quiet = FALSE, env = rlang::caller_env()) {
  Y <- hist$Y
  units <- rownames(Y)
  J <- nrow(Y)
  n_t <- ncol(Y)
  if (n_treated >= J) {
    abort_mkt("too_few_controls", c(
      "{.arg n_treated} = {n_treated} leaves no control market: the panel has {J} market{?s}.",
      i = "Treat at most {J - 1L} market{?s}, or add markets to {.arg data}."
    ), call = env)
  }
  inc <- sd_markets(include, units, "include", call = env)
  exc <- sd_markets(exclude, units, "exclude", call = env)
  if (length(intersect(inc, exc))) {
    abort_mkt("bad_argument", c(
      "Market{?s} {.val {units[intersect(inc, exc)]}} {?is/are} in both {.arg include} and {.arg exclude}.",
      i = "A market is either forced into the treated set or kept out of it."
    ), call = env)
  }
  if (length(inc) > n_treated) {
    abort_mkt("bad_argument", c(
      "{.arg include} forces {length(inc)} markets, more than {.arg n_treated} = {n_treated}.",
      i = "Raise {.arg n_treated} or force fewer markets."
    ), call = env)
  }
  cand <- setdiff(seq_len(J), c(inc, exc))
  m_free <- n_treated - length(inc)
  if (length(cand) < m_free) {
    abort_mkt("bad_argument", c(
      "After {.arg exclude}, {length(cand)} market{?s} can be treated, fewer than the {m_free} needed.",
      i = "Exclude fewer markets or lower {.arg n_treated}."
    ), call = env)
  }
  n_blank <- sd_blank(n_blank, test_length, n_t, alpha, n_treated, call = env)
  fit <- seq_len(n_t - n_blank)
  blank <- setdiff(seq_len(n_t), fit)

  # The search runs on the outcome divided by a power of two near its
  # largest value (exact), so squared norms neither overflow nor underflow.
  sc <- outcome_scale(Y)
  X <- t(Y[, fit, drop = FALSE]) / sc     # fit periods x markets
  xbar <- rowMeans(X)
  Z <- X - xbar
  all_v <- solve_simplex(X, xbar, 0)
  prob <- list(Z = Z, X = X, xbar = xbar, scale = sc, fv_all = all_v$objective, v_all = all_v$w,
               cand = cand, inc = inc, m_free = m_free)
  n_sets <- if (m_free > 0L) choose(length(cand), m_free) else 1
  if (search == "auto") search <- if (n_sets <= max_sets) "exhaustive" else "swap"
  if (search == "exhaustive" && n_sets > max_sets) {
    abort_mkt("too_large", c(
      "An exhaustive search would score {format(n_sets, big.mark = ',', scientific = FALSE)} treated sets, more than {.arg max_sets} = {format(max_sets, big.mark = ',', scientific = FALSE)}.",
      i = "Use {.code search = \"swap\"} (a local search), or raise {.arg max_sets}."
    ), call = env)
  }
  res <- if (search == "exhaustive") sd_exhaustive(prob) else sd_swap(prob, n_starts)
  sd_assemble(hist, prob, res, fit, blank, n_treated, test_length, alpha, search, call)
}

# --- objective --------------------------------------------------------------

sd_tol <- 1e-12
sd_max_iter <- 100000L

# Treated objectives of the candidate sets (columns of `sets`).
sd_treated_obj <- function(prob, sets) {
  storage.mode(sets) <- "integer"
  r <- cpp_design_sets(prob$Z, sets, FALSE, 0, numeric(0), sd_tol, sd_max_iter)
  r$objective
}

# Control objective of one set: the fit over all markets when the set holds
# none of its donors, else the fit without the set's markets.
sd_control_obj <- function(prob, set) {
  if (!any(prob$v_all[set] > 0)) return(prob$fv_all)
  sets <- matrix(as.integer(set), ncol = 1L)
  cpp_design_sets(prob$Z, sets, TRUE, 0, prob$v_all, sd_tol, sd_max_iter)$objective
}

# Candidate sets (columns) with their treated objectives, scored in order:
# the control problem is solved only while the bound fw + fv_all can beat the
# best total. Returns the best set and its total.
sd_best_of <- function(prob, sets, fw, best = Inf, best_set = NULL) {
  ord <- order(fw, method = "radix")
  n_solved <- 0L
  for (k in ord) {
    if (fw[k] + prob$fv_all >= best) break
    tot <- fw[k] + sd_control_obj(prob, sets[, k])
    n_solved <- n_solved + 1L
    if (tot < best) {
      best <- tot
      best_set <- sets[, k]
    }
  }
  list(set = best_set, total = best, n_solved = n_solved)
}

sd_full_sets <- function(prob, free) {
  if (!length(prob$inc)) return(free)
  rbind(matrix(prob$inc, nrow = length(prob$inc), ncol = ncol(free)), free)
}

sd_exhaustive <- function(prob) {
  free <- if (prob$m_free > 0L) {
    if (length(prob$cand) == prob$m_free) matrix(prob$cand, ncol = 1L)
    else utils::combn(prob$cand, prob$m_free)
  } else matrix(integer(0), nrow = 0L, ncol = 1L)
  sets <- sd_full_sets(prob, free)
  fw <- sd_treated_obj(prob, sets)
  b <- sd_best_of(prob, sets, fw)
  list(set = b$set, total = b$total, n_scored = ncol(sets), n_control_solves = b$n_solved,
       starts = NULL)
}

# Swap local search from a greedy start and n_starts - 1 random starts.
sd_swap <- function(prob, n_starts) {
  cand <- prob$cand
  m <- prob$m_free
  inc <- prob$inc
  scored <- 0L
  solved <- 0L
  # Greedy start: add the candidate that most lowers the treated objective.
  greedy <- integer(0)
  for (i in seq_len(m)) {
    left <- setdiff(cand, greedy)
    sets <- rbind(matrix(c(inc, greedy), nrow = length(inc) + length(greedy), ncol = length(left)),
                  left)
    fw <- sd_treated_obj(prob, sets)
    scored <- scored + length(fw)
    greedy <- c(greedy, left[which.min(fw)])
  }
  starts <- list(greedy)
  if (n_starts > 1L && length(cand) > m) {
    for (s in seq_len(n_starts - 1L)) starts[[s + 1L]] <- cand[sample.int(length(cand), m)]
  }
  # Local search from `cur`: single swaps while one helps; then, with
  # `double`, a double swap, and back to single swaps.
  descend <- function(cur, double) {
    cur_tot <- sd_treated_obj(prob, matrix(c(inc, cur), ncol = 1L)) +
      sd_control_obj(prob, c(inc, cur))
    repeat {
      out <- setdiff(cand, cur)
      if (!length(out) || !m) break
      nb <- do.call(cbind, lapply(seq_len(m), function(i) {
        rbind(matrix(cur[-i], nrow = m - 1L, ncol = length(out)), out)
      }))
      sets <- sd_full_sets(prob, nb)
      fw <- sd_treated_obj(prob, sets)
      scored <<- scored + length(fw)
      b <- sd_best_of(prob, sets, fw, best = cur_tot * (1 - 1e-10))
      solved <<- solved + b$n_solved
      if (is.null(b$set) && double && m >= 2L) {
        sets <- sd_full_sets(prob, sd_double_swaps(cur, out))
        fw <- sd_treated_obj(prob, sets)
        scored <<- scored + length(fw)
        b <- sd_best_of(prob, sets, fw, best = cur_tot * (1 - 1e-10))
        solved <<- solved + b$n_solved
      }
      if (is.null(b$set)) break
      cur <- setdiff(b$set, inc)
      cur_tot <- b$total
    }
    list(set = cur, total = cur_tot)
  }
  value <- numeric(length(starts))
  best <- NULL
  for (s in seq_along(starts)) {
    r <- descend(starts[[s]], double = FALSE)
    value[s] <- r$total
    if (is.null(best) || r$total < best$total) best <- r
  }
  # The best local optimum, polished with double swaps.
  best <- descend(best$set, double = TRUE)
  best$set <- c(inc, best$set)
  list(set = best$set, total = best$total, n_scored = scored, n_control_solves = solved,
       starts = data.frame(start = c("greedy", rep("random", length(starts) - 1L)),
                           objective = value))
}

# Every set that replaces two members of `cur` by two of `out` (columns).
sd_double_swaps <- function(cur, out) {
  m <- length(cur)
  drop2 <- utils::combn(m, 2L)
  add2 <- if (length(out) >= 2L) utils::combn(out, 2L) else return(matrix(integer(0), m, 0L))
  do.call(cbind, lapply(seq_len(ncol(drop2)), function(i) {
    keep <- cur[-drop2[, i]]
    rbind(matrix(keep, nrow = m - 2L, ncol = ncol(add2)), add2)
  }))
}

# --- the design object ------------------------------------------------------

sd_assemble <- function(hist, prob, res, fit, blank, n_treated, test_length, alpha,
                        search, call) {
  Y <- hist$Y
  units <- rownames(Y)
  J <- nrow(Y)
  X <- prob$X
  set <- sort(res$set)
  rw <- solve_simplex(X[, set, drop = FALSE], prob$xbar, 0)
  treated <- set[rw$w > 0]
  w <- numeric(J)
  w[set] <- rw$w
  ctrl <- setdiff(seq_len(J), set)
  rv <- solve_simplex(X[, ctrl, drop = FALSE], prob$xbar, 0, w0 = prob$v_all[ctrl])
  v <- numeric(J)
  v[ctrl] <- rv$w
  names(w) <- names(v) <- units
  if (!(rw$converged && rv$converged)) {
    warn_mkt("not_converged", c(
      "The weight optimiser did not reach its KKT tolerance (residual {signif(max(rw$kkt, rv$kkt), 3)}).",
      i = "The weights may be inexact; check for duplicated or constant markets."
    ))
  }
  tr_path <- drop(crossprod(Y, w))
  ct_path <- drop(crossprod(Y, v))
  pop <- colMeans(Y)
  gap <- tr_path - ct_path
  sc <- prob$scale
  rms <- function(x) sqrt(mean((x / sc)^2)) * sc
  obj_w <- times_sq(sum((prob$xbar - X %*% w)^2), sc)
  obj_v <- times_sq(sum((prob$xbar - X %*% v)^2), sc)
  times <- hist$times
  period <- rep("fit", ncol(Y))
  period[blank] <- "blank"
  weights <- data.frame(market = units, w = unname(w), v = unname(v),
                        role = ifelse(w > 0, "treated", ifelse(v > 0, "control",
                                      ifelse(seq_len(J) %in% set, "set, zero weight", "unused"))),
                        stringsAsFactors = FALSE)
  weights <- weights[order(-weights$w, -weights$v, method = "radix"), ]
  rownames(weights) <- NULL
  structure(list(
    call = call,
    treated = units[treated],
    weights = weights,
    objective = c(total = obj_w + obj_v, treated = obj_w, control = obj_v),
    rmse = c(fit = rms(gap[fit]), blank = rms(gap[blank])),
    scale = c(outcome_mean = mean(pop[fit])),
    series = data.frame(time = times, period = period, treated = unname(tr_path),
                        control = unname(ct_path), population = unname(pop),
                        gap = unname(gap), stringsAsFactors = FALSE),
    fit_periods = times[fit], blank_periods = times[blank],
    n_treated = n_treated, test_length = test_length, alpha = alpha,
    search = list(method = search, n_scored = res$n_scored,
                  n_control_solves = res$n_control_solves, starts = res$starts,
                  include = units[prob$inc], exclude = setdiff(units, units[c(prob$cand, prob$inc)])),
    vars = hist$vars, n_markets = J
  ), class = "mkt_synthetic_design")
}
