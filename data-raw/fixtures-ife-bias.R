# Reference bias corrections from xtife for tests/testthat/test-ife.R.
# Run by hand from the package root with xtife installed in a private
# library (it is not a dependency of mktcausal):
#   Rscript data-raw/fixtures-ife-bias.R
# xtife 0.1.4 implements Bai's (2009) estimator with the three bias terms
# of Moon and Weidner (2017) (its method = "dynamic"). Its cross-section
# and time terms are the ones of ife(bias_correction = ...); its
# predetermined-regressor term projects on the estimated factors only,
# without the constant factor that unit effects add, so that term is
# compared under time effects only (where the two coincide).
.libPaths(c("/tmp/peers-ife2", .libPaths()))
library(xtife)

# A dynamic panel: lagged outcome and a regressor that loads on the factor,
# one factor, unit and time effects, errors heteroskedastic across units.
set.seed(20261123)
N <- 80
Tn <- 20
burn <- 20
TT <- Tn + burn + 1
f <- rnorm(TT)
lam <- rnorm(N)
a <- rnorm(N)
xi <- rnorm(TT)
sd_i <- exp(0.5 * rnorm(N))
x <- matrix(rnorm(N * TT), N, TT) + 0.5 * lam %o% f
y <- matrix(0, N, TT)
for (t in 2:TT) {
  y[, t] <- 0.5 * y[, t - 1] + x[, t] + a + xi[t] + lam * f[t] + sd_i * rnorm(N)
}
keep <- (burn + 2):TT
panel <- data.frame(unit = rep(seq_len(N), Tn), time = rep(seq_len(Tn), each = N),
                    y = as.vector(y[, keep]), ylag = as.vector(y[, keep - 1]),
                    x = as.vector(x[, keep]))

run <- function(force) {
  fit <- xtife::ife(y ~ ylag + x, panel, index = c("unit", "time"), r = 1, force = force,
                    tol = 1e-13, bias_corr = TRUE, method = "dynamic", M1 = 3L)
  # xtife adds its terms to beta; the fixture stores the amounts to
  # subtract, as ife() reports them.
  list(uncorrected = unname(fit$coef_raw), predetermined = -unname(fit$B1_hat),
       cross_section = -unname(fit$B2_hat), time = -unname(fit$B3_hat),
       corrected = unname(fit$coef))
}
fixtures <- list(
  version = as.character(utils::packageVersion("xtife")),
  panel = panel,
  lags = 3L,
  time = run("time"),
  two_way = run("two-way")
)
saveRDS(fixtures, file.path("tests", "testthat", "fixtures", "ife_bias.rds"), version = 2)
