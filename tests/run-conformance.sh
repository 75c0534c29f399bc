#!/bin/sh
# run-conformance.sh -- the shared conformance sample (tests/conformance/*/,
# copied unchanged from the project's shared conformance folder) through
# our harness and fakeapi.  Called by `make test-conformance`.
#
#   sh tests/run-conformance.sh [CASE...]
#
# Prints PASS/FAIL per case and "conformance: N passed, M failed"; writes
# "N M" to $BUILD/test-results/conformance.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
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

if [ $# -gt 0 ]; then
  cases=""
  for n in "$@"; do cases="$cases $top/tests/conformance/${n%/}"; done
else
  cases=$(ls -d "$top"/tests/conformance/*/)
fi
# shellcheck disable=SC2086  # case paths never contain spaces
exec "$PYTHON" "$top/tests/e2e/harness.py" --build "$BUILD" \
  --suite conformance $cases
