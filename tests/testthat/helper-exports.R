# The package's exported functions, without the generics it re-exports or
# defines (their methods check their own arguments); shared by the
# vocabulary and contract tests.
exported_functions <- function() {
  ns <- asNamespace("mktcausal")
  ex <- sort(getNamespaceExports("mktcausal"))
  # Generics re-exported from other packages, and the package's own S3
  # generics (their methods check their arguments).
  generics <- c("tidy", "glance", "autoplot", "balance", "honest_sensitivity")
  ex <- setdiff(ex, generics)
  fns <- mget(ex, envir = ns)
  fns[vapply(fns, is.function, logical(1))]
}
