# Budget-first planning for design_power(): with `spend`, the effect grid is
# a grid of iROAS values. A test of T periods that changes the treated arm's
# spend by `spend` per period and returns `theta` per unit of spend makes an
# incremental outcome theta * spend * T in the treated arm: the relative
# effect injected in a window whose mean cluster total is ybar is
#   delta = theta * spend * T / (n_treated * ybar),
# shared across treated clusters as `effect_type` says. The simulation
# depends on theta and spend only through their product, so one simulated
# curve at one spend gives the power at any spend: the spend that reaches
# the target power at iROAS theta* is |spend| * MDE / theta*.

# Checks of the budget arguments; NULL when `spend` is not given.
power_budget_args <- function(spend, iroas, cost_per_unit, call = rlang::caller_env()) {
  if (is.null(spend)) {
    if (!is.null(iroas) || !is.null(cost_per_unit)) {
      abort_mkt("bad_argument", c(
        "{.arg iroas} and {.arg cost_per_unit} plan a budget, which needs {.arg spend}.",
        i = "Give the change in the treated arm's spend per period, e.g. {.code spend = 20000} (negative for a go-dark test)."
      ), call = call)
    }
    return(NULL)
  }
  if (!is.numeric(spend) || length(spend) != 1L || !is.finite(spend) || spend == 0) {
    abort_mkt("bad_argument", c(
      "{.arg spend} must be one finite, non-zero number: the change in the treated arm's spend per period.",
      x = "You supplied {.val {format(spend)}}.",
      i = "Positive for a heavy-up, negative for a go-dark test (spend removed)."
    ), call = call)
  }
  if (!is.null(iroas) && !is.null(cost_per_unit)) {
    abort_mkt("bad_argument", c(
      "Give {.arg iroas} or {.arg cost_per_unit}, not both: one is the inverse of the other.",
      i = "{.code cost_per_unit = 25} is {.code iroas = 0.04}."
    ), call = call)
  }
  positive <- function(x, arg) {
    if (!is.numeric(x) || length(x) != 1L || !is.finite(x) || x <= 0) {
      abort_mkt("bad_argument", c(
        "{.arg {arg}} must be one positive number.",
        x = "You supplied {.val {format(x)}}.",
        i = "It is the return to plan for, whether spend is added or removed."
      ), call = call)
    }
    x
  }
  target <- if (!is.null(iroas)) positive(iroas, "iroas") else
    if (!is.null(cost_per_unit)) 1 / positive(cost_per_unit, "cost_per_unit")
  list(spend = as.numeric(spend), iroas = target,
       stated_as = if (!is.null(cost_per_unit)) "cost_per_unit" else "iroas")
}

# The default grid of iROAS values around the target.
power_budget_grid <- function(budget, call = rlang::caller_env()) {
  if (is.null(budget$iroas)) {
    abort_mkt("bad_argument", c(
      "With {.arg spend}, {.arg effect} is a grid of iROAS values, and there is no default without a target.",
      i = "Give {.arg iroas} (e.g. {.code iroas = 2}) or a grid such as {.code effect = seq(0, 4, by = 0.5)}."
    ), call = call)
  }
  budget$iroas * c(0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 2, 3, 4)
}

# The multiplier from iROAS to the relative effect injected in each window;
# refuses a go-dark plan that would remove more than the treated clusters
# sell under a multiplicative effect.
power_budget_scale <- function(budget, windows, n_treated, effect, effect_type,
                               call = rlang::caller_env()) {
  k <- vapply(windows, function(w) budget$spend * w$test_length / (n_treated * w$mean),
              numeric(1))
  worst <- min(max(effect) * k)
  if (effect_type == "multiplicative" && worst <= -1) {
    abort_mkt("bad_argument", c(
      "At iROAS {format_num(max(effect), 3)}, removing {format_num(-budget$spend)} per period removes {format_num(-100 * worst, 3)}% of the treated clusters' outcome in some window: more than they have.",
      i = "Use a smaller grid in {.arg effect}, a smaller go-dark {.arg spend}, or {.code effect_type = \"additive\"}."
    ), call = call)
  }
  k
}

# Budget columns added to the MDE table: the MDE as a cost per unit, the
# power at the target iROAS, and the spend that reaches the target power.
power_budget_table <- function(mde, tab, budget, target_power) {
  mde$spend <- budget$spend
  mde$mde_cost_per_unit <- 1 / mde$mde_interpolated
  theta <- budget$iroas
  if (is.null(theta)) return(mde)
  mde$target_iroas <- theta
  mde$power_at_target <- vapply(mde$test_length, function(t) {
    d <- tab[tab$test_length == t, ]
    d$power[match(theta, d$effect)]
  }, numeric(1))
  mde$spend_needed <- abs(budget$spend) * mde$mde_interpolated / theta
  mde$spend_needed_total <- mde$spend_needed * mde$test_length
  mde
}

# The shortest test length whose power at the target iROAS reaches the
# target power at the planned spend (NA when none of the lengths tried does).
power_budget_shortest <- function(mde, target_power) {
  if (is.null(mde$power_at_target)) return(NA_integer_)
  ok <- mde$power_at_target >= target_power
  if (any(ok)) as.integer(min(mde$test_length[ok])) else NA_integer_
}
