# Shared by the gateway's bench scripts (sourced, not run): the tools they
# need, their work and output directories, the processes they start
# (stopped newest first on exit, their logs kept) and small helpers.
#
# `bench_init NAME`: output in target/NAME (emptied), work in a temp dir.

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
# connections take theirs.
free_port() {
  local p
  while :; do
    p=$(( (RANDOM % 12000) + 20000 ))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}

wait_http() { # URL: up to 10 s
  local i
  for i in $(seq 100); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "not up: $1" >&2; return 1
}

rss_mib() { awk '/^VmRSS:/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
