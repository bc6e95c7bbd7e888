# A line of 6 units: 1-2-3-4-5-6.
line_adjacency <- function() {
  ids <- paste0("u", 1:6)
  A <- matrix(0, 6, 6, dimnames = list(ids, ids))
  for (i in 1:5) A[i, i + 1] <- A[i + 1, i] <- 1
  A
}

test_that("exposure mappings count, share and flag treated neighbours", {
  A <- mktcausal:::neighbour_matrix(line_adjacency(), paste0("u", 6:1))
  expect_identical(rownames(A), paste0("u", 6:1))
  d <- c(1, 0, 0, 1, 0, 0)  # u6 and u3 treated (rows in order u6..u1)
  W <- matrix(d, ncol = 1)
  expect_equal(as.vector(mktcausal:::exposure_of(A, W, "count")), c(0, 1, 1, 0, 1, 0))
  expect_equal(as.vector(mktcausal:::exposure_of(A, W, "share")), c(0, 0.5, 0.5, 0, 0.5, 0))
  expect_equal(as.vector(mktcausal:::exposure_of(A, W, "any")), c(0, 1, 1, 0, 1, 0))
  expect_equal(as.vector(mktcausal:::exposure_condition(A, W)), c(3, 2, 2, 3, 2, 1))
  # u2 and u3 treated: u1 has its only neighbour treated, u4 one of two
  W2 <- matrix(c(0, 0, 0, 1, 1, 0), ncol = 1)
  expect_equal(as.vector(mktcausal:::exposure_of(A, W2, "count")), c(0, 0, 1, 1, 1, 1))
  expect_equal(as.vector(mktcausal:::exposure_of(A, W2, "share")), c(0, 0, 0.5, 0.5, 0.5, 1))

  # group membership and distances within a radius
  d2 <- data.frame(id = paste0("u", 1:4), g = c("a", "a", "b", "b"))
  G <- mktcausal:::neighbour_matrix("g", d2$id, d2, "id")
  expect_equal(unname(G), matrix(c(0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0), 4))
  D <- as.matrix(stats::dist(c(u1 = 0, u2 = 1, u3 = 3, u4 = 3.5)))
  R <- mktcausal:::neighbour_matrix(D, paste0("u", 1:4), radius = 1)
  expect_equal(unname(R), unname(G))
})

test_that("the regression recovers direct and spillover effects and equals OLS", {
  set.seed(21)
  n <- 300
  d <- data.frame(id = sprintf("m%03d", 1:n), x = runif(n), y = runif(n),
                  pre = rnorm(n, 50, 5))
  dist <- as.matrix(stats::dist(d[, c("x", "y")]))
  dimnames(dist) <- list(d$id, d$id)
  d$treated <- rbinom(n, 1, 0.4)
  near <- (dist <= 0.1) * 1
  diag(near) <- 0
  share <- ifelse(rowSums(near) > 0, drop(near %*% d$treated) / pmax(rowSums(near), 1), 0)
  d$sales <- d$pre + 4 * d$treated + 6 * share + rnorm(n)
  fit <- spillover(sales ~ treated, d, adjacency = dist, radius = 0.1,
                   covariates = ~ pre, id = "id")
  tab <- tidy(fit)
  expect_identical(tab$term, c("direct", "spillover"))
  expect_true(all(abs(tab$estimate - c(4, 6)) < 3 * tab$std.error))
  ols <- stats::lm(sales ~ treated + share + pre, data = cbind(d, share = share))
  expect_equal(tab$estimate, unname(coef(ols)[2:3]), tolerance = 1e-10)
  expect_equal(fit$exposure$exposure, unname(share), tolerance = 1e-12)
  expect_identical(glance(fit)$design_based, FALSE)
  expect_s3_class(plot(fit), "ggplot")
  expect_s3_class(plot(fit, type = "exposure"), "ggplot")
  # The regression's two rows have a joint covariance.
  expect_equal(vcov(fit), fit$regression$vcov[c("direct", "spillover"), c("direct", "spillover")])
  expect_identical(nobs(fit), 300L)
})

test_that("the Aronow-Samii variance matches its double sum", {
  set.seed(22)
  m <- 7
  u <- rnorm(m)
  I <- c(1, 0, 1, 1, 0, 1, 0)
  p <- runif(m, 0.2, 0.8)
  P <- matrix(runif(m * m, 0, 0.3), m)
  P <- (P + t(P)) / 2
  P[1, 3] <- P[3, 1] <- 0
  diag(P) <- p
  brute <- 0
  for (i in 1:m) for (j in 1:m) {
    if (P[i, j] > 0) {
      brute <- brute + I[i] * I[j] * (P[i, j] - p[i] * p[j]) / P[i, j] *
        u[i] * u[j] / (p[i] * p[j])
    } else {
      brute <- brute + I[i] * u[i]^2 / (2 * p[i]) + I[j] * u[j]^2 / (2 * p[j])
    }
  }
  expect_equal(mktcausal:::as_variance(u, I, p, P), brute, tolerance = 1e-12)
  Il <- 1 - I
  pl <- runif(m, 0.2, 0.8)
  Q <- matrix(runif(m * m, 0, 0.3), m)
  diag(Q) <- 0
  Q[2, 5] <- 0
  brute <- 0
  for (i in 1:m) for (j in 1:m) {
    if (Q[i, j] > 0) {
      brute <- brute + I[i] * Il[j] * (Q[i, j] - p[i] * pl[j]) / Q[i, j] *
        u[i] * u[j] / (p[i] * pl[j])
    } else {
      brute <- brute - I[i] * u[i]^2 / (2 * p[i]) - Il[j] * u[j]^2 / (2 * pl[j])
    }
  }
  expect_equal(mktcausal:::as_covariance(u, I, p, u, Il, pl, Q), brute, tolerance = 1e-12)
})

test_that("design-based estimators are unbiased over the design's own assignments", {
  set.seed(23)
  n <- 60
  geo <- data.frame(id = sprintf("g%02d", 1:n), x = runif(n), y = runif(n),
                    pre = rnorm(n, 10, 2))
  dist <- as.matrix(stats::dist(geo[, c("x", "y")]))
  dimnames(dist) <- list(geo$id, geo$id)
  des <- rerandomize(geo, ~ pre, n_treated = 15, accept = 0.3, id = "id")
  A <- mktcausal:::neighbour_matrix(dist, geo$id, radius = 0.15)
  base <- geo$pre + rnorm(n)
  Y <- cbind(base, base + 3, base + 5, base + 8)  # conditions 1..4
  C <- mktcausal:::exposure_condition(A, mktcausal:::exposure_pool(des, 3000)$assignments)
  obs <- mktcausal:::exposure_pool(des, 300)$assignments
  res <- vapply(seq_len(ncol(obs)), function(r) {
    cond <- as.vector(mktcausal:::exposure_condition(A, obs[, r, drop = FALSE]))
    out <- mktcausal:::design_based_spillover(Y[cbind(1:n, cond)], cond, C, 0.05)$rows
    c(out$estimate, out$std.error)
  }, numeric(12))
  est <- res[1:6, ]
  se <- res[7:12, ]
  truth <- c(5, 5, 3, 3, 3, 3)
  mc_se <- apply(est, 1, sd, na.rm = TRUE) / sqrt(rowSums(!is.na(est)))
  expect_true(all(abs(rowMeans(est, na.rm = TRUE) - truth) < 4 * mc_se))
  # the variance estimator is conservative up to Monte Carlo error
  expect_true(all(rowMeans(se, na.rm = TRUE) > 0.85 * apply(est, 1, sd, na.rm = TRUE)))
})

test_that("with a design, spillover() adds Horvitz-Thompson and Hajek rows", {
  set.seed(24)
  n <- 50
  geo <- data.frame(id = sprintf("g%02d", 1:n), region = rep(letters[1:10], each = 5),
                    pre = rnorm(n, 10, 2))
  des <- rerandomize(geo, ~ pre, n_treated = 20, accept = 0.5, id = "id")
  geo$treated <- des$treated
  geo$sales <- geo$pre + 2 * geo$treated + rnorm(n)
  fit <- spillover(sales ~ treated, geo, adjacency = "region", exposure = "share",
                   design = des, n_draws = 500)
  tab <- tidy(fit)
  expect_setequal(unique(tab$estimator), c("regression", "horvitz_thompson", "hajek"))
  expect_equal(dim(fit$exposure_prob), c(n, 4L))
  expect_equal(unname(rowSums(fit$exposure_prob)), rep(1, n))
  # 20 of 50 treated: each unit is treated with probability 0.4
  expect_equal(unname(rowSums(fit$exposure_prob[, 3:4])), rep(0.4, n), tolerance = 0.08)
  expect_identical(glance(fit)$n_draws, 500L)
  expect_output(print(fit), "Hajek|hajek")
  expect_identical(tab$term, c("direct", "spillover", paste(
    rep(c("direct", "spillover", "spillover_treated"), each = 2),
    c("ht", "hajek"), sep = "_")))
  expect_setequal(names(tidy(fit, "exposure_prob")),
                  c("id", "control_isolated", "control_exposed", "treated_isolated",
                    "treated_exposed"))
  # Three estimators of the same effects have no joint covariance.
  expect_error(vcov(fit), class = "mktcausal_error_not_available")
})

test_that("bad inputs to spillover() raise classed errors", {
  d <- data.frame(id = paste0("u", 1:6), treated = c(1, 0, 0, 1, 0, 0),
                  sales = rnorm(6))
  A <- line_adjacency()
  expect_error(spillover(sales ~ treated, d[1:5, ], adjacency = A[1:4, 1:4], id = "id"),
               class = "mktcausal_error_bad_adjacency")
  expect_error(spillover(sales ~ treated, d, adjacency = A[, 1:5], id = "id"),
               class = "mktcausal_error_bad_adjacency")
  expect_error(spillover(sales ~ treated, d, adjacency = A), class = "mktcausal_error_bad_argument")
  expect_error(spillover(sales ~ treated, d, adjacency = A * 0, id = "id"),
               class = "mktcausal_error_no_variation")
  expect_error(spillover(sales ~ treated, d, adjacency = "nope", id = "id"),
               class = "mktcausal_error_bad_adjacency")
  flat <- d
  flat$sales <- 2
  expect_error(spillover(sales ~ treated, flat, adjacency = A, id = "id"),
               regexp = "sales", class = "mktcausal_error_no_variation")
  tryCatch(spillover(sales ~ treated, d, adjacency = A[1:4, 1:4], id = "id"),
           mktcausal_error = function(e) expect_match(conditionMessage(e), "u5"))
})

test_that("on a panel, spillover() absorbs unit and time effects and recovers the truth", {
  set.seed(25)
  n <- 60
  n_t <- 10
  ids <- sprintf("s%02d", 1:n)
  pos <- stats::setNames(runif(n), ids)
  dist <- as.matrix(stats::dist(pos))
  dimnames(dist) <- list(ids, ids)
  start <- stats::setNames(sample(c(4, 6, 8, NA), n, replace = TRUE), ids)
  d <- expand.grid(store = ids, week = seq_len(n_t), stringsAsFactors = FALSE)
  d$promo <- as.integer(!is.na(start[d$store]) & d$week >= start[d$store])
  near <- (dist <= 0.05) * 1
  diag(near) <- 0
  D <- matrix(d$promo, n, n_t)  # expand.grid: store varies fastest
  share <- (near %*% D) / pmax(rowSums(near), 1)
  d$share <- as.vector(share)
  d$price <- rnorm(nrow(d))
  d$sales <- 50 + rep(rnorm(n, 0, 5), n_t) + rep(rnorm(n_t), each = n) +
    3 * d$promo + 2 * d$share - d$price + rnorm(nrow(d), 0, 0.5)
  fit <- spillover(sales ~ promo + price | store + week, d, adjacency = dist, radius = 0.05)
  tab <- tidy(fit)
  expect_identical(tab$term, c("direct", "spillover"))
  expect_true(all(abs(tab$estimate - c(3, 2)) < 3 * tab$std.error))
  ols <- stats::lm(sales ~ promo + share + price + factor(store) + factor(week), data = d)
  expect_equal(tab$estimate, unname(coef(ols)[c("promo", "share")]), tolerance = 1e-8)
  expect_identical(fit$regression$se_type, "CR1")
  expect_equal(nrow(fit$exposure), n * n_t)
  expect_identical(fit$n$clusters, as.integer(n))
  # The panel owns the cluster and the group columns: clustering by a
  # coarser region, and neighbours from a group column, read once.
  d$region <- paste0("r", (match(d$store, ids) - 1L) %/% 6L)
  by_region <- spillover(sales ~ promo + price | store + week, d, adjacency = dist,
                         radius = 0.05, cluster = "region")
  expect_equal(coef(by_region), coef(fit))
  expect_identical(by_region$n$clusters, 10L)
  expect_false(isTRUE(all.equal(tidy(by_region)$std.error, tab$std.error)))
  groups <- spillover(sales ~ promo + price | store + week, d, adjacency = "region")
  same <- outer(d$region[1:n], d$region[1:n], "==") * 1
  dimnames(same) <- list(ids, ids)
  expect_equal(coef(groups), coef(spillover(sales ~ promo + price | store + week, d,
                                            adjacency = same)))
  flat <- d
  flat$sales <- 0
  expect_error(spillover(sales ~ promo + price | store + week, flat, adjacency = "region"),
               regexp = "sales", class = "mktcausal_error_no_variation")
  expect_error(spillover(sales ~ promo | store + week, d, adjacency = dist, radius = 0.05,
                         covariates = ~ price), class = "mktcausal_error_bad_argument")
})

test_that("design-based exposure probabilities follow the design's buffer rule", {
  sg <- sim_grid(8, 8, seed = 80)
  d <- sg$data
  set.seed(80)
  des <- rerandomize(d, ~ x1 + interior, n_treated = 16, accept = 0.05, id = "id",
                     buffer = sg$adjacency, n_draws = 2000)
  d$treated <- des$treated
  exposed <- as.vector(sg$adjacency %*% des$treated > 0)
  d$y <- 10 + d$x1 + 2 * d$treated + 1.5 * (1 - d$treated) * exposed +
    withr::with_seed(81, stats::rnorm(64, sd = 0.5))
  set.seed(82)
  fit <- spillover(y ~ treated, d, adjacency = sg$adjacency, exposure = "any", design = des,
                   n_draws = 1000)
  # Buffer clusters are exactly the exposed controls.
  expect_equal(sum(fit$exposure$condition == "control_exposed"), sum(des$arm == "buffer"))
  # Every simulated assignment passes the buffered balance rule ...
  set.seed(82)
  pool <- exposure_pool(des, 1000)
  vals <- buffered_values(des$spec, pool$assignments)$values
  expect_true(all(vals <= des$threshold))
  # ... so the probability of being an exposed control is the design's
  # probability of being in the buffer, up to Monte Carlo error.
  expect_lt(max(abs(fit$exposure_prob[, "control_exposed"] - des$arm_prob[, "buffer"])), 0.08)
  sp <- tidy(fit)
  hajek <- sp$estimate[sp$estimator == "hajek" & sp$effect == "spillover"]
  expect_lt(abs(hajek - 1.5), 0.6)
})

test_that("distances without a radius are refused, never read as weights", {
  set.seed(31)
  n <- 40
  geo <- data.frame(id = sprintf("g%02d", 1:n), x = stats::runif(n), y = stats::runif(n))
  D <- as.matrix(stats::dist(geo[, c("x", "y")]))
  dimnames(D) <- list(geo$id, geo$id)
  geo$treated <- rep(0:1, 20)
  near <- (D <= 0.1) * 1
  diag(near) <- 0
  geo$sales <- 10 + 2 * geo$treated + 3 * as.vector(near %*% geo$treated > 0) + stats::rnorm(n)
  for (adj in list(D, stats::dist(geo[, c("x", "y")]))) {
    if (inherits(adj, "dist")) attr(adj, "Labels") <- geo$id
    err <- tryCatch(spillover(sales ~ treated, geo, adjacency = adj, id = "id"),
                    error = identity)
    expect_s3_class(err, "mktcausal_error_bad_adjacency")
    expect_match(conditionMessage(err), "radius", fixed = TRUE)
  }
  # With the radius, units within it are neighbours: the same fit as the
  # 0/1 adjacency built by hand.
  by_radius <- spillover(sales ~ treated, geo, adjacency = D, radius = 0.1, id = "id",
                         exposure = "any")
  by_hand <- spillover(sales ~ treated, geo, adjacency = near, id = "id", exposure = "any")
  expect_equal(coef(by_radius), coef(by_hand))
  # Weights that fall with distance are weights: they break the triangle
  # inequality and are used as they are; I() passes any matrix as weights.
  W <- exp(-D / 0.1)
  diag(W) <- 0
  w_fit <- spillover(sales ~ treated, geo, adjacency = W, id = "id")
  expect_equal(w_fit$exposure$exposure,
               unname(as.vector(W %*% geo$treated) / rowSums(W)))
  expect_equal(coef(spillover(sales ~ treated, geo, adjacency = I(W), id = "id")), coef(w_fit))
  # A radius with anything but distances is refused.
  expect_error(spillover(sales ~ treated, geo, adjacency = near, radius = 0.1, id = "id"),
               class = "mktcausal_error_bad_argument")
  geo$region <- rep(letters[1:4], 10)
  expect_error(spillover(sales ~ treated, geo, adjacency = "region", radius = 1, id = "id"),
               class = "mktcausal_error_bad_argument")
  expect_error(spillover(sales ~ treated, geo, id = "id"), class = "mktcausal_error_bad_adjacency")
})

test_that("outcomes near 1e300 and 1e-300 give the scaled spillover answer", {
  set.seed(3)
  n <- 40
  d <- data.frame(id = seq_len(n), group = rep(1:10, each = 4), treated = rbinom(n, 1, 0.5))
  d$sales <- 10 + 2 * d$treated + rnorm(n)
  base <- spillover(sales ~ treated, data = d, adjacency = "group", exposure = "share", id = "id")
  for (k in c(1e300, 1e-300)) {
    dk <- d
    dk$sales <- d$sales * k
    fit <- spillover(sales ~ treated, data = dk, adjacency = "group", exposure = "share", id = "id")
    expect_equal(fit$estimates$estimate / k, base$estimates$estimate, tolerance = 1e-8)
    expect_equal(fit$estimates$std.error / k, base$estimates$std.error, tolerance = 1e-8)
    expect_false(any(is.nan(fit$vcov)))
  }
})
