# Ships the Proposition 99 panel (39 states x 1970-2000) as `prop99`.
# Source and provenance: shared/data/SOURCES.md (outcome from synthdid's
# california_prop99, covariates joined from tidysynth's smoking data).
# Run by hand from the package root: Rscript data-raw/prop99.R
path <- file.path("..", "shared", "data", "prop99.csv")
if (!file.exists(path)) path <- "/work/shared/data/prop99.csv"
prop99 <- utils::read.csv(path, stringsAsFactors = FALSE)
prop99$year <- as.integer(prop99$year)
prop99$treated <- as.integer(prop99$treated)
stopifnot(nrow(prop99) == 39L * 31L, !anyDuplicated(prop99[c("state", "year")]))
save(prop99, file = "data/prop99.rda", compress = "xz")
