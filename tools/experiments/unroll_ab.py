"""Experiment: the IR template's unroll pipeline, O1 (as it was) against irprune.llvm_opt.run_unroll.

Every irprune configuration with immediate weights that a bench run timed (default
docs/perf/results.json: the seed suite at batches 1 and 64, the 1x1 layers at batch 1) is
compiled twice, each variant into a disk cache of its own: with the IR template built by LLVM's
O1 with full unrolling (``run_o3(unroll=True, level=1)``, the pipeline before run_unroll) and by
run_unroll.

    python3 unroll_ab.py cpu [LAYER ...]   # any machine: unroll seconds, PTX and ptxas compared
    python3 unroll_ab.py gpu [LAYER ...]   # on the GPU: both checked against float64 and timed

``cpu`` writes one JSON row per configuration to $OUT/unroll_cpu.json: each variant's unroll
and pass seconds, whether the two PTX modules run the same FMAs in the same order (immediates
included), the instructions each PTX has, and ptxas's registers and spills. ``gpu`` writes
$OUT/unroll_ab.json: both kernels timed one after the other in this process at the recorded
launch (block, groups per block), inputs rotating over 16 sets; speedup = O1 time / new time.
"""
import json, os, re, sys, tempfile, time
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gpu_timing import (compile_layer, config_row, recorded_configs, save_row,
                        time_compiled_pair)

CACHE = os.path.join(tempfile.gettempdir(), "unrollab")
RESULTS = os.path.join(HERE, "..", "..", "docs", "perf", "results.json")
VARIANTS = ("o1", "unroll")


def use_variant(variant):
    """Point irprune's lowering at the variant's pipeline, with no IR template memoized in-process
    (both variants have the same cache keys: each keeps its own disk cache)."""
    import irprune.lowering as lowering
    from irprune.llvm_opt import run_o3, run_unroll
    from irprune.templates.conv2d import conv2d_nchw
    from irprune.templates.conv2d_rows import conv2d_rows
    if variant == "o1":
        lowering.run_unroll = lambda text, stage, cpu: run_o3(text, stage, cpu=cpu, unroll=True,
                                                              level=1)
    else:
        lowering.run_unroll = run_unroll
    for t in (conv2d_nchw, conv2d_rows):
        t._ir_cache.clear()


def kernel(variant, cfg, assemble=True):
    from irprune.templates.conv2d import conv2d_nchw
    from irprune.templates.conv2d_rows import conv2d_rows
    use_variant(variant)
    return compile_layer(conv2d_rows if cfg.tile else conv2d_nchw, cfg.layer, cfg.gs, cfg.slices,
                         os.path.join(CACHE, variant), cfg.budget, tile=cfg.tile,
                         assemble=assemble)


def immediate_configs(layers):
    """The recorded configurations that run immediates (the table layout has no unrolled IR
    template of this kind: its loop stays a loop)."""
    recs = {(r["layer"], r["batch"]): r for r in json.load(open(RESULTS))["records"]
            if r.get("impl") == "irprune"}
    return [c for c in recorded_configs(RESULTS, layers=layers)
            if recs[(c.layer, c.batch)].get("layout", "immediate") == "immediate"]


def fma_sequence(ptx):
    return re.findall(r"^\s*fma\.rn\.f32\s+%r\d+, %r\d+, (0f[0-9A-F]{8})", ptx, flags=re.M)


def ptx_instructions(ptx):
    return len(re.findall(r"^\s+[a-z@][^;]*;", ptx, flags=re.M))


def cpu(layers):
    rows = []
    for c in immediate_configs(layers):
        row = config_row(c)
        ptx = {}
        for v in VARIANTS:
            t0 = time.perf_counter()
            k, _, _ = kernel(v, c, assemble=False)
            s = k.stats["seconds"]
            row[v + "_s"] = round(time.perf_counter() - t0, 2)
            row[v + "_unroll_s"] = round(s["unroll"], 2)
            row[v + "_passes_s"] = round(s["passes"], 2)
            ptx[v] = [p.ptx for p in k.parts]
            row[v + "_ptx_instructions"] = sum(ptx_instructions(p) for p in ptx[v])
            try:
                r = k.ptxas()
                row[v + "_regs"] = r.registers
                row[v + "_spills"] = r.spill_stores
            except Exception as exc:  # no ptxas on this machine
                row[v + "_ptxas"] = str(exc)[:100]
        row["same_fmas"] = ([fma_sequence(p) for p in ptx["o1"]]
                            == [fma_sequence(p) for p in ptx["unroll"]])
        save_row(rows, row, "unroll_cpu.json")
    same = sum(r["same_fmas"] for r in rows)
    print(f"{same} of {len(rows)} configurations: the same FMAs in the same order")


def gpu(layers):
    time_compiled_pair(immediate_configs(layers), kernel, VARIANTS, "unroll_ab.json")


if __name__ == "__main__":
    {"cpu": cpu, "gpu": gpu}[sys.argv[1]](sys.argv[2:])
