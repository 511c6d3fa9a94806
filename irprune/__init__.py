"""irprune: pruned CNN convolutions compiled to CUDA kernels with the weights as immediates.

Public API:

- :func:`conv2d` compiles a pruned conv2d layer with the built-in template.
- :func:`sparse_conv` turns a user's dense Numba kernel into a template.
- :class:`SparseConvKernel` is what both produce: ``.asm`` (every stage as
  text), ``.stats``, and ``kernel(x, out=None)`` to run it on a GPU.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import (  # noqa: E402
    CodegenError, IRParseError, IrpruneError, LaunchError, PassError, PtxasError,
    TemplateContractError, UnknownPassError, ValidationError,
)
from .geometry import ConvGeometry  # noqa: E402
from .kernel import SparseConvKernel  # noqa: E402
from .llvm_opt import DEFAULT_CPU  # noqa: E402
from .register_budget import DEFAULT_MAX_REGISTERS  # noqa: E402
from .template import SparseConvTemplate, sparse_conv  # noqa: E402
from .table_kernel import TableConvKernel, compile_table_conv2d  # noqa: E402
from .table_layout import TableConfig  # noqa: E402


def conv2d(weight, input_shape, stride: int = 1, padding: int = 0, bias=None, relu: bool = False,
           group_size: int | None = None, cpu: str = DEFAULT_CPU, cache=None,
           assemble: bool = False, tune: bool = False, groups: int = 1,
           slices: int = 1, tile: tuple[int, int] | None = None,
           max_registers: int | None = DEFAULT_MAX_REGISTERS,
           channel_order: str = "natural") -> SparseConvKernel:
    """Compile a pruned conv2d (NCHW, fp32) into a kernel with the weights as immediates.

    Args:
        weight: (K, C / groups, R, S) float array; zeros are pruned weights.
        input_shape: (N, C, H, W) of the input the kernel will take.
        stride, padding: as in torch.nn.Conv2d (same in both directions).
        groups: convolution groups as in torch.nn.Conv2d (C for depthwise).
        bias: optional (K,) array, folded into the code like the weights.
        relu: apply ReLU to the output.
        group_size: output channels per code region (default: chosen from the shape).
        slices: rows of threads that split each output pixel's input channels
            and add their sums in shared memory (more parallel work for layers
            with few pixels; the tuner picks it with ``tune=True``).
        tile: (rows, chunk) to compile the row-tile layout instead (a block of
            ``rows`` whole output rows reading ``chunk`` input channels at a
            time from shared memory; irprune.row_tile).
        max_registers: a register budget for ptxas, 24..255 (None: ptxas
            chooses); more registers keep more input loads in flight
            (irprune.register_budget). The default, 128, is what most layers
            gain from untuned; ``tune=True`` times budgets as well.
        channel_order: ``"natural"`` (channels i * group_size .. together) or
            ``"shared"``: channels grouped by the input positions their nonzeros
            read, so that a region loads fewer inputs and the regions carry
            similar work (irprune.channel_order; 1x1 layers at 0.9 about 1.02x on
            an H200). The output is in the layer's channel order either way.
        cpu: GPU architecture to compile for (``"sm_80"``, ``"sm_90"``, ...).
        cache: the disk cache (None: the default, see irprune.cache; False: none;
            or a folder).
        assemble: run ptxas now; the cubin is cached and loaded instead of PTX.
        tune: time the candidate group sizes and block sizes on this GPU and
            return the fastest (irprune.tune; the choice is cached). Needs a GPU;
            ``group_size``, ``channel_order`` and ``cpu`` are then chosen for you
            (each configuration in both channel orders). A 1x1 layer of more
            than 40,000 nonzeros is also timed in the table layout, so the result may
            be a :class:`TableConvKernel` (weights as data; called the same way).

    Works with no GPU (compilation only); calling the result needs one.
    """
    from .templates.conv2d import conv2d_nchw

    if tune:
        from .tune import autotune

        return autotune(conv2d_nchw, weight, input_shape, stride=stride, padding=padding,
                        bias=bias, relu=relu, cache=cache, groups=groups)[0]

    from .tune import template_for

    return template_for(conv2d_nchw, tile).compile(
        weight, input_shape, stride=stride, padding=padding, bias=bias, relu=relu,
        group_size=group_size, cpu=cpu, cache=cache, assemble=assemble, groups=groups,
        slices=slices, tile=tile, max_registers=max_registers, channel_order=channel_order)


__all__ = [
    "conv2d", "sparse_conv", "SparseConvTemplate", "SparseConvKernel", "ConvGeometry",
    "IrpruneError", "ValidationError", "TemplateContractError", "IRParseError", "PassError",
    "UnknownPassError", "CodegenError", "PtxasError", "LaunchError", "__version__",
    "compile_table_conv2d", "TableConvKernel", "TableConfig",
]
