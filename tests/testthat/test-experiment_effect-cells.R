# experiment_effect() with several cells: the treatment column holds cell
# labels, or the design has several cells.

sim_cells <- function(n = 90, effects = c(heavy_up = 0.05, go_dark = -0.08), seed = 1,
                      noise = 0.03) {
  set.seed(seed)
  cells <- c("control", names(effects))
  d <- data.frame(geo = sprintf("g%03d", seq_len(n)), pre = rlnorm(n, 10, 0.5),
                  pop = runif(n, 1, 5))
  d$cell <- sample(rep(cells, length.out = n))
  eff <- c(control = 0, effects)
  d$counterfactual <- d$pre * 1.02 * exp(rnorm(n, 0, noise))
  d$sales <- d$counterfactual * (1 + eff[d$cell])
  d$spend <- c(control = 1000, heavy_up = 3000, go_dark = 0, treated = 3000)[d$cell]
  d
}

# HC2 by hand from lm()'s hat values, for the coefficients of a model matrix.
hc2_by_hand <- function(M, y) {
  f <- lm(y ~ 0 + M)
  h <- hatvalues(f)
  bread <- solve(crossprod(M))
  meat <- crossprod(M * (resid(f) / sqrt(1 - h)))
  list(coef = unname(coef(f)), vcov = unname(bread %*% meat %*% bread),
       df = f$df.residual)
}

test_that("difference in means and Lin equal lm() with HC2 by hand, to 1e-10", {
  d <- sim_cells()
  fit <- experiment_effect(sales ~ cell, d, covariates = ~ pre + pop,
                           contrasts = list(c("heavy_up", "go_dark")))
  td <- tidy(fit)
  expect_equal(td$term[1:3], c("go_dark - control", "heavy_up - control",
                               "heavy_up - go_dark"))
  expect_equal(td$estimator, rep(c("diff_in_means", "lin"), each = 3))
  # Cells: control first, then the others sorted.
  D <- outer(d$cell, c("control", "go_dark", "heavy_up"), "==") * 1
  C <- rbind(c(-1, 1, 0), c(-1, 0, 1), c(0, -1, 1))
  # Difference in means: cell indicators only.
  ref <- hc2_by_hand(D, d$sales)
  dim_rows <- td[td$estimator == "diff_in_means", ]
  expect_equal(dim_rows$estimate, as.vector(C %*% ref$coef), tolerance = 1e-10)
  expect_equal(dim_rows$std.error, sqrt(diag(C %*% ref$vcov %*% t(C))), tolerance = 1e-10)
  # Neyman: the HC2 variance of a cell mean is its variance over its size.
  v <- tapply(d$sales, d$cell, var) / tapply(d$sales, d$cell, length)
  expect_equal(dim_rows$std.error[1], sqrt(v[["go_dark"]] + v[["control"]]), tolerance = 1e-10)
  # Welch df of each pair.
  welch <- t.test(d$sales[d$cell == "go_dark"], d$sales[d$cell == "control"])$parameter
  expect_equal(dim_rows$df[1], unname(welch), tolerance = 1e-10)
  # Lin: cell indicators, covariates centred at the full-sample mean, and
  # their interactions with every cell.
  Xc <- scale(cbind(d$pre, d$pop), scale = FALSE)
  M <- cbind(D, D[, 1] * Xc, D[, 2] * Xc, D[, 3] * Xc)
  ref <- hc2_by_hand(M, d$sales)
  lin_rows <- td[td$estimator == "lin", ]
  C3 <- cbind(C, matrix(0, 3, 6))
  expect_equal(lin_rows$estimate, as.vector(C3 %*% ref$coef), tolerance = 1e-10)
  V <- C3 %*% ref$vcov %*% t(C3)
  expect_equal(lin_rows$std.error, sqrt(diag(V)), tolerance = 1e-10)
  expect_equal(lin_rows$df, rep(ref$df, 3))
  expect_equal(unname(vcov(fit, estimator = "lin")), V, tolerance = 1e-10)
  expect_equal(dimnames(vcov(fit, estimator = "lin"))[[1]], lin_rows$term)
  expect_error(vcov(fit), class = "mktcausal_error_not_available")
  # The contrasts equal differences of per-cell adjusted means: each cell's
  # own regression on the centred covariates, read at the full-sample mean.
  adj <- vapply(c("control", "go_dark", "heavy_up"), function(cl) {
    s <- d$cell == cl
    unname(coef(lm(d$sales[s] ~ Xc[s, ]))[1])
  }, numeric(1))
  expect_equal(lin_rows$estimate, as.vector(C %*% adj), tolerance = 1e-10)
  expect_equal(coef(fit, estimator = "lin"), stats::setNames(lin_rows$estimate, lin_rows$term))
})

test_that("two cells as labels give the two-arm numbers exactly", {
  d <- sim_cells(n = 60, effects = c(treated = 0.05))
  d$treated01 <- as.integer(d$cell == "treated")
  two <- tidy(experiment_effect(sales ~ treated01, d, covariates = ~ pre, spend = "spend"))
  lab <- tidy(experiment_effect(sales ~ cell, d, covariates = ~ pre, spend = "spend"))
  cols <- c("estimate", "std.error", "df", "conf.low", "conf.high", "p.value", "lift_pct",
            "incremental", "iroas")
  expect_equal(lab$term, rep("treated - control", 2))
  expect_equal(as.matrix(lab[, cols]), as.matrix(two[, cols]), tolerance = 1e-10,
               ignore_attr = TRUE)
})

test_that("two treated cells with different effects are recovered (known truth)", {
  hits <- 0
  for (seed in 1:20) {
    d <- sim_cells(n = 120, seed = seed)
    td <- tidy(experiment_effect(sales ~ cell, d, covariates = ~ pre))
    lin <- td[td$estimator == "lin", ]
    # True average effect of each cell on a cluster's total.
    truth <- c(`go_dark - control` = -0.08, `heavy_up - control` = 0.05) *
      mean(d$counterfactual)
    z <- (lin$estimate - truth[lin$term]) / lin$std.error
    hits <- hits + all(abs(z) < 3)
    # Lift in percent: the effect over the cell's counterfactual mean.
    if (seed == 1) {
      expect_equal(lin$lift_pct, c(-8, 5), tolerance = 0.25 / 5)
    }
  }
  expect_gte(hits, 19)
})

test_that("incremental outcome, spend and iROAS per contrast; go-dark gives a positive iROAS", {
  d <- sim_cells(n = 90)
  fit <- experiment_effect(sales ~ cell, d, covariates = ~ pre, spend = "spend",
                           contrasts = list(c("heavy_up", "go_dark")))
  td <- tidy(fit)
  n <- table(d$cell)
  ms <- tapply(d$spend, d$cell, mean)
  first <- c("go_dark", "heavy_up", "heavy_up")
  second <- c("control", "control", "go_dark")
  expect_equal(td$incremental, td$estimate * as.vector(n[first]))
  expect_equal(td$spend_incremental[1:3], as.vector((ms[first] - ms[second]) * n[first]))
  expect_equal(td$iroas, td$incremental / td$spend_incremental)
  gd <- td[td$term == "go_dark - control" & td$estimator == "lin", ]
  expect_true(all(gd$estimate < 0 & gd$spend_incremental < 0 & gd$iroas > 0))
  expect_false(anyNA(td$iroas))
})

test_that("the reference cell is control when present, else the first level", {
  d <- sim_cells(n = 60)
  d$arm <- factor(d$cell, levels = c("heavy_up", "go_dark", "control"))
  fit <- experiment_effect(sales ~ arm, d)
  expect_equal(tidy(fit)$term, c("heavy_up - control", "go_dark - control"))
  d$arm2 <- factor(sub("control", "bau", d$cell), levels = c("bau", "go_dark", "heavy_up"))
  fit2 <- experiment_effect(sales ~ arm2, d)
  expect_equal(tidy(fit2)$term, c("go_dark - bau", "heavy_up - bau"))
  expect_equal(tidy(fit2)$estimate, tidy(fit)$estimate[2:1])
})

test_that("bad contrasts and spend get classed errors naming the argument", {
  d <- sim_cells(n = 60)
  expect_error(experiment_effect(sales ~ cell, d, contrasts = list(c("heavy_up", "dark"))),
               class = "mktcausal_error_bad_contrast")
  expect_error(experiment_effect(sales ~ cell, d, contrasts = list(c("heavy_up", "dark"))),
               "contrasts")
  expect_error(experiment_effect(sales ~ cell, d, contrasts = list(c("go_dark", "go_dark"))),
               class = "mktcausal_error_bad_contrast")
  expect_error(experiment_effect(sales ~ cell, d, contrasts = list(c("go_dark", "go_dark"))),
               "itself")
  expect_error(experiment_effect(sales ~ cell, d, contrasts = list(1:2)),
               class = "mktcausal_error_bad_contrast")
  d$t01 <- as.integer(d$cell != "control")
  expect_error(experiment_effect(sales ~ t01, d, contrasts = list(c("a", "b"))),
               class = "mktcausal_error_bad_contrast")
  neg <- d
  neg$spend[1] <- -5
  expect_error(experiment_effect(sales ~ cell, neg, spend = "spend"),
               class = "mktcausal_error_bad_spend")
  expect_error(experiment_effect(sales ~ cell, neg, spend = "spend"), "spend")
  # A contrast whose cells spend the same has no iROAS: refused, not NA.
  flat <- d
  flat$spend <- ifelse(flat$cell == "control", 0, 500)
  expect_error(experiment_effect(sales ~ cell, flat, spend = "spend",
                                 contrasts = list(c("heavy_up", "go_dark"))),
               class = "mktcausal_error_bad_spend")
  expect_error(experiment_effect(sales ~ cell, flat, spend = "spend",
                                 contrasts = list(c("heavy_up", "go_dark"))),
               "heavy_up - go_dark")
  expect_equal(nrow(tidy(experiment_effect(sales ~ cell, flat, spend = "spend"))), 2L)
  expect_error(experiment_effect(sales ~ cell, d, cluster = "geo"),
               class = "mktcausal_error_inference_unsupported")
  one <- d[d$cell != "heavy_up" | seq_len(nrow(d)) == 1, ]
  expect_error(experiment_effect(sales ~ cell, one), class = "mktcausal_error_single_arm")
})

test_that("estimand = 'mean' divides by size and scales the increment by population", {
  d <- sim_cells(n = 60)
  fit <- experiment_effect(sales ~ cell, d, estimand = "mean", size = "pop")
  td <- tidy(fit)
  pc <- d$sales / d$pop
  m <- tapply(pc, d$cell, mean)
  expect_equal(td$estimate, unname(c(m["go_dark"] - m["control"], m["heavy_up"] - m["control"])),
               tolerance = 1e-12)
  pop <- tapply(d$pop, d$cell, sum)
  expect_equal(td$incremental, td$estimate * as.vector(pop[c("go_dark", "heavy_up")]))
})

test_that("printout fits in 80 columns and the plot draws every contrast", {
  d <- sim_cells(n = 60)
  fit <- experiment_effect(sales ~ cell, d, covariates = ~ pre, spend = "spend",
                           contrasts = list(c("heavy_up", "go_dark")))
  out <- capture.output(print(fit))
  expect_true(all(nchar(out) <= 80))
  expect_true(any(grepl("Lin regression adjustment (on pre)", out, fixed = TRUE)))
  expect_true(any(grepl("iROAS", out)))
  out2 <- capture.output(print(summary(fit)))
  expect_true(all(nchar(out2) <= 80))
  p <- plot(fit)
  expect_s3_class(p, "ggplot")
  built <- ggplot2::ggplot_build(p)
  expect_equal(nrow(built$data[[3]]), 6L)
  expect_s3_class(plot(fit, type = "outcomes"), "ggplot")
  g <- glance(fit)
  expect_equal(g$n_cells, 3L)
  expect_equal(g$n_contrasts, 3L)
})

test_that("with a stratified multi-cell design: stratum-weighted means by hand, randomization columns", {
  set.seed(3)
  n <- 120
  d <- data.frame(geo = sprintf("g%03d", 1:n), pre = rlnorm(n, 5, 0.4),
                  region = rep(c("a", "b", "c"), c(30, 40, 50)))
  des <- suppressWarnings(rerandomize(d, ~ pre, n_treated = c(heavy_up = 30, go_dark = 30),
                                      strata = "region", accept = 0.2, id = "geo"))
  d$cell <- as.character(des$cell)
  d$sales <- d$pre * (1 + 0.05 * (d$cell == "heavy_up")) + rnorm(n, 0, 5) +
    10 * (d$region == "c")
  fit <- experiment_effect(sales ~ cell, d, design = des, n_draws = 200)
  td <- tidy(fit)
  dim_rows <- td[td$estimator == "diff_in_means", ]
  pis <- table(d$region) / n
  for (a in c("heavy_up", "go_dark")) {
    est <- v <- 0
    for (s in names(pis)) {
      ya <- d$sales[d$region == s & d$cell == a]
      y0 <- d$sales[d$region == s & d$cell == "control"]
      est <- est + pis[[s]] * (mean(ya) - mean(y0))
      v <- v + pis[[s]]^2 * (var(ya) / length(ya) + var(y0) / length(y0))
    }
    row <- dim_rows[dim_rows$term == paste(a, "- control"), ]
    expect_equal(row$estimate, est, tolerance = 1e-10)
    expect_equal(row$std.error, sqrt(v), tolerance = 1e-10)
    expect_equal(row$df, n - 3 * 3)
  }
  expect_true(all(td$p.value_randomization > 0 & td$p.value_randomization <= 1))
  expect_true(all(td$p.value_familywise >= td$p.value_randomization))
  expect_equal(glance(fit)$n_strata, 3L)
  expect_true(all(nchar(capture.output(print(fit))) <= 80))
  # The treatment column must give each cluster its designed cell.
  bad <- d
  bad$cell[1:2] <- rev(bad$cell[1:2])
  if (bad$cell[1] != d$cell[1]) {
    expect_error(experiment_effect(sales ~ cell, bad, design = des),
                 class = "mktcausal_error_misaligned")
  }
  bad$cell[1] <- "heavy"
  expect_error(experiment_effect(sales ~ cell, bad, design = des),
               class = "mktcausal_error_misaligned")
  # Rows in another order are matched by id.
  shuffled <- d[rev(seq_len(n)), ]
  set.seed(5)
  f1 <- experiment_effect(sales ~ cell, shuffled, design = des, n_draws = 200)
  expect_equal(tidy(f1)$estimate, td$estimate, tolerance = 1e-12)
})

test_that("matched blocks of one cluster per cell: block differences and their spread", {
  set.seed(14)
  d <- data.frame(id = sprintf("g%02d", 1:60), x1 = rnorm(60), x2 = rnorm(60))
  s <- stratify(d, method = "matched", covariates = ~ x1 + x2, block_size = 3,
                prop_treated = c(heavy_up = 1 / 3, go_dark = 1 / 3))
  des <- suppressWarnings(rerandomize(d, ~ x1 + x2, strata = s, id = "id", accept = 0.1,
                                      n_draws = 2000))
  d$cell <- as.character(des$cell)
  d$block <- des$strata
  d$sales <- 10 + 3 * d$x1 + rnorm(60) + 1.5 * (d$cell == "heavy_up")
  set.seed(1)
  fit <- experiment_effect(sales ~ cell, d, design = des, n_draws = 300,
                           contrasts = list(c("heavy_up", "go_dark")))
  td <- tidy(fit)
  dim_rows <- td[td$estimator == "diff_in_means", ]
  by_block <- function(cl) d$sales[d$cell == cl][order(d$block[d$cell == cl])]
  D <- cbind(by_block("heavy_up") - by_block("control"),
             by_block("go_dark") - by_block("control"),
             by_block("heavy_up") - by_block("go_dark"))
  expect_equal(dim_rows$estimate, unname(colMeans(D)), tolerance = 1e-10)
  expect_equal(dim_rows$std.error, unname(apply(D, 2, sd) / sqrt(20)), tolerance = 1e-10)
  expect_equal(dim_rows$df, rep(19, 3))
  expect_equal(unname(vcov(fit, estimator = "diff_in_means")), unname(cov(D) / 20),
               tolerance = 1e-10)
  # Lin: the covariates alone (block indicators would leave no residual).
  expect_equal(td$df[td$estimator == "lin"], rep(60 - 3 * 3, 3))
  expect_match(glance(fit)$inference, "matched-block")
  # The randomization test's t is the block-difference t.
  rt <- randomization_test(sales ~ cell, d, design = des, n_draws = 200)
  expect_equal(tidy(rt)$t, dim_rows$estimate[1:2] / dim_rows$std.error[1:2], tolerance = 1e-10)
  expect_true(all(tidy(rt)$p.value_familywise >= tidy(rt)$p.value))
})

test_that("blocks with a leftover cluster: size-weighted block differences of cell means", {
  # 62 clusters in blocks of 3 leave one block of 4 (two controls): the
  # block estimator weights each block by its share of clusters and
  # compares cell means within it (the estimator of unequal matched blocks).
  set.seed(15)
  n <- 62
  d <- data.frame(id = sprintf("g%02d", 1:n), x1 = rnorm(n))
  s <- stratify(d, method = "matched", covariates = ~ x1, block_size = 3,
                prop_treated = c(heavy_up = 1 / 3, go_dark = 1 / 3))
  des <- suppressWarnings(rerandomize(d, ~ x1, strata = s, id = "id", accept = 0.2,
                                      n_draws = 2000))
  expect_identical(sort(unique(as.vector(table(des$strata)))), 3:4)
  d$cell <- as.character(des$cell)
  d$block <- des$strata
  d$sales <- 10 + 3 * d$x1 + rnorm(n) + 2 * (d$cell == "go_dark")
  fit <- experiment_effect(sales ~ cell, d, design = des, n_draws = 200)
  td <- tidy(fit)
  got <- td[td$estimator == "diff_in_means", ]
  m <- tapply(d$sales, list(d$block, d$cell), mean)
  w <- as.vector(table(d$block)[rownames(m)]) / n
  S <- nrow(m)
  for (cl in c("heavy_up", "go_dark")) {
    wd <- w * (m[, cl] - m[, "control"])
    est <- sum(wd)
    se <- sqrt(sum((wd - est / S)^2) * S / (S - 1))
    row <- got[got$term == paste(cl, "- control"), ]
    expect_equal(row$estimate, est, tolerance = 1e-10)
    expect_equal(row$std.error, se, tolerance = 1e-10)
    expect_equal(row$df, S - 1)
  }
  # The randomization test and the power plan use the same estimator.
  rt <- randomization_test(sales ~ cell, d, design = des, n_draws = 200)
  expect_equal(tidy(rt)$t, got$estimate / got$std.error, tolerance = 1e-10)
  # Lin drops the block indicators and keeps the covariates.
  expect_equal(td$df[td$estimator == "lin"], rep(n - 3 * 2, 2))
})
