#!/usr/bin/env bash
# Resident memory of the gateway (issue 7: idle and with 1,000 open
# streams), measured the way scripts/bench.sh measures it, for one or more
# builds side by side.
#
# Starts a private redis-server, the workspace's mock-upstream (MOCK_CHUNKS
# chunks per stream) and one gateway per binary given (default:
# target/release/gateway), all routing the same snapshot written straight
# into Redis. Reads each gateway's VmRSS once it has served one request and
# sat idle for a few seconds ("idle"), then, ROUNDS times and one gateway at
# a time: a closed-loop burst of non-streaming and streamed requests
# (LOAD_CONNS connections, as the record run's throughput runs do before
# its stream run), then OPEN_STREAMS streams held open at once (chunks
# 100 ms apart, so each lasts about 2 s) with loadgen's --watch sampling
# VmRSS every 100 ms ("streams" = the maximum), and VmRSS 2 s after
# ("after").
#
# Usage: services/gateway/benches/memory.sh [GATEWAY_BIN ...]
# Knobs (environment): OPEN_STREAMS (1000), ROUNDS (2), LOAD_CONNS (256),
#   MOCK_CHUNKS (20), GW_RUST_LOG (info, as the record run), BIN
#   (directory of mock-upstream and loadgen, default target/release).
# Output: one line per gateway and phase, and the gateways' thread counts
# and /proc/PID/smaps_rollup when idle; loadgen JSON in target/bench-mem/.
set -euo pipefail
cd "$(dirname "$0")/../../.."
root=$(pwd)
bin=${BIN:-$root/target/release}
OPEN_STREAMS=${OPEN_STREAMS:-1000}
ROUNDS=${ROUNDS:-2}
LOAD_CONNS=${LOAD_CONNS:-256}
MOCK_CHUNKS=${MOCK_CHUNKS:-20}
GW_RUST_LOG=${GW_RUST_LOG:-info}
# shellcheck source=services/gateway/benches/common.sh
. "$root/services/gateway/benches/common.sh"
gateways=("$@")
[ ${#gateways[@]} -gt 0 ] || gateways=("$bin/gateway")
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

bench_init bench-mem

start_redis

start_mock "$MOCK_CHUNKS"

key="sk-aigw-mem-bench-0000000000000000000000000000000000"
hash=$(printf '%s' "$key" | sha256sum | cut -d' ' -f1)
model=gpt-4o-mini
redis-cli -p "$redis_port" SET config:snapshot "$(cat <<EOF
{"version":1,"generated_at_ms":0,
 "namespaces":[{"code":"bench","name":"Bench","enabled":true,"limits":{}}],
 "api_keys":[{"id":"k1","namespace_code":"bench","key_hash":"$hash","prefix":"sk-aigw-mem","revoked":false}],
 "models":[{"name":"$model","encoding":"o200k_base","input_price_per_1m":"0.15","output_price_per_1m":"0.60","enabled":true}],
 "instances":[{"id":"mock","namespace_code":"bench","model":"$model","base_url":"http://127.0.0.1:$mock_port/v1","upstream_model":"$model","api_key":"sk-upstream-bench","weight":1,"timeout_ms":60000,"enabled":true}]}
EOF
)" >/dev/null
redis-cli -p "$redis_port" SET config:version 1 >/dev/null

body='{"model":"'$model'","messages":[{"role":"system","content":"You are a terse assistant."},{"role":"user","content":"Say hello to the benchmark in a few words."}]}'
printf '%s' "$body" >"$work/chat.json"
printf '%s' "${body%\}},\"stream\":true}" >"$work/stream.json"
printf '%s' "${body%\}},\"stream\":true,\"mock\":{\"chunk_delay_ms\":100}}" >"$work/hold.json"

start_gateways "redis://127.0.0.1:$redis_port" "${gateways[@]}"
for t in "${targets[@]}"; do
  for _ in $(seq 100); do
    code=$(curl -sS -o /dev/null -w '%{http_code}' "${url[$t]}" -H "Authorization: Bearer $key" \
      -H 'Content-Type: application/json' -d "$body" 2>/dev/null || true)
    [ "$code" = 200 ] && break
    sleep 0.1
  done
  [ "$code" = 200 ] || { echo "$t does not route the benchmark key" >&2; exit 1; }
done
sleep 3
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"
for t in "${targets[@]}"; do
  p=${pid[$t]}
  printf '%-4s idle      RSS %6s MiB  threads %s\n' "$t" "$(rss_mib "$p")" \
    "$(awk '/^Threads:/ {print $2}' "/proc/$p/status")"
  grep -E '^(Rss|Pss_Anon|Pss_File|Anonymous|AnonHugePages)' "/proc/$p/smaps_rollup" | tr -s ' ' | paste -sd' ' - \
    | sed 's/^/     /'
done

lg() { # NAME TARGET ARGS...
  local name=$1 t=$2; shift 2
  "$bin/loadgen" -q -t 2 --json "$out/$name.json" -H "Authorization: Bearer $key" \
    --watch "$t=${pid[$t]}" "$@" "${url[$t]}"
  local errs; errs=$(jq .errors "$out/$name.json")
  [ "$errs" = 0 ] || echo "warning: $name had $errs errors" >&2
}
for r in $(seq "$ROUNDS"); do
  for t in "${targets[@]}"; do
    lg "load-chat-$t-r$r" "$t" -c "$LOAD_CONNS" -d 3 --body-file "$work/chat.json"
    lg "load-stream-$t-r$r" "$t" -c 64 -d 3 --stream --body-file "$work/stream.json"
    lg "hold-$t-r$r" "$t" -c "$OPEN_STREAMS" -d 3 --timeout 60s --stream --body-file "$work/hold.json"
    sleep 2
    printf '%-4s round %s  %s streams: RSS max %6s MiB (%s streams, %s incomplete)  after: %6s MiB\n' \
      "$t" "$r" "$OPEN_STREAMS" "$(jq '.watch[0].rss_max_mib * 10 | round / 10' "$out/hold-$t-r$r.json")" \
      "$(jq .requests "$out/hold-$t-r$r.json")" "$(jq .stream.incomplete "$out/hold-$t-r$r.json")" \
      "$(rss_mib "${pid[$t]}")"
  done
done
sleep 5
for t in "${targets[@]}"; do
  printf '%-4s after all runs (+5 s): RSS %6s MiB\n' "$t" "$(rss_mib "${pid[$t]}")"
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
