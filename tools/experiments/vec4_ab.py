"""Experiment: four output pixels a thread with 16-byte loads (vec4_template.py) against each
eligible 1x1 layer's tuned kernel at batch 1.

Eligible: 1x1, stride 1, H * W a multiple of 4, at most MAX_NNZ nonzeros (the mobilenet1x1 and
ResNet-50 1x1 layers but the 7x7, strided and largest ones). The tuned kernel is the configuration the standing's run chose
(docs/perf/results.json), timed with its own block and groups a block; each vec4 kernel (group
size 2-8, register budget 128) at blocks 32-256 and 1, 2 or 4 groups a block, the fastest
kept. Every output is checked against float64 first (best_time); inputs over 16 sets. All
kernels are compiled in parallel processes before any timing.

    python3 vec4_ab.py [LAYER ...]     # on the GPU; results in $OUT/vec4_ab.json
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gpu_timing import (best_time, build_all, compile_layer, layer_of, print_geomeans,
                        recorded_configs, save_row, tuned_row)

CACHE = "/tmp/vec4cache"
RESULTS = os.path.join(HERE, "..", "..", "docs", "perf", "results.json")
GROUPS = (2, 4, 8)
#: Layers of more nonzeros are left out (their code, not their loads, sets their time; and four
#: FFMAs a nonzero make modules that ptxas takes minutes over).
MAX_NNZ = 16384
BLOCKS = (32, 64, 128, 256)
PER_BLOCK = (1, 2, 4)
BUDGET = 128


def eligible(name):
    from irprune.bench.compile_jobs import bench_weights
    l = layer_of(name)
    return ((l.R, l.S) == (1, 1) and l.stride == 1 and l.padding == 0 and (l.H * l.W) % 4 == 0
            and int((bench_weights(l, 0.9, 0) != 0).sum()) <= MAX_NNZ)


def vec4_kernel(gs):
    from vec4_template import conv2d_vec4
    return lambda name: compile_layer(conv2d_vec4, name, gs, 1, CACHE, BUDGET, assemble=True)


def as_vec4_launch(k):
    """Kernel ``k`` of the vec4 template launched with one thread for each four pixels."""
    from irprune.kernel import SparseConvKernel, check_grid

    class Vec4Kernel(SparseConvKernel):
        def grid_for(self, batch):
            g = self.geometry
            quads = batch * g.OH * g.OW // 4
            check_grid(quads, self.groups)
            return (-(-quads // self.block), self.groups, 1)

    k.__class__ = Vec4Kernel
    return k


def prebuild(job):
    kind, name, gs, budget = job
    if kind == "vec4":
        vec4_kernel(gs)(name)
    else:
        from irprune.templates.conv2d import conv2d_nchw
        compile_layer(conv2d_nchw, name, gs, 1, CACHE, budget, assemble=True)


def main():
    base = {c.layer: c for c in recorded_configs(RESULTS, tiles=False)
            if c.batch == 1 and c.suite != "seed" and c.gs and eligible(c.layer)}
    names = [n for n in (sys.argv[1:] or base) if n in base]
    jobs = [("base", n, base[n].gs, base[n].budget) for n in names if base[n].slices == 1]
    jobs += [("vec4", n, gs, BUDGET) for n in names for gs in GROUPS if layer_of(n).K % gs == 0]
    print(len(jobs), "kernels", flush=True)
    build_all(prebuild, jobs)
    rows = []
    from irprune.bench.compile_jobs import bench_weights
    for n in names:
        c = base[n]
        l = layer_of(n)
        try:
            t = tuned_row(c, bench_weights(l, 0.9, 0), l, CACHE)
            row = {"suite": c.suite, "layer": n, "batch": 1, "tuned_us": t["us"],
                   "tuned": f"g{c.gs} s{c.slices} m{c.m} b{c.block} r{c.budget}",
                   "tuned_err": t["err"]}
        except Exception as exc:
            save_row(rows, {"layer": n, "error": str(exc)[:300]}, "vec4_ab.json")
            continue
        best = None
        for gs in GROUPS:
            if l.K % gs:
                continue
            try:
                k, w, l = vec4_kernel(gs)(n)
                k = as_vec4_launch(k)
                row[f"g{gs}_regs"] = k.registers
                for m in PER_BLOCK:
                    if k.groups % m:
                        continue
                    k.groups_per_block = m
                    blocks = tuple(b for b in BLOCKS if b * m <= 1024)
                    t = best_time(k, w, l, 1, blocks, rotation=16)
                    if t and (best is None or t[0] < best[0]):
                        best = (t[0], f"g{gs} m{m} b{t[1]}", t[2])
            except Exception as exc:
                row[f"g{gs}_error"] = str(exc)[:200]
        if best:
            row.update(vec4_us=round(best[0], 3), vec4=best[1], vec4_err=f"{best[2]:.1e}",
                       speedup=round(row["tuned_us"] / best[0], 3))
        save_row(rows, row, "vec4_ab.json")
    print_geomeans(rows)


if __name__ == "__main__":
    main()
