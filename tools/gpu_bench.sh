#!/usr/bin/env bash
# Run `irprune bench` on the lent GPU machine in one command.
#
# Usage (GPU machine, repository root, numpy 2.4 wheel carried in .whl/):
#   bash tools/gpu_bench.sh --suite seed [--quick] [more irprune bench flags]
# Writes results.json, tables.md and plots/ under $OUT/bench (or ./bench-out).
set -u
OUT=${OUT:-.}; mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
python3 -m pip install -q --no-deps --no-build-isolation -e . >/tmp/pip.log 2>&1 || cat /tmp/pip.log
set -o pipefail
PYTHONUNBUFFERED=1 python3 -m irprune bench --out "$OUT/bench" "$@" 2>&1 | tee "$OUT/bench.log"
