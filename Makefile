# Two commands for a fresh machine that has only R:
#   make demo   installs what is missing, installs mktcausal, runs the flagship analysis
#   make check  installs what is missing, builds the tarball, runs R CMD check --as-cran
#   make site   installs pkgdown and pandoc if missing, builds the site into docs/
R      ?= R
RSCRIPT ?= Rscript
PKG    := mktcausal
VERSION := $(shell sed -n 's/^Version: //p' DESCRIPTION)
TARBALL := $(PKG)_$(VERSION).tar.gz
CHECKDIR := check

# The PDF-compaction check wants qpdf; the package ships no PDF, so where
# qpdf is missing a no-op stands in rather than installing a system tool.
QPDF := $(shell command -v qpdf 2>/dev/null || echo true)

# NOT_CRAN=true runs the slower simulation tests and the two-worker
# reproducibility tests too, which CRAN's own run would skip.
# Checks that need the internet or tools CRAN's machines have and this one
# need not (HTML tidy, V8, a time server) are switched off; everything else
# runs as --as-cran runs it.
CHECK_ENV := _R_CHECK_FUTURE_FILE_TIMESTAMPS_=false \
             _R_CHECK_CRAN_INCOMING_REMOTE_=false \
             _R_CHECK_RD_VALIDATE_RD2HTML_=false \
             _R_CHECK_SYSTEM_CLOCK_=false \
             _R_CHECK_FORCE_SUGGESTS_=true \
             NOT_CRAN=true \
             OMP_THREAD_LIMIT=2 \
             R_QPDF=$(QPDF)

# Compile jobs for the C++ sources. R's own make gets them as a fresh
# MAKEFLAGS: inheriting this make's jobserver (MAKEFLAGS=-j2 make check)
# hands R CMD check pipe descriptors that R may have reused, and the
# compile then stops with "read jobs pipe: Bad file descriptor".
JOBS ?= 2
R_MAKE := env MAKEFLAGS=-j$(JOBS)

.PHONY: deps install demo build check test document bench clean pandoc site

# R's compiler flags on Debian (and most Linux builds of R) include -g: the
# debug information of the Eigen templates makes the shared library about
# 48 MB, the code under 1 MB. Installs made here strip the debug information
# (R CMD INSTALL --strip), as Linux distributions do for their R package
# binaries; `R CMD INSTALL .` keeps it for a debugger, and `make sanitize`
# keeps it. GNU strip's --strip-debug keeps the symbol table, which R CMD
# check reads to see that native routines are registered (R's default,
# --strip-unneeded, removes it and costs a NOTE). Where strip is not GNU's,
# nothing is stripped.
STRIP_DEBUG := $(shell strip --version 2>/dev/null | grep -q GNU && echo 'strip --strip-debug')
ifneq ($(STRIP_DEBUG),)
STRIP := --strip
export R_STRIP_SHARED_LIB := $(STRIP_DEBUG)
endif

deps:
	$(RSCRIPT) tools/install-deps.R

install: deps
	$(R_MAKE) $(R) CMD INSTALL --no-multiarch $(STRIP) .

demo: install
	$(RSCRIPT) inst/examples/flagship.R

build: deps
	rm -f $(PKG)_*.tar.gz
	$(R_MAKE) $(R) CMD build .

# pandoc lets the check read NEWS.md (without it: a NOTE); it is installed
# from Debian when missing and apt-get can, and skipped otherwise.
check: build
	@sh tools/install-pandoc.sh
	rm -rf $(CHECKDIR) && mkdir -p $(CHECKDIR)
	cd $(CHECKDIR) && $(R_MAKE) env $(CHECK_ENV) $(R) CMD check --as-cran --no-manual \
	  $(if $(STRIP),--install-args=$(STRIP)) ../$(TARBALL); \
	  status=$$?; cd .. && $(RSCRIPT) tools/check-verdict.R $(CHECKDIR)/$(PKG).Rcheck $$status

pandoc:
	@sh tools/install-pandoc.sh

# The documentation site (pkgdown) in docs/, which git and R CMD build
# ignore. pkgdown is a tool of the site only, not a dependency of the
# package: installed here (with the package's own dependencies when missing)
# as tools/install-deps.R installs them, from Debian's r-cran-* packages
# where possible, else from CRAN.
site:
	$(RSCRIPT) tools/install-deps.R pkgdown
	@sh tools/install-pandoc.sh
	$(RSCRIPT) tools/build-site.R

test: install
	$(RSCRIPT) -e 'testthat::test_local(".", reporter = "summary")'

# roxygen compiles src/ without optimisation to load the package; the
# objects are removed so that a later install does not reuse them.
document:
	$(RSCRIPT) -e 'Rcpp::compileAttributes(); roxygen2::roxygenise()'
	rm -f src/*.o src/*.so

bench: install
	$(RSCRIPT) bench/run.R

# AddressSanitizer and UBSan: an instrumented build in a separate library,
# then the tests of every C++ kernel against it; fails on any report.
.PHONY: sanitize
sanitize: deps
	R="$(R)" RSCRIPT="$(RSCRIPT)" tools/sanitize.sh

clean:
	rm -rf $(CHECKDIR) $(PKG)_*.tar.gz src/*.o src/*.so docs
