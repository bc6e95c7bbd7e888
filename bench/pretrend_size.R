# Size and power of exposure_did()'s joint pre-trend test, by simulation.
#
#   Rscript bench/pretrend_size.R [reps] [n_draws] [settings] [errors] [trend]
#
# Each replicate draws a panel of G units (clusters) and T = k + 1 + 5
# periods (k leads, the base period, 5 post periods): a random exposure
# (uniform on 0..3), unit and time effects, errors iid N(0, 1) or AR(1)
# with rho = 0.5, parallel trends (trend = 0; the null) or a linear
# pre-trend in exposure (trend > 0: exposure x trend x (t - base) before
# the shock; the power). It fits exposure_did() and records whether the
# pre-trend p-value is below 5%. Rejection rates come with their Monte
# Carlo standard errors sqrt(p (1 - p) / reps). `n_draws` is passed to
# exposure_did() when the installed version takes it: 0 gives the F test
# (the test before the bootstrap), > 0 the wild cluster bootstrap; settings
# is a comma list of indices into the table below (default all).
suppressPackageStartupMessages(library(mktcausal))
args <- commandArgs(trailingOnly = TRUE)
reps <- if (length(args) >= 1) as.integer(args[1]) else 500L
n_draws <- if (length(args) >= 2) as.integer(args[2]) else 199L
settings <- data.frame(G = c(200, 200, 50, 30), k = c(14, 54, 14, 6))
which_set <- if (length(args) >= 3 && args[3] != "all") as.integer(strsplit(args[3], ",")[[1]]) else
  seq_len(nrow(settings))
errors <- if (length(args) >= 4) strsplit(args[4], ",")[[1]] else c("iid", "ar1")
trend <- if (length(args) >= 5) as.numeric(args[5]) else 0

has_draws <- "n_draws" %in% names(formals(exposure_did))

sim_panel <- function(G, k, error, trend) {
  Tn <- k + 1 + 5
  base <- k + 1
  d <- expand.grid(unit = seq_len(G), time = seq_len(Tn))
  expo <- stats::runif(G, 0, 3)
  e <- matrix(stats::rnorm(G * Tn), G, Tn)
  if (error == "ar1") {
    for (t in 2:Tn) e[, t] <- 0.5 * e[, t - 1] + sqrt(1 - 0.25) * e[, t]
  }
  alpha_i <- stats::rnorm(G)
  lambda_t <- stats::rnorm(Tn)
  pre <- pmin(seq_len(Tn) - base, 0)
  y <- alpha_i[d$unit] + lambda_t[d$time] + e[cbind(d$unit, d$time)] +
    trend * expo[d$unit] * pre[d$time]
  d$y <- y
  d$expo <- expo[d$unit]
  d
}

one_rep <- function(G, k, error, trend) {
  d <- sim_panel(G, k, error, trend)
  fit <- if (has_draws) {
    exposure_did(y ~ expo | unit + time, d, post = k + 2, n_draws = n_draws)
  } else {
    exposure_did(y ~ expo | unit + time, d, post = k + 2)
  }
  glance(fit)$pretrend_p.value
}

set.seed(20261203)
out <- NULL
for (s in which_set) {
  for (err in errors) {
    G <- settings$G[s]
    k <- settings$k[s]
    started <- proc.time()[["elapsed"]]
    p <- vapply(seq_len(reps), function(r) one_rep(G, k, err, trend), numeric(1))
    rate <- mean(p < 0.05)
    row <- data.frame(G = G, k = k, errors = err, trend = trend, reps = reps,
                      n_draws = if (has_draws) n_draws else NA_integer_,
                      rejection = rate, mc_se = sqrt(rate * (1 - rate) / reps),
                      seconds = round(proc.time()[["elapsed"]] - started, 1))
    print(row, row.names = FALSE)
    out <- rbind(out, row)
  }
}
cat("\n")
print(out, row.names = FALSE)
