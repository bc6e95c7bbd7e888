# Inference for synth(): one labelled method per fit. Placebos of the
# outcome-only synthetic control are solved in one compiled call
# (placebo_gaps() in synth-core.R); every other replicate loop runs through
# resample_chunks(), so plans, progress and seeds behave the same as
# everywhere else in the package. Each function returns the pieces of the fit
# its inference fills in (estimate columns, vcov, tables), never the fit.

# Refuses, before any fitting, an inference the fit cannot have.
check_synth_inference <- function(setup, method, inference, predictors, pool,
                                  call = rlang::caller_env()) {
  if (inference == "none") return(invisible(TRUE))
  if (pool > 0 && length(setup$groups) > 1L) {
    abort_mkt("inference_unsupported", c(
      "Inference for partially pooled weights is not available.",
      i = "Use {.code pool = 0}, or {.code method = \"sdid\"} with placebo standard errors."
    ), call = call)
  }
  if (inference == "conformal") {
    if (!method %in% c("sc", "asc") || !is.null(predictors)) {
      abort_mkt("inference_unsupported", c(
        "Conformal inference is implemented for outcome-only {.code \"sc\"} and {.code \"asc\"}.",
        i = "Drop {.arg predictors}, or use {.code inference = \"placebo\"}."
      ), call = call)
    }
    require_one_treated(setup, "Conformal inference", call)
    return(invisible(TRUE))
  }
  if (method %in% c("sc", "asc")) {
    if (inference != "placebo") {
      abort_mkt("inference_unsupported", c(
        "{.code inference = \"{inference}\"} is not available for {.code method = \"{method}\"}.",
        i = "Use {.code inference = \"placebo\"} (placebo in space), or {.code method = \"sdid\"} for jackknife or bootstrap standard errors."
      ), call = call)
    }
    require_one_treated(setup, "Placebo in space for {.code method = \"sc\"}", call)
    # Each placebo is fitted from the other donors: sc needs one left, asc
    # two (its ridge regression runs across donors).
    need <- if (method == "asc") 3L else 2L
    if (length(setup$donors) < need) {
      abort_mkt("too_few_controls", c(
        "Placebos in space for {.code method = \"{method}\"} need at least {need} donors; there {?is/are} {length(setup$donors)}.",
        i = "Each donor in turn is fitted from the others. Add donors, or use {.code inference = \"conformal\"}."
      ), call = call)
    }
    return(invisible(TRUE))
  }
  if (inference == "jackknife" && length(setup$donors) < 2L) {
    abort_mkt("too_few_controls", c(
      "The jackknife needs at least two donors; there is one.",
      i = "Leaving the only donor out leaves no comparison. Use {.code inference = \"bootstrap\"} or add donors."
    ), call = call)
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
  invisible(TRUE)
}

# Standard errors of sdid and did from replications: the placebo (Algorithm
# 4), unit bootstrap (Algorithm 2) or jackknife (Algorithm 3) of
# Arkhangelsky et al. (2021), with normal intervals and p-values.
synth_standard_error <- function(setup, fits, att, method, inference, n_draws, alpha) {
  draws <- switch(inference,
    placebo = placebo_draws(setup, method, n_draws, lapply(fits, `[[`, "sigma")),
    bootstrap = bootstrap_draws(setup, method, n_draws),
    jackknife = jackknife_draws(setup, fits))
  n <- length(draws)
  se <- if (inference == "jackknife") {
    sqrt((n - 1) / n * sum((draws - mean(draws))^2))
  } else {
    sqrt((n - 1) / n) * stats::sd(draws)
  }
  z <- stats::qnorm(alpha / 2, lower.tail = FALSE)
  list(estimates = list(std.error = se, conf.low = att - z * se, conf.high = att + z * se,
                        # A placebo distribution with no spread (a constant
                        # outcome) and a zero effect: no evidence, not NaN.
                        p.value = if (se == 0 && att == 0) 1 else 2 * stats::pnorm(-abs(att / se))),
       vcov = matrix(se^2), draws = draws,
       label = switch(inference,
         placebo = sprintf("placebo SE, %d draws of donors as treated (Arkhangelsky et al. 2021, Alg. 4); normal interval", n),
         bootstrap = sprintf("unit bootstrap SE, %d draws (Arkhangelsky et al. 2021, Alg. 2); normal interval", n),
         jackknife = sprintf("jackknife SE over %d units, weights fixed (Arkhangelsky et al. 2021, Alg. 3); normal interval", n)))
}

# Placebo in space (Abadie et al. 2010): each donor in turn plays the treated
# unit, fitted from the other donors with the same specification. The
# p-value is the treated unit's rank by post/pre RMSPE ratio among the units
# kept. Outcome-only sc placebos are solved in one compiled call; predictor
# (nested) and asc placebos are refitted through resample_chunks().
placebo_in_space <- function(setup, fit, method, predictors, fit_periods,
                             drop_poor_placebos, max_iter = NULL) {
  g <- setup$groups[[1]]
  donors <- setup$donors
  t0 <- g$t0
  Tn <- length(setup$panel$times)
  capped <- 0L
  if (method == "sc" && is.null(predictors)) {
    pg <- placebo_gaps(setup, t0)
    gaps <- pg$gaps
    conv <- pg$converged == 1L
    is_post <- seq_len(Tn) >= t0
    att <- colMeans(gaps[is_post, , drop = FALSE])
    pre <- sqrt(colMeans(gaps[!is_post, , drop = FALSE]^2))
    post <- sqrt(colMeans(gaps[is_post, , drop = FALSE]^2))
    gap_all <- c(fit$gap, as.vector(gaps))
  } else {
    pl <- resample_chunks(length(donors), function(k) {
      f <- fit_one(setup, donors[k], t0, donors[-k], method, predictors, fit_periods,
                   max_iter = max_iter)
      list(gap = f$gap, pre = f$pre_rmspe, post = f$post_rmspe, att = f$att,
           converged = isTRUE(f$convergence$converged),
           v_converged = !isFALSE(f$convergence$v_converged))
    }, chunk_size = 10L, label = "placebos in space", globals = list())
    v_conv <- vapply(pl, `[[`, TRUE, "v_converged")
    capped <- sum(!v_conv)
    conv <- vapply(pl, `[[`, TRUE, "converged") & v_conv
    att <- vapply(pl, `[[`, 1, "att")
    pre <- vapply(pl, `[[`, 1, "pre")
    post <- vapply(pl, `[[`, 1, "post")
    gap_all <- c(fit$gap, unlist(lapply(pl, `[[`, "gap"), use.names = FALSE))
  }
  unit_names <- rownames(setup$panel$Y)
  units <- c(unit_names[g$treated], unit_names[donors])
  is_tr <- c(TRUE, rep(FALSE, length(donors)))
  pre_rmspe <- c(fit$pre_rmspe, unname(pre))
  post_rmspe <- c(fit$post_rmspe, unname(post))
  # A unit fitted exactly before treatment has ratio Inf when its post-period
  # gap is not zero; when that is zero too (a constant outcome, a duplicated
  # donor) it shows no departure at all, and ranks lowest (ratio 0), not NaN.
  ratio <- ifelse(post_rmspe == 0, 0, post_rmspe / pre_rmspe)
  kept <- is_tr | is.infinite(drop_poor_placebos) |
    pre_rmspe^2 <= drop_poor_placebos * fit$pre_rmspe^2
  # Rank of the treated unit's ratio among all kept units (ties count
  # against the treated unit), as in Abadie et al.
  p_value <- mean(ratio[kept] >= ratio[1])
  tab <- new_df(unit = units, treated = is_tr, att = c(fit$att, unname(att)),
                pre_rmspe = pre_rmspe, post_rmspe = post_rmspe, ratio = ratio,
                kept = kept, rank = rank(-ratio, ties.method = "max"),
                converged = c(isTRUE(fit$convergence$converged) &&
                                !isFALSE(fit$convergence$v_converged), conv))
  times <- setup$panel$times
  n <- length(units)
  series <- new_df(unit = rep(units, each = Tn), treated = rep(is_tr, each = Tn),
                   kept = rep(kept, each = Tn), time = rep(times, n),
                   event_time = rep(seq_len(Tn) - t0, n), gap = gap_all)
  list(estimates = list(p.value = p_value),
       tables = list(placebo = tab, placebo_series = series),
       label = sprintf("placebo in space, %d donors: permutation p-value of the post/pre RMSPE ratio%s%s",
                       length(donors),
                       if (sum(!kept)) sprintf(" (%d poorly fitted placebos left out)", sum(!kept)) else "",
                       if (capped) sprintf("; the V search of %d placebo%s stopped at max_iter",
                                           capped, if (capped > 1L) "s" else "") else ""),
       no_vcov = "placebo-in-space inference gives a permutation p-value, not a covariance")
}

# The overall ATT of a set of treated groups fitted from `donors`.
synth_tau <- function(setup, groups, donors, method, sigma = NULL) {
  att <- n_tr <- numeric(length(groups))
  for (k in seq_along(groups)) {
    g <- groups[[k]]
    att[k] <- fit_one(setup, g$treated, g$t0, donors, method, NULL, NULL, sigma = sigma[[k]])$att
    n_tr[k] <- length(g$treated)
  }
  sum(n_tr * att) / sum(n_tr)
}

# Algorithm 4 of Arkhangelsky et al.: donors drawn at random take the place
# of each cohort's treated units; the estimator is rerun on donors only.
placebo_draws <- function(setup, method, n_draws, sigma) {
  donors <- setup$donors
  groups <- setup$groups
  sizes <- vapply(groups, function(g) length(g$treated), integer(1))
  cut <- rep(seq_along(groups), sizes)
  draws <- resample_chunks(n_draws, function(r) {
    pick <- sample(donors, sum(sizes))
    pg <- lapply(seq_along(groups), function(k) list(treated = pick[cut == k], t0 = groups[[k]]$t0))
    synth_tau(setup, pg, setdiff(donors, pick), method, sigma)
  }, chunk_size = 50L, label = "placebo replications", globals = list())
  unlist(draws)
}

# Algorithm 2: units resampled with replacement, weights re-estimated. Draws
# without a treated unit or without a donor are redrawn.
bootstrap_draws <- function(setup, method, n_draws) {
  units <- c(setup$treated, setup$donors)
  is_tr <- units %in% setup$treated
  t0 <- setup$t0_index
  draws <- resample_chunks(n_draws, function(r) {
    repeat {
      b <- sample.int(length(units), replace = TRUE)
      if (any(is_tr[b]) && any(!is_tr[b])) break
    }
    tr <- units[b][is_tr[b]]
    groups <- lapply(split(tr, t0[tr]), function(ii) list(treated = ii, t0 = t0[ii[1]]))
    synth_tau(setup, groups, units[b][!is_tr[b]], method)
  }, chunk_size = 50L, label = "bootstrap replications", globals = list())
  unlist(draws)
}

# Algorithm 3: leave one unit out with the unit and time weights held fixed
# (donor weights renormalised).
jackknife_draws <- function(setup, fits) {
  Y <- setup$panel$Y
  units <- c(setup$treated, setup$donors)
  draws <- resample_chunks(length(units), function(k) {
    left_out <- units[k]
    att <- n <- numeric(0)
    for (f in fits) {
      tr <- setdiff(f$treated, left_out)
      if (!length(tr)) next
      keep <- setup$donors != left_out
      # A donor holding all the weight leaves none behind: the other donors
      # then weigh the same, as in synthdid's jackknife (sum_normalize).
      w <- if (sum(f$w[keep]) > 0) f$w[keep] / sum(f$w[keep]) else rep(1 / sum(keep), sum(keep))
      y1 <- colMeans(Y[tr, , drop = FALSE])
      gap <- y1 - drop(crossprod(Y[setup$donors[keep], , drop = FALSE], w))
      post <- seq_along(gap) >= f$t0
      att <- c(att, mean(gap[post]) - sum(f$lambda * gap))
      n <- c(n, length(tr))
    }
    sum(n * att) / sum(n)
  }, chunk_size = 50L, label = "jackknife", globals = list())
  unlist(draws)
}

# The pieces an inference adds to a fit, in the outcome's own units (the
# inference ran on the rescaled outcome; see outcome_scale()). p-values and
# RMSPE ratios do not change with the scale.
unscale_inference <- function(inf, s) {
  if (is.null(inf) || s == 1) return(inf)
  for (nm in c("std.error", "conf.low", "conf.high")) {
    if (!is.null(inf$estimates[[nm]])) inf$estimates[[nm]] <- inf$estimates[[nm]] * s
  }
  if (!is.null(inf$vcov)) inf$vcov <- times_sq(inf$vcov, s)
  if (!is.null(inf$draws)) inf$draws <- inf$draws * s
  if (!is.null(inf$period)) {
    inf$period$conf.low <- inf$period$conf.low * s
    inf$period$conf.high <- inf$period$conf.high * s
  }
  if (!is.null(inf$tables$placebo)) {
    for (col in c("att", "pre_rmspe", "post_rmspe")) {
      inf$tables$placebo[[col]] <- inf$tables$placebo[[col]] * s
    }
  }
  if (!is.null(inf$tables$placebo_series)) {
    inf$tables$placebo_series$gap <- inf$tables$placebo_series$gap * s
  }
  inf
}
