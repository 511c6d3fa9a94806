"""How large a layer irprune compiles, and how it splits one into parts.

Every compilation step after the IR template (passes, NVPTX codegen, ptxas)
costs time and memory in proportion to the nonzeros one module holds, and
ptxas grows faster than that on one huge function. So a layer's channel
groups are packed into *parts* of at most :func:`max_part_nnz` nonzeros, each
its own module and kernel; a layer beyond :func:`max_layer_nnz` nonzeros, or
whose single output channel unrolls to more than :data:`MAX_CHANNEL_WEIGHTS`
weights, is refused before any work starts, with a message naming the limit.

Parts cost run time: they launch one after the other, each a small grid at
batch 1. Measured on an H200 (tools/experiments/parts_ab.py, docs/perf-log.md),
the seven 1x1 layers of 52K-210K nonzeros at sparsity 0.9 ran 1.04-1.75x
faster as one module than in parts of 32,768 (geomean 1.37x). So the default
part holds 262,144 nonzeros, every layer of the benchmark suites at 0.9: on
the 2-core development machine one module of 209,715 nonzeros (ResNet-50's
l4_down_1024_2048_s2) compiles in 184 s (passes 52 s over both cores, PTX
39 s and ptxas 89 s on one) with a peak of 4.9 GiB.
"""

from __future__ import annotations

import os

import numpy as np

from .errors import ValidationError

#: Nonzeros per module (``IRPRUNE_MAX_PART_NNZ``): 2**18. Was 32,768 until one module
#: was measured faster (see above); a smaller limit compiles faster over many cores.
MAX_PART_NNZ = 262_144
#: Nonzeros per layer (``IRPRUNE_MAX_NNZ``): ResNet-50's largest layer at 50% has 1.18M.
MAX_LAYER_NNZ = 2_500_000
#: C * R * S of one output channel: the IR template unrolls at least this many chains.
MAX_CHANNEL_WEIGHTS = 65536


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        v = int(raw)
    except ValueError:
        raise ValidationError(f"{name}={raw!r} is not an integer", stage="validate") from None
    if v < 1:
        raise ValidationError(f"{name} must be >= 1; got {v}", stage="validate")
    return v


def max_part_nnz() -> int:
    return _env_int("IRPRUNE_MAX_PART_NNZ", MAX_PART_NNZ)


def max_layer_nnz() -> int:
    return _env_int("IRPRUNE_MAX_NNZ", MAX_LAYER_NNZ)


def check_layer_size(weights: np.ndarray) -> int:
    """The layer's nonzero count, or ValidationError when a limit refuses the layer."""
    K, C, R, S = weights.shape
    if C * R * S > MAX_CHANNEL_WEIGHTS:
        raise ValidationError(
            f"one output channel has C*R*S = {C * R * S} weights, more than the "
            f"{MAX_CHANNEL_WEIGHTS} irprune unrolls into one IR template (MAX_CHANNEL_WEIGHTS); "
            "split the layer's input channels into several convolutions", stage="validate")
    nnz = int(np.count_nonzero(weights))
    limit = max_layer_nnz()
    if nnz > limit:
        raise ValidationError(
            f"the layer has {nnz} nonzero weights, more than the limit of {limit} "
            "(IRPRUNE_MAX_NNZ); prune it further, or raise the limit knowing that compile "
            "time and memory grow with it (docs/reliability.md)", stage="validate")
    return nnz


#: CUDA's grid limits: blocks along x and along y.
MAX_GRID_X = 2**31 - 1
MAX_GRID_Y = 65535
#: The most output pixels (N * OH * OW) one call may have: the built-in templates
#: index a pixel in 32-bit unsigned arithmetic (a multiply-high instead of some 50
#: instructions of 64-bit floor division in every thread).
MAX_PIXELS = 2**31 - 1


def check_grid(pixels: int, groups: int) -> None:
    """Refuse a layer whose launch grid the templates or CUDA cannot express (too many pixels
    or channel groups). MAX_PIXELS is below MAX_GRID_X blocks of any size, so the grid's
    x extent needs no check of its own."""
    if pixels > MAX_PIXELS:
        raise ValidationError(
            f"N*OH*OW = {pixels} output pixels exceed the {MAX_PIXELS} one call can index "
            "(MAX_PIXELS); run the batch in smaller pieces", stage="validate")
    if groups > MAX_GRID_Y:
        raise ValidationError(
            f"{groups} channel groups exceed CUDA's {MAX_GRID_Y} blocks along y (MAX_GRID_Y); "
            "pass a larger group_size", stage="validate")


def split_groups(group_nnz: list[int], limit: int) -> list[tuple[int, int]]:
    """Pack consecutive channel groups into parts of at most ``limit`` nonzeros.

    Returns (first group, group count) per part. A group bigger than the limit
    on its own is a part on its own (a group cannot be split further).
    """
    parts: list[tuple[int, int]] = []
    start, acc = 0, 0
    for i, n in enumerate(group_nnz):
        if i > start and acc + n > limit:
            parts.append((start, i - start))
            start, acc = i, 0
        acc += n
    parts.append((start, len(group_nnz) - start))
    return parts
