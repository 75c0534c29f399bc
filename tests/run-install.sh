#!/bin/sh
# run-install.sh -- `make install` must give a reqonc that works from any
# directory, with no source or build tree in sight (README, Makefile).
# Called by `make test-install` with BUILD, CC, SANITIZE, CFLAGS.
#
#   1. make install DESTDIR=<tmp> PREFIX=/opt/reqon: the three files land;
#   2. the installed reqonc, run from a scratch directory, points the C
#      compiler at the INSTALLED header and library (-###);
#   3. it compiles an example into a daemon that lists its missions;
#   4. the shared conformance runner passes with the installed reqonc
#      (when ../shared/tools/conformance.py is present, as in CI);
#   5. a build directory is self-consistent: its reqonc uses the headers
#      copied beside its library, even when the source tree next to it
#      has a different reqon.h (a build dir left from an older checkout).
#
# Prints PASS/FAIL per check and "install: N passed, M failed"; writes
# "N M" to $BUILD/test-results/install.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$top/$BUILD ;; esac
work=$BUILD/test-work/install
rm -rf "$work"
mkdir -p "$work/dest" "$work/scratch" "$BUILD/test-results"
if [ -n "${SANITIZE:-}" ]; then
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1}
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  export ASAN_OPTIONS UBSAN_OPTIONS
fi
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "PASS $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; [ -f "$2" ] && tail -n 20 "$2" | sed 's/^/     /'; }

prefix=/opt/reqon
dest=$work/dest
inst=$dest$prefix
if make -C "$top" --no-print-directory BUILD="$BUILD" DESTDIR="$dest" \
     PREFIX="$prefix" install > "$work/install.log" 2>&1 &&
   [ -x "$inst/bin/reqonc" ] && [ -f "$inst/include/reqon/reqon.h" ] &&
   [ -f "$inst/include/reqon/builtins.def" ] &&
   [ -f "$inst/lib/reqon/libreqonrt.a" ]; then
  ok "make install DESTDIR PREFIX"
else
  bad "make install DESTDIR PREFIX" "$work/install.log"
fi

cp "$top/examples/01-pagination.reqon" "$work/scratch/ex.reqon"
cd "$work/scratch" || exit 1
if env -u REQON_RUNTIME_DIR "$inst/bin/reqonc" -### ex.reqon -o ex \
     > "$work/cmd.txt" 2>&1 &&
   grep -q -- "-I$inst/bin/../include/reqon" "$work/cmd.txt" &&
   grep -q -- "$inst/bin/../lib/reqon/libreqonrt.a" "$work/cmd.txt"; then
  ok "installed reqonc uses the installed runtime"
else
  bad "installed reqonc uses the installed runtime" "$work/cmd.txt"
fi

if env -u REQON_RUNTIME_DIR "$inst/bin/reqonc" ex.reqon -o ex \
     > "$work/build.log" 2>&1 &&
   ./ex --list > "$work/list.log" 2>&1 && [ -s "$work/list.log" ]; then
  ok "installed reqonc builds a working daemon"
else
  bad "installed reqonc builds a working daemon" "$work/build.log"
fi

# 5: a copy of the build directory beside a "source tree" whose reqon.h
# is not the one the library was built with.
stale=$work/stale
mkdir -p "$stale/build/include" "$stale/runtime"
cp "$BUILD/reqonc" "$BUILD/libreqonrt.a" "$stale/build/" &&
  cp -r "$BUILD/include/reqon" "$stale/build/include/"
printf '#error "the source tree header, not the build'"'"'s copy"\n' \
  > "$stale/runtime/reqon.h"
if env -u REQON_RUNTIME_DIR "$stale/build/reqonc" ex.reqon -o stale-ex \
     > "$work/stale.log" 2>&1 && ./stale-ex --list > /dev/null 2>&1; then
  ok "a build directory uses its own copy of reqon.h"
else
  bad "a build directory uses its own copy of reqon.h" "$work/stale.log"
fi

runner=$top/../shared/tools/conformance.py
if [ -f "$runner" ]; then
  if timeout 900 "${PYTHON:-python3}" "$runner" --reqonc "$inst/bin/reqonc" \
       "$top"/../shared/conformance/*/ > "$work/conformance.log" 2>&1; then
    ok "shared conformance runner with the installed reqonc: $(tail -n 1 "$work/conformance.log")"
  else
    bad "shared conformance runner with the installed reqonc" \
      "$work/conformance.log"
  fi
fi

echo "install: $passed passed, $failed failed"
echo "$passed $failed" > "$BUILD/test-results/install"
[ "$failed" -eq 0 ]
