#!/usr/bin/env bash
# HTTP figures for segd beside Redis SISMEMBER, on this machine, in one run.
#
#   bench/http/server_bench.sh [USERS] [DURATION] [RUNS]     (defaults: 1000000 10s 3)
#
# Starts build/bin/segd on a temporary data directory and a redis-server (no persistence) on
# loopback, loads the same segment into both (every other user of USERS, so half the checks
# hit), then alternates, RUNS times: wrk membership checks with 50 connections (no pipelining,
# then pipelining depth 16), redis-benchmark SISMEMBER with 50 clients (-P 1 and -P 16), and
# POST /v1/check with 1,000 checks per request. Prints each run and the medians.
#
# Like for like: redis-server answers on one thread and redis-benchmark sends from one, so by
# default segd runs with --threads 1 and wrk with one thread too (SEGD_THREADS, WRK_THREADS
# change that). With the load generator on the same two cores, more server threads than the
# cores left over only add context switches. Needs wrk,
# redis-server and redis-benchmark (Debian packages wrk, redis-server, redis-tools).
# Every server it starts is stopped on exit, also when interrupted.
set -euo pipefail

USERS=${1:-1000000}
DURATION=${2:-10s}
RUNS=${3:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SEGD=$ROOT/build/bin/segd
for tool in wrk redis-server redis-benchmark redis-cli curl; do
  command -v $tool >/dev/null || { echo "server_bench: $tool is missing" >&2; exit 1; }
done
[ -x "$SEGD" ] || { echo "server_bench: build segd first (make build)" >&2; exit 1; }

WORK=$(mktemp -d)
SEGD_PID= ; REDIS_PID=
cleanup() {
  [ -n "$SEGD_PID" ] && kill "$SEGD_PID" 2>/dev/null && wait "$SEGD_PID" 2>/dev/null || true
  [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null && wait "$REDIS_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

SEGD_THREADS=${SEGD_THREADS:-1}
WRK_THREADS=${WRK_THREADS:-1}
"$SEGD" --data-dir "$WORK/segd" --port 0 --threads "$SEGD_THREADS" --log-level warn \
  > "$WORK/segd.out" 2>&1 &
SEGD_PID=$!
for _ in $(seq 100); do grep -q listening "$WORK/segd.out" && break; sleep 0.1; done
PORT=$(sed -n 's/.*http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$WORK/segd.out")
B=http://127.0.0.1:$PORT

REDIS_PORT=$(( (PORT % 20000) + 30000 ))
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$WORK" --daemonize no > "$WORK/redis.out" 2>&1 &
REDIS_PID=$!
for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

echo "segd --threads $SEGD_THREADS, wrk -t$WRK_THREADS, $USERS users, $DURATION x $RUNS runs"
echo "loading $((USERS / 2)) members into segd and redis ..."
curl -sf -X POST "$B/v1/segments" -H 'Content-Type: application/json' -d '{"name":"bench"}' >/dev/null
seq 1 2 "$USERS" | sed 's/^/u/' > "$WORK/users.txt"
curl -sf -X POST "$B/v1/segments/bench/users:import" -H 'Content-Type: text/plain' \
  --data-binary @"$WORK/users.txt" | head -c 200; echo
# redis-benchmark's __rand_int__ is 12 digits, zero-padded: load the same ids in that form.
seq 1 2 "$USERS" | awk '{printf "SADD bench u%012d\n", $1}' | redis-cli -p "$REDIS_PORT" --pipe | tail -1

redis_rps() {  # $1: pipeline depth
  redis-benchmark -p "$REDIS_PORT" -c 50 -n $((USERS * 2)) -r "$USERS" -P "$1" -q \
    SISMEMBER bench u__rand_int__ | tr '\r' '\n' |
    sed -n 's/.*: \([0-9.]*\) requests per second.*/\1/p' | tail -1
}

: > "$WORK/results"
for run in $(seq "$RUNS"); do
  s1=$(wrk -t"$WRK_THREADS" -c50 -d"$DURATION" -s "$ROOT/bench/http/check.lua" "$B" -- "$USERS" bench 1 | grep requests_per_second)
  r1=$(redis_rps 1)
  s16=$(wrk -t"$WRK_THREADS" -c50 -d"$DURATION" -s "$ROOT/bench/http/check.lua" "$B" -- "$USERS" bench 16 | grep requests_per_second)
  r16=$(redis_rps 16)
  bc=$(wrk -t"$WRK_THREADS" -c4 -d"$DURATION" -s "$ROOT/bench/http/batch_check.lua" "$B" -- "$USERS" bench 1000 | grep checks_per_second)
  echo "run $run: segd c50 {$s1} | redis c50 $r1 rps | segd c50 pipeline16 {$s16} | redis c50 -P16 $r16 rps | segd batch-check c4 {$bc}"
  echo "$s1" | awk -v r="$r1" '{print "check_c50", $2, $4, $6, r}' >> "$WORK/results"
  echo "$s16" | awk -v r="$r16" '{print "check_c50_p16", $2, $4, $6, r}' >> "$WORK/results"
  echo "$bc" | awk '{print "batch_check_c4", $4, $6, $8, 0}' >> "$WORK/results"
done

echo
echo "medians of $RUNS runs (segd rps or checks/s, p50 ms, p99 ms, redis rps):"
for name in check_c50 check_c50_p16 batch_check_c4; do
  grep "^$name " "$WORK/results" | awk -v n="$name" '
    { rps[NR]=$2; p50[NR]=$3; p99[NR]=$4; red[NR]=$5 }
    function median(a, k,   i, j, t) { for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++)
        if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t } return a[int((k + 1) / 2)] }
    END { printf "%-16s segd %10.0f  p50 %6.3f ms  p99 %6.3f ms  redis %10.0f\n",
          n, median(rps, NR), median(p50, NR), median(p99, NR), median(red, NR) }'
done
echo
echo "server time per membership check (from /metrics, whole run):"
curl -s "$B/metrics" | grep 'segd_http_request_duration_estimate_seconds{route="check_member"'
