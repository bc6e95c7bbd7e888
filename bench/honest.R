# Benchmark of honest_sensitivity() against HonestDiD, timed in the same run
# on the same inputs. Run from the package root after installing mktcausal,
# with HonestDiD in a private library (see data-raw/fixtures-honest.R for why
# that library's HonestDiD lacks CVXR, which only its FLCI needs):
#   R_LIBS=/tmp/peers-honest Rscript bench/honest.R
library(mktcausal)
source("bench/time_it.R")
has_peer <- requireNamespace("HonestDiD", quietly = TRUE)

mp <- mpdta
mp$post <- as.integer(mp$first.treat > 0 & mp$year >= mp$first.treat)
es <- event_study(lemp ~ post | countyreal + year, mp, method = "cs")
keep <- !is.na(tidy(es)$std.error)
inputs <- list(
  mpdta = list(b = tidy(es)$estimate[keep], V = vcov(es)[keep, keep], n_pre = 3L)
)
if (has_peer) {
  data(BCdata_EventStudy, package = "HonestDiD")
  inputs$bc <- list(b = unname(BCdata_EventStudy$betahat),
                    V = unname(BCdata_EventStudy$sigma), n_pre = 4L)
}
Mbar <- c(0.5, 1, 1.5, 2)

rows <- list()
for (nm in names(inputs)) {
  x <- inputs[[nm]]
  n_post <- length(x$b) - x$n_pre
  l <- c(1, rep(0, n_post - 1))
  sd_theta <- sqrt(x$V[x$n_pre + 1, x$n_pre + 1])
  ours <- time_it({
    set.seed(0)
    h <- honest_sensitivity(x$b, sigma = x$V, n_pre = x$n_pre, M = Mbar,
                            grid_lb = -20 * sd_theta, grid_ub = 20 * sd_theta,
                            refine = FALSE, breakdown = FALSE)
  }, reps = 5)
  ours_default <- time_it(honest_sensitivity(x$b, sigma = x$V, n_pre = x$n_pre, M = Mbar),
                          reps = 5)
  ours_sd <- time_it(honest_sensitivity(x$b, sigma = x$V, n_pre = x$n_pre,
                                        type = "smoothness", M = c(0, 0.01, 0.02, 0.03),
                                        breakdown = FALSE), reps = 5)
  peer <- NA_real_
  diff <- NA_real_
  if (has_peer) {
    peer <- time_it(p <- suppressWarnings(
      HonestDiD::createSensitivityResults_relativeMagnitudes(
        betahat = x$b, sigma = x$V, numPrePeriods = x$n_pre, numPostPeriods = n_post,
        Mbarvec = Mbar, l_vec = l)), reps = 1)
    td <- tidy(h)[-1, ]
    diff <- max(abs(td$conf.low - p$lb), abs(td$conf.high - p$ub))
  }
  rows[[nm]] <- data.frame(data = nm, n_post = n_post, mktcausal_rm = ours,
                           mktcausal_rm_refined_breakdown = ours_default,
                           mktcausal_flci = ours_sd, HonestDiD_rm = peer,
                           ratio = peer / ours, max_abs_diff = diff)
}
res <- do.call(rbind, rows)
print(res, digits = 4, row.names = FALSE)
