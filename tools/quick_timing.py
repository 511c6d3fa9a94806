"""A first side-by-side timing of one layer (not the benchmark suite: see issue #4).

Times, in one process on one GPU, with CUDA events around many launches after
warm-up (median of repeats): irprune's kernel, the same template launched dense
through Numba, and cuDNN fp32 (TF32 off) and TF32. Prints one line per impl.

    python3 tools/quick_timing.py [--sparsity 0.9] [--batch 1]
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np


def median_us(fn, reps=200, repeats=7):
    import torch

    for _ in range(20):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(repeats):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(reps):
            fn()
        b.record()
        torch.cuda.synchronize()
        out.append(a.elapsed_time(b) * 1000 / reps)
    return float(np.median(out))


def main():
    import torch
    from numba import cuda

    import irprune
    from irprune.reference import prune_random
    from irprune.templates.conv2d import conv2d_nchw

    ap = argparse.ArgumentParser()
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--batch", type=int, default=1)
    args = ap.parse_args()
    N, C, H, K = args.batch, 64, 56, 64
    w = prune_random((K, C, 3, 3), args.sparsity, seed=0)
    k = irprune.conv2d(w, (N, C, H, H), padding=1)
    x = torch.randn(N, C, H, H, device="cuda")
    y = torch.empty(N, K, H, H, device="cuda")
    wt = torch.from_numpy(w).cuda()
    ref = torch.nn.functional.conv2d(x.double(), wt.double(), padding=1)
    k(x, out=y)
    torch.cuda.synchronize()
    err = float((y.double() - ref).norm() / ref.norm())
    res = {"layer": "resnet_3x3_56", "batch": N, "sparsity": args.sparsity, "rel_err": err,
           "nnz": k.stats["nnz"], "fma_ptx": k.stats["fma_ptx"]}
    res["irprune_us"] = median_us(lambda: k(x, out=y))
    xd, wd, yd = cuda.as_cuda_array(x), cuda.as_cuda_array(wt), cuda.as_cuda_array(y)
    bd = cuda.device_array(0, np.float32)
    gs = k.group_size
    grid = (-(-N * H * H // 128), -(-K // gs))
    dense = conv2d_nchw[grid, 128]
    res["dense_template_us"] = median_us(lambda: dense(xd, wd, bd, yd, 1, 1, False, gs))
    torch.backends.cudnn.allow_tf32 = False
    res["cudnn_fp32_us"] = median_us(lambda: torch.nn.functional.conv2d(x, wt, padding=1))
    torch.backends.cudnn.allow_tf32 = True
    res["cudnn_tf32_us"] = median_us(lambda: torch.nn.functional.conv2d(x, wt, padding=1))
    print(json.dumps(res))
    out = os.environ.get("OUT")
    if out:
        with open(os.path.join(out, f"quick_timing_b{N}.json"), "w") as fh:
            json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
