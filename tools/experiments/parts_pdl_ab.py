"""Experiment: a kernel's channel groups in two modules that run at the same time, chained by
programmatic dependent launch, against the one module of the standing, on the GPU.

Two modules compile on two cores at once (two NVPTX and two ptxas processes, and ptxas's time
grows faster than its module): resnet_3x3_28 at batch 1 took 8.6 s cold as one module and 5.7 s
as two on the 2-core machine. Launched one after the other, two parts were slower than one
module (docs/perf-log.md, "The seven large 1x1 layers timed"). Here the second part does not
wait for the first:

- ``one``: the standing's configuration, one module (waits for the grid before it first);
- ``serial``: two modules (IRPRUNE_MAX_PART_NNZ), each waiting first: the second starts when
  the first's blocks have exited;
- ``concurrent``: the same two modules, the PTX rewritten: the first triggers
  ``griddepcontrol.launch_dependents`` right after its wait, so the second launches at once;
  the second has no wait at its start (its input is complete: it can launch only after every
  block of the first has passed its wait) and waits before each ``ret`` instead, so that it
  completes only after the first has, and the kernel after it sees both parts' outputs.

Each configuration is the standing's choice (docs/perf/results.json); the split point is the
group boundary, a multiple of its groups a block, nearest to half the nonzeros. Every variant's
output is checked against float64 (poisoned with NaN first), then the three are timed three
times each, interleaved, with the bench's input rotation. Run with the layers and batches:

    python3 parts_pdl_ab.py resnet_3x3_28:1 resnet_3x3_28:64 ...   # on the GPU; $OUT/parts_pdl_ab.json
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gpu_timing import (assembled, build_all, install_ptx, layer_of, recorded_configs, rotation_ab,
                        save_row)

CACHE = "/tmp/partspdl"
RESULTS = os.path.join(HERE, "..", "..", "docs", "perf", "results.json")
VARIANTS = ("one", "serial", "concurrent")
ROUNDS = 3


def split_limit(c) -> int:
    """IRPRUNE_MAX_PART_NNZ that splits configuration ``c``'s groups in two, at a multiple of
    its groups a block nearest half the nonzeros."""
    from irprune.bench.compile_jobs import bench_weights
    from irprune.limits import split_groups
    import numpy as np
    l = layer_of(c.layer)
    w = bench_weights(l, 0.9, 0)
    per = [int(np.count_nonzero(w[i:i + c.gs])) for i in range(0, l.K, c.gs)]
    total = sum(per)
    best = None
    for k in range(c.m, len(per), c.m):
        left = sum(per[:k])
        limit = max(left, total - left)
        parts = split_groups(per, limit)
        if len(parts) == 2 and all(n % c.m == 0 for _, n in parts):
            if best is None or limit < best:
                best = limit
    if best is None:
        raise RuntimeError(f"{c.layer}: no split into two parts of whole blocks")
    return best


def compiled(variant, c):
    """(kernel, weights, layer) of configuration ``c`` as ``variant``."""
    from irprune.templates.conv2d import conv2d_nchw
    from gpu_timing import compile_layer
    two = variant != "one"
    os.environ["IRPRUNE_MAX_PART_NNZ"] = str(split_limit(c) if two else 10**7)
    k, w, l = compile_layer(conv2d_nchw, c.layer, c.gs, c.slices, CACHE + ("2" if two else "1"),
                            c.budget, tile=c.tile, assemble=True)
    if two and len(k.parts) != 2:
        raise RuntimeError(f"{c.layer}: {len(k.parts)} parts")
    if variant == "concurrent":
        install_ptx(k, assembled([triggers_early(k.parts[0].ptx), waits_last(k.parts[1].ptx)],
                                 None, k.cpu))
    k.block, k.groups_per_block = c.block, c.m
    return k, w, l


def triggers_early(ptx: str) -> str:
    """``ptx`` letting the next kernel launch right after its grid wait."""
    return ptx.replace("griddepcontrol.wait;",
                       "griddepcontrol.wait;\n\tgriddepcontrol.launch_dependents;", 1)


def waits_last(ptx: str) -> str:
    """``ptx`` with its grid wait moved from its start to before each ``ret``."""
    if re.search(r"\bexit;", ptx):
        raise RuntimeError("an exit in the second part")
    ptx = ptx.replace("griddepcontrol.wait;", "", 1)
    return re.sub(r"^(\s*)ret;", r"\1griddepcontrol.wait;\n\1ret;", ptx, flags=re.M)


def _build(job):
    compiled(*job)


def main():
    want = [(a.split(":")[0], int(a.split(":")[1])) for a in sys.argv[1:]]
    cfgs = [c for c in recorded_configs(RESULTS, tiles=False) if (c.layer, c.batch) in want and c.gs]
    jobs = [(v, c) for c in cfgs for v in VARIANTS]
    print(len(jobs), "kernels", flush=True)
    build_all(_build, jobs)
    rows = []
    for c in cfgs:
        row = {"layer": c.layer, "batch": c.batch, "gs": c.gs, "slices": c.slices,
               "tile": c.tile, "budget": c.budget, "block": c.block, "m": c.m}
        try:
            built = {v: compiled(v, c) for v in VARIANTS}
            _, w, l = built["one"]
            rotation_ab(row, {v: b[0] for v, b in built.items()}, w, l, c.batch, ROUNDS, "one")
            for v, (k, _, _) in built.items():
                row[v + "_parts"] = [p.groups for p in k.parts]
        except Exception as exc:
            row["error"] = str(exc)[:300]
        save_row(rows, row, "parts_pdl_ab.json")


if __name__ == "__main__":
    main()
