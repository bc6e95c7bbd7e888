# Writes data/mpdta.rda and data/castle.rda from the CSV exports described in
# ../shared/data/SOURCES.md. Run from the package root:
#   Rscript data-raw/staggered-data.R
# The CSVs were written with 15 significant digits, so the values match the
# peer packages' objects to within 1e-14 relative error.

src <- Sys.getenv("MKT_SHARED_DATA", "../shared/data")

mpdta <- utils::read.csv(file.path(src, "mpdta.csv"), stringsAsFactors = FALSE)
mpdta <- mpdta[order(mpdta$countyreal, mpdta$year), ]
for (v in c("countyreal", "year", "first.treat", "treat")) mpdta[[v]] <- as.integer(mpdta[[v]])
rownames(mpdta) <- NULL

castle <- utils::read.csv(file.path(src, "castle.csv"), stringsAsFactors = FALSE)
castle <- castle[order(castle$state, castle$year), ]
for (v in c("year", "sid", "post", "effyear", "treatment_date")) castle[[v]] <- as.integer(castle[[v]])
rownames(castle) <- NULL

if (!dir.exists("data")) dir.create("data")
save(mpdta, file = "data/mpdta.rda", compress = "xz")
save(castle, file = "data/castle.rda", compress = "xz")
