# Every condition the package raises goes through abort_mkt() or warn_mkt(),
# so that each carries the classes c("mktcausal_error_<what>",
# "mktcausal_error") (or the warning pair) and users can catch a family or one
# precise failure. `what` must be a row of condition_registry below: one
# place lists every class the package can raise, with what it means, and a
# test checks every abort_mkt()/warn_mkt() call in the package against it.

abort_mkt <- function(what, message, ..., call = rlang::caller_env(),
                      .envir = parent.frame()) {
  check_registered(what, "error")
  cli::cli_abort(message, ...,
                 class = c(paste0("mktcausal_error_", what), "mktcausal_error"),
                 call = call, .envir = .envir)
}

warn_mkt <- function(what, message, ..., .envir = parent.frame()) {
  check_registered(what, "warning")
  cli::cli_warn(message, ...,
                class = c(paste0("mktcausal_warning_", what), "mktcausal_warning"),
                .envir = .envir)
}

# A class missing from the registry is a bug in the package, not in the
# user's call: say so plainly rather than raise an unlisted class.
check_registered <- function(what, kind) {
  reg <- condition_registry
  if (!any(reg$class == what & reg$kind == kind)) {
    stop(sprintf("Internal error: mktcausal %s class '%s' is not in condition_registry.",
                 kind, what), call. = FALSE)
  }
  invisible(TRUE)
}

# The registry. One row per class; `kind` is "error" or "warning" and the
# full class is paste0("mktcausal_", kind, "_", class).
condition_registry <- local({
  rows <- list(
    # Arguments
    c("error", "bad_argument", "An argument has an invalid value (type, length or range)."),
    c("error", "bad_choice", "A choice argument is not one of its documented options."),
    c("error", "unknown_argument", "A named argument is not an argument of the function."),
    c("error", "bad_formula", "The formula does not follow the package grammar."),
    c("error", "not_available", "The fit has no such quantity (vcov, interval, table or plot)."),
    c("error", "inference_unsupported", "The requested inference is not defined for this fit."),
    c("error", "missing_package", "An optional package needed for this option is not installed."),
    c("error", "too_large", "The request cannot fit in memory or exceeds a count limit."),
    # Data and columns
    c("error", "bad_data", "`data` is not a data frame, or its columns are unusable."),
    c("error", "missing_column", "A column named in an argument is not in `data`."),
    c("error", "bad_column_type", "A column is a list or matrix instead of an atomic vector."),
    c("error", "non_numeric", "A column that must be numeric is not."),
    c("error", "non_finite", "A numeric column has infinite values."),
    c("error", "bad_scale", "A numeric column's values are too large or too small to compute with."),
    c("error", "missing_values", "A column has missing values where none are allowed."),
    c("error", "duplicated_rows", "Several rows share a (unit, time) pair or an id."),
    c("error", "time_not_sortable", "The time column has no natural order."),
    c("error", "varies_within_unit", "A column that must be constant within units varies."),
    c("error", "not_nested", "Units belong to more than one cluster."),
    c("error", "bad_cluster", "The cluster column is unusable (missing on observed cells)."),
    c("error", "bad_weights", "Weights are missing, negative or all zero."),
    c("error", "bad_size", "Cluster sizes are missing or not positive."),
    c("error", "bad_covariate", "A covariate has an unsupported type or missing values."),
    c("error", "bad_predictors", "Synthetic-control predictors are malformed."),
    c("error", "bad_window", "Pre- or post-period windows are malformed."),
    c("error", "unbalanced_panel", "The option needs a balanced panel."),
    # Panel shape and treatment
    c("error", "too_few_units", "The panel has fewer than two units."),
    c("error", "too_few_periods", "The panel has fewer than two periods."),
    c("error", "too_few_pre_periods", "Too few pre-treatment periods for the estimator."),
    c("error", "too_few_clusters", "Too few clusters for the requested inference."),
    c("error", "too_few_controls", "Too few control units for the estimator."),
    c("error", "no_treatment", "The formula names no treatment."),
    c("error", "no_treated", "No unit is ever treated."),
    c("error", "no_never_treated", "No unit is never treated, but the method needs them."),
    c("error", "no_donors", "No donor unit is left for a synthetic control."),
    c("error", "no_post_cells", "No post-treatment cell is left to aggregate."),
    c("error", "non_binary_treatment", "The treatment must be coded 0/1."),
    c("error", "treatment_switches_off", "The treatment is not absorbing."),
    c("error", "single_arm", "All units are in the same arm."),
    c("error", "no_variation", "The outcome, treatment, dose or exposure has no usable variation."),
    c("error", "collinear", "Covariates or design columns are collinear."),
    c("error", "covariates_not_supported", "The method takes no covariates."),
    c("error", "not_continuous_did", "The panel is not a continuous-DiD design."),
    c("error", "instrument_absorbed", "An instrument has no variation left after the fixed effects."),
    # Designs
    c("error", "bad_design", "The design object is not a valid mktcausal design."),
    c("error", "design_modified", "The design object was changed after it was drawn."),
    c("error", "unsupported_design", "The function does not support this kind of design."),
    c("error", "saturated_design", "The design has no randomness left to test with."),
    c("error", "misaligned", "Data rows do not match the design's clusters or assignment."),
    c("error", "treatment_varies_within_cluster", "Treatment differs within a randomized cluster."),
    c("error", "long_panel", "Data hold several rows per randomized cluster where one per cluster is needed."),
    c("error", "bad_strata", "Strata are malformed."),
    c("error", "strata_too_small", "A stratum cannot hold enough clusters per arm."),
    c("error", "no_acceptable_assignment", "No assignment passed the balance rule."),
    c("error", "bad_adjacency", "The adjacency or distance matrix is malformed or mismatched."),
    c("error", "buffer_too_wide", "The buffer leaves too few control clusters."),
    c("error", "bad_pairs", "Pairs do not each hold one treated and one control cluster."),
    c("error", "bad_spend", "Spend is negative, or the incremental spend is zero where an iROAS is asked for."),
    # Fitting
    c("error", "fe_not_converged", "Removing the fixed effects did not converge."),
    c("error", "fit_failed", "The numerical fit failed."),
    c("error", "learner_failed", "A machine-learning nuisance learner failed."),
    c("error", "r_too_large", "Too many factors for the panel's dimensions."),
    c("error", "fit_not_attained", "The least-squares fit does not exist: it tends to a simpler model at the edge of the parameter space."),
    c("error", "honest_input", "Inputs to the sensitivity analysis are unusable."),
    c("error", "honest_target", "The sensitivity target is malformed."),
    # Market selection
    c("error", "too_few_markets", "Fewer candidate markets than the number to treat."),
    c("error", "conflicting_markets", "Markets forced into and out of the treated set conflict."),
    c("error", "test_too_long", "The test is as long as the history, or longer."),
    c("error", "windows_overlap_test", "Backtest windows overlap the test period."),
    # Warnings
    c("warning", "aa_rejection", "The A/A (zero-effect) rejection rate is far from the nominal level."),
    c("warning", "bootstrap_failed", "Some bootstrap replicates failed and were dropped."),
    c("warning", "calibration_prior", "A media-mix calibration prior cannot be formed from the result."),
    c("warning", "buffer_null", "The buffer changes which null hypothesis is tested."),
    c("warning", "dropped_covariate", "A constant or collinear covariate was dropped."),
    c("warning", "dropped_rows", "Rows or clusters were dropped from the analysis."),
    c("warning", "few_donors", "Few donor markets are left for the treated set."),
    c("warning", "few_placebos", "Too few placebo windows for the test to reject at the level asked."),
    c("warning", "fewer_windows", "Fewer historical windows than requested fit the panel."),
    c("warning", "granular_inference", "Few clusters make randomization p-values coarse."),
    c("warning", "honest_open", "A sensitivity interval is unbounded on the search grid."),
    c("warning", "model_based_inference", "The assignment or the pairs were not made by the package's design: intervals rest on a stated model assumption."),
    c("warning", "many_strata", "Many strata relative to the number of clusters."),
    c("warning", "no_pre_data", "No pre-period data for a pre-period feature."),
    c("warning", "not_converged", "An optimiser stopped before its tolerance."),
    c("warning", "poor_fit", "The pre-period fit of a synthetic control is poor."),
    c("warning", "too_few_pre_periods", "Few pre-treatment periods: the fit rests on little data."),
    c("warning", "treated_first_period", "Units treated in the first period were dropped."),
    c("warning", "uncertain_cohort", "Units whose adoption period is unknown (absent rows) were dropped."),
    c("warning", "twfe_dose", "TWFE on doses mixes causal responses with non-intuitive weights."),
    c("warning", "unbalanced_panel", "Units with missing periods were dropped."),
    c("warning", "weak_instruments", "The instruments are weak."),
    c("warning", "windows_overlap_pre", "Power windows overlap the design's pre-period.")
  )
  m <- do.call(rbind, rows)
  data.frame(kind = m[, 1], class = m[, 2], meaning = m[, 3], stringsAsFactors = FALSE)
})
