#!/usr/bin/env bash
# Run `irprune fuzz` with numerics on the lent GPU, compiling on every CPU.
#
# Usage (GPU machine, repository root, numpy 2.4 wheel carried in .whl/):
#   bash tools/gpu_fuzz.sh [--cases 300] [--seed 1] [more irprune fuzz flags]
# Writes fuzz-gpu.json (every case and result) and fuzz-gpu.log under $OUT (or .).
set -u
OUT=${OUT:-.}
source "$(dirname "$0")/gpu_env.sh"
set -o pipefail
PYTHONUNBUFFERED=1 python3 -m irprune fuzz --device gpu --jobs "$(nproc)" --max-weights 60000 \
  --max-pixels 2048 --out "$OUT/fuzz-gpu.json" "$@" 2>&1 | tee "$OUT/fuzz-gpu.log"
