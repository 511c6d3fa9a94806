"""Experiment: pixel blocks of any multiple of 32 threads, not only 64, 128 and 256.

The tuner times pixel blocks of 64, 128 and 256 threads (and 32 with several groups a block:
irprune.tune.BLOCKS). A batch-1 grid is one wave or less, so how its blocks fall on the 132 SMs
is set by the block: l2_1x1_256_128 (3,136 pixels, 16 groups of 8, 4 groups a block) makes
25 x 4 = 100 blocks of 128 pixels, leaving 32 SMs idle, where 96-pixel blocks would make
33 x 4 = 132; l3_1x1_512_256's 784 pixels in 128-pixel tiles leave a last tile of 16. The
block is a launch parameter of the pixel-layout kernels (blockDim), so the same compiled kernel
can be launched with 96, 160, 192 or 224 threads along the pixels.

For each immediate-weight batch-1 configuration of the standing (docs/perf/results.json), its
kernel is compiled as recorded (gpu_timing.recorded_kernel) and launched with every block of
32-256 pixels (32-step) that fits its groups a block, slices and registers; each launch shape
is checked against float64, then all are timed ROUNDS times, interleaved, with the bench's input
rotation (gpu_timing.rotation_ab). ``speedup_best``: the recorded block's best time over the
fastest other block's.

    python3 blocks_ab.py [LAYER ...]     # on the GPU; rows in $OUT/blocks_ab.json
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gpu_timing import (build_all, config_row, print_geomeans, recorded_configs,  # noqa: E402
                        recorded_kernel, rotation_ab, save_row)

CACHE = "/tmp/blockscache"
RESULTS = os.path.join(HERE, "..", "..", "docs", "perf", "results.json")
ROUNDS = 2
BLOCKS = tuple(range(32, 257, 32))


class WithBlock:
    """``call(x, out=y)`` of kernel ``k`` launched with ``block`` threads along the pixels."""

    def __init__(self, k, block: int):
        self.k, self.block = k, block
        self.registers = k.registers

    def __call__(self, x, out):
        self.k.block = self.block
        return self.k(x, out=out)


def _build(c):
    recorded_kernel(c, CACHE)


def main():
    from irprune.kernel import block_fits
    cfgs = [c for c in recorded_configs(RESULTS, tiles=False, layers=sys.argv[1:])
            if c.gs and c.batch == 1]
    print(len(cfgs), "kernels", flush=True)
    build_all(_build, cfgs)
    rows = []
    for c in cfgs:
        row = config_row(c)
        try:
            k, w, l = recorded_kernel(c, CACHE)
            blocks = [b for b in BLOCKS
                      if block_fits(c.slices, min(c.gs, l.K), b, k.registers, c.m)]
            kernels = {"base": WithBlock(k, c.block)}
            kernels.update({f"b{b}": WithBlock(k, b) for b in blocks if b != c.block})
            g = l.geometry(1)
            row["pixels"] = g.OH * g.OW
            group_blocks = -(-(-(-l.K // c.gs)) // c.m)  # ceil(ceil(K / gs) / m)
            row["grid"] = {name: -(-row["pixels"] // kb.block) * group_blocks
                           for name, kb in kernels.items()}
            rotation_ab(row, kernels, w, l, 1, ROUNDS, "base")
            others = {v: min(row[v]) for v in kernels if v != "base"}
            if others:
                best = min(others, key=others.get)
                row["best_other"] = best
                row["speedup_best"] = round(min(row["base"]) / others[best], 3)
        except Exception as exc:
            row["error"] = str(exc)[:300]
        save_row(rows, row, "blocks_ab.json")
    print_geomeans(rows, "speedup_best")


if __name__ == "__main__":
    main()
