#!/usr/bin/env bash
# Seeds a running stack with the demo: namespace `demo`, model `gpt-4o-mini`,
# instance `mock-1` (pointing at MOCK_BASE_URL), model `claude-sonnet` with
# instance `mock-claude-1` (an Anthropic instance on the same mock, which the
# gateway translates to) and a new API key of `demo`; sends 10 requests
# (plain and streamed) and 2 to claude-sonnet through the gateway so the
# dashboards have data; prints the key with a curl and an OpenAI SDK example.
# Safe to run again: what exists is kept, and every run makes a new key.
#
# Used by scripts/dev-up.sh (native stack), by the compose service
# `demo-seed` (start-monitoring.sh / start-monitoring.bat run it inside the
# compose network), and by hand against any stack, e.g. a port-forwarded
# Kubernetes one (docs/deploy.md).
#
# Environment (all optional):
#   CONFIG_CENTER_URL=http://127.0.0.1:8000   GATEWAY_URL=http://127.0.0.1:8080
#   ADMIN_TOKEN=dev-admin-token
#   MOCK_BASE_URL=http://127.0.0.1:9000/v1    (what the demo instance calls)
#   PUBLIC_GATEWAY_URL=$GATEWAY_URL           (the gateway URL the examples print)
#   DEMO_KEY_FILE                             (also write the key there, mode 600)
set -euo pipefail

CONFIG_CENTER_URL="${CONFIG_CENTER_URL:-http://127.0.0.1:8000}"
GATEWAY_URL="${GATEWAY_URL:-http://127.0.0.1:8080}"
ADMIN_TOKEN="${ADMIN_TOKEN:-dev-admin-token}"
MOCK_BASE_URL="${MOCK_BASE_URL:-http://127.0.0.1:9000/v1}"
PUBLIC_GATEWAY_URL="${PUBLIC_GATEWAY_URL:-$GATEWAY_URL}"
DEMO_KEY_FILE="${DEMO_KEY_FILE:-}"

say() { printf '\033[1;34m==>\033[0m %s\n' "$*"; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

command -v curl >/dev/null || die "curl is required"

# POSTs JSON to the config-center; prints the body; 409 (exists) is fine.
admin_post() {
    local path="$1" body="$2" out status
    out="$(mktemp)"
    status="$(curl -sS -o "$out" -w '%{http_code}' -X POST "$CONFIG_CENTER_URL$path" \
        -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' -d "$body")" \
        || { rm -f "$out"; die "config-center unreachable at $CONFIG_CENTER_URL"; }
    case "$status" in
        200|201) cat "$out" ;;
        409) ;;
        *) echo "POST $path → $status: $(cat "$out")" >&2; rm -f "$out"; die "seeding failed" ;;
    esac
    rm -f "$out"
}

json_field() { tr -d '\n' | sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\"\([^\"]*\)\".*/\1/p"; }

say "seeding namespace demo, models gpt-4o-mini and claude-sonnet, instances mock-1 and mock-claude-1 → $MOCK_BASE_URL"
admin_post /api/v1/namespaces '{"code":"demo","name":"Demo","description":"Created by scripts/seed-demo.sh","enabled":true,"limits":{},"monthly_budget_usd":"50.00"}' >/dev/null
admin_post /api/v1/models '{"name":"gpt-4o-mini","encoding":"o200k_base","input_price_per_1m":"0.15","output_price_per_1m":"0.60","context_window":128000,"enabled":true}' >/dev/null
admin_post /api/v1/instances "{\"id\":\"mock-1\",\"namespace_code\":\"demo\",\"model\":\"gpt-4o-mini\",\"base_url\":\"$MOCK_BASE_URL\",\"upstream_model\":\"gpt-4o-mini\",\"api_key\":\"sk-mock-upstream\",\"weight\":1,\"timeout_ms\":30000,\"enabled\":true,\"health_check\":{\"path\":\"/models\",\"interval_s\":10}}" >/dev/null
# The mock speaks Anthropic's Messages API too: claude-sonnet shows a
# translated provider, with prompt-cache prices.
admin_post /api/v1/models '{"name":"claude-sonnet","encoding":"o200k_base","input_price_per_1m":"3","output_price_per_1m":"15","cached_input_price_per_1m":"0.30","cache_write_price_per_1m":"3.75","context_window":200000,"enabled":true}' >/dev/null
admin_post /api/v1/instances "{\"id\":\"mock-claude-1\",\"namespace_code\":\"demo\",\"model\":\"claude-sonnet\",\"provider\":\"anthropic\",\"base_url\":\"$MOCK_BASE_URL\",\"upstream_model\":\"claude-sonnet-4-5\",\"api_version\":\"2023-06-01\",\"api_key\":\"sk-ant-mock-upstream\",\"weight\":1,\"timeout_ms\":30000,\"enabled\":true}" >/dev/null
# A key is shown once, at creation: make a new one on every run.
API_KEY="$(admin_post /api/v1/namespaces/demo/api-keys "{\"name\":\"dev-$(date +%Y%m%d-%H%M%S)\"}" | json_field key)"
[[ -n "$API_KEY" ]] || die "no key in the api-keys response"
if [[ -n "$DEMO_KEY_FILE" ]]; then
    mkdir -p "$(dirname "$DEMO_KEY_FILE")"
    (umask 077; printf '%s\n' "$API_KEY" > "$DEMO_KEY_FILE")
fi

# A little traffic once the gateway has the new key (it follows the
# config-center through Redis within a moment).
body='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello to the dev stack"}]}'
for _ in $(seq 1 150); do
    if curl -fsS -o /dev/null --max-time 5 "$GATEWAY_URL/v1/chat/completions" \
        -H "Authorization: Bearer $API_KEY" -H 'Content-Type: application/json' -d "$body" 2>/dev/null; then
        break
    fi
    sleep 0.2
done
# One chat request with body $1; counts it in `ok` when answered 2xx.
chat() {
    if curl -fsS -o /dev/null --max-time 10 -N "$GATEWAY_URL/v1/chat/completions" \
        -H "Authorization: Bearer $API_KEY" -H 'Content-Type: application/json' -d "$1"; then
        ok=$((ok + 1))
    fi
}
ok=0
for i in $(seq 1 5); do
    chat "$body"
    chat "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"stream_options\":{\"include_usage\":true},\"messages\":[{\"role\":\"user\",\"content\":\"stream number $i\"}]}"
done
say "sent 10 demo requests through the gateway ($ok answered 2xx)"
ok=0
for stream in false true; do
    chat "{\"model\":\"claude-sonnet\",\"stream\":$stream,\"messages\":[{\"role\":\"user\",\"content\":\"Say hello from Anthropic\"}]}"
done
say "sent 2 requests to claude-sonnet, an Anthropic instance on the mock ($ok answered 2xx)"

also=""
[[ -n "$DEMO_KEY_FILE" ]] && also="   (also in $DEMO_KEY_FILE)"
cat <<EOF

  Demo API key          $API_KEY$also

Try it:

  curl $PUBLIC_GATEWAY_URL/v1/chat/completions \\
    -H "Authorization: Bearer $API_KEY" -H "Content-Type: application/json" \\
    -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello!"}]}'

The same request with "model":"claude-sonnet" reaches an Anthropic instance
(on the mock), translated both ways.

With the OpenAI SDK (pip install openai):

  python3 - <<'PY'
from openai import OpenAI
client = OpenAI(base_url="$PUBLIC_GATEWAY_URL/v1", api_key="$API_KEY")
r = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello!"}])
print(r.choices[0].message.content, r.usage)
PY

EOF
