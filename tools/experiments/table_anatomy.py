"""Experiment: where the time of a table kernel's call goes (the large 1x1 layers' choice).

For each named layer (default: the four whose standing in docs/perf/results.json is a table
kernel), the configuration and threads that run chose, compiled by irprune and timed four ways
in one process, inputs over 16 sets, as CUDA-graph replays:

- ``call``: ``kernel(x, out=y)``, irprune's launch path: the output zeroed on the stream
  (``cuMemsetD32Async``, a memset node in the graph) when slices add with atomics, then the
  kernel. Checked against float64 first.
- ``kernel``: the same launch with the zeroing left out (the sums are then wrong: timing only).
- ``memset``: the zeroing alone.
- ``threads``: ``kernel`` again compiled for each thread count of THREADS_TRIED.

    python3 table_anatomy.py [LAYER ...]     # GPU; rows in $OUT/table-anatomy.json
    python3 table_anatomy.py ncu LAYER       # 32 kernel-only launches, for Nsight Compute
"""
import json, os, sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

RESULTS = os.path.join(HERE, "..", "..", "docs", "perf", "results.json")
CACHE = "/tmp/tablecache"
THREADS_TRIED = (256, 512, 1024)


def chosen():
    """{layer: (TableConfig, threads)} of the batch-1 table records of the standing."""
    from irprune.table_layout import TableConfig
    out = {}
    for r in json.load(open(RESULTS))["records"]:
        if r.get("impl") == "irprune" and r.get("batch") == 1 and r.get("layout") == "table":
            t = r["table"]
            out[r["layer"]] = (TableConfig(t["tile_k"], t["slices"], t["tile_p"]), r["block"])
    return out


def _kernel(name, config, block):
    from gpu_timing import layer_case
    from irprune.table_kernel import compile_table_conv2d
    l, w, xs, ref, y = layer_case(name)
    k = compile_table_conv2d(w, (1, l.C, l.H, l.W), config, stride=l.stride, cache=CACHE,
                             block=block, assemble=True)
    return k, l, xs, ref, y


def _no_zeroing(k):
    """``k`` with the launch's zeroing switched off (timing only: atomic sums go wrong), its
    class's other overrides kept."""
    class Bare(type(k)):
        zero_output = False
    k.__class__ = Bare
    return k


def ncu_launches(k, xs, y, n: int = 32):
    """``n`` kernel-only launches of table kernel ``k`` (no zeroing) over the input sets ``xs``,
    for Nsight Compute."""
    import torch
    k = _no_zeroing(k)
    for i in range(n):
        k(xs[i % len(xs)], out=y)
    torch.cuda.synchronize()


def compile_with_template(src: str, label: str, layer: str, config, block: int, **kw):
    """The table kernel of ``layer`` (bench weights at 0.9) in ``config`` with ``block`` threads,
    compiled from ``src``, an edited source of templates/conv2d_table.py, without the disk
    cache (its key would not see the edit); ``kw`` goes to compile_table_conv2d."""
    import types
    import irprune.table_kernel as tk
    import irprune.templates.conv2d_table as T
    from gpu_timing import layer_of
    from irprune.bench.compile_jobs import bench_weights

    mod = types.ModuleType(f"conv2d_table_{label}")
    exec(compile(src, f"<conv2d_table {label}>", "exec"), mod.__dict__)
    saved = T.conv2d_table
    T.conv2d_table = mod.conv2d_table
    tk._ir_memo.clear()
    try:
        l = layer_of(layer)
        return tk.compile_table_conv2d(bench_weights(l, 0.9, 0), (1, l.C, l.H, l.W), config,
                                       stride=l.stride, cache=False, block=block, **kw)
    finally:
        T.conv2d_table = saved
        tk._ir_memo.clear()


def main():
    import torch
    from cuda.bindings import driver as drv
    from gpu_timing import check_then_time, save_row
    from irprune.bench.timing import measure

    picks = chosen()
    if sys.argv[1:2] == ["ncu"]:
        config, block = picks[sys.argv[2]]
        k, l, xs, ref, y = _kernel(sys.argv[2], config, block)
        ncu_launches(k, xs, y)
        return
    rows = []
    for name in sys.argv[1:] or list(picks):
        config, block = picks[name]
        k, l, xs, ref, y = _kernel(name, config, block)
        row = {"layer": name, "config": config.describe(), "block": block,
               "shared": k.shared_bytes, "regs": k.registers}
        row["err"], row["call_us"] = check_then_time(lambda i: k(xs[i], out=y), y, ref)
        n = y.numel()

        def memset(i):
            s = drv.CUstream(torch.cuda.current_stream().cuda_stream)
            drv.cuMemsetD32Async(drv.CUdeviceptr(y.data_ptr()), 0, n, s)
        row["memset_us"] = round(measure(memset, rotation=16, target_ms=10,
                                         repeats=5).median_us, 3)
        for nt in THREADS_TRIED:
            # a table kernel's thread count is a constant of its code: one kernel per count
            try:
                bare = _no_zeroing(k if nt == block else _kernel(name, config, nt)[0])
                row[f"kernel_{nt}_us"] = round(measure(lambda i: bare(xs[i], out=y), rotation=16,
                                                       target_ms=10, repeats=5).median_us, 3)
            except Exception as exc:
                row[f"kernel_{nt}_us"] = str(exc)[:120]
        row["kernel_us"] = row[f"kernel_{block}_us"]
        save_row(rows, row, "table-anatomy.json")


if __name__ == "__main__":
    main()
