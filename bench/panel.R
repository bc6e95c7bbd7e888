# mkt_panel() against data.table::dcast() of the same columns, in one run.
# Run from the repository root after installing the package:
#   Rscript bench/panel.R
# data.table is a suggested package of mktcausal (tests of data.table input);
# the package itself never calls it.
suppressPackageStartupMessages({
  library(mktcausal)
  library(data.table)
})
source(file.path("bench", "time_it.R"))

# 1,000,000 rows: 20,000 units x 50 periods, rows shuffled, character unit
# ids, a 0/1 treatment and one covariate.
panel_rows <- function(N = 20000, Tn = 50) {
  set.seed(1)
  d <- data.frame(unit = rep(sprintf("u%05d", seq_len(N)), each = Tn),
                  time = rep(seq_len(Tn), N), stringsAsFactors = FALSE)
  d$x <- stats::rnorm(nrow(d))
  d$d <- as.integer(d$time > 30 & rep(seq_len(N) %% 3 == 0, each = Tn))
  d$y <- stats::rnorm(nrow(d)) + d$d
  d[sample(nrow(d)), ]
}

bench_panel <- function(reps = 3) {
  d <- panel_rows()
  dt <- as.data.table(d)
  t_ours <- time_it(mkt_panel(y ~ d + x | unit + time, d), reps = reps)
  t_dcast <- time_it(dcast(dt, unit ~ time, value.var = c("y", "d", "x")), reps = reps)
  # Same numbers: the outcome matrix equals the wide table's y columns.
  p <- mkt_panel(y ~ d + x | unit + time, d)
  w <- dcast(dt, unit ~ time, value.var = "y")
  same <- identical(unname(p$Y), unname(as.matrix(w[, -1])))
  data.frame(task = "mkt_panel(), 1,000,000 rows (20,000 units x 50 periods, 3 columns)",
             ours = t_ours, peer = t_dcast, peer_name = "data.table::dcast()",
             ratio = t_ours / t_dcast, same_answer = same)
}

if (sys.nframe() == 0L) {
  res <- bench_panel()
  print(res, digits = 3)
}
