# Shared by the bench scripts (run from the repository root): the best of
# `reps` elapsed times of an expression, after a garbage collection.
time_it <- function(expr, reps = 3) {
  expr <- substitute(expr)
  env <- parent.frame()
  min(vapply(seq_len(reps), function(i) {
    gc(FALSE)
    system.time(eval(expr, env))[["elapsed"]]
  }, numeric(1)))
}
