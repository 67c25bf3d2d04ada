#!/usr/bin/env bash
# Starts the whole AI gateway stack natively (no containers) and seeds a demo:
# Redis (its own when none is reachable), config-center, token-service,
# gateway, the mock upstream and Prometheus (when installed). Ctrl-C stops
# everything it started; --detach leaves it running (stop it with
# scripts/dev-down.sh).
#
#   scripts/dev-up.sh [--detach] [--no-build] [--no-prometheus] [--seed-only]
#
# Environment (all optional):
#   GATEWAY_PORT=8080 CONFIG_CENTER_PORT=8000 TOKEN_SERVICE_PORT=8001
#   MOCK_PORT=9000 PROMETHEUS_PORT=9090 REDIS_URL=redis://127.0.0.1:6379
#   PROMETHEUS_URL (the console's overview; default the Prometheus started here)
#   ADMIN_TOKEN=dev-admin-token DATABASE_URL=sqlite://data/config-center.db
#   AIGW_RUN_DIR=.run (pids, logs, generated configs)
#   AIGW_BIN_DIR=<dir with the binaries> (skips the build; default target/release)
#   MOCK_BASE_URL (what the demo instance points at; default the native mock)
#   CONFIG_CENTER_URL, GATEWAY_URL (only for --seed-only against another stack)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DETACH=0 BUILD=1 WANT_PROMETHEUS=1 SEED_ONLY=0
for arg in "$@"; do
    case "$arg" in
        --detach|-d) DETACH=1 ;;
        --no-build) BUILD=0 ;;
        --no-prometheus) WANT_PROMETHEUS=0 ;;
        --seed-only) SEED_ONLY=1 ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $arg (see --help)" >&2; exit 2 ;;
    esac
done

GATEWAY_PORT="${GATEWAY_PORT:-8080}"
CONFIG_CENTER_PORT="${CONFIG_CENTER_PORT:-8000}"
TOKEN_SERVICE_PORT="${TOKEN_SERVICE_PORT:-8001}"
MOCK_PORT="${MOCK_PORT:-9000}"
PROMETHEUS_PORT="${PROMETHEUS_PORT:-9090}"
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
ADMIN_TOKEN="${ADMIN_TOKEN:-dev-admin-token}"
RUN_DIR="${AIGW_RUN_DIR:-$ROOT/.run}"
LOG_DIR="$RUN_DIR/logs"
CONFIG_CENTER_URL="${CONFIG_CENTER_URL:-http://127.0.0.1:$CONFIG_CENTER_PORT}"
GATEWAY_URL="${GATEWAY_URL:-http://127.0.0.1:$GATEWAY_PORT}"
MOCK_BASE_URL="${MOCK_BASE_URL:-http://127.0.0.1:$MOCK_PORT/v1}"
BINARIES=(gateway config-center token-service mock-upstream)

say() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }
warn() { printf '\033[1;33mwarning:\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Waits until $1 answers 2xx; $2 = name, $3 = log file, $4 = pid.
wait_http() {
    local url="$1" name="$2" log="${3:-}" pid="${4:-}"
    for _ in $(seq 1 300); do
        if curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then return 0; fi
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            [[ -n "$log" ]] && tail -n 30 "$log" >&2
            die "$name exited during startup (log: $log)"
        fi
        sleep 0.2
    done
    [[ -n "$log" ]] && tail -n 30 "$log" >&2
    die "$name did not become healthy at $url (log: $log)"
}

# ---------------------------------------------------------------- seeding
# scripts/seed-demo.sh seeds the demo, sends traffic and prints the key and
# examples; it is shared with the compose stack's `demo-seed` service.
seed_demo() {
    CONFIG_CENTER_URL="$CONFIG_CENTER_URL" GATEWAY_URL="$GATEWAY_URL" ADMIN_TOKEN="$ADMIN_TOKEN" \
        MOCK_BASE_URL="$MOCK_BASE_URL" DEMO_KEY_FILE="$RUN_DIR/demo-api-key" \
        "$ROOT/scripts/seed-demo.sh"
}

print_urls() {
    cat <<EOF

  Gateway (OpenAI API)  $GATEWAY_URL/v1
  Admin console         $CONFIG_CENTER_URL/ui   (sign in with the admin token: $ADMIN_TOKEN)
  Config-center admin   $CONFIG_CENTER_URL/api/v1   (Authorization: Bearer $ADMIN_TOKEN)
  Token-service         http://127.0.0.1:$TOKEN_SERVICE_PORT
  Mock upstream         http://127.0.0.1:$MOCK_PORT/v1
  Metrics               $GATEWAY_URL/metrics  $CONFIG_CENTER_URL/metrics  http://127.0.0.1:$TOKEN_SERVICE_PORT/metrics
EOF
    if [[ "${PROMETHEUS_STARTED:-0}" == 1 ]]; then
        echo "  Prometheus            http://127.0.0.1:$PROMETHEUS_PORT   (targets: /targets, alerts: /alerts)"
    fi
    if [[ -n "${PROMETHEUS_URL:-}" ]]; then
        echo "  Console overview      traffic from Prometheus (PROMETHEUS_URL), spend from the ledger and Redis"
    else
        echo "  Console overview      traffic from the Redis counters (no Prometheus)"
    fi
    echo "  Logs                  $LOG_DIR/"
}

if [[ "$SEED_ONLY" == 1 ]]; then
    seed_demo
    exit 0
fi

command -v curl >/dev/null || die "curl is required"
mkdir -p "$RUN_DIR" "$LOG_DIR"
[[ -n "${DATABASE_URL:-}" ]] || mkdir -p "$ROOT/data"

# ---------------------------------------------------------------- ports
dupes=$(printf '%s\n' "$GATEWAY_PORT" "$CONFIG_CENTER_PORT" "$TOKEN_SERVICE_PORT" "$MOCK_PORT" | sort | uniq -d)
[[ -z "$dupes" ]] || die "port $dupes is given to two services (GATEWAY_PORT, CONFIG_CENTER_PORT, TOKEN_SERVICE_PORT, MOCK_PORT must differ)"
for p in "$GATEWAY_PORT" "$CONFIG_CENTER_PORT" "$TOKEN_SERVICE_PORT" "$MOCK_PORT"; do
    if port_open "$p"; then
        die "port $p is already in use (a detached run? stop it with scripts/dev-down.sh)"
    fi
done

STARTED=()   # "name:pid", in start order
stop_all() {
    trap - INT TERM EXIT
    [[ ${#STARTED[@]} -eq 0 ]] && return
    say "stopping ${#STARTED[@]} processes"
    local i entry pid
    for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
        entry="${STARTED[$i]}"; pid="${entry##*:}"
        kill -TERM "$pid" 2>/dev/null || true
    done
    for entry in "${STARTED[@]}"; do
        pid="${entry##*:}"
        for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        rm -f "$RUN_DIR/${entry%%:*}.pid"
    done
}
# Until the stack is up, any failure stops what was started.
trap stop_all EXIT
trap 'exit 130' INT TERM

# Starts "$@" in its own session with its log in $LOG_DIR/$name.log.
start() {
    local name="$1"; shift
    local log="$LOG_DIR/$name.log"
    : > "$log"
    setsid "$@" >>"$log" 2>&1 </dev/null &
    local pid=$!
    STARTED+=("$name:$pid")
    echo "$pid" > "$RUN_DIR/$name.pid"
    LAST_PID=$pid
}

# ---------------------------------------------------------------- redis
redis_host_port() {
    local rest="${REDIS_URL#*://}"; rest="${rest##*@}"; rest="${rest%%/*}"
    REDIS_HOST="${rest%%:*}"; REDIS_PORT="${rest##*:}"
    [[ "$REDIS_PORT" == "$rest" ]] && REDIS_PORT=6379
    return 0
}
redis_host_port
redis_ping() {
    if command -v redis-cli >/dev/null; then
        [[ "$(redis-cli -u "$REDIS_URL" ping 2>/dev/null)" == PONG ]]
    else
        (exec 3<>"/dev/tcp/$REDIS_HOST/$REDIS_PORT" && printf 'PING\r\n' >&3 && read -r -t 2 line <&3 && [[ "$line" == +PONG* ]]) 2>/dev/null
    fi
}
if redis_ping; then
    say "using the Redis at $REDIS_URL"
else
    if ! command -v redis-server >/dev/null; then
        if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
            say "installing redis-server (apt)"
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
        else
            die "no Redis at $REDIS_URL and redis-server is not installed (apt-get install redis-server)"
        fi
    fi
    [[ "$REDIS_HOST" == 127.0.0.1 || "$REDIS_HOST" == localhost ]] \
        || die "no Redis at $REDIS_URL (only a local one can be started)"
    say "starting redis-server on port $REDIS_PORT (data in $RUN_DIR/redis)"
    mkdir -p "$RUN_DIR/redis"
    start redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$RUN_DIR/redis" \
        --appendonly yes --save ""
    for _ in $(seq 1 100); do redis_ping && break; sleep 0.1; done
    redis_ping || die "redis-server did not start (log: $LOG_DIR/redis.log)"
fi

# ---------------------------------------------------------------- build
if [[ -n "${AIGW_BIN_DIR:-}" ]]; then
    BIN_DIR="$AIGW_BIN_DIR"
else
    BIN_DIR="$ROOT/target/release"
    if [[ "$BUILD" == 1 ]]; then
        say "building (cargo build --release)"
        cargo build --release --bin gateway --bin config-center --bin token-service --bin mock-upstream
    fi
fi
for b in "${BINARIES[@]}"; do
    [[ -x "$BIN_DIR/$b" ]] || die "$BIN_DIR/$b not found (build it, or drop --no-build)"
done

# ---------------------------------------------------------------- prometheus
PROMETHEUS_STARTED=0
if [[ "$WANT_PROMETHEUS" == 1 ]]; then
    if ! command -v prometheus >/dev/null && [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
        say "installing prometheus (apt)"
        # policy-rc.d keeps the package from starting its own service on :9090.
        if [[ ! -e /usr/sbin/policy-rc.d ]]; then
            printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null || true
            rm -f /usr/sbin/policy-rc.d
        else
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null || true
        fi
    fi
    if ! command -v prometheus >/dev/null; then
        warn "prometheus is not installed: skipping it (apt-get install prometheus)"
    elif port_open "$PROMETHEUS_PORT"; then
        warn "port $PROMETHEUS_PORT is in use: not starting Prometheus (set PROMETHEUS_PORT)"
    else
        # The compose config with localhost targets and an absolute rules path.
        sed -e "s#\"gateway:8080\"#\"127.0.0.1:$GATEWAY_PORT\"#" \
            -e "s#\"config-center:8000\"#\"127.0.0.1:$CONFIG_CENTER_PORT\"#" \
            -e "s#\"token-service:8000\"#\"127.0.0.1:$TOKEN_SERVICE_PORT\"#" \
            -e "s#^  - alerts.yml#  - $ROOT/monitoring/alerts.yml#" \
            "$ROOT/monitoring/prometheus.yml" > "$RUN_DIR/prometheus.yml"
        # The scrape jobs' bearer token (empty: /metrics is open).
        (umask 077; printf '%s' "${METRICS_TOKEN:-}" > "$RUN_DIR/metrics_token")
        mkdir -p "$RUN_DIR/prometheus-data"
        start prometheus prometheus --config.file="$RUN_DIR/prometheus.yml" \
            --storage.tsdb.path="$RUN_DIR/prometheus-data" --storage.tsdb.retention.time=30d \
            --web.listen-address="127.0.0.1:$PROMETHEUS_PORT"
        wait_http "http://127.0.0.1:$PROMETHEUS_PORT/-/ready" prometheus "$LOG_DIR/prometheus.log" "$LAST_PID"
        PROMETHEUS_STARTED=1
    fi
fi
# The console's overview reads requests, error rate and p95 latency from
# this Prometheus (or the one PROMETHEUS_URL names); without one, from Redis.
if [[ -z "${PROMETHEUS_URL:-}" && "$PROMETHEUS_STARTED" == 1 ]]; then
    PROMETHEUS_URL="http://127.0.0.1:$PROMETHEUS_PORT"
fi

# ---------------------------------------------------------------- services
export RUST_LOG="${RUST_LOG:-info}"
start mock-upstream env MOCK_PORT="$MOCK_PORT" BIND_ADDR=127.0.0.1 \
    MOCK_LATENCY_MS="${MOCK_LATENCY_MS:-50}" MOCK_CHUNKS="${MOCK_CHUNKS:-8}" \
    MOCK_CHUNK_DELAY_MS="${MOCK_CHUNK_DELAY_MS:-20}" "$BIN_DIR/mock-upstream"
wait_http "http://127.0.0.1:$MOCK_PORT/health" mock-upstream "$LOG_DIR/mock-upstream.log" "$LAST_PID"

# The config-center's SQLite file lives under data/ unless DATABASE_URL says otherwise.
start config-center env CONFIG_CENTER_PORT="$CONFIG_CENTER_PORT" REDIS_URL="$REDIS_URL" \
    ADMIN_TOKEN="$ADMIN_TOKEN" DATABASE_URL="${DATABASE_URL:-sqlite://$ROOT/data/config-center.db}" \
    PROMETHEUS_URL="${PROMETHEUS_URL:-}" "$BIN_DIR/config-center"
wait_http "http://127.0.0.1:$CONFIG_CENTER_PORT/health" config-center "$LOG_DIR/config-center.log" "$LAST_PID"

start token-service env TOKEN_SERVICE_PORT="$TOKEN_SERVICE_PORT" REDIS_URL="$REDIS_URL" \
    "$BIN_DIR/token-service"
wait_http "http://127.0.0.1:$TOKEN_SERVICE_PORT/health" token-service "$LOG_DIR/token-service.log" "$LAST_PID"

start gateway env GATEWAY_PORT="$GATEWAY_PORT" REDIS_URL="$REDIS_URL" JOURNAL_DIR="$ROOT/.run/journal" "$BIN_DIR/gateway"
wait_http "http://127.0.0.1:$GATEWAY_PORT/health" gateway "$LOG_DIR/gateway.log" "$LAST_PID"

# ---------------------------------------------------------------- seed + traffic
print_urls
seed_demo

if [[ "$DETACH" == 1 ]]; then
    trap - INT TERM EXIT
    say "running detached; stop with scripts/dev-down.sh (pids in $RUN_DIR/*.pid)"
    exit 0
fi

say "running; press Ctrl-C to stop everything"
trap 'stop_all; exit 0' INT TERM
trap stop_all EXIT
# Sleeps until a signal arrives, or returns early if a service dies.
while true; do
    for entry in "${STARTED[@]}"; do
        if ! kill -0 "${entry##*:}" 2>/dev/null; then
            warn "${entry%%:*} exited; see $LOG_DIR/${entry%%:*}.log"
            exit 1
        fi
    done
    sleep 1 &
    wait $! || true
done
