"""The experiments' shared pieces: a suite layer's built-in kernel, and the one GPU measurement
(check a kernel against float64, then time it per block size)."""


def layer_of(name):
    """The benchmark's layer called ``name`` (any suite)."""
    from irprune.bench.suites import SUITES
    return {l.name: l for ls in SUITES.values() for l in ls}[name]


def compile_layer(template, name, group_size, slices, cache_dir, max_registers=None, tile=None,
                  assemble=False):
    """(kernel, weights, layer): layer ``name`` at sparsity 0.9 (the bench's weights) compiled
    with ``template`` at (group size, slices[, tile]) and a register budget (assembled with
    ``assemble``), through the disk cache at ``cache_dir``."""
    import os
    os.environ.setdefault("IRPRUNE_JOBS", "1")
    from irprune.bench.compile_jobs import bench_weights
    from irprune.cache import DiskCache
    l = layer_of(name)
    w = bench_weights(l, 0.9, 0)
    k = template.compile(w, (1, l.C, l.H, l.W), stride=l.stride, padding=l.padding,
                         group_size=group_size, slices=slices, tile=tile,
                         cache=DiskCache(cache_dir), max_registers=max_registers,
                         assemble=assemble)
    return k, w, l


def built_in_kernel(name, group_size, slices, cache_dir):
    """compile_layer with the built-in template and no register budget."""
    from irprune.templates.conv2d import conv2d_nchw
    return compile_layer(conv2d_nchw, name, group_size, slices, cache_dir)


def build_all(build, jobs, workers: int = 16):
    """Run ``build(job)`` for every job in ``workers`` processes (to fill the disk cache before
    any timing); print each job that raised, in one line."""
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(workers) as ex:
        for job, err in zip(jobs, ex.map(_try_build, [(build, j) for j in jobs])):
            if err:
                print("compile failed:", job, err[:300], flush=True)


def _try_build(arg):
    build, job = arg
    try:
        build(job)
    except Exception as exc:
        return str(exc)


def install_ptx(k, parts):
    """Put rewritten PTX and its ptxas results (``[(ptx, PtxasResult), ...]``, one per part) into
    kernel ``k``, forget any module already loaded for it, and return the most registers."""
    for p, (ptx, r) in zip(k.parts, parts):
        p.ptx, p._ptxas = ptx, r
    k._loaded.clear()
    k._launch_memo.clear()
    return max(r.registers for _, r in parts)


def best_time(k, w, layer, batch: int, blocks=(64, 128, 256), rotation: int = 4,
              pad_bytes: int = 0):
    """(median us, block, largest relative error) of the fastest block that launches.

    Each block's output is compared with a float64 convolution first (outputs
    poisoned with NaN); a block that cannot launch (registers, shared memory)
    is skipped. Inputs rotate over ``rotation`` sets so that they leave L2;
    with ``pad_bytes`` each input is the start of a buffer that long past its
    end (for kernels that touch memory past the tensor, e.g. prefetches).
    """
    import torch

    from irprune.bench.timing import measure

    numel = batch * layer.C * layer.H * layer.W
    extra = -(-pad_bytes // 4)
    xs = [torch.randn(numel + extra, device="cuda")[:numel].view(batch, layer.C, layer.H, layer.W)
          for _ in range(rotation)]
    ref = torch.nn.functional.conv2d(xs[0].double(), torch.from_numpy(w).double().cuda(),
                                     stride=layer.stride, padding=layer.padding)
    y = torch.empty(ref.shape, device="cuda")
    best = None
    for blk in blocks:
        k.block = blk
        y.fill_(float("nan"))
        try:
            k(xs[0], out=y)
        except Exception as exc:  # a block that does not fit
            print("  block", blk, "failed:", str(exc)[:100])
            continue
        torch.cuda.synchronize()
        err = float((y.double() - ref).abs().max() / ref.abs().max())
        t = measure(lambda i: k(xs[i], out=y), rotation=rotation, target_ms=10, repeats=5).median_us
        if best is None or t < best[0]:
            best = (t, blk, err)
    return best


# The A/B scripts' shared pieces (index32_ab, partials_ab, dispatch_ab, anatomy): the
# configurations a bench run's tuner chose, one row per configuration, a variant's timing into
# that row, and the geomean summary.

from typing import NamedTuple


class Config(NamedTuple):
    """One irprune configuration a bench run timed."""
    suite: str
    layer: str
    batch: int
    gs: int
    slices: int
    tile: tuple | None
    budget: int | None
    block: int
    m: int  # channel groups per block
    order: str = "natural"  # channel order (irprune.channel_order)


def recorded_configs(results: str, tiles: bool = True, layers=()) -> list:
    """The configurations of the irprune records that ran in bench results file ``results``
    (without the row-tile ones unless ``tiles``; only ``layers`` when given)."""
    import json
    out = []
    for r in json.load(open(results))["records"]:
        if r.get("impl") != "irprune" or r.get("status") != "ok" or (r.get("tile") and not tiles):
            continue
        if layers and r["layer"] not in layers:
            continue
        out.append(Config(r["suite"], r["layer"], r["batch"], r["group_size"], r["slices"],
                          tuple(r["tile"]) if r["tile"] else None, r["max_registers"], r["block"],
                          r["groups_per_block"], r.get("channel_order") or "natural"))
    return out


def recorded_kernel(c, cache_dir, rewrite=None):
    """(kernel, weights, layer): recorded configuration ``c`` compiled as the bench did (the
    built-in template, or its row-tile template for a tile; ``c``'s batch, budget and channel
    order; the bench's weights), its PTX rewritten by ``rewrite(ptx)`` and assembled again when
    given, launched with ``c``'s block and groups per block."""
    import os
    os.environ.setdefault("IRPRUNE_JOBS", "1")
    from irprune.bench.compile_jobs import bench_weights
    from irprune.cache import DiskCache
    from irprune.templates.conv2d import conv2d_nchw
    from irprune.tune import template_for
    l = layer_of(c.layer)
    w = bench_weights(l, 0.9, 0)
    k = template_for(conv2d_nchw, c.tile).compile(
        w, (c.batch, l.C, l.H, l.W), stride=l.stride, padding=l.padding, group_size=c.gs,
        slices=c.slices, tile=c.tile, cache=DiskCache(cache_dir), max_registers=c.budget,
        assemble=True, channel_order=c.order)
    if rewrite:
        install_ptx(k, assembled([p.ptx for p in k.parts], rewrite, k.cpu))
    k.block, k.groups_per_block = c.block, c.m
    return k, w, l


def variants_row(rounds: int):
    """A ``time_row`` for variant_rows over recorded_kernel's ``(kernel, weights, layer)``
    triples: every variant checked and timed ``rounds`` times against ``"base"`` (rotation_ab)."""
    def time_row(row, c, built):
        _, w, l = built["base"]
        rotation_ab(row, {v: b[0] for v, b in built.items()}, w, l, c.batch, rounds, "base")
    return time_row


def build_variants(build, cfgs, variants):
    """Compile ``build((variant, c))`` for every configuration of ``cfgs`` and every variant
    (``"base"`` first) in parallel processes (build_all), before any timing."""
    jobs = [(v, c) for c in cfgs for v in ("base",) + tuple(variants)]
    print(len(jobs), "kernels", flush=True)
    build_all(build, jobs)


def variant_rows(cfgs, kernel, variants, out_name: str, time_row) -> list:
    """The A/B loop of a variant experiment: for each configuration of ``cfgs``, ``kernel(v, c)``
    of ``"base"`` and each of ``variants`` (compiled before by build_variants), then
    ``time_row(row, c, built)`` fills the row; each row is saved to ``out_name`` as it comes (an
    error kept in its row), and each variant's geomean speedup printed at the end."""
    rows = []
    for c in cfgs:
        row = config_row(c)
        try:
            built = {v: kernel(v, c) for v in ("base",) + tuple(variants)}
            time_row(row, c, built)
        except Exception as exc:
            row["error"] = str(exc)[:300]
        save_row(rows, row, out_name)
    for v in variants:
        print_geomeans(rows, "speedup_" + v)
    return rows


def config_row(c) -> dict:
    """A results row for configuration ``c``, its timings still to come."""
    return {"suite": c.suite, "layer": c.layer, "batch": c.batch, "gs": c.gs, "slices": c.slices,
            "tile": c.tile, "budget": c.budget, "block": c.block, "m": c.m}


def assembled(ptxs, rewrite, cpu):
    """``[(ptx, PtxasResult)]`` for each module of ``ptxs``, rewritten by ``rewrite`` (None: as
    they are), for install_ptx."""
    from irprune.codegen import run_ptxas
    out = []
    for ptx in ptxs:
        ptx = rewrite(ptx) if rewrite else ptx
        out.append((ptx, run_ptxas(ptx, cpu)))
    return out


def time_into(row, name, k, w, layer, c):
    """Time kernel ``k`` with configuration ``c``'s launch (block, groups per block), checked
    against float64, inputs over 16 sets; put its time and error into ``row`` under ``name``."""
    k.groups_per_block = c.m
    us, _, err = best_time(k, w, layer, c.batch, (c.block,), rotation=16)
    row[name] = round(us, 3)
    row[name + "_err"] = f"{err:.1e}"


def print_geomeans(rows, key: str = "speedup"):
    """One line per (1x1 or seed, batch): the geomean, min and max of the rows' ``key``."""
    import math
    groups = {}
    for r in rows:
        if key in r:
            groups.setdefault(("1x1" if r["suite"] != "seed" else "seed", r["batch"]), []).append(r[key])
    for (kind, batch), v in sorted(groups.items()):
        print(f"{kind} batch {batch}: {len(v)} layers, geomean {key} "
              f"{math.exp(sum(map(math.log, v)) / len(v)):.3f}x, min {min(v):.3f}, max {max(v):.3f}",
              flush=True)


def time_compiled_pair(cfgs, kernel, variants, out_name):
    """The A/B of two compiled variants on each recorded configuration of ``cfgs``: every
    ``kernel(variant, cfg)`` built first (build_all, 16 processes), then per configuration both
    checked against float64 and timed one after the other (time_into) with their registers;
    speedup = the first variant's time / the second's. Rows saved to ``$OUT/out_name`` as they
    come (save_row), then the geomeans printed."""
    jobs = [(v, c) for c in cfgs for v in variants]
    print(len(jobs), "kernels", flush=True)
    build_all(_build_variant, [(kernel, job) for job in jobs])
    rows = []
    for c in cfgs:
        row = config_row(c)
        try:
            for v in variants:
                k, w, l = kernel(v, c)
                time_into(row, v, k, w, l, c)
                row[v + "_regs"] = k.registers
            row["speedup"] = round(row[variants[0]] / row[variants[1]], 3)
        except Exception as exc:
            row["error"] = str(exc)[:300]
        save_row(rows, row, out_name)
    print_geomeans(rows)


def _build_variant(arg):
    kernel, (variant, cfg) = arg
    kernel(variant, cfg)


# The hand-written kernels' shared pieces (tma_tile, data_kernel, data_numba): a layer's inputs
# and float64 reference, its tuned irprune kernel timed into a row, and a raw launch checked
# against the reference, then timed.

def save_row(rows, row, name):
    """Add ``row`` to ``rows``, print it, and write all of them to ``$OUT/name`` (default: the
    current folder) as JSON: a script stopped midway keeps what it measured."""
    import json, os
    rows.append(row)
    print(row, flush=True)
    with open(os.path.join(os.environ.get("OUT", "."), name), "w") as f:
        json.dump(rows, f, indent=1)


def layer_case(name, rotation: int = 16):
    """(layer, weights, inputs, float64 reference of inputs[0], output) of layer ``name`` at
    batch 1 and sparsity 0.9 (the bench's weights), ``rotation`` input sets on the GPU."""
    import torch
    from irprune.bench.compile_jobs import bench_weights
    l = layer_of(name)
    w = bench_weights(l, 0.9, 0)
    xs = [torch.randn(1, l.C, l.H, l.W, device="cuda") for _ in range(rotation)]
    ref = torch.nn.functional.conv2d(xs[0].double(), torch.from_numpy(w).double().cuda(),
                                     stride=l.stride, padding=l.padding)
    return l, w, xs, ref, torch.empty(ref.shape, device="cuda")


def tuned_row(c, w, layer, cache_dir) -> dict:
    """The results row of configuration ``c`` (recorded_configs) compiled with the built-in
    template and timed by best_time, inputs over 16 sets."""
    from irprune.templates.conv2d import conv2d_nchw
    k, _, _ = compile_layer(conv2d_nchw, c.layer, c.gs, c.slices, cache_dir, c.budget,
                            assemble=True)
    k.groups_per_block = c.m
    us, blk, err = best_time(k, w, layer, 1, (c.block,), rotation=16)
    return {"layer": c.layer, "kind": "tuned", "g": c.gs, "slices": c.slices, "m": c.m,
            "block": blk, "us": round(us, 3), "err": f"{err:.1e}"}


def launcher(fn, config, args):
    """``call(i)``: launch loaded function ``fn`` with cuda.core LaunchConfig ``config`` and
    the parameters ``args(i)`` on PyTorch's current stream (capturable in a CUDA graph)."""
    import torch
    from cuda.core import launch
    from irprune.launch import _stream

    def call(i):
        launch(_stream(int(torch.cuda.current_stream().cuda_stream)), config, fn.kernel, *args(i))
    return call


def check_then_time(call, y, ref, zero: bool = False, timed=None) -> tuple[str, float]:
    """(largest relative error, median us): run ``call(0)`` once into ``y`` (first poisoned
    with NaN, or zeroed with ``zero`` for kernels that accumulate), compare with the float64
    ``ref`` (an error of 1e-5 or more raises), then time ``timed`` (default ``call``) over 16
    input sets."""
    import torch
    from irprune.bench.timing import measure
    y.zero_() if zero else y.fill_(float("nan"))
    call(0)
    torch.cuda.synchronize()
    err = float((y.double() - ref).abs().max() / ref.abs().max())
    if not err < 1e-5:
        raise RuntimeError(f"wrong result: {err}")
    us = measure(timed or call, rotation=16, target_ms=10, repeats=5).median_us
    return f"{err:.1e}", round(us, 3)


def time_again(timed, xs, y, rounds: int):
    """Time each ``(row, kernel)`` of ``timed`` ``rounds`` more times, interleaved (a process's
    first timings run a little low), into its row's "again_us" list."""
    from irprune.bench.timing import measure
    for _ in range(rounds):
        for row, k in timed:
            row.setdefault("again_us", []).append(round(measure(
                lambda i, k=k: k(xs[i], out=y), rotation=16, target_ms=10,
                repeats=5).median_us, 3))


def check_and_time_all(rows, cases, xs, y, ref, out_name: str, rounds: int,
                       key: str = "call_us"):
    """Each ``(row, build[, context])`` of ``cases``: ``build(row)`` compiles a kernel (and may
    note what it likes in ``row``), which is checked against float64 and timed into
    ``row[key]`` (check_then_time), ``context()`` around both (e.g. a patched layout that the
    first launch must see); a case that raises gets ``row["error"]``. Then every kernel is
    timed ``rounds`` more times, interleaved (time_again), and the rows saved to
    ``$OUT/out_name`` (save_row)."""
    from contextlib import nullcontext
    timed = []
    for row, build, *context in cases:
        with (context[0]() if context else nullcontext()):
            try:
                k = build(row)
                row["err"], row[key] = check_then_time(lambda i, k=k: k(xs[i], out=y), y, ref)
                timed.append((row, k))
            except Exception as exc:
                row["error"] = str(exc)[:300]
                save_row(rows, row, out_name)
    time_again(timed, xs, y, rounds)
    for row, _ in timed:
        save_row(rows, row, out_name)


def check_and_time_by_layer(out, cases, weights, batch: int, out_name: str, rounds: int = 2):
    """check_and_time_all over ``cases`` = ``[(layer name, row, build), ...]``, one layer at a
    time: its inputs (``batch`` images over 16 sets), the float64 reference of the first with
    ``weights(name)``, and an output, freed before the next layer's."""
    import torch
    for name in dict.fromkeys(c[0] for c in cases):
        l = layer_of(name)
        w = weights(name)
        xs = [torch.randn(batch, l.C, l.H, l.W, device="cuda") for _ in range(16)]
        ref = torch.nn.functional.conv2d(xs[0].double(), torch.from_numpy(w).double().cuda(),
                                         stride=l.stride, padding=l.padding)
        y = torch.empty(ref.shape, device="cuda")
        check_and_time_all(out, [c[1:] for c in cases if c[0] == name], xs, y, ref, out_name,
                           rounds)
        del xs, ref, y
        torch.cuda.empty_cache()


def rotation_ab(row, kernels, w, layer, batch: int, rounds: int, base: str, weights=None):
    """Each ``{variant: kernel}`` of ``kernels`` checked against float64 (output poisoned with
    NaN; an error of 1e-5 or more raises), then all timed ``rounds`` times, interleaved, with
    the bench's input rotation (irprune.bench.impls.make_inputs: input and output sets over
    twice the L2); each variant's times, error and registers into ``row``, and its speedup
    (best ``base`` time / its best) for every variant but ``base``. ``weights``: ``{variant:
    weights}`` for variants compiled from other weights than ``w`` (checked against those)."""
    import torch
    from irprune.bench.impls import make_inputs
    from irprune.bench.timing import measure
    inp = make_inputs(layer, batch, torch.cuda.get_device_properties(0).L2_cache_size, 0)
    row["sets"] = inp.rotation
    def reference(wv):
        return torch.nn.functional.conv2d(inp.xs[0].double(), torch.from_numpy(wv).double().cuda(),
                                          stride=layer.stride, padding=layer.padding)
    for v, k in kernels.items():
        ref = reference((weights or {}).get(v, w))
        inp.ys[0].fill_(float("nan"))
        k(inp.xs[0], out=inp.ys[0])
        torch.cuda.synchronize()
        err = float((inp.ys[0].double() - ref).abs().max() / ref.abs().max())
        if not err < 1e-5:
            raise RuntimeError(f"{v}: wrong result {err}")
        row[v + "_err"] = f"{err:.1e}"
        row[v + "_regs"] = k.registers
    del ref
    for _ in range(rounds):
        for v, k in kernels.items():
            us = measure(lambda i, k=k: k(inp.xs[i], out=inp.ys[i]), rotation=inp.rotation,
                         target_ms=10, repeats=5).median_us
            row.setdefault(v, []).append(round(us, 3))
    for v in kernels:
        if v != base:
            row["speedup_" + v] = round(min(row[base]) / min(row[v]), 3)
    del inp
    torch.cuda.empty_cache()
