# The methods every fit shares, written once for class `mkt_fit` (see
# fit.R for the fields they read). A class overrides one only where it really
# differs; the presentation hooks print_details() and autoplot() are where
# classes add their own printed details and plots.

#' Methods shared by every mktcausal fit
#'
#' Every estimator of the package returns an object of class
#' `c("mkt_<method>", "mkt_fit")` with the same fields and the same methods,
#' so fits can be printed, compared, tabulated and plotted alike, and go into
#' regression tables (`modelsummary`, through `tidy()` and `glance()`) as
#' they are.
#'
#' * `coef()`: the named estimates.
#' * `vcov()`: their covariance; a fit whose inference gives none (a
#'   permutation p-value, say) raises an error of class
#'   `mktcausal_error_not_available` that says why.
#' * `confint()`: at the fit's own level (`1 - alpha`), the intervals the
#'   fit's inference produced (randomization, conformal or uniform bands
#'   included); at another level, normal or t intervals from the standard
#'   errors where the fit has them, else an error that says how to refit.
#' * `nobs()`: the number of rows or unit-period cells used.
#' * `tidy()`: the estimates in broom's columns (`term`, `estimate`,
#'   `std.error`, `statistic`, `p.value`, `conf.low`, `conf.high`), then the
#'   class's own columns; `what` names a further table of the fit.
#' * `glance()`: one row: `nobs`, `n_units`, `n_periods`, `n_treated`,
#'   `n_clusters` (and further counts), `method`, `inference`, `alpha`, then
#'   the class's own statistics.
#' * `print()` and `summary()`: a header (call, estimand, sample, inference)
#'   and the estimates, at most `max_rows` rows (12 for `print()`, 25 for
#'   `summary()`), then the class's details. Tables by event time keep the
#'   overall row and the event times nearest adoption; a line at the foot
#'   says how many rows are hidden and that `tidy()` returns them all.
#'   `summary()` of a [staggered()] fit shows the cells aggregated by cohort
#'   and by event time instead of the cells. Every line fits in 80 columns:
#'   a table too wide prints in parts that repeat the term column.
#' * `plot()` and `autoplot()`: a ggplot.
#'
#' @param x,object A fit.
#' @param parm Terms (names or positions); all by default.
#' @param level Confidence level.
#' @param what For `tidy()`: `"estimates"` or the name of a further table of
#'   the fit (the error lists those available).
#' @param conf.int Ignored: intervals are always returned (the argument is
#'   accepted because broom's callers pass it).
#' @param conf.level Level of `conf.low` and `conf.high`; by default the fit's.
#' @param digits Significant digits printed.
#' @param max_rows Largest number of estimate rows printed.
#' @param ... Passed to the class's plot (for `plot()` and `autoplot()`);
#'   must be empty otherwise: in a call of yours, an argument the method
#'   does not use is an error of class `mktcausal_error_unknown_argument`,
#'   not silently ignored. (Options that table packages such as
#'   `modelsummary` pass through `...` are accepted from their code.)
#' @return `coef()` a named vector, `vcov()` a matrix, `confint()` a matrix
#'   with one row per term, `nobs()` an integer, `tidy()` and `glance()` data
#'   frames, `plot()` and `autoplot()` a ggplot; `print()` returns `x`
#'   invisibly.
#' @examples
#' fit <- synth(packspercapita ~ treated | state + year, prop99,
#'              method = "sdid", inference = "placebo", n_draws = 50)
#' fit
#' coef(fit)
#' confint(fit)
#' nobs(fit)
#' glance(fit)
#' @name mkt_fit
NULL

#' @rdname mkt_fit
#' @export
coef.mkt_fit <- function(object, ...) {
  if (!called_from_package(parent.frame())) check_dots(...)
  stats::setNames(object$estimates$estimate, object$estimates$term)
}

#' @rdname mkt_fit
#' @export
vcov.mkt_fit <- function(object, ...) {
  if (!called_from_package(parent.frame())) check_dots(...)
  if (is.null(object$vcov)) {
    abort_mkt("not_available", c(
      "This fit ({object$method}) has no covariance matrix: {object$no_vcov}.",
      i = "Use {.code confint()} or {.code tidy()} for its intervals and p-values."
    ))
  }
  object$vcov
}

#' @rdname mkt_fit
#' @export
confint.mkt_fit <- function(object, parm, level = 1 - object$alpha, ...) {
  if (!called_from_package(parent.frame())) check_dots(...)
  est <- select_terms(object$estimates, if (missing(parm)) NULL else parm)
  # At the fit's own level the stored limits are the answer: 1 - alpha may
  # round to 1 (alpha = 1e-300) where alpha itself does not.
  own <- missing(level)
  level <- if (own) 1 - object$alpha else check_level(level, "level")
  lim <- fit_limits(object, est, level)
  out <- cbind(lim$low, lim$high)
  a <- if (own) object$alpha / 2 else (1 - level) / 2
  dimnames(out) <- list(est$term, paste(format(100 * c(a, 1 - a), trim = TRUE,
                                               scientific = FALSE, digits = 3), "%"))
  out
}

#' @importFrom stats nobs
#' @rdname mkt_fit
#' @export
nobs.mkt_fit <- function(object, ...) {
  if (!called_from_package(parent.frame())) check_dots(...)
  as.integer(object$n$obs)
}

#' @rdname mkt_fit
#' @export
tidy.mkt_fit <- function(x, what = "estimates", conf.int = TRUE,
                         conf.level = 1 - x$alpha, ...) {
  if (!called_from_package(parent.frame())) check_dots(...)
  # A table slot left NULL (a part the fit did not compute) is not offered.
  tables <- x$tables[!vapply(x$tables, is.null, logical(1))]
  what <- check_choice(what, c("estimates", names(tables)))
  if (what != "estimates") return(tables[[what]])
  est <- x$estimates
  if (missing(conf.level)) return(est)
  conf.level <- check_level(conf.level, "conf.level")
  if (!isTRUE(all.equal(conf.level, 1 - x$alpha))) {
    lim <- fit_limits(x, est, conf.level)
    est$conf.low <- lim$low
    est$conf.high <- lim$high
  }
  est
}

#' @rdname mkt_fit
#' @export
glance.mkt_fit <- function(x, ...) {
  if (!called_from_package(parent.frame())) check_dots(...)
  n <- x$n
  counts <- stats::setNames(lapply(n, function(v) if (is.null(v)) NA_integer_ else v),
                            ifelse(names(n) == "obs", "nobs", paste0("n_", names(n))))
  out <- data.frame(counts, method = x$method, inference = x$inference,
                    alpha = x$alpha, stringsAsFactors = FALSE, check.names = FALSE)
  if (length(x$glance)) out <- cbind(out, as.data.frame(x$glance, stringsAsFactors = FALSE))
  out
}

#' @rdname mkt_fit
#' @export
print.mkt_fit <- function(x, digits = 4, max_rows = 12, ...) {
  if (!called_from_package(parent.frame())) check_dots(...)
  digits <- check_count(digits, "digits", min = 1, max = 15)
  max_rows <- check_count(max_rows, "max_rows", min = 0)
  print_header(x)
  print_headline(x, digits = digits)
  cat("\n")
  print_estimates(x, digits = digits, max_rows = max_rows)
  print_details(x, summary = FALSE, digits = digits)
  invisible(x)
}

#' @rdname mkt_fit
#' @export
summary.mkt_fit <- function(object, ...) {
  if (!called_from_package(parent.frame())) check_dots(...)
  structure(list(fit = object, estimates = tidy(object), glance = glance(object)),
            class = "summary.mkt_fit")
}

#' @export
print.summary.mkt_fit <- function(x, digits = 4, max_rows = 25, ...) {
  if (!called_from_package(parent.frame())) check_dots(...)
  digits <- check_count(digits, "digits", min = 1, max = 15)
  max_rows <- check_count(max_rows, "max_rows", min = 0)
  print_header(x$fit)
  print_headline(x$fit, digits = digits)
  cat("\n")
  print_summary_estimates(x$fit, digits = digits, max_rows = max_rows)
  print_details(x$fit, summary = TRUE, digits = digits)
  invisible(x)
}

#' @rdname mkt_fit
#' @export
plot.mkt_fit <- function(x, ...) {
  autoplot(x, ...)
}

#' @importFrom ggplot2 autoplot
#' @rdname mkt_fit
#' @export
autoplot.mkt_fit <- function(object, ...) {
  check_dots(...)
  td <- object$estimates
  td$term <- factor(td$term, levels = rev(unique(td$term)))
  p <- ggplot2::ggplot(td, ggplot2::aes(x = .data$estimate, y = .data$term)) +
    ref_line("x")
  p <- if (all(is.na(td$conf.low))) {
    p + ggplot2::geom_point(colour = mkt_colours[["effect"]], size = 2)
  } else {
    p + ggplot2::geom_pointrange(ggplot2::aes(xmin = .data$conf.low, xmax = .data$conf.high),
                                 colour = mkt_colours[["effect"]], na.rm = TRUE)
  }
  p +
    ggplot2::labs(x = "estimate", y = NULL, title = object$method,
                  subtitle = interval_caption(object)) +
    theme_mkt()
}

# --- shared pieces ---------------------------------------------------------

# Whether a method was called from another package's code. Table and
# model-summary packages pass their own options through the generics' `...`
# (modelsummary gives tidy() its `vcov` and `coef_rename`, glance() its
# `gof_map`), as broom's convention allows, so those calls are let through;
# a user's call (from the global environment, a script or a function of
# their own) with an argument the method does not use is a typo, refused
# by check_dots().
called_from_package <- function(env) {
  top <- topenv(env)
  # Compared by name: test runners evaluate in a copy of the namespace.
  isNamespace(top) && !identical(getNamespaceName(top), getNamespaceName(topenv()))
}

# Rows of the estimates table chosen by name or position, with a classed
# error naming what exists.
select_terms <- function(est, parm, call = rlang::caller_env()) {
  if (is.null(parm)) return(est)
  idx <- if (is.numeric(parm)) parm else match(parm, est$term)
  if (anyNA(idx) || any(idx < 1L | idx > nrow(est))) {
    abort_mkt("bad_argument", c(
      "{.arg parm} names terms the fit does not have.",
      i = "Its terms are {.val {est$term}}."
    ), call = call)
  }
  est[idx, , drop = FALSE]
}

# Interval limits at `level`: the fit's own intervals at its own level;
# otherwise from the standard errors (t with `df` where the fit has one).
fit_limits <- function(fit, est, level, call = rlang::caller_env()) {
  own <- isTRUE(all.equal(level, 1 - fit$alpha))
  if (own && !all(is.na(est$conf.low) & is.na(est$conf.high))) {
    return(list(low = est$conf.low, high = est$conf.high))
  }
  if (all(is.na(est$std.error))) {
    abort_mkt("not_available", c(
      "This fit ({fit$method}) has no interval at level {level}.",
      x = if (own) "Its inference ({fit$inference}) gives no interval." else
        "Its intervals come from its inference ({fit$inference}) at level {1 - fit$alpha} and it has no standard errors to rescale.",
      i = if (!own) "Refit with {.code alpha = {signif(1 - level, 3)}}."
    ), call = call)
  }
  df <- if (is.null(est$df)) rep(Inf, nrow(est)) else ifelse(is.na(est$df), Inf, est$df)
  crit <- stats::qt(1 - (1 - level) / 2, df)
  list(low = est$estimate - crit * est$std.error, high = est$estimate + crit * est$std.error)
}

interval_caption <- function(fit, width = 75) {
  text <- sprintf("%g%% intervals; inference: %s", 100 * (1 - fit$alpha), fit$inference)
  paste(strwrap(text, width = width), collapse = "\n")
}

# The printed header: what was fitted, to what, on what sample, with which
# inference. Every line fits in 80 columns.
print_header <- function(x) {
  cat(x$method, "\n", sep = "")
  field <- function(label, text) {
    lines <- strwrap(text, width = 80 - 13)
    cat(sprintf("  %-10s %s\n", paste0(label, ":"), lines[1]), sep = "")
    if (length(lines) > 1L) cat(paste0(strrep(" ", 13), lines[-1], "\n"), sep = "")
  }
  if (!is.null(x$call)) {
    lines <- format_call(x$call)
    cat(sprintf("  %-10s %s\n", "call:", lines[1]), sep = "")
    if (length(lines) > 1L) cat(paste0(strrep(" ", 13), lines[-1], "\n"), sep = "")
  }
  field("estimand", x$estimand)
  field("sample", format_sample(x$n))
  field("inference", sprintf("%s; alpha = %s", x$inference, format(x$alpha)))
}

# The call as the user would write it (formula and data unnamed), broken
# between arguments to fit the header's 67 columns.
format_call <- function(call, width = 67L) {
  fn <- paste(deparse(call[[1]]), collapse = "")
  args <- as.list(call)[-1]
  if (!length(args)) return(paste0(fn, "()"))
  nm <- names(args)
  if (is.null(nm)) nm <- rep("", length(args))
  # The leading object or formula-and-data need no names.
  if (nm[1] %in% c("formula", "x", "object", "fit")) {
    if (nm[1] == "formula" && length(nm) >= 2L && nm[2] == "data") nm[2] <- ""
    nm[1] <- ""
  }
  parts <- vapply(seq_along(args), function(i) {
    value <- paste(trimws(deparse(args[[i]], width.cutoff = 500L)), collapse = " ")
    if (nzchar(nm[i])) paste(nm[i], "=", value) else value
  }, character(1))
  parts <- paste0(parts, c(rep(",", length(parts) - 1L), ")"))
  lines <- character()
  current <- paste0(fn, "(")
  for (p in parts) {
    fresh <- endsWith(current, "(")
    if (!fresh && nchar(current) + 1L + nchar(p) > width) {
      lines <- c(lines, current)
      current <- p
    } else {
      current <- paste0(current, if (!fresh) " ", p)
    }
  }
  lines <- c(lines, current)
  unlist(lapply(lines, function(l) if (nchar(l) > width) strwrap(l, width) else l))
}

format_sample <- function(n) {
  num <- function(v) format(v, big.mark = ",", scientific = FALSE, trim = TRUE)
  has <- function(k) !is.null(n[[k]]) && !is.na(n[[k]])
  parts <- character()
  if (has("units") && has("periods")) {
    parts <- sprintf("%s units x %s periods", num(n$units), num(n$periods))
    if (has("obs")) parts <- sprintf("%s (%s obs)", parts, num(n$obs))
  } else if (has("units")) {
    parts <- sprintf("%s units", num(n$units))
    if (has("obs") && n$obs != n$units) parts <- sprintf("%s (%s obs)", parts, num(n$obs))
  } else if (has("obs")) {
    parts <- sprintf("%s obs", num(n$obs))
  }
  extra <- c(if (has("treated")) sprintf("%s treated", num(n$treated)),
             if (has("clusters") && !(has("units") && n$clusters == n$units))
               sprintf("%s clusters", num(n$clusters)))
  others <- setdiff(names(n), sample_sizes)
  for (k in others) if (has(k)) extra <- c(extra, sprintf("%s %s", num(n[[k]]), gsub("_", " ", k)))
  paste(c(paste(parts, collapse = ""), extra)[nzchar(c(paste(parts, collapse = ""), extra))],
        collapse = ", ")
}

# The estimates as a compact table: estimate, standard error, interval and
# p-value (the columns a fit has), then the class's `print_columns`.
print_estimates <- function(x, digits = 4, max_rows = 12) {
  est <- x$estimates
  n_all <- nrow(est)
  if (n_all == 0L) {
    cat("No coefficients are estimated; tidy(fit, what) gives the fit's tables.\n")
    return(invisible(x))
  }
  shown <- seq_len(n_all) %in% order(print_priority(est))[seq_len(min(max_rows, n_all))]
  hidden <- est[!shown, , drop = FALSE]
  est <- est[shown, , drop = FALSE]
  show <- data.frame(term = format_term(est$term), stringsAsFactors = FALSE)
  # The estimate and its interval share one number of decimals, so that a
  # column reads down; the standard error has its own.
  est_cols <- c(est$estimate, est$conf.low, est$conf.high)
  show$estimate <- format_col(est$estimate, digits, like = est_cols)
  if (!all(is.na(est$std.error))) show$std.error <- format_col(est$std.error, digits - 1L)
  if (!all(is.na(est$conf.low) & is.na(est$conf.high))) {
    show[[sprintf("%g%% interval", 100 * (1 - x$alpha))]] <-
      sprintf("[%s, %s]", format_col(est$conf.low, digits, like = est_cols),
              format_col(est$conf.high, digits, like = est_cols))
  }
  if (!all(is.na(est$p.value))) show$p.value <- format_p(est$p.value)
  for (col in intersect(names(x$print_columns), names(est))) {
    v <- est[[col]]
    show[[x$print_columns[[col]]]] <- if (startsWith(col, "p.value")) format_p(v) else
      if (is.numeric(v)) format_col(v, digits) else as.character(v)
  }
  names(show)[1] <- ""
  print_wide_table(show)
  if (nrow(hidden)) {
    cat(hidden_rows_line(nrow(hidden), n_all, hidden$event, est$event), "\n", sep = "")
  }
  invisible(x)
}

# A table of text columns, the first naming the rows: printed as one table
# when it fits in `width` columns, else as several, each repeating the first
# column (print.data.frame would wrap the last columns without it).
print_wide_table <- function(show, width = 80L) {
  if (!nrow(show)) return(invisible(show))
  w <- vapply(seq_along(show), function(j) {
    max(nchar(c(names(show)[j], show[[j]]), type = "width"))
  }, numeric(1)) + 1
  blocks <- list()
  current <- integer()
  used <- w[1]
  for (j in seq_along(show)[-1]) {
    # print.data.frame wraps a line that reaches `width`: keep one column spare.
    if (length(current) && used + w[j] >= width) {
      blocks <- c(blocks, list(current))
      current <- integer()
      used <- w[1]
    }
    current <- c(current, j)
    used <- used + w[j]
  }
  blocks <- c(blocks, list(current))
  for (b in seq_along(blocks)) {
    if (b > 1L) cat("\n")
    print.data.frame(show[c(1L, blocks[[b]])], row.names = FALSE, right = TRUE)
  }
  invisible(show)
}

# The order in which rows earn a place in a shortened table. Tables by event
# time keep their overall row, then the event times nearest adoption, about
# two after it for one before (0, 1, -1, 2, 3, -2, ...); other tables keep
# their first rows. The rows shown stay in the table's order.
print_priority <- function(est) {
  e <- est$event
  if (!is.numeric(e)) return(seq_len(nrow(est)))
  score <- ifelse(is.na(e), -1, ifelse(e >= 0, e, 2 * (-e) - 0.5))
  rank(score, ties.method = "first")
}

# The foot line of a shortened table: how many rows are hidden, which event
# times when they are a few runs, and where to get them.
hidden_rows_line <- function(n, n_all, hidden = NULL, shown = NULL, width = 80L) {
  line <- sprintf("# %d more rows: tidy() returns all %d", n, n_all)
  # Event times are named only where each is one row (not group-time cells).
  if (is.numeric(hidden) && !anyNA(hidden) && !anyDuplicated(c(hidden, shown))) {
    long <- sprintf("# %d more rows (event %s): tidy() returns all %d",
                    n, format_runs(hidden), n_all)
    if (nchar(long) <= width) line <- long
  }
  line
}

# Integers as runs: c(-5, -4, -3, 7, 8) -> "-5 to -3, 7 to 8".
format_runs <- function(v) {
  v <- sort(unique(v))
  if (!length(v)) return("")
  brk <- c(0L, which(diff(v) != 1), length(v))
  parts <- vapply(seq_len(length(brk) - 1L), function(i) {
    a <- v[brk[i] + 1L]
    b <- v[brk[i + 1L]]
    if (a == b) format(a) else paste(format(a), "to", format(b))
  }, character(1))
  paste(parts, collapse = ", ")
}

# Long terms are shortened in the middle, so that terms which differ only at
# their end ("ATT(2025-01-20,2025-02-03)") stay distinct.
format_term <- function(term, width = 28L) {
  long <- nchar(term) > width
  keep <- (width - 3L) %/% 2L
  term[long] <- paste0(substr(term[long], 1L, width - 3L - keep), "...",
                       substring(term[long], nchar(term[long]) - keep + 1L))
  formatC(term, width = -max(nchar(term), 1L))
}

# One number with `digits` significant digits, in fixed notation up to
# 1e15 (scientific beyond, where fixed notation would print every digit).
format_num <- function(x, digits = 4) {
  big <- is.finite(x) & abs(x) >= 1e15
  out <- formatC(signif(x, digits), digits = digits, format = "fg", big.mark = ",")
  out <- sub("\\.$", "", trimws(out))
  out[big] <- formatC(x[big], digits = digits - 1L, format = "e")
  special_numbers(x, out)
}

# A column of a table: every number with the same decimals, chosen so that
# a typical entry (the median magnitude of `like`, by default the column)
# shows `digits` significant digits and the smallest one more if that takes
# at most two more decimals (a value nearer zero prints as 0.000, never
# -0.000, so that one tiny entry does not stretch the column); in scientific
# notation throughout when a typical entry needs more than 8 decimals or the
# column reaches 1e15.
format_col <- function(x, digits = 4, like = x) {
  mag <- abs(like[is.finite(like) & like != 0])
  if (!length(mag)) return(format_num(x, digits))
  typical <- max(digits - 1 - floor(log10(stats::median(mag))), 0)
  need <- -floor(log10(min(mag)))
  dec <- if (need <= typical + 2) max(typical, need) else typical
  out <- if (typical > 8 || max(mag) >= 1e15) {
    formatC(x, digits = digits - 1L, format = "e")
  } else {
    sub("^-(0[.0]*)$", "\\1", formatC(x, digits = dec, format = "f", big.mark = ","))
  }
  special_numbers(x, trimws(out))
}

special_numbers <- function(x, out) {
  out[is.na(x)] <- "NA"
  out[is.infinite(x)] <- ifelse(x[is.infinite(x)] > 0, "Inf", "-Inf")
  out
}

format_p <- function(p) {
  ifelse(is.na(p), "NA", ifelse(p < 0.001, "<0.001", sprintf("%.3f", p)))
}

# Hook for a headline a class prints under the header (the overall effect of
# a fit whose rows are many cells).
print_headline <- function(x, ...) UseMethod("print_headline")

#' @export
print_headline.mkt_fit <- function(x, ...) invisible(x)

# Hook for the table summary() prints: the estimates by default; a class
# whose rows are many cells shows their aggregates instead.
print_summary_estimates <- function(x, ...) UseMethod("print_summary_estimates")

#' @export
print_summary_estimates.mkt_fit <- function(x, digits = 4, max_rows = 25, ...) {
  print_estimates(x, digits = digits, max_rows = max_rows)
}

# Hook for the details a class prints after its estimates (fit quality,
# weights, first stages); `summary = TRUE` asks for the longer version.
print_details <- function(x, summary = FALSE, ...) UseMethod("print_details")

#' @export
print_details.mkt_fit <- function(x, summary = FALSE, ...) invisible(x)

# The plot look (theme_mkt, mkt_colours, reference lines) is in plot-helpers.R.
