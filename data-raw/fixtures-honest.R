# Reference numbers from HonestDiD for tests/testthat/test-honest_sensitivity.R.
# Run by hand from the package root, after `R CMD INSTALL .`, with HonestDiD in
# a private library:
#   R_LIBS=/tmp/peers-honest Rscript data-raw/fixtures-honest.R
#
# HonestDiD 0.2.8 imports CVXR, which CRAN has archived and this machine
# cannot download. CVXR is used only by the smoothness FLCI (and its
# hybrids); the relative-magnitudes sets use lpSolveAPI and Rglpk. The peer
# library therefore holds HonestDiD 0.2.8 from CRAN installed with CVXR
# removed from DESCRIPTION and its `library(CVXR)` line commented out,
# nothing else changed. The FLCI is checked instead against a brute-force
# search: worst-case bias from Rglpk's LP over Delta^SD(M), half-length from
# the folded-normal quantile, minimised by Nelder-Mead from many starts.
library(HonestDiD)
library(mktcausal)

rm_sets <- function(betahat, sigma, n_pre, l, Mbar, method) {
  n_post <- length(betahat) - n_pre
  out <- HonestDiD::createSensitivityResults_relativeMagnitudes(
    betahat = betahat, sigma = sigma, numPrePeriods = n_pre, numPostPeriods = n_post,
    Mbarvec = Mbar, l_vec = l, method = method)
  sd_theta <- sqrt(drop(t(l) %*% sigma[n_pre + seq_len(n_post), n_pre + seq_len(n_post)] %*% l))
  data.frame(Mbar = out$Mbar, lb = out$lb, ub = out$ub, method = method,
             grid_lb = -20 * sd_theta, grid_ub = 20 * sd_theta)
}

# Worst-case bias of v'beta over Delta^SD(M), by linear programming over
# delta (reference period dropped), and the FLCI half-length.
lp_bias <- function(v, n_pre, n_post, M) {
  n <- n_pre + n_post
  full <- function(x) append(x, 0, after = n_pre)          # insert delta_0 = 0
  D2 <- matrix(0, n - 1, n + 1)
  for (i in seq_len(n - 1)) D2[i, i:(i + 2)] <- c(1, -2, 1)
  A <- D2[, -(n_pre + 1)]
  res <- Rglpk::Rglpk_solve_LP(obj = v, mat = rbind(A, -A), dir = rep("<=", 2 * nrow(A)),
                               rhs = rep(M, 2 * nrow(A)), max = TRUE,
                               bounds = list(lower = list(ind = seq_len(n), val = rep(-Inf, n))))
  if (res$status != 0) Inf else res$optimum
}
folded_q <- function(t, alpha = 0.05) {
  stats::uniroot(function(q) stats::pnorm(q - t) - stats::pnorm(-q - t) - (1 - alpha),
                 c(0, t + 10), tol = 1e-14)$root
}
brute_flci <- function(betahat, sigma, n_pre, l, M) {
  n_post <- length(l)
  t_all <- c(seq(-n_pre, -1), seq_len(n_post))
  # Free pre-period weights except the last, which closes sum_t t v_t = 0.
  vfull <- function(x) {
    last <- sum(t_all[seq_len(n_pre - 1)] * x) + sum(seq_len(n_post) * l)
    c(x, last, l)
  }
  obj <- function(x) {
    v <- vfull(x)
    s <- sqrt(drop(t(v) %*% sigma %*% v))
    b <- if (M == 0) 0 else lp_bias(v, n_pre, n_post, M)
    s * folded_q(b / s)
  }
  best <- NULL
  set.seed(42)
  for (start in 1:8) {
    x0 <- if (start == 1) rep(0, n_pre - 1) else stats::rnorm(n_pre - 1, sd = 0.5)
    fit <- stats::optim(x0, obj, method = "Nelder-Mead",
                        control = list(reltol = 1e-12, maxit = 3000))
    # A restart from the optimum escapes Nelder-Mead's premature collapse.
    fit <- stats::optim(fit$par, obj, method = "Nelder-Mead",
                        control = list(reltol = 1e-12, maxit = 3000))
    if (is.null(best) || fit$value < best$value) best <- fit
  }
  v <- vfull(best$par)
  centre <- sum(v * betahat)
  c(lb = centre - best$value, ub = centre + best$value, half = best$value)
}

# HonestDiD's bundled example (Benzarti and Carloni 2019): 4 pre, 4 post.
data(BCdata_EventStudy, package = "HonestDiD")
bc <- BCdata_EventStudy
bc_first <- c(1, 0, 0, 0)
bc_avg <- rep(1 / 4, 4)

# mpdta: the Callaway-Sant'Anna event study with a universal base period,
# which equals did's to 1e-6 (test-staggered.R), fed to both packages.
mp <- mpdta
mp$post <- as.integer(mp$first.treat > 0 & mp$year >= mp$first.treat)
es <- event_study(lemp ~ post | countyreal + year, mp, method = "cs")
keep <- !is.na(tidy(es)$std.error)
mp_beta <- tidy(es)$estimate[keep]
mp_sigma <- vcov(es)[keep, keep]
mp_first <- c(1, 0, 0, 0)
mp_avg <- rep(1 / 4, 4)

Mbar <- c(0, 0.5, 1, 2)
timing <- system.time(
  bc_rm <- rbind(
    cbind(target = "first", rm_sets(bc$betahat, bc$sigma, 4, bc_first, Mbar, "C-LF")),
    cbind(target = "first", rm_sets(bc$betahat, bc$sigma, 4, bc_first, Mbar, "Conditional")),
    cbind(target = "average", rm_sets(bc$betahat, bc$sigma, 4, bc_avg, Mbar, "C-LF"))
  )
)
mp_rm <- rbind(
  cbind(target = "first", rm_sets(mp_beta, mp_sigma, 3, mp_first, Mbar, "C-LF")),
  cbind(target = "first", rm_sets(mp_beta, mp_sigma, 3, mp_first, Mbar, "Conditional")),
  cbind(target = "average", rm_sets(mp_beta, mp_sigma, 3, mp_avg, Mbar, "C-LF"))
)

bc_M <- c(0, 0.02, 0.05)
mp_M <- c(0, 0.01, 0.03)
flci <- rbind(
  do.call(rbind, lapply(bc_M, function(m) data.frame(data = "bc", target = "first", M = m,
    t(brute_flci(bc$betahat, bc$sigma, 4, bc_first, m))))),
  do.call(rbind, lapply(mp_M, function(m) data.frame(data = "mpdta", target = "first", M = m,
    t(brute_flci(mp_beta, mp_sigma, 3, mp_first, m))))),
  do.call(rbind, lapply(mp_M, function(m) data.frame(data = "mpdta", target = "average", M = m,
    t(brute_flci(mp_beta, mp_sigma, 3, mp_avg, m)))))
)

dir.create("tests/testthat/fixtures", showWarnings = FALSE, recursive = TRUE)
saveRDS(list(
  honestdid_version = as.character(utils::packageVersion("HonestDiD")),
  bc = list(betahat = unname(bc$betahat), sigma = unname(bc$sigma), n_pre = 4L),
  mpdta = list(betahat = unname(mp_beta), sigma = unname(mp_sigma), n_pre = 3L),
  bc_rm = bc_rm, mpdta_rm = mp_rm, flci = flci,
  honestdid_seconds_bc_rm = unname(timing["elapsed"])
), "tests/testthat/fixtures/honest.rds", version = 2)
