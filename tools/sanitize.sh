#!/usr/bin/env bash
# `make sanitize`: builds mktcausal with AddressSanitizer and
# UndefinedBehaviorSanitizer into a separate library and runs the tests of
# every C++ kernel against that build. Fails on a failing test and on any
# sanitizer report (an invalid read or write, a use after free, an overflow,
# a misaligned or out-of-range operation, ...).
#
#   tools/sanitize.sh            # or: make sanitize
#
# Environment:
#   SANITIZE_LIB    library for the instrumented build
#                   (default: $TMPDIR/mktcausal-sanitize-lib)
#   SANITIZE_TESTS  regex of the test files to run (default: every file that
#                   reaches a C++ kernel, listed below)
#   SANITIZE_LOG    log of the test run (default: $TMPDIR/mktcausal-sanitize.log)
#   SANITIZE_REUSE  "true" to reuse an instrumented build already in
#                   SANITIZE_LIB (only the tests run)
#
# R itself is not instrumented, so the ASan runtime is preloaded
# (LD_PRELOAD of gcc's libasan) and leak detection is off: R frees its heap
# at exit in its own way. The tests' child R processes (the interrupt and
# robustness tests) inherit the preload, so they run instrumented too.
set -euo pipefail
cd "$(dirname "$0")/.."

R=${R:-R}
RSCRIPT=${RSCRIPT:-Rscript}
tmp=${TMPDIR:-/tmp}
lib=${SANITIZE_LIB:-$tmp/mktcausal-sanitize-lib}
mkdir -p "$lib"
lib=$(cd "$lib" && pwd)
log=${SANITIZE_LOG:-$tmp/mktcausal-sanitize.log}
# Test files that reach a kernel: the fixed-effects demeaning (every
# panel regression), the interactive fixed effects and matrix completion,
# the re-randomization search and randomization inference, the staggered
# bootstrap, the synthetic-control solvers, the honest-DiD ARP test, the
# replicate streams; and the robustness sample, whose bad inputs reach
# the kernels through every export; the contract test walks one fit of every
# estimator.
tests=${SANITIZE_TESTS:-'fixed_effects|ife|counterfactual|rerandomize|randomization_test|rem_asymptotic|design_power|experiment_effect|spillover|staggered|event_study|bacon|synth|honest|resample|dose_response|exposure_did|iv_fe|dml|geo_effect|contract|robustness'}

libasan=$(gcc -print-file-name=libasan.so)
if [ ! -f "$libasan" ]; then
  echo "sanitize: gcc's libasan.so was not found ($libasan)" >&2
  exit 1
fi

started=$(date +%s)
# Build from a clean copy of the sources, so that neither the worktree's
# object files nor the instrumented ones cross over.
src=$(mktemp -d)
makevars=$(mktemp)
# Every process writes its sanitizer reports here (child R processes'
# stderr may not reach the log).
reports=$(mktemp -d)
trap 'rm -rf "$src" "$makevars" "$reports"' EXIT
tar --exclude=.git --exclude='src/*.o' --exclude='src/*.so' --exclude=check \
    --exclude='*.tar.gz' -cf - . | (cd "$src" && tar -xf -)

flags="-g -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
cat > "$makevars" <<EOF
CFLAGS = $flags
CXXFLAGS = $flags
CXX11FLAGS = $flags
CXX14FLAGS = $flags
CXX17FLAGS = $flags
CXX20FLAGS = $flags
LDFLAGS = -fsanitize=address,undefined
EOF

if [ "${SANITIZE_REUSE:-}" = "true" ] && [ -d "$lib/mktcausal" ]; then
  echo "sanitize: reusing the instrumented build in $lib"
else
  echo "sanitize: building with $flags into $lib"
  # Never stripped: the reports need the debug information for file:line.
  _R_SHLIB_STRIP_=false R_MAKEVARS_USER="$makevars" "$R" CMD INSTALL --no-multiarch --no-test-load \
    --library="$lib" "$src" > "$log.install" 2>&1 || {
    tail -40 "$log.install"; echo "sanitize: the instrumented build failed" >&2; exit 1; }
fi
built=$(date +%s)
echo "sanitize: built in $((built - started)) s; running tests matching '$tests'"

# A canary: a one-line heap overflow built with the same flags must be
# reported, else a clean run below would prove nothing (sanitizer runtime
# not loaded, flags not applied).
canary=$(mktemp -d)
printf '%s\n' '#include <stdlib.h>' \
  'void canary(int *n) { int *x = malloc(4 * sizeof(int)); x[*n] = 1; free(x); }' \
  > "$canary/canary.c"
(cd "$canary" && R_MAKEVARS_USER="$makevars" "$R" CMD SHLIB -o canary.so canary.c > /dev/null 2>&1)
env LD_PRELOAD="$libasan" ASAN_OPTIONS="detect_leaks=0:log_path=$canary/report" \
  UBSAN_OPTIONS="halt_on_error=1:log_path=$canary/report" \
  "$RSCRIPT" -e "dyn.load('$canary/canary.so'); invisible(.C('canary', 4L))" \
  > "$canary/stderr" 2>&1 || true
# UBSan's object-size check usually sees the store first (on stderr), else
# ASan (in its log).
if ! grep -qsE "heap-buffer-overflow|insufficient space" "$canary"/report* "$canary/stderr"; then
  echo "sanitize: the canary overflow was not reported: the sanitizers are not active" >&2
  rm -rf "$canary"
  exit 1
fi
rm -rf "$canary"
echo "sanitize: canary overflow reported, the sanitizers are active"

status=0
env LD_PRELOAD="$libasan" \
    ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:log_path=$reports/asan" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$reports/ubsan" \
    R_LIBS="$lib${R_LIBS:+:$R_LIBS}" NOT_CRAN=true \
  "$RSCRIPT" -e "
    suppressPackageStartupMessages(library(mktcausal, lib.loc = '$lib'))
    stopifnot(grepl('$lib', find.package('mktcausal'), fixed = TRUE))
    res <- testthat::test_dir('tests/testthat', filter = '$tests', reporter = 'summary',
                              package = 'mktcausal', load_package = 'installed',
                              stop_on_failure = FALSE)
    df <- as.data.frame(res)
    cat('\nPASSED', sum(df\$passed), 'FAILED', sum(df\$failed), 'SKIPPED', sum(df\$skipped),
        'ERROR', sum(df\$error), '\n')
    quit(status = as.integer(sum(df\$failed) + sum(df\$error) > 0))
  " > "$log" 2>&1 || status=$?
finished=$(date +%s)

tail -25 "$log"
# A report from any process (a child R process included) fails the run.
# (UBSan may write to stderr despite log_path; it then halts the process,
# so the test that ran it fails and the run fails with it.)
if [ -n "$(ls -A "$reports")" ] || grep -qE "ERROR: AddressSanitizer|runtime error:" "$log"; then
  echo "sanitize: sanitizer report(s):" >&2
  for f in "$reports"/*; do [ -f "$f" ] && { echo "== $f" >&2; head -60 "$f" >&2; }; done
  grep -nE -A12 "ERROR: AddressSanitizer|runtime error:" "$log" | head -60 >&2 || true
  cp -r "$reports" "$log.reports" 2>/dev/null || true
  status=1
fi
echo "sanitize: build $((built - started)) s, tests $((finished - built)) s, total $((finished - started)) s; status $status"
exit $status
