#!/usr/bin/env bash
# Runs every check of the project: formatting, lints, and every test of the
# workspace against real Redis, SQLite, PostgreSQL (when reachable) and
# Prometheus. Exits non-zero when anything fails.
#
# Usage: scripts/test.sh [extra args for the test runner]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

say() { printf '\n==> %s\n' "$*"; }

# --- System packages -------------------------------------------------------
need_pkgs=()
command -v redis-server >/dev/null || need_pkgs+=(redis-server)
command -v promtool >/dev/null || need_pkgs+=(prometheus)
command -v python3 >/dev/null || need_pkgs+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_pkgs+=(python3-venv)
# The console's browser tests: Debian's headless Chromium and its driver.
[ -x /usr/bin/chromium ] || need_pkgs+=(chromium)
[ -x /usr/bin/chromedriver ] || need_pkgs+=(chromium-driver)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing ${need_pkgs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
  else
    echo "missing system packages: ${need_pkgs[*]}" >&2
    echo "install them with: sudo apt-get install -y ${need_pkgs[*]}" >&2
    exit 1
  fi
fi

# --- Python tools (OpenAI SDK, parsers, validators) -------------------------
venv="$root/.venv"
stamp="$venv/.requirements.sha"
want=$(sha256sum tests/requirements.txt | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "setting up the Python test environment in .venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r tests/requirements.txt
  echo "$want" > "$stamp"
fi

# --- PostgreSQL --------------------------------------------------------------
export TEST_PG_URL="${TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
if command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; then
  say "PostgreSQL reachable at 127.0.0.1:5432: the SQL suite runs on SQLite and PostgreSQL"
  export AIGW_REQUIRE_PG=1
else
  say "PostgreSQL not reachable at 127.0.0.1:5432: skipping the PostgreSQL pass (SQLite only)"
fi

# --- Format, lints, build ------------------------------------------------------
say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

say "building binaries for the end-to-end tests"
cargo build --workspace --bins --locked

# --- Tests -------------------------------------------------------------------
say "tests"
export CI="${CI:-}"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast --profile ci "$@"
else
  cargo test --workspace --locked --no-fail-fast "$@"
fi
say "all checks passed"
