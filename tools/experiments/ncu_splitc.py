"""Experiment: Nsight Compute's view of split-C kernels (splitc_template.py) beside the tuned one.

    python3 ncu_splitc.py LAYER tuned            # the 6450689 tuned kernel
    python3 ncu_splitc.py LAYER G S M BX         # split-C: group G, S slices on grid z, M groups a block

Each is checked against float64, then launched 32 times over 16 inputs (profile the last
launch with ncu --launch-skip 30 --launch-count 1; ncu_splitc.sh does).
"""
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_timing import built_in_kernel
from pwtile_ab import tuned
from splitc_ab import CACHE, as_split_launch, split_kernel


def main():
    import torch
    name = sys.argv[1]
    if sys.argv[2] == "tuned":
        gs, sl, budget, blk, per = tuned()[name]
        k, w, l = built_in_kernel(name, gs, sl, CACHE)
        k = k.with_max_registers(budget)
        k.block, k.groups_per_block = blk, per
    else:
        gs, s, m, bx = map(int, sys.argv[2:6])
        k, w, l = split_kernel(name, gs, s)
        k = as_split_launch(k, s)
        k.block, k.groups_per_block = bx, m
    k.ptxas()
    xs = [torch.randn(1, l.C, l.H, l.W, device="cuda") for _ in range(16)]
    ref = torch.nn.functional.conv2d(xs[0].double(), torch.from_numpy(w).double().cuda(),
                                     stride=l.stride, padding=l.padding)
    y = torch.zeros(ref.shape, device="cuda")
    k(xs[0], out=y)
    torch.cuda.synchronize()
    err = float((y.double() - ref).abs().max() / ref.abs().max())
    print(name, sys.argv[2:], "registers", k.registers, f"err {err:.1e}", file=sys.stderr, flush=True)
    for i in range(32):
        k(xs[i % 16], out=y)
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
