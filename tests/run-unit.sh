#!/bin/sh
# run-unit.sh -- builds every tests/unit/test_*.c against
# $BUILD/libreqonrt.a, runs it, and sums the checks from the last line of
# its output ("N passed, M failed").  A test that does not build, crashes,
# or exits non-zero without reporting a failed check (a sanitizer report,
# for instance) counts as one more failure.
#
# Prints "unit: N passed, M failed", writes "N M" to
# $BUILD/test-results/unit and exits 1 on any failure.
#
# Environment: BUILD (default build), CC (default cc), SANITIZE (e.g.
# address,undefined: the tests are built with the same sanitizers as the
# library).

BUILD=${BUILD:-build}
# Absolute, so tests that chdir into a scratch directory still find
# $BUILD/fakeapi.
case $BUILD in /*) ;; *) BUILD=$(pwd)/$BUILD ;; esac
export BUILD
CC=${CC:-cc}
SANFLAGS=
if [ -n "$SANITIZE" ]; then
  SANFLAGS="-fsanitize=$SANITIZE -fno-omit-frame-pointer"
  SANFLAGS="$SANFLAGS -fno-sanitize-recover=all"
fi
DEP_CFLAGS=$(pkg-config --cflags libcurl jansson)
DEP_LIBS=$(pkg-config --libs libcurl jansson libmicrohttpd)
# Guards against a test that hangs; skipped where timeout(1) is missing.
TIMEOUT=
if command -v timeout >/dev/null 2>&1; then
  TIMEOUT="timeout 300"
fi

mkdir -p "$BUILD/unit" "$BUILD/test-results"
passed=0
failed=0

for src in tests/unit/test_*.c; do
  [ -e "$src" ] || continue
  name=$(basename "$src" .c)
  exe=$BUILD/unit/$name
  log=$BUILD/unit/$name.log
  # $SANFLAGS, $DEP_CFLAGS and $DEP_LIBS are word lists: unquoted on
  # purpose.
  if ! $CC -std=c11 -g -D_GNU_SOURCE $SANFLAGS -Iruntime -Itests/unit \
      $DEP_CFLAGS "$src" "$BUILD/libreqonrt.a" $DEP_LIBS -lm -lpthread \
      -o "$exe" >"$log" 2>&1; then
    cat "$log"
    echo "unit: $name: does not build"
    failed=$((failed + 1))
    continue
  fi
  $TIMEOUT "$exe" >"$log" 2>&1
  rc=$?
  # The report is the last line a test prints; a sanitizer may still
  # write after it (LeakSanitizer at exit), so take the last such line.
  last=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
  p=$(printf '%s\n' "$last" |
      sed -n 's/^\([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed$/\1/p')
  f=$(printf '%s\n' "$last" |
      sed -n 's/^\([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed$/\2/p')
  if [ -z "$p" ]; then
    # No report line: the test crashed or was killed.
    cat "$log"
    echo "unit: $name: crashed (exit status $rc)"
    failed=$((failed + 1))
    continue
  fi
  passed=$((passed + p))
  failed=$((failed + f))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    cat "$log"
    echo "unit: $name: exit status $rc after a clean report"
    failed=$((failed + 1))
  elif [ "$f" -ne 0 ]; then
    cat "$log"
  fi
  echo "unit: $name: $p passed, $f failed"
done

echo "unit: $passed passed, $failed failed"
echo "$passed $failed" >"$BUILD/test-results/unit"
[ "$failed" -eq 0 ]
