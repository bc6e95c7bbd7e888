# The package's vocabulary: one argument name per concept across every
# exported function. A test reads the formals of every export and fails when
# one of the `aliases` appears as an argument name; check_dots() uses the
# aliases to point a user who types an old or foreign name (`n_boot`,
# `level`, `se`) to the package's one name. CONTRIBUTING.md shows this table.

vocabulary <- local({
  rows <- list(
    c("the model", "formula",
      "the first argument of every estimator: outcome ~ treatment + covariates | unit + time",
      "model fml"),
    c("the data", "data",
      "a data frame; second after `formula`, first in design functions",
      "dat panel_data"),
    c("significance level", "alpha",
      "intervals have level 1 - alpha; confint() keeps the generic's `level`",
      "level conf_level conf.level sig_level significance"),
    c("number of resampling draws", "n_draws",
      "bootstrap, permutation, placebo, simulation and calibration draws, and repeated sample splits",
      "n_boot n_boots n_bootstrap n_sim n_sims n_rep n_reps n_assign n_calibration n_perm n_permutations n_placebo reps B R"),
    c("standard-error cluster", "cluster",
      "a column constant within the clusters whose scores are summed for the variance",
      "clusters cluster_var se_cluster cluster_by"),
    c("unit of randomization", "randomize_by",
      "the column of clusters (DMAs) that a geo experiment assigns to arms",
      "assign_by randomization_unit geo clusters_by"),
    c("observation weights", "weights",
      "a column of non-negative weights, constant within units where the method needs it",
      "weight w wts"),
    c("how inference is done", "inference",
      "the variance or test that gives standard errors, intervals and p-values",
      "se se_type vcov_type variance inference_type"),
    c("the estimator", "method",
      "which estimator a function fits",
      "estimator type_estimator"),
    c("a design from rerandomize()", "design",
      "the design object whose acceptance rule inference conditions on",
      "des assignment_design"),
    c("unit id of cross-sectional data", "id",
      "the column naming each row of a one-row-per-cluster table",
      "ids id_col"),
    c("number of treated clusters", "n_treated",
      "how many clusters a design treats (or `prop_treated`)",
      "n_treat n_treatment"),
    c("number of cross-fitting folds", "n_folds",
      "folds of sample splitting",
      "folds k_folds nfolds"),
    c("replicates per parallel chunk", "chunk_size",
      "fixes the random streams of resampling loops",
      "chunk batch_size")
  )
  m <- do.call(rbind, rows)
  data.frame(concept = m[, 1], name = m[, 2], meaning = m[, 3], aliases = m[, 4],
             stringsAsFactors = FALSE)
})

# The package's name for an alias (NA when `x` is no known alias).
vocabulary_name <- function(x) {
  hit <- vapply(strsplit(vocabulary$aliases, " ", fixed = TRUE),
                function(a) x %in% a, logical(1))
  if (any(hit)) vocabulary$name[which(hit)[1]] else NA_character_
}
