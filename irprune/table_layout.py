"""The table layout: a 1x1 layer's weights as per-block (input offset, weight) tables.

On the largest 1x1 layers at batch 1 the immediate-weight kernels wait for their code: every
nonzero is a 16-byte FFMA, fetched once per warp that runs it (docs/perf-log.md, "The large
layers wait for their code"). The table template (templates/conv2d_table.py) is a short loop
instead, and each nonzero is 8 bytes of data, read once per block from shared memory. This
module holds what is pure arithmetic about that layout: which layers and configurations it
takes, the tables themselves, the grid and the shared memory a block needs.

A configuration is (``tile_k``, ``slices``, ``tile_p``): a block runs ``tile_k`` output
channels over ``C / slices`` input channels and ``tile_p`` output pixels. With several slices
the blocks add their sums into the output with atomics, so the launch zeroes the output first
(:attr:`TableConfig.atomic`). The threads of a block (a kernel's ``block``, a multiple of 32)
are a constant of its code, the stride of its copy loops: a kernel launches with the number it
was compiled for, and the tuner compiles one kernel per count of THREADS. The warps share the
tile's output channels out at run time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import validate
from .geometry import ConvGeometry

#: The most pixels a block may take (templates/conv2d_table.py's MAX_STEPS x 32).
MAX_TILE_P = 256
#: Shared memory a block may opt into, by GPU architecture (CUDA C Programming Guide, compute
#: capabilities table); others get the smallest of these.
OPTIN_SHARED = {"sm_80": 163 * 1024, "sm_87": 163 * 1024, "sm_90": 227 * 1024,
                "sm_100": 227 * 1024}
SMALLEST_OPTIN_SHARED = 99 * 1024
#: ``cp.async`` (irprune.passes.async_copy) needs sm_80 or newer.
MIN_ARCH = 80


@dataclass(frozen=True)
class TableConfig:
    """A launch layout of the table template (see the module's docstring)."""

    tile_k: int
    slices: int
    tile_p: int

    @property
    def atomic(self) -> bool:
        """Whether blocks add their sums with atomics (several slices): the output is zeroed first."""
        return self.slices > 1

    def describe(self) -> str:
        return f"table k{self.tile_k} s{self.slices} p{self.tile_p}"


def _arch(cpu: str) -> int:
    return int(cpu[3:]) if cpu.startswith("sm_") and cpu[3:].isdigit() else 0


def optin_shared(cpu: str) -> int:
    """The most dynamic shared memory a block may opt into on ``cpu``."""
    return OPTIN_SHARED.get(cpu, SMALLEST_OPTIN_SHARED)


def table_problem(g: ConvGeometry, cpu: str, relu: bool = False, config: TableConfig | None = None
                  ) -> str | None:
    """Why layer ``g`` (and ``config``, if given) cannot use the table layout on ``cpu``, or None."""
    if (g.R, g.S) != (1, 1) or g.padding or g.groups != 1:
        return (f"the table layout runs 1x1 convolutions without padding or groups, not "
                f"{g.R}x{g.S} with padding {g.padding} and {g.groups} groups")
    if _arch(cpu) < MIN_ARCH:
        return f"the table layout needs sm_{MIN_ARCH} or newer (cp.async), not {cpu}"
    if config is None:
        return None
    c = config
    if g.K % c.tile_k:
        return f"tile_k {c.tile_k} must divide the {g.K} output channels"
    if g.C % c.slices:
        return f"slices {c.slices} must divide the {g.C} input channels"
    if not 1 <= c.tile_p <= MAX_TILE_P:
        return f"tile_p must be 1..{MAX_TILE_P}, not {c.tile_p}"
    if relu and c.atomic:
        return ("ReLU needs each output's whole sum in one block: use slices=1, or apply the "
                "ReLU after the layer")
    return None


def check_table_config(g: ConvGeometry, cpu: str, relu: bool, config: TableConfig) -> TableConfig:
    """``config`` if the layout takes it (ints, limits), else a one-line ValidationError."""
    vals = [validate.check_int(getattr(config, f), f, 1)
            for f in ("tile_k", "slices", "tile_p")]
    config = TableConfig(*vals)
    problem = table_problem(g, cpu, relu, config)
    if problem:
        validate._fail(problem)
    return config


@dataclass(frozen=True)
class Tables:
    """The data a table kernel embeds: every block's pairs and row offsets, and the bias."""

    #: (blocks, words) int32: per block, (input offset, weight bits) pairs by output channel,
    #: padded with zero pairs to the largest block's count (even, for 16-byte copies).
    pairs: np.ndarray
    #: (blocks, tile_k + 1) int32: per block, where each output channel's pairs start.
    rowptr: np.ndarray
    #: (K,) float32, or (0,) for none.
    bias: np.ndarray

    @property
    def words(self) -> int:
        return self.pairs.shape[1]


def build_tables(w: np.ndarray, config: TableConfig, bias: np.ndarray | None = None) -> Tables:
    """The tables of weights ``w`` (K, C, 1, 1) in ``config``'s layout.

    Block ``s * (K / tile_k) + t`` (grid y ``s``, grid x ``t``) runs output channels
    ``t * tile_k ..`` over input channels ``s * C / slices ..``; a pair's offset is the input
    channel's row in the block's shared input tile (``c_local * tile_p``: a strided layer's
    staged rows are packed into that tile too), so the kernel adds only its lane's pixel to it.
    """
    K, C = w.shape[:2]
    tk, ns = config.tile_k, config.slices
    tp = config.tile_p
    cs = C // ns
    w2 = np.ascontiguousarray(w.reshape(K, C), np.float32)
    # blocks in launch order: slice-major, then output tile
    sub = w2.reshape(K // tk, tk, ns, cs).transpose(2, 0, 1, 3).reshape(ns * (K // tk), tk, cs)
    counts = np.count_nonzero(sub, axis=2)  # (blocks, tk)
    rowptr = np.zeros((sub.shape[0], tk + 1), np.int32)
    np.cumsum(counts, axis=1, out=rowptr[:, 1:])
    per_block = rowptr[:, -1]
    words = 2 * max(1, int(per_block.max()))
    words += (-words) % 4  # a whole number of 16-byte pieces
    pairs = np.zeros((sub.shape[0], words), np.int32)
    b, r, c = np.nonzero(sub)  # row-major: by block, output channel, input channel
    slot = np.arange(len(b)) - np.repeat(np.concatenate([[0], np.cumsum(per_block)[:-1]]),
                                         per_block)
    pairs[b, 2 * slot] = c * tp
    pairs[b, 2 * slot + 1] = sub[b, r, c].view(np.int32)
    bias = np.zeros(0, np.float32) if bias is None else np.asarray(bias, np.float32)
    return Tables(pairs=pairs, rowptr=rowptr, bias=bias)


def pair_of(w: np.ndarray, config: TableConfig, k: int, c: int) -> dict:
    """Where weight (``k``, ``c``) of 1x1 weights ``w`` sits in ``config``'s tables (the same
    order as :func:`build_tables`): its block (and grid x, y), its output
    channel's row in the block, its pair's slot (None for a zero weight, which has no pair) and
    the pair's two int32 words (input offset, weight bits)."""
    K, C = w.shape[:2]
    tk, ns = config.tile_k, config.slices
    tp = config.tile_p
    cs = C // ns
    t, o, s, cl = k // tk, k % tk, c // cs, c % cs
    w2 = np.asarray(w, np.float32).reshape(K, C)
    cols = w2[t * tk:t * tk + o + 1, s * cs:(s + 1) * cs]
    value = w2[k, c]
    slot = None
    if value != 0:
        # pairs of the block's earlier rows, then this row's nonzeros before column cl
        slot = int(np.count_nonzero(cols[:o]) + np.count_nonzero(cols[o, :cl]))
    return {"block": s * (K // tk) + t, "grid": [t, s], "row": o, "slot": slot,
            "words": None if slot is None else [cl * tp, int(np.float32(value).view(np.int32))]}


def row_pitch(g: ConvGeometry, config: TableConfig) -> int:
    """Floats a staged input row takes in shared memory when a block copies the rows a strided
    layer reads (every ``stride``-th row of each channel, from its first column to its last used
    one, rounded up to 16-byte pieces), or 0 where it copies its tile value by value instead.

    A strided layer's tile otherwise takes a division-laden 4-byte copy per value (about 40% of
    l4_down_1024_2048_s2's kernel: docs/perf-log.md, "The table kernel taken apart"). The rows
    are copied 16 bytes at a time when the whole image is one pixel tile, every row read starts
    on 16 bytes (``H * W`` and ``stride * W`` multiples of 4 floats) and the last row's pieces
    stay inside the image (a check that those two imply, kept since a piece past the tensor's
    end would read another allocation)."""
    if g.stride == 1 or config.tile_p < g.OH * g.OW:
        return 0
    pitch = -(-((g.OW - 1) * g.stride + 1) // 4) * 4
    if (g.H * g.W) % 4 or (g.stride * g.W) % 4:
        return 0
    if (g.OH - 1) * g.stride * g.W + pitch > g.H * g.W:
        return 0
    return pitch


def staged_floats(g: ConvGeometry, config: TableConfig) -> int:
    """Floats of a block's staging area: a strided layer's ``OH`` rows of :func:`row_pitch` a
    channel, which the template packs into the input tile after copying (0 without staging)."""
    return (g.C // config.slices) * g.OH * row_pitch(g, config)


def input_copy_bytes(g: ConvGeometry, config: TableConfig) -> int:
    """How many bytes at a time a block copies its input rows: 16, 8 or 4. Wider than 4 only
    where its rows are one run (stride 1, the whole image in one pixel tile) whose length, and
    so every image's and slice's start, is a multiple of the width, or where a strided layer's
    rows are staged whole (:func:`row_pitch`); given an input aligned as much, which
    irprune.launch checks: TableConvKernel.input_alignment."""
    if row_pitch(g, config):
        return 16
    run = (g.C // config.slices) * g.H * g.W
    if g.stride != 1 or config.tile_p < g.OH * g.OW:
        return 4
    return 16 if run % 4 == 0 else 8 if run % 2 == 0 else 4


def shared_bytes(g: ConvGeometry, config: TableConfig, words: int) -> int:
    """Dynamic shared memory of one block: its pairs, its row offsets, its input tile
    (``tile_p`` floats a channel), the floats that lanes past the tile's last pixel read after
    it (the template does not clamp them: up to 31), and a strided layer's staged rows
    (:func:`staged_floats`), after the tile rounded up to 16 bytes."""
    rows = (config.tile_k + 4) & ~3
    tile = (g.C // config.slices) * config.tile_p
    overrun = -config.tile_p % 32
    staged = staged_floats(g, config)
    if staged:
        tile = -(-tile // 4) * 4
    return 4 * (words + rows + tile + max(overrun, staged))


def check_threads(block) -> int:
    """``block`` if it is a table kernel's thread count (a multiple of 32 in 32..1024), else a
    one-line ValidationError."""
    if type(block) is not int or block % 32 or not 32 <= block <= 1024:
        validate._fail(f"a table kernel's block must be a multiple of 32 in 32..1024, not "
                       f"{block!r}")
    return block


def grid(g: ConvGeometry, config: TableConfig, batch: int) -> tuple[int, int, int]:
    """The grid of one call on ``batch`` images."""
    ptiles = -(-(g.OH * g.OW) // config.tile_p)
    z = batch * ptiles
    if z > 65535:
        validate._fail(f"batch {batch} x {ptiles} pixel tiles = {z} blocks along grid z; at most "
                       "65535: use a larger tile_p or a smaller batch", "launch")
    return (g.K // config.tile_k, config.slices, z)


#: Candidate output channels per block, input-channel slices, and threads per block. On the
#: seven large 1x1 layers the fastest of 206 hand-written configurations took 16-64 channels,
#: 1-8 slices and 512 or 1024 threads on every layer (docs/perf-log.md, "Weights as data on the
#: large layers"); 128 channels as well, since every block of an output tile copies the same
#: input slice (l4_down_1024_2048_s2 took it: "The table kernel taken apart"). 256 channels and
#: 16 slices were measured and not better ("Smaller or fewer slice copies").
TILE_K = (16, 32, 64, 128)
SLICES = (1, 2, 4, 8)
THREADS = (512, 1024)
#: Pixels a block takes when an image has more than MAX_TILE_P output pixels.
TILE_P = (128, 256)
#: A configuration must make at least this many blocks (about half the SMs of an H100/H200)
#: and at most MAX_BLOCKS per image.
MIN_BLOCKS = 66
MAX_BLOCKS = 4096


def candidate_configs(w: np.ndarray, g: ConvGeometry, cpu: str, relu: bool = False
                      ) -> list[TableConfig]:
    """The table configurations worth timing for weights ``w`` on layer ``g`` (none where the
    layout does not apply): every TILE_K x SLICES x pixel tile that divides the layer, makes
    MIN_BLOCKS..MAX_BLOCKS blocks an image and fits the shared memory of ``cpu``."""
    if table_problem(g, cpu, relu):
        return []
    pixels = g.OH * g.OW
    out = []
    for tp in ((pixels,) if pixels <= MAX_TILE_P else TILE_P):
        for tk in TILE_K:
            for ns in SLICES:
                c = TableConfig(tk, ns, tp)
                if table_problem(g, cpu, relu, c):
                    continue
                blocks = (g.K // tk) * ns * -(-pixels // tp)
                if not MIN_BLOCKS <= blocks <= MAX_BLOCKS:
                    continue
                # the largest block's pairs, without building the tables
                cs = g.C // ns
                per = np.count_nonzero(w.reshape(g.K // tk, tk, ns, cs), axis=(1, 3)).max()
                words = 2 * int(per) + 4
                if shared_bytes(g, c, words) <= optin_shared(cpu):
                    out.append(c)
    return out
