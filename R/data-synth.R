#' California's Proposition 99: cigarette sales in 39 US states, 1970-2000
#'
#' The panel of Abadie, Diamond and Hainmueller (2010), also used by
#' Arkhangelsky et al. (2021): California raised its cigarette tax and funded
#' an anti-smoking programme from January 1989 (Proposition 99); the 38 other
#' states passed no large tobacco-control programme or tax increase in
#' 1989-2000 and form the donor pool.
#'
#' @format A data frame with 1,209 rows (39 states x 31 years), sorted by
#'   state and year, and 8 columns:
#' \describe{
#'   \item{state}{US state name.}
#'   \item{year}{Year, 1970 to 2000.}
#'   \item{packspercapita}{Cigarette sales, packs per person per year (the
#'     outcome).}
#'   \item{treated}{1 for California from 1989 on, 0 otherwise.}
#'   \item{lnincome}{Log per-capita personal income; 1972-1997, `NA` otherwise.}
#'   \item{beer}{Beer consumption per capita; 1984-1997, `NA` otherwise.}
#'   \item{age15to24}{Share of the population aged 15 to 24 (a proportion);
#'     1970-1990, `NA` otherwise.}
#'   \item{retprice}{Average retail price of a pack of cigarettes, US cents.}
#' }
#' @source The outcome and treatment columns are `california_prop99` of the R
#'   package synthdid 0.0.9, converted from the replication files of Abadie,
#'   Diamond and Hainmueller; the four predictors are from `smoking` of the R
#'   package tidysynth 0.2.0 (Abadie's replication files), joined on state and
#'   year.
#' @references Abadie, A., Diamond, A. and Hainmueller, J. (2010). Synthetic
#'   control methods for comparative case studies: estimating the effect of
#'   California's tobacco control program. *Journal of the American
#'   Statistical Association* 105(490), 493-505.
#'
#'   Arkhangelsky, D., Athey, S., Hirshberg, D. A., Imbens, G. W. and Wager, S.
#'   (2021). Synthetic difference-in-differences. *American Economic Review*
#'   111(12), 4088-4118.
#' @seealso [synth()]
#' @examples
#' head(prop99)
#' range(prop99$year[prop99$treated == 1])
"prop99"

#' The Basque Country and terrorism: GDP per capita of Spanish regions, 1955-1997
#'
#' The panel of Abadie and Gardeazabal (2003) as shipped by the Synth package:
#' 17 Spanish regions and Spain as a whole, 1955-1997. Terrorism in the Basque
#' Country (region 17) is taken to start in 1970. The usual donor pool is
#' regions 2-16 and 18, so drop Spain as a whole (`regionno == 1`) before
#' fitting.
#'
#' @format A data frame with 774 rows (18 regions x 43 years), sorted by
#'   region and year, and 18 columns:
#' \describe{
#'   \item{regionno}{Region number; 1 is Spain as a whole, 17 the Basque
#'     Country.}
#'   \item{regionname}{Region name.}
#'   \item{year}{Year, 1955 to 1997.}
#'   \item{gdpcap}{Real GDP per capita, thousands of 1986 US dollars (the
#'     outcome).}
#'   \item{sec.agriculture, sec.energy, sec.industry, sec.construction,
#'     sec.services.venta, sec.services.nonventa}{Production shares (percent
#'     of total) of agriculture, energy, industry, construction, marketable
#'     and non-marketable services; odd years 1961-1969 and some later years,
#'     `NA` otherwise.}
#'   \item{school.illit, school.prim, school.med, school.high,
#'     school.post.high}{Persons (thousands) illiterate, with primary
#'     schooling, some high school, a high-school degree, tertiary schooling;
#'     1964-1969.}
#'   \item{popdens}{Population density, persons per square km; 1969 only.}
#'   \item{invest}{Gross total investment as a share of GDP (percent);
#'     1964-1969.}
#'   \item{terror}{1 for the Basque Country from 1970 on, 0 otherwise (added
#'     here so the panel can be passed to [synth()]).}
#' }
#' @source `data(basque)` of the R package Synth 1.1-8 (Hainmueller and
#'   Diamond), described in Abadie, Diamond and Hainmueller (2011), *Journal
#'   of Statistical Software* 42(13). The data cover 43 years, although
#'   Synth's help page says 42.
#' @references Abadie, A. and Gardeazabal, J. (2003). The economic costs of
#'   conflict: a case study of the Basque Country. *American Economic Review*
#'   93(1), 113-132.
#' @seealso [synth()]
#' @examples
#' head(basque[, c("regionname", "year", "gdpcap", "terror")])
"basque"
