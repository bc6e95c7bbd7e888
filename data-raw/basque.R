# Ships the Basque Country panel (18 Spanish regions x 1955-1997) as `basque`.
# Source and provenance: shared/data/SOURCES.md (Synth's data(basque)).
# A 0/1 column `terror` marks the Basque Country from 1970 on, so the panel
# can be passed straight to synth().
# Run by hand from the package root: Rscript data-raw/basque.R
path <- file.path("..", "shared", "data", "basque.csv")
if (!file.exists(path)) path <- "/work/shared/data/basque.csv"
basque <- utils::read.csv(path, stringsAsFactors = FALSE, check.names = FALSE)
basque$regionno <- as.integer(basque$regionno)
basque$year <- as.integer(basque$year)
basque$terror <- as.integer(basque$regionno == 17L & basque$year >= 1970L)
stopifnot(nrow(basque) == 18L * 43L, !anyDuplicated(basque[c("regionno", "year")]))
save(basque, file = "data/basque.rda", compress = "xz")
