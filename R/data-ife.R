#' Simulated panel with interactive fixed effects (gsynth's `simdata`)
#'
#' The simulated example of Xu (2017), shipped with the gsynth package: 50
#' units (ids 101 to 150) over 30 periods, of which units 101 to 105 are
#' treated from period 21 on. The outcome has unit and time effects, two
#' covariates and two latent factors, and every component is included, so the
#' truth is known: the ATT is the mean of `eff` over treated cells, 5.462032.
#'
#' @format A data frame with 1,500 rows (50 units x 30 periods), sorted by
#'   `id` and `time`, and 15 columns:
#' \describe{
#'   \item{id}{Unit id, 101 to 150.}
#'   \item{time}{Period, 1 to 30.}
#'   \item{Y}{Outcome; equals `mu + alpha + xi + X1 + 3 * X2 + F1 * L1 +
#'     F2 * L2 + eff * D + error`.}
#'   \item{D}{Treatment, 1 for units 101 to 105 from period 21.}
#'   \item{X1, X2}{Covariates (coefficients 1 and 3).}
#'   \item{eff}{The treatment effect, non-zero for every unit in periods
#'     21 to 30 and growing over them; it enters `Y` only where `D` is 1.}
#'   \item{error}{Idiosyncratic error.}
#'   \item{mu, alpha, xi}{Grand mean (5), unit effects and time effects.}
#'   \item{F1, F2, L1, L2}{The two factors and the two loadings.}
#' }
#' @source Xu, Y. (2017). Generalized synthetic control method: causal
#'   inference with interactive fixed effects models. *Political Analysis*
#'   25(1), 57-76. Data from the R package gsynth (`data(gsynth)`, object
#'   `simdata`), exported to CSV with 15 significant digits.
#' @seealso [counterfactual()], [gsynth_turnout].
#' @examples
#' fit <- counterfactual(Y ~ D + X1 + X2 | id + time, gsynth_simdata, r = 2)
#' coef(fit)
#' mean(gsynth_simdata$eff[gsynth_simdata$D == 1])
"gsynth_simdata"

#' Election-day registration and voter turnout in US states, 1920-2012
#'
#' Turnout in presidential elections for 47 US states over 24 elections,
#' with the staggered adoption of election-day registration (EDR), the
#' application in Xu (2017). Nine states adopted EDR between 1976 and 2012.
#' Xu (2017) estimates that EDR raised turnout by about 4.9 percentage points
#' with two factors.
#'
#' @format A data frame with 1,128 rows (47 states x 24 elections), sorted by
#'   `abb` and `year`, and 6 columns:
#' \describe{
#'   \item{abb}{State postal abbreviation.}
#'   \item{year}{Election year, 1920 to 2012, every four years.}
#'   \item{turnout}{Turnout, percent of the voting-age population.}
#'   \item{policy_edr}{1 when election-day registration is in effect.}
#'   \item{policy_mail_in}{1 when universal mail-in registration is in effect.}
#'   \item{policy_motor}{1 when motor-voter registration is in effect.}
#' }
#' @source Xu, Y. (2017). Generalized synthetic control method: causal
#'   inference with interactive fixed effects models. *Political Analysis*
#'   25(1), 57-76. Data from the R package gsynth (`data(gsynth)`, object
#'   `turnout`), exported to CSV with 15 significant digits.
#' @seealso [counterfactual()], [gsynth_simdata].
#' @examples
#' fit <- counterfactual(turnout ~ policy_edr + policy_mail_in + policy_motor |
#'                       abb + year, gsynth_turnout, r = 2)
#' coef(fit)
"gsynth_turnout"
