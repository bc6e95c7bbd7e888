#' Effect of a test run with a synthetic design
#'
#' Analyses a test whose treated markets and control weights were chosen by
#' [synthetic_design()]: the effect in each test period is the difference of
#' the \eqn{w}-weighted treated path and the \eqn{v}-weighted synthetic
#' control, and the average and cumulative effects and the lift follow.
#'
#' @section Inference:
#' A placebo-in-time test over the design's blank periods, in the spirit of
#' Abadie and Zhao's permutation test: the blank periods were left out of
#' the choice of the weights, so the weighted difference of the paths over
#' them is out of sample, as it is during the test. The statistic of the
#' average (and cumulative) effect over \eqn{L} test periods is compared with
#' its value on the non-overlapping blocks of \eqn{L} consecutive blank
#' periods, the last block ending with the last blank period. Blocks keep
#' the autocorrelation of the differences, which a permutation of single
#' periods (Abadie and Zhao's permutation test) ignores, understating the
#' variance of a mean over \eqn{L} periods; non-overlapping blocks are
#' close to exchangeable with the test's block, where the \eqn{B}
#' overlapping blocks of a moving-block scheme are not: in the simulation of
#' `bench/synthetic_design_size.R` (1,000 designs, Monte Carlo SE 0.7%),
#' moving blocks over 22 blank weeks rejected 10.0% of the time at zero
#' effect for a 4-week test, non-overlapping blocks over 76 blank weeks
#' 5.5% (6.7% with strongly autocorrelated noise). The two-sided p-value is
#' \eqn{(1 + \#\{b: |S_b| \ge |S|\}) / (B + 1)} over the \eqn{B} blocks, and
#' the interval inverts the test for a constant effect: \eqn{S \pm c}, with
#' \eqn{c} the \eqn{\lfloor \alpha (B + 1) \rfloor}-th largest \eqn{|S_b|}.
#' Each period's effect is tested against the single blank periods the same
#' way, and the band of the cumulative effect after \eqn{k} periods against
#' blocks of \eqn{k}. The test holds its level when the differences of the
#' paths are stationary over the blank and test periods; the simulations in
#' the tests measure it.
#'
#' @param formula `outcome ~ 0 | market + time`: the outcome, market and
#'   time columns, or a [mkt_panel()] (with `data` left out).
#' @param data A long data frame with the design's blank periods and the
#'   test periods (earlier periods are allowed and ignored), for every market
#'   with a treated or control weight.
#' @param design A design from [synthetic_design()].
#' @param post Time values of the test periods; by default every period
#'   after the design's last blank period.
#' @param alpha Two-sided level; by default the design's.
#' @param ... Must be empty.
#' @return A fit of class `c("mkt_synthetic_design_effect", "mkt_fit")` (see
#'   [mkt_fit]): terms `average` (per period), `cumulative`, `lift` (the
#'   cumulative effect relative to the synthetic control's total over the
#'   test) and one per test period; `tidy(fit, "effect_over_time")` gives the
#'   paths and the band of the cumulative effect, `tidy(fit, "reference")`
#'   the blank-period blocks. `plot()` draws the paths and the cumulative
#'   effect.
#' @export
#' @examples
#' dma <- aggregate(sales ~ dma + week, geo_sales, sum)
#' small <- dma[dma$dma %in% unique(dma$dma)[1:20], ]
#' des <- synthetic_design(sales ~ 0 | dma + week, small[small$week <= 96, ],
#'                         n_treated = 2, test_length = 4)
#' # weeks 97-100 play the test (no effect was given)
#' fit <- synthetic_design_effect(sales ~ 0 | dma + week,
#'                                small[small$week <= 100, ], design = des)
#' fit
#' plot(fit)
synthetic_design_effect <- function(formula, data, design, post = NULL, alpha = NULL, ...) {
  check_dots(...)
  call <- match.call()
  if (missing(data)) data <- NULL
  if (missing(design) || !inherits(design, "mkt_synthetic_design")) {
    abort_mkt("bad_argument", c(
      "{.arg design} must be a design from {.fn synthetic_design}.",
      i = "Choose the markets with {.code des <- synthetic_design(...)} before the test and pass {.code design = des}."
    ))
  }
  alpha <- if (is.null(alpha)) design$alpha else check_alpha(alpha)
  panel <- as_panel(formula, data)
  if (!is.null(panel$vars$treatment) || length(panel$vars$covariates)) {
    abort_mkt("bad_formula", c(
      "The design already says which markets are treated: write {.code outcome ~ 0 | market + time}.",
      i = "Leave out the treatment and covariates."
    ))
  }
  Y <- panel$Y
  times <- panel$times
  wt <- design$weights
  used <- wt$market[wt$w > 0 | wt$v > 0]
  miss <- setdiff(used, rownames(Y))
  if (length(miss)) {
    abort_mkt("misaligned", c(
      "{length(miss)} market{?s} of the design {?is/are} not in {.arg data}: {.val {utils::head(miss, 5)}}.",
      i = "Give the outcomes of every treated and control market of the design."
    ))
  }
  bi <- match(as.character(design$blank_periods), as.character(times))
  if (anyNA(bi)) {
    abort_mkt("bad_window", c(
      "{.arg data} lacks {sum(is.na(bi))} of the design's {length(bi)} blank periods.",
      i = "Include the periods {.val {format(design$blank_periods[1])}} to {.val {format(utils::tail(design$blank_periods, 1))}}: they give the test its reference distribution."
    ))
  }
  pi <- if (is.null(post)) {
    which(seq_along(times) > max(bi))
  } else {
    idx <- match(as.character(post), as.character(times))
    if (anyNA(idx)) {
      abort_mkt("bad_window", c("{.arg post} names period{?s} not in the data: {.val {format(post[is.na(idx)])}}.",
                                i = "Use values of the time column {.field {panel$vars$time}}."))
    }
    sort(idx)
  }
  if (!length(pi)) {
    abort_mkt("bad_window", c(
      "No test period: {.arg data} ends with the design's blank periods.",
      i = "Give data that run past {.val {format(utils::tail(design$blank_periods, 1))}}, or name the test periods in {.arg post}."
    ))
  }
  if (any(pi %in% bi) || min(pi) <= max(bi)) {
    abort_mkt("bad_window", c(
      "The test periods must come after the design's blank periods (the last is {.val {format(utils::tail(design$blank_periods, 1))}}).",
      i = "Give later {.arg post} periods."
    ))
  }
  rows <- match(used, rownames(Y))
  sub <- Y[rows, c(bi, pi), drop = FALSE]
  if (anyNA(sub)) {
    abort_mkt("missing_values", c(
      "The design's markets have missing outcomes in the blank or test periods.",
      i = "The effect is a weighted difference of complete paths; fill those weeks."
    ))
  }
  w <- wt$w[match(used, wt$market)]
  v <- wt$v[match(used, wt$market)]
  tr <- drop(crossprod(sub, w))
  ct <- drop(crossprod(sub, v))
  nb <- length(bi)
  res <- sd_effect_core(tr[seq_len(nb)] - ct[seq_len(nb)], tr[-seq_len(nb)], ct[-seq_len(nb)],
                        alpha)
  post_times <- times[pi]
  est <- res$estimates
  est$time <- c(rep(NA, 3L), as.character(post_times))
  eot <- data.frame(time = times[c(bi, pi)], event_time = c(-rev(seq_len(nb)), seq_along(pi) - 1L),
                    post = c(rep(FALSE, nb), rep(TRUE, length(pi))),
                    observed = unname(tr), counterfactual = unname(ct), effect = unname(tr - ct),
                    cumulative = c(rep(NA_real_, nb), res$band$estimate),
                    conf.low = c(rep(NA_real_, nb), res$band$conf.low),
                    conf.high = c(rep(NA_real_, nb), res$band$conf.high),
                    stringsAsFactors = FALSE)
  if (!is.finite(res$crit)) {
    warn_mkt("granular_inference", c(
      "{res$n_blocks} blank block{?s} of {length(pi)} periods cannot give a test at {.arg alpha} = {alpha}: the interval of the average effect is unbounded.",
      i = "Design with more blank periods ({.arg n_blank}) or a shorter test, or raise {.arg alpha}."
    ))
  }
  new_fit(
    "synthetic_design_effect", est,
    method = "Synthetic design (Abadie-Zhao)",
    estimand = "Effect on the w-weighted treated markets: treated path minus synthetic control",
    inference = sprintf("Placebo in time: %d blocks of %d blank periods", res$n_blocks,
                        length(pi)),
    alpha = alpha,
    n = list(obs = length(rows) * (nb + length(pi)), units = length(rows),
             periods = nb + length(pi), treated = sum(w > 0), clusters = NA_integer_,
             controls = sum(v > 0), blank = nb),
    call = call, no_vcov = "its interval inverts a placebo-in-time test, not a variance",
    vars = panel$vars,
    glance = list(rmse_fit = unname(design$rmse["fit"]), rmse_blank = unname(design$rmse["blank"]),
                  n_blocks = res$n_blocks),
    tables = list(effect_over_time = eot, reference = res$reference,
                  weights = wt[wt$w > 0 | wt$v > 0, , drop = FALSE]),
    design = design)
}

# The (k+1)-th largest |S_b| with k = floor(alpha (B + 1)) - 1: the test
# rejects c0 when |S - c0| exceeds it (Inf when B is too small to reject).
sd_crit <- function(a, alpha) {
  k <- floor(alpha * (length(a) + 1) + 1e-9) - 1
  if (k < 0) return(Inf)
  sort(a, decreasing = TRUE)[k + 1]
}

# Means of the non-overlapping blocks of L consecutive values of x, the
# last block ending with x (the periods nearest the test); earlier values
# that do not fill a block are left out. `moving = TRUE` gives every block.
block_means <- function(x, L, moving = FALSE) {
  n <- length(x)
  if (n < L) return(numeric(0))
  cs <- c(0, cumsum(x))
  ends <- if (moving) L:n else rev(seq(n, L, by = -L))
  (cs[ends + 1L] - cs[ends - L + 1L]) / L
}

sd_p <- function(s, ref) (1 + sum(abs(ref) >= abs(s) * (1 - 1e-12))) / (length(ref) + 1)

# Estimates and tests from the blank-period differences `gap_blank` and
# the test periods' treated and control paths.
sd_effect_core <- function(gap_blank, tr_post, ct_post, alpha, moving = FALSE) {
  gap <- tr_post - ct_post
  L <- length(gap)
  ref <- block_means(gap_blank, L, moving)
  avg <- mean(gap)
  crit <- sd_crit(abs(ref), alpha)
  p_avg <- sd_p(avg, ref)
  base <- sum(ct_post)
  c1 <- sd_crit(abs(gap_blank), alpha)
  per_p <- vapply(gap, sd_p, numeric(1), ref = gap_blank)
  # Band of the cumulative effect after k periods: blocks of k.
  band <- lapply(seq_len(L), function(k) {
    r <- block_means(gap_blank, k, moving)
    ck <- k * sd_crit(abs(r), alpha)
    s <- sum(gap[seq_len(k)])
    c(s, s - ck, s + ck)
  })
  band <- do.call(rbind, band)
  est <- data.frame(
    term = c("average", "cumulative", "lift", paste0("period_", seq_len(L))),
    estimate = c(avg, L * avg, L * avg / base, gap),
    std.error = NA_real_, statistic = NA_real_,
    p.value = c(p_avg, p_avg, p_avg, per_p),
    conf.low = c(avg - crit, L * (avg - crit), L * (avg - crit) / base, gap - c1),
    conf.high = c(avg + crit, L * (avg + crit), L * (avg + crit) / base, gap + c1),
    stringsAsFactors = FALSE)
  list(estimates = est, crit = crit, n_blocks = length(ref),
       reference = data.frame(block = seq_along(ref), mean_gap = ref),
       band = data.frame(estimate = band[, 1], conf.low = band[, 2], conf.high = band[, 3]))
}
