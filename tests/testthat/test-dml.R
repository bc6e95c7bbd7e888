# Partially linear panel DGP: unit and time effects correlated with the
# treatment, nonlinear confounding through x1 and x2, theta = 0.5.
sim_plm <- function(n_units = 100, n_periods = 6, seed = 21) {
  set.seed(seed)
  d <- expand.grid(store = seq_len(n_units), week = seq_len(n_periods))
  a <- rnorm(n_units)
  n <- nrow(d)
  d$x1 <- rnorm(n) + a[d$store] / 2
  d$x2 <- runif(n, -2, 2)
  d$price <- sin(2 * d$x1) + 0.5 * d$x2^2 + a[d$store] + d$week / 3 + rnorm(n)
  d$sales <- 0.5 * d$price + 2 * cos(d$x1) + d$x2^2 + 2 * a[d$store] + d$week +
    rnorm(n)
  d
}

test_that("dml with the built-in ridge learner recovers theta where linear controls do not", {
  d <- sim_plm()
  set.seed(1)
  m <- dml(sales ~ price + x1 + x2 | store + week, d, n_draws = 3)
  td <- tidy(m)
  expect_equal(td$term, "price")
  expect_lt(abs(td$estimate - 0.5), 4 * td$std.error)
  expect_equal(nrow(tidy(m, "splits")), 3L)
  expect_equal(td$estimate, stats::median(tidy(m, "splits")$estimate))
  set.seed(1)
  lin <- dml(sales ~ price + x1 + x2 | store + week, d, learner = "linear", n_draws = 1,
             basis = FALSE)
  expect_gt(abs(coef(lin) - 0.5), abs(coef(m) - 0.5))
  # set.seed reproduces the cross-fits.
  set.seed(1)
  m2 <- dml(sales ~ price + x1 + x2 | store + week, d, n_draws = 3)
  expect_equal(coef(m2), coef(m))
  expect_s3_class(plot(m), "ggplot")
  expect_equal(glance(m)$n_units, 100L)
})

test_that("with linear learners and fixed folds, dml is the FWL partialling-out estimate", {
  d <- sim_plm(n_units = 40, n_periods = 5)
  d$fold <- (d$store %% 4) + 1
  m <- dml(sales ~ price + x1 + x2 | store + week, d, learner = "linear", n_folds = 4,
           fold_by = "fold", inference = "heteroskedastic", basis = FALSE)
  M <- demean_fe(cbind(d$sales, d$price, d$x1, d$x2), list(d$store, d$week))
  u <- v <- numeric(nrow(d))
  for (k in 1:4) {
    te <- d$fold == k
    X <- cbind(1, M[!te, 3:4])
    u[te] <- M[te, 1] - cbind(1, M[te, 3:4]) %*% qr.coef(qr(X), M[!te, 1])
    v[te] <- M[te, 2] - cbind(1, M[te, 3:4]) %*% qr.coef(qr(X), M[!te, 2])
  }
  theta <- sum(u * v) / sum(v^2)
  expect_equal(coef(m)[["price"]], theta, tolerance = 1e-10)
  se <- sqrt(sum(((u - theta * v) * v)^2)) / sum(v^2)
  expect_equal(tidy(m)$std.error, se, tolerance = 1e-10)
})

test_that("lasso and forest learners run when installed", {
  d <- sim_plm(n_units = 60, n_periods = 4)
  skip_if_not_installed("glmnet")
  set.seed(2)
  m <- dml(sales ~ price + x1 + x2 | store + week, d, learner = "lasso", n_draws = 1)
  expect_lt(abs(coef(m) - 0.5), 0.3)
  skip_if_not_installed("ranger")
  set.seed(2)
  f <- dml(sales ~ price + x1 + x2 | store + week, d, learner = list("forest", "ridge"),
           n_draws = 1)
  expect_equal(f$learner, c("forest", "ridge"))
  expect_lt(abs(coef(f) - 0.5), 4 * tidy(f)$std.error)
})

test_that("a failing learner gives a classed error naming the fold", {
  d <- sim_plm(n_units = 30, n_periods = 3)
  bad <- function(x, y, newx) {
    if (nrow(newx) < 20) stop("too few rows")
    rep(mean(y), nrow(newx))
  }
  d$fold <- ifelse(d$store <= 25, (d$store %% 2) + 1, 3)
  expect_error(dml(sales ~ price + x1 | store + week, d, learner = bad, n_folds = 3,
                   fold_by = "fold"),
               class = "mktcausal_error_learner_failed")
  expect_error(dml(sales ~ price + x1 | store + week, d, learner = bad, n_folds = 3,
                   fold_by = "fold"), "fold 3")
  short <- function(x, y, newx) 1
  expect_error(dml(sales ~ price + x1 | store + week, d, learner = short, n_draws = 1),
               class = "mktcausal_error_learner_failed")
  expect_error(dml(sales ~ price | store + week, d), class = "mktcausal_error_bad_formula")
  expect_error(dml(sales ~ price + x1 | store + week, d, learner = "boosting"),
               class = "mktcausal_error_bad_argument")
})

# DoubleML (data-raw/fixtures-doubleml.R) has no fixed effects: it was fitted
# to data demeaned by least squares on unit and time dummies.
dbl <- readRDS(test_path("fixtures", "doubleml.rds"))

test_that("dml equals DoubleML's partially linear estimate with linear learners and shared folds", {
  m <- dml(sales ~ price + x1 + x2 | store + week, dbl$panel, learner = "linear",
           basis = FALSE, fold_by = "fold", inference = "heteroskedastic")
  expect_equal(coef(m)[["price"]], dbl$linear$coef, tolerance = 1e-8)
  expect_equal(tidy(m)$std.error, dbl$linear$se, tolerance = 1e-8)
})

test_that("dml with forests is close to DoubleML with forests, and the basis removes its bias", {
  skip_if_not_installed("ranger")
  # Same learner family on the same demeaned controls, but different random
  # splits (folds of units here, of rows in DoubleML) and different forests:
  # the two estimates differ by split-and-learner noise, a fraction of one
  # standard error. Tolerance: one DoubleML standard error.
  set.seed(1)
  f <- dml(sales ~ price + x1 + x2 | store + week, dbl$panel, learner = "forest",
           basis = FALSE, n_draws = 3)
  expect_lt(abs(coef(f)[["price"]] - dbl$forest$coef), dbl$forest$se)
  # Both are far from the truth (0.5): g(x) enters the demeaned outcome as
  # the within transform of g, which no learner of the demeaned controls can
  # fit. The default expands the controls before demeaning and recovers it.
  expect_gt(dbl$forest$coef - 0.5, 4 * dbl$forest$se)
  set.seed(1)
  r <- dml(sales ~ price + x1 + x2 | store + week, dbl$panel, n_draws = 3)
  expect_lt(abs(coef(r)[["price"]] - 0.5), 3 * tidy(r)$std.error)
})

test_that("set.seed reproduces dml's repeated cross-fits under a parallel plan", {
  skip_on_cran()
  skip_if_not_installed("future")
  skip_if_not(future::supportsMulticore())
  d <- sim_plm(n_units = 40, n_periods = 4)
  set.seed(3)
  a <- dml(sales ~ price + x1 + x2 | store + week, d, n_draws = 2)
  oplan <- future::plan(future::multicore, workers = 2)
  on.exit(future::plan(oplan), add = TRUE)
  set.seed(3)
  b <- dml(sales ~ price + x1 + x2 | store + week, d, n_draws = 2)
  expect_equal(tidy(b, "splits"), tidy(a, "splits"), tolerance = 1e-12)
  expect_equal(coef(b), coef(a))
})

test_that("degenerate treatments, outcomes and clusters give classed errors naming the column", {
  d <- hard_panel()
  d$flat <- 2
  expect_error(dml(y ~ flat + x | unit + time, d, n_draws = 1),
               "flat", class = "mktcausal_error_no_variation")
  # A treatment constant within units is absorbed by the unit effects.
  expect_error(dml(y ~ expo + x | unit + time, d, n_draws = 1),
               "expo", class = "mktcausal_error_no_variation")
  d$y0 <- 5
  expect_error(dml(y0 ~ dose + x | unit + time, d, n_draws = 1),
               "y0", class = "mktcausal_error_no_variation")
  expect_error(dml(y ~ dose + x | unit + time, d, cluster = "one_cluster", n_draws = 1),
               class = "mktcausal_error_too_few_clusters")
  # Controls that predict the treatment exactly leave nothing to estimate.
  exact <- function(x, y, newx) newx[, 1]
  d$dose_copy <- d$dose
  expect_error(dml(y ~ dose + dose_copy | unit + time, d, learner = exact, basis = FALSE,
                   n_draws = 1), "dose", class = "mktcausal_error_no_variation")
  # A control that the fixed effects absorb leaves the ridge learner nothing
  # to learn: it predicts the mean, and theta is finite and near the
  # two-way regression's.
  set.seed(2)
  m <- dml(y ~ dose + const | unit + time, d, n_draws = 1)
  ref <- stats::lm(y ~ dose + factor(unit) + factor(time), d)
  expect_true(is.finite(tidy(m)$std.error))
  expect_lt(abs(coef(m)[["dose"]] - stats::coef(ref)[["dose"]]), tidy(m)$std.error)
})

test_that("outcomes near 1e300 and 1e-300 give the scaled answer", {
  d <- hard_panel()
  expect_outcome_scaled(function(y, data) {
    set.seed(3)
    dml(y ~ dose + x | unit + time, data, n_draws = 2)
  }, d)
  expect_outcome_scaled(function(y, data) {
    set.seed(3)
    dml(y ~ dose + x | unit + time, data, n_draws = 1, learner = "linear")
  }, d, "splits")
})
