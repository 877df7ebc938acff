#!/usr/bin/env bash
# Two segd binaries against each other over HTTP, in one run, alternating.
#
#   bench/http/ab.sh SEGD_A SEGD_B [WORKLOAD] [PAIRS]     (defaults: add 3)
#
# Each run starts its binary on a fresh data directory (its default thread count unless
# SEGD_THREADS is set; durability from SEGD_DURABILITY, default process), loads 100,000 users
# in 10 Zipf-sized segments with segd-load --load-only, then runs segd-load --workload WORKLOAD
# --connections 50 --threads 2 for 8 seconds, and stops the server. Runs go A, B, A, B, ... so
# that both see the same machine; the script prints every run (answers per second, and the CPU
# segd used per answer, user + system, from /proc) and, per binary, the medians and the median
# of the B/A ratios of the pairs. AB_DATASET replaces the dataset's segd-load flags, e.g.
# AB_DATASET="--users 1000000 --segments 100 --ids decimal" for bench/compare's. This machine
# is shared and noisy: compare ratios, not absolute figures. segd-load comes from this
# checkout's build (make build).
set -euo pipefail

if [ $# -lt 2 ]; then
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
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
read -r -a DATASET <<<"${AB_DATASET:---users 100000 --segments 10}"
PORT=${PORT:-18131}
SECONDS_PER_RUN=8

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# run BINARY: prints the run's answers per second and segd's CPU microseconds per answer.
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
  local before after rps
  before=$(cpu_ticks "$SERVER_PID")
  "$LOAD" --port "$PORT" "${DATASET[@]}" --workload "$WORKLOAD" --connections 50 --threads 2 \
    --duration "$SECONDS_PER_RUN" --json 2>"$WORK/load.log" >"$WORK/run.json" ||
    { echo "ab: the run failed" >&2; cat "$WORK/load.log" >&2; exit 1; }
  after=$(cpu_ticks "$SERVER_PID")
  rps=$(sed -n 's/.*"requests_per_second":\([0-9.]*\).*/\1/p' "$WORK/run.json")
  awk -v r="$rps" -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v s="$SECONDS_PER_RUN" \
    'BEGIN { printf "%s %.2f\n", r, t / hz * 1e6 / (r * s) }'
  kill "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

: >"$WORK/a"
: >"$WORK/b"
: >"$WORK/ratio"
: >"$WORK/a_cpu"
: >"$WORK/b_cpu"
for pair in $(seq "$PAIRS"); do
  out=$(run "$A")
  read -r a a_cpu <<<"$out"
  out=$(run "$B")
  read -r b b_cpu <<<"$out"
  echo "pair $pair: A $a/s ($a_cpu µs of segd CPU each), B $b/s ($b_cpu µs)"
  echo "$a" >>"$WORK/a"
  echo "$b" >>"$WORK/b"
  echo "$a_cpu" >>"$WORK/a_cpu"
  echo "$b_cpu" >>"$WORK/b_cpu"
  awk -v a="$a" -v b="$b" 'BEGIN { print b / a }' >>"$WORK/ratio"
done
echo "A median $(median <"$WORK/a")/s ($(median <"$WORK/a_cpu") µs CPU each)," \
  "B median $(median <"$WORK/b")/s ($(median <"$WORK/b_cpu") µs CPU each)," \
  "B/A median of pairs $(median <"$WORK/ratio")"
