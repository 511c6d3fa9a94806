"""Experiment: 1x1 layers with one shared-memory input tile per block (pwtile_template.py).

Batch 1, sparsity 0.9 (the bench's weights). Each layer's tuned kernel of the
6450689 run (built-in template, its group size, slices, budget, block and
groups per block) is timed beside the tile variants: group size G, M groups
per block (the tile's fill is unrolled for M), blocks of 32 / 64 / 128 pixels
where the tile fits (bx x (C + 1) x 4 bytes of dynamic shared memory; over
48 KB the function is opted in with CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES).
Every output is checked against float64 before it is timed; inputs rotate over
16 sets, as in the bench.

    python3 pwtile_ab.py [LAYER ...]     # on the GPU; results in $OUT/pwtile_ab.json
"""
import json, os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_timing import best_time, build_all, built_in_kernel, compile_layer, layer_of

CACHE = "/tmp/pwcache"
HERE = os.path.dirname(os.path.abspath(__file__))
PERF = os.path.join(HERE, "..", "..", "docs", "perf", "6450689")
VARIANTS = ((4, 4), (4, 8), (8, 2), (8, 4), (8, 8), (16, 2), (16, 4), (32, 2))
BUDGET = 128
SMEM_OPT_IN = 227 * 1024


def tuned():
    """layer -> (group size, slices, budget, block, groups per block) of the 6450689 run."""
    out = {}
    for f in ("mobilenet1x1-0.9-b1.json", "resnet50-1x1a-0.9-b1.json", "resnet50-1x1b-0.9-b1.json"):
        for r in json.load(open(os.path.join(PERF, f)))["records"]:
            if r.get("impl") == "irprune" and r.get("status") == "ok":
                out[r["layer"]] = (r["group_size"], r["slices"], r["max_registers"], r["block"],
                                   r["groups_per_block"])
    return out


def tile_kernel(name, gs, m):
    from pwtile_template import conv2d_pw_tile
    return compile_layer(conv2d_pw_tile, name, gs, m, CACHE, BUDGET, assemble=True)


def base_kernel(name, gs, sl, budget):
    """Layer ``name``'s tuned configuration with the built-in template, assembled at ``budget``."""
    from irprune.templates.conv2d import conv2d_nchw
    return compile_layer(conv2d_nchw, name, gs, sl, CACHE, budget, assemble=True)


def prebuild(job):
    kind, name, a, b = job
    if kind == "tile":
        tile_kernel(name, a, b)
    else:
        base_kernel(name, *a)


def as_tile_launch(k, m):
    """Make kernel ``k`` (compiled with slices = M) launch as blocks of (bx, 1, M) with its tile."""
    from irprune.kernel import SparseConvKernel

    g = k.geometry

    class TileKernel(SparseConvKernel):
        @property
        def shared_bytes(self):
            return 4 * self.block * (g.C + 1)

        def part_launches(self, batch=None):
            pixels = (g.N if batch is None else batch) * g.OH * g.OW
            return [(p, (-(-pixels // self.block), p.groups // m, 1), (self.block, 1, m))
                    for p in self.parts]

    k.__class__ = TileKernel
    k.groups_per_block = m
    from numba.cuda.cudadrv.driver import binding, driver
    from irprune.launch import _functions
    from numba import cuda
    attr = binding.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
    for fn in _functions(k):
        driver.cuKernelSetAttribute(attr, SMEM_OPT_IN, fn.handle, cuda.get_current_device().id)
    return k


def main():
    out = os.environ.get("OUT", ".")
    base = tuned()
    names = sys.argv[1:] or list(base)
    jobs = [("base", n, base[n][:3], None) for n in names]
    for n in names:
        l = layer_of(n)
        for gs, m in VARIANTS:
            if gs * m <= l.K and l.K % (gs * m) == 0:
                jobs.append(("tile", n, gs, m))
    print(len(jobs), "kernels", flush=True)
    build_all(prebuild, jobs)
    rows = []
    for kind, name, a, m in jobs:
        try:
            if kind == "base":
                gs, sl, budget, blk, per = base[name]
                k, w, l = built_in_kernel(name, gs, sl, CACHE)
                k = k.with_max_registers(budget)
                k.groups_per_block = per
                blocks = (blk,)
                row = {"layer": name, "kind": "tuned", "gs": gs, "slices": sl, "m": per,
                       "budget": budget}
            else:
                k, w, l = tile_kernel(name, a, m)
                k = as_tile_launch(k, m)
                blocks = tuple(b for b in (32, 64, 128) if b * m <= 1024
                               and 4 * b * (l.C + 1) <= SMEM_OPT_IN)
                row = {"layer": name, "kind": "tile", "gs": a, "m": m, "budget": BUDGET}
            best = best_time(k, w, l, 1, blocks, rotation=16)
            row["regs"] = k.registers
            if best:
                row.update(us=round(best[0], 3), block=best[1], err=f"{best[2]:.1e}")
        except Exception as exc:
            row = {"layer": name, "kind": kind, "a": str(a), "m": m, "error": str(exc)[:300]}
        rows.append(row)
        print(row, flush=True)
    json.dump(rows, open(os.path.join(out, "pwtile_ab.json"), "w"), indent=1)
    for name in names:
        rs = [r for r in rows if r["layer"] == name and "us" in r]
        t = [r for r in rs if r["kind"] == "tuned"]
        v = min((r for r in rs if r["kind"] == "tile"), key=lambda r: r["us"], default=None)
        print(f"{name}: tuned {t[0]['us'] if t else None} | best tile "
              f"{v and (v['us'], v['gs'], v['m'], v['block'])} | ratio "
              f"{t and v and round(t[0]['us'] / v['us'], 3)}", flush=True)


if __name__ == "__main__":
    main()
