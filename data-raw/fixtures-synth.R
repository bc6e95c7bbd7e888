# Reference numbers for tests/testthat/test-synth.R from peer packages
# (quadprog for the exact QP, Synth for the nested ADH fits), plus the
# published numbers of Arkhangelsky et al. (2021, Table 1). Run by hand from
# the package root with the peers installed in a private library:
#   Rscript data-raw/fixtures-synth.R
# Neither quadprog nor Synth is a dependency of mktcausal.
.libPaths(c("/tmp/peers-synth", .libPaths()))
prop99 <- utils::read.csv("/work/shared/data/prop99.csv", stringsAsFactors = FALSE)
basque <- utils::read.csv("/work/shared/data/basque.csv", stringsAsFactors = FALSE)

# --- Prop 99, outcome only: the exact QP by quadprog -----------------------
Y <- unclass(stats::xtabs(packspercapita ~ state + year, prop99))
pre <- as.character(1970:1988)
post <- as.character(1989:2000)
donors <- setdiff(rownames(Y), "California")
X0 <- t(Y[donors, pre])
y1 <- Y["California", pre]
J <- length(donors)
G <- crossprod(X0)
s <- max(abs(G))
# The Gram matrix has rank 19 < 38, and quadprog needs it positive definite:
# a ridge of 1e-12 relative to its scale moves the solution by far less than
# the 1e-6 tolerance of the test.
qp <- quadprog::solve.QP(G / s + diag(1e-12, J), crossprod(X0, y1) / s,
                         cbind(rep(1, J), diag(J)), c(1, rep(0, J)), meq = 1)
w_qp <- stats::setNames(pmax(qp$solution, 0), donors)
w_qp <- w_qp / sum(w_qp)
att_qp <- mean(Y["California", post] - drop(crossprod(Y[donors, post], w_qp)))

# --- Prop 99 with the ADH 2010 predictors: Synth ---------------------------
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
so <- Synth::synth(dp, verbose = FALSE)
nm <- dp$names.and.numbers
w_adh <- stats::setNames(so$solution.w[, 1],
                         nm$unit.names[match(as.integer(rownames(so$solution.w)), nm$unit.numbers)])
mspe_adh <- mean((dp$Z1 - dp$Z0 %*% so$solution.w)^2)

# --- Basque: the example of Synth's help page --------------------------------
b <- basque
dpb <- Synth::dataprep(
  foo = b, predictors = c("school.illit", "school.prim", "school.med", "school.high",
                          "school.post.high", "invest"),
  predictors.op = "mean", time.predictors.prior = 1964:1969,
  special.predictors = list(list("gdpcap", 1960:1969, "mean"),
                            list("sec.agriculture", seq(1961, 1969, 2), "mean"),
                            list("sec.energy", seq(1961, 1969, 2), "mean"),
                            list("sec.industry", seq(1961, 1969, 2), "mean"),
                            list("sec.construction", seq(1961, 1969, 2), "mean"),
                            list("sec.services.venta", seq(1961, 1969, 2), "mean"),
                            list("sec.services.nonventa", seq(1961, 1969, 2), "mean"),
                            list("popdens", 1969, "mean")),
  dependent = "gdpcap", unit.variable = "regionno", unit.names.variable = "regionname",
  time.variable = "year", treatment.identifier = 17, controls.identifier = c(2:16, 18),
  time.optimize.ssr = 1960:1969, time.plot = 1955:1997)
sb <- Synth::synth(dpb, method = "BFGS", verbose = FALSE)
nmb <- dpb$names.and.numbers
w_basque <- stats::setNames(sb$solution.w[, 1],
                            nmb$unit.names[match(as.integer(rownames(sb$solution.w)), nmb$unit.numbers)])
mspe_basque <- mean((dpb$Z1 - dpb$Z0 %*% sb$solution.w)^2)

fixtures <- list(
  prop99_qp = list(w = w_qp, att = att_qp),
  prop99_adh = list(w = w_adh, mspe = mspe_adh),
  basque = list(w = w_basque, mspe = mspe_basque),
  # Arkhangelsky et al. (2021), Table 1, Prop 99 row: estimate (placebo SE).
  table1 = list(sdid = c(estimate = -15.6, se = 8.4), did = c(estimate = -27.3, se = 17.7)),
  versions = c(Synth = as.character(utils::packageVersion("Synth")),
               quadprog = as.character(utils::packageVersion("quadprog")))
)
saveRDS(fixtures, "tests/testthat/fixtures/synth.rds", version = 2)
str(fixtures)
