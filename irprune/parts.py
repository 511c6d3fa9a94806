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
    #: Processes the regions' region-local passes are cut over (irprune.region_shares).
    shares: int = 1
    #: The layer's channel of each of the weights' channels (irprune.channel_order), or None.
    output_channels: np.ndarray | None = None
    #: The output's data-pointer parameter.
    output_param: str | None = None


@dataclass
class PartResult:
    llvm: str
    ptx: str
    instructions: int
    stats: dict
    #: Instructions of the IR template the part was made from.
    template_instructions: int = 0
    #: Pass name -> text after it, or a callable that makes the text when asked.
    stages: dict = field(default_factory=dict)
    seconds_passes: float = 0.0
    seconds_ptx: float = 0.0
    #: Peak resident memory of the process that compiled the part (MiB).
    peak_mib: float = 0.0
    #: Processes its region-local passes ran in (irprune.region_shares).
    shares: int = 1


def _context(job: PartJob):
    """The pass context of ``job``'s part: its regions (ragged ones with their own template and trace)."""
    from .ir.textir import parse_module
    from .passes import PassContext
    from .passes.base import Region
    from .passes.trace_weight_uses import trace_function

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
    return PassContext(weight_param=job.weight_param, weight_shape=job.weights.shape,
                       weights=job.weights, constants=dict(job.constants),
                       channel_strides=job.channel_strides, regions=regions, cpu=job.cpu,
                       output_channels=job.output_channels, output_param=job.output_param)


@dataclass
class ShareResult:
    """One share's module text after the region-local passes, with their numbers and stage texts.

    Text, not the module's objects: parsing it again is quicker than unpickling them.
    """

    text: str
    stats: dict
    stages: dict
    peak_mib: float


def start_share_workers(shares: int) -> list:
    """Workers for the shares after the first of ``shares``, started now with this module imported."""
    from .worker import Worker

    return [Worker(preload=(__name__,)) for _ in range(shares - 1)]


def compile_share(job: PartJob, share: tuple[int, int]) -> ShareResult:
    """Run the region-local head of ``job``'s pipeline over regions ``share`` = (first, count)."""
    from .ir.textir import parse_module
    from .passes import PASSES, parse_pipeline, run_pipeline
    from .region_shares import split_pipeline

    ctx = _context(job)
    ctx.share = tuple(share)
    head, _ = split_pipeline(parse_pipeline(job.pipeline))
    res = run_pipeline(head, parse_module(job.template), ctx, registry=PASSES)
    return ShareResult(text=res.text, stats=ctx.stats,
                       stages=res.stages if job.keep_stages else {}, peak_mib=peak_rss_mib())


def compile_part(job: PartJob, helpers: list | None = None) -> PartResult:
    """Run the pipeline over the template for ``job``'s groups and emit PTX.

    With ``job.shares`` > 1 the region-local passes run over shares of the
    regions side by side (this process and worker processes) and the rest
    runs once over their joined module; the result is the same text.
    ``helpers`` are workers (irprune.worker.Worker) already started for the
    shares after the first; missing ones are started here.
    """
    from functools import partial

    from .codegen import emit_ptx
    from .ir.textir import parse_module
    from .passes import PASSES, parse_pipeline, run_pipeline
    from .passes.base import count_instructions
    from .region_shares import join_share_texts, join_shares, share_bounds, split_pipeline

    t0 = time.perf_counter()
    ctx = _context(job)
    passes = parse_pipeline(job.pipeline)
    head, rest = split_pipeline(passes)
    bounds = share_bounds(len(ctx.regions), job.shares) if head else []
    peak = 0.0
    if len(bounds) > 1:
        from concurrent.futures import ThreadPoolExecutor

        helpers = list(helpers or [])
        helpers += start_share_workers(len(bounds) - len(helpers))
        with ThreadPoolExecutor(max_workers=len(bounds) - 1) as pool:
            # Sent first: the workers' shares run while this process does its own.
            futures = [pool.submit(h.call, "irprune.parts", "compile_share", {"job": job, "share": b})
                       for h, b in zip(helpers, bounds[1:])]
            ctx.share = bounds[0]
            module = parse_module(job.template)
            template_instructions = count_instructions(module)
            own = run_pipeline(head, module, ctx, registry=PASSES)
            others = [f.result() for f in futures]
        ctx.share = None
        for o in others:
            merge_stats(ctx.stats, o.stats)
            peak = max(peak, o.peak_mib)
        module = join_shares([own.module] + [parse_module(o.text) for o in others])
        # Each region-local stage is joined from the shares' texts when it is read.
        head_stages = {name: partial(join_share_texts, [text] + [o.stages[name] for o in others])
                       for name, text in own.stages.items()} if job.keep_stages else {}
        res = run_pipeline(rest, module, ctx, registry=PASSES)
        stages = {**head_stages, **res.stages}
    else:
        module = parse_module(job.template)
        template_instructions = count_instructions(module)
        res = run_pipeline(passes, module, ctx, registry=PASSES)
        stages = res.stages
    pruned = res.text
    t1 = time.perf_counter()
    ptx = emit_ptx(pruned, cpu=job.cpu)
    return PartResult(llvm=pruned, ptx=ptx, instructions=count_instructions(res.module),
                      stats=ctx.stats, template_instructions=template_instructions,
                      stages=stages if job.keep_stages else {},
                      seconds_passes=t1 - t0, seconds_ptx=time.perf_counter() - t1,
                      peak_mib=max(peak, peak_rss_mib()), shares=max(1, len(bounds)))


def merge_stats(total: dict, part: dict) -> None:
    """Add one part's (or share's) per-pass numbers into ``total`` (numbers summed, the rest kept)."""
    for name, st in part.items():
        acc = total.setdefault(name, {})
        for key, v in st.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and key in acc:
                acc[key] = round(acc[key] + v, 4) if isinstance(v, float) else acc[key] + v
            elif key not in acc:
                acc[key] = v


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB (0 where the OS does not say)."""
    try:
        import resource
    except ImportError:  # not on Linux/macOS
        return 0.0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(rss / (1 << 20 if sys.platform == "darwin" else 1 << 10), 1)


def compile_parts(jobs: list[PartJob], workers: int | None = None,
                  helpers: list | None = None) -> list[PartResult]:
    """Compile every part; in ``workers`` processes at once when there are several parts.

    ``helpers``: workers started for a single part's shares (see :func:`compile_part`).
    """
    from .worker import run_in_workers, worker_count

    workers = worker_count() if workers is None else workers
    if len(jobs) == 1:
        return [compile_part(jobs[0], helpers)]
    if workers <= 1:
        return [compile_part(j) for j in jobs]
    return run_in_workers([("irprune.parts", "compile_part", {"job": j}) for j in jobs], workers)
