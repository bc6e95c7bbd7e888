# Benchmarks of synth() against Synth and synthdid in the same run. Run by hand after
# installing the package, with the peers in a private library:
#   R_LIBS=/tmp/lib-synth Rscript bench/synth.R
# Results are copied into bench/RESULTS.md. Neither peer is ever a dependency.
.libPaths(c("/tmp/peers-synth", "/tmp/peers-sdid", .libPaths()))
suppressPackageStartupMessages(library(mktcausal))
ns <- asNamespace("mktcausal")

source(file.path("bench", "time_it.R"))
row <- function(task, impl, seconds, extra = "") {
  cat(sprintf("| %s | %s | %.3f s | %s |\n", task, impl, seconds, extra))
}

f99 <- packspercapita ~ treated | state + year
adh <- list(lnincome = 1980:1988, retprice = 1980:1988, age15to24 = 1980:1988,
            beer = 1984:1988, packspercapita = 1975, packspercapita = 1980,
            packspercapita = 1988)

# --- 1. ADH 2010 specification: one nested fit ---------------------------
ours <- synth(f99, prop99, predictors = adh)
t_ours <- time_it(synth(f99, prop99, predictors = adh), reps = 5)
has_synth <- requireNamespace("Synth", quietly = TRUE)
if (has_synth) {
  d <- prop99
  d$id <- as.integer(factor(d$state))
  ca <- d$id[d$state == "California"][1]
  dp <- Synth::dataprep(
    foo = d, predictors = c("lnincome", "retprice", "age15to24"), predictors.op = "mean",
    time.predictors.prior = 1980:1988,
    special.predictors = list(list("beer", 1984:1988, "mean"),
                              list("packspercapita", 1975, "mean"),
                              list("packspercapita", 1980, "mean"),
                              list("packspercapita", 1988, "mean")),
    dependent = "packspercapita", unit.variable = "id", unit.names.variable = "state",
    time.variable = "year", treatment.identifier = ca,
    controls.identifier = setdiff(unique(d$id), ca),
    time.optimize.ssr = 1970:1988, time.plot = 1970:2000)
  so <- NULL
  t_synth <- time_it(invisible(capture.output(so <- Synth::synth(dp))), reps = 3)
  mspe_synth <- mean((dp$Z1 - dp$Z0 %*% so$solution.w)^2)
}
cat("\n| task | implementation | time | notes |\n| --- | --- | --- | --- |\n")
row("ADH predictors, Prop 99", "mktcausal synth()", t_ours,
    sprintf("pre-MSPE %.4f", ours$v_loss))
if (has_synth) {
  row("ADH predictors, Prop 99", "Synth::dataprep() output + Synth::synth()", t_synth,
      sprintf("pre-MSPE %.4f; mktcausal %.0fx faster", mspe_synth, t_synth / t_ours))
}

# --- 2. Placebo in space -----------------------------------------------------
t_pl_adh <- time_it(synth(f99, prop99, predictors = adh, inference = "placebo"))
t_pl_out <- time_it(synth(f99, prop99, inference = "placebo"))
row("placebo in space, ADH spec (1 + 38 nested fits)", "mktcausal", t_pl_adh, "target < 2 s")
row("placebo in space, outcome only (1 + 38 fits)", "mktcausal", t_pl_out, "target < 0.5 s")

# --- 3. sdid with 200 placebo replications ----------------------------------
# synthdid is not on CRAN; it is built from its public sources into
# /tmp/peers-sdid (see data-raw/fixtures-synthdid.R). Both sides include the
# point estimate, as a user would run them.
set.seed(1)
t_sdid <- time_it(synth(f99, prop99, method = "sdid", inference = "placebo", n_draws = 200))
row("sdid + 200 placebo replications, Prop 99", "mktcausal", t_sdid, "")
if (requireNamespace("synthdid", quietly = TRUE)) {
  sm <- synthdid::panel.matrices(as.data.frame(prop99[c("state", "year", "packspercapita", "treated")]))
  t_sdid_peer <- time_it({
    est <- synthdid::synthdid_estimate(sm$Y, sm$N0, sm$T0)
    set.seed(1)
    sqrt(stats::vcov(est, method = "placebo", replications = 200))
  }, reps = 1)
  row("sdid + 200 placebo replications, Prop 99", "synthdid 0.0.9", t_sdid_peer,
      sprintf("mktcausal %.0fx faster; target 30x", t_sdid_peer / t_sdid))
}

# --- 4. Weights for 2,000 donors x 200 periods ------------------------------
set.seed(7)
Tn <- 200
J <- 2000
Fm <- matrix(rnorm(Tn * 4), Tn)
X <- Fm %*% matrix(rnorm(4 * J), 4) + matrix(rnorm(Tn * J), Tn)
y <- X[, 1:10] %*% rep(0.1, 10) + rnorm(Tn, sd = 0.5)
r <- ns$cpp_simplex_ls(X, y, 0, numeric(0), 1e-12, 100000L)
t_big <- time_it(ns$cpp_simplex_ls(X, y, 0, numeric(0), 1e-12, 100000L))
row("sc weights, 2,000 donors x 200 periods", "mktcausal C++ core", t_big,
    sprintf("KKT residual %.1e, %d donors with weight; target < 1 s", r$kkt, sum(r$w > 0)))
if (requireNamespace("quadprog", quietly = TRUE)) {
  # quadprog needs a positive definite matrix: a ridge of 1e-12 relative to
  # the Gram matrix's scale, far below the 1e-6 agreement checked in tests.
  qp_weights <- function(X, y) {
    G <- crossprod(X)
    s <- max(abs(G))
    J <- ncol(X)
    quadprog::solve.QP(G / s + diag(1e-12, J), crossprod(X, y) / s,
                       cbind(rep(1, J), diag(J)), c(1, rep(0, J)), meq = 1)$solution
  }
  Xs <- X[, 1:500]
  ys <- Xs[, 1:10] %*% rep(0.1, 10) + rnorm(Tn, sd = 0.5)
  t_qp <- time_it(qp_weights(Xs, ys), reps = 2)
  t_ours_500 <- time_it(ns$cpp_simplex_ls(Xs, ys, 0, numeric(0), 1e-12, 100000L))
  diff_500 <- max(abs(qp_weights(Xs, ys) - ns$cpp_simplex_ls(Xs, ys, 0, numeric(0), 1e-12, 100000L)$w))
  row("sc weights, 500 donors x 200 periods", "quadprog::solve.QP (dense QP)", t_qp,
      sprintf("max |w difference| %.1e; mktcausal %.0fx faster", diff_500, t_qp / t_ours_500))
  row("sc weights, 500 donors x 200 periods", "mktcausal C++ core", t_ours_500, "")
}
dd <- data.frame(unit = rep(c("treated", sprintf("d%04d", 1:J)), each = Tn + 20),
                 time = rep(seq_len(Tn + 20), J + 1))
dd$y <- as.vector(cbind(c(y, rnorm(20)), rbind(X, matrix(rnorm(20 * J), 20))))
dd$d <- as.integer(dd$unit == "treated" & dd$time > Tn)
t_big_r <- time_it(synth(y ~ d | unit + time, dd), reps = 2)
row("sc fit, 2,001 units x 220 periods (long data in)", "mktcausal synth()", t_big_r,
    "includes mkt_panel() on 442,220 rows")
