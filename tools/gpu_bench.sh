#!/usr/bin/env bash
# Run `irprune bench` on the lent GPU machine in one command.
#
# Usage (GPU machine, repository root, numpy 2.4 wheel carried in .whl/):
#   bash tools/gpu_bench.sh --suite seed [--quick] [more irprune bench flags]
# Writes results.json, tables.md and plots/ under $OUT/bench (or ./bench-out).
set -u
OUT=${OUT:-.}
source "$(dirname "$0")/gpu_env.sh"
set -o pipefail
PYTHONUNBUFFERED=1 python3 -m irprune bench --out "$OUT/bench" "$@" 2>&1 | tee "$OUT/bench.log"
