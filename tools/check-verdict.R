# Reads an R CMD check directory and exits non-zero on any ERROR or WARNING.
# It also prints the testthat totals as one plain line: "N passed, N failed".
args <- commandArgs(trailingOnly = TRUE)
rcheck <- args[1]
status <- as.integer(if (length(args) > 1) args[2] else 0)
log <- file.path(rcheck, "00check.log")
if (!file.exists(log)) {
  cat("R CMD check left no log at", log, "\n")
  quit(status = 1)
}
lines <- readLines(log, warn = FALSE)
errors <- grep("\\.\\.\\. ERROR$|^ERROR", lines, value = TRUE)
warnings <- grep("\\.\\.\\. WARNING$|^WARNING", lines, value = TRUE)
notes <- grep("\\.\\.\\. NOTE$", lines, value = TRUE)
tail_lines <- utils::tail(lines, 3)

# testthat writes its summary into tests/testthat.Rout(.fail).
rout <- list.files(file.path(rcheck, "tests"), pattern = "^testthat\\.Rout",
                   full.names = TRUE)
passed <- failed <- skipped <- NA_integer_
if (length(rout)) {
  txt <- readLines(rout[1], warn = FALSE)
  tot <- grep("\\[ FAIL [0-9]+ \\| WARN [0-9]+ \\| SKIP [0-9]+ \\| PASS [0-9]+ \\]", txt,
              value = TRUE)
  if (length(tot)) {
    tot <- tot[length(tot)]
    num <- function(tag) as.integer(sub(paste0(".*", tag, " ([0-9]+).*"), "\\1", tot))
    passed <- num("PASS"); failed <- num("FAIL"); skipped <- num("SKIP")
  }
}
cat("\n== R CMD check verdict\n")
cat(sprintf("%d error(s), %d warning(s), %d note(s)\n",
            length(errors), length(warnings), length(notes)))
if (length(notes)) cat("Notes:\n", paste0("  ", notes, "\n"), sep = "")
if (length(c(errors, warnings))) {
  cat("Problems:\n", paste0("  ", c(errors, warnings), "\n"), sep = "")
}
if (!is.na(passed)) {
  cat(sprintf("%d passed, %d failed, %d skipped\n", passed, failed, skipped))
} else {
  cat("0 passed, 1 failed\n")
  cat("(no testthat summary was found in the check directory)\n")
}
bad <- length(errors) > 0 || length(warnings) > 0 || status != 0 ||
  is.na(passed) || (!is.na(failed) && failed > 0)
quit(status = if (bad) 1 else 0)
