#!/usr/bin/env bash
# bench/compare/compare.sh: segd side by side with Redis and PostgreSQL, on this machine.
#
# Starts each system on loopback in a temporary directory, loads the same dataset into it, runs
# the same workloads at the same concurrency with each system's own client, and prints (and by
# default writes into docs/benchmarks.md) a table of throughput, latency, load time, memory per
# membership and restart time. Only one system runs at a time. Every server it started is stopped
# on exit, on Ctrl-C and at the time limit. Run with --help for the flags.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

usage() {
  cat <<'EOF'
bench/compare/compare.sh: segd against Redis and PostgreSQL, same machine, same dataset

Usage: bench/compare/compare.sh [flags]

  --users N          users in the dataset (default 1000000)
  --segments N       segments; segment k holds users/k of them (default 100)
  --connections N    concurrent connections of every client (default 50)
  --duration S       seconds per measured run (default 10)
  --runs N           runs per measurement; the table shows medians (default 3)
  --segment K        segment of the membership and count workloads (default 2: half the users);
                     intersections use K and K+1, single adds the last segment
  --ttl S            TTL of the memberships in the TTL rows (default 2592000, 30 days)
  --time-limit M     stop everything after M minutes (default 60)
  --build-dir DIR    where segd and segd-load are (default build; built with `make build` if
                     missing)
  --no-docs          do not write the table into docs/benchmarks.md
  --keep             keep the temporary directory (data, logs, pgbench logs)
  --smoke            a quick check that everything runs: 20,000 users, 10 segments, 1 s runs,
                     1 run, 8 connections, no docs (flags after it still apply)
  --help             this text

Needs Debian's redis-server, redis-tools and postgresql; installs them if missing (as root or
with sudo). The table goes to stdout and, unless --no-docs, replaces the section between the
"bench/compare" markers of docs/benchmarks.md. Exit status: 0 when every run answered without
errors, 1 otherwise, 2 for bad flags.
EOF
}

users=1000000 segments=100 connections=50 duration=10 runs=3 segment=2 ttl=2592000
time_limit=60 build_dir=build write_docs=1 keep=0
command_line="bench/compare/compare.sh $*"

while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h) usage; exit 0 ;;
    --no-docs) write_docs=0 ;;
    --keep) keep=1 ;;
    --smoke) users=20000 segments=10 duration=1 runs=1 connections=8 write_docs=0 ;;
    --users|--segments|--connections|--duration|--runs|--segment|--ttl|--time-limit|--build-dir)
      [ $# -ge 2 ] || { echo "compare: $1 needs a value (see --help)" >&2; exit 2; }
      case "$1" in
        --build-dir) build_dir=$2 ;;
        *) [[ "$2" =~ ^[0-9]+$ ]] && [ "$2" -gt 0 ] ||
             { echo "compare: $1 needs a positive whole number, not '$2'" >&2; exit 2; }
           declare "$(echo "${1#--}" | tr - _)=$2" ;;
      esac
      shift ;;
    *) echo "compare: unknown flag $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ "$segments" -ge 3 ] || { echo "compare: --segments must be at least 3" >&2; exit 2; }
[ "$segment" -lt "$segments" ] || { echo "compare: --segment must be below --segments" >&2; exit 2; }
segment2=$((segment + 1))
write_segment=$segments

log() { echo "compare: $*" >&2; }
# die works from subshells too ($(...), pipelines): it signals the main shell, whose trap cleans up.
die() {
  log "$*"
  kill -TERM $$
  exit 1
}

# --- tools -----------------------------------------------------------------------------------

install_missing() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v redis-benchmark >/dev/null || missing+=(redis-tools)
  ls /usr/lib/postgresql/*/bin/pgbench >/dev/null 2>&1 || missing+=(postgresql)
  [ ${#missing[@]} -eq 0 ] && return
  log "installing ${missing[*]}"
  local sudo=
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "not root and no sudo: apt-get install ${missing[*]}"
    sudo=sudo
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

install_missing
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
case "$build_dir" in /*) BIN="$build_dir/bin" ;; *) BIN="$REPO/$build_dir/bin" ;; esac
if [ ! -x "$BIN/segd" ] || [ ! -x "$BIN/segd-load" ]; then
  log "building segd"
  make -C "$REPO" build BUILD_DIR="$build_dir" >/dev/null
fi

# PostgreSQL refuses to run as root: as root, its processes run as the postgres user.
as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# --- the temporary directory, cleanup and the time limit -------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/segd-compare.XXXXXX")
chmod 755 "$WORK"
segd_pid= redis_pid= pg_data= watchdog_pid=

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  # The watchdog's sleep first: it would keep this script's output open until the time limit.
  [ -n "$watchdog_pid" ] && pkill -KILL -P "$watchdog_pid" 2>/dev/null || true
  [ -n "$watchdog_pid" ] && kill -KILL "$watchdog_pid" 2>/dev/null || true
  [ -n "$segd_pid" ] && kill -KILL "$segd_pid" 2>/dev/null || true
  [ -n "$redis_pid" ] && kill -KILL "$redis_pid" 2>/dev/null || true
  if [ -n "$pg_data" ]; then
    as_postgres "$PGBIN/pg_ctl" -D "$pg_data" stop -m immediate >/dev/null 2>&1 || true
  fi
  # Any client still running (at the time limit or on Ctrl-C).
  pkill -KILL -P $$ 2>/dev/null || true
  if [ "$keep" -eq 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'exit 1' TERM

# The watchdog interrupts this script at the time limit; the clients are killed too, so that the
# trap runs at once instead of after the current run.
( sleep $((time_limit * 60))
  log "time limit of $time_limit min reached"
  kill -TERM $$
  pkill -TERM -P $$ ) >/dev/null &
watchdog_pid=$!

free_port() {
  local p
  for _ in $(seq 200); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  die "no free port found"
}

# GET http://127.0.0.1:PORT/PATH with bash alone; prints the status code (000 on no answer).
http_status() {
  local answer
  answer=$( (exec 3<>"/dev/tcp/127.0.0.1/$1" &&
             printf 'GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' "$2" >&3 &&
             head -c 12 <&3) 2>/dev/null) || true
  echo "${answer:9:3}" | grep -E '^[0-9]{3}$' || echo 000
}

now_ns() { date +%s%N; }
seconds_since() { awk -v a="$1" -v b="$(now_ns)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }'; }
rss_bytes() { awk '/^VmRSS/ { print $2 * 1024 }' "/proc/$1/status"; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# --- results ----------------------------------------------------------------------------------

RESULTS="$WORK/results.tsv"    # workload, system, client, req/s, p50 ms, p99 ms
FOOTPRINT="$WORK/footprint.tsv"  # system, load s, memberships/s, bytes/membership, restart s
FAILURES="$WORK/failures"        # one line per measurement with errors (written from subshells)
RESP_RESULTS="$WORK/resp.tsv"    # workload, command, segd req/s, Redis req/s (redis-benchmark)
: >"$RESULTS"
: >"$RESP_RESULTS"
: >"$FOOTPRINT"
: >"$FAILURES"
fail() {
  log "$*"
  echo "$*" >>"$FAILURES"
}
per_membership() { awk -v b="$1" -v m="$memberships" 'BEGIN { printf "%.1f", b / m }'; }

# record WORKLOAD SYSTEM CLIENT then lines of "rps p50_ms p99_ms" on stdin: keeps the medians.
record() {
  local rps=() p50=() p99=() a b c
  while read -r a b c; do rps+=("$a"); p50+=("$b"); p99+=("$c"); done
  if [ ${#rps[@]} -eq 0 ]; then
    fail "$2, $1: no result"
    return
  fi
  local m_rps m_p50 m_p99
  m_rps=$(median "${rps[@]}") m_p50=$(median "${p50[@]}") m_p99=$(median "${p99[@]}")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$m_rps" "$m_p50" "$m_p99" >>"$RESULTS"
  log "$(printf '%-15s %-40s %10.0f req/s  p50 %s ms  p99 %s ms' "$1" "$2" "$m_rps" "$m_p50" "$m_p99")"
}

footprint() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$FOOTPRINT"; }

# --- the dataset ------------------------------------------------------------------------------

dataset_flags=(--users "$users" --segments "$segments" --ids decimal)
memberships=0
for ((k = 1; k <= segments; k++)); do memberships=$((memberships + users / k)); done
log "dataset: $users users, $segments segments, $memberships memberships; files in $WORK"
"$BIN/segd-load" "${dataset_flags[@]}" --dump redis-sets >"$WORK/sets.resp"
"$BIN/segd-load" "${dataset_flags[@]}" --ttl "$ttl" --dump redis-zsets >"$WORK/zsets.resp"
"$BIN/segd-load" "${dataset_flags[@]}" --dump pg-users >"$WORK/users.tsv"
"$BIN/segd-load" "${dataset_flags[@]}" --dump pg-memberships >"$WORK/memberships.tsv"
"$BIN/segd-load" "${dataset_flags[@]}" --ttl "$ttl" --dump pg-memberships \
  >"$WORK/memberships_ttl.tsv"

# --- redis-benchmark, against Redis and against segd's RESP port -------------------------------

bench_port=
# redis_run ARGS...: one redis-benchmark run against $bench_port (Redis, or segd's RESP port) of
# about --duration seconds, sized from a short calibration run; prints "rps p50_ms p99_ms".
redis_bench() {  # N ARGS...
  local n=$1
  shift
  redis-benchmark -p "$bench_port" -c "$connections" -n "$n" -r "$users" --csv "$@" 2>/dev/null |
    tail -1 | tr -d '"' | awk -F, '{ print $2, $5, $7 }'
}

redis_run() {
  local rps n
  # Two requests a connection tell 80,000/s from 10/s without a long wait on the slow commands;
  # when that was over too soon to time (rps not a number, or over c * 20/s), 200 a connection.
  read -r rps _ _ < <(redis_bench $((connections * 2)) "$@")
  if ! awk -v r="$rps" -v c="$connections" 'BEGIN { exit !(r ~ /^[0-9.]+$/ && r + 0 < c * 20) }'; then
    read -r rps _ _ < <(redis_bench $((connections * 200)) "$@")
  fi
  [[ "$rps" =~ ^[0-9.]+$ ]] || { fail "redis-benchmark $*: no rate ($rps)"; return; }
  n=$(awk -v r="${rps:-0}" -v d="$duration" -v c="$connections" \
    'BEGIN { n = int(r * d); if (n < c * 2) n = c * 2; print n }')
  redis_bench "$n" "$@"
}

# --- segd -------------------------------------------------------------------------------------

segd_port=$(free_port)
segd_resp_port=$(free_port)

# start_segd DATA_DIR [flags]: starts segd and waits until /health answers 200.
start_segd() {
  local dir=$1
  shift
  "$BIN/segd" --data-dir "$dir" --bind 127.0.0.1 --port "$segd_port" \
    --resp-port "$segd_resp_port" "$@" \
    >>"$WORK/segd.log" 2>&1 &
  segd_pid=$!
  for _ in $(seq 6000); do
    [ "$(http_status "$segd_port" /health)" = 200 ] && return
    kill -0 "$segd_pid" 2>/dev/null || die "segd did not start: $(tail -3 "$WORK/segd.log")"
    sleep 0.05
  done
  die "segd did not answer /health in 300 s"
}

stop_segd() {
  kill -TERM "$segd_pid"
  wait "$segd_pid" || die "segd exited with status $? on SIGTERM"
  segd_pid=
}

# segd_run WORKLOAD [segd-load flags]: one run; prints "rps p50_ms p99_ms".
segd_run() {
  local json
  json=$("$BIN/segd-load" --port "$segd_port" "${dataset_flags[@]}" --connections "$connections" \
    --duration "$duration" --json --workload "$@" 2>/dev/null)
  if ! grep -q '"errors":0}' <<<"$json"; then
    fail "segd-load $*: errors: $json"
  fi
  sed -E 's/.*"requests_per_second":([0-9.]+).*"p50":([0-9.]+).*"p99":([0-9.]+),"p999".*/\1 \2 \3/' \
    <<<"$json" | awk '{ printf "%.0f %.3f %.3f\n", $1, $2 / 1000, $3 / 1000 }'
}

segd_measure() {  # WORKLOAD-LABEL SYSTEM-LABEL segd-load args...
  local label=$1 system=$2
  shift 2
  for ((r = 0; r < runs; r++)); do segd_run "$@"; done | record "$label" "$system" "segd-load"
}

segd_load() {  # prints "seconds memberships_per_second"
  local json
  json=$("$BIN/segd-load" --port "$segd_port" "${dataset_flags[@]}" "$@" --load-only --json \
    2>>"$WORK/segd.log") || die "segd-load --load failed: $(tail -3 "$WORK/segd.log")"
  sed -E 's/.*"seconds":([0-9.]+),"memberships_per_second":([0-9.]+).*/\1 \2/' <<<"$json"
}

# resp_measure WORKLOAD COMMAND REDIS-SYSTEM-LABEL redis-benchmark command...: medians of
# redis-benchmark against segd's RESP port, kept for the RESP table beside the Redis row named.
resp_measure() {
  local label=$1 command=$2 peer=$3 rps=() a
  shift 3
  while read -r a _ _; do rps+=("$a"); done < <(for ((r = 0; r < runs; r++)); do redis_run "$@"; done)
  if [ ${#rps[@]} -eq 0 ]; then
    fail "segd over RESP, $label: no result"
    return
  fi
  printf '%s\t%s\t%s\t%s\n' "$label" "$command" "$(median "${rps[@]}")" "$peer" >>"$RESP_RESULTS"
  log "$(printf '%-15s %-40s %10.0f req/s' "$label" "segd over RESP, $command" "$(median "${rps[@]}")")"
}

# segd_resp_load FILE: creates the segments, then redis-cli --pipe; prints "seconds rate".
segd_resp_load() {
  local k t0 out s
  for ((k = 1; k <= segments; k++)); do
    redis-cli -p "$segd_resp_port" SEGD.CREATE "seg-$k" >/dev/null || die "SEGD.CREATE seg-$k failed"
  done
  t0=$(now_ns)
  out=$(redis-cli -p "$segd_resp_port" --pipe <"$1" 2>&1)
  s=$(seconds_since "$t0")
  grep -q "errors: 0," <<<"$out" || die "redis-cli --pipe into segd: $out"
  awk -v s="$s" -v m="$memberships" 'BEGIN { printf "%s %.0f\n", s, m / s }'
}

log "segd: start, load, $runs x $duration s per workload"
start_segd "$WORK/segd"
rss_empty=$(rss_bytes "$segd_pid")
read -r load_s load_rate < <(segd_load)
segd_bytes=$(per_membership $(($(rss_bytes "$segd_pid") - rss_empty)))
segd_measure membership "segd" check --segment "$segment"
segd_measure user-segments "segd" user-segments
segd_measure count "segd" count --segment "$segment"
segd_measure intersection "segd" query --expr "seg-$segment AND seg-$segment2"
segd_measure single-add "segd, durability process" add --segment "$write_segment"
# The same server over the Redis protocol, with Redis's own client (the RESP table).
bench_port=$segd_resp_port
resp_measure membership SISMEMBER "Redis set, SISMEMBER" SISMEMBER "seg-$segment" __rand_int__
resp_measure count SCARD "Redis set, SCARD" SCARD "seg-$segment"
resp_measure intersection SINTERCARD "Redis sets, SINTERCARD" \
  SINTERCARD 2 "seg-$segment" "seg-$segment2"
resp_measure single-add SADD "Redis set, SADD, AOF everysec" SADD "seg-$write_segment" __rand_int__
stop_segd
t0=$(now_ns)
start_segd "$WORK/segd"
segd_restart=$(seconds_since "$t0")
footprint "segd (durability process)" "$load_s" "$load_rate" "$segd_bytes" "$segd_restart"
stop_segd
start_segd "$WORK/segd" --durability fsync
segd_measure single-add "segd, durability fsync" add --segment "$write_segment"
stop_segd

start_segd "$WORK/segd-ttl"
rss_empty=$(rss_bytes "$segd_pid")
read -r load_s load_rate < <(segd_load --ttl "$ttl")
footprint "segd, every membership with a TTL" "$load_s" "$load_rate" \
  "$(per_membership $(($(rss_bytes "$segd_pid") - rss_empty)))" ""
stop_segd
start_segd "$WORK/segd-resp"
rss_empty=$(rss_bytes "$segd_pid")
read -r load_s load_rate < <(segd_resp_load "$WORK/sets.resp")
[ "$(redis-cli -p "$segd_resp_port" scard "seg-$segment")" = $((users / segment)) ] ||
  die "segd over RESP holds the wrong dataset"
footprint "segd over RESP (redis-cli --pipe)" "$load_s" "$load_rate" \
  "$(per_membership $(($(rss_bytes "$segd_pid") - rss_empty)))" ""
stop_segd
rm -rf "$WORK/segd" "$WORK/segd-ttl" "$WORK/segd-resp"

# --- Redis ------------------------------------------------------------------------------------

redis_port=$(free_port)
rcli() { redis-cli -p "$redis_port" "$@"; }

start_redis() {  # DIR [redis-server flags]
  local dir=$1
  shift
  mkdir -p "$dir"
  redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$dir" --save "" \
    --logfile "$dir/redis.log" "$@" &
  redis_pid=$!
  for _ in $(seq 6000); do
    # PING answers LOADING while an AOF is replayed.
    [ "$(rcli ping 2>/dev/null)" = PONG ] && return
    kill -0 "$redis_pid" 2>/dev/null || die "redis-server did not start: $(tail -3 "$dir/redis.log")"
    sleep 0.05
  done
  die "redis-server did not answer in 300 s"
}

stop_redis() {
  rcli shutdown >/dev/null 2>&1 || true
  wait "$redis_pid" 2>/dev/null || true
  redis_pid=
}

used_memory() { rcli info memory | tr -d '\r' | awk -F: '$1 == "used_memory" { print $2 }'; }

redis_load() {  # FILE: prints "seconds memberships_per_second"
  local t0 out
  t0=$(now_ns)
  out=$(rcli --pipe <"$1" 2>&1)
  local s
  s=$(seconds_since "$t0")
  grep -q "errors: 0," <<<"$out" || die "redis-cli --pipe: $out"
  awk -v s="$s" -v m="$memberships" 'BEGIN { printf "%s %.0f\n", s, m / s }'
}

redis_measure() {  # WORKLOAD-LABEL SYSTEM-LABEL redis-benchmark command...
  local label=$1 system=$2
  shift 2
  for ((r = 0; r < runs; r++)); do redis_run "$@"; done | record "$label" "$system" "redis-benchmark"
}

bench_port=$redis_port
log "Redis without persistence: load, $runs x about $duration s per workload"
start_redis "$WORK/redis" --appendonly no
mem0=$(used_memory)
read -r load_s load_rate < <(redis_load "$WORK/sets.resp")
redis_bytes=$(per_membership $(($(used_memory) - mem0)))
[ "$(rcli scard "seg-$segment")" = $((users / segment)) ] || die "Redis holds the wrong dataset"
sha=$(rcli script load "$(cat "$HERE/redis_user_segments.lua")")
redis_measure membership "Redis set, SISMEMBER" SISMEMBER "seg-$segment" __rand_int__
redis_measure user-segments "Redis sets, Lua SISMEMBER over all" EVALSHA "$sha" 0 __rand_int__ "$segments"
redis_measure count "Redis set, SCARD" SCARD "seg-$segment"
redis_measure intersection "Redis sets, SINTERCARD" SINTERCARD 2 "seg-$segment" "seg-$segment2"
redis_measure single-add "Redis set, SADD, no persistence" SADD "seg-$write_segment" __rand_int__
footprint "Redis sets, no persistence" "$load_s" "$load_rate" "$redis_bytes" "(starts empty)"
mem0=$(used_memory)
read -r load_s load_rate < <(redis_load "$WORK/zsets.resp")
footprint "Redis sorted sets of expiry times (TTL per member)" "$load_s" "$load_rate" \
  "$(per_membership $(($(used_memory) - mem0)))" "(starts empty)"
redis_measure membership "Redis sorted set, ZSCORE (TTL)" ZSCORE "ttl:seg-$segment" __rand_int__
redis_measure single-add "Redis sorted set, ZADD (TTL), no persistence" \
  ZADD "ttl:seg-$write_segment" "$(($(date +%s) + ttl))" __rand_int__
stop_redis
rm -rf "$WORK/redis"

log "Redis with AOF everysec: load, single adds, restart"
start_redis "$WORK/redis-aof" --appendonly yes --appendfsync everysec
read -r load_s load_rate < <(redis_load "$WORK/sets.resp")
redis_measure single-add "Redis set, SADD, AOF everysec" SADD "seg-$write_segment" __rand_int__
# Let a rewrite that the load started finish, as it would before a planned restart.
while rcli info persistence | grep -q '^aof_rewrite_in_progress:1'; do sleep 0.2; done
stop_redis
t0=$(now_ns)
start_redis "$WORK/redis-aof" --appendonly yes --appendfsync everysec
aof_restart=$(seconds_since "$t0")
[ "$(rcli scard "seg-$segment")" = $((users / segment)) ] || die "Redis lost data on restart"
footprint "Redis sets, AOF everysec" "$load_s" "$load_rate" "" "$aof_restart"
stop_redis
rm -rf "$WORK/redis-aof"

# --- PostgreSQL -------------------------------------------------------------------------------

pg_port=$(free_port)
pg_data="$WORK/pg"
mkdir -p "$pg_data"
[ "$(id -u)" -eq 0 ] && chown postgres: "$pg_data"
# Configured as its users would: a quarter of memory (at most 8 GiB) for shared buffers.
mem_kib=$(awk '/^MemTotal/ { print $2 }' /proc/meminfo)
shared_buffers_mb=$(( mem_kib / 4 / 1024 > 8192 ? 8192 : mem_kib / 4 / 1024 ))
as_postgres "$PGBIN/initdb" -D "$pg_data" -U postgres --auth=trust -E UTF8 --no-locale \
  >"$WORK/initdb.log" 2>&1 || die "initdb failed: $(tail -3 "$WORK/initdb.log")"
cat >>"$pg_data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$pg_data'
max_connections = $((connections + 20))
shared_buffers = ${shared_buffers_mb}MB
EOF

start_pg() {
  as_postgres "$PGBIN/pg_ctl" -D "$pg_data" -l "$pg_data/server.log" -w -t 300 start >/dev/null ||
    die "PostgreSQL did not start: $(tail -3 "$pg_data/server.log")"
}
stop_pg() { as_postgres "$PGBIN/pg_ctl" -D "$pg_data" -m fast -w stop >/dev/null; }
pg() { "$PGBIN/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -v ON_ERROR_STOP=1 -qAt "$@"; }

# pg_run SCRIPT: one pgbench run; prints "tps p50_ms p99_ms" from its per-transaction log.
pg_run() {
  local out prefix="$WORK/pgbench/run"
  rm -rf "$WORK/pgbench" && mkdir -p "$WORK/pgbench"
  out=$("$PGBIN/pgbench" -h 127.0.0.1 -p "$pg_port" -U postgres -n -M prepared \
    -c "$connections" -j 1 -T "$duration" -l --log-prefix="$prefix" \
    -D users="$users" -D seg="$segment" -D seg2="$segment2" -D wseg="$write_segment" \
    -f "$HERE/$1" postgres 2>&1) || { fail "pgbench $1: $out"; return; }
  grep -q "number of failed transactions: [1-9]" <<<"$out" && fail "pgbench $1: failed transactions"
  local tps
  tps=$(sed -nE 's/^tps = ([0-9.]+) \(without initial connection time\)/\1/p' <<<"$out")
  cat "$prefix".* | awk '{ print $3 }' | sort -n | awk -v tps="$tps" '
    { v[NR] = $1 }
    END { printf "%.0f %.3f %.3f\n", tps, v[int(NR * 0.5) + 1] / 1000, v[int(NR * 0.99) + 1] / 1000 }'
}

pg_measure() {  # WORKLOAD-LABEL SYSTEM-LABEL SCRIPT
  for ((r = 0; r < runs; r++)); do pg_run "$3"; done |
    record "$1" "$2" "pgbench -M prepared"
}

pg_size() {
  pg -c "SELECT pg_total_relation_size('users') + pg_total_relation_size('segments')
                + pg_total_relation_size('users_segments')"
}

pg_bulk_load() {  # MEMBERSHIPS-FILE: prints "seconds memberships_per_second"
  local t0 s
  t0=$(now_ns)
  {
    pg -f "$HERE/schema.sql"
    pg -c "INSERT INTO segments SELECT k, 'seg-' || k FROM generate_series(1, $segments) k"
    pg -c "\\copy users (id, external_id) FROM '$WORK/users.tsv'"
    pg -c "\\copy users_segments (segment_id, user_id, end_date) FROM '$1'"
    pg -f "$HERE/indexes.sql"
  } >/dev/null || die "loading PostgreSQL failed"
  s=$(seconds_since "$t0")
  awk -v s="$s" -v m="$memberships" 'BEGIN { printf "%s %.0f\n", s, m / s }'
}

log "PostgreSQL: load, $runs x $duration s per workload, restart"
start_pg
read -r load_s load_rate < <(pg_bulk_load "$WORK/memberships.tsv")
pg_bytes=$(per_membership "$(pg_size)")
[ "$(pg -c "SELECT count(*) FROM users_segments")" = "$memberships" ] ||
  die "PostgreSQL holds the wrong dataset"
pg_measure membership "PostgreSQL, SELECT EXISTS" pg_check.sql
pg_measure user-segments "PostgreSQL, join by user" pg_user_segments.sql
pg_measure count "PostgreSQL, COUNT(*)" pg_count.sql
pg_measure intersection "PostgreSQL, self-join COUNT(*)" pg_intersect.sql
pg_measure single-add "PostgreSQL, INSERT, synchronous_commit on" pg_add.sql
pg -c "ALTER SYSTEM SET synchronous_commit = off" -c "SELECT pg_reload_conf()" >/dev/null
pg_measure single-add "PostgreSQL, INSERT, synchronous_commit off" pg_add.sql
pg -c "ALTER SYSTEM RESET synchronous_commit" -c "SELECT pg_reload_conf()" >/dev/null
stop_pg
t0=$(now_ns)
start_pg
until pg -c "SELECT 1" >/dev/null 2>&1; do sleep 0.05; done
pg_restart=$(seconds_since "$t0")
footprint "PostgreSQL (tables and indexes)" "$load_s" "$load_rate" "$pg_bytes" "$pg_restart"
pg -c "DROP TABLE users_segments, users, segments"
read -r load_s load_rate < <(pg_bulk_load "$WORK/memberships_ttl.tsv")
footprint "PostgreSQL, every membership with an end_date" "$load_s" "$load_rate" \
  "$(per_membership "$(pg_size)")" ""
stop_pg

# --- the report -------------------------------------------------------------------------------

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
report="$WORK/report.md"
{
  echo "<!-- bench/compare: begin (written by bench/compare/compare.sh; rerun it to replace) -->"
  echo "## segd, Redis and PostgreSQL side by side (\`bench/compare\`), $(date -u +%Y-%m-%d)"
  echo
  echo "Command: \`$command_line\`. Machine: $(nproc) cores ($cpu), $((mem_kib / 1024 / 1024)) GiB;"
  echo "segd $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo '?'),"
  echo "Redis $(redis-server --version | sed -E 's/.*v=([0-9.]+).*/\1/'), PostgreSQL $("$PGBIN/postgres" --version | awk '{ print $3 }')."
  echo "Dataset: $users users with 12-digit ids, $segments segments where segment k holds users/k,"
  echo "$memberships memberships, identical in every system. Clients run on the same cores as the"
  echo "server, $connections connections each, no pipelining; one system runs at a time."
  echo "Each figure is the median of $runs runs of about $duration s (for redis-benchmark, a request"
  echo "count sized from a short calibration run). Latency is per request as each client measures it."
  echo
  echo "| workload | system | client | req/s | p50 ms | p99 ms | segd ÷ this |"
  echo "| --- | --- | --- | ---: | ---: | ---: | ---: |"
  awk -F'\t' '
    $2 == "segd" || $2 == "segd, durability process" { base[$1] = $4 }
    { rows[NR] = $0 }
    END {
      for (i = 1; i <= NR; i++) {
        split(rows[i], f, "\t")
        ratio = (f[1] in base && f[4] > 0) ? sprintf("%.2f", base[f[1]] / f[4]) : ""
        printf "| %s | %s | %s | %.0f | %.3f | %.3f | %s |\n", f[1], f[2], f[3], f[4], f[5], f[6], ratio
      }
    }' "$RESULTS"
  echo
  echo "The same commands over the Redis protocol: \`redis-benchmark\` against segd's RESP port"
  echo "(\`--resp-port\`, same server, same dataset, default settings) and against Redis."
  echo
  echo "| workload | command | segd req/s | Redis req/s | segd ÷ Redis |"
  echo "| --- | --- | ---: | ---: | ---: |"
  awk -F'\t' '
    FILENAME == ARGV[1] { rps[$1 "\t" $2] = $4; next }
    {
      peer = rps[$1 "\t" $4]
      ratio = peer > 0 ? sprintf("%.2f", $3 / peer) : ""
      printf "| %s | %s | %.0f | %.0f | %s |\n", $1, $2, $3, peer, ratio
    }' "$RESULTS" "$RESP_RESULTS"
  echo
  echo "| system | bulk load s | memberships/s | bytes per membership | restart s |"
  echo "| --- | ---: | ---: | ---: | ---: |"
  awk -F'\t' '{ printf "| %s | %.2f | %.0f | %s | %s |\n", $1, $2, $3, $4, $5 }' \
    "$FOOTPRINT"
  echo
  echo "How each figure is taken:"
  echo "- segd: \`segd-load\`, default flags; bulk load through"
  echo "  \`POST /v1/segments/{name}/users:import\`, 100,000 lines a request (written by a second"
  echo "  client thread while the server applies the one before); memory is the growth of segd's"
  echo "  resident set (engine, dictionary and RocksDB's buffers); restart is SIGTERM (which"
  echo "  writes a snapshot), then start until \`/health\` answers. user-segments reads"
  echo "  \`added_at\` from the log. segd over RESP: the"
  echo "  same server's \`--resp-port\`, with \`redis-benchmark\` and \`redis-cli --pipe\` of Redis's"
  echo "  own load file (after \`SEGD.CREATE\` of each segment)."
  echo "- Redis: \`redis-benchmark\` with \`-r $users\` (random 12-digit users, as in the dataset);"
  echo "  bulk load with \`redis-cli --pipe\`, 1,000 members a command; memory is the growth of"
  echo "  \`used_memory\`. Sets have no per-member TTL: a TTL needs a sorted set of expiry times per"
  echo "  segment (Redis $(redis-server --version | sed -E 's/.*v=([0-9.]+).*/\1/') has no hash-field TTL), swept"
  echo "  by the application; user-segments is a Lua script asking every segment. Restart is"
  echo "  SHUTDOWN, then start until PING answers (the AOF replayed). redis-benchmark's latency"
  echo "  histogram stops at 3 s: a figure of 3000 ms means at least that."
  echo "- PostgreSQL: \`pgbench -M prepared -j 1\` with the scripts in \`bench/compare/\`; bulk load"
  echo "  is COPY, then keys, indexes and VACUUM ANALYZE; memory is the size of tables and"
  echo "  indexes on disk (shared_buffers ${shared_buffers_mb} MB); restart is a fast stop, then start"
  echo "  until a query answers. A membership is one row; adds are upserts without a history row."
  echo "<!-- bench/compare: end -->"
} >"$report"

cat "$report"
if [ "$write_docs" -eq 1 ]; then
  docs="$REPO/docs/benchmarks.md"
  if grep -q '<!-- bench/compare: begin' "$docs"; then
    awk -v report="$report" '
      /<!-- bench\/compare: begin/ { while ((getline line < report) > 0) print line; skip = 1; next }
      /<!-- bench\/compare: end -->/ { skip = 0; next }
      !skip { print }' "$docs" >"$docs.new" && mv "$docs.new" "$docs"
  else
    { echo; cat "$report"; } >>"$docs"
  fi
  log "wrote the table into docs/benchmarks.md"
fi
if [ -s "$FAILURES" ]; then
  log "$(wc -l <"$FAILURES") measurements had errors:"
  cat "$FAILURES" >&2
  exit 1
fi
