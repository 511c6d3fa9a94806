#!/usr/bin/env bash
# Where every target of the performance issue stands, measured at one commit on the lent GPU:
# sparsity 0.9, each kernel configuration replayed from CHOICES (default docs/perf/results.json,
# the standing's tuned choices; no tuning), one `irprune bench` run per PART:
#   seed       the seed suite at batch 1 and 64
#   mobilenet  the MobileNetV1 pointwise layers at batch 1
#   resnet50   the fifteen ResNet-50 1x1 layers at batch 1
# Each part stays inside one device command's 10 minutes. Then, on any machine:
#   irprune bench --report A/bench/results.json B/bench/results.json ... --out DIR
#
# Usage (GPU machine, repository root, numpy 2.4 wheel in .whl/):
#   OUT=... bash tools/gpu_standing.sh PART [more irprune bench flags, e.g. --commit SHA]
set -u
OUT=${OUT:-.}
CHOICES=${CHOICES:-docs/perf/results.json}
R50=l1_1x1_256_64,l1_1x1_64_256,l1_1x1_64_64,l2_1x1_128_512,l2_1x1_256_128,l2_1x1_512_128
R50=$R50,l2_down_256_512_s2,l3_1x1_1024_256,l3_1x1_256_1024,l3_1x1_512_256,l3_down_512_1024_s2
R50=$R50,l4_1x1_1024_512,l4_1x1_2048_512,l4_1x1_512_2048,l4_down_1024_2048_s2
part=${1:?"name a part: seed, mobilenet or resnet50"}
shift
case $part in
  seed) args=(--suite seed --batches 1,64) ;;
  mobilenet) args=(--suite mobilenet1x1 --batches 1) ;;
  resnet50) args=(--suite resnet50 --layers "$R50" --batches 1) ;;
  *) echo "unknown part $part: seed, mobilenet or resnet50" >&2; exit 2 ;;
esac
OUT=$OUT/$part bash "$(dirname "$0")/gpu_bench.sh" "${args[@]}" --sparsities 0.9 \
  --choices-from "$CHOICES" "$@"
