#!/bin/sh
# run-crash.sh -- the crash-safety suite (suite `crash`): SIGKILLs a
# compiled paginated sync 50 times at random moments on one data
# directory and checks that nothing is torn, no checkpoint is ahead of
# its data and the lock is free, then a clean run and the lock test.
# See README.md; the work is done by crash.py.
#
#   sh tests/crash/run-crash.sh              a fresh random seed
#   CRASH_SEED=1234 sh tests/crash/run-crash.sh   replay a seed
#   CRASH_KILLS=10 sh tests/crash/run-crash.sh    fewer kills
#
# Needs $BUILD/reqonc and $BUILD/fakeapi.  Prints PASS/FAIL per check and
# "crash: N passed, M failed"; writes "N M" to $BUILD/test-results/crash.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-python3}
case $BUILD in /*) ;; *) BUILD=$top/$BUILD ;; esac
# Sanitized builds: killed processes report nothing; the clean runs are
# leak-checked like the e2e runs.
if [ -n "${SANITIZE:-}" ]; then
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  export ASAN_OPTIONS UBSAN_OPTIONS
fi
seed=
if [ -n "${CRASH_SEED:-}" ]; then seed="--seed $CRASH_SEED"; fi
# shellcheck disable=SC2086  # $seed is an option list
exec "$PYTHON" "$top/tests/crash/crash.py" --build "$BUILD" \
  --kills "${CRASH_KILLS:-50}" $seed
