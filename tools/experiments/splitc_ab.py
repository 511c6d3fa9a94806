"""Experiment: 1x1 layers with input-channel slices across blocks (splitc_template.py).

Batch 1, sparsity 0.9 (the bench's weights). Each layer's tuned kernel of the
6450689 run is timed beside split-C variants: group size G, S slices of the
input channels on grid z (each block adds its partial sums into the output
with float atomics), M channel groups per block (threadIdx.z) and blocks of
32 / 64 pixels. Outputs are zeroed and checked against float64 before timing;
the timed loop leaves the output accumulating (the kernel's own time), and the
fastest variant of each layer is timed again with the output zeroed inside the
timed call (cudaMemsetAsync + kernel: what a product would pay without a
fused reduction). Inputs rotate over 16 sets, as in the bench.

    python3 splitc_ab.py [LAYER ...]     # on the GPU; results in $OUT/splitc_ab.json
"""
import json, os, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_timing import best_time, build_all, built_in_kernel, compile_layer, layer_of
from pwtile_ab import tuned

CACHE = "/tmp/splitcache"
GROUPS = (4, 8, 16)
SLICES = (2, 4, 8)
PER_BLOCK = (1, 2, 4, 8, 16)
BLOCKS = (32, 64)
BUDGET = 128
MIN_SLICE_CHANNELS = 16


def split_kernel(name, gs, s):
    from splitc_template import conv2d_splitc
    return compile_layer(conv2d_splitc, name, gs, s, CACHE, BUDGET, assemble=True)


def prebuild(job):
    kind, name, a, b = job
    if kind == "split":
        split_kernel(name, a, b)
    else:
        from irprune.templates.conv2d import conv2d_nchw
        compile_layer(conv2d_nchw, name, *a[:2], CACHE, a[2], assemble=True)


def as_split_launch(k, s):
    """Launch kernel ``k`` (compiled with slices = S) as grid (px, groups / M, S), block (bx, 1, M)."""
    from irprune.kernel import SparseConvKernel

    g = k.geometry

    class SplitKernel(SparseConvKernel):
        @property
        def shared_bytes(self):
            return 0

        def part_launches(self, batch=None):
            pixels = (g.N if batch is None else batch) * g.OH * g.OW
            m = self.groups_per_block
            return [(p, (-(-pixels // self.block), p.groups // m, s), (self.block, 1, m))
                    for p in self.parts]

    k.__class__ = SplitKernel
    return k


def time_split(k, w, l, s, rotation=16):
    """[(us, bx, m, err)] of every launch shape of split kernel ``k``."""
    import torch
    from irprune.bench.timing import measure
    xs = [torch.randn(1, l.C, l.H, l.W, device="cuda") for _ in range(rotation)]
    ref = torch.nn.functional.conv2d(xs[0].double(), torch.from_numpy(w).double().cuda(),
                                     stride=l.stride, padding=l.padding)
    y = torch.empty(ref.shape, device="cuda")
    out = []
    for m in PER_BLOCK:
        if k.groups % m:
            continue
        for bx in BLOCKS:
            if bx * m > 1024:
                continue
            k.block, k.groups_per_block = bx, m
            y.zero_()
            try:
                k(xs[0], out=y)
                torch.cuda.synchronize()
            except Exception as exc:
                print("  launch", bx, m, "failed:", str(exc)[:100])
                continue
            err = float((y.double() - ref).abs().max() / ref.abs().max())
            t = measure(lambda i: k(xs[i], out=y), rotation=rotation, target_ms=5,
                        repeats=3).median_us
            out.append((t, bx, m, err))
    return out, xs, y


def time_with_zeroing(k, l, v):
    """Median us of split kernel ``k`` (layer ``l``) launched as variant row ``v`` (slices, block,
    groups per block) with the output zeroed inside the timed call, inputs over 16 sets."""
    import torch
    from irprune.bench.timing import measure
    k = as_split_launch(k, v["s"])
    k.block, k.groups_per_block = v["block"], v["m"]
    xs = [torch.randn(1, l.C, l.H, l.W, device="cuda") for _ in range(16)]
    y = torch.zeros(1, l.K, k.geometry.OH, k.geometry.OW, device="cuda")

    def call(i):
        y.zero_()
        k(xs[i], out=y)
    return round(measure(call, rotation=16, target_ms=5, repeats=3).median_us, 3)


def main():
    out = os.environ.get("OUT", ".")
    base = tuned()
    names = sys.argv[1:] or list(base)
    jobs = [("base", n, base[n][:3], None) for n in names]
    for n in names:
        l = layer_of(n)
        for gs in GROUPS:
            for s in SLICES:
                if gs <= l.K and l.K % gs == 0 and l.C // s >= MIN_SLICE_CHANNELS:
                    jobs.append(("split", n, gs, s))
    print(len(jobs), "kernels", flush=True)
    t0 = time.time()
    build_all(prebuild, jobs)
    print(f"compiled in {time.time() - t0:.0f} s", flush=True)
    rows = []
    for kind, name, a, s in jobs:
        try:
            if kind == "base":
                gs, sl, budget, blk, per = base[name]
                k, w, l = built_in_kernel(name, gs, sl, CACHE)
                k = k.with_max_registers(budget)
                k.groups_per_block = per
                best = best_time(k, w, l, 1, (blk,), rotation=16)
                row = {"layer": name, "kind": "tuned", "gs": gs, "slices": sl, "m": per,
                       "budget": budget, "us": round(best[0], 3), "block": blk,
                       "err": f"{best[2]:.1e}"}
                rows.append(row)
                print(row, flush=True)
                continue
            k, w, l = split_kernel(name, a, s)
            k = as_split_launch(k, s)
            for t, bx, m, err in time_split(k, w, l, s)[0]:
                row = {"layer": name, "kind": "split", "gs": a, "s": s, "m": m, "block": bx,
                       "us": round(t, 3), "err": f"{err:.1e}", "regs": k.registers}
                rows.append(row)
            print(name, a, s, min((r["us"], r["m"], r["block"]) for r in rows
                                  if r["layer"] == name and r.get("gs") == a and r.get("s") == s),
                  flush=True)
        except Exception as exc:
            row = {"layer": name, "kind": kind, "a": str(a), "s": s, "error": str(exc)[:300]}
            rows.append(row)
            print(row, flush=True)
    # The fastest split variant again, with the output zeroed inside the timed call.
    for name in names:
        rs = [r for r in rows if r["layer"] == name and r["kind"] == "split" and "us" in r]
        if not rs:
            continue
        v = min(rs, key=lambda r: r["us"])
        k, w, l = split_kernel(name, v["gs"], v["s"])
        v["us_with_zero"] = time_with_zeroing(k, l, v)
    json.dump(rows, open(os.path.join(out, "splitc_ab.json"), "w"), indent=1)
    for name in names:
        rs = [r for r in rows if r["layer"] == name and "us" in r]
        t = [r for r in rs if r["kind"] == "tuned"]
        v = min((r for r in rs if r["kind"] == "split"), key=lambda r: r["us"], default=None)
        print(f"{name}: tuned {t[0]['us'] if t else None} | best split "
              f"{v and (v['us'], v.get('us_with_zero'), v['gs'], v['s'], v['m'], v['block'])} | "
              f"ratio {t and v and round(t[0]['us'] / v['us'], 3)}", flush=True)


if __name__ == "__main__":
    main()
