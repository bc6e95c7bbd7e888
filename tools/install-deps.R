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

# On Debian, as root, take the prebuilt r-cran-* packages where Debian's
# version is recent enough: compiling the compiled dependencies from source
# takes most of an hour on two cores, a binary install a minute. Whatever
# Debian lacks (or has too old) comes from CRAN below. Set
# MKTCAUSAL_NO_APT=1 to skip this step.
debian_binaries <- function(pkgs, vers) {
  is_root <- identical(tryCatch(system2("id", "-u", stdout = TRUE), error = function(e) ""), "0")
  if (!is_root || !nzchar(Sys.which("apt-get")) || nzchar(Sys.getenv("MKTCAUSAL_NO_APT"))) {
    return(character())
  }
  deb <- paste0("r-cran-", tolower(pkgs))
  candidate <- function(d) {
    out <- suppressWarnings(system2("apt-cache", c("policy", d), stdout = TRUE, stderr = FALSE))
    v <- sub(".*Candidate: *", "", grep("Candidate:", out, value = TRUE))
    if (!length(v) || v == "(none)") NA_character_ else v
  }
  cand <- vapply(deb, candidate, character(1))
  if (all(is.na(cand))) {
    # A fresh machine may not have read the package lists yet.
    system2("apt-get", c("update", "-qq"), stdout = FALSE, stderr = FALSE)
    cand <- vapply(deb, candidate, character(1))
  }
  # Debian's "1.10.0+dfsg-1" is upstream "1.10.0".
  upstream <- sub("-[^-]*$", "", sub("\\+dfsg[0-9]*", "", cand))
  ok <- !is.na(cand) & (is.na(vers) | mapply(function(u, v) {
    !is.na(u) && utils::compareVersion(u, v) >= 0
  }, upstream, vers))
  if (!any(ok)) return(character())
  message("Installing Debian's prebuilt packages: ", paste(deb[ok], collapse = ", "))
  status <- system2("apt-get", c("install", "-y", "-qq", "--no-install-recommends", deb[ok]),
                    env = "DEBIAN_FRONTEND=noninteractive")
  if (status != 0) return(character())
  pkgs[ok]
}
vers <- req$ver[match(missing, req$pkg)]
from_debian <- debian_binaries(missing, vers)
missing <- missing[mapply(needs_install, missing, vers)]
if (!length(missing)) {
  message("Installed from Debian: ", paste(from_debian, collapse = ", "))
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
