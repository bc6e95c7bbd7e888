#' mktcausal: causal inference for marketing panels
#'
#' The package is organised by one question: how did units get treated?
#' The answer picks the credible assumption, and the assumption picks the
#' estimator. See the vignette `vignette("geo-experiments", "mktcausal")`
#' for the randomized geo experiment: clusters ([geo_units()]), strata
#' ([stratify()]), re-randomization ([rerandomize()]), inference conditional
#' on the acceptance rule ([randomization_test()]), analysis
#' ([experiment_effect()]) and power ([design_power()]).
#'
#' @section Threads and parallel plans:
#' Compiled loops use [mkt_threads()] threads (one under `R CMD check`).
#' Replicate loops run on the user's `future` plan; the package never sets a
#' plan itself. Results depend only on `set.seed()`, never on the number of
#' threads or workers.
#'
#' @keywords internal
#' @useDynLib mktcausal, .registration = TRUE
#' @importFrom Rcpp sourceCpp
#' @importFrom generics tidy glance
#' @importFrom rlang .data
"_PACKAGE"

#' @export
generics::tidy

#' @export
generics::glance

#' @export
ggplot2::autoplot
