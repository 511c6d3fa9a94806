"""Experiment: row-tile heights that divide the output's rows, against the tuner's candidates.

irprune.row_tile.candidate_tiles takes rows = round(128 / OW) and round(256 / OW).
For a 28-row layer that is 5 and 9: 6 x 5 = 30 and 4 x 9 = 36 rows computed for 28 (the last
block of an image redoes its last row), 7% and 29% of the threads' work thrown away. Here
each layer's row-tile kernel is compiled at several heights, among them divisors of the
output's rows (4, 7, 14 for 28; 4, 6, 8 for 24), with the pixel layout's recorded choice
beside it where that won, all checked against float64 and timed in one process at batch 64,
then timed twice more, interleaved.

    python3 rows_ab.py            # on the GPU (source ../gpu_env.sh first): $OUT/rows_ab.json
    python3 rows_ab.py list       # the cases, on any machine
"""
import os, sys, tempfile
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gpu_timing import build_all, check_and_time_by_layer, compile_layer, layer_of

CACHE = os.path.join(tempfile.gettempdir(), "rowsab")
BATCH = 64
#: (layer, group size, rows, chunk, register budget); rows None = the pixel layout (slices 1).
CASES = [
    ("resnet_3x3_28", 32, 9, 1, None),   # the standing's choice (3dc72cc)
    ("resnet_3x3_28", 32, 5, 1, None),
    ("resnet_3x3_28", 32, 4, 1, None),
    ("resnet_3x3_28", 32, 7, 1, None),
    ("resnet_3x3_28", 32, 14, 1, None),
    ("resnet_3x3_28", 32, 7, 2, None),
    ("resnet_3x3_28", 32, 14, 2, None),
    ("resnet_3x3_28", 16, 7, 1, None),
    ("resnet_3x3_28", 64, 7, 1, None),
    ("lenet5_c1", 20, 5, 1, None),       # the standing's choice
    ("lenet5_c1", 20, 4, 1, None),
    ("lenet5_c1", 20, 6, 1, None),
    ("lenet5_c1", 20, 8, 1, None),
    ("resnet_3x3_56", 64, None, 1, 128),  # the standing's choice: pixel layout, block 128
    ("resnet_3x3_56", 64, 2, 1, None),
    ("resnet_3x3_56", 64, 5, 1, None),
    ("resnet_3x3_56", 64, 4, 1, None),
    ("resnet_3x3_56", 64, 8, 1, None),
    ("resnet_3x3_56", 32, 4, 1, None),
]


def kernel(case, assemble=True):
    from irprune.templates.conv2d import conv2d_nchw
    from irprune.templates.conv2d_rows import conv2d_rows
    name, g, rows, chunk, budget = case
    if rows is None:
        return compile_layer(conv2d_nchw, name, g, 1, CACHE, budget, assemble=assemble)
    return compile_layer(conv2d_rows, name, g, 1, CACHE, budget, tile=(rows, chunk),
                         assemble=assemble)


def main():
    if sys.argv[1:] == ["list"]:
        for c in CASES:
            l = layer_of(c[0])
            oh = (l.H + 2 * l.padding - l.R) // l.stride + 1
            ow = (l.W + 2 * l.padding - l.S) // l.stride + 1
            rows = c[2]
            work = "-" if rows is None else f"{-(-oh // rows) * rows / oh:.3f}"
            print(c, "threads", rows * ow if rows else 128, "rows computed / rows", work)
        return
    build_all(kernel, CASES)
    cases = []
    for c in CASES:
        row = {"layer": c[0], "g": c[1], "rows": c[2], "chunk": c[3], "budget": c[4]}

        def build(row, c=c):
            k = kernel(c)[0]
            if c[2] is None:
                k.block = 128
            row["block"], row["registers"] = k.block, k.registers
            return k
        cases.append((c[0], row, build))
    check_and_time_by_layer([], cases,
                            lambda name: kernel(next(c for c in CASES if c[0] == name))[1],
                            BATCH, "rows_ab.json")

if __name__ == "__main__":
    main()
