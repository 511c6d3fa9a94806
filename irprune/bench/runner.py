"""``irprune bench``: compile a suite, check every implementation, time them side by side.

One process, one GPU, one run: for each (layer, batch), the same inputs go
through every implementation; each output is compared with a float64
reference (and irprune's also with cuDNN fp32) before anything is timed; a
wrong result is recorded as ``wrong`` with its error and never timed.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..llvm_opt import DEFAULT_CPU
from ..table_layout import TableConfig
from ..tune import CHANNEL_ORDERS
from .code_fetch import code_floor_us
from .compile_jobs import CompileJob, bench_nnz, bench_weights, compile_all
from .impls import IMPLS
from .suites import BATCHES, QUICK, SPARSITIES, Layer, suite_layers

#: Relative error against float64 above which a result is wrong, per implementation.
TOLERANCE = {"irprune": 1e-5, "dense_template": 1e-5, "cudnn_fp32": 1e-5, "cusparse_csr": 1e-5,
             "cudnn_tf32": 1e-2, "cudnn_fp16": 5e-2, "move_floor": 1e-5}


@dataclass
class BenchConfig:
    """What to run. Unset batches/sparsities come from the suite (or ``--quick``)."""

    suites: list[str]
    quick: bool = False
    layers: list[str] | None = None
    batches: tuple[int, ...] | None = None
    sparsities: tuple[float, ...] | None = None
    impls: tuple[str, ...] = IMPLS
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    cache_dir: str | None = None
    #: Refuse irprune on a layer with more dense weights than this (None: no such limit).
    max_weights: int | None = None
    #: Refuse irprune on a (layer, sparsity) of more nonzeros than this: compile time (and
    #: ptxas's) grows with the nonzeros. 250,000 takes every layer of the suites at 0.9.
    max_nnz: int = 250_000
    target_ms: float = 20.0
    repeats: int = 7
    commit: str | None = None
    #: Time every candidate channel-group size and block size (irprune.tune) and report the fastest.
    tune: bool = True
    #: Processes that time the library baselines (irprune.bench.baseline_processes): each
    #: baseline keeps its fastest; cuDNN's time moves by up to 1.8x between processes.
    baseline_processes: int = 3
    #: An earlier run's results.json: irprune compiles and times only the configuration that
    #: run's tuner chose for each (layer, batch, sparsity) it has, instead of tuning again.
    choices_from: str | None = None
    #: The channel orders (irprune.channel_order) each pixel-layout configuration is compiled and
    #: timed in where they change its groups (irprune.tune.candidate_channel_orders); a choice
    #: from ``choices_from`` that records none is timed in each of them.
    channel_orders: tuple[str, ...] = CHANNEL_ORDERS
    #: Time irprune's chosen kernels in the ``baseline_processes`` processes too and keep their
    #: fastest, as the baselines do (False: irprune timed once, in the main process).
    retime_irprune: bool = True
    #: With ``choices_from``: time each replayed pixel-layout choice with every block of
    #: irprune.tune.BLOCKS that fits its slices, groups per block and registers (its own block
    #: among them) and keep the fastest (irprune.tune.finalists), instead of its recorded block
    #: alone: the launch shapes a tuner with fewer candidate blocks did not time.
    retime_blocks: bool = False


@dataclass(frozen=True)
class Unit:
    suite: str
    layer: Layer
    batch: int
    sparsities: tuple[float, ...]


def plan(cfg: BenchConfig) -> list[Unit]:
    """The (suite, layer, batch) units to run, with their sparsities."""
    units = []
    for suite in cfg.suites:
        names = cfg.layers
        if cfg.quick and not names:
            names = QUICK["layers"].get(suite, [])
        layers = suite_layers(suite, names or None) if names or not cfg.quick else []
        sps = cfg.sparsities or (QUICK["sparsities"] if cfg.quick else SPARSITIES)
        for layer in layers:
            for b in cfg.batches or BATCHES[suite]:
                units.append(Unit(suite, layer, b, tuple(sps)))
    return units


def weight_seed(layer: Layer, sparsity: float) -> int:
    """Weights depend on the layer and sparsity only (the same for every batch)."""
    return (zlib.crc32(layer.name.encode()) + int(round(sparsity * 1000))) % (2**31)


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, check=True, cwd=Path(__file__).resolve().parent).stdout.strip()
    except Exception:
        return None


def environment(commit: str | None) -> dict:
    """GPU, driver, library versions, commit: everything a reader needs to place the numbers."""
    from importlib.metadata import PackageNotFoundError, version

    import torch

    def ver(d):
        try:
            return version(d)
        except PackageNotFoundError:
            return None

    props = torch.cuda.get_device_properties(0)
    env = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "gpu": props.name,
           "compute_capability": f"{props.major}.{props.minor}", "sms": props.multi_processor_count,
           "l2_bytes": getattr(props, "L2_cache_size", None), "memory_bytes": props.total_memory,
           "torch": torch.__version__, "cuda_runtime": torch.version.cuda,
           "cudnn": torch.backends.cudnn.version(), "python": platform.python_version(),
           "host_cpus": os.cpu_count(), "commit": commit or git_commit()}
    for d in ("irprune", "numba", "numba-cuda", "llvmlite", "numpy", "cuda-bindings", "cuda-core"):
        env[d] = ver(d)
    try:
        env["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                       capture_output=True, text=True, timeout=20).stdout.strip().splitlines()[0]
    except Exception:
        env["driver"] = None
    from ..codegen import find_ptxas

    env["ptxas"] = find_ptxas()
    return env


def rel_err(y, ref) -> float:
    import torch

    d = float(torch.linalg.vector_norm(y.double() - ref))
    n = float(torch.linalg.vector_norm(ref))
    if not np.isfinite(d):
        return float("inf")
    return d / n if n > 0 else d


def _progress():
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), transient=False)


def run(cfg: BenchConfig, out_json: Path | None = None, log=print) -> dict:
    """Run the benchmark; return (and, with ``out_json``, write) the results document."""
    from ..errors import IrpruneError, LaunchError

    try:
        import torch
    except ImportError:
        raise IrpruneError("irprune bench needs PyTorch for its baselines: pip install 'irprune[bench]'",
                           stage="bench") from None

    from ..templates.conv2d import conv2d_nchw
    from . import impls as I
    from .timing import measure

    if not torch.cuda.is_available():
        raise LaunchError("irprune bench needs a CUDA GPU (and PyTorch: pip install irprune[bench])",
                          stage="bench")
    import warnings

    # Numba's low-occupancy notice (tiny layers) and torch's "CSR is beta" would drown the log.
    warnings.filterwarnings("ignore", message=".*will likely result in GPU under-utilization.*")
    warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support is in beta.*")
    units = plan(cfg)
    if not units:
        raise ValueError("nothing to run: no layer matched")
    if cfg.choices_from is not None:
        cfg._choices = load_choices(cfg.choices_from)  # a bad file fails before any compile
    cache_dir = cfg.cache_dir or tempfile.mkdtemp(prefix="irprune-bench-cache-")
    doc = {"environment": environment(cfg.commit),
           "config": {"suites": cfg.suites, "quick": cfg.quick, "max_weights": cfg.max_weights,
                      "max_nnz": cfg.max_nnz,
                      "target_ms": cfg.target_ms, "repeats": cfg.repeats, "jobs": cfg.jobs,
                      "cache_dir_fresh": cfg.cache_dir is None, "tolerance": TOLERANCE,
                      "tune": cfg.tune, "baseline_processes": cfg.baseline_processes,
                      "retime_irprune": cfg.retime_irprune,
                      "choices_from": cfg.choices_from,
                      "cudnn_benchmark": True},
           "records": []}

    # Phase 1: compile every irprune kernel on the CPU cores, in parallel.
    jobs, refused = compile_plan(cfg, units, cache_dir) if "irprune" in cfg.impls else ([], {})
    compiled: dict = {}
    if jobs:
        t0 = time.perf_counter()
        with _progress() as prog:
            task = prog.add_task(f"compiling on {cfg.jobs} cores", total=len(jobs))

            def tick(job, res):
                prog.advance(task)
                what = f"{job.layer.name} b{job.batch} " + (
                    f"{job.table.describe()} " if job.table else
                    f"g{job.group_size} x{job.slices} ") + (
                    f"tile {job.tile[0]}x{job.tile[1]} " if job.tile else "") + (
                    f"maxnreg {job.max_registers} " if job.max_registers else "") + (
                    f"{job.channel_order} order " if job.channel_order != "natural" else "") + (
                    "IR template" if job.sparsity is None else f"s{job.sparsity}")
                if not res.get("ok"):
                    log(f"compile failed: {what}: {res.get('error')}")
                else:
                    log(f"compiled {what} in {res['seconds']:.1f} s")

            compiled = compile_all(jobs, cfg.jobs, progress=tick)
        doc["config"]["compile_wall_s"] = round(time.perf_counter() - t0, 1)

    # Phase 2: on the GPU, one (layer, batch) at a time.
    torch.backends.cudnn.benchmark = True  # let cuDNN pick its fastest algorithm: the strongest baseline
    l2 = doc["environment"]["l2_bytes"] or 50 << 20
    empty_t = measure(I.empty_kernel(), target_ms=cfg.target_ms, repeats=cfg.repeats)
    bw = I.copy_bandwidth()
    doc["environment"].update({"empty_launch_us": round(empty_t.median_us, 3),
                               "copy_bandwidth_GBps": round(bw / 1e9, 1)})
    fetch = _code_fetch(doc, cfg) if "code_floor" in cfg.impls else None
    total = sum(len(u.sparsities) for u in units)
    with _progress() as prog:
        task = prog.add_task("timing", total=total)
        for u in units:
            prog.update(task, description=f"timing {u.suite}/{u.layer.name} b{u.batch}")
            _run_unit(u, cfg, doc, compiled, refused, cache_dir, l2, empty_t.median_us, bw,
                      conv2d_nchw, lambda: prog.advance(task), fetch)
            if out_json is not None:  # a run cut short still leaves what it measured
                write_json(doc, out_json)
            torch.cuda.empty_cache()

    # Phase 3: the library baselines, and irprune's chosen kernels, again in fresh processes;
    # each keeps its fastest (irprune.bench.baseline_processes).
    extra = cfg.baseline_processes - 1
    retimed = tuple(i for i in cfg.impls
                    if i in I.BASELINES or (i == "irprune" and cfg.retime_irprune))
    if extra > 0 and retimed:
        import dataclasses

        from .baseline_processes import fold, run_processes

        with tempfile.TemporaryDirectory(prefix="irprune-main-run-") as tmp:
            # the processes replay this run's choices as they are: their blocks included
            pcfg = dataclasses.replace(cfg, impls=retimed, cache_dir=cache_dir,
                                       retime_blocks=False)
            if "irprune" in retimed:  # the processes replay the kernels this run chose
                write_json(doc, Path(tmp) / "main.json")
                pcfg.choices_from = str(Path(tmp) / "main.json")
            runs = run_processes(pcfg, extra, log)
        changed = fold(doc["records"], runs, retimed)
        doc["environment"]["baseline_processes"] = 1 + len(runs)
        doc["environment"]["retimed_in_processes"] = list(retimed)
        log(f"{', '.join(retimed)}: fastest of {1 + len(runs)} processes; {changed} records "
            "were faster in another process")
        if out_json is not None:
            write_json(doc, out_json)
    return doc


def compile_plan(cfg: BenchConfig, units: list[Unit], cache_dir: str
                 ) -> tuple[list[CompileJob], dict]:
    """The compile jobs of a run (one IR template per configuration, one kernel per
    configuration, register budget and sparsity) and what ``max_weights`` and ``max_nnz``
    refuse ({(layer, batch, sparsity): why})."""
    jobs, refused = [], {}
    for u in units:
        templated = set()
        for s in u.sparsities:
            why = refusal(cfg, u.layer, s)
            if why:
                refused[(u.layer.name, u.batch, s)] = why
                continue
            for gs, sl, tile, cap, table, order in configs(cfg, u, s):
                # One IR template serves every budget and channel order (a table kernel builds
                # its own).
                if table is None and (gs, sl, tile) not in templated:
                    templated.add((gs, sl, tile))
                    jobs.append(CompileJob(u.layer, u.batch, None, 0, cache_dir, gs, sl, tile))
                jobs.append(CompileJob(u.layer, u.batch, s, weight_seed(u.layer, s), cache_dir,
                                       gs, sl, tile, cap, table, order))
    return jobs, refused


def refusal(cfg: BenchConfig, layer: Layer, sparsity: float) -> str | None:
    """Why this run does not compile ``layer`` at ``sparsity`` (``max_weights``, ``max_nnz``),
    or None."""
    if cfg.max_weights is not None and layer.num_weights > cfg.max_weights:
        return (f"layer has {layer.num_weights:,} weights; this run compiles layers of at most "
                f"{cfg.max_weights:,} (--max-weights); raise it to include the layer")
    nnz = bench_nnz(layer, sparsity)
    if nnz > cfg.max_nnz:
        return (f"{nnz:,} nonzeros at sparsity {sparsity:g}; this run compiles at most "
                f"{cfg.max_nnz:,} (--max-nnz): compile and ptxas time grow with the nonzeros "
                "(every tuning candidate is a compile); raise --max-nnz to include it")
    return None


def load_choices(path: str) -> dict:
    """{(layer, batch, sparsity): the irprune record} of each timed irprune row of an earlier
    run's results.json (its tuner's choice: group size, slices, tile, budget, launch shape)."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read choices from {path}: {exc}") from None
    commit = doc.get("environment", {}).get("commit")
    out = {}
    for r in doc.get("records", []):
        if r.get("impl") == "irprune" and r.get("status") == "ok" and (
                r.get("group_size") or r.get("layout") == "table"):
            out[(r["layer"], r["batch"], r["sparsity"])] = dict(r, commit=commit)
    if not out:
        raise ValueError(f"{path} has no timed irprune record to take choices from")
    return out


def _choice(cfg: BenchConfig, u: Unit, sparsity: float) -> dict | None:
    if cfg.choices_from is None:
        return None
    if not hasattr(cfg, "_choices"):
        cfg._choices = load_choices(cfg.choices_from)
    return cfg._choices.get((u.layer.name, u.batch, sparsity))


def configs(cfg: BenchConfig, u: Unit, sparsity: float) -> list[tuple]:
    """The (group size, slices, tile, register budget, table, channel order) configurations
    compiled for a unit at ``sparsity`` (``table`` a TableConfig for a table-layout kernel, whose
    group size is None, else None): an earlier run's choice (``choices_from``), else the tuner's
    candidates, each with its register budgets and in each of ``cfg.channel_orders`` that changes
    its groups, and the table layout's for a large 1x1 layer, or the default. A choice made
    before the table layout existed (its record has no ``layout``) is timed beside the table
    candidates, which its run did not have; one made before channel orders (no
    ``channel_order``) in each of ``cfg.channel_orders``."""
    from ..register_budget import DEFAULT_MAX_REGISTERS
    from ..template import default_group_size
    from ..tune import candidate_channel_orders, candidate_configs, candidate_register_caps

    g = u.layer.geometry(u.batch)
    chosen = _choice(cfg, u, sparsity)
    if chosen is not None:
        if chosen.get("layout") == "table":
            return [(None, chosen["slices"], None, None, TableConfig(**chosen["table"]),
                     "natural")]
        tile = tuple(chosen["tile"]) if chosen.get("tile") else None
        gs = chosen["group_size"]
        orders = ([chosen["channel_order"]] if "channel_order" in chosen else
                  candidate_channel_orders(g, gs, tile, cfg.channel_orders))
        mine = [(gs, chosen["slices"], tile, chosen["max_registers"], None, o) for o in orders]
        return mine + (table_configs(u, sparsity) if "layout" not in chosen else [])
    if not cfg.tune:  # what irprune.conv2d gives untuned
        return [(default_group_size(g), 1, None, DEFAULT_MAX_REGISTERS, None, "natural")]
    nnz = bench_nnz(u.layer, sparsity)
    return [(gs, sl, tile, cap, None, o) for gs, sl, tile in candidate_configs(g, nnz=nnz)
            for o in candidate_channel_orders(g, gs, tile, cfg.channel_orders)
            for cap in candidate_register_caps(tile, nnz)] + table_configs(u, sparsity)


def replay_shapes(k, chosen: dict, retime: bool) -> list[tuple[int, int]]:
    """The (block, groups per block) launch shapes to time compiled kernel ``k`` of an earlier
    run's ``chosen`` pixel-layout configuration with: its recorded shape, and with ``retime``
    also every other block of irprune.tune.BLOCKS that fits ``k`` at the recorded groups per
    block (none for a row tile, whose block is its rows)."""
    from ..tune import kernel_blocks

    mine = (chosen["block"], chosen.get("groups_per_block", 1))
    if not retime or k.tile:
        return [mine]
    return [mine] + [(b, mine[1]) for b in kernel_blocks(k, groups_per_block=mine[1])
                     if b != mine[0]]


def table_configs(u: Unit, sparsity: float) -> list[tuple]:
    """The tuner's table-layout candidates (irprune.tune.candidate_table_configs) of a unit at
    ``sparsity``, as :func:`configs` entries (none for a layer that is not large and 1x1)."""
    from ..table_layout import table_problem
    from ..tune import candidate_table_configs, is_large

    g = u.layer.geometry(u.batch)
    nnz = bench_nnz(u.layer, sparsity)
    if not is_large(nnz) or table_problem(g, DEFAULT_CPU):  # no weights to draw
        return []
    w = bench_weights(u.layer, sparsity, weight_seed(u.layer, sparsity))
    return [(None, c.slices, None, None, c, "natural")
            for c in candidate_table_configs(w, g, DEFAULT_CPU, nnz=nnz)]


#: The implementations that are models of a time, not kernels.
MODELS = ("floor", "code_floor")


def model_record(rec: dict, empty_us: float, bw: float, fetch: float | None) -> dict:
    """``rec`` (a record of one of MODELS, with its "nnz" and "bytes": input plus output) with
    its modelled time: the floor is one empty launch plus the bytes and the nonzeros' 4 bytes
    each at copy bandwidth ``bw``; the code floor one empty launch plus the nonzeros' SASS at
    code fetch rate ``fetch`` (an error where that was not measured)."""
    rec = dict(rec, method="model")
    if rec["impl"] == "floor":
        rec["median_us"] = round(empty_us + (rec["bytes"] + 4 * rec["nnz"]) / bw * 1e6, 3)
    elif fetch is None:
        rec.update(status="error", error="the code fetch rate was not measured (see the environment)")
    else:
        rec["median_us"] = round(code_floor_us(rec["nnz"], empty_us, fetch), 3)
    return rec


def _code_fetch(doc, cfg) -> float | None:
    """The GPU's code fetch rate in bytes/s (irprune.bench.code_fetch), recorded in the
    environment; None, with the error recorded, where it could not be measured."""
    from .code_fetch import fetch_rate, measure_fetch

    try:
        timing = measure_fetch(target_ms=cfg.target_ms, repeats=cfg.repeats)
        rate = fetch_rate(timing)
    except Exception as exc:  # the code floor is a model: the run goes on without it
        doc["environment"]["code_fetch_error"] = f"{type(exc).__name__}: {exc}"[:300]
        return None
    doc["environment"].update({"code_fetch_GBps": round(rate / 1e9, 1), "code_fetch": timing})
    return rate


def _run_unit(u: Unit, cfg, doc, compiled, refused, cache_dir, l2, empty_us, bw, tmpl,
              advance=lambda: None, fetch: float | None = None):
    """Check and time every implementation of ``cfg.impls`` on unit ``u``, appending one record
    per (sparsity, implementation) to ``doc["records"]``; ``advance`` is called per sparsity.
    ``fetch`` is the code fetch rate (bytes/s) of the code floor."""
    import torch
    import torch.nn.functional as F

    from . import impls as I
    from .timing import measure

    layer, batch = u.layer, u.batch
    inp = I.make_inputs(layer, batch, l2, seed=weight_seed(layer, 0.0) + batch)
    g = layer.geometry(batch)
    in_bytes = 4 * int(np.prod(g.input_shape))
    out_bytes = 4 * int(np.prod(g.output_shape))
    x64 = inp.xs[0].double()
    for sp in u.sparsities:
        w = bench_weights(layer, sp, weight_seed(layer, sp))
        nnz = int(np.count_nonzero(w))
        base = {"suite": u.suite, "layer": layer.name, "batch": batch, "sparsity": sp, "nnz": nnz,
                "weights": layer.num_weights, "shape": layer.describe(),
                "flops": layer.flops(batch, nnz), "dense_flops": layer.flops(batch),
                "bytes": in_bytes + out_bytes}
        ref = F.conv2d(x64, torch.from_numpy(w).cuda().double(), stride=layer.stride,
                       padding=layer.padding)
        torch.backends.cudnn.allow_tf32 = False
        ref32 = F.conv2d(inp.xs[0], torch.from_numpy(w).cuda(), stride=layer.stride,
                         padding=layer.padding)
        for impl in cfg.impls:
            rec = dict(base, impl=impl, median_us=None, status="ok")
            try:
                if impl in MODELS:
                    doc["records"].append(model_record(rec, empty_us, bw, fetch))
                    continue
                if impl == "move_floor":
                    # not a convolution: checked against its own float64 result
                    fn = I.move_floor(inp, nnz)
                    inp.ys[0].fill_(float("nan"))
                    rec["rel_err"] = rel_err(fn(0), fn.expected(0))
                    if rec["rel_err"] > TOLERANCE[impl]:
                        rec["status"] = "wrong"
                    else:
                        rec.update(measure(fn, rotation=inp.rotation, target_ms=cfg.target_ms,
                                           repeats=cfg.repeats).to_dict())
                    doc["records"].append(rec)
                    continue
                fn = _make_impl(impl, u, inp, w, sp, compiled, refused, cache_dir, tmpl, rec, cfg)
                if fn is None:
                    doc["records"].append(rec)
                    continue
                if impl in ("irprune", "dense_template"):
                    inp.ys[0].fill_(float("nan"))  # every element must be written
                y = fn(0)
                torch.cuda.synchronize()
                rec["rel_err"] = rel_err(y, ref)
                if impl in ("irprune", "dense_template"):
                    rec["rel_diff_cudnn_fp32"] = rel_err(y, ref32.double())
                bad = rec["rel_err"] > TOLERANCE[impl] or rec.get("rel_diff_cudnn_fp32", 0) > TOLERANCE[impl]
                if bad:
                    rec["status"] = "wrong"
                else:
                    rec.update(measure(fn, rotation=inp.rotation, target_ms=cfg.target_ms,
                                       repeats=cfg.repeats).to_dict())
            except Exception as exc:  # one failing baseline must not end the run
                rec["status"] = "error"
                rec["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                torch.cuda.synchronize()
            doc["records"].append(rec)
        advance()
    del inp


def _make_impl(impl, u, inp, w, sp, compiled, refused, cache_dir, tmpl, rec, cfg):
    from ..cache import DiskCache
    from . import impls as I
    from .timing import measure

    layer = u.layer
    if impl == "irprune":
        if (layer.name, u.batch, sp) in refused:
            rec["status"] = "refused"
            rec["error"] = refused[(layer.name, u.batch, sp)]
            return None
        from ..table_kernel import compile_table_conv2d
        from ..template import default_group_size
        from ..table_layout import THREADS as TABLE_THREADS
        from ..tune import finalists, launch_shapes, table_kernels, template_for

        g = layer.geometry(u.batch)
        sizes = configs(cfg, u, sp)
        chosen = _choice(cfg, u, sp)
        failed = [compiled.get((layer.name, u.batch, sp, *c), {}) for c in sizes]
        failed = [r for r in failed if not r.get("ok")]
        if failed:
            rec["status"] = "compile-failed"
            rec["error"] = failed[0].get("error", "not compiled")
            return None
        entries = []
        table = []
        if chosen is not None:
            rec["choice_from"] = {"file": cfg.choices_from, "commit": chosen.get("commit") or None}
        for gs, sl, tile, cap, tc, order in sizes:
            res = compiled[(layer.name, u.batch, sp, gs, sl, tile, cap, tc, order)]
            replay = chosen is not None and (tc is not None) == (chosen.get("layout") == "table")
            t0 = time.perf_counter()
            if tc is not None:
                # one kernel per thread count (a constant of a table kernel's code): the earlier
                # run's, each of TABLE_THREADS that fits when tuning, else the first
                def one(b, tc=tc):
                    return compile_table_conv2d(w, g.input_shape, tc, stride=layer.stride,
                                                cache=DiskCache(cache_dir), block=b,
                                                assemble=len(sizes) > 1)
                if replay:
                    kernels = [one(chosen["block"])]
                elif len(sizes) > 1:
                    kernels = table_kernels(one, TABLE_THREADS)
                else:
                    kernels = [one(TABLE_THREADS[0])]
                runs = [(kt, kt.block, 1) for kt in kernels]
                cached_s = (time.perf_counter() - t0) / max(1, len(kernels))  # a kernel's load
            else:
                k = template_for(tmpl, tile).compile(
                    w, g.input_shape, stride=layer.stride, padding=layer.padding, group_size=gs,
                    slices=sl, tile=tile, cache=DiskCache(cache_dir), max_registers=cap,
                    channel_order=order)
                cached_s = time.perf_counter() - t0
                retime = replay and cfg.retime_blocks
                if not k.registers and (len(sizes) > 1 or retime):
                    k.ptxas()  # the register count decides which blocks can launch
                if replay:
                    # the earlier run's launch shape (with retime_blocks, beside every other
                    # block that fits it)
                    shapes = replay_shapes(k, chosen, retime)
                else:
                    shapes = launch_shapes(k) if len(sizes) > 1 else ((k.block, 1),)
                runs = [(k, b, m) for b, m in shapes]
            timed = len(sizes) > 1 or len(runs) > 1
            for k, b, m in runs:
                k.block, k.groups_per_block = b, m
                fn = I.irprune_run(inp, k)
                us = (measure(fn, rotation=inp.rotation, target_ms=2.0, repeats=3).median_us
                      if timed else 0.0)
                table.append({"layout": "table" if tc else "immediate", "group_size": gs,
                              "slices": sl, "tile": tile, "max_registers": cap,
                              "table": tc.__dict__ if tc else None, "channel_order": order,
                              "block": b, "groups_per_block": m, "median_us": round(us, 3)})
                entries.append((us, (k, b, m, res, cached_s, table[-1])))

        def retime(item):
            k, b, m = item[:3]
            k.block, k.groups_per_block = b, m
            return measure(I.irprune_run(inp, k), rotation=inp.rotation, target_ms=2.0,
                           repeats=3).median_us
        if len(entries) > 1:  # the first round's fastest few, timed again (irprune.tune.finalists)
            _, best, rounds = finalists(entries, retime)
            rec["finalists"] = [dict(item[5], again_us=[round(t, 3) for t in again])
                                for _, again, item in rounds]
        else:
            best = entries[0][1]
        k, b, m, res, cached_s, _ = best
        k.block, k.groups_per_block = b, m
        s = res["stats"]["seconds"]
        cold = sum(s.get(n, 0.0) for n in ("numba", "bind", "unroll", "passes", "ptx", "ptxas"))
        rec["compile"] = {"cold_s": round(cold, 3), "cached_s": round(cached_s, 4),
                          "from_cache": bool(k.stats.get("cached")),
                          **{f"{n}_s": s.get(n) for n in ("numba", "bind", "unroll", "passes", "ptx", "ptxas")}}
        rec["fma_ptx"] = k.stats["fma_ptx"]
        table_k = best[5]["table"] is not None
        rec["layout"] = best[5]["layout"]
        rec["table"] = best[5]["table"]
        rec["group_size"] = None if table_k else k.group_size
        rec["slices"] = k.config.slices if table_k else k.slices
        rec["tile"] = list(k.tile) if k.tile else None
        rec["max_registers"] = None if table_k else k.max_registers
        rec["block"] = b
        rec["groups_per_block"] = m
        rec["channel_order"] = best[5]["channel_order"]
        rec["default_group_size"] = default_group_size(g)
        if len(table) > 1:
            rec["tuning"] = table
        rec["ptxas"] = k.stats.get("ptxas")
        rec["loaded"] = "cubin" if all(k.cubins) else "ptx"
        return I.irprune_run(inp, k)
    if impl == "dense_template":
        from ..template import default_group_size

        return I.dense_template(inp, w, default_group_size(layer.geometry(u.batch)))
    if impl in I.BASELINES:
        return I.baseline(impl, inp, w)
    raise ValueError(f"unknown implementation {impl!r}; choose from {', '.join(IMPLS)}")


def write_json(doc: dict, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=float))
    os.replace(tmp, path)
