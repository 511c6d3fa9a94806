"""Experiment: table configurations beyond irprune.table_layout's candidates, with 16 slices
and 256 output channels a block. Every block of an output tile copies its input slice again
(docs/perf-log.md, "The table kernel taken apart"): more slices make each copy smaller, wider
tiles make fewer of them, at the cost of more atomic adds per output (slices) or fewer blocks.

Each (layer, tile_k, slices, threads) of PICKS (the first of a layer: its choice in the 0642135
bench run) is compiled without the disk cache in one process, checked against float64 (irprune's
call, output poisoned with NaN), then its call (with the zeroing) timed as graph replays over 16
inputs; the picks of a layer are timed twice, interleaved.

    python3 table_wide.py [LAYER ...]   # GPU; rows in $OUT/table-wide.json
"""
import os, sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

PICKS = [("l4_down_1024_2048_s2", 128, 8, 1024), ("l4_down_1024_2048_s2", 128, 16, 1024),
         ("l4_down_1024_2048_s2", 256, 16, 1024), ("l4_down_1024_2048_s2", 256, 8, 1024),
         ("l4_down_1024_2048_s2", 64, 16, 512), ("l4_down_1024_2048_s2", 128, 16, 512),
         ("pw_1024_1024_7", 32, 8, 512), ("pw_1024_1024_7", 32, 16, 512),
         ("pw_1024_1024_7", 64, 16, 512), ("pw_1024_1024_7", 128, 16, 1024),
         ("l4_1x1_2048_512", 32, 8, 1024), ("l4_1x1_2048_512", 32, 16, 1024),
         ("l4_1x1_2048_512", 64, 16, 1024), ("l4_1x1_2048_512", 32, 16, 512),
         ("l4_1x1_2048_512", 16, 16, 512)]


def main(layers):
    from gpu_timing import check_and_time_all, layer_case
    from irprune.table_kernel import compile_table_conv2d
    from irprune.table_layout import TableConfig

    rows = []
    for name in dict.fromkeys(p[0] for p in PICKS):
        if layers and name not in layers:
            continue
        l, w, xs, ref, y = layer_case(name)
        g = l.geometry(1)

        def build(row, config, threads):
            k = compile_table_conv2d(w, (1, l.C, l.H, l.W), config, stride=l.stride,
                                     cache=False, block=threads, assemble=True)
            row["shared"] = k.shared_bytes
            return k
        cases = []
        for _, tk_, ns, threads in (p for p in PICKS if p[0] == name):
            config = TableConfig(tk_, ns, g.OH * g.OW)
            cases.append(({"layer": name, "config": config.describe(), "threads": threads},
                          lambda row, c=config, t=threads: build(row, c, t)))
        check_and_time_all(rows, cases, xs, y, ref, "table-wide.json", 2, key="us")

if __name__ == "__main__":
    main(sys.argv[1:])
