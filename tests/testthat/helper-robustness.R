# The robustness generator: bad and extreme inputs for every exported
# function (and the methods of the objects they return), run in a child R
# process so that a crash or a hang is recorded rather than fatal.
#
# Each case is a call: an export, a valid base call on small simulated data,
# and one mutation of it (a column role made NA/NaN/Inf, retyped or rescaled;
# a degenerate design; a wrong argument type, range or count past 2^31). A
# call passes when it returns finite results (no NaN, no infinite estimate or
# standard error, no all-NA estimates, p-values in [0, 1]; its fit printed,
# summarised, tidied, glanced and plotted without an unclassed error), or
# signals a classed `mktcausal_error` or `mktcausal_warning`. A clearly
# invalid argument (a string for a count, a negative count, `alpha = 2`, an
# unknown argument) must be refused: accepting it silently fails.
#
# The case list is rebuilt from this file alone, in the parent and in the
# child alike, and every case has a stable id and its own seed, so
# `rb_run_ids(<id>)` reproduces one call. The test samples a seeded subset;
# tools/robustness-sweep.R runs them all and writes a report.
#
# Only base R, stats, utils, ggplot2 and the package are used in the child;
# callr runs it.

# --- small simulated data ----------------------------------------------------

rb_with_seed <- function(seed, code) {
  old <- if (exists(".Random.seed", envir = globalenv(), inherits = FALSE))
    get(".Random.seed", envir = globalenv()) else NULL
  on.exit(if (is.null(old)) rm(".Random.seed", envir = globalenv()) else
    assign(".Random.seed", old, envir = globalenv()))
  set.seed(seed)
  code
}

# A stable 31-bit seed from a string, so that a case's seed depends on its id
# only (not on its position in the list).
rb_hash <- function(x) {
  v <- utf8ToInt(x)
  h <- 7
  for (ch in v) h <- (h * 31 + ch) %% 2147483647
  as.integer(h)
}

rb_data_makers <- list(
  # Staggered adoption: 24 units x 8 periods, cohorts at 4 and 6, 8 never
  # treated; covariates, unit weights, clusters of two units, a dose.
  stag = function() {
    N <- 24; Tn <- 8
    d <- expand.grid(unit = sprintf("u%02d", seq_len(N)), time = seq_len(Tn),
                     stringsAsFactors = FALSE)
    i <- match(d$unit, sprintf("u%02d", seq_len(N)))
    cohort <- c(rep(4, 8), rep(6, 8), rep(NA, 8))[i]
    d$d <- as.integer(!is.na(cohort) & d$time >= cohort)
    a <- stats::rnorm(N)[i]
    d$x1 <- stats::rnorm(N)[i] + stats::rnorm(nrow(d), sd = 0.1)
    d$x2 <- stats::rnorm(nrow(d))
    d$xu <- stats::rnorm(N)[i]
    d$y <- 10 + a + 0.5 * d$time + d$d + 0.3 * d$x1 + stats::rnorm(nrow(d), sd = 0.5)
    d$w <- stats::runif(N, 1, 2)[i]
    d$cl <- sprintf("c%02d", (i + 1) %/% 2)
    d$dose <- d$d * stats::runif(N, 0.5, 2)[i]
    d
  },
  # One treated unit (s01) from period 10 of 14, 11 donors.
  single = function() {
    N <- 12; Tn <- 14
    d <- expand.grid(unit = sprintf("s%02d", seq_len(N)), time = seq_len(Tn),
                     stringsAsFactors = FALSE)
    i <- match(d$unit, sprintf("s%02d", seq_len(N)))
    f <- sin(d$time / 3)
    lam <- c(1, stats::runif(N - 1, 0.5, 1.5))[i]
    d$d <- as.integer(i == 1 & d$time >= 10)
    d$x1 <- stats::rnorm(N)[i] + 0.1 * d$time
    d$y <- 20 + 2 * lam * f + 0.2 * d$time + 2 * d$d + stats::rnorm(nrow(d), sd = 0.2)
    d
  },
  # Factor structure, 20 units x 12 periods; x1 loads on the factor;
  # units 1-4 treated from period 9.
  factor = function() {
    N <- 20; Tn <- 12
    d <- expand.grid(unit = sprintf("f%02d", seq_len(N)), time = seq_len(Tn),
                     stringsAsFactors = FALSE)
    i <- match(d$unit, sprintf("f%02d", seq_len(N)))
    ft <- sin(d$time / 2)
    lam <- stats::rnorm(N)[i]
    d$x1 <- stats::rnorm(nrow(d)) + lam * ft
    d$d <- as.integer(i <= 4 & d$time >= 9)
    d$y <- 1 + 1.5 * d$x1 + 2 * lam * ft + d$d + stats::rnorm(nrow(d), sd = 0.3)
    d$cl <- sprintf("c%02d", (i + 1) %/% 2)
    d
  },
  # Continuous treatment: 30 units x 8 periods; a dose moved by an
  # instrument z, a control x1, an exposure grp switched on from period 5.
  dose = function() {
    N <- 30; Tn <- 8
    d <- expand.grid(unit = sprintf("g%02d", seq_len(N)), time = seq_len(Tn),
                     stringsAsFactors = FALSE)
    i <- match(d$unit, sprintf("g%02d", seq_len(N)))
    d$z <- stats::rnorm(nrow(d))
    u <- stats::rnorm(nrow(d))
    d$x1 <- stats::rnorm(nrow(d))
    d$dose <- 0.8 * d$z + 0.5 * d$x1 + u + stats::rnorm(nrow(d))
    d$grp <- stats::runif(N, 0, 3)[i]
    d$y <- i / 10 + d$time / 4 + 0.5 * d$dose + 0.4 * d$grp * (d$time >= 5) + 0.3 * d$x1 +
      u + stats::rnorm(nrow(d))
    d$w <- stats::runif(N, 1, 2)[i]
    d$cl <- sprintf("c%02d", (i + 2) %/% 3)
    d
  },
  # A geo panel: 48 zones in 16 DMAs, 12 weeks, with population.
  geo = function() {
    Z <- 48; Tn <- 12
    d <- expand.grid(zone = sprintf("z%02d", seq_len(Z)), week = seq_len(Tn),
                     stringsAsFactors = FALSE)
    i <- match(d$zone, sprintf("z%02d", seq_len(Z)))
    d$dma <- sprintf("D%02d", (i + 2) %/% 3)
    d$pop <- round(stats::runif(Z, 1e4, 1e5))[i]
    d$region <- c("north", "south")[1 + (i > Z / 2)]
    d$y <- d$pop / 1000 * (1 + 0.01 * d$week) * stats::rlnorm(nrow(d), 0, 0.05)
    d
  },
  # The geo panel as a test: the DMAs the geo design treats are the treated
  # arm, with spend and a 5% lift in weeks 9-12.
  geotest = function() {
    d <- rb_data("geo")
    des <- rb_object("geo_design")
    d$treated <- as.integer(d$dma %in% des$ids[des$treated == 1])
    d$spend <- ifelse(d$treated == 1 & d$week >= 9, 0.1 * d$y, 0)
    d$y <- d$y + 0.5 * d$spend
    d
  },
  # A market history for synthetic_design(): 10 markets, 64 weeks.
  sdhist = function() {
    N <- 10; Tn <- 64
    d <- expand.grid(market = sprintf("m%02d", seq_len(N)), week = seq_len(Tn),
                     stringsAsFactors = FALSE)
    i <- match(d$market, sprintf("m%02d", seq_len(N)))
    d$y <- 50 + 5 * stats::rnorm(N)[i] + 3 * stats::rnorm(N)[i] * sin(d$week / 5) +
      stats::rnorm(nrow(d))
    d
  },
  # One row per cluster: 40 geos with covariates, a region, a size.
  cs = function() {
    n <- 40
    d <- data.frame(id = sprintf("g%02d", seq_len(n)), x1 = stats::rnorm(n),
                    x2 = stats::rexp(n), region = rep(c("a", "b"), each = n / 2),
                    pop = round(stats::runif(n, 1e4, 1e5)), stringsAsFactors = FALSE)
    d
  },
  # experiment_diagnostics() input: assigned, received and an outcome.
  diag = function() {
    d <- data.frame(id = sprintf("i%03d", 1:100), assigned = rep(0:1, each = 50))
    d$received <- ifelse(d$assigned == 1, stats::rbinom(100, 1, 0.8), 0)
    d$sales <- 100 + 5 * d$received + stats::rnorm(100)
    d
  },
  # Units on the unit square for spillover(): distances and a treatment.
  spill = function() {
    n <- 40
    d <- data.frame(id = sprintf("p%02d", seq_len(n)), lon = stats::runif(n),
                    lat = stats::runif(n), stringsAsFactors = FALSE)
    d$pre <- stats::rnorm(n, 100, 10)
    d$treated <- sample(rep(0:1, each = n / 2))
    dist <- as.matrix(stats::dist(d[, c("lon", "lat")]))
    near <- (dist <= 0.25) * 1
    diag(near) <- 0
    d$sales <- d$pre + 5 * d$treated + 3 * drop(near %*% d$treated > 0) + stats::rnorm(n)
    d$group <- sprintf("G%d", (seq_len(n) - 1) %/% 4)
    d
  }
)

rb_data_cache <- new.env(parent = emptyenv())

rb_data <- function(key) {
  if (is.null(rb_data_cache[[key]])) {
    rb_data_cache[[key]] <- rb_with_seed(rb_hash(key), rb_data_makers[[key]]())
  }
  rb_data_cache[[key]]
}

rb_spill_dist <- function(d = rb_data("spill")) {
  dist <- as.matrix(stats::dist(d[, c("lon", "lat")]))
  dimnames(dist) <- list(d$id, d$id)
  dist
}

# --- lazy objects: fits and designs built in the child, once -----------------

# An argument that is an object the package makes (a design, a fit) is
# written rb_lazy("<name>") and built when the case runs.
rb_lazy <- function(name) structure(list(name = name), class = "rb_lazy")

rb_object_makers <- list(
  design = function() {
    cs <- rb_data("cs")
    rerandomize(cs, ~ x1 + x2, n_treated = 20, accept = 0.2, id = "id", n_draws = 2000)
  },
  design_strata = function() {
    cs <- rb_data("cs")
    rerandomize(cs, ~ x1 + x2, n_treated = 20, accept = 0.2, id = "id", strata = "region",
                n_draws = 2000)
  },
  strata = function() stratify(rb_data("cs"), by = "region", size = "pop", bins = 2),
  power = function() {
    des <- rb_object("geo_design")
    design_power(y ~ 0 | zone + week, rb_data("geo"), design = des, randomize_by = "dma",
                 effect = c(0, 0.05), test_length = 2, n_windows = 2, pre = 1:8,
                 n_draws = 10)
  },
  sd_design = function() {
    d <- rb_data("sdhist")
    synthetic_design(y ~ 0 | market + week, d[d$week <= 60, ], n_treated = 2, test_length = 2)
  },
  geo_design = function() {
    u <- geo_units(y ~ 0 | zone + week, rb_data("geo"), randomize_by = "dma", size = "pop",
                   pre = 1:8)
    rerandomize(u, ~ outcome_mean, n_treated = 8, accept = 0.2, n_draws = 500)
  },
  diagnostics = function() {
    experiment_diagnostics(rb_data("diag"), "assigned", received = "received",
                           outcome = "sales", expected_prop = 0.5)
  },
  panel = function() mkt_panel(y ~ d + x1 | unit + time, rb_data("stag"), cluster = "cl",
                               weights = "w"),
  assignment = function() assignment(y ~ d | unit + time, rb_data("stag")),
  fit_staggered = function() staggered(y ~ d | unit + time, rb_data("stag"), n_draws = 49),
  fit_event_study = function() event_study(y ~ d | unit + time, rb_data("stag"), method = "sa",
                                           n_draws = 49),
  fit_bacon = function() bacon(y ~ d | unit + time, rb_data("stag")),
  fit_honest = function() honest_sensitivity(rb_object("fit_event_study"), type = "smoothness",
                                             n_draws = 100, grid_points = 50),
  fit_synth = function() synth(y ~ d | unit + time, rb_data("single")),
  fit_synth_placebo = function() synth(y ~ d | unit + time, rb_data("single"),
                                       inference = "placebo"),
  fit_ife = function() ife(y ~ x1 | unit + time, rb_data("factor"), r = 1),
  fit_counterfactual = function() counterfactual(y ~ d | unit + time, rb_data("factor"), r = 1),
  fit_exposure_did = function() exposure_did(y ~ grp | unit + time, rb_data("dose"), post = 5),
  fit_dose_response = function() dose_response(y ~ dose | unit + time, rb_data("dose")),
  fit_dml = function() dml(y ~ dose + x1 | unit + time, rb_data("dose"), n_folds = 2,
                           n_draws = 1),
  fit_iv_fe = function() iv_fe(y ~ 1 | unit + time | dose ~ z, rb_data("dose")),
  fit_effect = function() experiment_effect(y ~ treated, rb_object("cs_outcomes"),
                                            design = rb_object("design"), n_draws = 199),
  fit_randomization_test = function() {
    randomization_test(y ~ treated, rb_object("cs_outcomes"), design = rb_object("design"),
                       n_draws = 199)
  },
  fit_rem = function() rem_asymptotic(y ~ treated, rb_object("cs_outcomes"),
                                      design = rb_object("design")),
  fit_spillover = function() {
    spillover(sales ~ treated, rb_data("spill"), adjacency = rb_spill_dist(), radius = 0.15,
              exposure = "share", id = "id", n_draws = 199)
  },
  fit_staggered_agg = function() stats::aggregate(rb_object("fit_staggered"), "event"),
  spill_dist = function() rb_spill_dist(),
  spill_dist_na = function() { m <- rb_spill_dist(); m[2, 3] <- m[3, 2] <- NA; m },
  spill_dist_neg = function() -rb_spill_dist(),
  # The cross-section with the design's assignment and an outcome.
  cs_outcomes = function() {
    d <- rb_data("cs")
    d$treated <- rb_object("design")$treated
    d$y <- 100 + 5 * d$x1 + 3 * d$treated + stats::rnorm(nrow(d))
    d$spend <- 50 * d$treated
    d
  },
  cs_outcomes_strata = function() {
    d <- rb_data("cs")
    d$treated <- rb_object("design_strata")$treated
    d$y <- 100 + 5 * d$x1 + 3 * d$treated + stats::rnorm(nrow(d))
    d
  },
  # An event study with one pre-period, for honest_sensitivity().
  fit_event_study_short = function() {
    d <- rb_data("stag")
    d <- d[d$time >= 3, ]
    event_study(y ~ d | unit + time, d, method = "sa", n_draws = 49)
  }
)

rb_object_cache <- new.env(parent = emptyenv())

rb_object <- function(name) {
  if (is.null(rb_object_cache[[name]])) {
    rb_object_cache[[name]] <- rb_with_seed(rb_hash(name), suppressWarnings(
      rb_object_makers[[name]]()))
  }
  rb_object_cache[[name]]
}


# A data argument: the simulated table `source` (a data key, or an object
# name for tables made with the package) after `mutate`.
rb_frame <- function(source, mutate = NULL) {
  structure(list(source = source, mutate = mutate), class = "rb_frame")
}

rb_frame_value <- function(x) {
  d <- if (x$source %in% names(rb_data_makers)) rb_data(x$source) else rb_object(x$source)
  if (!is.null(x$mutate)) d <- x$mutate(d)
  d
}

# The table a mutation is tried on to see whether it applies, without the
# package: tables made with the package are stood in for by their columns.
rb_probe_frame <- function(x) {
  if (x$source %in% names(rb_data_makers)) return(rb_data(x$source))
  d <- rb_data("cs")
  d$treated <- rep(0:1, length.out = nrow(d))
  d$y <- seq_len(nrow(d)) + 0.5
  d$spend <- 50 * d$treated
  d
}

rb_resolve <- function(x) {
  if (inherits(x, "rb_lazy")) return(rb_object(x$name))
  if (inherits(x, "rb_frame")) return(rb_frame_value(x))
  if (is.list(x) && !is.data.frame(x) && is.null(attr(x, "class"))) {
    x[] <- lapply(x, rb_resolve)
  }
  x
}

# --- the base calls ------------------------------------------------------------

# One valid call per export (several where an export has distinct paths):
# `fn`, its `args`, the `roles` of the data columns (role = column), the
# `family` of degenerate designs that apply to its data, and the `kinds` of
# its other arguments (which bad values to try). A kind ending in "?" may be
# NULL.
rb_bases <- function() {
  stag <- rb_frame("stag")
  panel_roles <- function(...) c(list(outcome = "y", unit = "unit", time = "time"), list(...))
  list(
    mkt_panel = list(
      fn = "mkt_panel",
      args = list(formula = y ~ d + x1 | unit + time, data = stag, cluster = "cl",
                  weights = "w", extra = "x2"),
      roles = panel_roles(treatment = "d", covariate = "x1", cluster = "cl", weights = "w",
                          extra = "x2"),
      family = "stag",
      kinds = list(formula = "panel_formula", cluster = "column?", weights = "column?",
                   extra = "columns?")),
    assignment = list(
      fn = "assignment", args = list(formula = y ~ d | unit + time, data = stag),
      roles = panel_roles(treatment = "d"), family = "stag",
      kinds = list(formula = "panel_formula", design = "object?", adjacency = "matrix?",
                   max_single = "count")),
    plot_status = list(
      fn = "plot_status", args = list(x = y ~ d | unit + time, data = stag),
      roles = panel_roles(treatment = "d"), family = "stag",
      kinds = list(x = "panel_formula")),
    bacon = list(
      fn = "bacon", args = list(formula = y ~ d | unit + time, data = stag),
      roles = panel_roles(treatment = "d"), family = "stag",
      kinds = list(formula = "panel_formula")),
    staggered = list(
      fn = "staggered",
      args = list(formula = y ~ d + xu | unit + time, data = stag, cluster = "cl",
                  weights = "w", n_draws = 49),
      roles = panel_roles(treatment = "d", covariate = "xu", cluster = "cl", weights = "w"),
      family = "stag",
      kinds = list(formula = "panel_formula", method = "choice", control = "choice",
                   anticipation = "count0", base_period = "choice", cluster = "column?",
                   weights = "column?", n_draws = "count0", alpha = "alpha")),
    event_study = list(
      fn = "event_study",
      args = list(formula = y ~ d | unit + time, data = stag, method = "sa", cluster = "cl",
                  n_draws = 49),
      roles = panel_roles(treatment = "d", cluster = "cl"), family = "stag",
      kinds = list(formula = "panel_formula", method = "choice", min_e = "number",
                   max_e = "number", control = "choice", anticipation = "count0",
                   base_period = "choice", cs_method = "choice", cluster = "column?",
                   weights = "column?", n_draws = "count0", alpha = "alpha")),
    event_study_imputation = list(
      fn = "event_study",
      args = list(formula = y ~ d | unit + time, data = stag, method = "imputation",
                  weights = "w", n_draws = 49),
      roles = panel_roles(treatment = "d", weights = "w"), family = "stag",
      kinds = list(min_e = "number", max_e = "number")),
    honest_sensitivity = list(
      fn = "honest_sensitivity",
      args = list(object = rb_lazy("fit_event_study"), type = "smoothness", n_draws = 100,
                  grid_points = 50),
      kinds = list(object = "object", type = "choice", M = "numvec?", target = "target",
                   inference = "choice", alpha = "alpha", n_draws = "count",
                   grid_points = "count", grid_lb = "number?", grid_ub = "number?",
                   refine = "flag", breakdown = "flag")),
    honest_sensitivity_numeric = list(
      fn = "honest_sensitivity",
      args = list(object = c(0.01, -0.02, 0.5, 0.6), sigma = diag(0.01, 4), n_pre = 2,
                  type = "relative_magnitudes", M = c(0, 1), n_draws = 100,
                  grid_points = 50),
      kinds = list(object = "numvec", sigma = "matrix", n_pre = "count", M = "numvec?")),
    synth = list(
      fn = "synth", args = list(formula = y ~ d | unit + time, data = rb_frame("single")),
      roles = panel_roles(treatment = "d"), family = "single",
      kinds = list(formula = "panel_formula", method = "choice", predictors = "object?",
                   fit_periods = "numvec?", pool = "prob0", poor_fit = "nonneg",
                   inference = "choice", n_draws = "count", drop_poor_placebos = "nonneg",
                   alpha = "alpha")),
    synth_asc = list(
      fn = "synth", args = list(formula = y ~ d | unit + time, data = rb_frame("single"),
                                method = "asc"),
      roles = panel_roles(treatment = "d"), family = "single",
      kinds = list()),
    synth_sdid = list(
      fn = "synth", args = list(formula = y ~ d | unit + time, data = rb_frame("single"),
                                method = "sdid", inference = "placebo", n_draws = 20),
      roles = panel_roles(treatment = "d"), family = "single",
      kinds = list(n_draws = "count")),
    mmm_calibration = list(
      fn = "mmm_calibration",
      args = list(fit = rb_lazy("fit_effect"), format = "robyn", channel = "tv",
                  start = "2026-01-05", end = "2026-02-01", spend = 1000),
      kinds = list(fit = "object", format = "choice", channel = "string", spend = "number?",
                   metric = "string?", baseline_spend = "nonneg?", test_length = "positive?",
                   calibration_scope = "choice")),
    synth_loo = list(
      fn = "synth_loo", args = list(fit = rb_lazy("fit_synth")),
      kinds = list(fit = "object", min_weight = "nonneg")),
    synth_placebo_time = list(
      fn = "synth_placebo_time", args = list(fit = rb_lazy("fit_synth"), shift = 3),
      kinds = list(fit = "object", shift = "count", fit_periods = "numvec?")),
    ife = list(
      fn = "ife", args = list(formula = y ~ x1 | unit + time, data = rb_frame("factor"), r = 1),
      roles = panel_roles(treatment = "x1"), family = "factor",
      kinds = list(formula = "panel_formula", r = "count0?", force = "choice", r_max = "count",
                   criterion = "choice", bias_correction = "choice", bias_lags = "count",
                   tol = "positive", max_iter = "count", inference = "choice",
                   n_draws = "count", alpha = "alpha")),
    ife_cluster = list(
      fn = "ife", args = list(formula = y ~ x1 | unit + time, data = rb_frame("factor"), r = 1,
                              inference = "bootstrap", n_draws = 20),
      roles = panel_roles(treatment = "x1"), family = "factor", kinds = list()),
    counterfactual = list(
      fn = "counterfactual",
      args = list(formula = y ~ d + x1 | unit + time, data = rb_frame("factor"), r = 1),
      roles = panel_roles(treatment = "d", covariate = "x1"), family = "factor",
      kinds = list(formula = "panel_formula", method = "choice", r = "count0?",
                   force = "choice", em = "flag", r_max = "count", lambda = "numvec?",
                   n_lambda = "count", criterion = "choice", cv_block = "count",
                   n_folds = "count", placebo = "count0", tol = "positive?",
                   max_iter = "count", inference = "choice")),
    counterfactual_cv = list(
      fn = "counterfactual",
      args = list(formula = y ~ d | unit + time, data = rb_frame("factor"), r_max = 2,
                  inference = "bootstrap", n_draws = 20),
      roles = panel_roles(treatment = "d"), family = "factor", kinds = list(n_draws = "count")),
    exposure_did = list(
      fn = "exposure_did",
      args = list(formula = y ~ grp | unit + time, data = rb_frame("dose"), post = 5,
                  cluster = "cl", weights = "w"),
      roles = panel_roles(treatment = "grp", cluster = "cl", weights = "w"), family = "dose",
      kinds = list(formula = "panel_formula", post = "number?", factors = "count0?",
                   event_study = "flag", base = "number?", inference = "choice",
                   cluster = "column?", weights = "column?", n_draws = "count0",
                   alpha = "alpha")),
    dose_response = list(
      fn = "dose_response",
      args = list(formula = y ~ dose + x1 | unit + time, data = rb_frame("dose"),
                  cluster = "cl", weights = "w"),
      roles = panel_roles(treatment = "dose", covariate = "x1", cluster = "cl", weights = "w"),
      family = "dose",
      kinds = list(formula = "panel_formula", method = "choice", shape = "choice",
                   n_bins = "count", spline_df = "count", inference = "choice",
                   cluster = "column?", weights = "column?", alpha = "alpha")),
    dml = list(
      fn = "dml",
      args = list(formula = y ~ dose + x1 | unit + time, data = rb_frame("dose"), n_folds = 2,
                  n_draws = 1, cluster = "cl"),
      roles = panel_roles(treatment = "dose", covariate = "x1", cluster = "cl"),
      family = "dose",
      kinds = list(formula = "panel_formula", learner = "learner", basis = "flag",
                   n_folds = "count", fold_by = "column?", inference = "choice",
                   cluster = "column?", n_draws = "count", alpha = "alpha")),
    iv_fe = list(
      fn = "iv_fe",
      args = list(formula = y ~ x1 | unit + time | dose ~ z, data = rb_frame("dose"),
                  cluster = "cl", weights = "w"),
      roles = c(panel_roles(treatment = "dose", covariate = "x1", cluster = "cl",
                            weights = "w"), list(instrument = "z")),
      family = "dose",
      kinds = list(formula = "iv_formula", weak_threshold = "nonneg", inference = "choice",
                   cluster = "column?", weights = "column?", alpha = "alpha")),
    geo_units = list(
      fn = "geo_units",
      args = list(formula = y ~ 0 | zone + week, data = rb_frame("geo"), randomize_by = "dma",
                  size = "pop", covariates = ~ region, pre = 1:8, post = 9:12),
      roles = list(outcome = "y", unit = "zone", time = "week", randomize_by = "dma",
                   size = "pop", covariate = "region"),
      family = "geo",
      kinds = list(formula = "panel_formula", randomize_by = "column?", size = "column?",
                   covariates = "formula1?", pre = "numvec?", post = "numvec?")),
    select_markets = list(
      fn = "select_markets",
      args = list(formula = y ~ 0 | zone + week, data = rb_frame("geo"), randomize_by = "dma",
                  n_treated = 2, test_length = 1, n_windows = 2, n_candidates = 200),
      roles = list(outcome = "y", unit = "zone", time = "week", randomize_by = "dma"),
      family = "geo",
      kinds = list(formula = "panel_formula", n_treated = "counts", test_length = "count",
                   method = "choice", effect = "numvec", n_windows = "count",
                   alpha = "alpha", search = "choice", n_candidates = "count",
                   inference = "choice", randomize_by = "column?", target_power = "prob",
                   chunk_size = "count")),
    market_backtest = list(
      fn = "market_backtest",
      args = list(formula = y ~ 0 | zone + week, data = rb_frame("geo"), randomize_by = "dma",
                  treated = c("D01", "D02"), test_length = 1, n_windows = 2),
      roles = list(outcome = "y", unit = "zone", time = "week", randomize_by = "dma"),
      family = "geo",
      kinds = list(formula = "panel_formula", test_length = "count", method = "choice",
                   effect = "numvec", n_windows = "count", alpha = "alpha",
                   inference = "choice", randomize_by = "column?", target_power = "prob")),
    compare_clusterings = list(
      fn = "compare_clusterings",
      args = list(formula = y ~ 0 | zone + week, data = rb_frame("geo"),
                  randomize_by = c(DMA = "dma", zone = "zone"), size = "pop", post = 9:12),
      roles = list(outcome = "y", unit = "zone", time = "week", randomize_by = "dma",
                   size = "pop"),
      family = "geo",
      kinds = list(randomize_by = "columns", size = "column?", pre = "numvec?",
                   post = "numvec", effect = "positive", power = "prob",
                   prop_treated = "prob", alpha = "alpha")),
    geo_effect = list(
      fn = "geo_effect",
      args = list(formula = y ~ treated | zone + week, data = rb_frame("geotest"),
                  design = rb_lazy("geo_design"), randomize_by = "dma", post = 9:12,
                  spend = "spend"),
      roles = list(outcome = "y", treatment = "treated", unit = "zone", time = "week",
                   randomize_by = "dma", spend = "spend"),
      family = "geo",
      kinds = list(formula = "panel_formula", method = "choice", design = "object?",
                   randomize_by = "column?", pre = "numvec?", post = "numvec?",
                   spend = "column?", alpha = "alpha")),
    synthetic_design = list(
      fn = "synthetic_design",
      args = list(formula = y ~ 0 | market + week, data = rb_frame("sdhist"), n_treated = 2,
                  test_length = 2),
      roles = list(outcome = "y", unit = "market", time = "week"),
      family = "geo",
      kinds = list(n_treated = "count", test_length = "count", n_blank = "count?",
                   search = "choice", max_sets = "count", n_starts = "count",
                   alpha = "alpha")),
    synthetic_design_effect = list(
      fn = "synthetic_design_effect",
      args = list(formula = y ~ 0 | market + week, data = rb_frame("sdhist"),
                  design = rb_lazy("sd_design")),
      roles = list(outcome = "y", unit = "market", time = "week"),
      family = "geo",
      kinds = list(design = "object", post = "numvec?", alpha = "alpha")),
    compare_designs = list(
      fn = "compare_designs",
      args = list(formula = y ~ 0 | market + week, data = rb_frame("sdhist"), n_treated = 2,
                  test_length = 2, effect = c(0, 0.1), n_windows = 2, n_draws = 5,
                  n_candidates = 20),
      roles = list(outcome = "y", unit = "market", time = "week"),
      family = "geo",
      kinds = list(n_treated = "count", test_length = "count", effect = "numvec",
                   n_windows = "count", alpha = "alpha", target_power = "prob",
                   n_draws = "count", n_candidates = "count", cost_per_market = "nonneg",
                   cost_per_unit = "nonneg")),
    design_power = list(
      fn = "design_power",
      args = list(formula = y ~ 0 | zone + week, data = rb_frame("geo"),
                  design = rb_lazy("geo_design"), randomize_by = "dma",
                  effect = c(0, 0.05), test_length = 2, n_windows = 2, pre = 1:8,
                  n_draws = 10),
      roles = list(outcome = "y", unit = "zone", time = "week", randomize_by = "dma"),
      family = "geo",
      kinds = list(design = "object", randomize_by = "column?", size = "column?",
                   effect = "numvec", test_length = "counts", n_windows = "count",
                   pre = "numvec?", method = "choice", effect_type = "choice",
                   inference = "choice", n_draws = "count", reference_draws = "count",
                   chunk_size = "count", target_power = "prob", alpha = "alpha")),
    rerandomize = list(
      fn = "rerandomize",
      args = list(data = rb_frame("cs"), covariates = ~ x1 + x2, n_treated = 20,
                  accept = 0.2, id = "id", n_draws = 2000),
      roles = list(covariate = "x1", id = "id"), family = "cs",
      kinds = list(covariates = "formula1", n_treated = "count?", prop_treated = "prob?",
                   strata = "column?", accept = "prob", threshold = "choice",
                   criterion = "choice", id = "column?", max_candidates = "count",
                   n_draws = "count", min_per_arm = "count", buffer = "matrix?",
                   buffer_radius = "nonneg?")),
    rerandomize_strata = list(
      fn = "rerandomize",
      args = list(data = rb_frame("cs"), covariates = ~ x1 + x2, n_treated = 20,
                  accept = 0.2, id = "id", strata = "region", n_draws = 2000),
      roles = list(covariate = "x1", strata = "region"), family = "cs", kinds = list()),
    stratify = list(
      fn = "stratify", args = list(data = rb_frame("cs"), by = "region", size = "pop", bins = 2),
      roles = list(by = "region", size = "pop"), family = "cs",
      kinds = list(by = "columns?", size = "column?", bins = "count", method = "choice",
                   covariates = "formula1?", block_size = "count", min_per_arm = "count",
                   prop_treated = "prob", id = "column?")),
    stratify_matched = list(
      fn = "stratify", args = list(data = rb_frame("cs"), method = "matched",
                                   covariates = ~ x1 + x2),
      roles = list(covariate = "x1"), family = "cs", kinds = list(block_size = "count")),
    balance = list(
      fn = "balance", args = list(x = rb_lazy("design")), kinds = list(x = "object")),
    experiment_effect = list(
      fn = "experiment_effect",
      args = list(formula = y ~ treated, data = rb_frame("cs_outcomes"),
                  design = rb_lazy("design"), spend = "spend", n_draws = 199),
      roles = list(outcome = "y", treatment = "treated", spend = "spend"), family = "cs",
      kinds = list(formula = "cs_formula", design = "object?", covariates = "formula1?",
                   estimand = "choice", spend = "column?", size = "column?",
                   cluster = "column?", n_draws = "count", alpha = "alpha")),
    experiment_effect_nodesign = list(
      fn = "experiment_effect",
      args = list(formula = y ~ treated, data = rb_frame("cs_outcomes"), covariates = ~ x1,
                  estimand = "mean", size = "pop"),
      roles = list(outcome = "y", treatment = "treated", covariate = "x1", size = "pop"),
      family = "cs", kinds = list()),
    experiment_effect_strata = list(
      fn = "experiment_effect",
      args = list(formula = y ~ treated, data = rb_frame("cs_outcomes_strata"),
                  design = rb_lazy("design_strata"), n_draws = 199),
      roles = list(outcome = "y"), family = NULL, kinds = list()),
    randomization_test = list(
      fn = "randomization_test",
      args = list(formula = y ~ treated, data = rb_frame("cs_outcomes"),
                  design = rb_lazy("design"), n_draws = 199),
      roles = list(outcome = "y", treatment = "treated"), family = "cs",
      kinds = list(formula = "cs_formula", design = "object", statistic = "choice",
                   alternative = "choice", null = "number", exact_max = "count",
                   n_draws = "count", chunk_size = "count", alpha = "alpha")),
    randomization_test_lin = list(
      fn = "randomization_test",
      args = list(formula = y ~ treated, data = rb_frame("cs_outcomes_strata"),
                  design = rb_lazy("design_strata"), statistic = "lin_t", n_draws = 199),
      roles = list(outcome = "y"), family = NULL, kinds = list()),
    rem_asymptotic = list(
      fn = "rem_asymptotic",
      args = list(formula = y ~ treated, data = rb_frame("cs_outcomes"),
                  design = rb_lazy("design")),
      roles = list(outcome = "y", treatment = "treated"), family = "cs",
      kinds = list(formula = "cs_formula", design = "object", alpha = "alpha")),
    experiment_diagnostics = list(
      fn = "experiment_diagnostics",
      args = list(data = rb_frame("diag"), assigned = "assigned", received = "received",
                  outcome = "sales", expected_prop = 0.5),
      roles = list(assigned = "assigned", received = "received", outcome = "sales"),
      family = "diag",
      kinds = list(assigned = "column", received = "column?", outcome = "column?",
                   expected_prop = "prob?", design = "object?", time = "column?",
                   window = "numvec?", alpha = "prob")),
    spillover = list(
      fn = "spillover",
      args = list(formula = sales ~ treated, data = rb_frame("spill"),
                  adjacency = rb_lazy("spill_dist"), covariates = ~ pre, radius = 0.15,
                  exposure = "share", id = "id", n_draws = 100),
      roles = list(outcome = "sales", treatment = "treated", covariate = "pre", id = "id"),
      family = "spill",
      kinds = list(formula = "cs_formula", adjacency = "matrix", covariates = "formula1?",
                   exposure = "choice", radius = "nonneg?", id = "column?",
                   design = "object?", cluster = "column?", n_draws = "count",
                   alpha = "alpha")),
    spillover_group = list(
      fn = "spillover",
      args = list(formula = sales ~ treated, data = rb_frame("spill"), adjacency = "group",
                  exposure = "share", id = "id"),
      roles = list(outcome = "sales", treatment = "treated", adjacency = "group"),
      family = "spill", kinds = list()),
    power_closed_form = list(
      fn = "power_closed_form",
      args = list(n_clusters = 50, sd = 100, power = 0.8, r2 = 0.9, df = 47),
      kinds = list(n_clusters = "numvec", sd = "positive", effect = "numvec?",
                   power = "prob?", alpha = "alpha", prop_treated = "prob", r2 = "prob0",
                   df = "positive?", rem = "rem?")),
    power_closed_form_effect = list(
      fn = "power_closed_form",
      args = list(n_clusters = 50, sd = 100, effect = c(10, 20), r2 = 0.9,
                  rem = list(k = 4, accept = 0.01)),
      kinds = list(effect = "numvec", rem = "rem")),
    design_effect = list(
      fn = "design_effect", args = list(sizes = rep(20, 50), icc = 0.05),
      kinds = list(sizes = "numvec", icc = "prob0")),
    mkt_threads = list(
      fn = "mkt_threads", args = list(n = 1), kinds = list(n = "count?")),
    aggregate = list(
      fn = "aggregate", args = list(x = rb_lazy("fit_staggered"), type = "event"),
      kinds = list(type = "choice", min_e = "number", max_e = "number",
                   balance_e = "count0?")),
    weights = list(
      fn = "weights", args = list(object = rb_lazy("fit_synth"), type = "unit"),
      kinds = list(type = "choice")),
    resample_chunks = list(
      fn = "resample_chunks",
      args = list(n_draws = 100, fun = function(i) stats::rnorm(1), chunk_size = 25),
      kinds = list(n_draws = "count", fun = "fn", chunk_size = "count", label = "string",
                   each = "choice", globals = "flag", packages = "columns?"))
  )
}

# --- mutations ---------------------------------------------------------------------

rb_bad <- function(label, value, expect = "any") {
  list(label = label, value = value, expect = expect)
}

# Bad values of an argument of a given kind. "error" marks a value that is
# invalid whatever the function: it must be refused with a classed error.
rb_kind_values <- function(kind) {
  E <- "error"
  nullable <- endsWith(kind, "?")
  kind <- sub("?", "", kind, fixed = TRUE)
  count <- list(rb_bad("-1", -1, E), rb_bad("2.5", 2.5, E), rb_bad("\"10\"", "10", E),
                rb_bad("NA", NA, E), rb_bad("NaN", NaN, E), rb_bad("Inf", Inf, E),
                rb_bad("2^31", 2^31), rb_bad("1e12", 1e12), rb_bad("2^53+2", 2^53 + 2),
                rb_bad("c(2, 3)", c(2, 3), E), rb_bad("list(2)", list(2), E))
  number <- list(rb_bad("NA", NA_real_, E), rb_bad("NaN", NaN, E), rb_bad("\"a\"", "a", E),
                 rb_bad("Inf", Inf), rb_bad("-Inf", -Inf), rb_bad("1e300", 1e300),
                 rb_bad("1e-300", 1e-300), rb_bad("-1", -1), rb_bad("0", 0),
                 rb_bad("c(1, 2)", c(1, 2), E))
  vals <- switch(kind,
    count = c(count, list(rb_bad("0", 0))),
    count0 = c(count, list(rb_bad("0", 0))),
    # A vector of counts (design_power's test lengths): c(2, 3) is valid.
    counts = c(count[-10], list(rb_bad("c(2, 3)", c(2, 3)), rb_bad("c(2, -1)", c(2, -1), E),
                                rb_bad("0", 0))),
    alpha = list(rb_bad("0", 0, E), rb_bad("0.5", 0.5, E), rb_bad("1", 1, E),
                 rb_bad("-0.05", -0.05, E), rb_bad("1e-300", 1e-300), rb_bad("NA", NA, E),
                 rb_bad("\"0.05\"", "0.05", E), rb_bad("c(0.05, 0.1)", c(0.05, 0.1), E),
                 rb_bad("NaN", NaN, E)),
    prob = list(rb_bad("0", 0), rb_bad("1", 1), rb_bad("1.5", 1.5, E), rb_bad("-0.1", -0.1, E),
                rb_bad("NA", NA, E), rb_bad("\"0.5\"", "0.5", E), rb_bad("1e-300", 1e-300),
                rb_bad("NaN", NaN, E)),
    prob0 = list(rb_bad("0", 0), rb_bad("1", 1), rb_bad("1.5", 1.5, E), rb_bad("-0.1", -0.1, E),
                 rb_bad("NA", NA, E), rb_bad("\"a\"", "a", E), rb_bad("NaN", NaN, E)),
    choice = list(rb_bad("\"foo\"", "foo", E), rb_bad("NA", NA_character_, E),
                  rb_bad("1", 1, E), rb_bad("character(0)", character(0), E),
                  rb_bad("c(\"x\", \"y\")", c("x", "y"), E)),
    column = list(rb_bad("\"nope\"", "nope", E), rb_bad("NA", NA_character_, E),
                  rb_bad("1", 1), rb_bad("c(\"a\", \"b\")", c("a", "b"), E),
                  rb_bad("\"\"", "", E), rb_bad("TRUE", TRUE, E)),
    columns = list(rb_bad("\"nope\"", "nope", E), rb_bad("NA", NA_character_, E),
                   rb_bad("1", 1), rb_bad("character(0)", character(0)),
                   rb_bad("\"\"", "", E)),
    flag = list(rb_bad("NA", NA, E), rb_bad("\"yes\"", "yes", E),
                rb_bad("c(TRUE, FALSE)", c(TRUE, FALSE), E), rb_bad("1", 1)),
    number = number,
    nonneg = c(number[-8], list(rb_bad("-1", -1, E))),
    positive = c(number[-(8:9)], list(rb_bad("-1", -1, E), rb_bad("0", 0, E))),
    numvec = list(rb_bad("NA", NA_real_), rb_bad("\"a\"", "a", E), rb_bad("Inf", Inf),
                  rb_bad("numeric(0)", numeric(0)), rb_bad("-1", -1), rb_bad("1e300", 1e300),
                  rb_bad("c(1, NaN)", c(1, NaN)), rb_bad("list(1)", list(1), E),
                  rb_bad("2^31", 2^31)),
    formula1 = list(rb_bad("~ nope", ~ nope, E), rb_bad("\"x1\"", "x1"), rb_bad("1", 1, E),
                    rb_bad("y ~ x1", y ~ x1), rb_bad("~ 1", ~ 1), rb_bad("~ .", ~ .)),
    object = list(rb_bad("\"a\"", "a", E), rb_bad("list()", list(), E), rb_bad("1", 1, E),
                  rb_bad("data.frame(a = 1)", data.frame(a = 1), E),
                  rb_bad("<a bacon fit>", rb_lazy("fit_bacon"), E)),
    matrix = list(rb_bad("\"a\"", "a", E), rb_bad("matrix(1, 2, 2)", matrix(1, 2, 2), E),
                  rb_bad("NA", NA, E), rb_bad("diag(3)", diag(3), E),
                  rb_bad("<matrix with NA>", rb_lazy("spill_dist_na")),
                  rb_bad("<negative matrix>", rb_lazy("spill_dist_neg"))),
    string = list(rb_bad("NA", NA_character_), rb_bad("1", 1), rb_bad("c(\"a\", \"b\")", c("a", "b"))),
    fn = list(rb_bad("\"rnorm\"", "rnorm"), rb_bad("1", 1, E),
              # The user's function fails: its own error must reach the user
              # unchanged (its class and message are theirs, not ours).
              rb_bad("function() stop(\"x\")", function(i) stop("boom"), "user_error")),
    learner = list(rb_bad("\"foo\"", "foo", E), rb_bad("NA", NA_character_, E),
                   rb_bad("1", 1, E), rb_bad("\"forest\"", "forest")),
    target = list(rb_bad("\"foo\"", "foo", E), rb_bad("NA", NA_character_, E),
                  rb_bad("c(1, 1)", c(1, 1)), rb_bad("1e300", 1e300), rb_bad("\"average\"", "average")),
    rem = list(rb_bad("list()", list(), E), rb_bad("list(k = -1, accept = 0.1)",
                                                   list(k = -1, accept = 0.1), E),
               rb_bad("list(k = 2, accept = 2)", list(k = 2, accept = 2), E),
               rb_bad("list(k = 2^31, accept = 0.1)", list(k = 2^31, accept = 0.1)),
               rb_bad("\"a\"", "a", E)),
    panel_formula = list(
      rb_bad("y ~ d", y ~ d, E), rb_bad("y ~ d | unit", y ~ d | unit, E),
      rb_bad("~ d | unit + time", ~ d | unit + time, E),
      rb_bad("nope ~ d | unit + time", nope ~ d | unit + time, E),
      rb_bad("\"y ~ d | unit + time\"", "y ~ d | unit + time"),
      rb_bad("log(y - 1e6) ~ <rhs>", "log_outcome"),
      rb_bad("y ~ <rhs> | time + unit", "swap_index"),
      rb_bad("y ~ <treatment> + <treatment> | ...", "repeat_treatment", E)),
    iv_formula = list(
      rb_bad("y ~ x1 | unit + time", y ~ x1 | unit + time, E),
      rb_bad("y ~ x1 | unit + time | dose ~ 1", y ~ x1 | unit + time | dose ~ 1, E),
      rb_bad("y ~ x1 | unit + time | dose ~ dose", y ~ x1 | unit + time | dose ~ dose),
      rb_bad("y ~ x1 | unit + time | dose ~ x1", y ~ x1 | unit + time | dose ~ x1),
      rb_bad("y ~ x1 | unit + time | dose ~ nope", y ~ x1 | unit + time | dose ~ nope, E)),
    cs_formula = list(rb_bad("~ treated", ~ treated, E), rb_bad("y ~ nope", y ~ nope, E),
                      rb_bad("y ~ 1", y ~ 1, E), rb_bad("\"y ~ treated\"", "y ~ treated"),
                      rb_bad("log(y - 1e6) ~ treated", "log_outcome")),
    stop("unknown kind ", kind)
  )
  if (!nullable && !kind %in% c("flag", "choice")) {
    vals <- c(vals, list(rb_bad("NULL", NULL, if (kind %in% c("object", "panel_formula",
      "cs_formula", "iv_formula", "matrix", "fn", "numvec", "formula1", "prob", "alpha")) E else "any")))
  }
  vals
}

# Formula mutations that depend on the base formula.
rb_formula_variant <- function(f, what) {
  txt <- paste(deparse(f, width.cutoff = 500L), collapse = " ")
  lhs <- trimws(sub("~.*$", "", txt))
  rhs <- trimws(sub("^[^~]*~", "", txt))
  treat <- trimws(sub("[|+].*$", "", rhs))
  out <- switch(what,
    log_outcome = sprintf("log(%s - 1e6) ~ %s", lhs, rhs),
    swap_index = sub("\\| *([A-Za-z_.0-9]+) *\\+ *([A-Za-z_.0-9]+)", "| \\2 + \\1", txt),
    repeat_treatment = sub(paste0("~ *", treat), paste0("~ ", treat, " + ", treat), txt),
    txt)
  stats::as.formula(out, env = globalenv())
}

# --- column and design mutations -------------------------------------------------

# Mutations of one column: each a function of the column and a cell index.
rb_column_mutations <- list(
  na1 = function(x, i) { x[i] <- NA; x },
  nan1 = function(x, i) if (is.numeric(x)) { x[i] <- NaN; x },
  inf1 = function(x, i) if (is.numeric(x)) { x[i] <- Inf; x },
  ninf1 = function(x, i) if (is.numeric(x)) { x[i] <- -Inf; x },
  all_na = function(x, i) x[rep(NA_integer_, length(x))],
  character = function(x, i) if (!is.character(x)) as.character(x),
  factor = function(x, i) factor(x),
  logical = function(x, i) if (is.numeric(x)) x > stats::median(x, na.rm = TRUE) else x == x[1],
  date = function(x, i) {
    if (is.numeric(x)) as.Date(round(x), origin = "2020-01-01") else
      as.Date("2020-01-01") + match(x, sort(unique(x)))
  },
  posixct = function(x, i) {
    if (is.numeric(x) && all(x == round(x), na.rm = TRUE)) {
      as.POSIXct("2020-01-01", tz = "UTC") + 86400 * x
    }
  },
  list = function(x, i) I(as.list(x)),
  constant = function(x, i) rep(x[1], length(x)),
  zero = function(x, i) if (is.numeric(x)) 0 * x,
  negative = function(x, i) if (is.numeric(x)) -abs(x) - 1,
  scale_1e300 = function(x, i) if (is.numeric(x)) x * 1e300,
  scale_1e150 = function(x, i) if (is.numeric(x)) x * 1e150,
  `scale_1e-300` = function(x, i) if (is.numeric(x)) x * 1e-300,
  shift_1e15 = function(x, i) if (is.numeric(x)) x + 1e15,
  past_2e31 = function(x, i) if (is.numeric(x)) x + 2^31
)

# Degenerate designs: functions of the data and the base's roles.
rb_design_mutations <- function(family) {
  panel <- list(
    zero_rows = function(d, r) d[0, , drop = FALSE],
    one_unit = function(d, r) d[d[[r$unit]] == d[[r$unit]][1], , drop = FALSE],
    two_units = function(d, r) {
      u <- sort(unique(d[[r$unit]]))
      d[d[[r$unit]] %in% u[c(1, length(u))], , drop = FALSE]
    },
    one_period = function(d, r) d[d[[r$time]] == max(d[[r$time]]), , drop = FALSE],
    two_periods = function(d, r) {
      tt <- sort(unique(d[[r$time]]))
      first <- if (!is.null(r$treatment) && any(d[[r$treatment]] != 0))
        min(d[[r$time]][d[[r$treatment]] != 0]) else tt[2]
      k <- max(2, match(first, tt))
      d[d[[r$time]] %in% tt[c(k - 1, k)], , drop = FALSE]
    },
    none_treated = function(d, r) if (!is.null(r$treatment)) { d[[r$treatment]] <- 0 * d[[r$treatment]]; d },
    all_treated = function(d, r) if (!is.null(r$treatment)) { d[[r$treatment]] <- 1 + 0 * d[[r$treatment]]; d },
    all_adopt = function(d, r) if (!is.null(r$treatment) && all(d[[r$treatment]] %in% 0:1)) {
      first <- min(d[[r$time]][d[[r$treatment]] == 1])
      d[[r$treatment]] <- as.integer(d[[r$time]] >= first)
      d
    },
    one_treated = function(d, r) if (!is.null(r$treatment)) {
      tu <- d[[r$unit]][d[[r$treatment]] != 0][1]
      d[[r$treatment]][d[[r$unit]] != tu] <- 0
      d
    },
    constant_outcome = function(d, r) { d[[r$outcome]] <- 1; d },
    outcome_1e300 = function(d, r) { d[[r$outcome]] <- d[[r$outcome]] * 1e300; d },
    `outcome_1e-300` = function(d, r) { d[[r$outcome]] <- d[[r$outcome]] * 1e-300; d },
    unbalanced = function(d, r) d[-rb_rows(nrow(d), 0.15, "unbalanced"), , drop = FALSE],
    missing_adoption = function(d, r) if (!is.null(r$treatment)) {
      on <- d[[r$treatment]] != 0
      first <- stats::ave(ifelse(on, d[[r$time]], Inf), d[[r$unit]], FUN = min)
      drop <- on & d[[r$time]] == first & seq_len(nrow(d)) %% 2 == 0
      d[!drop, , drop = FALSE]
    },
    duplicated_row = function(d, r) d[c(seq_len(nrow(d)), 1L), , drop = FALSE],
    shuffled = function(d, r) d[rb_rows(nrow(d), 1, "shuffled"), , drop = FALSE]
  )
  cs <- list(
    zero_rows = function(d, r) d[0, , drop = FALSE],
    one_row = function(d, r) d[1, , drop = FALSE],
    two_rows = function(d, r) d[1:2, , drop = FALSE],
    three_rows = function(d, r) d[1:3, , drop = FALSE],
    all_treated = function(d, r) if (!is.null(r$treatment)) { d[[r$treatment]] <- 1; d },
    none_treated = function(d, r) if (!is.null(r$treatment)) { d[[r$treatment]] <- 0; d },
    constant_outcome = function(d, r) if (!is.null(r$outcome)) { d[[r$outcome]] <- 1; d },
    outcome_1e300 = function(d, r) if (!is.null(r$outcome)) { d[[r$outcome]] <- d[[r$outcome]] * 1e300; d },
    constant_covariate = function(d, r) if (!is.null(r$covariate)) { d[[r$covariate]] <- 1; d },
    collinear_covariates = function(d, r) if (all(c("x1", "x2") %in% names(d))) { d$x2 <- 2 * d$x1; d },
    duplicated_row = function(d, r) d[c(seq_len(nrow(d)), 1L), , drop = FALSE],
    shuffled = function(d, r) d[rb_rows(nrow(d), 1, "shuffled"), , drop = FALSE]
  )
  switch(family %||% "none",
    stag = , single = , factor = , dose = panel,
    geo = panel[c("zero_rows", "one_unit", "one_period", "two_periods", "constant_outcome",
                  "outcome_1e300", "outcome_1e-300", "unbalanced", "duplicated_row")],
    cs = , diag = , spill = cs,
    list())
}

`%||%` <- function(a, b) if (is.null(a)) b else a

# `share` of the rows 1..n, chosen by a seed fixed by `what`.
rb_rows <- function(n, share, what) {
  rb_with_seed(rb_hash(what), sample.int(n, max(1L, round(share * n))))
}

# --- the cases ----------------------------------------------------------------------

rb_case <- function(base, mutation, fn, args, expect = "any") {
  list(id = paste(base, mutation, sep = "|"), base = base, mutation = mutation, fn = fn,
       args = args, expect = expect)
}

# Objects whose methods are walked and given bad arguments.
rb_method_objects <- c("fit_staggered", "fit_staggered_agg", "fit_event_study", "fit_bacon",
                       "fit_honest", "fit_synth", "fit_synth_placebo", "fit_ife",
                       "fit_counterfactual", "fit_exposure_did", "fit_dose_response",
                       "fit_dml", "fit_iv_fe", "fit_effect", "fit_randomization_test",
                       "fit_rem", "fit_spillover", "design", "strata", "power",
                       "diagnostics", "panel", "assignment")

rb_method_cases <- function() {
  E <- "error"
  calls <- list(
    list("tidy(x, \"foo\")", "tidy", list(what = "foo"), E),
    list("tidy(x, NA)", "tidy", list(what = NA_character_), E),
    list("tidy(x, 1)", "tidy", list(what = 1), E),
    list("tidy(x, conf.level = 2)", "tidy", list(conf.level = 2), E),
    list("tidy(x, conf.level = NA)", "tidy", list(conf.level = NA), E),
    list("tidy(x, conf.level = 0.5)", "tidy", list(conf.level = 0.5)),
    list("tidy(x, foo = 1)", "tidy", list(foo = 1), E),
    list("glance(x, foo = 1)", "glance", list(foo = 1), E),
    list("coef(x, foo = 1)", "coef", list(foo = 1), E),
    list("vcov(x, foo = 1)", "vcov", list(foo = 1), E),
    list("nobs(x, foo = 1)", "nobs", list(foo = 1), E),
    list("summary(x, foo = 1)", "summary", list(foo = 1), E),
    list("confint(x, level = 2)", "confint", list(level = 2), E),
    list("confint(x, level = NA)", "confint", list(level = NA), E),
    list("confint(x, level = 0.5)", "confint", list(level = 0.5)),
    list("confint(x, parm = \"zz\")", "confint", list(parm = "zz"), E),
    list("confint(x, parm = 999)", "confint", list(parm = 999), E),
    list("confint(x, parm = NA)", "confint", list(parm = NA), E),
    list("confint(x, foo = 1)", "confint", list(foo = 1), E),
    list("print(x, digits = -1)", "print", list(digits = -1), E),
    list("print(x, digits = \"a\")", "print", list(digits = "a"), E),
    list("print(x, max_rows = 0)", "print", list(max_rows = 0)),
    list("print(x, foo = 1)", "print", list(foo = 1), E),
    list("autoplot(x, type = \"foo\")", "autoplot", list(type = "foo"), E),
    list("autoplot(x, foo = 1)", "autoplot", list(foo = 1), E),
    list("plot(x, foo = 1)", "plot", list(foo = 1), E)
  )
  # Objects that are not fits get the generics they have methods for.
  classes <- c(design = "mkt_design", strata = "mkt_strata", power = "mkt_power",
               diagnostics = "mkt_diagnostics", panel = "mkt_panel",
               assignment = "mkt_assignment")
  ns <- asNamespace("mktcausal")
  out <- list()
  for (obj in rb_method_objects) {
    for (cl in calls) {
      if (obj %in% names(classes) &&
          !exists(paste0(cl[[2]], ".", classes[[obj]]), envir = ns, inherits = FALSE)) {
        next
      }
      out[[length(out) + 1L]] <- rb_case(paste0("methods:", obj), cl[[1]], cl[[2]],
                                         c(list(rb_lazy(obj)), cl[[3]]),
                                         if (length(cl) > 3L) cl[[4]] else "any")
    }
  }
  out
}

rb_all_formals_given <- function(fn, args) {
  fun <- rb_fn(fn)
  # A generic's method decides: not known before the object is built.
  if (any(grepl("UseMethod", deparse(body(fun)), fixed = TRUE))) return(FALSE)
  f <- formals(fun)
  before_dots <- names(f)[seq_len(match("...", names(f), nomatch = length(f) + 1L) - 1L)]
  all(before_dots %in% names(args))
}

rb_cases <- function() {
  bases <- rb_bases()
  out <- list()
  add <- function(case) out[[length(out) + 1L]] <<- case
  seen_fn <- character()
  for (b in names(bases)) {
    base <- bases[[b]]
    add(rb_case(b, "base", base$fn, base$args))
    data_arg <- if ("data" %in% names(base$args)) "data" else NULL
    src <- if (!is.null(data_arg)) base$args[[data_arg]]
    # Every role of every column.
    for (role in names(base$roles)) {
      col <- base$roles[[role]]
      for (m in names(rb_column_mutations)) {
        mut <- local({
          col <- col; f <- rb_column_mutations[[m]]; key <- paste(b, role, m)
          function(d) {
            x <- f(d[[col]], 1L + rb_hash(key) %% nrow(d))
            if (is.null(x)) return(NULL)
            d[[col]] <- x
            d
          }
        })
        # A mutation that does not apply to the column's type is skipped.
        probe <- tryCatch(mut(rb_probe_frame(src)), error = function(e) NULL)
        if (is.null(probe)) next
        args <- base$args
        args[[data_arg]] <- rb_frame(src$source, mutate = mut)
        add(rb_case(b, sprintf("%s %s=%s", role, col, m), base$fn, args))
      }
    }
    # Degenerate designs.
    for (m in names(dm <- rb_design_mutations(base$family))) {
      mut <- local({
        f <- dm[[m]]; roles <- base$roles
        function(d) f(d, roles)
      })
      probe <- tryCatch(mut(rb_probe_frame(src)), error = function(e) NULL)
      if (is.null(probe)) next
      args <- base$args
      args[[data_arg]] <- rb_frame(src$source, mutate = mut)
      add(rb_case(b, paste0("design:", m), base$fn, args))
    }
    # Bad arguments.
    for (a in names(base$kinds)) {
      for (v in rb_kind_values(base$kinds[[a]])) {
        args <- base$args
        value <- v$value
        if (is.character(value) && length(value) == 1L &&
            value %in% c("log_outcome", "swap_index", "repeat_treatment")) {
          value <- rb_formula_variant(base$args[[a]], value)
        }
        if (is.null(value)) args[a] <- list(NULL) else args[[a]] <- value
        add(rb_case(b, sprintf("%s = %s", a, v$label), base$fn, args, v$expect))
      }
    }
    # Once per export: an unknown argument, an alias, an unnamed extra
    # argument, and data that is not a data frame.
    if (!base$fn %in% seen_fn) {
      seen_fn <- c(seen_fn, base$fn)
      add(rb_case(b, "foo = 1", base$fn, c(base$args, list(foo = 1)), "error"))
      add(rb_case(b, "n_boot = 10", base$fn, c(base$args, list(n_boot = 10)), "error"))
      # An unnamed value is a mistake only when every named argument is
      # already given; otherwise it fills the first free one, as R matches.
      if (rb_all_formals_given(base$fn, base$args)) {
        add(rb_case(b, "<unnamed extra argument>", base$fn, c(base$args, list(1)), "error"))
      }
      if (!is.null(data_arg)) {
        for (v in list(list("\"a\"", "a"), list("list(a = 1)", list(a = 1)),
                       list("matrix(1, 3, 3)", matrix(1, 3, 3)), list("NULL", NULL))) {
          args <- base$args
          if (is.null(v[[2]])) args[data_arg] <- list(NULL) else args[[data_arg]] <- v[[2]]
          add(rb_case(b, sprintf("%s = %s", data_arg, v[[1]]), base$fn, args, "error"))
        }
      }
    }
  }
  out <- c(out, rb_method_cases())
  names(out) <- vapply(out, `[[`, "", "id")
  out
}

# --- running a case (in the child) ---------------------------------------------------

rb_fn <- function(name) {
  if (is.function(name)) return(name)
  if (name %in% getNamespaceExports("mktcausal")) return(getExportedValue("mktcausal", name))
  switch(name, coef = stats::coef, vcov = stats::vcov, nobs = stats::nobs,
         confint = stats::confint, aggregate = stats::aggregate, weights = stats::weights,
         print = base::print, summary = base::summary, plot = base::plot,
         get(name, mode = "function"))
}

# Runs `code`, muffling warnings and messages, and returns the value or
# the error with every warning seen.
rb_capture <- function(code) {
  warnings <- list()
  where <- NULL
  out <- tryCatch(withCallingHandlers(list(value = code),
    warning = function(w) {
      warnings[[length(warnings) + 1L]] <<- w
      invokeRestart("muffleWarning")
    },
    message = function(m) invokeRestart("muffleMessage"),
    error = function(e) where <<- tryCatch(rb_where(sys.calls()), error = function(e) NA_character_)),
    error = function(e) list(error = e))
  out$warnings <- warnings
  out$where <- where
  out
}

# The innermost functions of the package on the call stack when an error
# was raised: where an unclassed error came from.
rb_where <- function(calls) {
  ns <- asNamespace("mktcausal")
  fns <- vapply(calls, function(cl) {
    f <- cl[[1]]
    if (is.call(f) && identical(f[[1]], as.name(":::"))) f <- f[[3]]
    if (is.call(f) && identical(f[[1]], as.name("::"))) f <- f[[3]]
    if (is.name(f)) as.character(f) else ""
  }, "")
  fns <- fns[nzchar(fns)]
  own <- fns[vapply(fns, function(f) exists(f, envir = ns, inherits = FALSE), logical(1))]
  own <- own[!own %in% c("rb_capture", "abort_mkt", "warn_mkt")]
  if (!length(own)) return(NA_character_)
  paste(utils::tail(unique(own), 3), collapse = " > ")
}

rb_is_classed <- function(cnd, kind = "error") inherits(cnd, paste0("mktcausal_", kind))

rb_first_line <- function(x, n = 240L) {
  x <- gsub("\\s+", " ", paste(x, collapse = " "))
  if (nchar(x) > n) paste0(substr(x, 1L, n - 3L), "...") else x
}

# What is wrong with a returned value (character(0) when nothing): NaN
# anywhere in the estimates, infinite estimates or standard errors, every
# estimate missing, p-values outside [0, 1].
rb_value_problems <- function(x) {
  probs <- character()
  check_table <- function(df, where) {
    if (!is.data.frame(df)) return()
    for (col in names(df)) {
      v <- df[[col]]
      if (is.numeric(v) && any(is.nan(v))) probs <<- c(probs, sprintf("NaN in %s$%s", where, col))
    }
  }
  if (inherits(x, "mkt_fit")) {
    est <- x$estimates
    check_table(est, "estimates")
    for (col in intersect(c("estimate", "std.error"), names(est))) {
      if (any(is.infinite(est[[col]]))) probs <- c(probs, sprintf("infinite %s", col))
    }
    if (nrow(est) && all(is.na(est$estimate))) probs <- c(probs, "every estimate is NA")
    p <- est$p.value[!is.na(est$p.value)]
    if (any(p < 0 | p > 1)) probs <- c(probs, "p-value outside [0, 1]")
    if (!is.null(x$vcov) && any(is.nan(x$vcov))) probs <- c(probs, "NaN in vcov")
    for (t in names(x$tables)) check_table(x$tables[[t]], paste0("tables$", t))
  } else if (is.data.frame(x)) {
    check_table(x, "value")
  } else if (is.numeric(x) && any(is.nan(x))) {
    probs <- c(probs, "NaN in value")
  }
  probs
}

# Every method of a returned object: print, summary, tidy of each table,
# glance, coef, vcov, confint, nobs and each plot (built). A classed error
# is an answer; anything else that stops is a problem.
rb_walk <- function(x, plots = TRUE) {
  steps <- list(print = function() utils::capture.output(print(x)))
  if (inherits(x, c("mkt_fit", "mkt_panel"))) {
    steps$summary <- function() utils::capture.output(print(summary(x)))
  }
  has <- function(generic) !is.null(utils::getS3method(generic, class(x)[1], optional = TRUE)) ||
    any(vapply(class(x), function(cl) !is.null(utils::getS3method(generic, cl, optional = TRUE)),
               logical(1)))
  if (has("tidy")) {
    whats <- if (inherits(x, "mkt_fit")) c("estimates", names(x$tables)) else NA
    for (w in whats) {
      steps[[paste0("tidy ", w)]] <- local({
        w <- w
        function() if (is.na(w)) tidy(x) else tidy(x, w)
      })
    }
  }
  if (has("glance")) steps$glance <- function() glance(x)
  if (inherits(x, "mkt_fit")) {
    steps$coef <- function() stats::coef(x)
    steps$vcov <- function() stats::vcov(x)
    steps$confint <- function() stats::confint(x)
    steps$`confint(level = 0.8)` <- function() stats::confint(x, level = 0.8)
    steps$nobs <- function() stats::nobs(x)
  }
  if (plots && (has("autoplot") || inherits(x, "ggplot"))) {
    types <- NA
    for (cl in class(x)) {
      m <- utils::getS3method("autoplot", cl, optional = TRUE)
      if (!is.null(m)) {
        ty <- formals(m)$type
        if (!is.null(ty)) types <- eval(ty)
        break
      }
    }
    for (ty in types) {
      steps[[paste0("autoplot ", ty)]] <- local({
        ty <- ty
        function() {
          p <- if (inherits(x, "ggplot")) x else if (is.na(ty)) autoplot(x) else autoplot(x, type = ty)
          grDevices::pdf(NULL)
          on.exit(grDevices::dev.off())
          ggplot2::ggplot_build(p)
          invisible()
        }
      })
    }
  }
  for (s in names(steps)) {
    r <- rb_capture(steps[[s]]())
    if (!is.null(r$error) && !rb_is_classed(r$error)) {
      return(sprintf("%s: unclassed error: %s [in %s]", s, rb_first_line(conditionMessage(r$error)),
                     r$where %||% "?"))
    }
    if (is.null(r$error) && grepl("^tidy|^glance", s)) {
      p <- rb_value_problems(r$value)
      if (length(p)) return(sprintf("%s: %s", s, paste(p, collapse = "; ")))
    }
  }
  character()
}

# One case: the call, then its verdict. `status` is "pass" or "fail";
# `outcome` says what happened.
rb_run_case <- function(case, plots = TRUE) {
  t0 <- proc.time()[["elapsed"]]
  # A case may set the thread option (mkt_threads(n)): the next starts clean.
  old_threads <- getOption("mktcausal.threads")
  on.exit(options(mktcausal.threads = old_threads), add = TRUE)
  # Plots (a ggplot printed, base graphics) draw on a null device, not into
  # Rplots.pdf in the working directory.
  grDevices::pdf(NULL)
  device <- grDevices::dev.cur()
  on.exit(if (device %in% grDevices::dev.list()) grDevices::dev.off(device), add = TRUE)
  where <- NA_character_
  verdict <- function(status, outcome, cnd = NULL, detail = NULL) {
    list(id = case$id, status = status, outcome = outcome, where = where,
         method = rb_method_name(case$fn, args),
         class = if (!is.null(cnd)) paste(class(cnd)[1:min(2L, length(class(cnd)))],
                                          collapse = "/") else NA_character_,
         message = if (!is.null(detail)) rb_first_line(detail) else
           if (!is.null(cnd)) rb_first_line(conditionMessage(cnd)) else NA_character_,
         seconds = proc.time()[["elapsed"]] - t0)
  }
  args <- NULL
  setup <- rb_capture(rb_resolve(case$args))
  if (!is.null(setup$error)) {
    return(verdict("fail", "setup failed", setup$error))
  }
  args <- setup$value
  fn <- rb_fn(case$fn)
  set.seed(rb_hash(case$id))
  sink_file <- tempfile()
  zz <- file(sink_file, open = "wt")
  sink(zz)
  r <- tryCatch(rb_capture(do.call(fn, args)), finally = { sink(); close(zz) })
  classed_warning <- Find(function(w) rb_is_classed(w, "warning"), r$warnings)
  if (!is.null(r$error)) {
    where <- r$where %||% NA_character_
    if (rb_is_classed(r$error)) return(verdict("pass", "classed error", r$error))
    if (identical(case$expect, "user_error") && identical(conditionMessage(r$error), "boom")) {
      return(verdict("pass", "the user's own error, passed through", r$error))
    }
    if (!is.null(classed_warning)) return(verdict("pass", "classed warning, then unclassed error",
                                                  classed_warning))
    return(verdict("fail", "unclassed error", r$error))
  }
  if (!is.null(classed_warning)) return(verdict("pass", "classed warning", classed_warning))
  if (identical(case$expect, "error")) {
    return(verdict("fail", "accepted invalid argument", detail = sprintf(
      "returned %s without an error", class(r$value)[1])))
  }
  probs <- rb_value_problems(r$value)
  if (length(probs)) return(verdict("fail", "non-finite result", detail = paste(probs, collapse = "; ")))
  walk <- rb_walk(r$value, plots = plots)
  if (length(walk)) return(verdict("fail", "method failed", detail = walk))
  verdict("pass", "value")
}

# For a generic, the S3 method the call dispatched to (its owner is the
# file to fix); NA for other functions.
rb_method_name <- function(fn, args) {
  if (!is.character(fn) || !fn %in% c("tidy", "glance", "coef", "vcov", "nobs", "summary", "confint", "print",
                 "autoplot", "plot", "aggregate", "weights", "balance", "honest_sensitivity") ||
      !length(args)) {
    return(NA_character_)
  }
  for (cl in c(class(args[[1]]), "default")) {
    if (!is.null(utils::getS3method(fn, cl, optional = TRUE))) return(paste0(fn, ".", cl))
  }
  NA_character_
}

# A readable form of a case's call, for failure messages and the report.
rb_call_text <- function(case) {
  show <- function(v) {
    if (inherits(v, "rb_lazy")) return(sprintf("<%s>", v$name))
    if (inherits(v, "rb_frame")) return(sprintf("<%s data>", v$source))
    if (is.function(v)) return("<function>")
    if (is.null(v)) return("NULL")
    txt <- paste(deparse(v, width.cutoff = 60L), collapse = " ")
    if (nchar(txt) > 60L) paste0(substr(txt, 1L, 57L), "...") else txt
  }
  a <- case$args
  nm <- names(a) %||% rep("", length(a))
  parts <- vapply(seq_along(a), function(i) {
    v <- show(a[[i]])
    if (nzchar(nm[i])) paste(nm[i], "=", v) else v
  }, "")
  fn <- if (is.character(case$fn)) case$fn else "<function>"
  sprintf("%s(%s)  # %s", fn, paste(parts, collapse = ", "), case$mutation)
}

# --- the child process (parent side) --------------------------------------------------

rb_all_cases <- local({
  cache <- NULL
  function() {
    if (is.null(cache)) cache <<- rb_cases()
    cache
  }
})

rb_helper_path <- function() {
  candidates <- c(file.path("tests", "testthat", "helper-robustness.R"), "helper-robustness.R",
                  file.path("..", "testthat", "helper-robustness.R"))
  hit <- candidates[file.exists(candidates)]
  if (!length(hit)) stop("helper-robustness.R not found from ", getwd())
  normalizePath(hit[1])
}

rb_start_session <- function(helper = rb_helper_path()) {
  rs <- callr::r_session$new(wait = TRUE)
  rs$run(function(helper) {
    suppressPackageStartupMessages(library(mktcausal))
    sys.source(helper, envir = globalenv())
    invisible(rb_all_cases())
  }, list(helper = helper))
  rs
}

# Runs the cases `ids` in a child R session, one at a time; a crash or a
# case that outlives `timeout` seconds is recorded and the session is
# restarted. `progress` is called with each verdict. Returns a data frame.
rb_run_ids <- function(ids, plots = TRUE, timeout = 60, progress = NULL,
                       helper = rb_helper_path()) {
  rs <- rb_start_session(helper)
  on.exit(try(rs$close(), silent = TRUE), add = TRUE)
  rows <- vector("list", length(ids))
  for (k in seq_along(ids)) {
    id <- ids[k]
    t0 <- proc.time()[["elapsed"]]
    rs$call(function(id, plots) rb_run_case(rb_all_cases()[[id]], plots = plots),
            list(id = id, plots = plots))
    state <- rs$poll_process(as.integer(timeout * 1000))
    res <- if (state == "timeout") {
      rs$kill()
      rb_verdict_row(id, "timeout", sprintf("still running after %g s", timeout), timeout)
    } else {
      out <- rs$read()
      if (!is.null(out$result) && is.null(out$error)) {
        out$result
      } else {
        err <- out$stderr %||% ""
        msg <- if (!is.null(out$error)) conditionMessage(out$error) else "no result"
        crashed <- !rs$is_alive()
        rb_verdict_row(id, if (crashed) "crash" else "runner error",
                       rb_first_line(c(msg, utils::tail(strsplit(err, "\n")[[1]], 3))),
                       proc.time()[["elapsed"]] - t0)
      }
    }
    rows[[k]] <- res
    if (!is.null(progress)) progress(k, length(ids), res)
    if (!rs$is_alive() || identical(rs$get_state(), "finished")) {
      try(rs$close(), silent = TRUE)
      rs <- rb_start_session(helper)
    }
  }
  out <- do.call(rbind, lapply(rows, function(r) as.data.frame(r, stringsAsFactors = FALSE)))
  cases <- rb_all_cases()
  out$fn <- vapply(out$id, function(i) as.character(cases[[i]]$fn)[1], "")
  out$call <- vapply(out$id, function(i) rb_call_text(cases[[i]]), "")
  out
}

rb_verdict_row <- function(id, outcome, message, seconds) {
  list(id = id, status = "fail", outcome = outcome, where = NA_character_,
       method = NA_character_, class = NA_character_, message = message, seconds = seconds)
}

# The export (or methods of which object) a case exercises, for grouping.
rb_case_group <- function(id) sub("\\|.*$", "", id)

# --- the report -------------------------------------------------------------------------

# Which part of the package a failing case belongs to: the estimator
# families, or the shared layers (panel, methods of every fit, arguments).
rb_families <- list(
  "design/experiment" = c("rerandomize", "stratify", "balance", "experiment_effect",
                          "randomization_test", "rem_asymptotic", "experiment_diagnostics",
                          "design_power", "geo_units", "compare_clusterings",
                          "select_markets", "market_backtest",
                          "power_closed_form", "design_effect", "spillover", "design",
                          "strata", "power", "diagnostics", "fit_effect",
                          "fit_randomization_test", "fit_rem", "fit_spillover"),
  "staggered/event_study/honest" = c("staggered", "aggregate", "event_study", "bacon",
                                     "honest_sensitivity", "fit_staggered",
                                     "fit_staggered_agg", "fit_event_study", "fit_bacon",
                                     "fit_honest"),
  "synth" = c("synth", "synth_loo", "synth_placebo_time", "weights", "fit_synth",
              "fit_synth_placebo"),
  "ife/dml/iv_fe/exposure_did" = c("ife", "counterfactual", "dml", "iv_fe", "exposure_did",
                                   "dose_response", "fit_ife", "fit_counterfactual",
                                   "fit_dml", "fit_iv_fe", "fit_exposure_did",
                                   "fit_dose_response"),
  "cross-cutting" = c("mkt_panel", "assignment", "plot_status", "mkt_threads",
                      "resample_chunks", "panel", "assignment")
)

# The family of a result row: a method written once for every fit (or in
# the panel layer) is cross-cutting whatever the object; otherwise the
# family of the export or of the object whose method failed.
rb_family <- function(id, fn, method = NA_character_) {
  group <- sub("^methods:", "", sub("\\|.*$", "", id))
  if (!is.na(method) && grepl("\\.(mkt_fit|mkt_panel|mkt_assignment|default)$", method) &&
      !startsWith(method, "honest_sensitivity") && !startsWith(method, "balance")) {
    return("cross-cutting")
  }
  for (f in names(rb_families)) {
    if (fn %in% rb_families[[f]] || group %in% rb_families[[f]]) return(f)
  }
  for (f in names(rb_families)) {
    if (sub("_[a-z]+$", "", group) %in% rb_families[[f]]) return(f)
  }
  "cross-cutting"
}

rb_report <- function(res, path, title = "Robustness sweep", seconds = NA) {
  res$family <- mapply(rb_family, res$id, res$fn, res$method, USE.NAMES = FALSE)
  res$group <- ifelse(startsWith(res$id, "methods:"), res$method %||% res$fn, res$fn)
  res$group[is.na(res$group)] <- res$fn[is.na(res$group)]
  fail <- res[res$status == "fail", , drop = FALSE]
  md <- function(x) gsub("|", "\\|", gsub("\n", " ", x), fixed = TRUE)
  lines <- c(
    sprintf("# %s", title), "",
    sprintf("mktcausal %s, %s; %d calls generated by tests/testthat/helper-robustness.R%s.",
            as.character(utils::packageVersion("mktcausal")), format(Sys.time(), "%Y-%m-%d %H:%M"),
            nrow(res), if (is.na(seconds)) "" else sprintf(", run in %.0f s", seconds)),
    "",
    "A call passes when it returns finite results (and its methods run), or signals a classed",
    "`mktcausal_error` or `mktcausal_warning`; a clearly invalid argument must be refused.",
    "Reproduce one call with `rb_run_ids(\"<id>\")` after sourcing the helper.", "",
    "## Outcomes", "", "| outcome | status | calls |", "| --- | --- | ---: |")
  tab <- as.data.frame(table(outcome = res$outcome, status = res$status), stringsAsFactors = FALSE)
  tab <- tab[tab$Freq > 0, ]
  tab <- tab[order(tab$status, -tab$Freq), ]
  lines <- c(lines, sprintf("| %s | %s | %d |", tab$outcome, tab$status, tab$Freq), "",
             "## Failures by family", "", "| family | failing calls |", "| --- | ---: |")
  fam <- table(factor(fail$family, levels = names(rb_families)))
  lines <- c(lines, sprintf("| %s | %d |", names(fam), as.integer(fam)), "")
  for (f in names(rb_families)) {
    ff <- fail[fail$family == f, , drop = FALSE]
    if (!nrow(ff)) next
    lines <- c(lines, sprintf("## %s (%d)", f, nrow(ff)), "")
    for (g in sort(unique(ff$group))) {
      fg <- ff[ff$group == g, , drop = FALSE]
      lines <- c(lines, sprintf("### %s (%d)", g, nrow(fg)), "",
                 "| call (id) | outcome | condition raised | where |", "| --- | --- | --- | --- |")
      lines <- c(lines, sprintf("| `%s` (`%s`) | %s | %s | %s |", md(fg$call), md(fg$id), fg$outcome,
                                md(ifelse(is.na(fg$class), fg$message,
                                          paste0(fg$class, ": ", fg$message))),
                                ifelse(is.na(fg$where), "", md(fg$where))), "")
    }
  }
  writeLines(lines, path)
  invisible(res)
}
