# Reference numbers from did for tests/testthat/test-staggered.R and
# test-staggered-aggregate.R. Run by hand from the package root with did
# installed in the private library of peers:
#   Rscript data-raw/fixtures-staggered.R
# did is not a dependency of mktcausal; it is needed only here. Analytic
# standard errors (bstrap = FALSE) are stored, since bootstrap draws differ.
.libPaths(c("/work/peers", .libPaths()))
library(did)

load("data/mpdta.rda")
out <- list(did_version = as.character(utils::packageVersion("did")),
            drdid_version = as.character(utils::packageVersion("DRDID")),
            attgt = list(), aggte = list())

grid <- expand.grid(control = c("never", "not_yet"), method = c("dr", "ipw", "reg"),
                    covariates = c(FALSE, TRUE), base = c("varying", "universal"),
                    stringsAsFactors = FALSE)
for (i in seq_len(nrow(grid))) {
  g <- grid[i, ]
  fit <- att_gt(yname = "lemp", tname = "year", idname = "countyreal", gname = "first.treat",
                xformla = if (g$covariates) ~lpop else ~1, data = mpdta,
                control_group = if (g$control == "never") "nevertreated" else "notyettreated",
                est_method = g$method, base_period = g$base, bstrap = FALSE, cband = FALSE)
  key <- paste(g$control, g$method, if (g$covariates) "lpop" else "none", g$base, sep = "_")
  out$attgt[[key]] <- data.frame(group = fit$group, time = fit$t, att = fit$att, se = fit$se)
  if (g$base == "varying") {
    aggs <- list(
      simple = aggte(fit, "simple", bstrap = FALSE, cband = FALSE),
      event = aggte(fit, "dynamic", bstrap = FALSE, cband = FALSE),
      group = aggte(fit, "group", bstrap = FALSE, cband = FALSE),
      calendar = aggte(fit, "calendar", bstrap = FALSE, cband = FALSE),
      event_balanced = aggte(fit, "dynamic", balance_e = 1, bstrap = FALSE, cband = FALSE),
      event_window = aggte(fit, "dynamic", min_e = -2, max_e = 2, bstrap = FALSE, cband = FALSE)
    )
    out$aggte[[key]] <- lapply(aggs, function(a) list(
      overall = c(att = a$overall.att, se = a$overall.se),
      detail = if (is.null(a$egt)) NULL else data.frame(label = a$egt, att = a$att.egt, se = a$se.egt)
    ))
  }
}

# One period of anticipation (never-treated controls, no covariates).
ant <- att_gt(yname = "lemp", tname = "year", idname = "countyreal", gname = "first.treat",
              data = mpdta, anticipation = 1, bstrap = FALSE, cband = FALSE)
out$anticipation <- data.frame(group = ant$group, time = ant$t, att = ant$att, se = ant$se)

# Sampling weights: county population (constant within county).
mpdta_w <- mpdta
mpdta_w$pop <- exp(mpdta_w$lpop)
for (m in c("dr", "reg")) {
  wf <- att_gt(yname = "lemp", tname = "year", idname = "countyreal", gname = "first.treat",
               data = mpdta_w, weightsname = "pop", est_method = m, bstrap = FALSE, cband = FALSE,
               xformla = if (m == "dr") ~lpop else ~1)
  ws <- aggte(wf, "simple", bstrap = FALSE, cband = FALSE)
  we <- aggte(wf, "dynamic", bstrap = FALSE, cband = FALSE)
  out$weighted[[m]] <- list(
    attgt = data.frame(group = wf$group, time = wf$t, att = wf$att, se = wf$se),
    simple = c(att = ws$overall.att, se = ws$overall.se),
    event = data.frame(label = we$egt, att = we$att.egt, se = we$se.egt))
}

dir.create("tests/testthat/fixtures", showWarnings = FALSE, recursive = TRUE)
saveRDS(out, "tests/testthat/fixtures/staggered-did.rds", version = 2)
