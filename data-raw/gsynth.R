# Writes data/gsynth_simdata.rda and data/gsynth_turnout.rda from the CSV
# exports of gsynth's example data (see ../shared/data/SOURCES.md). Run from
# the package root:
#   Rscript data-raw/gsynth.R
# The CSVs were written with 15 significant digits, so the values equal
# gsynth's to within 1e-14 relative error.
gsynth_simdata <- utils::read.csv("../shared/data/gsynth_simdata.csv")
gsynth_turnout <- utils::read.csv("../shared/data/gsynth_turnout.csv",
                                  stringsAsFactors = FALSE)
for (v in c("id", "time")) gsynth_simdata[[v]] <- as.integer(gsynth_simdata[[v]])
gsynth_simdata$D <- as.integer(gsynth_simdata$D)
gsynth_turnout$year <- as.integer(gsynth_turnout$year)
for (v in c("policy_edr", "policy_mail_in", "policy_motor")) {
  gsynth_turnout[[v]] <- as.integer(gsynth_turnout[[v]])
}
stopifnot(
  nrow(gsynth_simdata) == 50 * 30, !anyNA(gsynth_simdata),
  abs(mean(gsynth_simdata$eff[gsynth_simdata$D == 1]) - 5.462032) < 1e-6,
  nrow(gsynth_turnout) == 47 * 24
)
if (!dir.exists("data")) dir.create("data")
save(gsynth_simdata, file = "data/gsynth_simdata.rda", compress = "xz")
save(gsynth_turnout, file = "data/gsynth_turnout.rda", compress = "xz")
