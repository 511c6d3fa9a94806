"""Compiling a layer's parts: the pass pipeline and NVPTX codegen of each, here or in worker processes.

A part (irprune.limits) is a contiguous run of channel groups compiled into a
module of its own. Parts share nothing but the IR template, so a layer of
several parts compiles them side by side in worker processes (irprune.worker),
up to ``IRPRUNE_JOBS`` (default: one per CPU) at a time.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import numpy as np



@dataclass
class PartJob:
    """Everything one part's compilation needs, as plain data."""

    template: str            # the IR template's text (channel group 0)
    ragged: str | None       # the smaller last group's template text, if the layer has one
    #: (k0, size, made from the ragged template, extra base-pointer shifts) per group
    regions: list[tuple[int, int, bool, dict]]
    weight_param: str
    weights: np.ndarray
    constants: dict[str, np.ndarray]
    channel_strides: dict[str, int]
    pipeline: str
    cpu: str
    keep_stages: bool = False


@dataclass
class PartResult:
    llvm: str
    ptx: str
    instructions: int
    stats: dict
    stages: dict = field(default_factory=dict)
    seconds_passes: float = 0.0
    seconds_ptx: float = 0.0
    #: Peak resident memory of the process that compiled the part (MiB).
    peak_mib: float = 0.0


def compile_part(job: PartJob) -> PartResult:
    """Run the pipeline over the template for ``job``'s groups and emit PTX (in this process)."""
    from .codegen import emit_ptx
    from .ir.textir import parse_module
    from .passes import PASSES, PassContext, parse_pipeline, run_pipeline
    from .passes.base import Region, count_instructions
    from .passes.trace_weight_uses import trace_function

    t0 = time.perf_counter()
    regions = []
    ragged = None
    for k0, size, is_ragged, shifts in job.regions:
        if is_ragged:
            if ragged is None:
                fn = parse_module(job.ragged).function()
                ragged = (fn, trace_function(fn, job.weight_param, job.weights.shape, size))
            regions.append(Region(k0=k0, size=size, fn=ragged[0], trace=ragged[1], shifts=shifts))
        else:
            regions.append(Region(k0=k0, size=size, shifts=shifts))
    ctx = PassContext(weight_param=job.weight_param, weight_shape=job.weights.shape,
                      weights=job.weights, constants=dict(job.constants),
                      channel_strides=job.channel_strides, regions=regions)
    res = run_pipeline(parse_pipeline(job.pipeline), parse_module(job.template), ctx, registry=PASSES)
    pruned = res.module.render()
    t1 = time.perf_counter()
    ptx = emit_ptx(pruned, cpu=job.cpu)
    return PartResult(llvm=pruned, ptx=ptx, instructions=count_instructions(res.module),
                      stats=ctx.stats, stages=res.stages if job.keep_stages else {},
                      seconds_passes=t1 - t0, seconds_ptx=time.perf_counter() - t1,
                      peak_mib=peak_rss_mib())


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB (0 where the OS does not say)."""
    try:
        import resource
    except ImportError:  # not on Linux/macOS
        return 0.0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(rss / (1 << 20 if sys.platform == "darwin" else 1 << 10), 1)


def compile_parts(jobs: list[PartJob], workers: int | None = None) -> list[PartResult]:
    """Compile every part; in ``workers`` processes at once when there are several parts."""
    from .worker import run_in_workers, worker_count

    workers = worker_count() if workers is None else workers
    if len(jobs) == 1 or workers <= 1:
        return [compile_part(j) for j in jobs]
    return run_in_workers([("irprune.parts", "compile_part", {"job": j}) for j in jobs], workers)
