# The registry test: every class that abort_mkt() and warn_mkt() can raise
# is listed once in condition_registry, and every listed class is raised
# somewhere.

raised_classes <- function() {
  ns <- asNamespace("mktcausal")
  objs <- mget(ls(ns, all.names = TRUE), envir = ns)
  fns <- objs[vapply(objs, is.function, logical(1))]
  found <- list()
  walk <- function(x, where) {
    if (is.call(x)) {
      head <- paste(deparse(x[[1]]), collapse = "")
      if (head %in% c("abort_mkt", "warn_mkt") && length(x) >= 2L) {
        kind <- if (head == "abort_mkt") "error" else "warning"
        # The class is a string, or a choice among strings (if / switch).
        strings <- character()
        grab <- function(y) {
          if (is.character(y)) strings <<- c(strings, y)
          if (is.call(y)) for (a in as.list(y)[-1]) if (!missing(a)) grab(a)
        }
        grab(x[[2]])
        if (!length(strings)) strings <- NA_character_
        found[[length(found) + 1L]] <<- data.frame(kind = kind, class = strings,
                                                   where = where, stringsAsFactors = FALSE)
      }
      for (a in as.list(x)) if (!missing(a)) walk(a, where)
    }
  }
  for (nm in names(fns)) walk(body(fns[[nm]]), nm)
  do.call(rbind, found)
}

test_that("every raised class is in the registry, with the right kind", {
  reg <- mktcausal:::condition_registry
  raised <- raised_classes()
  expect_false(anyNA(raised$class), label = "every class is a literal string")
  key <- paste(raised$kind, raised$class)
  missing <- unique(raised[!key %in% paste(reg$kind, reg$class), c("kind", "class", "where")])
  expect_identical(nrow(missing), 0L, label = paste(capture.output(print(missing)), collapse = "\n"))
})

test_that("every registry entry is raised somewhere and listed once", {
  reg <- mktcausal:::condition_registry
  raised <- raised_classes()
  unused <- setdiff(paste(reg$kind, reg$class), paste(raised$kind, raised$class))
  expect_identical(unused, character())
  expect_false(anyDuplicated(paste(reg$kind, reg$class)) > 0)
  expect_true(all(nzchar(reg$meaning)))
})

test_that("an unregistered class is an internal error, not a user-facing class", {
  expect_error(mktcausal:::abort_mkt("no_such_class", "x"), "not in condition_registry")
})

test_that("conditions carry the family class and the precise class", {
  err <- tryCatch(mkt_panel(y ~ 0 | u + t, data.frame(y = 1)), error = identity)
  expect_s3_class(err, "mktcausal_error_missing_column")
  expect_s3_class(err, "mktcausal_error")
})
