#!/bin/sh
# summary.sh -- the last lines of `make test`: one line per suite, then
# exactly "N passed, M failed".
#
#   sh tests/summary.sh [RESULTS_DIR]     (default build/test-results)
#
# Each suite driver writes "N M" (passed, failed) to RESULTS_DIR/<suite>.
# A suite that is expected but wrote no result (it crashed, or was never
# built) counts as 1 failed, so a broken driver can never look green.
# Exit status: 0 only when nothing failed.
set -u
dir=${1:-build/test-results}
expected="unit golden e2e conformance examples install secrets crash daemon-probes"

total_p=0
total_f=0
seen=""

add() {  # add SUITE PASSED FAILED
  printf '%-12s %d passed, %d failed\n' "$1:" "$2" "$3"
  total_p=$((total_p + $2))
  total_f=$((total_f + $3))
}

read_result() {  # read_result SUITE FILE
  p=""
  f=""
  read -r p f rest < "$2" || true
  case "$p$f" in
    ''|*[!0-9]*)
      printf '%-12s unreadable result "%s" (counted as 1 failed)\n' \
        "$1:" "$(head -c 60 "$2")"
      total_f=$((total_f + 1))
      ;;
    *) add "$1" "$p" "$f" ;;
  esac
}

for s in $expected; do
  if [ -f "$dir/$s" ]; then
    read_result "$s" "$dir/$s"
  else
    printf '%-12s no result (counted as 1 failed)\n' "$s:"
    total_f=$((total_f + 1))
  fi
  seen="$seen $s "
done

# Any other suite that reported (e.g. a new driver) is counted too.
if [ -d "$dir" ]; then
  for file in "$dir"/*; do
    [ -f "$file" ] || continue
    s=$(basename "$file")
    case "$seen" in *" $s "*) continue ;; esac
    read_result "$s" "$file"
  done
fi

echo "$total_p passed, $total_f failed"
[ "$total_f" -eq 0 ]
