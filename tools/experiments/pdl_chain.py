"""Experiment: consecutive calls chained by programmatic dependent launch (PDL).

At batch 1 a launch is a large part of a layer's time: an empty 1 x 1 grid takes about 0.53 us
in a CUDA graph, a 1x1 layer's whole empty grid 0.8 us of its 1.7-4.5 us (docs/perf-log.md,
"Two partial sums, a branch-tree dispatch, a kernel taken apart"). In a graph every kernel
waits for the one before it to finish and flush before its blocks are scheduled. With PDL
(sm_90) a kernel that executes ``griddepcontrol.launch_dependents`` lets the next kernel on
the stream, if that one is launched with programmatic stream serialization, be scheduled at
once; the next one's ``griddepcontrol.wait`` then blocks until the first has completed and its
memory is visible. A kernel that waits before it touches global memory is as correct as
before whatever its predecessor wrote (a model's previous layer writing this one's input), and
only its launch, block scheduling and first instructions overlap the predecessor's tail.

For the empty kernel (a 1 x 1 grid) and for each batch-1 configuration the standing's run
chose (docs/perf/results.json, the immediate-weight layouts), timed in one process as graph
replays over 16 inputs (irprune.bench.timing.measure), every output checked against float64:

- ``plain``: irprune's launch path, its PTX as it is;
- ``instr``: the PTX with ``griddepcontrol.launch_dependents; griddepcontrol.wait;`` before
  its first instruction, launched without the attribute (what the instructions cost alone);
- ``pdl``: the same PTX launched with programmatic stream serialization;
- ``empty_plain`` / ``empty_pdl``: an empty kernel of the same grid, without and with PDL.

Then the three layer variants are timed twice more, interleaved. The empty 1 x 1 kernel is
also timed with CUDA events around plain stream launches (no graph), both ways.

    python3 pdl_chain.py [LAYER ...]    # GPU; rows in $OUT/pdl-chain.json
"""
import copy
import dataclasses
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

PDL = "\tgriddepcontrol.launch_dependents;\n\tgriddepcontrol.wait;\n"
#: Where a variant puts the ``launch_dependents`` trigger (with_pdl).
WHERE = ("start", "end", "wait")
TRIGGER = "griddepcontrol.launch_dependents;"
WAIT = "griddepcontrol.wait;"

#: An empty kernel with irprune's three parameters (input, output, batch).
EMPTY_PTX = """
.version 7.8
.target sm_90
.address_size 64
.visible .entry irp_empty(.param .u64 a, .param .u64 b, .param .u64 c)
{
%s	ret;
}
"""

_DECL = re.compile(r"\s*(\.reg|\.shared|\.local|//|$)")


def with_pdl(ptx: str, where: str = "start") -> str:
    """``ptx`` with a ``griddepcontrol.wait`` before each entry's first instruction (after its
    register and shared declarations: nothing global is read before it) and, by ``where``,
    the ``launch_dependents`` trigger beside it (``start``), before every ``ret`` (``end``: the
    next grid is placed as this one's blocks leave) or nowhere (``wait``: the next grid may
    launch when this one has exited, before its memory is flushed)."""
    first = f"\t{TRIGGER}\n\t{WAIT}" if where == "start" else f"\t{WAIT}"
    lines = ptx.split("\n")
    out, i, n = [], 0, 0
    while i < len(lines):
        out.append(lines[i])
        if lines[i].startswith(".visible .entry") or lines[i].startswith(".entry"):
            i += 1
            while lines[i].strip() != "{":
                out.append(lines[i])
                i += 1
            out.append(lines[i])
            i += 1
            while _DECL.match(lines[i]):
                out.append(lines[i])
                i += 1
            out.append(first)
            n += 1
            continue
        i += 1
    assert n, "no entry in the PTX"
    ptx = "\n".join(out)
    if where == "end":
        ptx, r = re.subn(r"^(\s*)ret;", rf"\1{TRIGGER}\n\1ret;", ptx, flags=re.M)
        assert r, "no ret in the PTX"
    return ptx


def _config(grid, block, shmem, pdl):
    from cuda.core import LaunchConfig
    return LaunchConfig(grid=grid, block=block, shmem_size=shmem,
                        programmatic_stream_serialization=pdl)


def _caller(fns_configs, args):
    """``call(i)``: each (function, LaunchConfig) launched in turn with ``args(i)`` on PyTorch's
    current stream (capturable)."""
    import torch
    from cuda.core import launch
    from irprune.launch import _stream

    def call(i):
        s = _stream(int(torch.cuda.current_stream().cuda_stream))
        for fn, cfg in fns_configs:
            launch(s, cfg, fn, *args(i))
    return call


def empty_rows(rows):
    """The empty 1 x 1 kernel, plain and with PDL, in graphs and as plain stream launches."""
    import numpy as np
    from numba import cuda
    from gpu_timing import save_row
    from irprune.bench.timing import measure

    ctx = cuda.current_context()
    fns = {}
    for what, body in (("plain", ""), ("pdl", PDL)):
        fns[what] = ctx.create_module_ptx(EMPTY_PTX % body).get_function("irp_empty").kernel
    row = {"layer": "empty 1x1"}
    for graph in (True, False):
        for what in ("plain", "pdl"):
            call = _caller([(fns[what], _config((1, 1, 1), (32, 1, 1), 0, what == "pdl"))],
                           lambda i: (0, 0, 1))
            t = measure(call, rotation=1, target_ms=10, repeats=7, graph=graph)
            row[f"{what}_{'graph' if graph else 'events'}_us"] = round(t.median_us, 3)
    save_row(rows, row, "pdl-chain.json")
    return fns


CACHE = os.path.join(os.environ.get("TMPDIR", "/tmp"), "pdl-chain-cache")


def build(c):
    """Configuration ``c`` (recorded_configs) compiled with the built-in template, assembled."""
    from gpu_timing import compile_layer
    from irprune.templates.conv2d import conv2d_nchw
    return compile_layer(conv2d_nchw, c.layer, c.gs, c.slices, CACHE, c.budget, assemble=True)


def main():
    import numpy as np
    import torch
    from gpu_timing import build_all, check_then_time, layer_case, recorded_configs, save_row
    from irprune.bench.timing import measure
    from irprune.codegen import run_ptxas
    from irprune.launch import _functions

    results = os.path.join(HERE, "..", "..", "docs", "perf", "results.json")
    cfgs = [c for c in recorded_configs(results, tiles=False, layers=sys.argv[1:])
            if c.batch == 1 and c.gs is not None]
    print(len(cfgs), "configurations", flush=True)

    build_all(build, cfgs)
    rows = []
    empty = empty_rows(rows)
    timed = []
    for c in cfgs:
        row = {"suite": c.suite, "layer": c.layer, "gs": c.gs, "slices": c.slices, "m": c.m,
               "block": c.block, "budget": c.budget}
        try:
            k, w, l = build(c)
            k.block, k.groups_per_block = c.block, c.m
            l, w, xs, ref, y = layer_case(c.layer)
            # the same kernel with PDL's instructions: copies whose parts hold rewritten PTX,
            # assembled in parallel
            args = lambda i: (xs[i].data_ptr(), y.data_ptr(), 1)
            calls = {"plain": lambda i: k(xs[i], out=y)}
            rewrites = [(where, p) for where in WHERE for p in k.parts]
            with ThreadPoolExecutor(12) as ex:
                done = list(ex.map(lambda wp: run_ptxas(with_pdl(wp[1].ptx, wp[0]), k.cpu),
                                   rewrites))
            for where in WHERE:
                k2 = copy.copy(k)
                k2.parts = [dataclasses.replace(p, ptx=with_pdl(p.ptx, where), _ptxas=r)
                            for (w2, p), r in zip(rewrites, done) if w2 == where]
                k2._loaded, k2._launch_memo = {}, {}
                fns = _functions(k2)
                launches = k2.part_launches(1)
                calls[f"pdl_{where}"] = _caller(
                    [(f.kernel, _config(g, b, k2.shared_bytes, True))
                     for f, (_, g, b) in zip(fns, launches)], args)
                row[f"regs_{where}"] = max(p._ptxas.registers for p in k2.parts)
            for what, call in calls.items():
                row[f"{what}_err"], row[f"{what}_us"] = check_then_time(call, y, ref)
            for what in ("plain", "pdl"):
                call = _caller([(empty[what], _config(g, b, 0, what == "pdl"))
                                for _, g, b in launches], args)
                row[f"empty_{what}_us"] = round(measure(call, rotation=16, target_ms=10,
                                                        repeats=5).median_us, 3)
            row["regs"] = k.registers
            timed.append((row,))
        except Exception as exc:
            row["error"] = str(exc)[:300]
            save_row(rows, row, "pdl-chain.json")
        if len(timed) and timed[-1][0] is row:
            # interleaved second and third timings of the variants
            for _ in range(2):
                for what, call in calls.items():
                    row.setdefault(f"{what}_again", []).append(round(measure(
                        call, rotation=16, target_ms=10, repeats=5).median_us, 3))
            best = {w: min([row[f"{w}_us"]] + row[f"{w}_again"]) for w in calls}
            row["best"] = min(best, key=best.get)
            for where in WHERE:
                row[f"speedup_{where}"] = round(best["plain"] / best[f"pdl_{where}"], 3)
            row["speedup"] = round(best["plain"] / best[row["best"]], 3)
            save_row(rows, row, "pdl-chain.json")
            del xs, y, ref
            torch.cuda.empty_cache()
    import math
    for key in [f"speedup_{w}" for w in WHERE] + ["speedup"]:
        for kind in ("seed", "1x1"):
            v = [r[key] for r in rows if key in r and (r["suite"] == "seed") == (kind == "seed")]
            if v:
                print(f"{key} {kind}: {len(v)} layers, geomean "
                      f"{math.exp(sum(map(math.log, v)) / len(v)):.3f}x, min {min(v)}, "
                      f"max {max(v)}", flush=True)

if __name__ == "__main__":
    main()
