# Trimmed Match (Chen and Au 2022) on the pairs of a paired geo test: the
# pairs, the pair differences, every trim level (src/trimmed_match.h), the
# data-driven trim and the p-value of the same trimmed t-test at zero.

geo_trimmed_match <- function(geo, panel, design, pairs, randomize_by, alpha,
                              call = rlang::caller_env()) {
  pr <- geo_pairs(geo, panel, design, pairs, randomize_by, call = call)
  tr <- pr$treated
  co <- pr$control
  n <- length(tr)
  if (n < 3L) {
    abort_mkt("too_few_clusters", c(
      "Trimmed Match needs at least 3 pairs; there {?is/are} {n}.",
      i = "Use {.code method = \"tbr\"} for a test on few geos."
    ), call = call)
  }
  dy <- geo$post_total[tr] - geo$post_total[co]
  has_spend <- geo$has_spend
  dx <- if (has_spend) geo$spend_delta[tr] - geo$spend_delta[co] else rep(1, n)
  if (has_spend && all(abs(dx) < sqrt(.Machine$double.eps))) {
    check_spend_delta(0, "every pair", call = call)
  }
  tm <- trimmed_match_fit(dy, dx, alpha)
  if (is.na(tm$estimate)) {
    abort_mkt("bad_spend", c(
      "The trimmed estimating equation has no root: the incremental spend of the pairs left after trimming sums to zero.",
      i = "Check the {.arg spend} column: treated geos must spend more (or less) than their controls."
    ), call = call)
  }
  df <- tm$df
  theta <- geo_row("theta", tm$estimate, tm$std.error, df, alpha)
  theta$statistic <- tm$statistic
  theta$p.value <- tm$p.value
  theta$conf.low <- tm$conf.low
  theta$conf.high <- tm$conf.high
  scale <- if (has_spend) sum(dx) else n
  if (has_spend) check_spend_delta(scale, "the pairs", call = call)
  # theta is the iROAS (or the effect per pair); the incremental outcome is
  # it times the pairs' incremental spend (or the number of pairs).
  inc <- theta
  inc$term <- "incremental"
  inc$estimate <- theta$estimate * scale
  inc$std.error <- theta$std.error * abs(scale)
  lim <- c(theta$conf.low, theta$conf.high) * scale
  inc$conf.low <- min(lim)
  inc$conf.high <- max(lim)
  rows <- geo_rows(inc, if (has_spend) scale else NA_real_,
                   sum(geo$post_total[tr]) - inc$estimate, has_spend)
  if (has_spend) {
    rows$estimates[c("estimate", "std.error", "conf.low", "conf.high")] <-
      theta[c("estimate", "std.error", "conf.low", "conf.high")]
  }
  resid <- dy - tm$estimate * dx
  k <- tm$trim
  rk <- rank(resid, ties.method = "first")
  pair_table <- data.frame(
    pair = pr$label, treated = geo$ids[tr], control = geo$ids[co],
    delta_outcome = dy, delta_spend = if (has_spend) dx else NA_real_,
    residual = resid, trimmed = rk <= k | rk > n - k, stringsAsFactors = FALSE
  )
  list(
    estimates = rows$estimates, vcov = rows$vcov, n_pairs = n,
    inference = sprintf(paste0("Trimmed Match: %d of %d pairs trimmed per tail; ",
                               "interval inverts Yuen's trimmed t, t(%d)"), k, n, df),
    glance = list(trim_rate = k / n, n_trimmed = 2L * k, pairs_from = pr$source),
    tables = list(pairs = pair_table, trims = tm$trims)
  )
}

# Every trim level of pairs (y, x), the data-driven choice, and the p-value
# and statistic of Yuen's trimmed t-test of theta = 0 at the chosen trim.
trimmed_match_fit <- function(y, x, alpha) {
  n <- length(y)
  k_max <- floor(min(0.25, 0.5 - 1 / n) * n + 1e-9)
  ks <- 0:k_max
  q <- stats::qt(1 - alpha / 2, n - 2 * ks - 1)
  res <- cpp_trimmed_match(as.numeric(y), as.numeric(x), as.integer(ks), as.numeric(q))
  trims <- data.frame(trim = ks, trim_rate = ks / n, estimate = res[, "estimate"],
                      std.error = res[, "std.error"], conf.low = res[, "conf.low"],
                      conf.high = res[, "conf.high"], df = n - 2L * ks,
                      chosen = FALSE)
  trims$df <- trims$df - 1L
  ok <- is.finite(trims$std.error)
  if (!any(ok)) {
    return(list(estimate = NA_real_))
  }
  # The smallest trim whose standard error is within 1 + 0.25 / sqrt(n) of
  # the smallest.
  best <- min(trims$std.error[ok])
  pick <- which(ok & trims$std.error <= (1 + 0.25 / sqrt(n)) * best)[1]
  trims$chosen[pick] <- TRUE
  k <- ks[pick]
  t0 <- yuen_t(y, k)
  df <- n - 2L * k - 1L
  list(estimate = trims$estimate[pick], std.error = trims$std.error[pick],
       conf.low = trims$conf.low[pick], conf.high = trims$conf.high[pick],
       trim = k, df = df, statistic = t0, p.value = 2 * stats::pt(-abs(t0), df),
       trims = trims)
}

# Yuen's trimmed t-statistic of the values e with k trimmed per tail.
yuen_t <- function(e, k) {
  n <- length(e)
  m <- n - 2L * k
  s <- sort(e)
  body <- s[(k + 1L):(n - k)]
  w <- c(rep(s[k + 1L], k), body, rep(s[n - k], k))
  ss <- sum(w^2) - sum(w)^2 / n
  if (ss <= 0) return(if (sum(body) == 0) 0 else sign(sum(body)) * Inf)
  sum(body) * sqrt((m - 1) / (m * ss))
}

# The pairs: the `pairs` column, the design's strata when they are pairs, or
# treated and control geos matched by rank of pre-period outcome. Each pair
# holds one treated and one control geo (buffer geos never pair).
geo_pairs <- function(geo, panel, design, pairs, randomize_by, call = rlang::caller_env()) {
  keep <- geo$keep
  if (!is.null(pairs)) {
    lab <- geo_pair_labels(geo, panel, pairs, randomize_by, call = call)
    source <- "column"
  } else if (!is.null(design) && nlevels(design$strata) > 1L &&
             all(table(design$strata[keep]) == 2L)) {
    lab <- as.character(design$strata)
    source <- "design"
  } else {
    warn_mkt("model_based_inference", c(
      "Trimmed Match needs pairs; {if (is.null(design)) 'none were given' else 'the design has no pair strata'}, so treated and control geos are paired by rank of pre-period outcome.",
      i = "The interval assumes the treated geo of each pair was picked by a fair coin, which pairing after the assignment does not make true.",
      i = "For a paired design draw it with {.code rerandomize(..., strata = stratify(..., method = \"matched\"))}, or name the pairs with {.arg pairs}."
    ))
    tr <- which(geo$treat == 1 & keep)
    co <- which(geo$treat == 0 & keep)
    if (length(tr) != length(co)) {
      abort_mkt("bad_pairs", c(
        "Pairing by rank needs as many treated as control geos; there are {length(tr)} treated and {length(co)} control.",
        i = "Name the pairs with {.arg pairs}, or use {.code method = \"tbr\"} or {.code \"gbr\"}, which need no pairs."
      ), call = call)
    }
    tr <- tr[order(geo$pre_total[tr])]
    co <- co[order(geo$pre_total[co])]
    width <- nchar(length(tr))
    return(list(treated = tr, control = co, label = sprintf("P%0*d", width, seq_along(tr)),
                source = "rank of pre-period outcome"))
  }
  lab[!keep] <- NA
  g <- factor(lab[keep])
  idx <- which(keep)
  sizes <- table(g)
  n_tr <- tapply(geo$treat[idx], g, sum)
  bad <- names(sizes)[sizes != 2L | n_tr != 1L]
  if (length(bad)) {
    abort_mkt("bad_pairs", c(
      "Pair{?s} {.val {utils::head(bad, 5)}} {?does/do} not hold exactly one treated and one control geo.",
      i = "Each pair label names two geos, one in each arm; check {.arg pairs} (duplicated or odd labels) and the treatment column."
    ), call = call)
  }
  tr <- idx[geo$treat[idx] == 1][order(g[geo$treat[idx] == 1])]
  co <- idx[geo$treat[idx] == 0][order(g[geo$treat[idx] == 0])]
  list(treated = tr, control = co, label = levels(g), source = source)
}

# One pair label per geo from the `pairs` column, constant within geos.
geo_pair_labels <- function(geo, panel, pairs, randomize_by, call = rlang::caller_env()) {
  unit_lab <- panel_unit_values(panel, pairs, extra = TRUE, call = call)
  if (anyNA(unit_lab[rowSums(panel$observed) > 0])) {
    abort_mkt("missing_values", c(
      "The pairs column {.field {pairs}} is missing for some units.",
      i = "Every geo of a paired test belongs to a pair."
    ), call = call)
  }
  unit_cl <- randomization_clusters(panel, randomize_by, call = call)
  ci <- match(unit_cl, geo$ids)
  use <- !is.na(ci) & !is.na(unit_lab)
  lab_geo <- tapply(as.character(unit_lab[use]), ci[use], function(v) unique(v))
  if (any(lengths(lab_geo) > 1L)) {
    bad <- geo$ids[as.integer(names(lab_geo))[lengths(lab_geo) > 1L]]
    abort_mkt("bad_pairs", c(
      "The pairs column {.field {pairs}} differs between units of {.field {geo$col}} {.val {utils::head(bad, 5)}}.",
      i = "A geo belongs to one pair."
    ), call = call)
  }
  out <- rep(NA_character_, length(geo$ids))
  out[as.integer(names(lab_geo))] <- unlist(lab_geo)
  out
}
