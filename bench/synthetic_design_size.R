# Size and coverage of synthetic_design_effect()'s placebo-in-time test by
# simulation: a factor model with AR(1) factors and AR(1) idiosyncratic
# noise, 15 markets, a design of 2 treated markets chosen exhaustively on
# the history, a 4-period test at zero effect (size) and at an effect of 3
# (power, coverage). Run by hand:
#   R_LIBS=... Rscript bench/synthetic_design_size.R
library(mktcausal)
sim_panel <- function(J = 15, Tn = 64, r = 2, rho = 0.5, rho_e = 0.3, sd_e = 1) {
  F <- matrix(0, Tn, r)
  for (t in 2:Tn) F[t, ] <- rho * F[t - 1, ] + rnorm(r)
  lam <- matrix(rnorm(J * r), J, r)
  e <- matrix(0, J, Tn)
  e[, 1] <- rnorm(J, sd = sd_e)
  for (t in 2:Tn) e[, t] <- rho_e * e[, t - 1] + rnorm(J, sd = sd_e * sqrt(1 - rho_e^2))
  Y <- 50 + 5 * rnorm(J) + 3 * lam %*% t(F) + e
  dimnames(Y) <- list(sprintf("m%02d", 1:J), 1:Tn)
  Y
}
one <- function(effect = 0, n_blank = 76, moving = FALSE, n_fit = 48, L = 4, ...) {
  Tn <- n_fit + n_blank + L
  Y <- sim_panel(Tn = Tn, ...)
  H <- Tn - L
  hist <- list(Y = Y[, 1:H], times = 1:H, vars = list(outcome = "y", unit = "m", time = "t"))
  des <- suppressWarnings(mktcausal:::sd_design_fit(hist, 2L, L, n_blank, NULL, NULL,
                                                    "exhaustive", 1e5, 1L, 0.05))
  w <- des$weights$w[match(rownames(Y), des$weights$market)]
  v <- des$weights$v[match(rownames(Y), des$weights$market)]
  post <- (H + 1):Tn
  Y[w > 0, post] <- Y[w > 0, post] + effect
  bl <- match(des$blank_periods, 1:Tn)
  tr <- drop(crossprod(Y, w))
  ct <- drop(crossprod(Y, v))
  r <- mktcausal:::sd_effect_core(tr[bl] - ct[bl], tr[post], ct[post], 0.05, moving)$estimates
  c(reject = r$p.value[1] <= 0.05, cover = r$conf.low[1] <= effect && effect <= r$conf.high[1],
    estimate = r$estimate[1], reject_period = mean(r$p.value[4:7] <= 0.05))
}
R <- as.integer(Sys.getenv("SD_REPS", "1000"))
cases <- list(
  list(label = "22 blank, moving blocks", n_blank = 22, moving = TRUE),
  list(label = "76 blank, moving blocks", n_blank = 76, moving = TRUE),
  list(label = "76 blank, non-overlapping (default)", n_blank = 76, moving = FALSE),
  list(label = "76 blank, non-overlapping, rho_e = 0.7", n_blank = 76, moving = FALSE, rho_e = 0.7)
)
out <- do.call(rbind, lapply(cases, function(cs) {
  set.seed(20261203)
  args <- cs[setdiff(names(cs), "label")]
  a <- t(replicate(R, do.call(one, c(list(effect = 0), args))))
  b <- t(replicate(R %/% 2, do.call(one, c(list(effect = 3), args))))
  data.frame(case = cs$label, size = mean(a[, "reject"]), size_period = mean(a[, "reject_period"]),
             power_at_3 = mean(b[, "reject"]), coverage_at_3 = mean(b[, "cover"]),
             bias_at_3 = mean(b[, "estimate"]) - 3, reps = R)
}))
out$mc_se_size <- sqrt(0.05 * 0.95 / R)
print(out, digits = 3)
