#!/bin/sh
# run-secrets.sh -- the secret-leak suite (SPEC §10.2: credentials are
# never logged; §8.2: nor recorded).  Runs every case of tests/e2e/cases/
# and tests/conformance/ through tests/e2e/harness.py --secrets: each run
# line gets --verbose, and a case fails when one of its credential values
# (its --auth files' strings, its TOKEN/SECRET/PASSWORD/KEY env values,
# the access/refresh tokens its server hands out, the passwords of URL
# userinfo in its sources) appears in the runs' stdout or stderr, in
# --output, or in any file of the data directory except tokens/.  The
# cases' own expectations are not checked here (the e2e and conformance
# suites do that): only the compile must succeed and the runs must
# finish.
#
#   sh tests/run-secrets.sh              every case
#   sh tests/run-secrets.sh auth-basic   only the named case(s), looked up
#                                        in tests/e2e/cases, then in
#                                        tests/conformance
#
# Prints PASS/FAIL per case and "secrets: N passed, M failed"; writes
# "N M" to $BUILD/test-results/secrets.  Environment as run-e2e.sh.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-python3}
case $BUILD in /*) ;; *) BUILD=$top/$BUILD ;; esac
export BUILD
if [ -n "${SANITIZE:-}" ]; then
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  export ASAN_OPTIONS UBSAN_OPTIONS
fi

e2e=$top/tests/e2e/cases
conf=$top/tests/conformance
if [ $# -gt 0 ]; then
  cases=""
  for n in "$@"; do
    n=${n%/}
    if [ -d "$e2e/$n" ]; then cases="$cases $e2e/$n"
    else cases="$cases $conf/$n"; fi
  done
else
  cases=$(ls -d "$e2e"/*/ "$conf"/*/)
fi
# shellcheck disable=SC2086  # case paths never contain spaces
exec "$PYTHON" "$top/tests/e2e/harness.py" --build "$BUILD" \
  --suite secrets --secrets $cases
