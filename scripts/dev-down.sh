#!/usr/bin/env bash
# Stops a stack started with `scripts/dev-up.sh --detach`: every process whose
# pid dev-up.sh recorded in .run/*.pid (or $AIGW_RUN_DIR), gateway first and
# Redis last, with SIGTERM (graceful) and SIGKILL after 15 s.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="${AIGW_RUN_DIR:-$ROOT/.run}"

stopped=0
for name in gateway token-service config-center mock-upstream prometheus redis; do
    f="$RUN_DIR/$name.pid"
    [[ -f "$f" ]] || continue
    pid="$(cat "$f")"
    if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            echo "$name ($pid) did not stop within 15 s: killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        echo "stopped $name ($pid)"
        stopped=$((stopped + 1))
    fi
    rm -f "$f"
done
[[ "$stopped" -gt 0 ]] || echo "nothing to stop (no running pids in $RUN_DIR)"
