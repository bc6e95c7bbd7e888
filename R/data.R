#' Simulated weekly geo sales panel at the zone level, nested in DMAs
#'
#' A simulated panel of weekly sales for 726 postal-code-like zones nested in
#' 200 DMA-like markets over 104 weeks (two years from Monday 2024-01-01).
#' Because the zones nest in markets, the same data can be randomized at the
#' DMA level or at the finer zone level (see [geo_units()] and
#' [compare_clusterings()]). No treatment was applied: any lift a demo
#' estimates is one it injected itself, so the truth is known.
#'
#' @format A data frame with 75,504 rows (726 zones x 104 weeks), sorted by
#'   zone and week, and 8 columns:
#' \describe{
#'   \item{dma}{Market (cluster) id, `"DMA001"` to `"DMA200"`. Each DMA holds
#'     1 to 8 zones; larger DMAs hold more.}
#'   \item{zone}{Zone id, `"Z00001"` to `"Z00726"`; each zone lies in one DMA.}
#'   \item{region}{One of four census-like regions (`"Northeast"`,
#'     `"Midwest"`, `"South"`, `"West"`), constant within a DMA.}
#'   \item{week}{Week index, 1 to 104.}
#'   \item{date}{Monday starting the week (a `Date`), 2024-01-01 to 2025-12-22.}
#'   \item{population}{Zone population (time-invariant integer).}
#'   \item{sales}{Weekly sales, thousands of dollars, non-negative, rounded to
#'     two decimals.}
#'   \item{spend}{Weekly media spend, thousands of dollars, rounded to two
#'     decimals; zero in weeks a market is off air.}
#' }
#'
#' @details
#' The data-generating process, so that users know the truth:
#'
#' * **Markets.** DMA populations are lognormal (median about 600,000,
#'   log-sd 1, floored at 50,000), so a few markets are very large (the
#'   largest holds about 14 million people). Regions are drawn with
#'   probabilities 0.17, 0.21, 0.38 and 0.24. A DMA of population \eqn{P}
#'   holds \eqn{\min(8, \max(1, 1 + \mathrm{Poisson}(2.5 (P / \mathrm{median})^{0.3})))}
#'   zones, whose population shares are Dirichlet(2, ..., 2); zone
#'   populations are floored at 5,000.
#' * **Level.** Zone \eqn{z} in DMA \eqn{d} has baseline weekly sales
#'   \eqn{b_z = 0.5 \cdot \mathrm{pop}_z / 1000 \cdot \exp(\alpha_d)}, that
#'   is about $0.50 per head and week, with
#'   \eqn{\alpha_d = \mathrm{region\ effect} + N(0, 0.25^2)} and region
#'   effects Northeast 0.10, Midwest -0.05, South 0, West 0.05.
#' * **Seasonality** \eqn{s_t}, common to all zones: a yearly sine wave of
#'   amplitude 0.08 plus a holiday peak (Gaussian bumps of height 0.25 at
#'   week-of-year 48 and 0.45 at 51.5, sd one week).
#' * **Common factors.** \eqn{f_{1t}} is a linear trend rising from 0 to 1
#'   over the two years; \eqn{f_{2t}} is a standardised AR(1) (coefficient
#'   0.8) business-cycle shock. DMA loadings are
#'   \eqn{\lambda_{1d} = \mathrm{region\ trend} + N(0, 0.04^2)} (region trends
#'   over two years: Northeast -2%, Midwest +2%, South +10%, West +6%) and
#'   \eqn{\lambda_{2d} = 0.03 \cdot N(1, 0.5^2)}.
#' * **Noise.** A zone-level stationary AR(1) \eqn{e_{zt}} with coefficient
#'   0.5 and sd \eqn{0.03 + 0.3 / \sqrt{b_z}}, larger in relative terms for
#'   small zones.
#' * **Sales** \eqn{= \max(0, b_z (1 + s_t)(1 + \lambda_{1d} f_{1t} +
#'   \lambda_{2d} f_{2t})(1 + e_{zt}))}, rounded to two decimals.
#' * **Spend** is flighted: each DMA is on air in a week with probability
#'   0.6, and always from week-of-year 45 on; when on air a zone spends
#'   about 2% of its baseline sales (DMA budget share lognormal, log-sd 0.3,
#'   times weekly lognormal noise, log-sd 0.2). Spend has **no causal effect
#'   on sales** in this simulation; it is there to express injected lifts as
#'   returns on spend.
#'
#' Market size drives almost all between-DMA variation, so the DMA-level
#' \eqn{R^2} of test-window sales on pre-period sales is about 0.99, as in
#' real geo data.
#'
#' @source Simulated by `data-raw/geo_sales.R` (seed 20240101).
#' @examples
#' str(geo_sales)
#' # Zones per DMA
#' table(tapply(geo_sales$zone, geo_sales$dma, function(z) length(unique(z))))
"geo_sales"
