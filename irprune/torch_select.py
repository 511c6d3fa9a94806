"""Per layer, irprune or PyTorch: whichever measures faster on the layer's real input.

A sparsity threshold is a poor proxy for speed. Global magnitude pruning
leaves some layers only half zeros (ResNet-50 pruned to 0.9 overall keeps
86% of its converted nonzeros in layers under 0.9), and there cuDNN's dense
kernel can beat one FMA per kept weight, more so at larger batches. So
:func:`time_layers` times each converted layer both ways on the input it
receives in the model, and :func:`keep_faster` makes each layer run the
faster of the two. The choice holds for the batch size it was timed at.

Each side is timed as it runs in a graphed model (:func:`irprune.torch_graph.graphed`):
``repeats`` calls captured in one CUDA graph, replayed, per call, so that
Python's launch cost, which a graph removes, is not counted against either.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from .errors import IrpruneError


@dataclass
class LayerTiming:
    """One converted layer on one input: microseconds per call, irprune's kernel and PyTorch's layer."""

    irprune_us: float
    torch_us: float
    batch: int


def cuda_graph_us(fn: Callable, x: torch.Tensor, repeats: int = 10, replays: int = 5) -> float:
    """Median microseconds per call of ``fn(x)``, ``repeats`` calls captured in one CUDA graph.

    irprune.bench.timing.measure does the capture and replays; a target far
    beyond any layer's time makes it capture exactly ``repeats`` calls.
    """
    from .bench.timing import measure

    with torch.cuda.device(x.device), torch.no_grad():
        return measure(lambda i: fn(x), target_ms=1e9, repeats=replays,
                       max_launches=repeats).median_us


def wall_us(fn: Callable, x: torch.Tensor, repeats: int = 3) -> float:
    """Median wall-clock microseconds of ``fn(x)`` (CPU tensors)."""
    times = []
    with torch.no_grad():
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn(x)
            times.append((time.perf_counter() - t0) * 1e6)
    return float(np.median(times))


def time_layers(model: nn.Module, x: torch.Tensor, timer: Callable | None = None) -> dict[str, LayerTiming]:
    """Run ``model(x)`` once; time every converted layer both ways on the input it receives.

    ``timer(fn, input) -> microseconds`` defaults to :func:`cuda_graph_us` for
    CUDA inputs and :func:`wall_us` otherwise. Returns layer name ->
    :class:`LayerTiming`. Layers the input does not reach are left out.
    """
    from .torch_convert import SparseConv2d, run_hooked

    if timer is None:
        timer = cuda_graph_us if x.is_cuda else wall_us
    out: dict[str, LayerTiming] = {}

    def hook(name):
        def pre(mod, args):
            if name not in out:
                inp = args[0]
                out[name] = LayerTiming(irprune_us=timer(mod.run_irprune, inp),
                                        torch_us=timer(mod.pytorch, inp), batch=int(inp.shape[0]))
        return pre

    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, SparseConv2d)]
    if not layers:
        raise IrpruneError("the model has no irprune layers to time (convert it first)", stage="select")
    bare = [n for n, m in layers if m.pytorch is None]
    if bare:
        raise IrpruneError(f"layer {bare[0]!r} has no PyTorch layer to compare with (SparseConv2d(pytorch=...); "
                           "irprune.torch_convert.convert sets it)", stage="select")
    hooks = [m.register_forward_pre_hook(hook(n)) for n, m in layers]
    run_hooked(model, x, hooks)
    return out


def keep_faster(model: nn.Module, timings: dict[str, LayerTiming] | None) -> list[str]:
    """Make each converted layer run whichever of irprune and PyTorch ``timings`` found faster.

    A layer that PyTorch runs faster keeps its compiled kernels and runs its
    PyTorch layer (``SparseConv2d.use_pytorch``); its report entry (in
    ``model.irprune_report``) becomes ``"slower"`` with both times.
    ``timings=None`` turns every converted layer back to irprune. Returns
    the names of the layers that now run PyTorch.
    """
    from .torch_convert import SparseConv2d

    reports = {r.name: r for r in getattr(model, "irprune_report", [])}
    slower = []
    for name, m in model.named_modules():
        if not isinstance(m, SparseConv2d):
            continue
        t = (timings or {}).get(name)
        m.use_pytorch = t is not None and t.torch_us < t.irprune_us
        rep = reports.get(name)
        if rep is not None:
            rep.irprune_us = None if t is None else round(t.irprune_us, 2)
            rep.torch_us = None if t is None else round(t.torch_us, 2)
            rep.status, rep.reason = "converted", ""
            if m.use_pytorch:
                rep.status = "slower"
                rep.reason = (f"PyTorch is faster at batch {t.batch}: {t.torch_us:.1f} us against "
                              f"{t.irprune_us:.1f} us")
        if m.use_pytorch:
            slower.append(name)
    return slower


def select_fastest(model: nn.Module, x: torch.Tensor, timer: Callable | None = None) -> list[str]:
    """:func:`time_layers` then :func:`keep_faster` on ``model`` (a converted model), in place.

    Returns the names of the layers left to PyTorch.
    """
    return keep_faster(model, time_layers(model, x, timer=timer))
