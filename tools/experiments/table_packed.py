"""Experiment: a strided layer's table kernel reading its input packed (as irprune now compiles
it) against reading the staged rows in place (the template before, conv2d_table_staged.txt).

Since 577d742 a strided 1x1 layer's block copies the rows it reads whole (16-byte copies,
irprune.table_layout.row_pitch). Its lanes then read every stride-th float of those rows: on a
stride-2 layer every lane on an even bank, 2-way bank conflicts (half of l4_down_1024_2048_s2's
shared wavefronts, docs/perf-log.md "Two pairs a load in the table kernel"). The template now
packs each channel's used values into the tile after the copy (one shared load and store a
value, once per block), and the loop reads them as on a stride-1 layer.

For each (layer, configuration, threads) of PICKS both are compiled in one process without the
disk cache: ``packed`` as irprune compiles it, ``staged`` from the old template with the old
layout (a pair's offset ``c * OH * pitch``, no packed tile in the shared size). Each is checked
against float64 (irprune's call, output poisoned with NaN), timed as graph replays over 16
inputs, then every call of the layer timed 3 more times interleaved. A layer whose standing
(docs/perf/results.json) runs on immediate weights is timed in that configuration as well
(``immediate``), in the same process.

    python3 table_packed.py [LAYER ...]          # GPU; rows in $OUT/table-packed.json
    python3 table_packed.py ncu VARIANT LAYER    # 32 kernel-only launches of PICKS' first
                                                 # configuration of LAYER, for Nsight Compute
"""
import json, os, sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

RESULTS = os.path.join(HERE, "..", "..", "docs", "perf", "results.json")
STAGED = os.path.join(HERE, "conv2d_table_staged.txt")

#: layer: [(tile_k, slices, threads), ...], the standing's choice first; the others are the
#: strided layers' fastest in the tuning rounds of 577d742 and 0642135.
PICKS = {
    "l4_down_1024_2048_s2": [(128, 8, 1024), (128, 8, 512), (128, 4, 1024), (64, 4, 512),
                             (64, 4, 1024), (64, 8, 512)],
    "l3_down_512_1024_s2": [(64, 8, 512), (64, 8, 1024), (64, 4, 512), (32, 4, 512),
                            (32, 8, 512)],
}


class _Staged:
    """Within the block: irprune.table_kernel compiles the old template with the old layout for
    layer geometry ``g``. Kept while the first launch runs: it reads the shared size through
    table_kernel.shared_bytes (and memoizes it)."""

    def __init__(self, g):
        self.g = g

    def __enter__(self):
        import types
        import irprune.table_kernel as tk
        import irprune.table_layout as tl
        import irprune.templates.conv2d_table as T
        from irprune.table_layout import Tables, row_pitch

        mod = types.ModuleType("conv2d_table_staged")
        exec(compile(open(STAGED).read(), STAGED, "exec"), mod.__dict__)

        def channel(g, c):
            pitch = row_pitch(g, c)
            return g.OH * pitch if pitch else c.tile_p

        def build_tables(w, config, bias=None):
            t = tl.build_tables(w, config, bias)
            pairs = t.pairs.copy()
            # offsets c * tile_p -> c * OH * pitch (the staged rows read in place)
            pairs[:, 0::2] = pairs[:, 0::2] // config.tile_p * channel(self.g, config)
            return Tables(pairs=pairs, rowptr=t.rowptr, bias=t.bias)

        def shared_bytes(g, config, words):
            rows = (config.tile_k + 4) & ~3
            return 4 * (words + rows + (g.C // config.slices) * channel(g, config)
                        + -config.tile_p % 32)

        self.saved = (T.conv2d_table, tk.build_tables, tk.shared_bytes)
        T.conv2d_table = mod.conv2d_table
        tk.build_tables, tk.shared_bytes = build_tables, shared_bytes
        tk._ir_memo.clear()
        return self

    def __exit__(self, *exc):
        import irprune.table_kernel as tk
        import irprune.templates.conv2d_table as T
        T.conv2d_table, tk.build_tables, tk.shared_bytes = self.saved
        tk._ir_memo.clear()


def _table(l, w, tk_, ns, threads):
    """The table kernel of layer ``l`` (weights ``w``) with the whole image a pixel tile."""
    from irprune.table_kernel import compile_table_conv2d
    from irprune.table_layout import TableConfig
    g = l.geometry(1)
    return compile_table_conv2d(w, (1, l.C, l.H, l.W), TableConfig(tk_, ns, g.OH * g.OW),
                                stride=l.stride, cache=False, block=threads, assemble=True)


def _immediate_case(name, l, w):
    """The (row, build) of the standing's immediate-weight kernel of ``name``, or None where
    the standing runs it on the table layout."""
    from irprune.bench.runner import load_choices
    from irprune.templates.conv2d import conv2d_nchw
    from irprune.tune import Choice, compile_choice
    r = load_choices(RESULTS).get((name, 1, 0.9))
    if r is None or r.get("layout") == "table":
        return None
    c = Choice(r["group_size"], r["block"], r["median_us"], r["slices"],
               tuple(r["tile"]) if r["tile"] else None, r["max_registers"], r["groups_per_block"])
    row = {"layer": name, "variant": "immediate", "threads": c.block,
           "config": f"g{c.group_size} s{c.slices} r{c.max_registers} m{c.groups_per_block}"}
    return row, lambda row: compile_choice(conv2d_nchw, w, (1, l.C, l.H, l.W), c,
                                           stride=l.stride, padding=l.padding,
                                           cache="/tmp/packedcache", assemble=True)


def main():
    from contextlib import nullcontext
    from gpu_timing import check_and_time_all, layer_case
    if sys.argv[1:2] == ["ncu"]:
        from table_anatomy import ncu_launches
        variant, name = sys.argv[2], sys.argv[3]
        l, w, xs, ref, y = layer_case(name)
        with (_Staged(l.geometry(1)) if variant == "staged" else nullcontext()):
            ncu_launches(_table(l, w, *PICKS[name][0]), xs, y)
        return
    rows = []
    for name in sys.argv[1:] or list(PICKS):
        l, w, xs, ref, y = layer_case(name)

        def build(row, pick):
            k = _table(l, w, *pick)
            row["shared"], row["regs"] = k.shared_bytes, k.registers
            return k
        cases = [c for c in [_immediate_case(name, l, w)] if c]
        for pick in PICKS[name]:
            for variant in ("staged", "packed"):
                row = {"layer": name, "variant": variant,
                       "config": f"table k{pick[0]} s{pick[1]}", "threads": pick[2]}
                context = ((lambda: _Staged(l.geometry(1))) if variant == "staged"
                           else nullcontext)
                cases.append((row, lambda row, pick=pick: build(row, pick), context))
        # the staged kernels are timed again outside their context: their launch
        # configurations (the old shared size) are memoized from the first launch
        check_and_time_all(rows, cases, xs, y, ref, "table-packed.json", 3)

if __name__ == "__main__":
    main()
