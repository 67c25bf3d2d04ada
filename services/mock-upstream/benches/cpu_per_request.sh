#!/usr/bin/env bash
# Cost per request of mock-upstream binaries on the OpenAI path the
# benchmarks use (chat, whole and streamed):
# - default: CPU time, measured by the workspace's load generator watching
#   each mock process; the binaries run interleaved, round after round, so a
#   busy machine slows them alike; prints the medians;
# - CALLGRIND=1: instructions per request under valgrind's callgrind (one
#   worker, counted after a warm-up), which a busy machine does not skew.
#
# Usage: services/mock-upstream/benches/cpu_per_request.sh BIN [BIN...]
#   (e.g. a build of main and one of a branch; loadgen from target/release,
#   built when missing)
# Env: REQUESTS (20000; callgrind 1000), ROUNDS (5), CONNS (8), CHUNKS (5)
set -euo pipefail
cd "$(dirname "$0")/../../.."
REQUESTS=${REQUESTS:-20000}
ROUNDS=${ROUNDS:-5}
CONNS=${CONNS:-8}
CHUNKS=${CHUNKS:-5}
[ $# -ge 1 ] || { echo "usage: $0 BIN [BIN...]" >&2; exit 2; }
command -v jq >/dev/null || { echo "needs jq" >&2; exit 1; }
loadgen=target/release/loadgen
[ -x "$loadgen" ] || cargo build --release -q -p loadgen --locked

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 100); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }

body='{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a terse assistant."},{"role":"user","content":"Say hello to the benchmark in a few words."}]}'
printf '%s' "$body" >"$work/chat.json"
printf '%s' "${body%\}},\"stream\":true,\"stream_options\":{\"include_usage\":true}}" >"$work/stream.json"
auth="Authorization: Bearer sk-upstream-bench"

if [ "${CALLGRIND:-0}" = 1 ]; then
  command -v valgrind >/dev/null || { echo "needs valgrind" >&2; exit 1; }
  n=${REQUESTS:-1000}
  [ "$n" = 20000 ] && n=1000
  for bin in "$@"; do
    for m in chat stream; do
      p=$(free_port)
      MOCK_PORT=$p BIND_ADDR=127.0.0.1 MOCK_CHUNKS=$CHUNKS MOCK_WORKERS=1 RUST_LOG=warn \
        valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/cg.out" \
        "$bin" >"$work/cg.log" 2>&1 &
      vp=$!; pids+=($vp)
      wait_http "http://127.0.0.1:$p/health" || sleep 5
      args=(-q -t 1 -c 1 -H "$auth" --body-file "$work/$m.json")
      [ "$m" = stream ] && args+=(--stream)
      "$loadgen" "${args[@]}" -n 200 "http://127.0.0.1:$p/v1/chat/completions"
      callgrind_control -i on "$vp" >/dev/null
      "$loadgen" "${args[@]}" -n "$n" "http://127.0.0.1:$p/v1/chat/completions"
      callgrind_control -i off "$vp" >/dev/null
      kill -TERM "$vp"; wait "$vp" || true
      total=$(sed -n 's/^totals: //p' "$work/cg.out" | head -1)
      echo "$m $bin: $((total / n)) instructions/request"
      rm -f "$work/cg.out"
    done
  done
  exit 0
fi

declare -A port pid
names=()
i=0
for bin in "$@"; do
  i=$((i + 1)); name="m$i"; names+=("$name")
  port[$name]=$(free_port)
  MOCK_PORT=${port[$name]} BIND_ADDR=127.0.0.1 MOCK_CHUNKS=$CHUNKS MOCK_WORKERS=1 RUST_LOG=warn \
    "$bin" >"$work/$name.log" 2>&1 &
  pids+=($!); pid[$name]=$!
  wait_http "http://127.0.0.1:${port[$name]}/health"
  echo "$name = $bin"
done

run() { # NAME MODE OUT
  local args=(-q -t 1 -c "$CONNS" -n "$REQUESTS" --json "$3" --watch "$1=${pid[$1]}" -H "$auth")
  if [ "$2" = stream ]; then args+=(--stream --body-file "$work/stream.json"); else args+=(--body-file "$work/chat.json"); fi
  "$loadgen" "${args[@]}" "http://127.0.0.1:${port[$1]}/v1/chat/completions"
}

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"
for n in "${names[@]}"; do run "$n" chat "$work/warmup.json"; done
for r in $(seq "$ROUNDS"); do
  for m in chat stream; do
    for n in "${names[@]}"; do run "$n" "$m" "$work/$m-$n-r$r.json"; done
  done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "medians over $ROUNDS rounds ($REQUESTS requests, $CONNS connections, $CHUNKS chunks):"
for m in chat stream; do
  for n in "${names[@]}"; do
    jq -s --arg n "$n" --arg m "$m" -r '
      def med: sort | .[(length / 2 | floor)];
      "\($m) \($n): CPU \(map(.watch[0].cpu_us_per_request) | med | . * 10 | round / 10) us/request (rounds: \(map(.watch[0].cpu_us_per_request | . * 10 | round / 10) | join(", "))), errors \(map(.errors) | add)"' \
      "$work/$m-$n"-r*.json
  done
done
