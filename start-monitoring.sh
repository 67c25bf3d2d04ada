#!/usr/bin/env bash
# Brings the containerised stack up (docker-compose.dev.yml: Redis, the three
# services, the mock upstream, Prometheus and Grafana), waits until the gateway
# is healthy, seeds a demo namespace, model, instance and key, and prints the
# URLs. Stop it with: docker compose -f docker-compose.dev.yml down
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
elif command -v docker-compose >/dev/null; then
    COMPOSE=(docker-compose)
else
    echo "error: docker compose is not available (install Docker, or run scripts/dev-up.sh for a native stack)" >&2
    exit 1
fi

export ADMIN_TOKEN="${ADMIN_TOKEN:-dev-admin-token}"
"${COMPOSE[@]}" -f docker-compose.dev.yml up -d --build

echo "waiting for the gateway to become healthy..."
for _ in $(seq 1 180); do
    curl -fsS -o /dev/null --max-time 2 http://localhost:8080/health 2>/dev/null && break
    sleep 1
done
curl -fsS -o /dev/null --max-time 2 http://localhost:8080/health \
    || { echo "error: the gateway is not healthy; see: ${COMPOSE[*]} -f docker-compose.dev.yml logs gateway" >&2; exit 1; }

# The instance points at the mock by its name inside the compose network.
CONFIG_CENTER_URL=http://localhost:8000 GATEWAY_URL=http://localhost:8080 \
    MOCK_BASE_URL=http://mock-upstream:9000/v1 MOCK_PORT=9000 TOKEN_SERVICE_PORT=8001 \
    "$ROOT/scripts/dev-up.sh" --seed-only

cat <<MSG
Monitoring:
  Prometheus  http://localhost:9090   (targets: http://localhost:9090/targets)
  Grafana     http://localhost:3001   (admin / admin123, folder "AI Gateway")
Logs:   ${COMPOSE[*]} -f docker-compose.dev.yml logs -f gateway
Stop:   ${COMPOSE[*]} -f docker-compose.dev.yml down      (add -v to drop the data volumes)
MSG
