"""A module's forward pass captured in a CUDA graph and replayed: one launch per call.

A converted model calls one irprune kernel per layer, each a Python call of
some microseconds; at batch 1 the GPU work of a pruned layer is often
shorter than that. :func:`graphed` records the whole forward pass once per
input shape with ``torch.cuda.graph`` (irprune's launches go to PyTorch's
current stream, so they are captured like PyTorch's own kernels) and
replays it, so the per-layer Python cost is paid once, at capture.

The same wrapper works on any PyTorch module, which is how the benchmarks
give PyTorch eager the same advantage (``irprune model``: ``eager_fp32_graph``).
"""

from __future__ import annotations

import torch
from torch import nn

from .errors import IrpruneError


class GraphedModule(nn.Module):
    """Runs ``module`` through a CUDA graph captured per input shape (inference only).

    The first call with a new (shape, dtype, device) runs ``warmup`` eager
    passes on a side stream (loading every kernel, settling PyTorch's
    allocator), then captures one pass. Later calls copy the input into the
    captured input buffer, replay, and return the output: a copy of it
    (``clone_output=True``, the default) or the captured buffer itself, which
    the next call overwrites. Parameters may be changed in place
    (``load_state_dict``) between calls; replacing a parameter tensor or
    changing the module's code needs a new wrapper. CPU inputs and calls
    with gradients enabled on parameters that require them run ``module``
    directly.
    """

    def __init__(self, module: nn.Module, warmup: int = 2, clone_output: bool = True):
        super().__init__()
        self.module = module
        self.warmup = warmup
        self.clone_output = clone_output
        self._graphs: dict = {}

    def _capture(self, x: torch.Tensor):
        static_x = x.clone()
        side = torch.cuda.Stream(device=x.device)
        side.wait_stream(torch.cuda.current_stream(x.device))
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(self.warmup):
                self.module(static_x)
        torch.cuda.current_stream(x.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.no_grad(), torch.cuda.graph(graph):
                static_y = self.module(static_x)
        except Exception as exc:
            raise IrpruneError(f"capturing the forward pass in a CUDA graph failed: "
                               f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}; "
                               "run the module without graphed()", stage="graph") from exc
        if not isinstance(static_y, torch.Tensor):
            raise IrpruneError("graphed() needs a module that returns one tensor", stage="graph")
        return graph, static_x, static_y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_cuda or (torch.is_grad_enabled() and
                             any(p.requires_grad for p in self.module.parameters())):
            return self.module(x)
        key = (tuple(x.shape), x.dtype, x.device)
        entry = self._graphs.get(key)
        if entry is None:
            entry = self._graphs[key] = self._capture(x)
        graph, static_x, static_y = entry
        static_x.copy_(x)
        graph.replay()
        return static_y.clone() if self.clone_output else static_y


def graphed(module: nn.Module, warmup: int = 2, clone_output: bool = True) -> GraphedModule:
    """``module`` (e.g. from :func:`irprune.torch_convert.convert`) replayed from CUDA graphs.

    See :class:`GraphedModule`. Typical use::

        fast = irprune.torch_convert.graphed(irprune.torch_convert.convert(model, x))
        with torch.no_grad():
            y = fast(x)
    """
    return GraphedModule(module, warmup=warmup, clone_output=clone_output)
