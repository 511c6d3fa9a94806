"""Experiment: output channels grouped by their nonzeros instead of in order, on the GPU, against
the standing's tuned immediate-weight kernels at batch 1.

A kernel's code region g computes output channels g * G .. g * G + G - 1 (G the group size):
its threads load the union of the input positions those channels' nonzeros read and run one
FMA per nonzero. At sparsity 0.9 the channels' nonzero counts spread (binomially), so the
regions' work does too: the largest region's loads + FMAs are 1.05-1.22x the mean on the
tuned configurations, and at batch 1 (about one wave of blocks) the kernel waits for its
largest regions. Here the weights' output channels are permuted before compiling
(channel_grouping.py):

- ``balanced``: channels by nonzeros, dealt to the groups in a snake order (the largest
  region 1.02-1.04x the mean; the same loads);
- ``shared``: channels by nonzeros, each to the group it adds the fewest new input positions
  to, under a cap on a group's loads + FMAs (1.01-1.03x the mean, and 3-11% fewer loads).

- ``library``: the layer's own weights compiled by irprune with ``channel_order="shared"`` (the
  ``shared`` grouping, each output store moved to its channel by place-output-channels).

The output of a permuted kernel is the permuted output (a layer built this way would store
channel perm[k] where it now stores k: the same instruction with another constant offset), so
each variant is checked against float64 with its own permuted weights. The base and the two
variants are timed twice each, interleaved, in one process, with the bench's input rotation.

    python3 channel_groups_ab.py [LAYER ...]   # on the GPU; results in $OUT/channel_groups_ab.json
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from channel_grouping import balanced, group_costs, shared
from gpu_timing import build_variants, layer_of, recorded_configs, rotation_ab, variant_rows

CACHE = "/tmp/cgcache"
RESULTS = os.path.join(HERE, "..", "..", "docs", "perf", "results.json")
VARIANTS = ("balanced", "shared", "library")
ROUNDS = 2


def weights(variant, c):
    """(weights, permutation) of configuration ``c``'s layer for ``variant`` (``library``: the
    layer's own weights, which irprune compiles in its shared order, channel_order="shared")."""
    import numpy as np
    from irprune.bench.compile_jobs import bench_weights
    w = bench_weights(layer_of(c.layer), 0.9, 0)
    mask = w.reshape(w.shape[0], -1) != 0
    K = w.shape[0]
    if variant in ("base", "library") or K % c.gs:
        perm = np.arange(K)
    else:
        perm = {"balanced": balanced, "shared": shared}[variant](mask, c.gs)
    return np.ascontiguousarray(w[perm]), perm


def kernel(variant, c):
    os.environ.setdefault("IRPRUNE_JOBS", "1")
    from irprune.cache import DiskCache
    from irprune.templates.conv2d import conv2d_nchw
    w, perm = weights(variant, c)
    l = layer_of(c.layer)
    k = conv2d_nchw.compile(w, (1, l.C, l.H, l.W), stride=l.stride, padding=l.padding,
                            group_size=c.gs, slices=c.slices, cache=DiskCache(CACHE),
                            max_registers=c.budget, assemble=True,
                            channel_order="shared" if variant == "library" else "natural")
    k.block, k.groups_per_block = c.block, c.m
    return k, w, perm


def _build(job):
    kernel(*job)


def main():
    cfgs = [c for c in recorded_configs(RESULTS, tiles=False, layers=sys.argv[1:])
            if c.batch == 1 and c.gs and c.gs > 1 and layer_of(c.layer).K // c.gs >= 2]
    build_variants(_build, cfgs, VARIANTS)
    variant_rows(cfgs, kernel, VARIANTS, "channel_groups_ab.json", _time_row)


def _time_row(row, c, built):
    for v, (k, w, perm) in built.items():
        mask = w.reshape(w.shape[0], -1) != 0
        u, n = group_costs(mask, list(range(w.shape[0])), c.gs)
        row[v + "_loads"] = int(u.sum())
        row[v + "_max_over_mean"] = round(float((u + n).max() / (u + n).mean()), 3)
        row[v + "_fma_ptx"] = k.stats.get("fma_ptx")
    rotation_ab(row, {v: b[0] for v, b in built.items()}, built["base"][1], layer_of(c.layer),
                1, ROUNDS, "base", weights={v: b[1] for v, b in built.items()})


if __name__ == "__main__":
    main()
