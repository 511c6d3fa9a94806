#!/usr/bin/env bash
# On the lent GPU: the same `irprune bench` for every version in ab/ (tools/ab_prepare.sh) and for
# the working tree, one after the other in one session, then irprune's time per layer and batch
# side by side with cuDNN fp32 (which should not move between versions; if it does, the run is noisy).
#   bash tools/gpu_ab.sh --suite seed --layers resnet_3x3_28,vgg16_c3 --sparsities 0.9 --no-tune --impls irprune,cudnn_fp32
# Each version runs from its own directory, so that `import irprune` finds that copy
# (the current directory comes first on sys.path). Results under $OUT/ab/<version>/.
set -u
OUT=${OUT:-.}
source "$(dirname "$0")/gpu_env.sh" >/dev/null 2>&1
OUT=$(realpath -m "$OUT"); mkdir -p "$OUT/ab"
root=$PWD
versions=$(ls ab 2>/dev/null) ; versions="$versions current"
for v in $versions; do
  dir=$root/ab/$v; [ "$v" = current ] && dir=$root
  (cd "$dir" && python3 -c "import irprune; print('$v:', irprune.__file__)" &&
   PYTHONUNBUFFERED=1 python3 -m irprune bench --out "$OUT/ab/$v" "$@" > "$OUT/ab/$v.log" 2>&1
   echo "$v: bench exit $?")
  rm -rf "$OUT/ab/$v/plots"
done
python3 - "$OUT/ab" $versions <<'PY'
import json, sys
root, versions = sys.argv[1], sys.argv[2:]
rows = {}
for v in versions:
    try:
        recs = json.load(open(f"{root}/{v}/results.json"))["records"]
    except (OSError, ValueError) as exc:
        print(f"{v}: no results ({exc})")
        continue
    t = {(r["layer"], r["batch"], r.get("sparsity"), r["impl"]): r["median_us"] for r in recs if "median_us" in r}
    for (layer, b, sp, impl), us in t.items():
        if impl == "irprune":
            rows.setdefault((layer, b, sp), {})[v] = (us, t.get((layer, b, sp, "cudnn_fp32")))
print("| layer | batch | sparsity | " + " | ".join(f"{v} irprune us (cuDNN fp32)" for v in versions) + " |")
print("|" + "---|" * (3 + len(versions)))
for (layer, b, sp), per in sorted(rows.items()):
    cells = [f"{per[v][0]:.2f} ({per[v][1]:.2f})" if v in per and per[v][1] else "-" for v in versions]
    print(f"| {layer} | {b} | {sp} | " + " | ".join(cells) + " |")
PY
