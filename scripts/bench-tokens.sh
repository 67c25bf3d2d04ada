#!/usr/bin/env bash
# Token-counting throughput: in process (the service's counting path and
# tiktoken-rs, one thread) next to the HTTP API of a release build of the
# token-service, for 50 B, 1 KB and 100 KB texts. Prints Markdown tables.
#
# Usage: scripts/bench-tokens.sh            (BENCH_SECONDS=3 per cell,
#                                           BENCH_CONCURRENCY=4 HTTP clients)
# Needs: cargo, redis-server, curl. Everything runs on 127.0.0.1 and stops
# by itself; the service and redis-server it starts are stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

echo "building (release)..." >&2
cargo build --release --workspace --bins >&2
cargo bench -p token-service --bench tokens --no-run >&2

tmp=$(mktemp -d)
redis_port=$(free_port)
svc_port=$(free_port)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$tmp" --logfile "$tmp/redis.log" &
pids+=($!)
REDIS_URL="redis://127.0.0.1:$redis_port" TOKEN_SERVICE_PORT="$svc_port" BIND_ADDR=127.0.0.1 \
  USAGE_CONSUMER_ENABLED=false RUST_LOG=warn ./target/release/token-service 2>"$tmp/service.log" &
pids+=($!)
for _ in $(seq 1 200); do
  curl -fsS "http://127.0.0.1:$svc_port/health" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$svc_port/health" >/dev/null || { cat "$tmp/service.log" >&2; exit 1; }

echo "# token-service counting benchmark"
echo
echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); machine: $(nproc) CPUs, $(uname -m); command: scripts/bench-tokens.sh"
echo "- service: release build, HTTP_WORKERS/COUNT_CONCURRENCY default ($(nproc)); client and server share the machine"
echo
BENCH_URL="http://127.0.0.1:$svc_port" cargo bench -q -p token-service --bench tokens 2>/dev/null
