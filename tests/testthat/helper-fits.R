# One fit of every estimator, on shipped data, for the contract test. Each
# case is a function so a failing estimator does not stop the others, and
# each runs in a second or two (few resampling draws).

contract_geo <- local({
  cache <- NULL
  function() {
    if (!is.null(cache)) return(cache)
    units <- geo_units(sales ~ 0 | zone + week, geo_sales, randomize_by = "dma",
                       size = "population", pre = 1:78, post = 79:90)
    des <- withr::with_seed(11, rerandomize(units, ~ outcome_mean + outcome_trend,
                                            n_treated = 100, accept = 0.05))
    units$treated <- des$treated
    units$sales <- units$post_total * (1 + 0.04 * units$treated)
    cache <<- list(units = units, design = des)
    cache
  }
})

contract_mpdta <- function() {
  d <- mpdta
  d$post <- as.integer(d$first.treat > 0 & d$year >= d$first.treat)
  d
}

contract_castle <- function() {
  d <- castle
  d$post <- as.integer(d$cdl > 0)
  d
}

# Weekly DMA panel of geo_sales with a campaign of varying intensity (GRPs)
# from week 80 and a spend index, as in the assignment-map vignette.
contract_dma_week <- local({
  cache <- NULL
  function() {
    if (!is.null(cache)) return(cache)
    d <- stats::aggregate(cbind(sales, spend) ~ dma + week, geo_sales, sum)
    d <- d[d$week <= 95, ]
    dmas <- sort(unique(d$dma))
    grp <- withr::with_seed(3, stats::setNames(round(stats::rlnorm(length(dmas), log(5), 0.5), 1), dmas))
    d$grp <- grp[d$dma]
    d$sales <- d$sales * (1 + 0.004 * d$grp * (d$week >= 80))
    d$spend_index <- d$spend / stats::ave(d$spend, d$dma)
    # An instrument: a cost shifter that moves spend and nothing else.
    d$cost <- withr::with_seed(4, stats::rnorm(nrow(d)))
    d$spend_iv <- d$spend_index + 0.5 * d$cost
    cache <<- d
    d
  }
})

contract_cases <- list(
  geo_effect = function() {
    g <- contract_geo()
    d <- stats::aggregate(sales ~ dma + week, geo_sales[geo_sales$week <= 90, ], sum)
    d$treated <- as.integer(d$dma %in% g$design$ids[g$design$treated == 1])
    d$sales <- d$sales * (1 + 0.04 * d$treated * (d$week >= 79))
    geo_effect(sales ~ treated | dma + week, d, design = g$design, pre = 1:78, post = 79:90)
  },
  experiment_effect = function() {
    g <- contract_geo()
    experiment_effect(sales ~ treated, g$units, design = g$design, n_draws = 200)
  },
  randomization_test = function() {
    g <- contract_geo()
    withr::with_seed(1, randomization_test(sales ~ treated, g$units, design = g$design,
                                           n_draws = 200))
  },
  rem_asymptotic = function() {
    g <- contract_geo()
    rem_asymptotic(sales ~ treated, g$units, design = g$design)
  },
  spillover = function() {
    zones <- stats::aggregate(sales ~ zone + dma, geo_sales[geo_sales$week %in% 79:90, ], sum)
    zones$treated <- withr::with_seed(5, stats::rbinom(nrow(zones), 1, 0.2))
    spillover(sales ~ treated, zones, adjacency = "dma", exposure = "any", id = "zone")
  },
  staggered = function() {
    withr::with_seed(2, staggered(lemp ~ post | countyreal + year, contract_mpdta(),
                                  n_draws = 99))
  },
  staggered_aggregate = function() {
    fit <- staggered(lemp ~ post | countyreal + year, contract_mpdta(), n_draws = 0)
    stats::aggregate(fit, "event")
  },
  event_study = function() {
    withr::with_seed(3, event_study(lemp ~ post | countyreal + year, contract_mpdta(),
                                    method = "sa", n_draws = 200))
  },
  bacon = function() {
    bacon(l_homicide ~ post | state + year, contract_castle())
  },
  honest_sensitivity = function() {
    es <- withr::with_seed(3, event_study(lemp ~ post | countyreal + year, contract_mpdta(),
                                          method = "sa", n_draws = 200))
    honest_sensitivity(es, type = "smoothness")
  },
  synth = function() {
    synth(packspercapita ~ treated | state + year, prop99, inference = "placebo")
  },
  synth_sdid = function() {
    withr::with_seed(4, synth(packspercapita ~ treated | state + year, prop99,
                              method = "sdid", inference = "placebo", n_draws = 30))
  },
  synth_placebo_time = function() {
    fit <- synth(packspercapita ~ treated | state + year, prop99)
    synth_placebo_time(fit, shift = 5)
  },
  ife = function() {
    ife(Y ~ D + X1 + X2 | id + time, gsynth_simdata, r = 2)
  },
  counterfactual = function() {
    counterfactual(Y ~ D + X1 + X2 | id + time, gsynth_simdata, r = 2)
  },
  exposure_did = function() {
    exposure_did(log(sales) ~ grp | dma + week, contract_dma_week(), post = 80)
  },
  dose_response = function() {
    dose_response(log(sales) ~ spend_index | dma + week, contract_dma_week())
  },
  dml = function() {
    # dml() needs at least one control for its learners.
    withr::with_seed(6, dml(log(sales) ~ spend_index + cost | dma + week, contract_dma_week(),
                            n_folds = 2, n_draws = 1))
  },
  iv_fe = function() {
    iv_fe(log(sales) ~ 1 | dma + week | spend_iv ~ cost, contract_dma_week())
  }
)

# The synthetic design's analysis: a design on 96 weeks of 20 DMAs, the
# next 4 weeks as the test.
contract_cases$synthetic_design_effect <- function() {
  d <- stats::aggregate(sales ~ dma + week, geo_sales, sum)
  d <- d[d$dma %in% sprintf("DMA%03d", 1:20), ]
  des <- synthetic_design(sales ~ 0 | dma + week, d[d$week <= 96, ], n_treated = 2,
                          test_length = 4)
  synthetic_design_effect(sales ~ 0 | dma + week, d[d$week <= 100, ], design = des)
}
