# Builds the documentation site with pkgdown into docs/ (`make site`, which
# first installs pkgdown and pandoc when they are missing).
# Usage: Rscript tools/build-site.R
#
# 1. The package is installed from this folder into a temporary library (the
#    user's library is left alone); examples and articles run against it.
# 2. The vignettes are run with litedown, the engine R CMD build uses
#    (VignetteEngine litedown::vignette), each in a fresh R process, into
#    markdown: code, printed output, figures and the raw MathML math, as in
#    the vignettes a user installs.
# 3. pkgdown builds the site from a copy of the sources in which each
#    vignette is replaced by that markdown. pkgdown renders articles with
#    knitr and rmarkdown only, and knitr would misread litedown's syntax
#    (inline R is `{r} x` in litedown; `r x` is verbatim code there, R code
#    to knitr) and ignore its chunk options (litedown::reactor()); given the
#    rendered markdown it has nothing left to run, and pandoc turns it into
#    pages in the site's template.
# pkgdown stops when an exported topic or a vignette is missing from the
# index in _pkgdown.yml.
started <- Sys.time()
for (p in c("pkgdown", "litedown", "callr")) {
  if (!requireNamespace(p, quietly = TRUE)) {
    stop(p, " is not installed: run `make site`, which installs what the site needs.",
         call. = FALSE)
  }
}
if (!rmarkdown::pandoc_available("2.0")) {
  stop("pandoc (>= 2.0) is needed to build the site: on Debian, ",
       "`apt-get install pandoc`; elsewhere see https://pandoc.org/installing.html.",
       call. = FALSE)
}
if (!file.exists("_pkgdown.yml")) {
  stop("Run tools/build-site.R from the package's folder.", call. = FALSE)
}
site <- file.path(getwd(), "docs")
work <- tempfile("mktcausal-site-")
dir.create(work)
on.exit(unlink(work, recursive = TRUE), add = TRUE)
step <- function(...) message("== ", ..., " (", round(as.numeric(difftime(
  Sys.time(), started, units = "secs"))), " s)")

# 1. Install. Objects already compiled in src/ (by `make install`) are reused.
step("Installing mktcausal into a temporary library")
lib <- file.path(work, "lib")
dir.create(lib)
r <- file.path(R.home("bin"), "R")
log <- file.path(work, "install.log")
status <- system2(r, c("CMD", "INSTALL", "--no-multiarch", paste0("--library=", shQuote(lib)), "."),
                  stdout = log, stderr = log)
if (status != 0) {
  cat(utils::tail(readLines(log), 40), sep = "\n")
  stop("Installing the package failed.", call. = FALSE)
}
libpath <- c(lib, .libPaths())

# A copy of the sources for pkgdown: everything but the compiled objects,
# the git metadata and what builds and checks leave behind.
src <- file.path(work, "mktcausal")
dir.create(src)
skip <- c(".git", "src", "docs", "check", "mktcausal.Rcheck", "mktcausal-demo")
top <- setdiff(list.files(".", all.files = TRUE, no.. = TRUE), skip)
top <- top[!grepl("\\.tar\\.gz$", top)]
ok <- file.copy(top, src, recursive = TRUE)
if (!all(ok)) stop("Could not copy: ", paste(top[!ok], collapse = ", "), call. = FALSE)

# 2. Run each vignette with litedown into markdown, in a fresh process.
vig_dir <- file.path(src, "vignettes")
vignettes <- list.files(vig_dir, pattern = "\\.[rR]md$")
for (v in vignettes) {
  step("Running vignettes/", v, " with litedown")
  md <- sub("\\.[rR]md$", ".md", v)
  callr::r(function(dir, input, output) {
    setwd(dir)
    suppressPackageStartupMessages(litedown::fuse(input, output, quiet = TRUE))
    invisible()
  }, args = list(dir = vig_dir, input = v, output = md), libpath = libpath,
  show = TRUE)
  text <- readLines(file.path(vig_dir, md), encoding = "UTF-8", warn = FALSE)
  # The front matter's `output:` (litedown's format) is not the site's.
  fences <- which(text == "---")
  if (length(fences) >= 2 && fences[1] == 1) {
    header <- seq(2, fences[2] - 1)
    key <- cumsum(grepl("^[A-Za-z_]", text[header]))  # the top-level key of each line
    output <- key[grepl("^output:", text[header])]
    if (length(output)) text <- text[-header[key %in% output]]
  }
  # What litedown left as verbatim code starting with "r " (`r = NULL`) is
  # inline R to knitr: double backticks and spaces keep it verbatim.
  text <- gsub("(?<!`)`(r[ #][^`]*)`(?!`)", "`` \\1 ``", text, perl = TRUE)
  writeLines(text, file.path(vig_dir, v), useBytes = TRUE)
  unlink(file.path(vig_dir, md))
}

# A section of articles that only excludes ("- -`name`") takes every vignette
# not named elsewhere; it is left out while there is none.
config <- yaml::read_yaml(file.path(src, "_pkgdown.yml"))
names_v <- sub("\\.[rR]md$", "", vignettes)
keep <- vapply(config$articles, function(section) {
  items <- unlist(section$contents)
  if (!length(items) || !all(startsWith(items, "-"))) return(TRUE)
  length(setdiff(names_v, gsub("^-|`", "", items))) > 0
}, logical(1))
if (!all(keep)) {
  config$articles <- config$articles[keep]
  yaml::write_yaml(config, file.path(src, "_pkgdown.yml"))
}

# 3. The site, built in a fresh process that sees the temporary library.
# Offline: no look-up of the package on CRAN or Bioconductor for a sidebar
# link (it is on neither), so the build needs no network and cannot hang on
# an unreachable host.
step("Building the site with pkgdown ", utils::packageVersion("pkgdown"))
unlink(site, recursive = TRUE)
callr::r(function(src, site) {
  options(pkgdown.internet = FALSE)
  pkgdown::build_site(src, preview = FALSE, install = FALSE, new_process = FALSE,
                      override = list(destination = site))
}, args = list(src = src, site = site), libpath = libpath, show = TRUE)

# Every page the indexes link to must be there.
pages <- c("index.html", "reference/index.html", "articles/index.html", "news/index.html",
           file.path("articles", sub("\\.[rR]md$", ".html", vignettes)))
missing <- pages[!file.exists(file.path(site, pages))]
if (length(missing)) {
  stop("The site lacks: ", paste(missing, collapse = ", "), call. = FALSE)
}
step("Site built in docs/: open docs/index.html")
