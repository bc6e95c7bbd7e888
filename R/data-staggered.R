#' County teen employment and state minimum wage rises, 2003-2007
#'
#' The panel of Callaway and Sant'Anna (2021): 500 US counties observed each
#' year from 2003 to 2007, in states that raised their minimum wage above the
#' federal level in different years. It is the standard worked example of
#' staggered adoption: three adoption cohorts and a never-treated group.
#'
#' @format A data frame with 2,500 rows (500 counties x 5 years), balanced,
#'   sorted by county and year, and 6 columns:
#' \describe{
#'   \item{countyreal}{County id (integer); the unit.}
#'   \item{year}{Year, 2003 to 2007.}
#'   \item{first.treat}{Year the county's state minimum wage first exceeded
#'     the federal one: 2004 (20 counties), 2006 (40) or 2007 (131); 0 for the
#'     309 counties never treated in the sample.}
#'   \item{treat}{1 for counties ever treated in the sample, 0 otherwise. It
#'     is not a treated-and-post indicator: build that as
#'     `first.treat > 0 & year >= first.treat`.}
#'   \item{lpop}{Log county population, constant within county.}
#'   \item{lemp}{Log teen employment (the outcome).}
#' }
#' @source Exported from `data(mpdta)` of the R package did (identical in did
#'   2.1.2 and 2.5.1) by `data-raw/staggered-data.R`.
#' @references Callaway, B. and Sant'Anna, P. H. C. (2021).
#'   Difference-in-differences with multiple time periods. *Journal of
#'   Econometrics* 225(2), 200-230. \doi{10.1016/j.jeconom.2020.12.001}
#' @examples
#' mpdta$post <- as.integer(mpdta$first.treat > 0 & mpdta$year >= mpdta$first.treat)
#' table(mpdta$first.treat[mpdta$year == 2003])
"mpdta"

#' US state homicide rates and castle-doctrine laws, 2000-2010
#'
#' The panel of Cheng and Hoekstra (2013), used by Goodman-Bacon (2021) to
#' illustrate the decomposition of the two-way fixed effects estimator: 50
#' states observed each year from 2000 to 2010, 21 of which expanded their
#' self-defence ("castle doctrine") laws between 2005 and 2009.
#'
#' @format A data frame with 550 rows (50 states x 11 years), balanced,
#'   sorted by state and year, and 64 columns. The main ones:
#' \describe{
#'   \item{state}{State name; the unit.}
#'   \item{sid}{State id (integer).}
#'   \item{year}{Year, 2000 to 2010.}
#'   \item{post}{1 from the first full year the law is in effect on (the
#'     absorbing treated-and-post indicator of the Goodman-Bacon example);
#'     by `post`, cohorts are 2005 (1 state), 2006 (13), 2007 (4), 2008 (2)
#'     and 2009 (1), and 29 states never adopt.}
#'   \item{cdl}{Share of the year the law was in effect (fractional).}
#'   \item{treatment_date, effyear}{Adoption year, `NA` for never adopters.
#'     For Alaska and Arizona it is 2005 while `post` starts in 2006.}
#'   \item{l_homicide}{Log homicides per 100,000 residents (the outcome).}
#'   \item{homicide, robbery, assault, burglary, larceny, motor, murder}{Crime
#'     rates per 100,000 residents; `l_*` columns are their logs.}
#'   \item{popwt}{Population weight (constant within state).}
#'   \item{population, police, unemployrt, income, poverty, prisoner,
#'     lagprisoner, exp_subsidy, exp_pubwelfare}{State covariates; `l_pop`,
#'     `l_police`, `l_income`, `l_prisoner`, `l_lagprisoner`,
#'     `l_exp_subsidy`, `l_exp_pubwelfare` are logs.}
#'   \item{blackm_15_24, whitem_15_24, blackm_25_44, whitem_25_44}{Shares of
#'     the population that are black or white men of the given ages.}
#'   \item{northeast, midwest, south, west}{Census region indicators.}
#' }
#' The remaining columns (`pre2_cdl`, `caselaw`, `anywhere`, `assumption`,
#' `civil`, `homicide_c`, `robbery_gun_r`, `jhcitizen_c`, `jhpolice_c`,
#' `jhcitizen`, `jhpolice`, `hc_felonywsus` and their logs) are the other
#' law features and outcomes of Cheng and Hoekstra (2013). The 90
#' region-by-year dummies and 51 state trends of the original file are left
#' out because they can be rebuilt from `year`, the region columns and `sid`.
#' @source Exported from `data(castle)` of the R package bacondecomp 0.1.3 by
#'   `data-raw/staggered-data.R`.
#' @references Cheng, C. and Hoekstra, M. (2013). Does strengthening
#'   self-defense law deter crime or escalate violence? Evidence from
#'   expansions to castle doctrine. *Journal of Human Resources* 48(3),
#'   821-854.
#'
#'   Goodman-Bacon, A. (2021). Difference-in-differences with variation in
#'   treatment timing. *Journal of Econometrics* 225(2), 254-277.
#'   \doi{10.1016/j.jeconom.2021.03.014}
#' @examples
#' table(castle$year[castle$post == 1 & !duplicated(castle$state[castle$post == 1])])
"castle"
