# Reference numbers from synthdid (Arkhangelsky et al.'s R package, 0.0.9)
# for tests/testthat/test-synth.R and test-synth_inference.R, on the Prop 99
# panel. synthdid is not on CRAN: it was built from its public sources into a
# private library (never a dependency of mktcausal). Run by hand from the
# package root:
#   Rscript data-raw/fixtures-synthdid.R
# It takes about two minutes: synthdid refits its weights in R for every
# placebo replication.
.libPaths(c("/tmp/peers-sdid", .libPaths()))
library(synthdid)
prop99 <- utils::read.csv("/work/shared/data/prop99.csv", stringsAsFactors = FALSE)
setup <- panel.matrices(prop99[c("state", "year", "packspercapita", "treated")])
Y <- setup$Y
N0 <- setup$N0
T0 <- setup$T0
donors <- rownames(Y)[seq_len(N0)]
pre_years <- colnames(Y)[seq_len(T0)]

est_sdid <- synthdid_estimate(Y, N0, T0)
est_sc <- sc_estimate(Y, N0, T0)
est_did <- did_estimate(Y, N0, T0)
w_sdid <- attr(est_sdid, "weights")
w_sc <- attr(est_sc, "weights")
opts <- attr(est_sdid, "opts")

# synthdid's placebo standard error as its README computes it (seed 12345,
# 200 replications): this is the 8.4 and 17.7 of the paper's Table 1.
set.seed(12345)
se_sdid <- sqrt(vcov(est_sdid, method = "placebo", replications = 200))[1, 1]
set.seed(12345)
se_did <- sqrt(vcov(est_did, method = "placebo", replications = 200))[1, 1]

# The same 200 replications, unrolled: each one permutes the donors and makes
# the last of them the placebo-treated unit, with the weights warm-started
# from the full-sample fit as synthdid does. Keeping the donor drawn in each
# replication lets the tests rerun our exact solver on the paper's draws.
refit <- function(ind, est) {
  n0 <- N0 - 1L
  w <- attr(est, "weights")
  w$omega <- w$omega[ind[seq_len(n0)]]
  w$omega <- if (sum(w$omega) > 0) w$omega / sum(w$omega) else rep(1 / n0, n0)
  o <- attr(est, "opts")
  c(do.call(synthdid_estimate, c(list(Y = Y[ind, ], N0 = n0, T0 = T0, weights = w), o)))
}
set.seed(12345)
draws <- data.frame(placebo = character(200), sdid = numeric(200), stringsAsFactors = FALSE)
for (r in seq_len(200)) {
  ind <- sample(seq_len(N0))
  draws$placebo[r] <- donors[ind[N0]]
  draws$sdid[r] <- refit(ind, est_sdid)
}
stopifnot(isTRUE(all.equal(sqrt(199 / 200) * stats::sd(draws$sdid), se_sdid)))

# Every donor in turn as the placebo-treated unit (others in synthdid's
# order). With one treated unit a replication can only pick one of these 38,
# so the population standard deviation of this vector is the placebo
# standard error that any seed approaches as replications grow.
by_donor <- data.frame(
  placebo = donors,
  sdid = vapply(seq_len(N0), function(k) refit(c(setdiff(seq_len(N0), k), k), est_sdid), numeric(1)),
  did = vapply(seq_len(N0), function(k) refit(c(setdiff(seq_len(N0), k), k), est_did), numeric(1)),
  stringsAsFactors = FALSE)

fixture <- list(
  synthdid_version = "0.0.9 (synth-inference/synthdid sources)",
  estimate = c(sdid = c(est_sdid), sc = c(est_sc), did = c(est_did)),
  omega_sdid = stats::setNames(w_sdid$omega, donors),
  lambda_sdid = stats::setNames(w_sdid$lambda, pre_years),
  omega_sc = stats::setNames(w_sc$omega, donors),
  zeta_omega = opts$zeta.omega,
  min_decrease = opts$min.decrease,
  placebo_se = c(sdid = se_sdid, did = se_did),
  placebo_seed = 12345L,
  placebo_draws = draws,
  by_donor = by_donor
)
saveRDS(fixture, "tests/testthat/fixtures/synthdid.rds", version = 2)
print(fixture[c("estimate", "placebo_se")])
