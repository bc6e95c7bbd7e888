# Reference numbers from DoubleML for tests/testthat/test-dml.R. Run by hand
# from the package root with DoubleML, mlr3learners and ranger installed in a
# private library:
#   Rscript data-raw/fixtures-doubleml.R
# DoubleML is not a dependency of mktcausal; it is needed only here. It has
# no panel fixed effects, so the fixed effects are removed here first (by
# least squares on unit and time dummies, independently of mktcausal) and
# DoubleML's partially linear model is fitted to the demeaned data.
.libPaths(c("/tmp/peers-continuous", .libPaths()))
suppressPackageStartupMessages({
  library(DoubleML)
  library(mlr3)
  library(mlr3learners)
  library(data.table)
})
lgr::get_logger("mlr3")$set_threshold("warn")

set.seed(20261125)
n_units <- 80
n_periods <- 6
panel <- expand.grid(store = seq_len(n_units), week = seq_len(n_periods))
a <- rnorm(n_units)
n <- nrow(panel)
panel$x1 <- rnorm(n) + a[panel$store] / 2
panel$x2 <- runif(n, -2, 2)
panel$price <- sin(2 * panel$x1) + 0.5 * panel$x2^2 + a[panel$store] + panel$week / 3 + rnorm(n)
panel$sales <- 0.5 * panel$price + 2 * cos(panel$x1) + panel$x2^2 + 2 * a[panel$store] +
  panel$week + rnorm(n)
panel$fold <- (panel$store %% 5) + 1

dummies <- model.matrix(~ factor(store) + factor(week), panel)
within <- function(v) as.vector(lm.fit(dummies, v)$residuals)
dm <- data.table(sales = within(panel$sales), price = within(panel$price),
                 x1 = within(panel$x1), x2 = within(panel$x2))
dml_data <- DoubleMLData$new(dm, y_col = "sales", d_cols = "price", x_cols = c("x1", "x2"))

# 1. Linear learners and the same folds of units: the estimates must agree to
#    rounding, since both compute the same partialling-out (DML2) estimate.
folds <- lapply(1:5, function(k) which(panel$fold == k))
smpls <- list(list(train_ids = lapply(folds, function(te) setdiff(seq_len(n), te)),
                   test_ids = folds))
fit_lin <- DoubleMLPLR$new(dml_data, ml_l = lrn("regr.lm"), ml_m = lrn("regr.lm"),
                           score = "partialling out", draw_sample_splitting = FALSE)
fit_lin$set_sample_splitting(smpls)
fit_lin$fit()

# 2. Flexible learners: random forests, 5 folds of rows, median of 5 splits.
#    Not comparable to rounding (different learners and splits).
fit_rf <- DoubleMLPLR$new(dml_data,
                          ml_l = lrn("regr.ranger", num.trees = 500, num.threads = 1),
                          ml_m = lrn("regr.ranger", num.trees = 500, num.threads = 1),
                          score = "partialling out", n_folds = 5, n_rep = 5)
fit_rf$fit()

fixtures <- list(
  panel = panel,
  linear = list(coef = unname(fit_lin$coef), se = unname(fit_lin$se)),
  forest = list(coef = unname(fit_rf$coef), se = unname(fit_rf$se)),
  doubleml_version = as.character(utils::packageVersion("DoubleML"))
)
saveRDS(fixtures, "tests/testthat/fixtures/doubleml.rds", version = 2)
str(fixtures[-1])
