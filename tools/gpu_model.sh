#!/usr/bin/env bash
# Run `irprune model` on the lent GPU machine (numpy 2.4 wheel carried in .whl/).
#   bash tools/gpu_model.sh resnet50 --sparsity 0.9 [--batches 1,16]
# Writes model-<name>-<sparsity>.json and .log under $OUT (or .).
set -u
OUT=${OUT:-.}; mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
python3 -m pip install -q --no-deps --no-build-isolation -e . >/tmp/pip.log 2>&1 || cat /tmp/pip.log
name=$1; shift
tag="$name-$(echo "$*" | tr -c 'a-z0-9.\n' '_' )"
set -o pipefail
PYTHONUNBUFFERED=1 python3 -m irprune model "$name" --no-progress --out "$OUT/model-$tag.json" "$@" 2>&1 | tee "$OUT/model-$tag.log"
