#!/usr/bin/env bash
# Two segd binaries against each other over HTTP, in one run, alternating.
#
#   bench/http/ab.sh SEGD_A SEGD_B [WORKLOAD] [PAIRS]     (defaults: add 3)
#
# Each run starts its binary on a fresh data directory (its default thread count unless
# SEGD_THREADS is set; durability from SEGD_DURABILITY, default process), loads 100,000 users
# in 10 Zipf-sized segments with segd-load --load-only, then runs segd-load --workload WORKLOAD
# --connections 50 --threads 2 for 8 seconds, and stops the server. Runs go A, B, A, B, ... so that both see the same
# machine; the script prints every run and, per binary, the median answers per second and the
# median of the B/A ratios of the pairs. This machine is shared and noisy: compare ratios, not
# absolute figures. segd-load comes from this checkout's build (make build).
set -euo pipefail

if [ $# -lt 2 ]; then
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
A=$1
B=$2
WORKLOAD=${3:-add}
PAIRS=${4:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LOAD=$ROOT/build/bin/segd-load
for bin in "$A" "$B" "$LOAD"; do
  [ -x "$bin" ] || { echo "ab: $bin is not an executable" >&2; exit 1; }
done
DATASET=(--users 100000 --segments 10)
PORT=${PORT:-18131}

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# run BINARY: prints the run's answers per second.
run() {
  rm -rf "$WORK/data"
  "$1" --port "$PORT" --data-dir "$WORK/data" --log-level error \
    --durability "${SEGD_DURABILITY:-process}" >"$WORK/segd.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 600); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/health" && break
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "ab: $1 did not start" >&2; cat "$WORK/segd.log" >&2; exit 1; }
    sleep 0.05
  done
  "$LOAD" --port "$PORT" "${DATASET[@]}" --load-only >/dev/null 2>"$WORK/load.log" ||
    { echo "ab: loading failed" >&2; cat "$WORK/load.log" >&2; exit 1; }
  "$LOAD" --port "$PORT" "${DATASET[@]}" --workload "$WORKLOAD" --connections 50 --threads 2 \
    --duration 8 --json 2>"$WORK/load.log" >"$WORK/run.json" ||
    { echo "ab: the run failed" >&2; cat "$WORK/load.log" >&2; exit 1; }
  sed -n 's/.*"requests_per_second":\([0-9.]*\).*/\1/p' "$WORK/run.json"
  kill "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

: >"$WORK/a"
: >"$WORK/b"
: >"$WORK/ratio"
for pair in $(seq "$PAIRS"); do
  a=$(run "$A")
  b=$(run "$B")
  echo "pair $pair: A $a/s, B $b/s"
  echo "$a" >>"$WORK/a"
  echo "$b" >>"$WORK/b"
  awk -v a="$a" -v b="$b" 'BEGIN { print b / a }' >>"$WORK/ratio"
done
echo "A median $(median <"$WORK/a")/s, B median $(median <"$WORK/b")/s, B/A median of pairs $(median <"$WORK/ratio")"
