"""Experiment: cap registers (.maxnreg) so that more threads are resident; does a latency-bound layer speed up?"""
import os, re, sys, copy
from concurrent.futures import ProcessPoolExecutor
import numpy as np
CACHE = "/tmp/abcache3"
# (layer, gs, slices, batch, caps)
CASES = [
    ("resnet_3x3_28", 32, 1, 64, (0, 64, 56, 48, 40, 32)),
    ("resnet_3x3_28", 16, 1, 64, (0, 48, 40, 32)),
    ("resnet_3x3_56", 64, 1, 64, (0, 96, 80, 64, 48)),
    ("vgg16_c3", 64, 1, 64, (0, 96, 80, 64)),
    ("alexnet_cifar_c2", 32, 2, 64, (0, 96, 64)),
    ("resnet_3x3_28", 8, 4, 1, (0, 48, 40, 32)),
    ("alexnet_cifar_c2", 4, 4, 1, (0, 96, 64, 48)),
]


def cap_ptx(ptx, n):
    if not n:
        return ptx
    return re.sub(r"(\.entry\s+\w+\s*\([^)]*\))", lambda m: m.group(1) + f"\n.maxnreg {n}", ptx, count=1)


def build(case, load=False):
    name, gs, sl, batch, caps = case
    os.environ.setdefault("IRPRUNE_JOBS", "1")
    from irprune.bench.compile_jobs import bench_weights
    from irprune.bench.suites import SUITES
    from irprune.cache import DiskCache
    from irprune.codegen import run_ptxas
    from irprune.templates.conv2d import conv2d_nchw
    layer = {l.name: l for ls in SUITES.values() for l in ls}[name]
    w = bench_weights(layer, 0.9, 0)
    k = conv2d_nchw.compile(w, (1, layer.C, layer.H, layer.W), stride=layer.stride, padding=layer.padding,
                            group_size=gs, slices=sl, cache=DiskCache(CACHE))
    out = {}
    for c in caps:
        r = run_ptxas(cap_ptx(k.parts[0].ptx, c))
        out[c] = r
    if load:
        return k, w, layer, out
    return name, gs, sl, {c: (r.registers, r.spill_stores) for c, r in out.items()}


def main():
    import pickle
    with ProcessPoolExecutor(len(CASES)) as ex:
        done = list(ex.map(build, CASES))
    for d in done:
        print("compiled", d, flush=True)
    import torch
    from irprune.bench.timing import measure
    for case in CASES:
        k, w, layer, res = build(case, load=True)
        batch = case[3]
        rot = 4
        xs = [torch.randn(batch, layer.C, layer.H, layer.W, device="cuda") for _ in range(rot)]
        ref = torch.nn.functional.conv2d(xs[0].double(), torch.from_numpy(w).double().cuda(),
                                         stride=layer.stride, padding=layer.padding)
        for c, r in res.items():
            kk = copy.copy(k)
            kk.parts = [copy.copy(k.parts[0])]
            kk.parts[0]._ptxas = r
            kk.stats = dict(k.stats); kk.stats["ptxas"] = r.to_dict()
            kk._loaded = {}; kk._launch_memo = {}
            y = torch.full(ref.shape, float("nan"), device="cuda")
            kk(xs[0], out=y)
            err = float((y.double() - ref).abs().max() / ref.abs().max())
            times = {}
            for blk in (32, 64, 128, 256):
                kk.block = blk
                kk._launch_memo = {}
                try:
                    times[blk] = round(measure(lambda i: kk(xs[i], out=y), rotation=rot, target_ms=8, repeats=5).median_us, 2)
                except Exception as exc:
                    times[blk] = None
            print({"layer": case[0], "gs": case[1], "slices": case[2], "batch": batch, "cap": c,
                   "regs": r.registers, "spill": r.spill_stores, "err": f"{err:.1e}", "us": times}, flush=True)


if __name__ == "__main__":
    main()
