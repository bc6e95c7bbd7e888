# Checks the package's structure from its sources; run by .ci/run after the
# check. Usage: Rscript tools/check-layers.R
#
# 1. No two files call each other in a loop: the graph "file A calls a
#    function defined in file B" must have no cycle (a file calling itself
#    is fine).
# 2. File names follow one rule: R/<name>.R where <name> is lower case,
#    words joined by "_" inside a function's name and "-" between a prefix
#    (methods, data, plot) or an estimator and the part of it the file holds.
# 3. Presentation lives in presentation files: print, summary, tidy, glance,
#    plot and autoplot methods are defined only in R/methods-*.R (and
#    R/panel.R, the panel's own).
# 4. The vocabulary table of CONTRIBUTING.md is the one in R/vocabulary.R.
# Exits with status 1 and a list of problems when a rule is broken.

files <- sort(list.files("R", pattern = "\\.R$", full.names = TRUE))
files <- files[basename(files) != "RcppExports.R"]
problems <- character()

# --- which file defines which function ---------------------------------------
defs <- list()
exprs <- lapply(files, function(f) parse(f, keep.source = FALSE))
names(exprs) <- basename(files)
for (f in names(exprs)) {
  for (e in exprs[[f]]) {
    if (is.call(e) && (identical(e[[1]], as.name("<-")) || identical(e[[1]], as.name("="))) &&
        is.name(e[[2]]) && is.call(e[[3]]) && identical(e[[3]][[1]], as.name("function"))) {
      defs[[as.character(e[[2]])]] <- f
    }
  }
}

# Functions a top-level expression uses: call heads, and functions passed by
# name (lapply(x, f)), except names that are the function's own arguments or
# local variables, and field names after `$`.
calls_in <- function(e) {
  out <- character()
  locals <- character()
  if (is.call(e) && is.call(e[[3]]) && identical(e[[3]][[1]], as.name("function"))) {
    locals <- names(e[[3]][[2]])
  }
  collect_locals <- function(x) {
    if (is.call(x)) {
      if ((identical(x[[1]], as.name("<-")) || identical(x[[1]], as.name("="))) &&
          is.name(x[[2]])) locals <<- c(locals, as.character(x[[2]]))
      if (identical(x[[1]], as.name("for"))) locals <<- c(locals, as.character(x[[2]]))
      if (identical(x[[1]], as.name("function"))) locals <<- c(locals, names(x[[2]]))
      for (a in as.list(x)) if (!missing(a)) collect_locals(a)
    }
  }
  body <- if (length(locals) || (is.call(e) && length(e) == 3L)) e[[3]] else e
  collect_locals(body)
  walk <- function(x) {
    if (is.call(x)) {
      fn <- x[[1]]
      if (is.name(fn)) out <<- c(out, as.character(fn)) else walk(fn)
      args <- as.list(x)[-1]
      if (identical(fn, as.name("$")) || identical(fn, as.name("@"))) args <- args[1]
      for (a in args) if (!missing(a)) walk(a)
    } else if (is.name(x)) {
      nm <- as.character(x)
      if (!nm %in% locals) out <<- c(out, nm)
    }
  }
  walk(body)
  unique(out)
}

edges <- list()
for (f in names(exprs)) {
  used <- unique(unlist(lapply(exprs[[f]], calls_in)))
  targets <- unique(unlist(defs[intersect(used, names(defs))]))
  edges[[f]] <- setdiff(targets, f)
}

# Strongly connected components (Tarjan) of the file graph.
index <- 0L
idx <- low <- stats::setNames(rep(NA_integer_, length(edges)), names(edges))
on_stack <- stats::setNames(rep(FALSE, length(edges)), names(edges))
stack <- character()
sccs <- list()
strong <- function(v) {
  index <<- index + 1L
  idx[v] <<- index
  low[v] <<- index
  stack <<- c(stack, v)
  on_stack[v] <<- TRUE
  for (w in edges[[v]]) {
    if (is.na(idx[w])) {
      strong(w)
      low[v] <<- min(low[v], low[w])
    } else if (on_stack[w]) {
      low[v] <<- min(low[v], idx[w])
    }
  }
  if (low[v] == idx[v]) {
    comp <- character()
    repeat {
      w <- stack[length(stack)]
      stack <<- stack[-length(stack)]
      on_stack[w] <<- FALSE
      comp <- c(comp, w)
      if (w == v) break
    }
    if (length(comp) > 1L) sccs[[length(sccs) + 1L]] <<- comp
  }
}
for (v in names(edges)) if (is.na(idx[v])) strong(v)
for (comp in sccs) {
  detail <- vapply(comp, function(a) {
    hits <- intersect(edges[[a]], comp)
    sprintf("%s -> %s", a, paste(hits, collapse = ", "))
  }, character(1))
  problems <- c(problems, paste0("files call each other in a loop: ",
                                 paste(detail, collapse = "; ")))
}

# --- file names -------------------------------------------------------------
bad_name <- !grepl("^[a-z][a-z0-9_]*(-[a-z0-9_]+)*\\.R$", basename(files))
if (any(bad_name)) {
  problems <- c(problems, paste("file names break the rule:", basename(files)[bad_name]))
}
# Words after a prefix or an estimator are joined by "-", never "_", so
# synth-inference.R, not synth_inference.R: a file named like a function
# must define that function.
for (f in basename(files)) {
  stem <- sub("\\.R$", "", f)
  if (!grepl("-", stem) && grepl("_", stem) && !stem %in% names(defs) &&
      !stem %in% c("ols_robust", "fixed_effects")) {
    problems <- c(problems, sprintf("%s is named like a function but defines no %s()", f, stem))
  }
}

# --- presentation methods live in presentation files -------------------------
present <- "^(print|summary|tidy|glance|plot|autoplot|print_details)\\."
allowed <- function(f) grepl("^(methods-|plot-)", f) || f %in% c("panel.R")
for (fn in grep(present, names(defs), value = TRUE)) {
  if (!allowed(defs[[fn]])) {
    problems <- c(problems, sprintf("%s() is presentation but lives in %s", fn, defs[[fn]]))
  }
}

# --- the vocabulary table of CONTRIBUTING.md matches R/vocabulary.R ----------
voc_env <- new.env()
sys.source(file.path("R", "vocabulary.R"), envir = voc_env)
doc <- readLines("CONTRIBUTING.md")
for (i in seq_len(nrow(voc_env$vocabulary))) {
  v <- voc_env$vocabulary[i, ]
  row <- sprintf("| `%s` | %s |", v$name, gsub(" ", ", ", v$aliases, fixed = TRUE))
  if (!any(grepl(row, doc, fixed = TRUE))) {
    problems <- c(problems, sprintf("CONTRIBUTING.md's vocabulary table lacks the row for `%s`: %s",
                                    v$name, row))
  }
}

if (length(problems)) {
  cat("Structure check failed:\n", paste0("  - ", problems, "\n"), sep = "")
  quit(status = 1)
}
cat(sprintf("Structure check passed: %d files, no call loops between files.\n", length(files)))
