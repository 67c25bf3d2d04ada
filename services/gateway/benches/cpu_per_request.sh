#!/usr/bin/env bash
# CPU per proxied request of the gateway (issue 7 target: <= 40 us, <= 2x an
# nginx proxy_pass hop), measured the same way for every target, interleaved.
#
# Starts a private redis-server, the workspace's mock-upstream, one gateway
# per binary given (default: target/release/gateway) with a routing snapshot
# written straight into Redis (no limits: authentication, routing, body
# rewrite and accounting on), and nginx as a reference hop when installed.
# Then, ROUNDS times, runs the same closed-loop load against each target in
# turn and reads the target's CPU (utime+stime from /proc, 10 ms ticks) over
# the run through loadgen's --watch: CPU per request = CPU delta / requests.
# After the runs the gateways' Redis request counter must equal the number
# of responses loadgen got (accounting stays exact under load).
#
# Usage: services/gateway/benches/cpu_per_request.sh [GATEWAY_BIN ...]
#   e.g. compare a saved build with the current one:
#   services/gateway/benches/cpu_per_request.sh /tmp/gateway-before target/release/gateway
# Knobs (environment): REQUESTS per run (100000), CONNS (64), ROUNDS (3),
#   STREAM (1: also streamed chat, MOCK_CHUNKS chunks), MOCK_CHUNKS (5),
#   NGINX (1 when installed), BUILD (1: cargo build --release first),
#   GW_RUST_LOG (warn), GATEWAY_WORKERS (unset: one per core),
#   LIMITS (a JSON object of namespace limits, default {}: none; e.g.
#   '{"max_concurrency":1000}' measures the fleet-wide concurrency check,
#   '{"rpm":100000000}' the RPM window),
#   ANTHROPIC (1: also streamed chat to an Anthropic instance of the same
#   mock, translated to OpenAI's chunks by the gateway; gateways only),
#   REDIS (single: one redis-server; cluster: a local Redis Cluster of 3
#   masters and 3 replicas, the gateways on redis+cluster://),
#   BIN (directory of the binaries, default target/release; with BUILD=0
#   e.g. target/debug).
# Each gateway journals in its own directory under the work directory (its
# JOURNAL_DIR; a wrapper script that sets JOURNAL_DIR=off and `exec`s a
# binary measures it without the journal).
# Output: one line per run, then medians per target and the Redis commands
# per request (INFO commandstats summed over the masters, from the first
# warm-up to the last flush); raw loadgen JSON in target/bench-cpu/.
set -euo pipefail
cd "$(dirname "$0")/../../.."
root=$(pwd)
bin=${BIN:-$root/target/release}
case "$bin" in /*) ;; *) bin=$root/$bin ;; esac
REDIS=${REDIS:-single}

REQUESTS=${REQUESTS:-100000}
CONNS=${CONNS:-64}
ROUNDS=${ROUNDS:-3}
STREAM=${STREAM:-1}
MOCK_CHUNKS=${MOCK_CHUNKS:-5}
BUILD=${BUILD:-1}
GW_RUST_LOG=${GW_RUST_LOG:-warn}
NGINX=${NGINX:-1}
LIMITS=${LIMITS:-"{}"}
ANTHROPIC=${ANTHROPIC:-0}
command -v nginx >/dev/null || NGINX=0
# shellcheck source=services/gateway/benches/common.sh
. "$root/services/gateway/benches/common.sh"

if [ "$BUILD" = 1 ]; then
  cargo build --release -q --workspace --bins
fi
gateways=("$@")
[ ${#gateways[@]} -gt 0 ] || gateways=("$bin/gateway")

bench_init bench-cpu

redis_ports=()
if [ "$REDIS" = cluster ]; then
  for n in 1 2 3 4 5 6; do
    p=$(free_port); bus=$(free_port)
    mkdir -p "$work/node$n"
    redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no --dir "$work/node$n" \
      --cluster-enabled yes --cluster-port "$bus" --cluster-config-file nodes.conf \
      --cluster-node-timeout 2000 >"$work/redis$n.log" 2>&1 &
    pids+=($!)
    redis_ports+=("$p")
  done
  for p in "${redis_ports[@]}"; do
    for _ in $(seq 50); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
  done
  redis-cli --cluster create $(printf '127.0.0.1:%s ' "${redis_ports[@]}") \
    --cluster-replicas 1 --cluster-yes >"$work/cluster-create.log"
  for p in "${redis_ports[@]}"; do
    for _ in $(seq 100); do
      redis-cli -p "$p" cluster info | grep -q 'cluster_state:ok' && break; sleep 0.1
    done
  done
  redis_port=${redis_ports[0]}
  redis_url="redis+cluster://$(printf '127.0.0.1:%s,' "${redis_ports[@]}" | sed 's/,$//')"
  rcli() { redis-cli -c -p "$redis_port" "$@"; }
else
  start_redis
  redis_ports+=("$redis_port")
  redis_url="redis://127.0.0.1:$redis_port"
  rcli() { redis-cli -p "$redis_port" "$@"; }
fi
# Commands executed by the masters (replication to replicas not counted).
redis_calls() {
  local p sum=0 n
  for p in "${redis_ports[@]}"; do
    redis-cli -p "$p" info replication | grep -q '^role:master' || continue
    n=$(redis-cli -p "$p" info commandstats | sed -n 's/^cmdstat_[^:]*:calls=\([0-9]*\),.*/\1/p' | paste -sd+ - | bc)
    sum=$(( sum + ${n:-0} ))
  done
  echo "$sum"
}

start_mock "$MOCK_CHUNKS"

key="sk-aigw-cpu-bench-000000000000000000000000000000000"
hash=$(printf '%s' "$key" | sha256sum | cut -d' ' -f1)
model=gpt-4o-mini
snapshot=$(cat <<EOF
{"version":1,"generated_at_ms":0,
 "namespaces":[{"code":"bench","name":"Bench","enabled":true,"limits":$LIMITS}],
 "api_keys":[{"id":"k1","namespace_code":"bench","key_hash":"$hash","prefix":"sk-aigw-cpu","revoked":false}],
 "models":[{"name":"$model","encoding":"o200k_base","input_price_per_1m":"0.15","output_price_per_1m":"0.60","enabled":true},
           {"name":"claude-bench","encoding":"o200k_base","input_price_per_1m":"3","output_price_per_1m":"15","enabled":true}],
 "instances":[{"id":"mock","namespace_code":"bench","model":"$model","base_url":"http://127.0.0.1:$mock_port/v1","upstream_model":"$model-upstream","api_key":"sk-upstream-bench","weight":1,"timeout_ms":60000,"enabled":true},
              {"id":"mock-anthropic","namespace_code":"bench","model":"claude-bench","provider":"anthropic","base_url":"http://127.0.0.1:$mock_port/v1","upstream_model":"claude-bench-upstream","api_key":"sk-upstream-bench","weight":1,"timeout_ms":60000,"enabled":true}]}
EOF
)
rcli SET config:snapshot "$snapshot" >/dev/null
rcli SET config:version 1 >/dev/null

start_gateways "$redis_url" "${gateways[@]}"

if [ "$NGINX" = 1 ]; then
  ng_port=$(free_port)
  mkdir -p "$work/nginx/tmp"
  user_line=""; [ "$(id -u)" = 0 ] && user_line="user root;"
  cat >"$work/nginx/nginx.conf" <<EOF
$user_line
worker_processes $(nproc);
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $work/nginx/tmp/body;
  proxy_temp_path $work/nginx/tmp/proxy;
  fastcgi_temp_path $work/nginx/tmp/fastcgi;
  uwsgi_temp_path $work/nginx/tmp/uwsgi;
  scgi_temp_path $work/nginx/tmp/scgi;
  keepalive_requests 1000000;
  upstream mock { server 127.0.0.1:$mock_port; keepalive 512; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$ng_port backlog=4096;
    location / {
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
EOF
  nginx -p "$work/nginx" -e "$work/nginx/error.log" -c "$work/nginx/nginx.conf" -g 'daemon off;' &
  pids+=($!)
  ng_master=$!
  wait_http "http://127.0.0.1:$ng_port/health"
  pid[nginx]=$(ps -o pid= --ppid "$ng_master" | tr -d ' ' | paste -sd, -)
  url[nginx]="http://127.0.0.1:$ng_port/v1/chat/completions"
  echo "nginx = reference proxy_pass hop"
  targets=(nginx "${targets[@]}")
fi

body='{"model":"'$model'","messages":[{"role":"system","content":"You are a terse assistant."},{"role":"user","content":"Say hello to the benchmark in a few words."}]}'
printf '%s' "$body" >"$work/chat.json"
printf '%s' "${body%\}},\"stream\":true}" >"$work/stream.json"
abody=${body/\"$model\"/\"claude-bench\"}
printf '%s' "${abody%\}},\"stream\":true}" >"$work/anthropic.json"
modes=(chat); [ "$STREAM" = 1 ] && modes+=(stream)
[ "$ANTHROPIC" = 1 ] && modes+=(anthropic)

gw_responses=0
# `run NAME MODE TARGET [-n N]`: one loadgen run; prints the CPU per request.
run() {
  local name=$1 mode=$2 t=$3; shift 3
  local args=(-q -t 2 -c "$CONNS" --json "$out/$name.json" --watch "$t=${pid[$t]}")
  [ "$t" = nginx ] || args+=(-H "Authorization: Bearer $key")
  case $mode in
    stream) args+=(--stream --body-file "$work/stream.json") ;;
    anthropic) args+=(--stream --body-file "$work/anthropic.json") ;;
    *) args+=(--body-file "$work/chat.json") ;;
  esac
  "$bin/loadgen" "${args[@]}" "$@" "${url[$t]}"
  local j=$out/$name.json
  [ "$t" = nginx ] || gw_responses=$(( gw_responses + $(jq .requests "$j") ))
  printf '%-22s %-7s %-6s %9.0f req/s  p50 %6.2f ms  p99 %6.2f ms  errors %s  CPU %6.1f us/request (user %.1f)\n' \
    "$name" "$mode" "$t" "$(jq .rps "$j")" "$(jq .latency_ms.p50 "$j")" "$(jq .latency_ms.p99 "$j")" \
    "$(jq .errors "$j")" "$(jq '.watch[0].cpu_us_per_request' "$j")" "$(jq '.watch[0].user_us_per_request' "$j")"
}

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; redis: $REDIS"
calls_before=$(redis_calls)
echo "warm-up"
for t in "${targets[@]}"; do run "warmup-$t" chat "$t" -n 20000 >/dev/null; done
for r in $(seq "$ROUNDS"); do
  for m in "${modes[@]}"; do
    for t in "${targets[@]}"; do
      [ "$m" = anthropic ] && [ "$t" = nginx ] && continue
      run "$m-$t-r$r" "$m" "$t" -n "$REQUESTS"
    done
  done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

echo
echo "medians over $ROUNDS rounds ($REQUESTS requests, $CONNS connections):"
for m in "${modes[@]}"; do
  for t in "${targets[@]}"; do
    [ "$m" = anthropic ] && [ "$t" = nginx ] && continue
    jq -s --arg t "$t" --arg m "$m" '
      def med: sort | .[(length / 2 | floor)];
      "\($m) \($t): CPU \(map(.watch[0].cpu_us_per_request) | med | . * 10 | round / 10) us/request (user \(map(.watch[0].user_us_per_request) | med | . * 10 | round / 10), system \(map(.watch[0].system_us_per_request) | med | . * 10 | round / 10)), \(map(.rps) | med | round) req/s, p50 \(map(.latency_ms.p50) | med) ms"' \
      -r "$out/$m-$t"-r*.json
  done
done

# Accounting stays exact: every response loadgen got is counted once.
expected=$gw_responses
got=0
for _ in $(seq 50); do
  got=$(rcli --raw GET metrics:global:total_requests); got=${got:-0}
  [ "$got" = "$expected" ] && break
  sleep 0.2
done
echo "accounting: metrics:global:total_requests = $got, responses through the gateways = $expected"
sleep 2
calls_after=$(redis_calls)
# Includes the idle flushes and this script's own INFO calls (a few per node).
echo "redis ($REDIS): $(( calls_after - calls_before )) commands for $expected requests: $(echo "scale=4; ($calls_after - $calls_before) / $expected" | bc) per request"
[ "$got" = "$expected" ] || { echo "ACCOUNTING MISMATCH" >&2; exit 1; }
