"""Experiment: the group dispatch as a tree of direct branches instead of a jump table, A/B.

A kernel with several channel groups starts with a ``switch`` on the group
index, which NVPTX emits as ``brx.idx`` over a ``.branchtargets`` list; ptxas
makes that an indexed load from the constant bank (``LDC c[0x2][R]``) and an
indirect branch (``BRX``). Every warp waits for both before the first
instruction of its region, and for the region's first instruction fetch
after the indirect jump. Here the PTX of each configuration is rewritten so
that the dispatch is a binary tree of ``setp.lt.u32`` / ``@p bra`` on the
group index (log2(groups) compares, direct branches, no constant load).

Every pixel-layout configuration of the c107ed9 run (docs/perf/c107ed9/results.json)
is compiled once; both PTX versions are assembled, checked against float64 and
timed alternately (base, tree, base, tree) in this process, inputs rotating over
16 sets.

    python3 dispatch_ab.py [LAYER ...]     # on the GPU; results in $OUT/dispatch_ab.json
"""
import json, os, re, sys
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gpu_timing import (assembled, build_all, compile_layer, config_row, install_ptx,
                        print_geomeans, recorded_configs, time_into)

CACHE = "/tmp/dispatchcache"
RESULTS = os.path.join(HERE, "..", "..", "docs", "perf", "c107ed9", "results.json")
_TARGETS = re.compile(r"^\s*(\$L_brx_\d+): \.branchtargets\s*(.*?);\s*$", re.M | re.S)
_BRX = re.compile(r"^(\s*)brx\.idx\s+(%r\d+), (\$L_brx_\d+);\s*$", re.M)


def tree_dispatch(ptx):
    """``ptx`` with every ``brx.idx`` replaced by a binary tree of compares and direct branches."""
    tables = {}

    def grab(m):
        tables[m.group(1)] = [t.strip() for t in m.group(2).split(",")]
        return ""
    ptx = _TARGETS.sub(grab, ptx)
    preds = [0]

    def emit(idx, targets, lo, hi, ind):
        if hi - lo == 1:
            return [f"{ind}bra.uni {targets[lo]};"]
        mid = (lo + hi) // 2
        p = f"%pbt{preds[0]}"
        lab = f"$L_bt_{preds[0]}"
        preds[0] += 1
        return ([f"{ind}setp.lt.u32 {p}, {idx}, {mid};", f"{ind}@{p} bra {lab};"]
                + emit(idx, targets, mid, hi, ind) + [f"{lab}:"] + emit(idx, targets, lo, mid, ind))

    def tree(m):
        return "\n".join(emit(m.group(2), tables[m.group(3)], 0, len(tables[m.group(3)]), m.group(1)))
    ptx, n = _BRX.subn(tree, ptx)
    if n != len(tables):
        raise RuntimeError(f"{n} brx.idx for {len(tables)} branch-target lists")
    if preds[0]:
        ptx = ptx.replace("\t.reg .pred \t%p<", f"\t.reg .pred \t%pbt<{preds[0]}>;\n\t.reg .pred \t%p<", 1)
    return ptx


def kernel(cfg):
    from irprune.templates.conv2d import conv2d_nchw
    return compile_layer(conv2d_nchw, cfg.layer, cfg.gs, cfg.slices, CACHE, cfg.budget,
                         assemble=True)


def main():
    out = os.environ.get("OUT", ".")
    cfgs = recorded_configs(RESULTS, tiles=False, layers=sys.argv[1:])
    print(len(cfgs), "configurations", flush=True)
    build_all(kernel, cfgs)
    rows = []
    for c in cfgs:
        row = config_row(c)
        try:
            k, w, l = kernel(c)
            original = [p.ptx for p in k.parts]  # install_ptx replaces p.ptx
            builds = {"base": assembled(original, None, k.cpu),
                      "tree": assembled(original, tree_dispatch, k.cpu)}
            for v, b in (("base", "base"), ("tree", "tree"), ("base2", "base"), ("tree2", "tree")):
                row[v + "_regs"] = install_ptx(k, builds[b])
                time_into(row, v, k, w, l, c)
            row["speedup"] = round(min(row["base"], row["base2"]) / min(row["tree"], row["tree2"]), 3)
        except Exception as exc:
            row["error"] = str(exc)[:300]
        rows.append(row)
        print(row, flush=True)
    json.dump(rows, open(os.path.join(out, "dispatch_ab.json"), "w"), indent=1)
    print_geomeans(rows)

if __name__ == "__main__":
    main()
