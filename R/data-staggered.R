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
#'   sorted by state and year, and 64 columns:
#' \describe{
#'   \item{state}{State name; the unit.}
#'   \item{year}{Year, 2000 to 2010.}
#'   \item{sid}{State id (integer).}
#'   \item{cdl}{Share of the year the law was in effect (fractional).}
#'   \item{pre2_cdl}{Law feature coded by Cheng and Hoekstra (2013).}
#'   \item{caselaw}{Law feature coded by Cheng and Hoekstra (2013).}
#'   \item{anywhere}{Law feature coded by Cheng and Hoekstra (2013).}
#'   \item{assumption}{Law feature coded by Cheng and Hoekstra (2013).}
#'   \item{civil}{Law feature coded by Cheng and Hoekstra (2013).}
#'   \item{homicide_c}{Further outcome of Cheng and Hoekstra (2013).}
#'   \item{robbery_gun_r}{Further outcome of Cheng and Hoekstra (2013).}
#'   \item{jhcitizen_c}{Further outcome of Cheng and Hoekstra (2013).}
#'   \item{jhpolice_c}{Further outcome of Cheng and Hoekstra (2013).}
#'   \item{homicide}{Homicide rate per 100,000 residents.}
#'   \item{robbery}{Robbery rate per 100,000 residents.}
#'   \item{assault}{Assault rate per 100,000 residents.}
#'   \item{burglary}{Burglary rate per 100,000 residents.}
#'   \item{larceny}{Larceny rate per 100,000 residents.}
#'   \item{motor}{Motor rate per 100,000 residents.}
#'   \item{murder}{Murder rate per 100,000 residents.}
#'   \item{hc_felonywsus}{Further outcome of Cheng and Hoekstra (2013).}
#'   \item{jhcitizen}{Further outcome of Cheng and Hoekstra (2013).}
#'   \item{jhpolice}{Further outcome of Cheng and Hoekstra (2013).}
#'   \item{population}{Population.}
#'   \item{police}{Police per 100,000 residents.}
#'   \item{unemployrt}{Unemployment rate.}
#'   \item{income}{Median income.}
#'   \item{blackm_15_24}{Share of the population that are black men aged
#'     15 to 24.}
#'   \item{whitem_15_24}{Share of the population that are white men aged
#'     15 to 24.}
#'   \item{blackm_25_44}{Share of the population that are black men aged
#'     25 to 44.}
#'   \item{whitem_25_44}{Share of the population that are white men aged
#'     25 to 44.}
#'   \item{prisoner}{Prisoners per 100,000 residents.}
#'   \item{lagprisoner}{Prisoners per 100,000 residents, lagged one
#'     year.}
#'   \item{poverty}{Poverty rate.}
#'   \item{exp_subsidy}{Public spending on subsidies per resident.}
#'   \item{exp_pubwelfare}{Public welfare spending per resident.}
#'   \item{northeast}{1 for states in the Northeast census region.}
#'   \item{midwest}{1 for states in the Midwest census region.}
#'   \item{south}{1 for states in the South census region.}
#'   \item{west}{1 for states in the West census region.}
#'   \item{effyear}{Adoption year as coded by Cheng and Hoekstra.}
#'   \item{l_murder}{Log of `murder`.}
#'   \item{l_homicide}{Log homicides per 100,000 residents (the
#'     outcome).}
#'   \item{l_homicide_c}{Log of `homicide_c`.}
#'   \item{l_robbery}{Log of `robbery`.}
#'   \item{l_assault}{Log of `assault`.}
#'   \item{l_burglary}{Log of `burglary`.}
#'   \item{l_larceny}{Log of `larceny`.}
#'   \item{l_motor}{Log of `motor`.}
#'   \item{l_robbery_gun}{Log of `robbery_gun`.}
#'   \item{l_jhcitizen}{Log of `jhcitizen`.}
#'   \item{l_jhpolice}{Log of `jhpolice`.}
#'   \item{l_hc_felonywsus}{Log of `hc_felonywsus`.}
#'   \item{l_robbery_gun_r}{Log of `robbery_gun_r`.}
#'   \item{l_pop}{Log population.}
#'   \item{l_police}{Log of `police`.}
#'   \item{l_income}{Log of `income`.}
#'   \item{l_prisoner}{Log of `prisoner`.}
#'   \item{l_lagprisoner}{Log of `lagprisoner`.}
#'   \item{l_exp_subsidy}{Log of `exp_subsidy`.}
#'   \item{l_exp_pubwelfare}{Log of `exp_pubwelfare`.}
#'   \item{popwt}{Population weight (constant within state).}
#'   \item{treatment_date}{Adoption year, `NA` for never adopters (2005
#'     for Alaska and Arizona, whose `post` starts in 2006).}
#'   \item{post}{1 from the first full year the law is in effect on (the
#'     absorbing treated-and-post indicator of the Goodman-Bacon
#'     example); cohorts are 2005 (1 state), 2006 (13), 2007 (4), 2008
#'     (2) and 2009 (1), and 29 states never adopt.}
#' }
#' The 90 region-by-year dummies and 51 state trends of the original file
#' are left out: they can be rebuilt from `year`, the region columns and
#' `sid`.
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
