#!/usr/bin/env bash
# One-click start of the containerised stack (docker-compose.dev.yml): Redis,
# the three services, the mock upstream, Prometheus and Grafana; then seeds
# the demo namespace `demo` (model gpt-4o-mini, instance mock-1 → the mock,
# model claude-sonnet on the mock's Anthropic API, a new API key) through the compose service `demo-seed`, which prints the
# key and a curl example, and prints the URLs. start-monitoring.bat does the
# same on Windows. Stop with: docker compose -f docker-compose.dev.yml down
#
# Needs Docker with Compose v2. ADMIN_TOKEN (default dev-admin-token) sets
# the config-center's admin token. Without Docker: scripts/dev-up.sh runs
# the same stack natively.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"

# Compose v2 only: the file uses its syntax (top-level `name`).
if docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
elif command -v docker-compose >/dev/null && [[ "$(docker-compose version --short 2>/dev/null)" == 2.* ]]; then
    COMPOSE=(docker-compose)
else
    echo "error: Docker Compose v2 is not available (install Docker Desktop or the compose plugin, or run scripts/dev-up.sh for a native stack)" >&2
    exit 1
fi
FILE=(-f docker-compose.dev.yml)

export ADMIN_TOKEN="${ADMIN_TOKEN:-dev-admin-token}"
"${COMPOSE[@]}" "${FILE[@]}" up -d --build

# Waits for the config-center, gateway and mock to be healthy, then seeds
# from inside the compose network.
echo "waiting for the services to become healthy, then seeding the demo..."
if ! "${COMPOSE[@]}" "${FILE[@]}" run --rm demo-seed; then
    echo "error: seeding failed; see: ${COMPOSE[*]} ${FILE[*]} ps   and   ${COMPOSE[*]} ${FILE[*]} logs gateway config-center" >&2
    exit 1
fi

cat <<MSG
  Config-center admin   http://localhost:8000/api/v1   (Authorization: Bearer $ADMIN_TOKEN)
  Token-service         http://localhost:8001
  Mock upstream         http://localhost:9000/v1
Monitoring:
  Prometheus            http://localhost:9090   (targets: http://localhost:9090/targets)
  Grafana               http://localhost:3001   (admin / admin123, folder "AI Gateway")
Runbook: docs/operations.md
Logs:    ${COMPOSE[*]} ${FILE[*]} logs -f gateway
Stop:    ${COMPOSE[*]} ${FILE[*]} down      (add -v to drop the data volumes)
MSG
