#!/bin/sh
# run-golden.sh -- data-driven golden tests for reqonc (tests/compile/).
#
#   sh tests/run-golden.sh [CASE.reqon...]      (from anywhere)
#   UPDATE=1 sh tests/run-golden.sh             re-bless expected output
#
# Each tests/compile/**/*.reqon is one case.  Its first line may be
#   // RUN: <reqonc arguments>        (default: --check)
# and any line may be
#   // EXIT: N                        (expected exit status, default 0)
# The case runs as `$BUILD/reqonc <arguments> tests/compile/.../x.reqon`
# from the repository root, so paths in diagnostics are repo-relative.
# stderr must equal x.stderr exactly (a missing file means "no output");
# stdout must equal x.stdout when that file exists.
#
# UPDATE=1 rewrites x.stderr (removed when the output is empty) and any
# existing x.stdout (create an empty one first to start comparing stdout).
# It never edits the EXIT line.  Review the diff before committing.
#
# Prints PASS/FAIL per case (with a diff on failure), then
# "golden: N passed, M failed"; writes "N M" to $BUILD/test-results/golden.
# Exits 1 if any case failed.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 2
BUILD=${BUILD:-build}
REQONC=$BUILD/reqonc
if [ ! -x "$REQONC" ]; then
  echo "run-golden.sh: $REQONC not found; run make first" >&2
  exit 2
fi
if [ -n "${SANITIZE:-}" ]; then
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1}
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  export ASAN_OPTIONS UBSAN_OPTIONS
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/golden.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT INT TERM

if [ $# -gt 0 ]; then
  cases=$*
else
  cases=$(find tests/compile -name '*.reqon' -type f | LC_ALL=C sort)
fi

bom=$(printf '\357\273\277')
pass=0
fail=0
for f in $cases; do
  base=${f%.reqon}
  args=--check
  first=$(sed -n '1p' "$f")
  first=${first#"$bom"}
  case $first in
    "// RUN:"*) args=${first#"// RUN:"} ;;
  esac
  want_rc=$(sed -n 's|^// EXIT: *\([0-9][0-9]*\).*|\1|p' "$f" | sed -n 1p)
  want_rc=${want_rc:-0}

  # shellcheck disable=SC2086  # the RUN line is split into words
  "$REQONC" $args "$f" >"$tmp/stdout" 2>"$tmp/stderr"
  rc=$?

  if [ "${UPDATE:-}" = 1 ]; then
    if [ -s "$tmp/stderr" ]; then
      cp "$tmp/stderr" "$base.stderr"
    else
      rm -f "$base.stderr"
    fi
    if [ -f "$base.stdout" ]; then
      cp "$tmp/stdout" "$base.stdout"
    fi
  fi

  ok=1
  msg=""
  if [ "$rc" != "$want_rc" ]; then
    ok=0
    msg="exit status $rc, expected $want_rc"
  fi
  if [ -f "$base.stderr" ]; then
    cp "$base.stderr" "$tmp/want_stderr"
  else
    : >"$tmp/want_stderr"
  fi
  if ! cmp -s "$tmp/want_stderr" "$tmp/stderr"; then
    ok=0
    msg="$msg${msg:+; }stderr differs"
  fi
  if [ -f "$base.stdout" ] && ! cmp -s "$base.stdout" "$tmp/stdout"; then
    ok=0
    msg="$msg${msg:+; }stdout differs"
  fi

  if [ $ok = 1 ]; then
    pass=$((pass + 1))
    echo "PASS $f"
  else
    fail=$((fail + 1))
    echo "FAIL $f: $msg"
    diff -u "$tmp/want_stderr" "$tmp/stderr" | sed 's/^/    /'
    if [ -f "$base.stdout" ]; then
      diff -u "$base.stdout" "$tmp/stdout" | sed 's/^/    /'
    fi
  fi
done

echo "golden: $pass passed, $fail failed"
mkdir -p "$BUILD/test-results"
echo "$pass $fail" >"$BUILD/test-results/golden"
[ $fail -eq 0 ]
