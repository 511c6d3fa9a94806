#!/usr/bin/env bash
# Run `irprune fuzz` with numerics on the lent GPU, compiling on every CPU.
#
# Usage (GPU machine, repository root, numpy 2.4 wheel carried in .whl/):
#   bash tools/gpu_fuzz.sh [--cases 300] [--seed 1] [more irprune fuzz flags]
# Writes fuzz-gpu.json (every case and result) and fuzz-gpu.log under $OUT (or .).
set -u
OUT=${OUT:-.}; mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
python3 -m pip install -q --no-deps --no-build-isolation -e . >/tmp/pip.log 2>&1 || cat /tmp/pip.log
set -o pipefail
PYTHONUNBUFFERED=1 python3 -m irprune fuzz --device gpu --jobs "$(nproc)" --max-weights 60000 \
  --max-pixels 2048 --out "$OUT/fuzz-gpu.json" "$@" 2>&1 | tee "$OUT/fuzz-gpu.log"
