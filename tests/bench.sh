#!/bin/sh
# bench.sh -- `make bench`: figures, never assertions.
#
#   1. compile time of missions/ (reqonc -> C -> cc -> link);
#   2. size of the resulting binary;
#   3. records/s of a paginated sync of $BENCH_RECORDS records (default
#      20000, pages of $BENCH_PAGE = 100) from build/fakeapi into a file
#      store, plus the size of the store file and the peak RSS: once as
#      the compiler builds it (the step streams its pages into the store
#      step, SPEC §6.5) and once with a later `let` reading response,
#      which keeps the whole concatenated array (non-streaming).
# Always exits 0 unless the tools are missing; failures are printed.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-python3}
N=${BENCH_RECORDS:-20000}
P=${BENCH_PAGE:-100}
work=$BUILD/bench
rm -rf "$work"
mkdir -p "$work"

now() { "$PYTHON" -c 'import time; print("%.3f" % time.time())'; }
elapsed() { "$PYTHON" -c "print('%.3f' % ($2 - $1))"; }

echo "reqonc bench ($(date -u +%Y-%m-%dT%H:%M:%SZ), CFLAGS='${CFLAGS:-}'" \
  "SANITIZE='${SANITIZE:-}')"

# -- 1, 2: compile missions/
t0=$(now)
if "$BUILD/reqonc" missions/ -o "$work/syncd" > "$work/compile.log" 2>&1
then
  t1=$(now)
  echo "compile missions/:      $(elapsed "$t0" "$t1") s"
  echo "binary size:            $(wc -c < "$work/syncd") bytes"
  strip -o "$work/syncd.stripped" "$work/syncd" 2>/dev/null &&
    echo "binary size (stripped): $(wc -c < "$work/syncd.stripped") bytes"
else
  echo "compile missions/:      FAILED (see $work/compile.log)"
fi

# -- 3: a paginated sync of N records into a file store
pages=$("$PYTHON" - "$N" "$P" "$work/exchanges.json" <<'PY'
import json, sys
n, size, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ex, page = [], 1
for start in range(0, n + 1, size):   # a final short (maybe empty) page
    items = [{"id": "r%06d" % i, "name": "record %d" % i, "n": i,
              "tags": ["a", "b"], "score": i * 0.5}
             for i in range(start, min(start + size, n))]
    ex.append({"request": {"path": "/records",
                           "query": {"page": str(page),
                                     "size": str(size)}},
               "response": {"body": {"data": items, "page": page}}})
    page += 1
    if len(items) < size:
        break
json.dump(ex, open(out, "w"))
print(len(ex))
PY
)
cat > "$work/bench.reqon" <<EOF2
mission Bench {
  source API { auth: none, base: env("BENCH_URL") }
  store records: file("records")

  action Sync {
    get "/records" { paginate: page(page, $P, size), maxPages: 100000 }
    store response -> records { key: .id }
  }
}
EOF2
# The same sync without streaming: a later step reads response.
sed 's|^    store response -> records { key: .id }$|&\
    let all = response|' "$work/bench.reqon" > "$work/bench-plain.reqon"
for b in bench bench-plain; do
  if ! "$BUILD/reqonc" "$work/$b.reqon" -o "$work/$b" \
      > "$work/$b-compile.log" 2>&1; then
    echo "sync benchmark:         FAILED to compile" \
      "(see $work/$b-compile.log)"
    exit 0
  fi
done
# Runs a command and writes its peak resident set size (KiB) to $1.
peak_rss() {
  out=$1
  shift
  "$PYTHON" -c 'import resource, subprocess, sys
rc = subprocess.call(sys.argv[2:])
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1], "w").write("%d\n" % ru.ru_maxrss)
sys.exit(rc)' "$out" "$@"
}
# sync_run NAME LABEL: one sync by $work/NAME against a fresh fakeapi.
sync_run() {
  rm -f "$work/port"
  "$BUILD/fakeapi" --script "$work/exchanges.json" --port-file \
    "$work/port" --report "$work/$1-report.json" \
    > "$work/$1-fakeapi.log" 2>&1 &
  api=$!
  i=0
  while ! grep -q '^[0-9][0-9]*$' "$work/port" 2>/dev/null; do
    i=$((i + 1))
    if [ "$i" -gt 100 ]; then
      echo "sync benchmark:         fakeapi did not start"
      kill "$api" 2>/dev/null
      return
    fi
    sleep 0.1
  done
  t0=$(now)
  BENCH_URL=http://127.0.0.1:$(cat "$work/port") peak_rss "$work/$1.rss" \
    "$work/$1" --once --data-dir "$work/$1-data" > "$work/$1-run.log" 2>&1
  rc=$?
  t1=$(now)
  kill -TERM "$api" 2>/dev/null
  wait "$api" 2>/dev/null
  dt=$(elapsed "$t0" "$t1")
  if [ "$rc" -eq 0 ]; then
    got=$("$PYTHON" -c \
      'import json, sys; print(len(json.load(open(sys.argv[1]))))' \
      "$work/$1-data/records.json" 2>/dev/null || echo "?")
    echo "sync $N records$2: $dt s ($pages pages, $got stored)"
    "$PYTHON" -c 'import sys; n, d = int(sys.argv[1]), float(sys.argv[2])
print("  records/s:            %.0f" % (n / d if d > 0 else 0))' "$N" "$dt"
    echo "  store file size:      $(wc -c < "$work/$1-data/records.json")" \
      "bytes"
    echo "  peak RSS of the sync: $(cat "$work/$1.rss") KiB"
  else
    echo "sync $N records$2: FAILED (exit $rc, see $work/$1-run.log)"
  fi
}
sync_run bench " (streaming)"
sync_run bench-plain " (not streaming)"

# -- 4: one store step per record inside a for loop.  Every store step that
# changes a file store rewrites and fsyncs the file (SPEC §7.3), so this
# pattern costs O(records x file size): the figure shows how much.
L=${BENCH_LOOP_RECORDS:-1000}
"$PYTHON" - "$L" "$work/loop.json" <<'PY'
import json, sys
n, out = int(sys.argv[1]), sys.argv[2]
items = [{"id": "r%06d" % i, "name": "record %d" % i} for i in range(n)]
json.dump([{"request": {"path": "/all"}, "response": {"body": items}}],
          open(out, "w"))
PY
cat > "$work/loop.reqon" <<'EOF2'
mission Loop {
  source API { auth: none, base: env("BENCH_URL") }
  store records: file("loop")

  action Sync {
    get "/all"
    for r in response {
      store r -> records { key: .id }
    }
  }
}
EOF2
if "$BUILD/reqonc" "$work/loop.reqon" -o "$work/loop" \
    > "$work/loop-compile.log" 2>&1; then
  rm -f "$work/port"
  "$BUILD/fakeapi" --script "$work/loop.json" --port-file "$work/port" \
    --report "$work/loop-report.json" > "$work/fakeapi-loop.log" 2>&1 &
  api=$!
  i=0
  while ! grep -q '^[0-9][0-9]*$' "$work/port" 2>/dev/null && [ $i -lt 100 ]
  do
    i=$((i + 1))
    sleep 0.1
  done
  t0=$(now)
  BENCH_URL=http://127.0.0.1:$(cat "$work/port") "$work/loop" --once \
    --data-dir "$work/loop-data" > "$work/loop-run.log" 2>&1
  rc=$?
  t1=$(now)
  kill -TERM "$api" 2>/dev/null
  wait "$api" 2>/dev/null
  if [ "$rc" -eq 0 ]; then
    echo "store per record ($L):  $(elapsed "$t0" "$t1") s" \
      "(one atomic file rewrite per store step)"
  else
    echo "store per record ($L):  FAILED (exit $rc, see $work/loop-run.log)"
  fi
else
  echo "store per record:       FAILED to compile"
fi
exit 0
