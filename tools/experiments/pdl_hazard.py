"""Experiment: what the wait of grid-dependency-wait protects, shown by taking it away.

Two layers chained as in tests/gpu/test_dependent_launch_gpu.py: A (16 -> 64, 3x3, 56x56)
writes one buffer, B (64 -> 8, 1x1) reads it, 64 times with a new input each time, eagerly and
as CUDA-graph replays, every output compared with float64. A lets its dependents launch as soon
as it starts (``griddepcontrol.launch_dependents`` after its wait; ``HAZARD_A=compiled``: A as
irprune compiles it, which never triggers early). B is launched with programmatic stream
serialization in two builds:

- ``wait``: irprune's kernel as compiled (``griddepcontrol.wait`` first);
- ``no_wait``: the same PTX with the wait deleted, re-assembled.

Without the wait, B's blocks may read the buffer while A still writes it; the count of wrong
outputs says whether the GPU test of the chain can fail.

    python3 pdl_hazard.py      # GPU; rows in $OUT/pdl-hazard.json
"""
import copy
import dataclasses
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def main():
    import numpy as np
    import torch
    from gpu_timing import save_row
    from pdl_chain import _caller, _config
    from irprune.codegen import run_ptxas
    from irprune.launch import _functions
    import irprune
    from irprune.reference import prune_random

    wa = prune_random((64, 16, 3, 3), 0.9, seed=21)
    wb = prune_random((8, 64, 1, 1), 0.5, seed=22)
    a = irprune.conv2d(wa, (1, 16, 56, 56), padding=1, cache=False)
    if os.environ.get("HAZARD_A", "early") == "early":
        # A lets B launch as soon as it starts, as other libraries' kernels may
        a = copy.copy(a)
        a.parts = [dataclasses.replace(p, ptx=p.ptx.replace(
            "griddepcontrol.wait;", "griddepcontrol.wait;\n\tgriddepcontrol.launch_dependents;"),
            _ptxas=None) for p in a.parts]
        a._loaded, a._launch_memo = {}, {}
    b = irprune.conv2d(wb, (1, 64, 56, 56), cache=False)
    xs = [torch.randn(1, 16, 56, 56, device="cuda") for _ in range(8)]
    refs = [torch.nn.functional.conv2d(torch.nn.functional.conv2d(
        x.double(), torch.from_numpy(wa).double().cuda(), padding=1),
        torch.from_numpy(wb).double().cuda()) for x in xs]
    mid = torch.empty(1, 64, 56, 56, device="cuda")
    outs = [torch.empty(1, 8, 56, 56, device="cuda") for _ in range(64)]
    rows = []
    for what in ("wait", "no_wait"):
        k = copy.copy(b)
        ptx = b.parts[0].ptx if what == "wait" else b.parts[0].ptx.replace(
            "\tgriddepcontrol.wait;\n", "")
        assert ("griddepcontrol.wait;" in ptx) == (what == "wait")
        k.parts = [dataclasses.replace(b.parts[0], ptx=ptx, _ptxas=run_ptxas(ptx, b.cpu))]
        k._loaded, k._launch_memo = {}, {}
        fn = _functions(k)[0]
        (_, grid, block), = k.part_launches(1)
        launch_b = _caller([(fn.kernel, _config(grid, block, k.shared_bytes, True))],
                           lambda i: (mid.data_ptr(), outs[i].data_ptr(), 1))

        def chain():
            for i in range(64):
                a(xs[i % 8], out=mid)
                launch_b(i)

        def wrong():
            torch.cuda.synchronize()
            errs = [float((o.double() - refs[i % 8]).abs().max() / refs[i % 8].abs().max())
                    for i, o in enumerate(outs)]
            return sum(not e < 1e-5 for e in errs), max(errs, key=lambda e: e if e == e else 1e30)

        row = {"a": os.environ.get("HAZARD_A", "early"), "build": what}
        for o in outs:
            o.fill_(float("nan"))
        chain()
        row["eager_wrong"], row["eager_worst"] = wrong()
        g = torch.cuda.CUDAGraph()
        s = torch.cuda.Stream()
        with torch.cuda.stream(s), torch.cuda.graph(g, stream=s):
            chain()
        bad, worst = 0, 0.0
        for _ in range(5):
            for o in outs:
                o.fill_(float("nan"))
            g.replay()
            n, w = wrong()
            bad, worst = bad + n, max(worst, w)
        row["graph_wrong_of_320"], row["graph_worst"] = bad, worst
        save_row(rows, row, "pdl-hazard.json")


if __name__ == "__main__":
    main()
