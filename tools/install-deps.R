# Installs, from CRAN, whatever the package needs to build, check and run its
# demo and is not installed yet (or is older than DESCRIPTION asks).
# Used by `make demo` and `make check`. Usage: Rscript tools/install-deps.R [extra...]
args <- commandArgs(trailingOnly = TRUE)
repos <- getOption("repos")
if (is.null(repos) || identical(unname(repos["CRAN"]), "@CRAN@")) {
  repos <- c(CRAN = "https://cloud.r-project.org")
}
desc <- read.dcf("DESCRIPTION")
parse_field <- function(name) {
  if (!name %in% colnames(desc)) return(NULL)
  x <- trimws(strsplit(desc[, name], ",")[[1]])
  x <- x[nzchar(x)]
  pkg <- trimws(sub("\\(.*", "", x))
  ver <- ifelse(grepl(">=", x), trimws(sub(".*>=\\s*([^)]*)\\).*", "\\1", x)), NA)
  data.frame(pkg = pkg, ver = ver, stringsAsFactors = FALSE)
}
req <- do.call(rbind, lapply(c("Depends", "Imports", "LinkingTo", "Suggests"), parse_field))
if (length(args)) req <- rbind(req, data.frame(pkg = args, ver = NA))
base <- rownames(installed.packages(priority = "base"))
req <- req[!req$pkg %in% c("R", base) & !duplicated(req$pkg), ]

# Decide without loading anything: a namespace loaded here could be replaced
# by the install and then look broken to this session.
needs_install <- function(pkg, ver) {
  path <- system.file(package = pkg)
  if (!nzchar(path)) return(TRUE)
  if (is.na(ver)) return(FALSE)
  have <- read.dcf(file.path(path, "DESCRIPTION"), fields = "Version")[1, 1]
  utils::compareVersion(have, ver) < 0
}
missing <- req$pkg[mapply(needs_install, req$pkg, req$ver)]
if (!length(missing)) {
  message("All dependencies are installed.")
  quit(status = 0)
}
message("Installing from CRAN: ", paste(missing, collapse = ", "))
lib <- .libPaths()[1]
if (file.access(lib, 2) != 0) {
  lib <- Sys.getenv("R_LIBS_USER")
  dir.create(lib, recursive = TRUE, showWarnings = FALSE)
}
ncpus <- max(1L, min(4L, parallel::detectCores(), na.rm = TRUE))
install.packages(missing, lib = lib, repos = repos, Ncpus = ncpus,
                 dependencies = c("Depends", "Imports", "LinkingTo"))
# Verify in a fresh R process, which sees the newly installed versions.
rscript <- file.path(R.home("bin"), "Rscript")
ok <- vapply(missing, function(p) {
  system2(rscript, c("-e", shQuote(sprintf(
    "quit(status = !requireNamespace('%s', quietly = TRUE))", p))),
    env = paste0("R_LIBS=", paste(c(lib, .libPaths()), collapse = ":"))) == 0
}, logical(1))
if (!all(ok)) stop("Could not install: ", paste(missing[!ok], collapse = ", "), call. = FALSE)
message("Installed: ", paste(missing, collapse = ", "))
