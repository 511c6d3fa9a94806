"""Experiment: is a multi-region layer slowed by instruction fetch? And where does the GPU place blocks?"""
import os, sys, time, json
from concurrent.futures import ProcessPoolExecutor
import numpy as np
CACHE = "/tmp/abcache2"
CASES = [(32, 32), (64, 32), (128, 32), (128, 16), (64, 64), (128, 64)]  # (K, group size)


def build(case, load=False):
    K, gs = case
    os.environ.setdefault("IRPRUNE_JOBS", "1")
    from irprune.bench.compile_jobs import bench_weights
    from irprune.bench.suites import SUITES
    from irprune.cache import DiskCache
    from irprune.templates.conv2d import conv2d_nchw
    layer = {l.name: l for ls in SUITES.values() for l in ls}["resnet_3x3_28"]
    w = np.ascontiguousarray(bench_weights(layer, 0.9, 0)[:K])
    k = conv2d_nchw.compile(w, (1, layer.C, layer.H, layer.W), stride=1, padding=1, group_size=gs,
                            cache=DiskCache(CACHE), assemble=True)
    return (k, w, layer) if load else (case, k.stats["ptxas"]["registers"], k.stats["ptxas"]["cubin_bytes"])


def placement():
    import cupy as cp
    src = r'''
    extern "C" __global__ void where(int *sm, long long spin) {
        unsigned s; asm volatile("mov.u32 %0, %%smid;" : "=r"(s));
        long long t0 = clock64(); while (clock64() - t0 < spin) {}
        if (threadIdx.x == 0) sm[blockIdx.x + blockIdx.y * gridDim.x] = s;
    }'''
    k = cp.RawKernel(src, "where")
    for grid in [(396, 1), (99, 4), (784, 1)]:
        n = grid[0] * grid[1]
        sm = cp.full(n, -1, dtype=cp.int32)
        k(grid, (256,), (sm, np.int64(200000)))
        cp.cuda.runtime.deviceSynchronize()
        s = sm.get()
        per = {}
        for b, m in enumerate(s):
            per.setdefault(int(m), []).append(b)
        first = sorted(per.items())[:12]
        print("grid", grid, "SMs used", len(per), "blocks of SM 0..11:", first, flush=True)


def main():
    placement()
    with ProcessPoolExecutor(6) as ex:
        for i in ex.map(build, CASES):
            print("compiled", i, flush=True)
    import torch
    from irprune.bench.timing import measure
    for case in CASES:
        k, w, layer = build(case, load=True)
        rot = 4
        xs = [torch.randn(64, layer.C, layer.H, layer.W, device="cuda") for _ in range(rot)]
        ref = torch.nn.functional.conv2d(xs[0].double(), torch.from_numpy(w).double().cuda(), padding=1)
        y = torch.full(ref.shape, float("nan"), device="cuda")
        k(xs[0], out=y)
        err = float((y.double() - ref).abs().max() / ref.abs().max())
        res = {}
        for blk in (64, 128, 256):
            k.block = blk
            res[blk] = round(measure(lambda i: k(xs[i], out=y), rotation=rot, target_ms=10, repeats=5).median_us, 2)
        print({"K": case[0], "gs": case[1], "regions": len(range(0, case[0], case[1])), "err": err, "us": res}, flush=True)


if __name__ == "__main__":
    main()
