# Argument checks shared by every function: each names the argument and the fix.
# Counts pass to compiled code as 32-bit integers unless the caller says the
# count may be larger (`large = TRUE`, for counts the kernels keep in 64
# bits): then up to 2^53, returned as a double.
check_count <- function(x, arg, min = 1, max = NULL, large = FALSE, call = rlang::caller_env()) {
  if (is.null(max)) max <- if (large) 2^53 else .Machine$integer.max
  ok <- is.numeric(x) && length(x) == 1L && !is.na(x) && is.finite(x) && x == round(x) &&
    x >= min && x <= max
  if (!ok) {
    abort_mkt("bad_argument", c(
      "{.arg {arg}} must be a whole number between {format(min, big.mark = ',', scientific = FALSE)} and {format(max, big.mark = ',', scientific = FALSE)}.",
      x = "You supplied {.val {format(x)}}."
    ), call = call)
  }
  if (x > .Machine$integer.max) as.numeric(x) else as.integer(x)
}

# A single TRUE or FALSE.
check_flag <- function(x, arg, call = rlang::caller_env()) {
  if (!rlang::is_bool(x)) {
    abort_mkt("bad_argument", c(
      "{.arg {arg}} must be {.code TRUE} or {.code FALSE}.",
      x = "You supplied {.obj_type_friendly {x}}."
    ), call = call)
  }
  x
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

# A confidence level: one number strictly between 0 and 1 (a level of 1
# would give infinite intervals, one of 0 empty ones).
check_level <- function(level, arg = "level", call = rlang::caller_env()) {
  if (!is.numeric(level) || length(level) != 1L || is.na(level) || level <= 0 || level >= 1) {
    abort_mkt("bad_argument", c(
      "{.arg {arg}} must be a single number strictly between 0 and 1.",
      x = "You supplied {.val {format(level)}}.",
      i = "Use {.code {arg} = 0.95} for 95% intervals."
    ), call = call)
  }
  level
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

# The classed replacement for base R's match.arg: `x` must be one of `choices`. With
# `choices` omitted they are read from the calling function's default, so a
# signature `method = c("a", "b")` is written once; an untouched default gives
# its first element, as match.arg does.
check_choice <- function(x, choices = NULL, arg = rlang::caller_arg(x),
                         call = rlang::caller_env()) {
  if (is.null(choices)) {
    choices <- eval(formals(sys.function(sys.parent()))[[arg]], envir = call)
  }
  if (identical(x, choices)) return(choices[[1]])
  if (is.character(x) && length(x) == 1L && !is.na(x) && x %in% choices) return(x)
  near <- if (is.character(x) && length(x) == 1L && !is.na(x)) nearest_name(x, choices)
  abort_mkt("bad_choice", c(
    "{.arg {arg}} must be one of {.or {.val {choices}}}.",
    x = "You supplied {.val {format(x)}}.",
    i = if (!is.na(near %||% NA)) "Did you mean {.val {near}}?"
  ), call = call)
}

# Refuses arguments that reach a function's `...` without a use. Called first
# thing in every exported function whose `...` is not passed on, so that a
# typo (`n_boots = 9`) or a foreign name (`n_boot`, `level`) stops with the
# package's name for it rather than being ignored.
check_dots <- function(..., call = rlang::caller_env()) {
  n <- ...length()
  if (n == 0L) return(invisible(TRUE))
  nms <- ...names()
  if (is.null(nms)) nms <- rep("", n)
  valid <- setdiff(names(formals(sys.function(sys.parent()))), "...")
  fn <- format_fn_name(call)
  if (any(!nzchar(nms))) {
    abort_mkt("unknown_argument", c(
      "{.fn {fn}} got {sum(!nzchar(nms))} unnamed argument{?s} it does not use.",
      i = "Name every argument after the documented ones: {.arg {valid}}."
    ), call = call)
  }
  bad <- nms[1]
  near <- nearest_name(bad, valid)
  abort_mkt("unknown_argument", c(
    "{.arg {bad}} is not an argument of {.fn {fn}}.",
    i = if (!is.na(near)) "Did you mean {.arg {near}}?" else "Its arguments are {.arg {valid}}."
  ), call = call)
}

# The valid name closest to `x`: the package's vocabulary name when `x` is a
# known alias, else the nearest by edit distance if it is close enough.
nearest_name <- function(x, valid) {
  alias <- vocabulary_name(x)
  if (!is.na(alias) && alias %in% valid) return(alias)
  if (!length(valid)) return(NA_character_)
  d <- drop(utils::adist(x, valid, ignore.case = TRUE))
  if (min(d) <= max(2L, nchar(x) %/% 3L)) valid[which.min(d)] else NA_character_
}

# The name of the function running in frame `call`; a function called
# through do.call() is found among the package's exports.
format_fn_name <- function(call) {
  fn <- tryCatch(rlang::frame_call(call)[[1]], error = function(e) NULL)
  if (is.name(fn)) return(as.character(fn))
  if (is.call(fn) && identical(fn[[1]], as.name("::"))) return(as.character(fn[[3]]))
  if (is.function(fn)) {
    ns <- asNamespace("mktcausal")
    for (nm in getNamespaceExports(ns)) {
      if (identical(get0(nm, envir = ns, inherits = FALSE), fn)) return(nm)
    }
  }
  "this function"
}
