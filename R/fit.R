# The fit contract. Every estimator returns its fit through new_fit(), so one
# set of methods (methods-fit.R) serves every class: print, summary, coef,
# vcov, confint, nobs, tidy, glance and plot/autoplot. A class adds methods
# only where it really differs (its own plots, extra printed details).
#
# Common fields of every fit:
# * call: the user's call;
# * method: a short label of the estimator ("Synthetic control");
# * estimand: what `estimate` estimates, in words;
# * inference: how standard errors, intervals and p-values were obtained;
# * estimates: a data frame with broom's columns term, estimate, std.error,
#   statistic, p.value, conf.low, conf.high (NA where a fit has none; `df`
#   where the reference distribution is a t), then any class columns;
# * vcov: the covariance of `estimate` (rows and columns named by term), or
#   NULL with the reason in `no_vcov`;
# * alpha: the significance level of the stored intervals;
# * n: the sample sizes, a named list with obs (rows or cells used), units,
#   periods, treated and clusters (NA where one has no meaning), plus any
#   class counts (donors, strata, cohorts);
# * vars: the names of the outcome, treatment, unit and time columns;
# * glance: further one-row statistics for glance();
# * tables: further named data frames that tidy(fit, what) returns.

broom_columns <- c("term", "estimate", "std.error", "statistic", "p.value",
                   "conf.low", "conf.high")

sample_sizes <- c("obs", "units", "periods", "treated", "clusters")

new_fit <- function(class, estimates, method, estimand, inference, alpha,
                    n, call = NULL, vcov = NULL, no_vcov = NULL, vars = NULL,
                    glance = NULL, tables = NULL, ...) {
  estimates <- fit_estimates(estimates)
  n <- fit_sample_sizes(n)
  if (!is.null(vcov)) {
    vcov <- as.matrix(vcov)
    dimnames(vcov) <- list(estimates$term, estimates$term)
  } else if (is.null(no_vcov)) {
    no_vcov <- "its inference does not give a covariance matrix"
  }
  stopifnot(is.character(method), length(method) == 1L,
            is.character(estimand), length(estimand) == 1L,
            is.character(inference), length(inference) == 1L,
            is.numeric(alpha), length(alpha) == 1L,
            is.null(tables) || (is.list(tables) && !is.null(names(tables))))
  structure(list(
    call = call, method = method, estimand = estimand, inference = inference,
    estimates = estimates, vcov = vcov, no_vcov = no_vcov, alpha = alpha,
    n = n, vars = vars, glance = glance, tables = tables, ...
  ), class = c(paste0("mkt_", class), "mkt_fit"))
}

# The estimates table with broom's columns first, in broom's order; a column
# a fit does not have is NA.
fit_estimates <- function(est) {
  est <- as.data.frame(est, stringsAsFactors = FALSE)
  stopifnot(all(c("term", "estimate") %in% names(est)))
  est$term <- as.character(est$term)
  for (col in setdiff(broom_columns, names(est))) est[[col]] <- rep(NA_real_, nrow(est))
  if (all(is.na(est$statistic)) && !all(is.na(est$std.error))) {
    est$statistic <- est$estimate / est$std.error
  }
  est <- est[c(broom_columns, setdiff(names(est), broom_columns))]
  rownames(est) <- NULL
  est
}

fit_sample_sizes <- function(n) {
  n <- as.list(n)
  for (k in setdiff(sample_sizes, names(n))) n[[k]] <- NA_integer_
  n[c(sample_sizes, setdiff(names(n), sample_sizes))]
}
