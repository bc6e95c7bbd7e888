# Every condition the package raises goes through these two helpers, so that
# each carries the classes c("mktcausal_error_<what>", "mktcausal_error") and
# users can catch a family or one precise failure.

abort_mkt <- function(what, message, ..., call = rlang::caller_env(),
                      .envir = parent.frame()) {
  cli::cli_abort(message, ...,
                 class = c(paste0("mktcausal_error_", what), "mktcausal_error"),
                 call = call, .envir = .envir)
}

warn_mkt <- function(what, message, ..., .envir = parent.frame()) {
  cli::cli_warn(message, ...,
                class = c(paste0("mktcausal_warning_", what), "mktcausal_warning"),
                .envir = .envir)
}

# Argument checks shared by every function: each names the argument and the fix.
check_count <- function(x, arg, min = 1, max = Inf, call = rlang::caller_env()) {
  ok <- is.numeric(x) && length(x) == 1L && !is.na(x) && x == round(x) &&
    x >= min && x <= max
  if (!ok) {
    abort_mkt("bad_argument", c(
      "{.arg {arg}} must be a whole number between {min} and {max}.",
      x = "You supplied {.val {format(x)}}."
    ), call = call)
  }
  as.integer(x)
}

check_probability <- function(x, arg, open_left = TRUE, call = rlang::caller_env()) {
  ok <- is.numeric(x) && length(x) >= 1L && !anyNA(x) &&
    all(if (open_left) x > 0 else x >= 0) && all(x <= 1)
  if (!ok) {
    abort_mkt("bad_argument", c(
      "{.arg {arg}} must lie in {if (open_left) '(0, 1]' else '[0, 1]'}.",
      x = "You supplied {.val {format(x)}}."
    ), call = call)
  }
  x
}

check_alpha <- function(alpha, call = rlang::caller_env()) {
  if (!is.numeric(alpha) || length(alpha) != 1L || is.na(alpha) ||
      alpha <= 0 || alpha >= 0.5) {
    abort_mkt("bad_argument", c(
      "{.arg alpha} must be a single number in (0, 0.5).",
      x = "You supplied {.val {format(alpha)}}.",
      i = "Use {.code alpha = 0.05} for 95% intervals."
    ), call = call)
  }
  alpha
}

check_data_frame <- function(data, arg = "data", call = rlang::caller_env()) {
  if (!is.data.frame(data)) {
    abort_mkt("bad_data", c(
      "{.arg {arg}} must be a data frame, a tibble or a data.table.",
      x = "You supplied an object of class {.cls {class(data)}}."
    ), call = call)
  }
  # One plain data.frame from here on: a tibble's or a data.table's `[` does
  # not drop to a vector, the classic source of wrong errors in peer packages.
  as.data.frame(data, stringsAsFactors = FALSE)
}

check_columns <- function(data, cols, arg, call = rlang::caller_env()) {
  miss <- setdiff(cols, names(data))
  if (length(miss)) {
    avail <- utils::head(names(data), 20)
    abort_mkt("missing_column", c(
      "{cli::qty(length(miss))}Column{?s} {.field {miss}} named in {.arg {arg}} {cli::qty(length(miss))}{?is/are} not in {.arg data}.",
      i = "Columns available: {.field {avail}}."
    ), call = call)
  }
  invisible(cols)
}
