"""Experiment: finer work splits for the layers with few output pixels, batch 1.

At batch 1 a layer of 64-784 output pixels has few threads, and each runs its channel group's
straight-line code alone (docs/perf-log.md, "Input-channel slices"). The tuner's smallest split
is group size 2 (only where group size 4 leaves few threads) with up to 8 slices of at least 4
input channels each. This times the splits below that: group size 1 (one output channel a code
region) and 16 slices, beside group sizes 2 and 4 and the configuration the c850520/e232f1a
runs chose, all with the built-in template, register budget 128, one channel group a block.
Every output is checked against float64 (poisoned with NaN first); inputs over 16 sets.

    python3 fine_split.py [LAYER ...]     # GPU; results in $OUT/fine-split.json
"""
import json, os, sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

RESULTS = os.path.join(HERE, "..", "..", "docs", "perf", "results.json")
CACHE = "/tmp/finesplit"
LAYERS = ("alexnet_cifar_c2", "alexnet_cifar_c3", "lenet5_c2", "resnet_3x3_28",
          "l3_1x1_1024_256", "pw_512_512_14", "l3_1x1_256_1024", "pw_256_512_14",
          "l2_1x1_512_128", "l4_1x1_1024_512")
GROUPS = (1, 2, 4)
SLICES = (1, 2, 4, 8, 16)
BLOCKS = (32, 64, 128, 256)


def configs(name):
    """(group size, slices) pairs to compile for layer ``name``: each slice keeps 2+ channels."""
    from gpu_timing import layer_of
    l = layer_of(name)
    return [(g, s) for g in GROUPS for s in SLICES if l.C // s >= 2 and l.K % g == 0]


def _build(job):
    from gpu_timing import compile_layer
    from irprune.templates.conv2d import conv2d_nchw
    name, gs, sl, budget = job
    compile_layer(conv2d_nchw, name, gs, sl, CACHE, budget, assemble=True)


def main():
    from gpu_timing import (best_time, build_all, compile_layer, layer_of, recorded_configs,
                            tuned_row)
    from irprune.bench.compile_jobs import bench_weights
    from irprune.templates.conv2d import conv2d_nchw
    layers = sys.argv[1:] or LAYERS
    chosen = {c.layer: c for c in recorded_configs(RESULTS, tiles=False, layers=layers)
              if c.batch == 1}
    jobs = [(n, g, s, 128) for n in layers for g, s in configs(n)]
    jobs += [(c.layer, c.gs, c.slices, c.budget) for c in chosen.values()]
    build_all(_build, jobs)
    rows = []
    for name in layers:
        c = chosen.get(name)
        if c:
            l = layer_of(name)
            base = tuned_row(c, bench_weights(l, 0.9, 0), l, CACHE)
            # this script's row keys (docs/perf/experiments-fine-split.json)
            base.update(kind="chosen", gs=base.pop("g"), budget=c.budget)
            rows.append(base)
            print(base, flush=True)
        for g, s in configs(name):
            try:
                k, w, l = compile_layer(conv2d_nchw, name, g, s, CACHE, 128, assemble=True)
            except Exception as exc:
                print(name, g, s, "compile failed:", str(exc)[:200], flush=True)
                continue
            blocks = [b for b in BLOCKS if b * s <= 1024]
            got = best_time(k, w, l, 1, blocks, rotation=16)
            if got is None:
                continue
            us, blk, err = got
            row = {"layer": name, "kind": "split", "gs": g, "slices": s, "budget": 128, "m": 1,
                   "block": blk, "us": round(us, 3), "err": f"{err:.1e}"}
            if c:
                row["chosen_over_this"] = round(base["us"] / us, 3)
            rows.append(row)
            print(row, flush=True)
    out = os.path.join(os.environ.get("OUT", "."), "fine-split.json")
    json.dump(rows, open(out, "w"), indent=1)
    for name in layers:
        mine = [r for r in rows if r["layer"] == name and r["kind"] == "split"]
        ch = [r for r in rows if r["layer"] == name and r["kind"] == "chosen"]
        if mine:
            b = min(mine, key=lambda r: r["us"])
            print(f"{name}: chosen {ch[0]['us'] if ch else '-'} us; best split gs {b['gs']} "
                  f"slices {b['slices']} block {b['block']}: {b['us']} us", flush=True)


if __name__ == "__main__":
    main()
