# Small helpers used across the package.

`%||%` <- function(a, b) if (is.null(a)) b else a

# print() methods write to standard output, formatted with cli's inline markup.
say <- function(..., .envir = parent.frame()) {
  cat(cli::format_inline(..., .envir = .envir), "\n", sep = "")
}
