"""Experiment: irprune's table kernels (weights as data, irprune.table_kernel) on the 1x1 layers.

data_kernel.py measured the weights-as-data loop kernel written in CUDA C++; this times the
product version: templates/conv2d_table.py lowered by irprune (embed-tables, async-copy),
launched through irprune's own launch path (``kernel(x, out=y)``: the output zeroed on the
stream first when slices add with atomics). For each 1x1 layer at batch 1 and sparsity 0.9,
the tuned irprune kernel of the 0eb8e05 run and every table configuration of
irprune.table_layout.candidate_configs with each thread count of THREADS, in one process;
every output checked against float64 (outputs poisoned with NaN first, so the launch's
zeroing is checked too); inputs over 16 sets.

    python3 table_ab.py [LAYER ...]    # GPU; results in $OUT/table-ab.json
"""
import json, os, sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

RESULTS = os.path.join(HERE, "..", "..", "docs", "perf", "0eb8e05", "results.json")
CACHE = "/tmp/tablecache"
TUNED_CACHE = "/tmp/datacache"


def one_by_one():
    from irprune.bench.suites import SUITES
    seen = []
    for suite in ("mobilenet1x1", "resnet50"):
        for l in SUITES[suite]:
            if (l.R, l.S) == (1, 1) and l.name not in seen:
                seen.append(l.name)
    return seen


def _build(job):
    name, cfg = job
    from gpu_timing import layer_of
    from irprune.bench.compile_jobs import bench_weights
    from irprune.table_kernel import compile_table_conv2d
    l = layer_of(name)
    compile_table_conv2d(bench_weights(l, 0.9, 0), (1, l.C, l.H, l.W), cfg, stride=l.stride,
                         cache=CACHE, assemble=True)


def _build_tuned(c):
    from gpu_timing import compile_layer
    from irprune.templates.conv2d import conv2d_nchw
    compile_layer(conv2d_nchw, c.layer, c.gs, c.slices, TUNED_CACHE, c.budget, assemble=True)


def main():
    import torch
    from gpu_timing import (build_all, check_then_time, layer_case, layer_of, recorded_configs,
                            tuned_row)
    from irprune.bench.compile_jobs import bench_weights
    from irprune.table_kernel import compile_table_conv2d
    from irprune.table_layout import THREADS, candidate_configs

    layers = sys.argv[1:] or one_by_one()
    jobs = []
    for name in layers:
        l = layer_of(name)
        g = l.geometry(1)
        jobs += [(name, c) for c in candidate_configs(bench_weights(l, 0.9, 0), g, "sm_90")]
    tuned = {c.layer: c for c in recorded_configs(RESULTS, tiles=True, layers=layers)}
    print(len(jobs), "table kernels to compile", flush=True)
    # every kernel first, in parallel processes (into the disk caches): the timing loop then
    # loads them
    build_all(_build_tuned, [c for c in tuned.values() if not c.tile])
    build_all(_build, jobs)
    rows = []
    for name in layers:
        l, w, xs, ref, y = layer_case(name)
        if name in tuned and not tuned[name].tile:
            rows.append(tuned_row(tuned[name], w, l, TUNED_CACHE))
            print(rows[-1], flush=True)
        for job in [j for j in jobs if j[0] == name]:
            c = job[1]
            for nt in THREADS:
                row = {"layer": name, "kind": "table", "tile_k": c.tile_k, "slices": c.slices,
                       "tile_p": c.tile_p, "block": nt}
                try:
                    k = compile_table_conv2d(w, (1, l.C, l.H, l.W), c, stride=l.stride,
                                             cache=CACHE, block=nt)
                    row.update(regs=k.registers, shared=k.shared_bytes)
                    row["err"], row["us"] = check_then_time(lambda i, k=k: k(xs[i], out=y), y,
                                                            ref)
                except Exception as exc:
                    row["error"] = str(exc)[:300]
                rows.append(row)
                print(row, flush=True)
        t = [r for r in rows if r["layer"] == name and r["kind"] == "tuned"]
        done = [r for r in rows if r["layer"] == name and r["kind"] == "table" and "us" in r]
        best = min(done, key=lambda r: r["us"], default=None)
        if t and best:
            print(f"== {name}: tuned {t[0]['us']} | best table {best['us']} (k{best['tile_k']} "
                  f"s{best['slices']} p{best['tile_p']} t{best['block']}) | tuned / table "
                  f"{t[0]['us'] / best['us']:.3f}", flush=True)
        json.dump(rows, open(os.path.join(os.environ.get("OUT", "."), "table-ab.json"), "w"),
                  indent=1)


if __name__ == "__main__":
    main()
