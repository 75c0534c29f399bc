#!/bin/sh
# run-demo.sh -- what `make demo` does (run from the top of the repo):
#   1. start the demo API: build/fakeapi serving missions/demo/api.json on a
#      free loopback port;
#   2. compile missions/ into ./syncd;
#   3. run `./syncd --once` against it (DEMO_API_URL), offline, with no
#      credentials;
#   4. show where the data went, and stop the demo API.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
BUILD=${BUILD:-build}
tmp=$BUILD/demo
rm -rf "$tmp"
mkdir -p "$tmp"

"$BUILD/fakeapi" --script missions/demo/api.json \
  --port-file "$tmp/port" --report "$tmp/report.json" \
  > "$tmp/api.log" 2>&1 &
api=$!
stop_api() {
  kill -TERM "$api" 2>/dev/null || true
  wait "$api" 2>/dev/null || true
}
trap stop_api EXIT
trap 'exit 130' INT TERM

i=0
while ! grep -q '^[0-9][0-9]*$' "$tmp/port" 2>/dev/null; do
  i=$((i + 1))
  if [ "$i" -gt 100 ] || ! kill -0 "$api" 2>/dev/null; then
    echo "demo: the demo API did not start; see $tmp/api.log" >&2
    exit 1
  fi
  sleep 0.1
done
DEMO_API_URL=http://127.0.0.1:$(cat "$tmp/port")
export DEMO_API_URL
echo "demo: demo API listening at $DEMO_API_URL"

echo "demo: $BUILD/reqonc missions/ -o ./syncd"
"$BUILD/reqonc" missions/ -o ./syncd

echo "demo: ./syncd --once"
status=0
./syncd --once || status=$?

echo
echo "demo: ./syncd exited with status $status; data is in ./.reqon-data:"
find .reqon-data -type f -name '*.json' | sort | sed 's/^/  /'
if [ -f .reqon-data/demo/summary.json ]; then
  echo "demo: .reqon-data/demo/summary.json:"
  sed 's/^/  /' .reqon-data/demo/summary.json
fi
echo "demo: the demo API has stopped; point DEMO_API_URL at a real API and"
echo "  run ./syncd --once again (incremental), or ./syncd as a daemon"
exit "$status"
