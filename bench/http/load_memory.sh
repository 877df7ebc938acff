#!/usr/bin/env bash
# Bulk-load speed and resident memory of one segd binary on the comparison's dataset.
#
#   bench/http/load_memory.sh SEGD [RUNS] [-- segd flags...]        (default: 1 run)
#
# Each run starts SEGD on a fresh data directory, loads 1,000,000 users with 12-digit ids in
# 100 segments where segment k holds users/k of them (5,187,340 memberships, bench/compare's
# dataset) with segd-load --load-only, and prints the load's seconds and memberships per
# second and the growth of segd's resident set per membership right after the load and 5 s
# later. Environment variables reach segd (GLIBC_TUNABLES=..., LD_PRELOAD=...), so allocator
# settings can be compared without a rebuild. segd-load comes from this checkout's build.
set -euo pipefail

if [ $# -lt 1 ]; then
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
SEGD=$1
shift
RUNS=1
if [ $# -gt 0 ] && [ "$1" != "--" ]; then RUNS=$1; shift; fi
[ $# -gt 0 ] && [ "$1" = "--" ] && shift
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LOAD=$ROOT/build/bin/segd-load
for bin in "$SEGD" "$LOAD"; do
  [ -x "$bin" ] || { echo "load_memory: $bin is not an executable" >&2; exit 1; }
done
PORT=${PORT:-18300}
MEMBERSHIPS=5187340
WORK=$(mktemp -d)
PID=
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

rss() { awk '/^VmRSS/ { print $2 * 1024 }' "/proc/$1/status"; }

for run in $(seq "$RUNS"); do
  rm -rf "$WORK/data"
  "$SEGD" --port "$PORT" --data-dir "$WORK/data" --log-level error "$@" >"$WORK/segd.log" 2>&1 &
  PID=$!
  for _ in $(seq 600); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/health" && break
    kill -0 "$PID" 2>/dev/null || { echo "load_memory: segd did not start" >&2; cat "$WORK/segd.log" >&2; exit 1; }
    sleep 0.05
  done
  empty=$(rss "$PID")
  json=$("$LOAD" --port "$PORT" --users 1000000 --segments 100 --ids decimal --load-only --json \
    2>/dev/null)
  loaded=$(rss "$PID")
  sleep 5
  later=$(rss "$PID")
  seconds=$(sed -E 's/.*"seconds":([0-9.]+).*/\1/' <<<"$json")
  rate=$(sed -E 's/.*"memberships_per_second":([0-9.]+).*/\1/' <<<"$json")
  awk -v run="$run" -v s="$seconds" -v r="$rate" -v e="$empty" -v l="$loaded" -v t="$later" \
    -v m="$MEMBERSHIPS" 'BEGIN { printf "run %d: %.2f s, %.0f memberships/s, %.1f bytes a membership after the load, %.1f 5 s later\n", run, s, r, (l - e) / m, (t - e) / m }'
  kill "$PID"
  wait "$PID" 2>/dev/null || true
  PID=
done
