"""Experiment: how much cuDNN fp32's own time moves with the algorithm its benchmark mode finds.

`irprune bench` runs cuDNN with ``torch.backends.cudnn.benchmark = True``:
the first call of each shape times cuDNN's algorithms once and keeps the
fastest. At batch 1 these convolutions take 5-25 us, so that one timing is
noisy, and between runs the same layer's cuDNN fp32 time moved by up to
1.5x (pw_32_64_112: 9.7, 6.6, 9.6 us in three runs). Here each 1x1 layer of
the 1x1 target is timed (the bench's method: graph replays, median, rotating
inputs) with the algorithm benchmark mode finds and with the one cuDNN's
heuristics pick (benchmark off), in one process; run the script several
times (each process finds again) to see the spread. Every output is checked
against float64.

    python3 cudnn_algo_ab.py OUT.json
"""
import json
import sys

import numpy as np
import torch
import torch.nn.functional as F

from irprune.bench import impls as I
from irprune.bench.compile_jobs import bench_weights
from irprune.bench.runner import weight_seed
from irprune.bench.suites import SUITES
from irprune.bench.timing import measure

LAYERS = ["pw_32_64_112", "pw_64_128_56", "pw_128_128_56", "pw_128_256_28", "pw_256_256_28",
          "pw_256_512_14", "pw_512_512_14", "l1_1x1_64_64", "l1_1x1_64_256", "l1_1x1_256_64",
          "l2_1x1_256_128", "l2_1x1_128_512", "l2_1x1_512_128", "l3_1x1_1024_256",
          "l2_down_256_512_s2", "l3_1x1_512_256", "l3_1x1_256_1024"]


def main(out: str) -> None:
    by_name = {l.name: l for ls in SUITES.values() for l in ls}
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    torch.backends.cudnn.allow_tf32 = False
    rows = {}
    for name in LAYERS:
        layer = by_name[name]
        w = bench_weights(layer, 0.9, weight_seed(layer, 0.9))
        inp = I.make_inputs(layer, 1, l2, seed=weight_seed(layer, 0.0) + 1)
        ref = F.conv2d(inp.xs[0].double(), torch.from_numpy(w).cuda().double(),
                       stride=layer.stride, padding=layer.padding)
        row = {}
        for mode, bench in (("find", True), ("heuristic", False)):
            torch.backends.cudnn.benchmark = bench
            fn = I.cudnn(inp, w, False)
            y = fn(0)
            torch.cuda.synchronize()
            err = float(((y.double() - ref).abs().max() / ref.abs().max()).item())
            assert err < 1e-5, (name, mode, err)
            row[mode] = measure(fn, rotation=inp.rotation).median_us
        rows[name] = row
        print(name, row, flush=True)
    json.dump(rows, open(out, "w"), indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
