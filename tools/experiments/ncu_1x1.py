"""Experiment: where the time of a 1x1 layer's tuned kernel goes, read by Nsight Compute.

Each named layer's tuned kernel of the 6450689 run (group size, slices, budget,
block, groups per block; batch 1, sparsity 0.9) is checked against float64 and
launched a few times on fresh inputs; run under ncu, which replays each launch
with the caches flushed (inputs from DRAM, as in the bench):

    ncu --clock-control none -k regex:irprune --launch-skip 2 --launch-count 1 \
        --section SpeedOfLight --section WarpStateStats --section MemoryWorkloadAnalysis \
        --section LaunchStats --section Occupancy --csv --page details \
        python3 ncu_1x1.py LAYER > LAYER.csv

after ``python3 ncu_1x1.py prebuild`` (every tuned kernel into the cache, in parallel).
"""
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_timing import built_in_kernel
from pwtile_ab import CACHE, prebuild, tuned



def main():
    import torch
    base = tuned()
    if sys.argv[1] == "prebuild":  # compile every layer's tuned kernel into the cache, 16 at a time
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(16) as ex:
            print([e for e in ex.map(prebuild, [("base", n, base[n][:3], None) for n in base]) if e])
        return
    for name in sys.argv[1:]:
        gs, sl, budget, blk, per = base[name]
        k, w, l = built_in_kernel(name, gs, sl, CACHE)
        k = k.with_max_registers(budget)
        k.ptxas()  # the cubin, as the bench loads it
        k.block, k.groups_per_block = blk, per
        x = torch.randn(1, l.C, l.H, l.W, device="cuda")
        ref = torch.nn.functional.conv2d(x.double(), torch.from_numpy(w).double().cuda(),
                                         stride=l.stride, padding=l.padding)
        for _ in range(4):
            y = k(x)
        torch.cuda.synchronize()
        err = float((y.double() - ref).abs().max() / ref.abs().max())
        print(name, (gs, sl, budget, blk, per), "registers", k.registers, f"err {err:.1e}",
              file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
