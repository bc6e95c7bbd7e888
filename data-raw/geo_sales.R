# Simulates `geo_sales`: a weekly zone-level sales panel nested in DMA-like
# clusters, with no treatment, so that demos can inject a known lift and
# check that the package recovers it. Run by hand from the package root:
#   Rscript data-raw/geo_sales.R
# The data-generating process is documented in R/data.R; keep them in sync.

set.seed(20240101)

n_dma <- 200L
n_week <- 104L
regions <- c("Northeast", "Midwest", "South", "West")

# --- DMAs: heavy-tailed populations, a few very large markets --------------
dma_region <- sample(regions, n_dma, replace = TRUE, prob = c(0.17, 0.21, 0.38, 0.24))
dma_pop <- round(exp(rnorm(n_dma, log(6e5), 1)))
dma_pop <- pmax(dma_pop, 5e4)
# Larger markets are split into more postal-code-like zones, as real ones are.
n_zone <- pmin(8L, pmax(1L, 1L + rpois(n_dma, 2.5 * (dma_pop / stats::median(dma_pop))^0.3)))

dma_id <- sprintf("DMA%03d", seq_len(n_dma))
zone_dma <- rep(seq_len(n_dma), n_zone)
n_zone_total <- length(zone_dma)
zone_id <- sprintf("Z%05d", seq_len(n_zone_total))

# Zone shares of the DMA population: normalised gamma(2) draws (Dirichlet).
share <- stats::rgamma(n_zone_total, shape = 2)
share <- share / ave(share, zone_dma, FUN = sum)
zone_pop <- pmax(5000, round(dma_pop[zone_dma] * share))

# --- level: per-capita sales differ by DMA and region -----------------------
region_effect <- c(Northeast = 0.10, Midwest = -0.05, South = 0, West = 0.05)
dma_effect <- region_effect[dma_region] + rnorm(n_dma, 0, 0.25)
# Weekly sales in thousands of dollars: about $0.50 per head and week.
zone_base <- 0.5 * zone_pop / 1000 * exp(dma_effect[zone_dma])

# --- seasonality: a yearly wave and a holiday peak (Thanksgiving to Christmas)
week <- seq_len(n_week)
woy <- (week - 1L) %% 52L + 1L
season <- 0.08 * sin(2 * pi * (woy - 10) / 52) +
  0.25 * exp(-(woy - 48)^2 / 2) + 0.45 * exp(-(woy - 51.5)^2 / 2)

# --- common factors with DMA loadings ---------------------------------------
# Factor 1 is a linear trend (1 = two years) whose slope varies by region;
# factor 2 is a persistent business-cycle shock, standardised.
f1 <- (week - 1) / (n_week - 1)
f2 <- as.numeric(stats::filter(rnorm(n_week), 0.8, method = "recursive"))
f2 <- (f2 - mean(f2)) / stats::sd(f2)
region_trend <- c(Northeast = -0.02, Midwest = 0.02, South = 0.10, West = 0.06)
load1 <- region_trend[dma_region] + rnorm(n_dma, 0, 0.04)
load2 <- 0.03 * rnorm(n_dma, 1, 0.5)
factor_part <- outer(load1, f1) + outer(load2, f2)            # n_dma x n_week

# --- noise: zone-level AR(1), relatively larger in small zones --------------
noise_sd <- 0.03 + 0.3 / sqrt(zone_base)
innov <- matrix(rnorm(n_zone_total * n_week), n_zone_total, n_week)
eps <- matrix(0, n_zone_total, n_week)
eps[, 1] <- innov[, 1] / sqrt(1 - 0.5^2)
for (t in 2:n_week) eps[, t] <- 0.5 * eps[, t - 1] + innov[, t]
eps <- eps * noise_sd * sqrt(1 - 0.5^2)                      # stationary sd = noise_sd

mu <- zone_base * outer(rep(1, n_zone_total), 1 + season) * (1 + factor_part[zone_dma, ])
sales <- pmax(0, mu * (1 + eps))

# --- media spend: flighted campaigns, budget roughly proportional to size ---
dma_budget <- 0.02 * exp(rnorm(n_dma, 0, 0.3))                # share of baseline sales
on_air <- matrix(stats::runif(n_dma * n_week) < 0.6, n_dma, n_week)
on_air[, woy >= 45] <- TRUE                                   # everyone airs for the holidays
spend <- zone_base * dma_budget[zone_dma] * on_air[zone_dma, ] *
  exp(matrix(rnorm(n_zone_total * n_week, 0, 0.2), n_zone_total, n_week))

geo_sales <- data.frame(
  dma = rep(dma_id[zone_dma], times = n_week),
  zone = rep(zone_id, times = n_week),
  region = rep(unname(dma_region[zone_dma]), times = n_week),
  week = rep(week, each = n_zone_total),
  date = rep(as.Date("2024-01-01") + 7L * (week - 1L), each = n_zone_total),
  population = rep(as.integer(zone_pop), times = n_week),
  sales = round(as.vector(sales), 2),
  spend = round(as.vector(spend), 2),
  stringsAsFactors = FALSE
)
geo_sales <- geo_sales[order(geo_sales$zone, geo_sales$week), ]
rownames(geo_sales) <- NULL

if (!dir.exists("data")) dir.create("data")
save(geo_sales, file = "data/geo_sales.rda", compress = "xz")
