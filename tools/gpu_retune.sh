#!/usr/bin/env bash
# Tune the batch-1 layers again at the current code (no --choices-from), then merge the new
# choices over the standing's into one choices file for tools/gpu_standing.sh.
#
# The layers of under irprune.tune.LARGE_NNZ nonzeros only: the seven large 1x1 layers were
# tuned again beside the table layout more recently (docs/perf/experiments-retune-52k.json) and
# each of their candidates is a long compile. Each PART stays inside one device command's 10
# minutes; the tuned runs stay on the machine under out/retune/ (git-ignored) for `merge`.
#   1x1     the 17 small 1x1 layers (MobileNetV1 7, ResNet-50 10), batch 1
#   seed    the seed suite, batch 1
#   merge   out/retune/choices.json: CHOICES (default docs/perf/results.json), the tuned
#           runs' records replacing its records of the same layers
#
# Usage (GPU machine, repository root, numpy 2.4 wheel in .whl/):
#   OUT=... bash tools/gpu_retune.sh PART [more irprune bench flags, e.g. --commit SHA]
#   CHOICES=out/retune/choices.json OUT=... bash tools/gpu_standing.sh seed --commit SHA
set -u
OUT=${OUT:-.}
CHOICES=${CHOICES:-docs/perf/results.json}
KEEP=out/retune
MOB=pw_32_64_112,pw_64_128_56,pw_128_128_56,pw_128_256_28,pw_256_256_28,pw_256_512_14
MOB=$MOB,pw_512_512_14
R50=l1_1x1_64_64,l1_1x1_64_256,l1_1x1_256_64,l2_1x1_256_128,l2_1x1_128_512,l2_1x1_512_128
R50=$R50,l2_down_256_512_s2,l3_1x1_512_256,l3_1x1_256_1024,l3_1x1_1024_256
# the tuning runs time irprune's candidates; cuDNN fp32 once, as a check of the run
TUNE=(--batches 1 --sparsities 0.9 --impls irprune,cudnn_fp32 --baseline-processes 1)
part=${1:?"name a part: 1x1, seed or merge"}
shift
here=$(dirname "$0")
mkdir -p "$KEEP"
case $part in
  1x1)
    OUT=$KEEP/mobilenet bash "$here/gpu_bench.sh" --suite mobilenet1x1 --layers "$MOB" \
      "${TUNE[@]}" "$@" >/dev/null &&
    OUT=$KEEP/resnet50 bash "$here/gpu_bench.sh" --suite resnet50 --layers "$R50" \
      "${TUNE[@]}" "$@" >/dev/null
    rc=$?
    cp -r "$KEEP/mobilenet" "$KEEP/resnet50" "$OUT/" 2>/dev/null
    exit $rc ;;
  seed)
    OUT=$KEEP/seed bash "$here/gpu_bench.sh" --suite seed "${TUNE[@]}" "$@" >/dev/null
    rc=$?
    cp -r "$KEEP/seed" "$OUT/" 2>/dev/null
    exit $rc ;;
  merge)
    source "$here/gpu_env.sh" >/dev/null 2>&1
    runs=()
    for p in mobilenet resnet50 seed; do
      [ -f "$KEEP/$p/bench/results.json" ] && runs+=("$KEEP/$p/bench/results.json")
    done
    [ ${#runs[@]} -gt 0 ] || { echo "no tuned run under $KEEP: run the 1x1 or seed part first" >&2; exit 2; }
    python3 -m irprune bench --report "$CHOICES" "${runs[@]}" --out "$KEEP/merged" >/dev/null &&
      cp "$KEEP/merged/results.json" "$KEEP/choices.json" && cp "$KEEP/choices.json" "$OUT/" ;;
  *) echo "unknown part $part: 1x1, seed or merge" >&2; exit 2 ;;
esac
