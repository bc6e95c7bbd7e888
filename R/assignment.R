#' Which row of the assignment map is this panel in?
#'
#' The package's front door. Before choosing an estimator, ask how units got
#' treated: the assignment mechanism decides which assumption is credible,
#' and the assumption decides the estimator and the diagnostics.
#' `assignment()` inspects the panel (is the treatment binary or continuous,
#' absorbing, adopted at one time or staggered, given to how many units; is
#' a randomized design attached; is a spatial structure supplied) and names
#' the setting, its core assumption, the functions that fit it and the
#' diagnostics to run, each as a call ready to run on your data.
#'
#' @section The rules, in order:
#' 1. A neighbour structure (`adjacency`) is supplied: `"spillover"`.
#' 2. A [rerandomize()] design is attached, or `randomized = TRUE` says the
#'    assignment was drawn at random elsewhere (a spreadsheet, randomizr,
#'    GeoLift): `"randomized"`.
#' 3. A continuous treatment that switches on for every unit at one date
#'    after the first period, at unit-specific intensity: `"common_shock"`.
#'    Any other continuous treatment, including a dose that every unit
#'    receives from the first period on (always-on media spend):
#'    `"continuous"`.
#' 4. A binary treatment that reaches every unit at the same date (no
#'    untreated comparison): `"common_shock"`, which needs an exposure
#'    measure.
#' 5. A binary treatment given to at most `max_single` units, or to at most
#'    10% of them, with a common adoption date: `"single_treated"`.
#' 6. Any other binary treatment: `"staggered"` (one adoption date is the
#'    canonical two-group difference-in-differences).
#'
#' A treatment that switches off is reported in `$facts` and flagged in
#' the notes: the staggered estimators assume absorbing treatment.
#'
#' The panel alone cannot tell a randomized test from a rollout someone
#' chose: a binary treatment switched on at one date for some units looks
#' the same either way. When `randomized` is left `NULL` in that case, the
#' notes say so and name the question that decides (was the assignment
#' drawn at random?) and the argument that answers it.
#'
#' @param formula A panel formula `outcome ~ treatment | unit + time` (the
#'   package's grammar, see [mkt_panel()]); without a treatment, write
#'   `outcome ~ 0 | unit + time` and give the `design`.
#' @param data A long data frame with one row per unit and period.
#' @param design Optional design from [rerandomize()] that assigned the
#'   units.
#' @param adjacency Optional neighbour structure (see [spillover()]) when
#'   treatment may spill over between units.
#' @param max_single Largest number of treated units still treated as "a
#'   few treated units" (the synthetic control row).
#' @param randomized `NULL` (unknown), `TRUE` when the treated units were
#'   drawn at random, by any tool (the randomized row; its analysis is the
#'   cluster-level comparison of the test window, with complete
#'   randomization assumed when no `design` is given), or `FALSE` when they
#'   were not (the notes then do not ask).
#' @param ... Must be empty.
#' @return An object of class `mkt_assignment` with `$setting` (one of
#'   `"randomized"`, `"staggered"`, `"single_treated"`, `"common_shock"`,
#'   `"continuous"`, `"spillover"`), `$assumption` (in words), `$functions`
#'   and `$diagnostics` (data frames of `call` and `purpose`), `$notes`,
#'   `$facts` (what was detected) and `$panel` (the [mkt_panel()]).
#'   `print()` shows the row of the map and `plot()` the treatment pattern.
#' @examples
#' set.seed(1)
#' stores <- expand.grid(store = sprintf("s%02d", 1:30), week = 1:20)
#' launch <- setNames(sample(c(8, 12, 16, NA), 30, replace = TRUE),
#'                    sprintf("s%02d", 1:30))
#' stores$promo <- as.integer(!is.na(launch[as.character(stores$store)]) &
#'                            stores$week >= launch[as.character(stores$store)])
#' stores$sales <- 100 + 5 * stores$promo + rnorm(nrow(stores))
#' a <- assignment(sales ~ promo | store + week, stores)
#' a
#' a$setting
#' @export
assignment <- function(formula, data, design = NULL, adjacency = NULL, max_single = 5,
                       randomized = NULL, ...) {
  check_dots(...)
  data_name <- paste(deparse(substitute(data)), collapse = "")
  max_single <- check_count(max_single, "max_single", min = 1)
  if (!is.null(randomized) && !rlang::is_bool(randomized)) {
    abort_mkt("bad_argument", c(
      "{.arg randomized} must be {.code TRUE}, {.code FALSE} or {.code NULL}.",
      i = "Say {.code randomized = TRUE} when the treated units were drawn at random."
    ))
  }
  if (isFALSE(randomized) && !is.null(design)) {
    abort_mkt("bad_argument", c(
      "{.arg randomized} is {.code FALSE} but a {.arg design} is attached.",
      i = "Drop {.arg design}, or leave {.arg randomized} unset."
    ))
  }
  panel <- mkt_panel(formula, data)
  if (!is.null(design)) check_design(design)
  check_two_cell(design, "assignment")
  # The neighbour structure is read as spillover() will read it, so a
  # malformed one is refused here rather than sending the user to a row of
  # the map whose estimator cannot use it.
  if (!is.null(adjacency)) {
    neighbour_matrix(adjacency, panel$units, data = data, id_col = panel$vars$unit)
  }
  facts <- assignment_facts(panel, design, adjacency)
  facts$randomized <- !is.null(design) || isTRUE(randomized)
  if (facts$randomized && is.null(design) && facts$treatment_type != "binary") {
    abort_mkt("bad_argument", c(
      "{.code randomized = TRUE} needs a binary treatment column in the formula.",
      i = "Write {.code outcome ~ treated | unit + time} with a 0/1 column of the assigned arm."
    ))
  }
  if (facts$treatment_type == "none" && is.null(design)) {
    abort_mkt("bad_formula", c(
      "The formula names no treatment, and no design is attached.",
      i = "Write {.code outcome ~ treatment | unit + time}, or pass the {.fn rerandomize} design."
    ))
  }
  setting <- if (facts$spatial) {
    "spillover"
  } else if (facts$randomized) {
    "randomized"
  } else if (facts$treatment_type == "continuous") {
    # A shock needs a before: dose on in every unit from the first period
    # (always-on media spend) is the continuous row, not a common shock.
    shock <- facts$n_cohorts == 1L && facts$n_never_treated == 0L &&
      facts$n_first_period < facts$n_units
    if (shock) "common_shock" else "continuous"
  } else if (facts$n_never_treated == 0L && facts$n_cohorts == 1L) {
    "common_shock"
  } else if (facts$n_cohorts == 1L &&
             (facts$n_treated <= max_single || facts$n_treated <= 0.1 * facts$n_units)) {
    "single_treated"
  } else {
    "staggered"
  }
  row <- assignment_row(setting, panel, data_name, facts,
                        paste(deparse(substitute(adjacency)), collapse = ""))
  notes <- character()
  if (is.null(randomized) && setting %in% c("staggered", "single_treated") &&
      facts$n_cohorts == 1L && facts$n_never_treated > 0L) {
    notes <- c(notes, sprintf(paste(
      "The panel cannot tell a randomized test from a rollout someone chose: were the",
      "treated units drawn at random (a spreadsheet, randomizr, GeoLift)? If so, call",
      "assignment(..., randomized = TRUE) for the randomized row; if not, %s."),
      if (setting == "staggered") "parallel trends carries the analysis" else
        "the synthetic control's factor structure carries it"))
  }
  if (isFALSE(facts$absorbing)) {
    notes <- c(notes, "Treatment switches off for some units: staggered() assumes absorbing treatment; counterfactual() imputes with reversals.")
  }
  if (facts$n_first_period > 0L && facts$n_first_period == facts$n_units &&
      facts$treatment_type == "continuous") {
    notes <- c(notes, "Every unit has a positive dose from the first period (always-on spend): with no period before treatment, the dose's variation across units and weeks identifies its effect.")
  } else if (facts$n_first_period > 0L) {
    notes <- c(notes, sprintf("%d unit(s) are treated from the first period and have no pre-period.",
                              facts$n_first_period))
  }
  structure(list(
    setting = setting,
    assumption = row$assumption,
    functions = row$functions,
    diagnostics = row$diagnostics,
    when_doubtful = row$when_doubtful,
    notes = notes,
    facts = facts,
    panel = panel
  ), class = "mkt_assignment")
}

assignment_facts <- function(panel, design, adjacency) {
  D <- panel$D
  n_units <- length(panel$units)
  if (is.null(D)) {
    treated_units <- integer()
    cohorts <- character()
  } else {
    treated_units <- which(!is.na(panel$cohort))
    cohorts <- unique(as.character(panel$cohort[treated_units]))
  }
  first <- as.character(panel$times[1])
  list(
    treatment_type = panel$treatment_type,
    absorbing = panel$absorbing,
    n_units = n_units,
    n_periods = length(panel$times),
    n_treated = length(treated_units),
    n_never_treated = n_units - length(treated_units),
    n_cohorts = length(cohorts),
    timing = if (length(cohorts) > 1L) "staggered" else if (length(cohorts) == 1L) "common" else "none",
    n_first_period = sum(as.character(panel$cohort[treated_units]) == first),
    randomized = !is.null(design),
    has_design = !is.null(design),
    spatial = !is.null(adjacency),
    balanced = panel$balanced
  )
}

# The row of the map: its assumption, the functions that fit it and the
# diagnostics to run, as calls written with the user's own names.
assignment_row <- function(setting, panel, data_name, facts, adjacency_name = "adjacency") {
  v <- panel$vars
  treat <- if (is.null(v$treatment)) "treatment" else v$treatment
  f <- sprintf("%s ~ %s | %s + %s", v$outcome, treat, v$unit, v$time)
  q <- function(x) paste0("\"", x, "\"")
  calls <- function(...) {
    x <- list(...)
    data.frame(call = vapply(x, `[[`, "", 1), purpose = vapply(x, `[[`, "", 2),
               stringsAsFactors = FALSE)
  }
  switch(setting,
    randomized = randomized_row(panel, data_name, facts, q),
    staggered = list(
      assumption = "Parallel trends: absent treatment, adopting units would have moved like not-yet- or never-treated units; no anticipation.",
      functions = calls(
        c(sprintf("fit <- staggered(%s, %s)", f, data_name), "Callaway-Sant'Anna group-time ATTs"),
        c("aggregate(fit, type = \"event\")", "event-time and overall ATT"),
        c(sprintf("event_study(%s, %s, method = \"imputation\")", f, data_name),
          "imputation event study (Borusyak, Jaravel and Spiess)")
      ),
      diagnostics = calls(
        c(sprintf("bacon(%s, %s)", f, data_name), "what static TWFE averages (Goodman-Bacon)"),
        c(sprintf("glance(event_study(%s, %s))", f, data_name),
          "joint Wald test of the pre-period (lead) coefficients"),
        c(sprintf("plot_status(%s, %s)", f, data_name), "who is treated when")
      ),
      when_doubtful = "If trends diverge with a common shock, relax parallel trends to a factor structure with counterfactual(method = \"ife\")."
    ),
    single_treated = list(
      assumption = "Factor structure: a weighted average of untreated units that tracks the treated unit(s) before treatment tracks their untreated path afterwards.",
      functions = calls(
        c(sprintf("fit <- synth(%s, %s, inference = \"placebo\")", f, data_name),
          "synthetic control with placebo-in-space inference"),
        c(sprintf("synth(%s, %s, method = \"sdid\")", f, data_name),
          "synthetic difference-in-differences as a robustness check"),
        c(sprintf("counterfactual(%s, %s, method = \"ife\")", f, data_name),
          "interactive fixed effects imputation")
      ),
      diagnostics = calls(
        c("plot(fit, type = \"gap\")", "pre-period fit and post-period gap"),
        c("glance(fit)", "pre- and post-period RMSPE and the placebo p-value"),
        c(sprintf("plot_status(%s, %s)", f, data_name), "who is treated when")
      ),
      when_doubtful = "A poor pre-period fit means no convex combination of donors reproduces the treated unit: widen the donor pool or use the augmented (asc) or interactive fixed effects estimators."
    ),
    common_shock = if (facts$treatment_type == "continuous") list(
      assumption = "Parallel trends across exposure levels, or a factor structure: units with more exposure would otherwise have moved like units with less.",
      functions = calls(
        c(sprintf("exposure_did(%s, %s)", f, data_name),
          "exposure-response difference-in-differences and its event study"),
        c(sprintf("ife(%s, %s)", f, data_name),
          "interactive fixed effects: units load differently on the shared shocks")
      ),
      diagnostics = calls(
        c(sprintf("tidy(exposure_did(%s, %s), \"event_study\")", f, data_name),
          "exposure-related trends before the shock"),
        c(sprintf("plot_status(%s, %s)", f, data_name), "exposure over time")
      ),
      when_doubtful = "If high- and low-exposure units trended apart before the shock, add factors (ife) rather than trusting parallel trends."
    ) else list(
      assumption = "Parallel trends across exposure levels, or a factor structure: units with more exposure would otherwise have moved like units with less.",
      functions = calls(),
      diagnostics = calls(
        c(sprintf("plot_status(%s, %s)", f, data_name), "who is treated when")
      ),
      when_doubtful = sprintf(paste(
        "Every unit is treated at the same date and the treatment records no intensity, so nothing in the panel separates the effect from the common shock.",
        "Add each unit's exposure (GRPs, share of stores reached) as a column and call exposure_did(%s ~ exposure | %s + %s, %s, post = %s)."),
        v$outcome, v$unit, v$time, data_name, time_literal(panel$cohort[!is.na(panel$cohort)][1]))
    ),
    continuous = list(
      assumption = "Conditional unconfoundedness: given unit and time effects (and controls), the dose is as good as random; or a valid instrument moves it.",
      functions = calls(
        c(sprintf("dose_response(%s, %s)", f, data_name), "dose-response with unit and time fixed effects"),
        c(sprintf("dml(%s, %s)", f, data_name), "double machine learning with cross-fitting by unit")
      ),
      diagnostics = calls(
        c(sprintf("dose_response(%s, %s, shape = \"bins\")", f, data_name),
          "is the response linear in the dose?"),
        c(sprintf("plot_status(%s, %s)", f, data_name), "dose over time")
      ),
      when_doubtful = "If dose is chosen in response to expected demand, controls are not enough: find an instrument and use iv_fe(), or randomize the dose."
    ),
    spillover = list(
      assumption = "Interference-aware identification: a unit's outcome depends on its own treatment and on an exposure mapping of its neighbours' treatments, and that mapping is right.",
      functions = calls(
        c(sprintf("spillover(%s, %s, adjacency = %s)", f, data_name, adjacency_name),
          "direct and spillover effects with unit and time fixed effects")
      ),
      diagnostics = calls(
        c(sprintf("plot_status(%s, %s)", f, data_name), "who is treated when")
      ),
      when_doubtful = "If spillovers reach beyond the mapping, enlarge clusters so that interference stays within them."
    )
  )
}

# A randomized experiment: before the test (no treatment in the panel) the
# design-stage checks; after it, the cluster-level analysis of the test
# window, which starts at the first treated period.
randomized_row <- function(panel, data_name, facts, q) {
  v <- panel$vars
  history <- sprintf("%s ~ 0 | %s + %s, %s", v$outcome, v$unit, v$time, data_name)
  design_checks <- list(
    c("balance(design)", "covariate balance of the drawn assignment"),
    c(sprintf("design_power(%s, design = design)", history),
      "power and A/A size from historical windows")
  )
  rows <- function(x) {
    data.frame(call = vapply(x, `[[`, "", 1), purpose = vapply(x, `[[`, "", 2),
               stringsAsFactors = FALSE)
  }
  if (facts$n_treated == 0L) {
    functions <- rows(design_checks)
    diagnostics <- rows(list(c(sprintf("geo_units(%s)", history),
                               "cluster-level pre-period features")))
  } else {
    start <- as.character(panel$times[min(match(as.character(panel$cohort), as.character(panel$times)),
                                          na.rm = TRUE)])
    tt <- panel$times
    post_expr <- if (is.numeric(tt)) sprintf("%s:%s", start, as.character(tt[length(tt)])) else
      sprintf("unique(%s[[%s]][%s[[%s]] >= as.Date(%s)])", data_name, q(v$time), data_name, q(v$time), q(start))
    if (!isTRUE(facts$has_design)) {
      treat <- v$treatment
      functions <- rows(list(
        c(sprintf("units <- geo_units(%s, post = %s)", history, post_expr),
          "pre-period features and test-window totals, one row per randomized cluster"),
        c(sprintf("units$%s <- as.integer(units$%s %%in%% %s$%s[%s$%s == 1])", treat, v$unit,
                  data_name, v$unit, data_name, treat),
          "the assigned arm of each cluster"),
        c(sprintf("experiment_effect(post_total ~ %s, units, covariates = ~ outcome_total)", treat),
          "difference in means and Lin adjustment for the pre-period total (complete randomization assumed: no design given)")
      ))
      diagnostics <- rows(list(
        c(sprintf("experiment_effect(outcome_total ~ %s, units)", treat),
          "placebo: the arms should not differ before the test"),
        c(sprintf("plot_status(%s ~ %s | %s + %s, %s)", v$outcome, treat, v$unit, v$time, data_name),
          "who is treated when")
      ))
      return(list(
        assumption = "Randomization: the treated clusters were drawn at random, so the test-window difference between arms is causal under SUTVA; without the design, inference assumes complete randomization.",
        functions = functions,
        diagnostics = diagnostics,
        when_doubtful = "If the draw was stratified or re-randomized, analyse it with that design (rebuild it with rerandomize() or stratify()); if treatment leaks across cluster borders, use larger clusters or spillover()."
      ))
    }
    functions <- rows(list(
      c(sprintf("units <- geo_units(%s, post = %s)", history, post_expr),
        "cluster-level pre-period features and test-window totals"),
      c(sprintf("units$treated <- design$treated[match(units$%s, design$ids)]", v$unit),
        "the design's assignment, matched by cluster id"),
      c("experiment_effect(post_total ~ treated, units, design = design)",
        "difference in means and Lin regression adjustment, with randomization inference"),
      c("randomization_test(post_total ~ treated, units, design = design)",
        "Fisher test conditional on the acceptance rule, with its interval")
    ))
    diagnostics <- rows(design_checks)
  }
  list(
    assumption = "Randomization (within strata): assignment is independent of potential outcomes, so the post-period difference between arms is causal under SUTVA.",
    functions = functions,
    diagnostics = diagnostics,
    when_doubtful = "If treatment leaks across cluster borders, use larger clusters or model the spillover with spillover()."
  )
}

# A period written as R code: numbers as they are, anything else (dates) as a
# string to convert.
time_literal <- function(x) {
  if (is.numeric(x)) return(format(x))
  if (inherits(x, "Date")) return(sprintf("as.Date(\"%s\")", format(x)))
  sprintf("\"%s\"", as.character(x))
}

assignment_labels <- c(
  randomized = "randomized geo experiment",
  staggered = "staggered adoption",
  single_treated = "single (or few) treated unit(s)",
  common_shock = "common shock, varying exposure",
  continuous = "continuous treatment",
  spillover = "spillovers"
)
