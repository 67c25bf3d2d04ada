# Shared by the gateway's bench scripts (sourced, not run): the tools they
# need, their work and output directories, the processes they start
# (stopped newest first on exit, their logs kept) and small helpers;
# scripts/bench.sh takes its helpers (free_port, wait_http, rss_mib).
#
# `bench_init NAME`: output in target/NAME (emptied), work in a temp dir.
# `start_redis`, `start_mock`, `start_gateways`: the processes both scripts
# measure.

for t in redis-server redis-cli jq curl sha256sum; do
  command -v "$t" >/dev/null || { echo "missing tool: $t" >&2; exit 1; }
done

bench_init() {
  out=$root/target/$1
  rm -rf "$out"; mkdir -p "$out"
  work=$(mktemp -d "/tmp/$1.XXXXXX")
  pids=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

bench_cleanup() {
  local i
  for (( i = ${#pids[@]} - 1; i >= 0; i-- )); do kill -TERM "${pids[i]}" 2>/dev/null || true; done
  for (( i = ${#pids[@]} - 1; i >= 0; i-- )); do wait "${pids[i]}" 2>/dev/null || true; done
  cp "$work"/*.log "$out/" 2>/dev/null || true
  rm -rf "$work"
}

# A free port below the ephemeral range (32768+), where outgoing
# connections take theirs; never one handed out before (its process may
# not be listening yet).
used_ports=" "
free_port() {
  local p
  while :; do
    p=$(( (RANDOM % 12000) + 20000 ))
    case $used_ports in *" $p "*) continue ;; esac
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      used_ports+="$p "
      echo "$p"
      return
    fi
  done
}

wait_http() { # URL [seconds, 30]
  local i
  for i in $(seq $(( ${2:-30} * 10 ))); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "not up: $1" >&2; return 1
}

# start_redis: a private redis-server on a free port, `$redis_port`,
# keeping nothing on disk.
start_redis() {
  redis_port=$(free_port)
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
    >"$work/redis.log" 2>&1 &
  pids+=($!)
  local i
  for i in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
}

# start_mock CHUNKS: the workspace's mock-upstream (`$bin/mock-upstream`)
# on a free port, `$mock_port`, CHUNKS chunks per stream.
start_mock() {
  mock_port=$(free_port)
  MOCK_PORT=$mock_port BIND_ADDR=127.0.0.1 MOCK_CHUNKS=$1 RUST_LOG=warn \
    "$bin/mock-upstream" >"$work/mock.log" 2>&1 &
  pids+=($!)
  wait_http "http://127.0.0.1:$mock_port/health"
}

# start_gateways REDIS_URL BINARY...: one gateway per binary, named gw1,
# gw2, … (in `targets`), each with a journal of its own, logging at
# $GW_RUST_LOG, with $GATEWAY_WORKERS workers when set; `url[NAME]` is its
# chat completions URL, `pid[NAME]` its process.
start_gateways() {
  local redis_url=$1 g name port i=0
  shift
  declare -gA url pid
  targets=()
  for g in "$@"; do
    i=$((i + 1))
    name="gw$i"
    port=$(free_port)
    env ${GATEWAY_WORKERS:+GATEWAY_WORKERS=$GATEWAY_WORKERS} GATEWAY_PORT="$port" BIND_ADDR=127.0.0.1 \
      REDIS_URL="$redis_url" RUST_LOG="$GW_RUST_LOG" JOURNAL_DIR="$work/journal-$name" \
      "$g" >"$work/$name.log" 2>&1 &
    pids+=($!)
    pid[$name]=$!
    url[$name]="http://127.0.0.1:$port/v1/chat/completions"
    wait_http "http://127.0.0.1:$port/ready"
    echo "$name = $g"
    targets+=("$name")
  done
}

rss_mib() { awk '/^VmRSS:/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
