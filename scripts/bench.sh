#!/usr/bin/env bash
# The issue-7 benchmark: gateway overhead, accounting cost and token
# throughput, side by side with direct calls to the mock upstream and with
# nginx as a plain reference proxy. Everything runs on loopback, in one run,
# interleaved; everything started here is stopped on exit.
#
# Usage: scripts/bench.sh
# Knobs (environment): BENCH_DURATION (s per run, 5), BENCH_ROUNDS (3),
#   BENCH_CONNS ("8 64 256"), BENCH_RATE (5000), BENCH_CHUNKS (20),
#   BENCH_CHUNK_DELAY_MS (5), BENCH_OPEN_STREAMS (1000), BENCH_RUST_LOG
#   (info), BENCH_BUILD (1; 0 = use the binaries in target/release),
#   BENCH_WRK (1: cross-check loadgen with wrk), BENCH_NGINX (1: use nginx;
#   both are installed with apt-get when missing and run as root), BENCH_TOKENS (1: run scripts/bench-tokens.sh if present), BENCH_NOTE (free text for
#   the report header, e.g. "trial (machine busy)"), BENCH_SETUP_ONLY (1:
#   start and seed everything, write target/bench/env.sh, wait for a signal;
#   for profiling by hand), BENCH_BEFORE (a directory holding an earlier
#   build's gateway, token-service and config-center: the script first runs
#   the same measurements with those, then with this build, and the report
#   sets the two side by side), BENCH_BIN (where the three services' binaries
#   are; target/release), BENCH_OUT (target/bench), BENCH_FLUSH (the
#   gateway's METRICS_FLUSH_INTERVAL, 1s).
# Output: a Markdown report on stdout, saved to target/bench/latest.md; raw
# loadgen JSON per run in target/bench/runs/, service logs in target/bench/logs/.
set -euo pipefail
shopt -s nullglob
cd "$(dirname "$0")/.."
root=$(pwd)

D=${BENCH_DURATION:-5}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNS:-"8 64 256"}
RATE=${BENCH_RATE:-5000}
CHUNKS=${BENCH_CHUNKS:-20}
CHUNK_DELAY_MS=${BENCH_CHUNK_DELAY_MS:-5}
OPEN_STREAMS=${BENCH_OPEN_STREAMS:-1000}
LOG=${BENCH_RUST_LOG:-info}
BUILD=${BENCH_BUILD:-1}
USE_WRK=${BENCH_WRK:-1}
NOTE=${BENCH_NOTE:-}
# How often the gateway flushes its counters to Redis (the accounting check waits for it).
FLUSH=${BENCH_FLUSH:-1s}

out=${BENCH_OUT:-$root/target/bench}
runs=$out/runs
# The measuring instruments (loadgen, the mock) always come from this build;
# the services under test from BENCH_BIN.
bin=$root/target/release
svc=${BENCH_BIN:-$bin}
say() { printf '==> %s\n' "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

# --- Tools --------------------------------------------------------------------
need=()
for t in redis-server redis-cli jq curl; do command -v "$t" >/dev/null || need+=("$t"); done
# The reference proxy and the second load generator, unless left out: installed
# when that is possible, else the run goes on without them.
can_install=0; [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && can_install=1
if [ "$can_install" = 1 ]; then
  [ "${BENCH_NGINX:-1}" = 1 ] && ! command -v nginx >/dev/null && need+=(nginx)
  [ "$USE_WRK" = 1 ] && ! command -v wrk >/dev/null && need+=(wrk)
fi
if [ ${#need[@]} -gt 0 ]; then
  pkgs=$(printf '%s\n' "${need[@]}" | sed 's/redis-cli/redis-tools/' | sort -u | tr '\n' ' ')
  if [ "$can_install" = 1 ]; then
    say "installing $pkgs"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs >/dev/null
  else
    die "missing tools: $pkgs"
  fi
fi
have_nginx=0; [ "${BENCH_NGINX:-1}" = 1 ] && command -v nginx >/dev/null && have_nginx=1
have_wrk=0; [ "$USE_WRK" = 1 ] && command -v wrk >/dev/null && have_wrk=1

if [ "$BUILD" = 1 ]; then
  say "release build"
  cargo build --release -q --workspace --bins
  # scripts/bench-tokens.sh builds its bench itself; building it
  # here keeps compilation out of the measured part.
  if [ -x scripts/bench-tokens.sh ]; then
    cargo bench -q -p token-service --bench tokens --no-run 2>/dev/null || true
  fi
fi
build_s=$SECONDS
for b in mock-upstream loadgen; do
  [ -x "$bin/$b" ] || die "$bin/$b is missing (run with BENCH_BUILD=1)"
done
for b in gateway config-center token-service; do
  [ -x "$svc/$b" ] || die "$svc/$b is missing (run with BENCH_BUILD=1, or check BENCH_BIN)"
done

# BENCH_BEFORE=DIR: the earlier build's run comes first, with the same
# settings, into $out/before; its summary is read by this run's report.
before_summary=""
if [ -n "${BENCH_BEFORE:-}" ]; then
  for b in gateway config-center token-service; do
    [ -x "$BENCH_BEFORE/$b" ] || die "BENCH_BEFORE: $BENCH_BEFORE/$b is missing"
  done
  say "the earlier build ($BENCH_BEFORE) first"
  BENCH_BIN="$BENCH_BEFORE" BENCH_BEFORE="" BENCH_OUT="$out/before" BENCH_BUILD=0 BENCH_TOKENS=0 \
    BENCH_NOTE="earlier build: $BENCH_BEFORE" "$0" >/dev/null || die "the run of the earlier build failed"
  before_summary=$out/before/summary.json
fi

# --- Process bookkeeping --------------------------------------------------------
work=$(mktemp -d /tmp/aigw-bench.XXXXXX)
pids=()
cleanup() {
  local code=$?
  trap - EXIT INT TERM
  # Newest first, so the services can still flush to Redis as they stop;
  # CONT first, since a paused (SIGSTOPped) service would not see the TERM.
  local i p
  for (( i = ${#pids[@]} - 1; i >= 0; i-- )); do
    p=${pids[i]}
    kill -CONT "$p" 2>/dev/null || true
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  mkdir -p "$out/logs"
  cp "$work"/*.log "$out/logs/" 2>/dev/null || true
  [ -f "$work/nginx/error.log" ] && cp "$work/nginx/error.log" "$out/logs/nginx.log"
  rm -rf "$work"
  [ "$code" = 0 ] || say "exit $code; service logs are in target/bench/logs/"
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# `start NAME CMD...`: runs CMD in the background, logging to $work/NAME.log.
start() {
  local name=$1; shift
  "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
  last_pid=$!
}

# free_port, wait_http, rss_mib: shared with the gateway's bench scripts.
# shellcheck source=services/gateway/benches/common.sh
. "$root/services/gateway/benches/common.sh"

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
rm -rf "$runs"; mkdir -p "$runs"
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)

# --- Services ---------------------------------------------------------------------
redis_port=$(free_port)
start redis redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$work" --daemonize no
redis_pid=$last_pid
redis_url="redis://127.0.0.1:$redis_port"
rcli() { redis-cli -p "$redis_port" "$@"; }
for _ in $(seq 50); do rcli ping >/dev/null 2>&1 && break; sleep 0.1; done
rcli ping >/dev/null || die "redis-server did not start"

mock_port=$(free_port)
start mock env MOCK_PORT="$mock_port" BIND_ADDR=127.0.0.1 MOCK_CHUNKS="$CHUNKS" RUST_LOG=warn \
  "$bin/mock-upstream"
mock_pid=$last_pid
wait_http "http://127.0.0.1:$mock_port/health" || die "mock-upstream did not start"

admin=bench-admin-$RANDOM$RANDOM
cc_port=$(free_port)
start config-center env CONFIG_CENTER_PORT="$cc_port" BIND_ADDR=127.0.0.1 \
  DATABASE_URL="sqlite://$work/cc.db" ADMIN_TOKEN="$admin" REDIS_URL="$redis_url" RUST_LOG="$LOG" \
  "$svc/config-center"
cc_pid=$last_pid
wait_http "http://127.0.0.1:$cc_port/health" || die "config-center did not start"

api() { # METHOD PATH JSON → response body; fails on a non-2xx answer
  local res code
  res=$(curl -sS -X "$1" "http://127.0.0.1:$cc_port/api/v1$2" -H "Authorization: Bearer $admin" \
    -H 'Content-Type: application/json' -d "$3" -w '\n%{http_code}')
  code=${res##*$'\n'}
  [ "${code:0:1}" = 2 ] || die "config-center $1 $2 answered $code: ${res%$'\n'*}"
  printf '%s' "${res%$'\n'*}"
}
say "seeding the config-center"
model=gpt-4o-mini
api POST /models "{\"name\":\"$model\",\"encoding\":\"o200k_base\",\"input_price_per_1m\":\"0.15\",\"output_price_per_1m\":\"0.60\"}" >/dev/null
api POST /namespaces '{"code":"bench-open","name":"Bench, no limits"}' >/dev/null
api POST /namespaces '{"code":"bench-limited","name":"Bench, high limits","limits":{"rpm":100000000,"tpm":100000000000}}' >/dev/null
api POST /namespaces '{"code":"bench-capped","name":"Bench, high limits and fleet-wide concurrency","limits":{"rpm":100000000,"tpm":100000000000,"max_concurrency":100000}}' >/dev/null
for ns in bench-open bench-limited bench-capped; do
  api POST /instances "{\"id\":\"mock-$ns\",\"namespace_code\":\"$ns\",\"model\":\"$model\",\"base_url\":\"http://127.0.0.1:$mock_port/v1\",\"upstream_model\":\"$model\",\"api_key\":\"sk-upstream-bench\",\"timeout_ms\":60000}" >/dev/null
done
key_open=$(api POST /namespaces/bench-open/api-keys '{"name":"bench"}' | jq -r .key)
key_limited=$(api POST /namespaces/bench-limited/api-keys '{"name":"bench"}' | jq -r .key)
key_capped=$(api POST /namespaces/bench-capped/api-keys '{"name":"bench"}' | jq -r .key)
[ -n "$key_open" ] && [ "$key_open" != null ] || die "no API key in the config-center's answer"

ts_port=$(free_port)
start token-service env TOKEN_SERVICE_PORT="$ts_port" BIND_ADDR=127.0.0.1 REDIS_URL="$redis_url" \
  RUST_LOG="$LOG" "$svc/token-service"
ts_pid=$last_pid
wait_http "http://127.0.0.1:$ts_port/health" || die "token-service did not start"

gw_port=$(free_port)
start gateway env GATEWAY_PORT="$gw_port" BIND_ADDR=127.0.0.1 REDIS_URL="$redis_url" \
  METRICS_FLUSH_INTERVAL="$FLUSH" JOURNAL_DIR="$work/journal" RUST_LOG="$LOG" "$svc/gateway"
gw_pid=$last_pid
wait_http "http://127.0.0.1:$gw_port/ready" 30 || die "gateway not ready"

if [ "$have_nginx" = 1 ]; then
  ng_port=$(free_port)
  mkdir -p "$work/nginx/tmp"
  user_line=""; [ "$(id -u)" = 0 ] && user_line="user root;"
  cat >"$work/nginx/nginx.conf" <<EOF
# Reference proxy: one proxy_pass hop with a keep-alive upstream pool,
# as many workers as the gateway has (one per core).
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
      # Streams pass through chunk by chunk, as through the gateway.
      proxy_buffering off;
    }
  }
}
EOF
  start nginx nginx -p "$work/nginx" -e "$work/nginx/error.log" -c "$work/nginx/nginx.conf" -g 'daemon off;'
  ng_pid=$last_pid
  wait_http "http://127.0.0.1:$ng_port/health" || die "nginx did not start"
  ng_workers=$(ps -o pid= --ppid "$ng_pid" | tr -d ' ' | paste -sd, -)
  [ -n "$ng_workers" ] || die "no nginx workers found"
fi

# --- Requests ----------------------------------------------------------------------
body='{"model":"'$model'","messages":[{"role":"system","content":"You are a terse assistant."},{"role":"user","content":"Say hello to the benchmark in a few words."}]}'
stream_body=${body%\}}',"stream":true}'
slow_body=${body%\}}',"stream":true,"mock":{"chunk_delay_ms":'$CHUNK_DELAY_MS'}}'
hold_body=${body%\}}',"stream":true,"mock":{"chunk_delay_ms":100}}'
printf '%s' "$body" >"$work/body.json"
printf '%s' "$stream_body" >"$work/stream.json"
printf '%s' "$slow_body" >"$work/slow.json"
printf '%s' "$hold_body" >"$work/hold.json"

declare -A url
url[direct]="http://127.0.0.1:$mock_port/v1/chat/completions"
url[gateway]="http://127.0.0.1:$gw_port/v1/chat/completions"
url[limited]="http://127.0.0.1:$gw_port/v1/chat/completions"
url[capped]="http://127.0.0.1:$gw_port/v1/chat/completions"
[ "$have_nginx" = 1 ] && url[nginx]="http://127.0.0.1:$ng_port/v1/chat/completions"
targets="direct"; [ "$have_nginx" = 1 ] && targets+=" nginx"; targets+=" gateway"

# The gateway must route before anything is measured (the snapshot may still be on its way).
probe() {
  curl -sS -o /dev/null -w '%{http_code}' "${url[gateway]}" -H "Authorization: Bearer $1" \
    -H 'Content-Type: application/json' -d "$body" 2>/dev/null || true
}
for _ in $(seq 100); do [ "$(probe "$key_open")" = 200 ] && [ "$(probe "$key_limited")" = 200 ] && [ "$(probe "$key_capped")" = 200 ] && break; sleep 0.2; done
[ "$(probe "$key_open")" = 200 ] || die "the gateway does not route the benchmark key (see target/bench/logs/gateway.log)"

# BENCH_SETUP_ONLY=1: leave the stack up for profiling by hand until interrupted.
if [ "${BENCH_SETUP_ONLY:-0}" = 1 ]; then
  {
    echo "# Written by scripts/bench.sh (BENCH_SETUP_ONLY=1); valid while it runs."
    echo "DIRECT_URL=${url[direct]}"
    echo "NGINX_URL=${url[nginx]:-}"
    echo "GATEWAY_URL=${url[gateway]}"
    echo "KEY_OPEN=$key_open"
    echo "KEY_LIMITED=$key_limited"
    echo "KEY_CAPPED=$key_capped"
    echo "GATEWAY_PID=$gw_pid"
    echo "NGINX_WORKERS=${ng_workers:-}"
    echo "MOCK_PID=$mock_pid"
    echo "REDIS_PORT=$redis_port"
    echo "TOKEN_SERVICE_PID=$ts_pid"
    echo "TOKEN_SERVICE_URL=http://127.0.0.1:$ts_port"
    echo "BODY=$work/body.json"
    echo "STREAM_BODY=$work/stream.json"
    echo "SLOW_BODY=$work/slow.json"
  } >"$out/env.sh"
  say "stack is up; variables in target/bench/env.sh; Ctrl-C (or SIGTERM) stops it"
  while :; do sleep 1; done
fi

usage_backlog() { # → "lag pending" of the token-service's consumer group
  rcli --raw XINFO GROUPS usage:stream 2>/dev/null \
    | awk 'prev == "lag" {l += $0} prev == "pending" {p += $0} {prev = $0} END {print l + 0, p + 0}'
}
# Every run starts with the accounting pipeline idle: the token-service has
# applied the usage records of earlier runs (up to 30 s), so their work does
# not land in the next target's measurement.
ts_paused=0
settle() {
  [ "$ts_paused" = 1 ] && return 0
  local i
  for i in $(seq 300); do
    [ "$(usage_backlog)" = "0 0" ] && return 0
    sleep 0.1
  done
  say "warning: usage stream not drained before the next run ($(usage_backlog))"
}

# `lg NAME TARGET ARGS...`: one loadgen run, JSON in $runs/NAME.json.
lg() {
  local name=$1 target=$2; shift 2
  settle
  local extra=() watch=()
  case $target in
    gateway) extra=(-H "Authorization: Bearer $key_open"); watch=(--watch "gateway=$gw_pid" --watch "redis=$redis_pid" --watch "token-service=$ts_pid") ;;
    limited) extra=(-H "Authorization: Bearer $key_limited"); watch=(--watch "gateway=$gw_pid" --watch "redis=$redis_pid" --watch "token-service=$ts_pid") ;;
    capped) extra=(-H "Authorization: Bearer $key_capped"); watch=(--watch "gateway=$gw_pid" --watch "redis=$redis_pid" --watch "token-service=$ts_pid") ;;
    nginx) watch=(--watch "nginx=$ng_workers") ;;
  esac
  watch+=(--watch "mock=$mock_pid")
  "$bin/loadgen" -q -t 2 --json "$runs/$name.json" "${extra[@]}" "${watch[@]}" "$@" "${url[$target]}" \
    || die "loadgen $name"
  local errs; errs=$(jq .errors "$runs/$name.json")
  [ "$errs" = 0 ] || say "warning: $name had $errs errors: $(jq -c '{status,transport_errors}' "$runs/$name.json")"
  case $target in gateway | limited | capped) account "$name" ;; esac
}

# --- Accounting exactness and Redis commands ------------------------------------------
# After each gateway run, metrics:global:total_requests must have grown by
# exactly the number of responses the load generator got. The counters are
# flushed every $FLUSH; we wait up to 10 s for them to settle.
gw_counter() { local v; v=$(rcli --raw GET metrics:global:total_requests); echo "${v:-0}"; }
cmdstats() { # → "command calls" lines, without INFO itself
  rcli INFO commandstats | tr -d '\r' | sed -n 's/^cmdstat_\([^:]*\):calls=\([0-9]*\),.*/\1 \2/p' | grep -v '^info \|^xinfo|groups '
}
sleep 2
gw_expected=$(gw_counter)
acct_runs=0; acct_bad=""
our_gets=0
account() {
  local name=$1 got i
  gw_expected=$(( gw_expected + $(jq .requests "$runs/$name.json") ))
  for i in $(seq 100); do
    got=$(gw_counter); our_gets=$((our_gets + 1))
    [ "$got" = "$gw_expected" ] && break
    sleep 0.1
  done
  acct_runs=$((acct_runs + 1))
  if [ "$got" != "$gw_expected" ]; then
    acct_bad+="$name: counter $got, expected $gw_expected; "
    gw_expected=$got  # so one miss does not fail every later run
  fi
  echo "$got $gw_expected" >"$runs/$name.acct"
}
# CPU ticks (utime+stime, 1/100 s) a process has spent so far.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Redis commands issued between cmds_before and `cmds_after NAME` (ours
# subtracted), and the CPU ticks Redis and the token-service spent meanwhile:
# NAME.cmds, NAME.ticks ("redis token-service"). cmds_after first waits until
# the token-service has applied every usage record (settle), so a run's
# accounting lands in its own figures.
cmds_before() { cmdstats >"$work/cmd.before"; our_gets=0; echo "$(ticks "$redis_pid") $(ticks "$ts_pid")" >"$work/ticks.before"; }
cmds_after() { # NAME
  settle
  read -r rb tb <"$work/ticks.before"
  echo "$(( $(ticks "$redis_pid") - rb )) $(( $(ticks "$ts_pid") - tb ))" >"$runs/$1.ticks"
  cmdstats >"$work/cmd.after"
  awk -v ours="$our_gets" 'NR==FNR {b[$1]=$2; next} {d=$2-b[$1]; if ($1=="get") d-=ours; if (d>0) print $1, d}' \
    "$work/cmd.before" "$work/cmd.after" | sort -k2 -nr >"$runs/$1.cmds"
}

# --- Idle figures -----------------------------------------------------------------------
gw_rss_idle=$(rss_mib "$gw_pid")
cmds_before; sleep 5; cmds_after idle
idle_cmds_per_s=$(awk '{s+=$2} END {printf "%.1f", s/5}' "$runs/idle.cmds")

# --- Measurements, interleaved ---------------------------------------------------------
say "warm-up"
for t in $targets; do lg "warmup-$t" "$t" -c 64 -d 1 --body-file "$work/body.json"; done

for r in $(seq "$ROUNDS"); do
  say "round $r/$ROUNDS: non-streaming, closed loop"
  for c in $CONNS; do
    for t in $targets; do
      if [ "$t" = gateway ]; then cmds_before; fi
      lg "chat-c$c-$t-r$r" "$t" -c "$c" -d "$D" --body-file "$work/body.json"
      if [ "$t" = gateway ]; then cmds_after "chat-c$c-$t-r$r"; fi
    done
  done
  for t in limited capped; do
    cmds_before
    lg "chat-c64-$t-r$r" "$t" -c 64 -d "$D" --body-file "$work/body.json"
    cmds_after "chat-c64-$t-r$r"
  done
  if [ "$have_wrk" = 1 ]; then
    for t in direct gateway; do
      hdr=()
      if [ "$t" = gateway ]; then hdr=(-H "Authorization: Bearer $key_open"); fi
      cat >"$work/wrk.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$work/body.json"); wrk.body = f:read("*a"); f:close()
EOF
      wrk -t2 -c64 -d"${D}s" --latency -s "$work/wrk.lua" "${hdr[@]}" "${url[$t]}" >"$runs/wrk-c64-$t-r$r.txt" 2>&1 || true
    done
    # wrk cuts requests at the deadline, so the counter is re-based, not checked.
    sleep 2; gw_expected=$(gw_counter)
  fi

  say "round $r/$ROUNDS: open loop at $RATE req/s"
  for t in $targets; do
    lg "open-$t-r$r" "$t" -R "$RATE" -d "$D" -c 64 --body-file "$work/body.json"
  done
  # Once more with the accounting pipeline (Redis, the token-service and the
  # config-center's ledger writer) at idle CPU priority: its work comes in
  # bursts (a batch per gateway flush) that, on a shared 2-core machine,
  # delay whatever else runs. This run shows the gateway's own added
  # latency, as on a host where the accounting pipeline has its own cores.
  if command -v chrt >/dev/null && chrt -i -a -p 0 "$ts_pid" >/dev/null 2>&1 \
    && chrt -i -a -p 0 "$redis_pid" >/dev/null 2>&1 && chrt -i -a -p 0 "$cc_pid" >/dev/null 2>&1; then
    lg "openq-gateway-r$r" gateway -R "$RATE" -d "$D" -c 64 --body-file "$work/body.json"
  fi
  for p in "$ts_pid" "$redis_pid" "$cc_pid"; do chrt -o -a -p 0 "$p" >/dev/null 2>&1 || true; done

  say "round $r/$ROUNDS: streaming ($CHUNKS chunks)"
  for t in $targets; do
    lg "stream-$t-r$r" "$t" -c 64 -d "$D" --stream --body-file "$work/stream.json"
  done
  for t in $targets; do
    lg "slow-$t-r$r" "$t" -c 64 -d "$D" --stream --body-file "$work/slow.json"
  done
done

# The gateway's own Redis traffic: with the token-service paused (SIGSTOP),
# only the gateway (and the config-center's rare polls) talk to Redis.
say "Redis commands of the gateway alone (token-service paused)"
settle  # the backlog it applies afterwards is then the paused runs' alone
ts_paused=1
kill -STOP "$ts_pid"
cmds_before; sleep 5; cmds_after idle-alone
idle_alone_per_s=$(awk '{s+=$2} END {printf "%.1f", s/5}' "$runs/idle-alone.cmds")
for kind in gateway limited capped; do
  cmds_before
  lg "alone-$kind-r1" "$kind" -c 64 -d "$D" --body-file "$work/body.json"
  cmds_after "alone-$kind-r1"
done
# The token-service alone: it resumes and applies the paused runs' backlog
# while nothing else runs; its CPU and Redis commands ÷ the records applied.
drain_records=$(jq -s 'map(.requests) | add' "$runs"/alone-*-r1.json)
cmds_before
kill -CONT "$ts_pid"
ts_paused=0
caught_up=0
for _ in $(seq 600); do
  if [ "$(usage_backlog)" = "0 0" ]; then caught_up=1; break; fi
  sleep 0.1
done
[ "$caught_up" = 1 ] || say "warning: the token-service did not drain the usage stream within 60 s ($(usage_backlog))"
cmds_after drain

say "$OPEN_STREAMS open streams"
lg "hold-gateway" gateway -c "$OPEN_STREAMS" -d 3 --timeout 60s --stream --body-file "$work/hold.json"
sleep 2
gw_rss_after=$(rss_mib "$gw_pid")

# --- Token counting -----------------------------------------------------------------------
tokens_md=""
if [ "${BENCH_TOKENS:-1}" = 1 ] && [ -x scripts/bench-tokens.sh ]; then
  say "token counting (scripts/bench-tokens.sh)"
  # It starts its own token-service and Redis; its headings move under ours.
  if ! tokens_md=$(scripts/bench-tokens.sh 2>"$work/bench-tokens.log" | sed 's/^#/###/'); then
    tokens_md=$(printf '**scripts/bench-tokens.sh failed**; the end of its log:\n\n```\n%s\n```' \
      "$(tail -15 "$work/bench-tokens.log")")
  fi
fi

# --- Report ---------------------------------------------------------------------------------
# Median over rounds of a jq expression on runs matching NAME-r*.json.
med() { # NAME JQ
  local files=("$runs/$1"-r*.json)
  [ ${#files[@]} -gt 0 ] || { echo "n/a"; return; }
  jq -s "[.[] | $2] | sort | .[(length - 1) / 2 | floor]" "${files[@]}"
}
tot() { # NAME JQ: sum over rounds
  local files=("$runs/$1"-r*.json)
  [ ${#files[@]} -gt 0 ] || { echo "n/a"; return; }
  jq -s "map($2) | add" "${files[@]}"
}
watch_cpu() { echo ".watch[] | select(.name == \"$1\") | .cpu_us_per_request"; }
f() { awk -v v="$1" -v d="${2:-2}" 'BEGIN { if (v == "n/a" || v == "") print "n/a"; else printf "%.*f", d, v }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || b == 0) print "n/a"; else printf "%.2f", a / b }'; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a") print "n/a"; else printf "%.3f", a - b }'; }
proxy_of() { case $1 in direct) echo mock ;; nginx) echo nginx ;; *) echo gateway ;; esac; }
wrk_rps() { awk '/Requests\/sec/ {print $2}' "$1" 2>/dev/null || echo n/a; }
wrk_lat() { awk -v q="$2" '$1 == q { v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) sub(/ms/,"",v); else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v }' "$1" 2>/dev/null; }

# Commands ÷ requests over runs NAME-r*.cmds / NAME-r*.json (or NAME.cmds ÷ N).
per_req() { # NAME
  local cmdfiles=("$runs/$1"-r*.cmds) jsonfiles=("$runs/$1"-r*.json)
  [ ${#cmdfiles[@]} -gt 0 ] && [ ${#jsonfiles[@]} -gt 0 ] || { echo n/a; return; }
  awk -v c="$(cat "${cmdfiles[@]}" | awk '{s+=$2} END {print s+0}')" -v r="$(jq -s 'map(.requests) | add' "${jsonfiles[@]}")" \
    'BEGIN {printf "%.4f", (r ? c / r : 0)}'
}
# CPU µs per request of Redis (column 1) or the token-service (column 2)
# over runs NAME-r*, from the run's start until its records were applied.
ticks_per_req() { # NAME COLUMN
  local tf=("$runs/$1"-r*.ticks) jsonfiles=("$runs/$1"-r*.json)
  [ ${#tf[@]} -gt 0 ] || { echo n/a; return; }
  awk -v t="$(cat "${tf[@]}" | awk -v c="$2" '{s+=$c} END {print s+0}')" -v r="$(jq -s 'map(.requests) | add' "${jsonfiles[@]}")" \
    'BEGIN {printf "%.2f", (r ? t * 10000 / r : 0)}'
}
gw_cpu=$(med chat-c64-gateway "$(watch_cpu gateway)")
lim_cpu=$(med chat-c64-limited "$(watch_cpu gateway)")
cap_cpu=$(med chat-c64-capped "$(watch_cpu gateway)")
ng_cpu=$(med chat-c64-nginx "$(watch_cpu nginx)")
gw_scpu=$(med stream-gateway "$(watch_cpu gateway)")
ng_scpu=$(med stream-nginx "$(watch_cpu nginx)")
ng_rps=$(med chat-c64-nginx .rps)
gw_rps=$(med chat-c64-gateway .rps)
lim_rps=$(med chat-c64-limited .rps)
cap_rps=$(med chat-c64-capped .rps)
d50=$(med open-direct .latency_ms.p50); d99=$(med open-direct .latency_ms.p99)
a50=$(sub "$(med open-gateway .latency_ms.p50)" "$d50"); a99=$(sub "$(med open-gateway .latency_ms.p99)" "$d99")
alone_open=$(per_req alone-gateway); alone_lim=$(per_req alone-limited); alone_cap=$(per_req alone-capped)
pipe_open=$(per_req chat-c64-gateway)
ts_us=$(ticks_per_req chat-c64-gateway 2); redis_us=$(ticks_per_req chat-c64-gateway 1)
drain_cmds=$(awk '{s+=$2} END {print s+0}' "$runs/drain.cmds")
read -r drain_redis_t drain_ts_t <"$runs/drain.ticks"
drain_ts_us=$(awk -v t="$drain_ts_t" -v n="$drain_records" 'BEGIN {printf "%.2f", (n ? t * 10000 / n : 0)}')
drain_redis_us=$(awk -v t="$drain_redis_t" -v n="$drain_records" 'BEGIN {printf "%.2f", (n ? t * 10000 / n : 0)}')
drain_per=$(awk -v c="$drain_cmds" -v n="$drain_records" 'BEGIN {printf "%.4f", (n ? c / n : 0)}')
hold=$runs/hold-gateway.json
hold_rss=$(jq '.watch[] | select(.name == "gateway") | .rss_max_mib * 10 | round / 10' "$hold")
acct_ok=1; [ -z "$acct_bad" ] || acct_ok=0

# The figures of the issue-18 targets, for a later run's before/after table.
jq -n --arg commit "$(git rev-parse --short HEAD 2>/dev/null || echo '?')" --arg bin "$svc" \
  --arg gw_cpu "$gw_cpu" --arg lim_cpu "$lim_cpu" --arg cap_cpu "$cap_cpu" --arg ng_cpu "$ng_cpu" \
  --arg gw_scpu "$gw_scpu" --arg ng_scpu "$ng_scpu" --arg gw_rps "$gw_rps" --arg lim_rps "$lim_rps" \
  --arg cap_rps "$cap_rps" --arg ng_rps "$ng_rps" --arg a50 "$a50" --arg a99 "$a99" \
  --arg alone_open "$alone_open" --arg alone_lim "$alone_lim" --arg alone_cap "$alone_cap" \
  --arg pipe_open "$pipe_open" --arg ts_us "$ts_us" --arg redis_us "$redis_us" \
  --arg drain_ts_us "$drain_ts_us" --arg drain_per "$drain_per" --arg rss_idle "$gw_rss_idle" \
  --arg rss_hold "$hold_rss" --arg rss_after "$gw_rss_after" --arg acct_ok "$acct_ok" --arg acct_runs "$acct_runs" \
  '$ARGS.named' >"$out/summary.json"

cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
{
  echo "# Benchmark: gateway vs direct vs nginx"
  echo
  if [ -n "$NOTE" ]; then echo "**$NOTE**"; echo; fi
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (+ local changes)')"
  echo "- machine: $(nproc) cores, $cpu_model, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r); load average at start: $load_at_start"
  echo "- command: \`BENCH_DURATION=$D BENCH_ROUNDS=$ROUNDS BENCH_CONNS=\"$CONNS\" BENCH_RATE=$RATE BENCH_CHUNKS=$CHUNKS BENCH_RUST_LOG=$LOG scripts/bench.sh\`"
  echo "- load generator: \`loadgen\` (tools/loadgen), 2 threads, keep-alive; services, proxy, mock and load generator share the cores, all on loopback. Medians of $ROUNDS interleaved rounds of ${D} s."
  echo "- time: $(( SECONDS - build_s )) s of measurement after $build_s s of build."
  if [ "$have_nginx" = 1 ]; then
    ng_line="nginx $(nginx -v 2>&1 | sed 's/.*nginx\///') with $(nproc) workers and a keep-alive upstream pool"
  else
    ng_line="nginx not used (not installed, or BENCH_NGINX=0)"
  fi
  echo "- gateway: RUST_LOG=$LOG, metrics flushed every $FLUSH; $ng_line."
  echo
  echo "## 1. Non-streaming chat, closed loop"
  echo
  echo "| conns | target | req/s | p50 ms | p99 ms | proxy CPU µs/req | gateway ÷ nginx req/s | errors (all rounds) |"
  echo "|---|---|---|---|---|---|---|---|"
  for c in $CONNS; do
    ng_rps=$(med "chat-c$c-nginx" .rps)
    for t in $targets; do
      rps=$(med "chat-c$c-$t" .rps)
      cpu=$(med "chat-c$c-$t" "$(watch_cpu "$(proxy_of "$t")")")
      rr=""; [ "$t" = gateway ] && rr=$(ratio "$rps" "$ng_rps")
      echo "| $c | $t | $(f "$rps" 0) | $(f "$(med "chat-c$c-$t" .latency_ms.p50)" 3) | $(f "$(med "chat-c$c-$t" .latency_ms.p99)" 3) | $(f "$cpu" 1) | $rr | $(tot "chat-c$c-$t" .errors) |"
    done
  done
  echo "| 64 | gateway, namespace with RPM/TPM limits | $(f "$lim_rps" 0) | $(f "$(med chat-c64-limited .latency_ms.p50)" 3) | $(f "$(med chat-c64-limited .latency_ms.p99)" 3) | $(f "$lim_cpu" 1) | $(ratio "$lim_rps" "$ng_rps") | $(tot chat-c64-limited .errors) |"
  echo "| 64 | gateway, namespace with RPM/TPM limits and fleet-wide \`max_concurrency\` | $(f "$cap_rps" 0) | $(f "$(med chat-c64-capped .latency_ms.p50)" 3) | $(f "$(med chat-c64-capped .latency_ms.p99)" 3) | $(f "$cap_cpu" 1) | $(ratio "$cap_rps" "$ng_rps") | $(tot chat-c64-capped .errors) |"
  echo
  echo "\"proxy CPU\" is the CPU time of the hop itself (the mock for \"direct\", nginx's workers, the gateway process) over the run ÷ responses, from /proc/<pid>/stat."
  echo "Accounting costs outside the gateway, per gateway request at 64 connections (no limits, all rounds, from each run's start until the token-service had applied its records): Redis $redis_us µs, token-service $ts_us µs. The token-service alone, applying a backlog of $drain_records records while nothing else ran: $drain_ts_us µs of its CPU, $drain_redis_us µs of Redis' and $drain_per Redis commands per record."
  if [ "$have_wrk" = 1 ]; then
    echo
    echo "Cross-check with \`wrk -t2 -c64\` (round 1): direct $(f "$(wrk_rps "$runs/wrk-c64-direct-r1.txt")" 0) req/s (p50 $(wrk_lat "$runs/wrk-c64-direct-r1.txt" 50%) ms), gateway $(f "$(wrk_rps "$runs/wrk-c64-gateway-r1.txt")" 0) req/s (p50 $(wrk_lat "$runs/wrk-c64-gateway-r1.txt" 50%) ms)."
  fi
  echo
  echo "## Fixed offered load: $RATE req/s (open loop, 64 connections)"
  echo
  echo "Latency counts from each request's intended send time (no coordinated omission)."
  echo
  echo "| target | p50 ms | p99 ms | added p50 ms | added p99 ms | proxy CPU µs/req | load generator's own lag, p99 ms |"
  echo "|---|---|---|---|---|---|---|"
  for t in $targets; do
    p50=$(med "open-$t" .latency_ms.p50); p99=$(med "open-$t" .latency_ms.p99)
    a50=""; a99=""; [ "$t" != direct ] && { a50=$(sub "$p50" "$d50"); a99=$(sub "$p99" "$d99"); }
    echo "| $t | $(f "$p50" 3) | $(f "$p99" 3) | $a50 | $a99 | $(f "$(med "open-$t" "$(watch_cpu "$(proxy_of "$t")")")" 1) | $(f "$(med "open-$t" .dispatch_lag_ms.p99)" 3) |"
  done
  q50=$(med openq-gateway .latency_ms.p50); q99=$(med openq-gateway .latency_ms.p99)
  if [ "$q50" != n/a ]; then
    echo "| gateway, Redis, token-service and config-center at idle CPU priority | $(f "$q50" 3) | $(f "$q99" 3) | $(sub "$q50" "$d50") | $(sub "$q99" "$d99") | $(f "$(med openq-gateway "$(watch_cpu gateway)")" 1) | $(f "$(med openq-gateway .dispatch_lag_ms.p99)" 3) |"
  fi
  echo
  echo "On this machine the load generator, the mock, the proxy, Redis, the token-service and the config-center share 2 cores. The accounting pipeline works in bursts (one batch of usage records per gateway flush: the token-service prices it, Redis applies it in one script call, the config-center's ledger writer stores its rows), and a burst delays whatever else is runnable on its core, which shows in the gateway's p99 (nginx's and direct runs make no accounting). The last row repeats the gateway run with Redis, the token-service and the config-center at idle CPU priority (\`chrt --idle\`), i.e. the gateway's own added latency, as on a host where the accounting pipeline has cores of its own."
  echo
  echo "The last column is the load generator's own lateness in sending (its pacer shares the cores too); latency counts from the intended send time, so that lateness is part of the row's p99."
  echo
  echo "## 2. Streaming chat ($CHUNKS chunks)"
  echo
  echo "| target | req/s (no chunk delay, 64 conns) | proxy CPU µs/req | proxy CPU µs/req, chunks ${CHUNK_DELAY_MS} ms apart | first event p50 ms | added | gap p50 ms | gap p99 ms | gap max ms | events/response | errors (all rounds) |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  dfe=$(med slow-direct .stream.first_event_ms.p50)
  for t in $targets; do
    fe=$(med "slow-$t" .stream.first_event_ms.p50)
    add=""; [ "$t" != direct ] && add=$(sub "$fe" "$dfe")
    echo "| $t | $(f "$(med "stream-$t" .rps)" 0) | $(f "$(med "stream-$t" "$(watch_cpu "$(proxy_of "$t")")")" 1) | $(f "$(med "slow-$t" "$(watch_cpu "$(proxy_of "$t")")")" 1) | $(f "$fe" 3) | $add | $(f "$(med "slow-$t" .stream.gap_ms.p50)" 3) | $(f "$(med "slow-$t" .stream.gap_ms.p99)" 3) | $(f "$(med "slow-$t" .stream.gap_ms.max)" 3) | $(med "slow-$t" .stream.events_min)–$(med "slow-$t" .stream.events_max) | $(tot "stream-$t" .errors) + $(tot "slow-$t" .errors) |"
  done
  echo
  echo "Throughput and the first CPU column: the mock sends its $CHUNKS chunks back to back. The rest: $CHUNK_DELAY_MS ms between chunks, as a model would, 64 connections; \"first event\" is the time from sending the request to the first complete SSE event, \"gap\" the time between consecutive events of one response."
  echo
  echo "## 3. Gateway memory"
  echo
  echo "| state | gateway RSS MiB |"
  echo "|---|---|"
  echo "| idle, after start | $gw_rss_idle |"
  echo "| $OPEN_STREAMS concurrent streams (max sampled every 100 ms) | $(jq '.watch[] | select(.name == "gateway") | .rss_max_mib * 10 | round / 10' "$hold") |"
  echo "| idle again, after all runs | $gw_rss_after |"
  echo
  echo "The $OPEN_STREAMS-stream run: $(jq -r '"\(.requests) streams, \(.errors) errors, \(.stream.incomplete) incomplete, first event p50 \(.stream.first_event_ms.p50 * 1000 | round / 1000) ms"' "$hold")."
  echo
  echo "## 4. Redis commands per proxied request"
  echo
  echo "| what talks to Redis | namespace | commands ÷ requests (64 conns) | idle commands/s | top commands |"
  echo "|---|---|---|---|---|"
  for scope in alone chat; do
    for kind in gateway limited capped; do
      case $kind in gateway) label="no limits" ;; limited) label="RPM/TPM limits" ;; *) label="RPM/TPM limits and \`max_concurrency\`" ;; esac
      who="gateway alone (token-service paused)"; idle=$idle_alone_per_s
      if [ "$scope" = chat ]; then who="whole pipeline (gateway + token-service), all rounds"; idle=$idle_cmds_per_s; fi
      name="$scope-$kind"; [ "$scope" = chat ] && name="chat-c64-$kind"
      cmdfiles=("$runs/$name"-r*.cmds); jsonfiles=("$runs/$name"-r*.json)
      [ ${#cmdfiles[@]} -gt 0 ] && [ ${#jsonfiles[@]} -gt 0 ] || continue
      cmds=$(cat "${cmdfiles[@]}" | awk '{s+=$2} END {print s+0}')
      reqs=$(jq -s 'map(.requests) | add' "${jsonfiles[@]}")
      top=$(cat "${cmdfiles[@]}" | awk '{a[$1]+=$2} END {for (k in a) print a[k], k}' | sort -nr | head -4 | awk '{printf "%s%s %s", (NR>1?", ":""), $2, $1}')
      echo "| $who | $label | $(awk -v c="$cmds" -v r="$reqs" 'BEGIN {printf "%.4f", (r ? c / r : 0)}') ($cmds ÷ $reqs) | $idle | $top |"
    done
  done
  echo
  echo "| token-service alone, applying the paused runs' backlog | all | $drain_per ($drain_cmds ÷ $drain_records records) | | $(awk '{print $2, $1}' "$runs/drain.cmds" | head -4 | awk '{printf "%s%s %s", (NR>1?", ":""), $2, $1}') |"
  echo
  echo "Counted with \`INFO commandstats\` deltas from before a run until its counters were flushed and the token-service had applied its records (commands inside Lua scripts count one by one, the script call once more); the benchmark's own INFO/GET calls are left out. The idle rate is not subtracted."
  echo
  echo "## 5. Token counting"
  echo
  if [ -n "$tokens_md" ]; then echo "$tokens_md"; else echo "Not measured (scripts/bench-tokens.sh absent, or BENCH_TOKENS=0)."; fi
  echo
  echo "## 6. Accounting exactness"
  echo
  if [ -z "$acct_bad" ]; then
    echo "After each of the $acct_runs gateway runs, \`metrics:global:total_requests\` grew by exactly the number of responses the load generator received: **exact**."
  else
    echo "**Mismatch**: $acct_bad(of $acct_runs gateway runs)."
  fi
  echo
  echo "## Targets (issue 7)"
  echo
  gw_pcpu=$(med slow-gateway "$(watch_cpu gateway)")
  rps_ratio=$(ratio "$(med chat-c64-gateway .rps)" "$(med chat-c64-nginx .rps)")
  qa50=n/a; qa99=n/a
  [ "$(med openq-gateway .latency_ms.p50)" != n/a ] && { qa50=$(sub "$(med openq-gateway .latency_ms.p50)" "$d50"); qa99=$(sub "$(med openq-gateway .latency_ms.p99)" "$d99"); }
  afe=$(sub "$(med slow-gateway .stream.first_event_ms.p50)" "$dfe")
  gap_add=$(sub "$(med slow-gateway .stream.gap_ms.p99)" "$(med slow-direct .stream.gap_ms.p99)")
  redis_per=$(awk -v c="$(awk '{s+=$2} END {print s+0}' "$runs/alone-gateway-r1.cmds")" -v r="$(jq .requests "$runs/alone-gateway-r1.json")" 'BEGIN {printf "%.4f", (r ? c / r : 0)}')
  ok() { awk -v v="$1" -v lim="$2" -v dir="$3" 'BEGIN { if (v == "n/a" || v == "") print "n/a"; else if ((dir == "le" && v+0 <= lim+0) || (dir == "ge" && v+0 >= lim+0)) print "met"; else print "**missed**" }'; }
  echo "| target | goal | measured | |"
  echo "|---|---|---|---|"
  echo "| gateway CPU per request, non-streaming (64 conns) | ≤ 40 µs and ≤ 2× nginx ($(f "$ng_cpu" 1) µs) | $(f "$gw_cpu" 1) µs ($(ratio "$gw_cpu" "$ng_cpu")× nginx) | $(ok "$gw_cpu" 40 le) |"
  ng_pcpu=$(med slow-nginx "$(watch_cpu nginx)")
  echo "| gateway CPU per request, streaming $CHUNKS chunks back to back | ≤ 40 µs and ≤ 2× nginx ($(f "$ng_scpu" 1) µs) | $(f "$gw_scpu" 1) µs ($(ratio "$gw_scpu" "$ng_scpu")× nginx) | $(ok "$gw_scpu" 40 le) |"
  echo "| gateway CPU per request, streaming $CHUNKS chunks ${CHUNK_DELAY_MS} ms apart (each event is its own read and write, for every proxy) | ≤ 2× nginx ($(f "$ng_pcpu" 1) µs) | $(f "$gw_pcpu" 1) µs ($(ratio "$gw_pcpu" "$ng_pcpu")× nginx) | $(ok "$(ratio "$gw_pcpu" "$ng_pcpu")" 2 le) |"
  echo "| throughput vs nginx, 64 conns | ≥ 0.5× | $rps_ratio× | $(ok "$rps_ratio" 0.5 ge) |"
  echo "| throughput vs LiteLLM (232 req/s, issue 7) | ≥ 100× | $(ratio "$(med chat-c64-gateway .rps)" 232)× | $(ok "$(ratio "$(med chat-c64-gateway .rps)" 232)" 100 ge) |"
  echo "| added latency at $RATE req/s, p50 | ≤ 0.3 ms | $a50 ms | $(ok "$a50" 0.3 le) |"
  echo "| added latency at $RATE req/s, p99, accounting pipeline on the same 2 cores | ≤ 1 ms | $a99 ms | $(ok "$a99" 1 le) |"
  echo "| added latency at $RATE req/s, p99, accounting pipeline at idle CPU priority | ≤ 1 ms | $qa99 ms (p50 $qa50 ms) | $(ok "$qa99" 1 le) |"
  echo "| streaming: added time to first event | ≤ 0.5 ms | $afe ms | $(ok "$afe" 0.5 le) |"
  echo "| streaming: added chunk gap (p99 over direct) | scheduling only | $gap_add ms | $(ok "$gap_add" 1 le) |"
  echo "| Redis commands per request, no limits (gateway alone) | ≤ 0.05 | $redis_per | $(ok "$redis_per" 0.05 le) |"
  echo "| gateway RSS idle | ≤ 30 MiB | $gw_rss_idle MiB | $(ok "$gw_rss_idle" 30 le) |"
  echo "| gateway RSS with $OPEN_STREAMS streams | ≤ 150 MiB | $hold_rss MiB | $(ok "$hold_rss" 150 le) |"
  echo "| count API on 100 KB vs in-process | ≥ 80% | see section 5 | |"
  echo "| accounting exact after every run | equal | $( [ -z "$acct_bad" ] && echo "equal in $acct_runs runs" || echo "mismatch") | $( [ -z "$acct_bad" ] && echo met || echo '**missed**') |"
  echo
  echo "## Targets (issue 18: limited namespaces, accounting pipeline, hop, tail, memory)"
  echo
  lr=$(ratio "$lim_cpu" "$gw_cpu"); cr=$(ratio "$cap_cpu" "$gw_cpu")
  lq=$(ratio "$lim_rps" "$ng_rps"); cq=$(ratio "$cap_rps" "$ng_rps")
  hr=$(ratio "$gw_cpu" "$ng_cpu"); sr=$(ratio "$gw_scpu" "$ng_scpu")
  echo "| target | goal | measured | |"
  echo "|---|---|---|---|"
  echo "| Redis commands per request, RPM/TPM limits (gateway alone, 64 conns) | ≤ 0.2 | $alone_lim | $(ok "$alone_lim" 0.2 le) |"
  echo "| Redis commands per request, RPM/TPM + fleet-wide \`max_concurrency\` (gateway alone) | ≤ 0.2 | $alone_cap | $(ok "$alone_cap" 0.2 le) |"
  echo "| gateway CPU per request, RPM/TPM limits ÷ no limits | ≤ 1.15× | $(f "$lim_cpu" 1) ÷ $(f "$gw_cpu" 1) µs = ${lr}× | $(ok "$lr" 1.15 le) |"
  echo "| gateway CPU per request, RPM/TPM + \`max_concurrency\` ÷ no limits | ≤ 1.15× | $(f "$cap_cpu" 1) ÷ $(f "$gw_cpu" 1) µs = ${cr}× | $(ok "$cr" 1.15 le) |"
  echo "| req/s, RPM/TPM limits ÷ nginx (64 conns) | ≥ 0.55× | ${lq}× | $(ok "$lq" 0.55 ge) |"
  echo "| req/s, RPM/TPM + \`max_concurrency\` ÷ nginx (64 conns) | ≥ 0.55× | ${cq}× | $(ok "$cq" 0.55 ge) |"
  echo "| Redis commands per request, whole pipeline (no limits, all rounds) | ≤ 0.1 | $pipe_open | $(ok "$pipe_open" 0.1 le) |"
  echo "| token-service CPU per usage record (no limits, 64 conns, all rounds) | ≤ 2 µs | $ts_us µs (alone on a backlog: $drain_ts_us µs) | $(ok "$ts_us" 2 le) |"
  echo "| gateway CPU per request ÷ nginx, non-streaming (64 conns) | ≤ 1.3× | $(f "$gw_cpu" 1) ÷ $(f "$ng_cpu" 1) µs = ${hr}× | $(ok "$hr" 1.3 le) |"
  echo "| gateway CPU per request ÷ nginx, $CHUNKS chunks back to back | ≤ 1.2× | $(f "$gw_scpu" 1) ÷ $(f "$ng_scpu" 1) µs = ${sr}× | $(ok "$sr" 1.2 le) |"
  echo "| added p99 at $RATE req/s, accounting pipeline on the same cores, normal priority | ≤ 1 ms | $a99 ms | $(ok "$a99" 1 le) |"
  echo "| gateway RSS idle | ≤ 20 MiB | $gw_rss_idle MiB | $(ok "$gw_rss_idle" 20 le) |"
  echo "| gateway RSS with $OPEN_STREAMS open streams | ≤ 80 MiB | $hold_rss MiB | $(ok "$hold_rss" 80 le) |"
  echo "| accounting exact after every run | equal | $( [ "$acct_ok" = 1 ] && echo "equal in $acct_runs runs" || echo "mismatch") | $( [ "$acct_ok" = 1 ] && echo met || echo '**missed**') |"
  if [ -n "$before_summary" ] && [ -f "$before_summary" ]; then
    echo
    echo "## Before and after, same run"
    echo
    echo "The earlier build ($(jq -r .bin "$before_summary")) ran the same measurements first, in this run, against fresh services; loadgen and the mock are this build's in both."
    echo
    b() { jq -r ".$1" "$before_summary"; }
    row() { # LABEL BEFORE AFTER DIGITS
      echo "| $1 | $(f "$2" "$4") | $(f "$3" "$4") |"
    }
    echo "| figure | before | after |"
    echo "|---|---|---|"
    row "gateway CPU µs per request, no limits (64 conns)" "$(b gw_cpu)" "$gw_cpu" 1
    row "gateway CPU µs per request, RPM/TPM limits" "$(b lim_cpu)" "$lim_cpu" 1
    row "gateway CPU µs per request, RPM/TPM + \`max_concurrency\`" "$(b cap_cpu)" "$cap_cpu" 1
    row "gateway CPU µs per request, $CHUNKS-chunk stream" "$(b gw_scpu)" "$gw_scpu" 1
    row "nginx CPU µs per request, non-streaming (64 conns)" "$(b ng_cpu)" "$ng_cpu" 1
    row "req/s, no limits (64 conns)" "$(b gw_rps)" "$gw_rps" 0
    row "req/s, RPM/TPM limits" "$(b lim_rps)" "$lim_rps" 0
    row "req/s, RPM/TPM + \`max_concurrency\`" "$(b cap_rps)" "$cap_rps" 0
    row "Redis commands per request, RPM/TPM limits (gateway alone)" "$(b alone_lim)" "$alone_lim" 4
    row "Redis commands per request, RPM/TPM + \`max_concurrency\` (gateway alone)" "$(b alone_cap)" "$alone_cap" 4
    row "Redis commands per request, no limits (gateway alone)" "$(b alone_open)" "$alone_open" 4
    row "Redis commands per request, whole pipeline (no limits)" "$(b pipe_open)" "$pipe_open" 4
    row "token-service CPU µs per usage record" "$(b ts_us)" "$ts_us" 2
    row "token-service CPU µs per record, alone on a backlog" "$(b drain_ts_us)" "$drain_ts_us" 2
    row "Redis CPU µs per gateway request (no limits)" "$(b redis_us)" "$redis_us" 2
    row "added p50 ms at $RATE req/s" "$(b a50)" "$a50" 3
    echo "| added p99 ms at $RATE req/s | $(b a99) | $a99 |"
    row "gateway RSS MiB idle" "$(b rss_idle)" "$gw_rss_idle" 1
    row "gateway RSS MiB, $OPEN_STREAMS open streams" "$(b rss_hold)" "$hold_rss" 1
    echo "| accounting exact after every run | $( [ "$(b acct_ok)" = 1 ] && echo "equal in $(b acct_runs) runs" || echo mismatch) | $( [ "$acct_ok" = 1 ] && echo "equal in $acct_runs runs" || echo mismatch) |"
  fi
} | tee "$out/latest.md"
