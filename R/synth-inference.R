# Inference for synth(): one labelled method per fit. Every replicate loop
# runs through resample_chunks(), so plans, progress and seeds behave the
# same as everywhere else in the package.

# Inference that permutes or conformalises around one treated unit.
require_one_treated <- function(setup, what, call) {
  if (length(setup$treated) > 1L) {
    abort_mkt("inference_unsupported", c(
      paste(what, "needs exactly one treated unit; there are {length(setup$treated)}."),
      i = "Use {.code method = \"sdid\"} with {.code inference = \"placebo\"} for several treated units."
    ), call = call)
  }
  invisible(TRUE)
}

synth_inference <- function(fit, setup, inference, n_draws, predictors, fit_periods,
                            drop_poor_placebos, alpha, call = rlang::caller_env()) {
  method <- fit$method
  if (inference == "conformal") return(synth_conformal(fit, setup, alpha, call = call))
  if (method %in% c("sc", "asc")) {
    if (inference != "placebo") {
      abort_mkt("inference_unsupported", c(
        "{.code inference = \"{inference}\"} is not available for {.code method = \"{method}\"}.",
        i = "Use {.code inference = \"placebo\"} (placebo in space), or {.code method = \"sdid\"} for jackknife or bootstrap standard errors."
      ), call = call)
    }
    require_one_treated(setup, "Placebo in space for {.code method = \"sc\"}", call)
    return(placebo_in_space(fit, setup, predictors, fit_periods, drop_poor_placebos))
  }
  if (inference %in% c("jackknife", "bootstrap") && length(setup$treated) < 2L) {
    abort_mkt("inference_unsupported", c(
      "{.code inference = \"{inference}\"} needs at least two treated units; there is one.",
      i = "With one treated unit use {.code inference = \"placebo\"} (Arkhangelsky et al. 2021, Section 5)."
    ), call = call)
  }
  if (inference == "placebo" && length(setup$donors) <= length(setup$treated)) {
    abort_mkt("inference_unsupported", c(
      "Placebo standard errors need more donors ({length(setup$donors)}) than treated units ({length(setup$treated)}).",
      i = "Use {.code inference = \"jackknife\"} or {.code \"bootstrap\"}."
    ), call = call)
  }
  draws <- switch(inference,
    placebo = placebo_draws(setup, method, n_draws,
                            lapply(fit$fits, function(f) f$sigma)),
    bootstrap = bootstrap_draws(setup, method, n_draws),
    jackknife = jackknife_draws(fit, setup))
  n <- length(draws)
  se <- if (inference == "jackknife") {
    sqrt((n - 1) / n * sum((draws - mean(draws))^2))
  } else {
    sqrt((n - 1) / n) * stats::sd(draws)
  }
  z <- stats::qnorm(1 - alpha / 2)
  fit$std.error <- se
  fit$conf.low <- fit$estimate - z * se
  fit$conf.high <- fit$estimate + z * se
  fit$p.value <- 2 * stats::pnorm(-abs(fit$estimate / se))
  fit$draws <- draws
  fit
}

# Placebo in space (Abadie et al. 2010): each donor in turn plays the treated
# unit, fitted from the other donors with the same specification.
placebo_in_space <- function(fit, setup, predictors, fit_periods, drop_poor_placebos) {
  g <- setup$groups[[1]]
  donors <- setup$donors
  chunks <- resample_chunks(length(donors), function(idx) {
    lapply(idx, function(k) {
      f <- fit_one(setup, donors[k], g$t0, donors[-k], fit$method, predictors, fit_periods)
      list(gap = f$gap, pre = f$pre_rmspe, post = f$post_rmspe, att = f$att)
    })
  }, chunk_size = 10L, label = "placebos in space")
  pl <- unlist(chunks, recursive = FALSE)
  unit_names <- as.character(setup$panel$units)
  tr <- fit$att_fit
  tab <- data.frame(
    unit = c(unit_names[g$treated], unit_names[donors]),
    treated = c(TRUE, rep(FALSE, length(donors))),
    att = c(tr$att, vapply(pl, `[[`, numeric(1), "att")),
    pre_rmspe = c(tr$pre_rmspe, vapply(pl, `[[`, numeric(1), "pre")),
    post_rmspe = c(tr$post_rmspe, vapply(pl, `[[`, numeric(1), "post")),
    stringsAsFactors = FALSE)
  tab$ratio <- tab$post_rmspe / tab$pre_rmspe
  tab$kept <- tab$treated | tab$pre_rmspe^2 <= drop_poor_placebos * tr$pre_rmspe^2
  kept <- tab[tab$kept, ]
  # Rank of the treated unit's ratio among all kept units (ties count
  # against the treated unit), as in Abadie et al.
  fit$p.value <- mean(kept$ratio >= kept$ratio[kept$treated])
  tab$rank <- rank(-tab$ratio, ties.method = "max")
  times <- setup$panel$times
  fit$placebo <- tab
  fit$placebo_series <- data.frame(
    unit = rep(tab$unit, each = length(times)),
    treated = rep(tab$treated, each = length(times)),
    kept = rep(tab$kept, each = length(times)),
    time = rep(times, nrow(tab)),
    event_time = rep(seq_along(times) - g$t0, nrow(tab)),
    gap = c(fit$fits[[1]]$gap, unlist(lapply(pl, `[[`, "gap"))),
    stringsAsFactors = FALSE)
  fit
}

# The overall ATT of a set of treated groups fitted from `donors`.
synth_tau <- function(setup, groups, donors, method, sigma = NULL) {
  fits <- lapply(seq_along(groups), function(k) {
    g <- groups[[k]]
    fit_one(setup, g$treated, g$t0, donors, method, NULL, NULL, sigma = sigma[[k]])
  })
  n_tr <- vapply(groups, function(g) length(g$treated), numeric(1))
  sum(n_tr * vapply(fits, `[[`, numeric(1), "att")) / sum(n_tr)
}

# Algorithm 4 of Arkhangelsky et al.: donors drawn at random take the place
# of each cohort's treated units; the estimator is rerun on donors only.
placebo_draws <- function(setup, method, n_draws, sigma) {
  donors <- setup$donors
  groups <- setup$groups
  sizes <- vapply(groups, function(g) length(g$treated), integer(1))
  chunks <- resample_chunks(n_draws, function(idx) {
    vapply(idx, function(r) {
      pick <- sample(donors, sum(sizes))
      cut <- rep(seq_along(groups), sizes)
      pg <- lapply(seq_along(groups), function(k) list(treated = pick[cut == k], t0 = groups[[k]]$t0))
      synth_tau(setup, pg, setdiff(donors, pick), method, sigma)
    }, numeric(1))
  }, chunk_size = 50L, label = "placebo replications")
  unlist(chunks)
}

# Algorithm 2: units resampled with replacement, weights re-estimated. Draws
# without a treated unit or without a donor are redrawn.
bootstrap_draws <- function(setup, method, n_draws) {
  units <- c(setup$treated, setup$donors)
  is_tr <- units %in% setup$treated
  t0 <- setup$t0_index
  chunks <- resample_chunks(n_draws, function(idx) {
    vapply(idx, function(r) {
      repeat {
        b <- sample.int(length(units), replace = TRUE)
        if (any(is_tr[b]) && any(!is_tr[b])) break
      }
      tr <- units[b][is_tr[b]]
      groups <- lapply(split(tr, t0[tr]), function(ii) list(treated = ii, t0 = t0[ii[1]]))
      synth_tau(setup, groups, units[b][!is_tr[b]], method)
    }, numeric(1))
  }, chunk_size = 50L, label = "bootstrap replications")
  unlist(chunks)
}

# Algorithm 3: leave one unit out with the unit and time weights held fixed
# (donor weights renormalised).
jackknife_draws <- function(fit, setup) {
  Y <- setup$panel$Y
  units <- c(setup$treated, setup$donors)
  chunks <- resample_chunks(length(units), function(idx) {
    vapply(idx, function(k) {
      drop <- units[k]
      att <- n <- numeric(0)
      for (f in fit$fits) {
        tr <- setdiff(f$treated, drop)
        if (!length(tr)) next
        keep <- setup$donors != drop
        w <- f$w[keep] / sum(f$w[keep])
        y1 <- colMeans(Y[tr, , drop = FALSE])
        gap <- y1 - drop(crossprod(Y[setup$donors[keep], , drop = FALSE], w))
        post <- seq_along(gap) >= f$t0
        att <- c(att, mean(gap[post]) - sum(f$lambda * gap))
        n <- c(n, length(tr))
      }
      sum(n * att) / sum(n)
    }, numeric(1))
  }, chunk_size = 50L, label = "jackknife")
  unlist(chunks)
}
