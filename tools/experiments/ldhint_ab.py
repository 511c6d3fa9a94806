"""Experiment: cache hints on the input loads, on the GPU, against the standing's tuned kernels.

Every input load of an immediate-weight kernel is ``ld.global.nc.b32``: a warp reads 32
consecutive floats of one channel (128 bytes, one line), and the next warp of the block, or the
next block, reads the next 128 bytes. Here each configuration's PTX is rewritten with a hint
on every such load, no instruction added:

- ``l2_256``: ``.L2::256B``, an L2 miss fetches 256 bytes from DRAM (the neighbouring line
  too): for the layers whose inputs come from DRAM in the bench's rotation;
- ``evict_last``: ``.L1::evict_last``, the loaded lines stay in L1 ahead of others, for the
  other channel groups of the block that read the same pixels (groups per block).

Prediction: ``l2_256`` a few percent on the DRAM-borderline layers (pw_32_64_112,
l1_1x1_64_256, l1_1x1_256_64, l2_1x1_256_128, l2_down_256_512_s2, the vgg16 layers), even
elsewhere; ``evict_last`` even or a little faster where several groups share a block.

Every variant's output is checked against float64 (poisoned with NaN first), then the base and
the variants are timed twice each, interleaved, in one process, with the bench's input rotation
(irprune.bench.impls.make_inputs).

    python3 ldhint_ab.py [LAYER ...]     # on the GPU; results in $OUT/ldhint_ab.json
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gpu_timing import build_variants, recorded_configs, recorded_kernel, variant_rows, variants_row

CACHE = "/tmp/ldhintcache"
RESULTS = os.path.join(HERE, "..", "..", "docs", "perf", "results.json")
HINTS = {"l2_256": "ld.global.nc.L2::256B.b32", "evict_last": "ld.global.nc.L1::evict_last.b32"}
VARIANTS = tuple(HINTS)
ROUNDS = 2


def hinted(ptx: str, variant: str) -> str:
    """``ptx`` with every ``ld.global.nc.b32`` carrying ``variant``'s hint (PTX ISA 7.4+)."""
    out, n = re.subn(r"\bld\.global\.nc\.b32\b", HINTS[variant], ptx)
    if not n:
        raise RuntimeError("no ld.global.nc.b32 in the PTX")
    return re.sub(r"^\.version 7\.[0-3]\b", ".version 7.4", out, count=1, flags=re.M)


def kernel(variant, c):
    return recorded_kernel(c, CACHE, (lambda p: hinted(p, variant)) if variant != "base" else None)


def _build(job):
    kernel(*job)


def main():
    cfgs = [c for c in recorded_configs(RESULTS, tiles=True, layers=sys.argv[1:])
            if c.gs and c.batch == 1]
    build_variants(_build, cfgs, VARIANTS)
    variant_rows(cfgs, kernel, VARIANTS, "ldhint_ab.json", variants_row(ROUNDS))


if __name__ == "__main__":
    main()
