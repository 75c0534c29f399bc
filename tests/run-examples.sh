#!/bin/sh
# run-examples.sh -- examples/ and missions/ are tests, so none of them rot.
# Called by `make test-examples` with BUILD, CC, SANITIZE, CFLAGS, PYTHON.
#
#   1. `reqonc --check -Werror` on every example: each examples/*.reqon
#      file alone, each examples/<dir>/ as a whole (mission folders), and
#      missions/ as a whole (it is compiled as one unit);
#   2. every example and missions/ compiled to binaries, with -Werror for
#      both reqonc's own warnings and the C compiler (--cflags);
#   3. the missions binary must list its missions and run the offline
#      health check (--once --mission HealthCheck) in a scratch data dir.
#
# Prints PASS/FAIL per check and "examples: N passed, M failed"; writes
# "N M" to $BUILD/test-results/examples.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$top/$BUILD ;; esac
REQONC=$BUILD/reqonc
WERROR_CFLAGS=${WERROR_CFLAGS:--Wall -Wextra -Werror}
work=$BUILD/test-work/examples
rm -rf "$work"
mkdir -p "$work" "$BUILD/test-results"
if [ -n "${SANITIZE:-}" ]; then
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1}
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  export ASAN_OPTIONS UBSAN_OPTIONS
fi

passed=0
failed=0

# check NAME COMMAND...: runs COMMAND (3-minute limit), output to a log.
check() {
  name=$1
  shift
  log=$work/$(echo "$name" | tr '/ ' '__').log
  if timeout 180 "$@" > "$log" 2>&1; then
    passed=$((passed + 1))
    echo "PASS $name"
  else
    failed=$((failed + 1))
    echo "FAIL $name (exit $?): $*"
    sed 's/^/     /' "$log" | tail -n 30
  fi
}

cd "$top" || exit 1
# examples/deploy/ holds deployment files, not missions (checked below).
for f in examples/*.reqon examples/*/; do
  [ -e "$f" ] || continue
  [ "$f" = examples/deploy/ ] && continue
  check "check ${f%/}" "$REQONC" --check -Werror "$f"
done
check "check missions/" "$REQONC" --check -Werror missions/

# Every example all the way to a binary (each takes well under a second).
n=0
for f in examples/*.reqon examples/*/; do
  [ -e "$f" ] || continue
  [ "$f" = examples/deploy/ ] && continue
  n=$((n + 1))
  check "build ${f%/}" "$REQONC" -Werror --cflags "$WERROR_CFLAGS" \
    "$f" -o "$work/example$n"
done
check "build missions/" "$REQONC" -Werror --cflags "$WERROR_CFLAGS" \
  missions/ -o "$work/syncd"
if [ -x "$work/syncd" ]; then
  check "syncd --list" "$work/syncd" --list --data-dir "$work/data"
  check "syncd --once --mission HealthCheck" "$work/syncd" --once \
    --mission HealthCheck --data-dir "$work/data"
  check "health store written" test -s "$work/data/health.json"
fi

# Deployment files (examples/deploy/README.md says which are tested): the
# systemd unit must pass `systemd-analyze verify` without a single
# warning (it only warns about unknown or misspelt settings), run against
# the binary just built; every metric an alert rule uses must be one the
# daemon exports.
if [ -x "$work/syncd" ]; then
  sed "s|/usr/local/bin/syncd|$work/syncd|" \
    examples/deploy/reqon-syncd.service > "$work/reqon-syncd.service"
  check "deploy: systemd unit verifies cleanly" sh -c \
    'out=$(systemd-analyze verify "$1" 2>&1) && [ -z "$out" ] ||
     { echo "$out"; exit 1; }' sh "$work/reqon-syncd.service"
fi
check "deploy: alert rules use exported metric names" sh -c \
  'for m in $(grep -o "reqon_[a-z_]*" examples/deploy/reqon-alerts.yml |
              sort -u); do
     grep -q "\"$m\"" runtime/metrics.c ||
       { echo "not a metric of the daemon: $m"; exit 1; }
   done'

echo "examples: $passed passed, $failed failed"
echo "$passed $failed" > "$BUILD/test-results/examples"
[ "$failed" -eq 0 ]
