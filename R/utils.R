# Small helpers used across the package.

`%||%` <- function(a, b) if (is.null(a)) b else a

# print() methods write to standard output, formatted with cli's inline markup.
say <- function(..., .envir = parent.frame()) {
  cat(cli::format_inline(..., .envir = .envir), "\n", sep = "")
}

# The outcome scale shared by every estimator that is equivariant in the
# outcome (multiplying it by s multiplies estimates, standard errors and
# intervals by s, variances by s^2, and leaves weights and test statistics
# unchanged): they fit the outcome divided by this power of two near its
# largest absolute value and scale the answers back, so outcomes near 1e300
# or 1e-300 neither overflow nor underflow in cross-products and solvers.
# The division by a power of two is exact, so ordinary outcomes give the same
# numbers to the last bit. floor(), not round(): 2^1024 would overflow for
# outcomes near the largest double. 1 when there is no finite nonzero value.
outcome_scale <- function(y) {
  s <- suppressWarnings(max(abs(y), na.rm = TRUE))
  if (!is.finite(s) || s <= 0) return(1)
  2^floor(log2(s))
}

# A variance (or covariance matrix) fitted on the outcome divided by s, back
# on the outcome's scale. (V * s) * s, not V * s^2: for s near 2^1000, s^2
# is Inf and a zero covariance would become 0 * Inf = NaN; this way zeros
# stay zero and only variances that truly overflow become Inf.
unscale_variance <- function(V, s) {
  if (s == 1) return(V)
  (V * s) * s
}
