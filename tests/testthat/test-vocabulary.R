# The vocabulary test: one name per concept across every export (the table
# in R/vocabulary.R), the same argument order, and every `...` checked.

test_that("no exported function uses an alias of a vocabulary name", {
  fns <- exported_functions()
  aliases <- unlist(strsplit(mktcausal:::vocabulary$aliases, " ", fixed = TRUE))
  found <- lapply(names(fns), function(f) {
    a <- intersect(names(formals(fns[[f]])), aliases)
    if (length(a)) paste0(f, "(", a, ")")
  })
  expect_identical(unlist(found), NULL)
})

test_that("estimators take formula then data, and `...` comes last", {
  fns <- exported_functions()
  for (f in names(fns)) {
    args <- names(formals(fns[[f]]))
    if ("formula" %in% args) {
      expect_identical(args[1:2], c("formula", "data"), label = paste0(f, "()"))
    }
    if ("..." %in% args) {
      expect_identical(args[length(args)], "...", label = paste0(f, "()'s last argument"))
    }
  }
})

test_that("every export refuses an unknown argument and names the nearest one", {
  fns <- exported_functions()
  for (f in names(fns)) {
    expect_true("..." %in% names(formals(fns[[f]])), label = paste0(f, "() takes ..."))
    err <- tryCatch(do.call(fns[[f]], list(n_boots = 9)), error = identity)
    expect_s3_class(err, "mktcausal_error_unknown_argument")
    if (inherits(err, "mktcausal_error_unknown_argument") &&
        "n_draws" %in% names(formals(fns[[f]]))) {
      expect_match(conditionMessage(err), "n_draws", fixed = TRUE)
    }
  }
})

test_that("old and foreign names point to the package's name", {
  expect_error(staggered(n_boot = 100), class = "mktcausal_error_unknown_argument")
  err <- tryCatch(synth(n_boot = 100), error = identity)
  expect_match(conditionMessage(err), "n_draws", fixed = TRUE)
  err <- tryCatch(synth(level = 0.9), error = identity)
  expect_match(conditionMessage(err), "alpha", fixed = TRUE)
})

test_that("choice arguments fail with the classed choice error", {
  expect_error(mktcausal:::check_choice("sdi", c("sc", "sdid")),
               class = "mktcausal_error_bad_choice")
  f <- function(method = c("sc", "sdid")) mktcausal:::check_choice(method)
  expect_identical(f(), "sc")
  expect_identical(f("sdid"), "sdid")
  err <- tryCatch(f("sdi"), error = identity)
  expect_s3_class(err, "mktcausal_error_bad_choice")
  expect_match(conditionMessage(err), "sdid", fixed = TRUE)
})

test_that("no function of the package calls match.arg() or arg_match()", {
  ns <- asNamespace("mktcausal")
  uses <- function(fn) {
    found <- FALSE
    walk <- function(x) {
      if (is.call(x)) {
        head <- x[[1]]
        txt <- paste(deparse(head), collapse = "")
        if (txt %in% c("match.arg", "rlang::arg_match", "arg_match")) found <<- TRUE
        for (a in as.list(x)) if (!missing(a)) walk(a)
      }
    }
    walk(body(fn))
    found
  }
  objs <- mget(ls(ns, all.names = TRUE), envir = ns)
  fns <- objs[vapply(objs, is.function, logical(1))]
  offenders <- names(fns)[vapply(fns, uses, logical(1))]
  expect_identical(offenders, character())
})
