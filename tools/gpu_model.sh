#!/usr/bin/env bash
# Run `irprune model` on the lent GPU machine (numpy 2.4 wheel carried in .whl/).
#   bash tools/gpu_model.sh resnet50 --sparsity 0.9 [--batches 1,16]
# Writes model-<name>-<sparsity>.json and .log under $OUT (or .).
set -u
OUT=${OUT:-.}
source "$(dirname "$0")/gpu_env.sh"
name=$1; shift
tag="$name-$(echo "$*" | tr -c 'a-z0-9.\n' '_' )"
set -o pipefail
PYTHONUNBUFFERED=1 python3 -m irprune model "$name" --no-progress --out "$OUT/model-$tag.json" "$@" 2>&1 | tee "$OUT/model-$tag.log"
