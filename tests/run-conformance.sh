#!/bin/sh
# run-conformance.sh -- the shared conformance sample (tests/conformance/*/,
# copied unchanged from the project's shared conformance folder) through
# our harness and fakeapi, exactly as tests/e2e/run-e2e.sh runs our own
# cases.  Called by `make test-conformance`.
#
#   sh tests/run-conformance.sh [CASE...]
#
# Prints PASS/FAIL per case and "conformance: N passed, M failed"; writes
# "N M" to $BUILD/test-results/conformance.
top=$(cd "$(dirname "$0")/.." && pwd)
E2E_SUITE=conformance E2E_CASES=$top/tests/conformance \
  exec sh "$top/tests/e2e/run-e2e.sh" "$@"
