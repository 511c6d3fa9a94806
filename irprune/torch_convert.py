"""Whole PyTorch models: every sparse enough ``nn.Conv2d`` and ``nn.Linear`` runs as an irprune kernel.

:func:`convert` takes a model and an example input, records the input shape
each layer sees, compiles a kernel for every layer whose weight is at least
``threshold`` zeros, and returns a copy of the model in which those layers
are :class:`SparseConv2d` modules; everything else stays PyTorch. Models
pruned with ``torch.nn.utils.prune`` (``weight_orig * weight_mask``) and
weights zeroed by hand are both read through ``module.weight``.

A :class:`SparseConv2d` runs its kernel on CUDA tensors without copies
(``__cuda_array_interface__``, on PyTorch's current stream). On CPU tensors it
runs the pruned IR on the CPU (irprune.host_exec): slow, meant for checking
a conversion on a machine with no GPU. Kernels are specialized on the input's
channels and spatial size and take any batch size; an input of another
spatial size is compiled on first use (from the disk cache when it was
compiled before). :func:`graphed` captures a converted model's launches in a
CUDA graph.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .errors import IrpruneError
from .torch_graph import GraphedModule, graphed  # noqa: F401  (part of this module's API)


@dataclass
class LayerReport:
    """What :func:`convert` did with one layer."""

    name: str
    kind: str          # "conv2d" or "linear"
    status: str        # "converted", "dense" (below the threshold), "skipped", or "slower" (see irprune.torch_select)
    sparsity: float
    nnz: int
    input_shape: tuple | None
    reason: str = ""
    weights: int = 0
    fma: int = 0
    compile_seconds: float = 0.0
    irprune_us: float | None = None   # per call, when timed by irprune.torch_select
    torch_us: float | None = None
    tuned: dict | None = None         # the configuration convert(..., tune=True) chose


class SparseConv2d(nn.Module):
    """A conv2d (or a linear layer, as a 1x1 conv) whose weights are compiled into its kernels."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None, stride: int, padding: int,
                 groups: int, linear: bool = False, cache=None, group_size: int | None = None,
                 assemble: bool = False, pytorch: nn.Module | None = None):
        super().__init__()
        #: The PyTorch layer this one replaces (masks folded in), run instead of
        #: the kernel when ``use_pytorch`` (irprune.torch_select sets it where
        #: PyTorch measured faster).
        self.pytorch = pytorch
        self.use_pytorch = False
        #: Run ptxas at compile time (cubins cached with the kernels): the driver
        #: then has no PTX to JIT-compile at the first launch.
        self.assemble = assemble
        self.weight_values = weight
        self.bias_values = bias
        self.stride, self.padding, self.groups = stride, padding, groups
        self.linear = linear
        self.cache = cache
        self.group_size = group_size
        #: (C, H, W) of an input -> its kernel (which takes any batch).
        self.kernels: dict[tuple, object] = {}

    def extra_repr(self) -> str:
        K, Cg, R, S = self.weight_values.shape
        nnz = int(np.count_nonzero(self.weight_values))
        kind = f"linear {Cg}->{K}" if self.linear else f"{Cg * self.groups}->{K}, {R}x{S}"
        return (f"{kind}, stride {self.stride}, padding {self.padding}, groups {self.groups}, "
                f"nnz {nnz}/{self.weight_values.size}, kernels for {sorted(self.kernels)}"
                + (", runs PyTorch (faster)" if self.use_pytorch else ""))

    def kernel_for(self, shape: tuple):
        """The kernel for an (N, C, H, W) input (any N), compiled on first use."""
        k = self.kernels.get(shape[1:])
        if k is None:
            import irprune

            k = irprune.conv2d(self.weight_values, shape, stride=self.stride, padding=self.padding,
                               bias=self.bias_values, groups=self.groups, cache=self.cache,
                               group_size=self.group_size, assemble=self.assemble)
            self.kernels[shape[1:]] = k
        return k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_pytorch:
            return self.pytorch(x)
        return self.run_irprune(x)

    def run_irprune(self, x: torch.Tensor) -> torch.Tensor:
        """The layer on ``x`` through its irprune kernel, whatever ``use_pytorch`` says."""
        if x.dtype != torch.float32:
            raise IrpruneError(f"irprune layers run in float32; got a {x.dtype} input "
                               "(call .float() on the model's input)", stage="torch")
        if self.linear:
            if x.dim() != 2:
                raise IrpruneError(f"a converted nn.Linear takes (N, features) inputs; got shape "
                                   f"{tuple(x.shape)}", stage="torch")
            x4 = x.reshape(x.shape[0], x.shape[1], 1, 1)
        else:
            x4 = x
        x4 = x4.contiguous()
        k = self.kernel_for(tuple(x4.shape))
        if x4.is_cuda:
            from .launch import launch_torch

            if x4.device.index == torch.cuda.current_device():
                y = launch_torch(k, x4)
            else:
                with torch.cuda.device(x4.device):
                    y = launch_torch(k, x4)
        else:
            from .host_exec import run_on_host

            y = torch.from_numpy(run_on_host(k, x4.numpy()))
        return y.reshape(y.shape[0], y.shape[1]) if self.linear else y


def _layer_weight(m: nn.Module) -> tuple[np.ndarray, np.ndarray | None]:
    """The effective weight and bias (after ``torch.nn.utils.prune``'s mask) as float32 numpy."""
    w = m.weight.detach().to("cpu", torch.float32).numpy().copy()
    b = m.bias.detach().to("cpu", torch.float32).numpy().copy() if m.bias is not None else None
    return w, b


def _why_not(m: nn.Module) -> str:
    """Why a Conv2d cannot be an irprune kernel, or ''."""
    if isinstance(m, nn.Linear):
        return ""
    if m.padding_mode != "zeros":
        return f"padding_mode {m.padding_mode!r} (irprune pads with zeros)"
    if tuple(m.dilation) != (1, 1):
        return f"dilation {tuple(m.dilation)}"
    if isinstance(m.padding, str):
        return "" if m.padding == "valid" or tuple(m.stride) == (1, 1) else f"padding {m.padding!r}"
    if m.stride[0] != m.stride[1] or m.padding[0] != m.padding[1]:
        return f"stride {tuple(m.stride)} / padding {tuple(m.padding)} differ per direction"
    return ""


def compile_layer(weight, shape, stride, padding, bias, groups, group_size, cache_dir,
                  assemble: bool = False) -> int:
    """Worker: compile one layer into the disk cache at ``cache_dir``; return its FMA count."""
    import irprune

    k = irprune.conv2d(weight, shape, stride=stride, padding=padding, bias=bias, groups=groups,
                       group_size=group_size, cache=cache_dir, assemble=assemble)
    return k.stats["fma_ptx"]


def _compile_all(layers, cache, progress: bool, jobs: int | None) -> None:
    """Compile every layer's kernel, side by side in worker processes through the disk cache.

    One layer per worker (its parts compiled one after the other there),
    biggest first. Measured on ResNet-50 at 0.9 with 16 CPUs: 200 s, against
    468 s when the layers over the part limit went first, one at a time with
    their parts over the workers (a layer has too few parts to keep 16 busy).
    """
    import tempfile
    from contextlib import nullcontext

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from . import worker
    from .kernel import _resolve_cache

    jobs = worker.worker_count() if jobs is None else jobs
    bar = Progress(TextColumn("irprune: compiling layers"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), transient=True, disable=not progress)
    with bar:
        task = bar.add_task("compile", total=len(layers))
        if jobs <= 1 or len(layers) <= 1:  # no worker start-up for nothing to share out
            for _, _, layer, shape in layers:
                layer.kernel_for(shape)
                bar.advance(task)
            return
        store = _resolve_cache(cache)
        with (tempfile.TemporaryDirectory(prefix="irprune-convert-") if store is None
              else nullcontext(str(store.root))) as root:
            # Biggest first, so that the last worker to finish is not the one with the largest layer.
            order = sorted(layers, key=lambda t: -int(np.count_nonzero(t[2].weight_values)))
            calls = [("irprune.torch_convert", "compile_layer", dict(
                weight=layer.weight_values, shape=shape, stride=layer.stride, padding=layer.padding,
                bias=layer.bias_values, groups=layer.groups, group_size=layer.group_size,
                cache_dir=root, assemble=layer.assemble)) for _, _, layer, shape in order]
            # Each worker compiles one layer; its parts stay in that process.
            worker.run_in_workers(calls, jobs, env={"IRPRUNE_JOBS": "1", "IRPRUNE_CACHE": "1"},
                                  done=lambda i: bar.advance(task))
            for _, _, layer, shape in layers:
                layer.cache = root
                layer.kernel_for(shape)  # from the cache now
                layer.cache = cache


def run_hooked(model: nn.Module, x: torch.Tensor, hooks: list) -> None:
    """Run ``model(x)`` once without gradients, then remove ``hooks`` (handles), also on error."""
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()


def _copy_model(model: nn.Module) -> nn.Module:
    """A deep copy, also of models pruned with torch.nn.utils.prune.

    Pruning leaves ``weight`` as a computed (non-leaf) tensor attribute, which
    ``copy.deepcopy`` refuses; its copy is a detached clone (the pre-hook
    recomputes it from ``weight_orig * weight_mask`` at the next forward).
    """
    memo = {}
    for m in model.modules():
        for v in vars(m).values():
            if isinstance(v, torch.Tensor) and not v.is_leaf:
                memo[id(v)] = v.detach().clone()
    return copy.deepcopy(model, memo)


def _set_submodule(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, attr, new)


def convert(model: nn.Module, example_input: torch.Tensor, threshold: float = 0.5, cache=None,
            progress: bool = True, group_size: int | None = None, jobs: int | None = None,
            select: str = "threshold", tune: bool = False) -> nn.Module:
    """A copy of ``model`` with every Conv2d/Linear of sparsity >= ``threshold`` as an irprune kernel.

    ``example_input`` is run through the model once (no gradients) to learn
    each layer's input shape; kernels are compiled for those shapes in
    ``jobs`` worker processes (default ``IRPRUNE_JOBS`` or one per CPU) through
    the disk cache (``cache`` as in :func:`irprune.conv2d`; with ``cache=False``
    a temporary one), with a progress bar when ``progress``. The kernels take
    any batch size. The returned model has ``irprune_report``: one
    :class:`LayerReport` per Conv2d/Linear layer.

    ``select="fastest"`` (CUDA example input) then times every converted layer
    both ways on its input at the example's batch size and leaves the layers
    that PyTorch runs faster to PyTorch (:mod:`irprune.torch_select`; their
    report says ``"slower"`` with both times). ``"threshold"`` (default)
    converts every layer past the threshold.

    ``tune=True`` (CUDA example input) times every candidate configuration of
    each converted layer on the GPU at its input shape (group size, slices,
    row tiles, register budgets, block: :mod:`irprune.torch_tune`) and keeps
    the fastest; each report's ``tuned`` says which. The candidates compile in
    the workers first, so this costs about as many compiles as
    ``irprune bench`` does per layer; the choices are cached.
    """
    if not 0.0 <= float(threshold) <= 1.0:
        raise IrpruneError(f"threshold must be in [0, 1]; got {threshold}", stage="torch")
    if select not in ("threshold", "fastest"):
        raise IrpruneError(f"select must be 'threshold' or 'fastest'; got {select!r}", stage="torch")
    if tune and not example_input.is_cuda:
        raise IrpruneError("tune=True times each layer on the GPU: give a CUDA example input",
                           stage="torch")
    if select == "fastest" and not example_input.is_cuda:
        raise IrpruneError("select='fastest' times each layer on the GPU: give a CUDA example input "
                           "(or use select='threshold')", stage="torch")
    out = _copy_model(model)
    shapes: dict[str, tuple] = {}
    hooks = []

    def record(name):
        def hook(mod, args):  # returns None: the input goes on unchanged
            shapes.setdefault(name, tuple(args[0].shape))
        return hook

    for name, m in out.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            hooks.append(m.register_forward_pre_hook(record(name)))
    run_hooked(out, example_input, hooks)

    reports, todo = [], []
    for name, m in out.named_modules():
        if not isinstance(m, (nn.Conv2d, nn.Linear)):
            continue
        kind = "linear" if isinstance(m, nn.Linear) else "conv2d"
        w, b = _layer_weight(m)
        nnz = int(np.count_nonzero(w))
        rep = LayerReport(name, kind, "dense", 1.0 - nnz / w.size, nnz, shapes.get(name),
                          weights=int(w.size))
        reports.append(rep)
        if rep.input_shape is None:
            rep.status, rep.reason = "skipped", "not run by the example input"
        elif rep.sparsity < threshold:
            rep.reason = f"sparsity {rep.sparsity:.3f} < threshold {threshold}"
        elif _why_not(m):
            rep.status, rep.reason = "skipped", _why_not(m)
        elif kind == "linear" and len(rep.input_shape) != 2:
            rep.status, rep.reason = "skipped", f"input of shape {rep.input_shape} is not (N, features)"
        else:
            todo.append((rep, m, w, b))

    from .codegen import find_ptxas
    from .models import make_permanent

    # For a GPU model, cubins now (ptxas in the compile workers), not a driver
    # JIT of megabytes of PTX at the first forward pass.
    assemble = example_input.is_cuda and find_ptxas() is not None
    layers = []
    for rep, m, w, b in todo:
        # The replaced layer stays inside its replacement, as the fallback that
        # irprune.torch_select may choose; with the pruning mask folded in, as deployed.
        make_permanent(m)
        if rep.kind == "linear":
            layer = SparseConv2d(w.reshape(w.shape[0], w.shape[1], 1, 1), b, 1, 0, 1,
                                 linear=True, cache=cache, group_size=group_size, assemble=assemble,
                                 pytorch=m)
            shape = (rep.input_shape[0], rep.input_shape[1], 1, 1)
        else:
            padding = m.padding if isinstance(m.padding, str) else m.padding[0]
            layer = SparseConv2d(w, b, m.stride[0], padding, m.groups, cache=cache,
                                 group_size=group_size, assemble=assemble, pytorch=m)
            shape = rep.input_shape
        layers.append((rep, m, layer, shape))
    _compile_all(layers, cache, progress, jobs)
    if tune and layers:
        from .torch_tune import tune_layers

        tune_layers(layers, cache, progress, jobs)
    for rep, m, layer, shape in layers:
        k = layer.kernel_for(shape)
        layer.padding = k.geometry.padding  # "same"/"valid" resolved to a number
        rep.status, rep.fma = "converted", k.stats["fma_ptx"]
        rep.compile_seconds = round(sum(v for n, v in k.stats["seconds"].items()
                                        if n in ("ir_template", "passes", "ptx")), 3)
        _set_submodule(out, rep.name, layer.to(next(m.parameters()).device))
    out.irprune_report = reports
    if select == "fastest":
        from .torch_select import select_fastest

        select_fastest(out, example_input)
    return out
