#!/usr/bin/env bash
# Regenerates docs/RELIABILITY.md from the tests' own output: every fault,
# bad-input, isolation and fuzz test prints a `RELIABILITY|fault|load|lost`
# row (tests/src/stack.rs `report`), appended to $AIGW_RELIABILITY_FILE.
# The table is written between the markers in docs/RELIABILITY.md; the rest
# of the document is kept.
#
# Usage: scripts/reliability.sh            (about 5 minutes on 2 cores)
#        scripts/reliability.sh --ignored  (also the tests of open findings)
set -euo pipefail
cd "$(dirname "$0")/.."
rows=$(mktemp)
trap 'rm -f "$rows"' EXIT
cargo build --workspace --bins
extra=()
if [ "${1:-}" = "--ignored" ]; then extra=(--include-ignored); fi
AIGW_RELIABILITY_FILE="$rows" cargo test --no-fail-fast -p aigw-e2e \
  --test faults --test crash --test bad_input --test isolation --test fuzz_gateway --test fuzz_openapi \
  -- --test-threads 2 "${extra[@]}" || echo "some tests failed: their rows say what was lost" >&2

python3 - "$rows" docs/RELIABILITY.md <<'PY'
import sys, datetime, subprocess
rows_file, doc = sys.argv[1], sys.argv[2]
rows = [l.rstrip("\n").split("|", 3) for l in open(rows_file) if l.startswith("RELIABILITY|")]
rows.sort(key=lambda r: r[1])
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
esc = lambda s: s.replace("|", "\\|")
table = [f"Generated {datetime.date.today()} at commit {commit or '?'} by `scripts/reliability.sh`.", "",
         "| fault or bad input | load held | lost |", "|---|---|---|"]
table += [f"| {esc(r[1])} | {esc(r[2])} | {esc(r[3])} |" for r in rows]
begin, end = "<!-- BEGIN GENERATED TABLE -->", "<!-- END GENERATED TABLE -->"
text = open(doc).read()
a, b = text.index(begin) + len(begin), text.index(end)
open(doc, "w").write(text[:a] + "\n" + "\n".join(table) + "\n" + text[b:])
print(f"{len(rows)} rows written to {doc}")
PY
