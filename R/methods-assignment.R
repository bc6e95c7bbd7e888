# Presentation of assignment(): the row of the map and the treatment pattern.

#' @rdname assignment
#' @param x An `mkt_assignment` object.
#' @param ... Must be empty.
#' @export
print.mkt_assignment <- function(x, ...) {
  if (!called_from_package(parent.frame())) check_dots(...)
  fx <- x$facts
  cat("Assignment map row: ", assignment_labels[[x$setting]], " (", x$setting, ")\n", sep = "")
  cat(paste0(strwrap(sprintf("%d units x %d periods; treatment %s%s; %d treated (%s timing, %d cohort%s)%s%s",
              fx$n_units, fx$n_periods, fx$treatment_type,
              if (isTRUE(fx$absorbing)) ", absorbing" else if (isFALSE(fx$absorbing)) ", switches off" else "",
              fx$n_treated, fx$timing, fx$n_cohorts, if (fx$n_cohorts == 1L) "" else "s",
              if (isTRUE(fx$has_design)) "; randomized design attached" else
                if (fx$randomized) "; randomized (no design attached)" else "",
              if (fx$spatial) "; neighbour structure supplied" else ""), width = 80), "\n"),
      sep = "")
  cat("\nCore assumption:\n")
  cat(paste0(strwrap(x$assumption, width = 78, indent = 2, exdent = 2), "\n"), sep = "")
  cat("\nEstimators:\n")
  if (!nrow(x$functions)) cat("  none without more information (see below)\n")
  print_calls(x$functions)
  cat("\nDiagnostics:\n")
  print_calls(x$diagnostics)
  cat("\nIf the assumption looks doubtful:\n")
  cat(paste0(strwrap(x$when_doubtful, width = 78, indent = 2, exdent = 2), "\n"), sep = "")
  if (length(x$notes)) {
    cat("\nNotes:\n")
    for (n in x$notes) cat(paste0(strwrap(n, width = 78, initial = "  * ", exdent = 4), "\n"), sep = "")
  }
  invisible(x)
}

#' @rdname assignment
#' @export
plot.mkt_assignment <- function(x, ...) {
  check_dots(...)
  plot_status(x$panel) +
    ggplot2::labs(title = sprintf("Assignment: %s", assignment_labels[[x$setting]]))
}

# Suggested calls, each laid out within 80 columns, with its purpose.
print_calls <- function(calls) {
  for (i in seq_len(nrow(calls))) {
    # As written when it fits; else laid out by deparse() over several lines.
    code <- calls$call[i]
    if (nchar(code) > 76L) {
      code <- tryCatch(deparse(str2lang(code), width.cutoff = 60L), error = function(e) code)
    }
    cat(paste0("  ", code, "\n"), sep = "")
    cat(paste0(strwrap(calls$purpose[i], width = 78, initial = "      # ", exdent = 8), "\n"),
        sep = "")
  }
  invisible()
}
