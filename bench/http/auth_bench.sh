#!/usr/bin/env bash
# What access control and TLS cost over HTTP: membership checks with keys off, with keys on,
# and with keys on over HTTPS, in one run, alternating.
#
#   bench/http/auth_bench.sh [USERS] [DURATION] [RUNS]     (defaults: 100000 8s 5)
#
# Starts three segd (--threads 1 each, on their own data directories): --auth off; --auth keys;
# --auth keys with --tls-cert/--tls-key (a self-signed P-256 certificate made here with the
# openssl command). Loads the same segment into each (every other user), then, RUNS times, runs
# wrk -t1 -c50 keep-alive membership checks (bench/http/check.lua) against off, keys, tls in
# turn (keys and tls send an admin key made with segd keys create). Prints every run, the
# median checks per second of each, and the medians of the keys/off and tls/off ratios.
# Needs wrk, curl and openssl.
set -euo pipefail

USERS=${1:-100000}
DURATION=${2:-8s}
RUNS=${3:-5}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SEGD=$ROOT/build/bin/segd
for tool in wrk curl openssl; do
  command -v $tool >/dev/null || { echo "auth_bench: $tool is missing" >&2; exit 1; }
done
[ -x "$SEGD" ] || { echo "auth_bench: build segd first (make build)" >&2; exit 1; }

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -subj /CN=127.0.0.1 2>/dev/null

# start NAME FLAGS...: starts segd, prints its base URL.
start() {
  local name=$1
  shift
  "$SEGD" --data-dir "$WORK/$name" --port 0 --threads 1 --log-level warn "$@" \
    > "$WORK/$name.out" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do grep -q listening "$WORK/$name.out" && break; sleep 0.1; done
  sed -n 's/.*listening on \(https\{0,1\}:\/\/127.0.0.1:[0-9]*\).*/\1/p' "$WORK/$name.out"
}

KEY=$("$SEGD" keys create --data-dir "$WORK/keys" --role admin 2>/dev/null)
"$SEGD" keys create --data-dir "$WORK/tls" --role admin >/dev/null 2>&1 || true
cp "$WORK/keys/keys.json" "$WORK/tls/keys.json"  # the same key for both
OFF=$(start off --auth off)
KEYS=$(start keys --auth keys)
TLS=$(start tls --auth keys --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem")
seq 1 2 "$USERS" | sed 's/^/u/' > "$WORK/users.txt"
for base in "$OFF" "$KEYS" "$TLS"; do
  curl -skf -H "Authorization: Bearer $KEY" -X POST "$base/v1/segments" \
    -H 'Content-Type: application/json' -d '{"name":"bench"}' >/dev/null
  curl -skf -H "Authorization: Bearer $KEY" -X POST "$base/v1/segments/bench/users:import" \
    -H 'Content-Type: text/plain' --data-binary @"$WORK/users.txt" >/dev/null
done
echo "segd --threads 1, wrk -t1 -c50 $DURATION, $USERS users, $RUNS runs"

rps() {  # $1: base URL, $2: key or empty
  local header=()
  [ -n "$2" ] && header=(-H "Authorization: Bearer $2")
  wrk -t1 -c50 -d"$DURATION" "${header[@]}" -s "$ROOT/bench/http/check.lua" "$1" -- \
    "$USERS" bench 1 | sed -n 's/^requests_per_second \([0-9]*\).*errors \([0-9]*\)/\1 \2/p'
}

: > "$WORK/results"
for run in $(seq "$RUNS"); do
  read -r off off_err <<< "$(rps "$OFF" "")"
  read -r keys keys_err <<< "$(rps "$KEYS" "$KEY")"
  read -r tls tls_err <<< "$(rps "$TLS" "$KEY")"
  echo "run $run: off $off/s, keys $keys/s, tls $tls/s (errors $off_err $keys_err $tls_err)"
  echo "$off $keys $tls" >> "$WORK/results"
done
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "median checks/s: off $(cut -d' ' -f1 "$WORK/results" | median)," \
  "keys $(cut -d' ' -f2 "$WORK/results" | median), tls $(cut -d' ' -f3 "$WORK/results" | median)"
echo "median ratio keys/off $(awk '{printf "%.3f\n", $2/$1}' "$WORK/results" | median)," \
  "tls/off $(awk '{printf "%.3f\n", $3/$1}' "$WORK/results" | median)"
