#' Read a synthetic control fit: coefficients, weights, tables and plots
#'
#' * `coef()`: the ATT (average post-period gap), with the per-fit ATTs
#'   (one per treated unit for `"sc"`, per cohort otherwise) when
#'   `by_unit = TRUE`.
#' * `weights()`: named donor weights summing to 1 (averaged over treated
#'   units when there are several, weighted by their number); `type = "time"`
#'   gives the pre-period time weights of `"sdid"` and `"did"`.
#' * `tidy()`: a data frame with broom columns; `what = "att"` (one row, with
#'   the inference method in `inference`), `"period"` (ATT by event time,
#'   with conformal intervals and p-values when the fit has them),
#'   `"weights"`, `"placebo"` (placebo-in-space table), `"series"` (treated,
#'   synthetic and gap by period), `"balance"` (predictor balance).
#' * `glance()`: one row with `pre_rmspe`, `post_rmspe`, `p.value` and the
#'   sizes.
#' * `summary()`: the ATT, fit quality and the predictor balance table of
#'   Abadie et al. (2010, Table 1): treated, synthetic and donor average.
#' * `plot()`: `type = "trajectory"` (treated vs synthetic), `"gap"`,
#'   `"placebo"` (placebo gaps, needs `inference = "placebo"` with `"sc"`),
#'   `"weights"` or `"ratio"` (post/pre RMSPE ratios).
#'
#' @param object,x A [synth()] fit (for `print()`, also its `summary()`).
#' @param by_unit Return the ATT of each fit rather than the overall one.
#' @param type For `weights()`: `"unit"` or `"time"`. For `plot()`: see
#'   above.
#' @param what Which table `tidy()` returns.
#' @param ... Unused.
#' @return See the list above; `plot()` returns a ggplot.
#' @examples
#' fit <- synth(packspercapita ~ treated | state + year, prop99)
#' coef(fit)
#' tidy(fit, "weights")[1:5, ]
#' glance(fit)
#' plot(fit, "gap")
#' @name synth-methods
NULL

#' @rdname synth-methods
#' @export
coef.mkt_synth <- function(object, by_unit = FALSE, ...) {
  if (by_unit) return(stats::setNames(object$att_fit$att, object$att_fit$fit))
  c(att = object$estimate)
}

#' @rdname synth-methods
#' @importFrom stats weights
#' @export
weights.mkt_synth <- function(object, type = c("unit", "time"), ...) {
  type <- rlang::arg_match(type)
  if (type == "unit") return(object$weights)
  if (is.null(object$time_weights)) {
    abort_mkt("bad_argument", c(
      "A {.code method = \"{object$method}\"} fit has no time weights.",
      i = "Time weights come with {.code method = \"sdid\"} or {.code \"did\"}."))
  }
  object$time_weights
}

#' @rdname synth-methods
#' @export
tidy.mkt_synth <- function(x, what = c("att", "period", "weights", "placebo", "series",
                                       "balance"), ...) {
  what <- rlang::arg_match(what)
  switch(what,
    att = data.frame(term = "att", estimate = x$estimate, std.error = x$std.error,
                     conf.low = x$conf.low, conf.high = x$conf.high, p.value = x$p.value,
                     method = x$method, inference = x$inference, stringsAsFactors = FALSE),
    period = {
      out <- data.frame(term = paste0("event_time_", x$att_event$event_time),
                        event_time = x$att_event$event_time, estimate = x$att_event$estimate,
                        post = x$att_event$post, stringsAsFactors = FALSE)
      if (!is.null(x$conformal)) {
        cf <- x$conformal[-1, ]
        i <- match(out$event_time, cf$event_time)
        out$conf.low <- cf$conf.low[i]
        out$conf.high <- cf$conf.high[i]
        out$p.value <- cf$p.value[i]
      }
      out
    },
    weights = {
      w <- sort(x$weights, decreasing = TRUE)
      data.frame(term = names(w), estimate = unname(w), stringsAsFactors = FALSE)
    },
    placebo = {
      if (is.null(x$placebo)) {
        abort_mkt("not_available", c(
          "This fit has no placebo table.",
          i = "Refit with {.code method = \"sc\", inference = \"placebo\"}."))
      }
      x$placebo
    },
    series = x$series,
    balance = x$balance)
}

#' @rdname synth-methods
#' @export
glance.mkt_synth <- function(x, ...) {
  data.frame(method = x$method, inference = x$inference, estimate = x$estimate,
             pre_rmspe = x$pre_rmspe, post_rmspe = x$post_rmspe, p.value = x$p.value,
             n_treated = x$n_treated, n_donors = x$n_donors,
             v_loss = if (is.null(x$v_loss)) NA_real_ else sum(x$v_loss),
             converged = x$converged, stringsAsFactors = FALSE)
}

#' @rdname synth-methods
#' @export
print.mkt_synth <- function(x, ...) {
  label <- c(sc = "Synthetic control", asc = "Augmented synthetic control (ridge)", sdid = "Synthetic difference-in-differences",
             did = "Difference-in-differences")[[x$method]]
  say("{.strong {label}}: {x$n_treated} treated unit{?s}, {x$n_donors} donors; outcome {.field {x$vars$outcome}}")
  line <- sprintf("ATT = %s", format(signif(x$estimate, 4)))
  if (!is.na(x$std.error)) {
    line <- sprintf("%s (SE %s, %g%% CI %s to %s)", line, format(signif(x$std.error, 3)),
                    100 * (1 - x$alpha), format(signif(x$conf.low, 4)),
                    format(signif(x$conf.high, 4)))
  }
  if (!is.na(x$p.value)) line <- sprintf("%s, p = %s [%s]", line, format(signif(x$p.value, 3)), x$inference)
  cat(line, "\n", sep = "")
  cat(sprintf("Pre-period RMSPE %s, post-period RMSPE %s\n", format(signif(x$pre_rmspe, 4)),
              format(signif(x$post_rmspe, 4))))
  w <- x$weights[abs(x$weights) > 1e-6]
  w <- w[order(-abs(w))]
  if (x$method != "did") {
    top <- utils::head(w, 8)
    cat("Donor weights: ", paste0(names(top), " ", format(round(top, 3), nsmall = 3), collapse = ", "),
        if (length(w) > 8) sprintf(" (+%d more)", length(w) - 8), "\n", sep = "")
  }
  invisible(x)
}

#' @rdname synth-methods
#' @export
summary.mkt_synth <- function(object, ...) {
  structure(list(fit = object, att = tidy.mkt_synth(object, "att"),
                 att_fit = object$att_fit, balance = object$balance,
                 glance = glance.mkt_synth(object)),
            class = "summary.mkt_synth")
}

#' @rdname synth-methods
#' @export
print.summary.mkt_synth <- function(x, ...) {
  print.mkt_synth(x$fit)
  if (nrow(x$att_fit) > 1L) {
    cat("\nATT by fit:\n")
    print.data.frame(x$att_fit, row.names = FALSE, digits = 4)
  }
  cat("\nBalance (treated, synthetic, donor average):\n")
  print.data.frame(x$balance, row.names = FALSE, digits = 4)
  if (!is.null(x$fit$v_loss)) {
    cat(sprintf("\nNested V search: pre-period MSPE %s\n", format(signif(sum(x$fit$v_loss), 5))))
  }
  invisible(x)
}

#' @rdname synth-methods
#' @export
plot.mkt_synth <- function(x, type = c("trajectory", "gap", "placebo", "weights", "ratio"), ...) {
  type <- rlang::arg_match(type)
  base <- ggplot2::theme_minimal()
  if (type %in% c("trajectory", "gap")) {
    s <- tidy.mkt_synth(x, "series")
    start <- s$time[s$event_time == 0]
    vline <- ggplot2::geom_vline(xintercept = unique(start), linetype = "dashed", colour = "grey50")
    if (type == "gap") {
      return(ggplot2::ggplot(s, ggplot2::aes(x = .data$time, y = .data$gap, group = .data$fit)) +
        ggplot2::geom_hline(yintercept = 0, colour = "grey60") + vline +
        ggplot2::geom_line(colour = "firebrick") +
        ggplot2::labs(x = x$vars$time, y = paste("gap in", x$vars$outcome),
                      title = "Treated minus synthetic") + base)
    }
    long <- rbind(data.frame(s[c("fit", "time")], value = s$treated, series = "treated"),
                  data.frame(s[c("fit", "time")], value = s$synthetic, series = "synthetic"))
    return(ggplot2::ggplot(long, ggplot2::aes(x = .data$time, y = .data$value,
                                              colour = .data$series,
                                              group = interaction(.data$fit, .data$series))) +
      vline + ggplot2::geom_line() +
      ggplot2::scale_colour_manual(values = c(treated = "black", synthetic = "steelblue")) +
      ggplot2::labs(x = x$vars$time, y = x$vars$outcome, colour = NULL,
                    title = "Treated and synthetic trajectories") + base)
  }
  if (type == "weights") {
    w <- tidy.mkt_synth(x, "weights")
    w <- w[w$estimate > 1e-6, ]
    w$term <- factor(w$term, levels = rev(w$term))
    return(ggplot2::ggplot(w, ggplot2::aes(x = .data$estimate, y = .data$term)) +
      ggplot2::geom_col(fill = "steelblue") +
      ggplot2::labs(x = "donor weight", y = NULL, title = "Donor weights") + base)
  }
  if (is.null(x$placebo)) {
    abort_mkt("not_available", c(
      "{.code type = \"{type}\"} needs placebos in space.",
      i = "Refit with {.code method = \"sc\", inference = \"placebo\"}."))
  }
  if (type == "placebo") {
    ps <- x$placebo_series[x$placebo_series$kept, ]
    ps <- ps[order(ps$treated), ]
    return(ggplot2::ggplot(ps, ggplot2::aes(x = .data$time, y = .data$gap, group = .data$unit,
                                            colour = .data$treated, linewidth = .data$treated)) +
      ggplot2::geom_hline(yintercept = 0, colour = "grey60") +
      ggplot2::geom_vline(xintercept = unique(ps$time[ps$event_time == 0]), linetype = "dashed",
                          colour = "grey50") +
      ggplot2::geom_line() +
      ggplot2::scale_colour_manual(values = c(`FALSE` = "grey75", `TRUE` = "firebrick"),
                                   labels = c("placebo", "treated")) +
      ggplot2::scale_linewidth_manual(values = c(`FALSE` = 0.3, `TRUE` = 0.9), guide = "none") +
      ggplot2::labs(x = x$vars$time, y = paste("gap in", x$vars$outcome), colour = NULL,
                    title = "Placebos in space",
                    subtitle = sprintf("permutation p = %s", format(signif(x$p.value, 3)))) + base)
  }
  pl <- tidy.mkt_synth(x, "placebo")
  pl <- pl[pl$kept, ]
  pl$unit <- factor(pl$unit, levels = pl$unit[order(pl$ratio)])
  ggplot2::ggplot(pl, ggplot2::aes(x = .data$ratio, y = .data$unit, fill = .data$treated)) +
    ggplot2::geom_col() +
    ggplot2::scale_fill_manual(values = c(`FALSE` = "grey70", `TRUE` = "firebrick"), guide = "none") +
    ggplot2::labs(x = "post/pre-period RMSPE ratio", y = NULL, title = "RMSPE ratios",
                  subtitle = sprintf("permutation p = %s", format(signif(x$p.value, 3)))) + base
}
