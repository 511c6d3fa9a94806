"""Experiment: a strided layer's table kernel with its input rows staged whole (16-byte copies,
irprune.table_layout.row_pitch) against the value-by-value copy it had before.

For each (layer, configuration, threads) of PICKS, the table kernel is compiled twice in one
process, without the disk cache: as irprune compiles it, and with ``row_pitch`` forced to 0 (the
template then takes its value-by-value path, and the tables their ``tile_p`` offsets). Each is
checked against float64 (irprune's call, output poisoned with NaN), then its call timed as graph
replays over 16 inputs.

    python3 table_pitch.py     # GPU; rows in $OUT/table-pitch.json
"""
import os, sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

#: (layer, tile_k, slices, threads): the two strided large 1x1 layers' fastest table
#: configurations in the 577d742 bench run.
PICKS = [("l4_down_1024_2048_s2", 64, 4, 512), ("l4_down_1024_2048_s2", 64, 4, 1024),
         ("l4_down_1024_2048_s2", 64, 8, 512), ("l4_down_1024_2048_s2", 32, 8, 512),
         ("l3_down_512_1024_s2", 64, 8, 512), ("l3_down_512_1024_s2", 64, 8, 1024),
         ("l3_down_512_1024_s2", 32, 4, 512)]


class _NoPitch:
    """Within the block: irprune.table_layout.row_pitch is 0 (the value-by-value copy)."""

    def __enter__(self):
        import irprune.table_kernel as tk
        import irprune.table_layout as tl
        self.saved = (tl.row_pitch, tk.row_pitch, tk.channel_floats)
        tl.row_pitch = tk.row_pitch = lambda g, c: 0
        tk.channel_floats = tl.channel_floats
        tk._ir_memo.clear()  # its key leaves out what row_pitch derives from it

    def __exit__(self, *exc):
        import irprune.table_kernel as tk
        import irprune.table_layout as tl
        tl.row_pitch, tk.row_pitch, tk.channel_floats = self.saved
        tk._ir_memo.clear()


def main():
    from contextlib import nullcontext

    from gpu_timing import check_then_time, layer_case, save_row
    from irprune.table_kernel import compile_table_conv2d
    from irprune.table_layout import TableConfig

    rows, cases = [], {}
    for name, tk_, ns, threads in PICKS:
        if name not in cases:
            cases[name] = layer_case(name)
        l, w, xs, ref, y = cases[name]
        config = TableConfig(tk_, ns, l.geometry(1).OH * l.geometry(1).OW)
        row = {"layer": name, "config": config.describe(), "threads": threads}
        for mode, ctx in (("rows", nullcontext), ("values", _NoPitch)):
            with ctx():  # kept while timing: the launch reads the shared size and alignment
                try:
                    k = compile_table_conv2d(w, (1, l.C, l.H, l.W), config, stride=l.stride,
                                             cache=False, block=threads, assemble=True)
                    row[f"{mode}_shared"] = k.shared_bytes
                    row[f"{mode}_err"], row[f"{mode}_us"] = check_then_time(
                        lambda i: k(xs[i], out=y), y, ref)
                except Exception as exc:
                    row[f"{mode}_error"] = str(exc)[:300]
        save_row(rows, row, "table-pitch.json")


if __name__ == "__main__":
    main()
