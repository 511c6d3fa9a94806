"""Compiling a suite's kernels before timing them: in parallel, through the disk cache.

Phase one builds each (layer, batch) IR template once; phase two compiles
every (layer, batch, sparsity) kernel, each worker loading its IR template
from the cache (a table-layout kernel builds its own), and assembles it with
ptxas when one is found. Workers are
spawned processes that never touch the GPU. The timing process then loads
every kernel from the cache (that load is the "cached" compile time).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

import numpy as np

from ..table_layout import TableConfig
from .suites import Layer


@dataclass(frozen=True)
class CompileJob:
    layer: Layer
    batch: int
    sparsity: float | None  # None: build the IR template only
    seed: int
    cache_dir: str
    group_size: int | None = None  # None: irprune's default for the shape
    slices: int = 1
    tile: tuple[int, int] | None = None  # (rows, chunk): the built-in row-tile template
    max_registers: int | None = None  # a register budget (irprune.register_budget)
    table: TableConfig | None = None  # the table layout (irprune.table_layout) instead
    channel_order: str = "natural"  # how output channels are grouped (irprune.channel_order)

    @property
    def config(self) -> tuple:
        """(group size, slices, tile, register budget, table, channel order): what the kernel is
        compiled with."""
        return (self.group_size, self.slices, self.tile, self.max_registers, self.table,
                self.channel_order)


def bench_weights(layer: Layer, sparsity: float, seed: int) -> np.ndarray:
    """The benchmark's weights: random normal, magnitude-pruned to ``sparsity`` (exactly)."""
    from ..reference import prune_random

    return prune_random(layer.weight_shape, sparsity, seed=seed)


def bench_nnz(layer: Layer, sparsity: float) -> int:
    """The nonzeros of :func:`bench_weights` (prune_random zeroes exactly round(sparsity * size)
    of them, and a random normal weight is never exactly zero)."""
    n = layer.num_weights
    return n - min(n, int(round(sparsity * n)))


def run_job(job: CompileJob) -> dict:
    """Compile one job in this process; return its times (or its error, as text)."""
    os.environ["IRPRUNE_CACHE"] = "1"
    # The jobs already fill every CPU: a layer's parts compile in this process.
    os.environ.setdefault("IRPRUNE_JOBS", "1")
    from ..cache import DiskCache
    from ..errors import IrpruneError
    from ..template import default_group_size
    from ..templates.conv2d import conv2d_nchw
    from ..tune import template_for

    cache = DiskCache(job.cache_dir)
    layer = job.layer
    tmpl = template_for(conv2d_nchw, job.tile)
    t0 = time.perf_counter()
    try:
        g = layer.geometry(job.batch)
        gs = job.group_size or default_group_size(g)
        if job.sparsity is None:
            irt = tmpl.ir_template(g, gs, False, False, cache=cache, slices=job.slices,
                                   tile=job.tile)
            return {"ok": True, "seconds": time.perf_counter() - t0, "timings": irt.timings}
        w = bench_weights(layer, job.sparsity, job.seed)
        if job.table is not None:
            from ..table_kernel import compile_table_conv2d
            from ..table_layout import THREADS

            # every thread count the run may time (a constant of a table kernel's code)
            ks = [compile_table_conv2d(w, g.input_shape, job.table, stride=layer.stride,
                                       cache=cache, assemble=_have_ptxas(), block=b)
                  for b in THREADS]
            return {"ok": True, "seconds": time.perf_counter() - t0, "stats": ks[0].stats}
        k = tmpl.compile(w, g.input_shape, stride=layer.stride, padding=layer.padding,
                         group_size=gs, slices=job.slices, tile=job.tile, cache=cache,
                         assemble=_have_ptxas(), max_registers=job.max_registers,
                         channel_order=job.channel_order)
        return {"ok": True, "seconds": time.perf_counter() - t0, "stats": k.stats}
    except IrpruneError as exc:
        return {"ok": False, "error": f"{exc.stage}: {exc}", "seconds": time.perf_counter() - t0}
    except Exception as exc:  # a worker must report, not take the run down
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                "seconds": time.perf_counter() - t0}


def _have_ptxas() -> bool:
    from ..codegen import find_ptxas

    return find_ptxas() is not None


def compile_all(jobs: list[CompileJob], workers: int, progress=None) -> dict:
    """Run template jobs, then kernel jobs, then kernels with a register budget, ``workers`` at
    a time (a budget only rewrites the PTX of the kernel compiled without one, which the
    previous phase left in the cache).

    Returns ``{(layer name, batch, sparsity or None, *job.config): result}``. ``progress``
    is called once per finished job with (job, result).
    """
    import multiprocessing as mp

    results: dict = {}
    templates = [j for j in jobs if j.sparsity is None]
    kernels = [j for j in jobs if j.sparsity is not None and j.max_registers is None]
    budgets = [j for j in jobs if j.sparsity is not None and j.max_registers is not None]
    ctx = mp.get_context("spawn")  # no CUDA context, no forked locks
    with ProcessPoolExecutor(max(1, workers), mp_context=ctx) as ex:
        for phase in (templates, kernels, budgets):
            # Kernels take the batch at run time: a job that differs only in
            # its batch compiles once and answers for every batch.
            same: dict = {}
            for j in phase:
                same.setdefault((j.layer.name, j.sparsity, *j.config), []).append(j)
            firsts = [js[0] for js in same.values()]
            # Largest first: the longest job should not start last.
            firsts.sort(key=lambda j: -j.layer.num_weights * (1 - (j.sparsity or 0)))
            futs = {ex.submit(run_job, j): j for j in firsts}
            for f in as_completed(futs):
                j = futs[f]
                try:
                    r = f.result()
                except Exception as exc:  # a worker that died (out of memory, signal)
                    r = {"ok": False, "error": f"worker died: {exc}"}
                for jj in same[(j.layer.name, j.sparsity, *j.config)]:
                    results[(jj.layer.name, jj.batch, jj.sparsity, *jj.config)] = r
                    if progress is not None:
                        progress(jj, r)
    return results


def compile_here(jobs: list[CompileJob]) -> dict:
    """:func:`compile_all`'s results for ``jobs`` run one after another in this process: for a
    process whose kernels are all in the disk cache already (each job only loads)."""
    results: dict = {}
    for j in jobs:
        key = (j.layer.name, j.batch, j.sparsity, *j.config)
        if key not in results:
            results[key] = run_job(j)
    return results

