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
  one_string <- function(x) is.character(x) && length(x) == 1L
  if (!(one_string(method) && one_string(estimand) && one_string(inference) &&
        is.numeric(alpha) && length(alpha) == 1L &&
        (is.null(tables) || (is.list(tables) && !is.null(names(tables)))))) {
    stop("Internal error: new_fit() needs one string each for method, estimand and ",
         "inference, one number for alpha, and named tables.", call. = FALSE)
  }
  structure(list(
    call = call, method = method, estimand = estimand, inference = inference,
    estimates = estimates, vcov = vcov, no_vcov = no_vcov, alpha = alpha,
    n = n, vars = vars, glance = glance, tables = tables, ...
  ), class = c(paste0("mkt_", class), "mkt_fit"))
}

# The estimates table with broom's columns first, in broom's order; a column
# a fit does not have is NA. Built with list operations: it runs once per fit,
# and fits run inside placebo and simulation loops.
fit_estimates <- function(est) {
  if (identical(class(est), "data.frame") && identical(names(est)[1:7], broom_columns) &&
      is.character(est$term) && .row_names_info(est) < 0L) {
    return(est)
  }
  est <- as.list(est)
  nm <- names(est)
  if (!all(c("term", "estimate") %in% nm)) {
    stop("Internal error: a fit's estimates need `term` and `estimate`.", call. = FALSE)
  }
  k <- length(est$estimate)
  est$term <- as.character(est$term)
  for (col in broom_columns[!broom_columns %in% nm]) est[[col]] <- rep(NA_real_, k)
  if (all(is.na(est$statistic)) && !all(is.na(est$std.error))) {
    est$statistic <- est$estimate / est$std.error
  }
  cols <- c(broom_columns, nm[!nm %in% broom_columns])
  structure(lapply(est[cols], unname), names = cols, class = "data.frame",
            row.names = .set_row_names(k))
}

fit_sample_sizes <- function(n) {
  n <- as.list(n)
  nm <- names(n)
  for (k in sample_sizes[!sample_sizes %in% nm]) n[[k]] <- NA_integer_
  n[c(sample_sizes, nm[!nm %in% sample_sizes])]
}
