"""Experiment: where the time of a 1x1 layer's tuned kernel goes, read by Nsight Compute.

Each named layer's tuned kernel of the 6450689 run (group size, slices, budget,
block, groups per block; batch 1, sparsity 0.9) is checked against float64 and
then launched 32 times over 16 inputs, as the bench rotates them; ncu_1x1.sh
profiles the last launch with the caches left as they are (--cache-control none):

    bash ncu_1x1.sh   # from the repository root: ncu's raw metrics of each layer's last launch

after ``python3 ncu_1x1.py prebuild`` (every tuned kernel into the cache, in parallel).
"""
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_timing import build_all, built_in_kernel
from pwtile_ab import CACHE, prebuild, tuned



def main():
    import torch
    base = tuned()
    if sys.argv[1] == "prebuild":  # compile every layer's tuned kernel into the cache, 16 at a time
        build_all(prebuild, [("base", n, base[n][:3], None) for n in base])
        return
    for name in sys.argv[1:]:
        gs, sl, budget, blk, per = base[name]
        k, w, l = built_in_kernel(name, gs, sl, CACHE)
        k = k.with_max_registers(budget)
        k.ptxas()  # the cubin, as the bench loads it
        k.block, k.groups_per_block = blk, per
        xs = [torch.randn(1, l.C, l.H, l.W, device="cuda") for _ in range(16)]
        x = xs[0]
        ref = torch.nn.functional.conv2d(x.double(), torch.from_numpy(w).double().cuda(),
                                         stride=l.stride, padding=l.padding)
        y = k(x)
        torch.cuda.synchronize()
        err = float((y.double() - ref).abs().max() / ref.abs().max())
        print(name, (gs, sl, budget, blk, per), "registers", k.registers, f"err {err:.1e}",
              file=sys.stderr, flush=True)
        # Then 32 launches over the 16 inputs, as the bench rotates them (profile the last ones).
        for i in range(32):
            k(xs[i % 16], out=y)
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
