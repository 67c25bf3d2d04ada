#!/usr/bin/env bash
# Micro-benchmark of the metrics crate's hot path and flush (release build,
# private redis-server). Prints ns per recorded request and ms per flush.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "# $(date -u +%F) $(nproc) cores, $(uname -m); cargo bench -p aigw-metrics --bench hot_path"
cargo bench -q -p aigw-metrics --bench hot_path
