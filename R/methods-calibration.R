# Presentation of mmm_calibration(): the calibration row as the target tool
# takes it (tidy), what was read from the fit (glance), and both printed
# within 80 columns.

#' @rdname mmm_calibration
#' @param x A result of `mmm_calibration()`.
#' @export
tidy.mkt_calibration <- function(x, ...) {
  check_dots(...)
  out <- x
  attr(out, "calibration") <- NULL
  class(out) <- "data.frame"
  out
}

#' @rdname mmm_calibration
#' @export
glance.mkt_calibration <- function(x, ...) {
  check_dots(...)
  q <- attr(x, "calibration")
  keep <- c("format", "term", "estimate", "std.error", "p.value", "incremental",
            "std.error_incremental", "spend", "iroas", "std.error_iroas")
  as.data.frame(q[keep], stringsAsFactors = FALSE)
}

#' @rdname mmm_calibration
#' @export
print.mkt_calibration <- function(x, ...) {
  check_dots(...)
  q <- attr(x, "calibration")
  tool <- c(robyn = "Robyn calibration_input", meridian = "Meridian experiment result",
            pymc_marketing = "PyMC-Marketing df_lift_test")[[q$format]]
  cat_wrapped(c(
    sprintf("%s from %s (row %s)", tool, q$method, q$term),
    sprintf("  incremental outcome %s (s.e. %s) for a spend change of %s: return %s (s.e. %s)",
            format_num(q$incremental, 5), format_num(q$std.error_incremental, 5),
            format_num(q$spend, 5), format_num(q$iroas, 3), format_num(q$std.error_iroas, 3))
  ))
  cat("\n")
  tab <- tidy.mkt_calibration(x)
  show <- tab
  for (col in names(show)) {
    v <- show[[col]]
    if (is.numeric(v)) show[[col]] <- format_num(v, 5)
    if (inherits(v, "Date")) show[[col]] <- format(v)
  }
  # Wide formats print one field per line, so that nothing wraps.
  if (sum(nchar(names(show))) + 2L * ncol(show) > 78L) {
    w <- max(nchar(names(show)))
    cat(sprintf("  %-*s  %s\n", w, names(show), vapply(show, `[[`, "", 1L)), sep = "")
  } else {
    print.data.frame(show, row.names = FALSE, right = TRUE)
  }
  invisible(x)
}
