test_that("aggregations equal did's aggte on mpdta", {
  ref <- readRDS(test_path("fixtures", "staggered-did.rds"))
  d <- mpdta
  d$post <- as.integer(d$first.treat > 0 & d$year >= d$first.treat)
  for (key in names(ref$aggte)) {
    parts <- strsplit(key, "_")[[1]]
    control <- if (parts[1] == "not") "not_yet" else "never"
    rest <- if (parts[1] == "not") parts[-(1:2)] else parts[-1]
    f <- if (rest[2] == "lpop") lemp ~ post + lpop | countyreal + year else lemp ~ post | countyreal + year
    fit <- staggered(f, d, method = rest[1], control = control, n_draws = 0)
    r <- ref$aggte[[key]]
    ours <- list(
      simple = aggregate(fit, "simple"), event = aggregate(fit, "event"),
      group = aggregate(fit, "group"), calendar = aggregate(fit, "calendar"),
      event_balanced = aggregate(fit, "event", balance_e = 1),
      event_window = aggregate(fit, "event", min_e = -2, max_e = 2)
    )
    for (a in names(ours)) {
      td <- tidy(ours[[a]])
      expect_identical(td$term[1], "overall")
      expect_lt(abs(td$estimate[1] - r[[a]]$overall[["att"]]), 1e-6)
      expect_lt(abs(td$std.error[1] - r[[a]]$overall[["se"]]), 1e-6)
      if (!is.null(r[[a]]$detail)) {
        det <- td[-1, ]
        lab <- det[[switch(sub("_.*", "", a), event = "event", group = "group", calendar = "time")]]
        expect_identical(as.numeric(lab), as.numeric(r[[a]]$detail$label), info = paste(key, a))
        expect_lt(max(abs(det$estimate - r[[a]]$detail$att)), 1e-6)
        expect_lt(max(abs(det$std.error - r[[a]]$detail$se)), 1e-6)
      }
    }
  }
})

test_that("aggregate bands: uniform from the bootstrap, first row overall", {
  d <- sim_staggered(n = 400, noise = 1, seed = 12)
  set.seed(2)
  fit <- staggered(y ~ post | unit + time, d, n_draws = 400)
  ev <- aggregate(fit, "event")
  td <- tidy(ev)
  expect_identical(td$term[1], "overall")
  expect_identical(td$event[-1], -5:5)
  half <- (td$conf.high - td$conf.low)[-1] / 2
  expect_equal(half, ev$crit * td$std.error.boot[-1], tolerance = 1e-12)
  expect_gt(ev$crit, stats::qnorm(0.975))
  expect_s3_class(plot(ev), "ggplot")
  expect_equal(unname(coef(ev)), td$estimate)
  expect_error(aggregate(fit, "event", min_e = 3, max_e = 1), class = "mktcausal_error_bad_argument")
  expect_error(aggregate(fit, "events"), class = "mktcausal_error_bad_choice")
  expect_error(aggregate(fit, "event", n_boot = 9), class = "mktcausal_error_unknown_argument")
  # vcov() from the influence functions: its diagonal gives the standard errors.
  expect_equal(sqrt(diag(vcov(ev))), td$std.error, tolerance = 1e-12, ignore_attr = TRUE)
})

test_that("sampling weights: ATT(g,t), SEs and aggregations equal did's", {
  ref <- readRDS(test_path("fixtures", "staggered-did.rds"))$weighted
  d <- mpdta
  d$post <- as.integer(d$first.treat > 0 & d$year >= d$first.treat)
  d$pop <- exp(d$lpop)
  for (m in names(ref)) {
    f <- if (m == "dr") lemp ~ post + lpop | countyreal + year else lemp ~ post | countyreal + year
    fit <- staggered(f, d, method = m, weights = "pop", n_draws = 0)
    td <- tidy(fit)
    expect_lt(max(abs(td$estimate - ref[[m]]$attgt$att)), 1e-6)
    expect_lt(max(abs(td$std.error - ref[[m]]$attgt$se)), 1e-6)
    s <- tidy(aggregate(fit, "simple"))
    expect_lt(abs(s$estimate - ref[[m]]$simple[["att"]]), 1e-6)
    expect_lt(abs(s$std.error - ref[[m]]$simple[["se"]]), 1e-6)
    e <- tidy(aggregate(fit, "event"))[-1, ]
    expect_lt(max(abs(e$estimate - ref[[m]]$event$att)), 1e-6)
    expect_lt(max(abs(e$std.error - ref[[m]]$event$se)), 1e-6)
  }
})
