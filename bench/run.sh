#!/usr/bin/env bash
# Loopback benchmark of the reference server (a benchmark, not a test: nothing here asserts).
#
#   bash bench/run.sh            # DURATION=10 CONNECTIONS=64 THREADS=2 TOKENS=200000 by default (the mock IdP mints at most 200000 per batch)
#
# Starts the release mock IdP and reference server on random loopback ports (a real SQLite file
# in WAL mode, replies only after commit; then the same on a throwaway PostgreSQL cluster, one
# instance and three behind the round-robin front of `reference serve --replicas 3`; PG=0
# leaves those out), then drives them with wrk: anonymous registration,
# ID-JAG registration (ES256, cached JWKS, one pre-minted token per request) and an
# authenticated API call. Prints requests/s, p50/p99 latency, non-2xx answers and the server's
# RSS, and writes the table to reports/runs/bench-<time>.md.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
TOKENS=${TOKENS:-200000}

if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get install -y -qq wrk >/dev/null || { echo "error: wrk is needed: apt-get install wrk" >&2; exit 2; }
fi
cargo build --release --locked -q -p authmd-reference-server -p authmd-mock-idp -p authmd-conformance

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# Waits for a process's first stdout line and prints the URL in it.
first_url() {
  for _ in $(seq 100); do
    if [ -s "$1" ]; then grep -o 'http://[0-9.:]*' "$1" | head -1; return; fi
    sleep 0.1
  done
  echo "error: $1 printed nothing" >&2; exit 3
}

target/release/authmd-mock-idp --listen 127.0.0.1:0 --token-file "$work/idp.token" >"$work/idp.out" 2>"$work/idp.err" &
pids+=($!)
idp=$(first_url "$work/idp.out")

# Starts a reference server with extra flags (on SQLite, or with `postgres` first on a throwaway
# PostgreSQL cluster through `reference serve`); sets $base and $server_pid.
start_server() {
  local name=$1; shift
  current=$name
  local launch=(target/release/authmd-reference-server --listen 127.0.0.1:0 --database "$work/$name.sqlite")
  if [ "${1:-}" = postgres ]; then
    shift
    launch=(target/release/authmd-conformance reference serve --listen 127.0.0.1:0 --throwaway-postgres)
  fi
  "${launch[@]}" \
    --set "trusted_issuers=[{issuer = \"$idp\"}]" \
    --set rate.anonymous_per_ip=1000000000 --set rate.identity_per_ip=1000000000 --set rate.per_issuer=1000000000 \
    "$@" >"$work/$name.out" 2>"$work/$name.err" &
  server_pid=$!
  pids+=($server_pid)
  base=$(first_url "$work/$name.out")
  echo "minting $TOKENS ID-JAGs for $base ($name)" >&2
  curl -sf -X POST "$idp/_control/mint-batch" -H 'content-type: application/json' \
    -H "authorization: Bearer $(cat "$work/idp.token")" \
    -d "{\"count\": $TOKENS, \"set\": {\"aud\": \"$base\"}}" >"$work/$name.tokens"
  export AUTHMD_BENCH_TOKENS=$work/$name.tokens
}

rss() { awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' "/proc/$server_pid/status"; }
# The WAL beside a server's database (it is cut back to 16 MiB once a checkpoint has copied it
# all, and emptied at close).
wal_of() { if [ -e "$work/$1.sqlite-wal" ]; then stat -c %s "$work/$1.sqlite-wal" | awk '{printf "%.1f MiB", $1/1048576}'; else echo "-"; fi; }

results="| scenario | durability | requests/s | p50 | p99 | non-2xx | WAL peak | WAL after |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n"
run() { # name, durability, lua script, path
  local name=$1 durability=$2 script=$3 path=$4 out
  AUTHMD_BENCH_OFFSET=0 wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" -s "bench/$script" "$base$path" >/dev/null
  # The WAL's largest size during the measured run, sampled every 100 ms.
  ( peak=0; while :; do s=$(stat -c %s "$work/$current.sqlite-wal" 2>/dev/null || echo 0); [ "$s" -gt "$peak" ] && peak=$s && echo "$peak" >"$work/walpeak"; sleep 0.1; done ) &
  local sampler=$!
  echo 0 >"$work/walpeak"
  # The measured run starts past every token the warm-up could have used.
  out=$(AUTHMD_BENCH_OFFSET=$((TOKENS / 5)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "bench/$script" "$base$path")
  local rps p50 p99 bad
  rps=$(awk '/Requests\/sec/ {printf "%d", $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  bad=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  kill "$sampler" 2>/dev/null || true
  local walpeak; walpeak=$(awk '{printf "%.1f MiB", $1/1048576}' "$work/walpeak")
  [ -e "$work/$current.sqlite" ] || walpeak="-"
  sleep 1   # one second for the checkpointer to catch up, as it does between bursts
  local walsize; walsize=$(wal_of "$current")
  results+="| $name | $durability | $rps | $p50 | $p99 | ${bad:-0} | $walpeak | ${walsize:-0} |\n"
  echo "$name ($durability): $rps req/s, p50 $p50, p99 $p99, non-2xx ${bad:-0}" >&2
}
export AUTHMD_BENCH_THREADS=$THREADS

start_server default
key=$(curl -sf -X POST "$base/agent/auth" -H 'content-type: application/json' \
  -d '{"type":"anonymous","requested_credential_type":"api_key"}' | sed -E 's/.*"credential":"([^"]+)".*/\1/')
export AUTHMD_BENCH_KEY=$key
run "anonymous registration" "crash-safe" anon.lua /agent/auth
rss_warm=$(rss)
run "ID-JAG registration (ES256)" "crash-safe" idjag.lua /agent/auth
run "API call (api_key)" "-" api.lua /api/resource
rss_end=$(rss)
kill "$server_pid"

start_server power --set power_safe=true
run "anonymous registration" "power-safe" anon.lua /agent/auth
run "ID-JAG registration (ES256)" "power-safe" idjag.lua /agent/auth
kill "$server_pid"

if [ "${PG:-1}" = 1 ]; then
  for shape in postgres replicas; do
    extra=(); label="PostgreSQL, 1 instance"
    [ "$shape" = replicas ] && extra=(--replicas 3) && label="PostgreSQL, 3 replicas"
    start_server "$shape" postgres "${extra[@]}"
    AUTHMD_BENCH_KEY=$(curl -sf -X POST "$base/agent/auth" -H 'content-type: application/json' \
      -d '{"type":"anonymous","requested_credential_type":"api_key"}' | sed -E 's/.*"credential":"([^"]+)".*/\1/')
    export AUTHMD_BENCH_KEY
    run "anonymous registration" "$label" anon.lua /agent/auth
    run "ID-JAG registration (ES256)" "$label" idjag.lua /agent/auth
    run "API call (api_key)" "$label" api.lua /api/resource
    kill "$server_pid"
  done
fi

stamp=$(date -u +%Y%m%d-%H%M%S)
mkdir -p reports/runs
{
  echo "# Reference server benchmark ($stamp UTC)"
  echo
  echo "$(nproc) cores, wrk -t$THREADS -c$CONNECTIONS, ${DURATION}s after ${WARMUP}s warm-up, loopback, same machine."
  echo
  printf "%b" "$results"
  echo
  echo "Crash-safe: WAL, synchronous=NORMAL (an answer survives a crash or kill -9 of the server)."
  echo "Power-safe: power_safe = true, synchronous=FULL (it also survives an OS crash or power loss)."
  echo "PostgreSQL: a throwaway cluster on the same 2 cores (fsync off: it survives a crash of the server, not of the machine), reached over loopback TCP; 3 replicas: three instances in one process behind the round-robin front, their write batches serialised by one advisory lock."
  echo "Server RSS: $rss_warm after the anonymous run, $rss_end after all three (crash-safe server)."
  echo "WAL peak: the largest the database's WAL grew during the measured run (sampled every 100 ms); WAL after: its size one second after. The writer truncates it past 64 MiB, the checkpointer once writes stop."
} | tee "reports/runs/bench-$stamp.md"
