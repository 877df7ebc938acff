#!/usr/bin/env bash
# segd's RESP front against redis-server with the same client, redis-benchmark, in one run.
#
#   bench/resp/resp_bench.sh [USERS] [RUNS]        (defaults: 1000000 3)
#
# Starts build/bin/segd (its defaults, plus --resp-port; SEGD_FLAGS adds flags, such as
# "--threads 1") and redis-server with AOF everysec (the persistence closest to segd's default
# --durability process), loads the same segment into both through their RESP ports with
# redis-cli --pipe (every other user of USERS, in redis-benchmark's zero-padded id form, so
# half the checks hit), then alternates RUNS times, segd first then Redis, each row with
# redis-benchmark -c 50:
#   SISMEMBER, SCARD, SMISMEMBER of 10 members: unpipelined and -P 16;
#   SADD of random users (most new): unpipelined and -P 16.
# Prints every run's requests per second and, per row, the medians and segd ÷ Redis.
# Needs redis-server, redis-cli and redis-benchmark (Debian redis-server, redis-tools). Every
# server it starts is stopped on exit, also when interrupted.
set -euo pipefail

USERS=${1:-1000000}
RUNS=${2:-3}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SEGD=$ROOT/build/bin/segd
for tool in redis-server redis-benchmark redis-cli; do
  command -v $tool >/dev/null || { echo "resp_bench: $tool is missing" >&2; exit 1; }
done
[ -x "$SEGD" ] || { echo "resp_bench: build segd first (make build)" >&2; exit 1; }

WORK=$(mktemp -d)
SEGD_PID= ; REDIS_PID=
cleanup() {
  [ -n "$SEGD_PID" ] && kill "$SEGD_PID" 2>/dev/null && wait "$SEGD_PID" 2>/dev/null || true
  [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null && wait "$REDIS_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# shellcheck disable=SC2086
"$SEGD" --data-dir "$WORK/segd" --port 0 --resp-port 0 --log-level warn ${SEGD_FLAGS:-} \
  > "$WORK/segd.out" 2>&1 &
SEGD_PID=$!
for _ in $(seq 100); do grep -q listening "$WORK/segd.out" && break; sleep 0.1; done
SEGD_PORT=$(sed -n 's/.*RESP (Redis protocol) on 127.0.0.1:\([0-9]*\).*/\1/p' "$WORK/segd.out")
[ -n "$SEGD_PORT" ] || { cat "$WORK/segd.out" >&2; exit 1; }

REDIS_PORT=$(( (SEGD_PORT % 20000) + 30000 ))
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly yes \
  --appendfsync everysec --dir "$WORK" --daemonize no > "$WORK/redis.out" 2>&1 &
REDIS_PID=$!
for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

echo "segd $(sed -n 's/.*\(; [0-9]* threads, durability [a-z]*\).*/\1/p' "$WORK/segd.out" | cut -c3-)${SEGD_FLAGS:+ ($SEGD_FLAGS)}; redis-server appendfsync everysec; $USERS users; $RUNS runs"
echo "loading $((USERS / 2)) members into both with redis-cli --pipe ..."
redis-cli -p "$SEGD_PORT" SEGD.CREATE bench >/dev/null
# SADD commands of 1,000 members each; ids as redis-benchmark's __rand_int__ writes them.
seq 1 2 "$USERS" | awk '
  { ids[n++] = sprintf("u:%012d", $1) }
  n == 1000 { emit() }
  END { if (n) emit() }
  function emit(   i) {
    printf "*%d\r\n$4\r\nSADD\r\n$5\r\nbench\r\n", n + 2
    for (i = 0; i < n; i++) printf "$%d\r\n%s\r\n", length(ids[i]), ids[i]
    n = 0
  }' > "$WORK/load.resp"
for port in "$SEGD_PORT" "$REDIS_PORT"; do
  redis-cli -p "$port" --pipe < "$WORK/load.resp" | tail -1
done
echo "SCARD: segd $(redis-cli -p "$SEGD_PORT" SCARD bench), redis $(redis-cli -p "$REDIS_PORT" SCARD bench)"

TEN=$(for _ in $(seq 10); do printf 'u:__rand_int__ '; done)
ROWS=(
  "SISMEMBER|1|200000|SISMEMBER bench u:__rand_int__"
  "SISMEMBER -P 16|16|2000000|SISMEMBER bench u:__rand_int__"
  "SCARD|1|200000|SCARD bench"
  "SCARD -P 16|16|2000000|SCARD bench"
  "SMISMEMBER x10|1|200000|SMISMEMBER bench $TEN"
  "SMISMEMBER x10 -P 16|16|1000000|SMISMEMBER bench $TEN"
  "SADD|1|200000|SADD bench u:__rand_int__"
  "SADD -P 16|16|1000000|SADD bench u:__rand_int__"
)

# rps PORT PIPELINE REQUESTS COMMAND...: requests per second of one redis-benchmark run.
rps() {
  local port=$1 pipeline=$2 requests=$3
  shift 3
  # -r: ids up to 10 × USERS, so SADD mostly adds new users and checks hit about 1 in 20.
  # shellcheck disable=SC2068
  redis-benchmark -p "$port" -c 50 -n "$requests" -P "$pipeline" -r $((USERS * 10)) --csv $@ \
    2>/dev/null | tail -1 | cut -d, -f2 | tr -d '"'
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

declare -A SEGD_RPS REDIS_RPS
for run in $(seq "$RUNS"); do
  echo "run $run"
  for row in "${ROWS[@]}"; do
    IFS='|' read -r name pipeline requests command <<< "$row"
    # shellcheck disable=SC2086
    s=$(rps "$SEGD_PORT" "$pipeline" "$requests" $command)
    # shellcheck disable=SC2086
    r=$(rps "$REDIS_PORT" "$pipeline" "$requests" $command)
    SEGD_RPS[$name]+="$s "
    REDIS_RPS[$name]+="$r "
    printf '  %-22s segd %10.0f   redis %10.0f\n' "$name" "$s" "$r"
  done
done

echo
printf '%-22s %12s %12s %8s\n' "median of $RUNS" segd redis ratio
for row in "${ROWS[@]}"; do
  name=${row%%|*}
  s=$(tr ' ' '\n' <<< "${SEGD_RPS[$name]}" | grep . | median)
  r=$(tr ' ' '\n' <<< "${REDIS_RPS[$name]}" | grep . | median)
  printf '%-22s %12.0f %12.0f %7.2fx\n' "$name" "$s" "$r" "$(awk -v s="$s" -v r="$r" 'BEGIN { print s / r }')"
done
