#!/bin/sh
# run-e2e.sh -- the project's end-to-end cases (tests/e2e/cases/*/) against
# build/fakeapi; see tests/e2e/README.md.  Called by `make test-e2e` with
# BUILD, CC, SANITIZE, CFLAGS and PYTHON in the environment.
#
#   sh tests/e2e/run-e2e.sh                  every case
#   sh tests/e2e/run-e2e.sh skip-outside     only the named case(s)
#
# Prints PASS/FAIL per case and "e2e: N passed, M failed"; writes "N M" to
# $BUILD/test-results/e2e.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-python3}
case $BUILD in /*) ;; *) BUILD=$top/$BUILD ;; esac
export BUILD
# Sanitized builds: fail on the first report, and let LSan check each
# daemon's whole lifecycle (runs end normally, not by SIGKILL).
if [ -n "${SANITIZE:-}" ]; then
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  export ASAN_OPTIONS UBSAN_OPTIONS
fi

# Another folder of cases, under another suite name (run-conformance.sh).
suite=${E2E_SUITE:-e2e}
dir=${E2E_CASES:-$top/tests/e2e/cases}
if [ $# -gt 0 ]; then
  cases=""
  for n in "$@"; do cases="$cases $dir/${n%/}"; done
else
  cases=$(ls -d "$dir"/*/)
fi
# shellcheck disable=SC2086  # case paths never contain spaces
exec "$PYTHON" "$top/tests/e2e/harness.py" --build "$BUILD" \
  --suite "$suite" $cases
