#!/bin/sh
# Installs pandoc from Debian when it is missing. Used by `make check` and
# `make site`: R CMD check renders NEWS.md (and README.md, where a package
# ships one) with pandoc, and without it says in a NOTE that they could not
# be checked; pkgdown needs it to build the site.
#
# Where pandoc cannot be installed this way (no apt-get, not root, no
# candidate, MKTCAUSAL_NO_APT=1 set) it says so in one line and exits 0: the
# check then runs without pandoc, as before. It never fails a build.
command -v pandoc >/dev/null 2>&1 && exit 0
if [ -n "${MKTCAUSAL_NO_APT:-}" ] || [ "$(id -u)" != 0 ] ||
   ! command -v apt-get >/dev/null 2>&1; then
  echo "pandoc is not installed; install it to let R CMD check read NEWS.md (https://pandoc.org/installing.html)." >&2
  exit 0
fi
candidate() {
  apt-cache policy pandoc 2>/dev/null | sed -n 's/^ *Candidate: *//p'
}
version=$(candidate)
if [ -z "$version" ] || [ "$version" = "(none)" ]; then
  # A fresh machine may not have read the package lists yet.
  apt-get update -qq >/dev/null 2>&1 || true
  version=$(candidate)
fi
if [ -z "$version" ] || [ "$version" = "(none)" ]; then
  echo "pandoc is not installed and apt-get has no candidate for it; going on without it." >&2
  exit 0
fi
echo "Installing pandoc $version from Debian"
# Waits for another apt-get or dpkg (up to 5 minutes) rather than failing.
if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
     -o DPkg::Lock::Timeout=300 pandoc >/dev/null; then
  echo "Installing pandoc failed; going on without it." >&2
fi
exit 0
