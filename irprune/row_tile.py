"""The row-tile launch layout: shapes, shared memory and the candidates the tuner times.

A row-tile kernel (:mod:`irprune.templates.conv2d_rows`) runs one block per
``rows`` output rows of one image, ``rows * OW`` threads, and copies
``chunk`` input channels of the input rows they read into shared memory at a
time. The tile's size is computed here and in the template alike (the
launch passes it as dynamic shared memory); tests hold the two in step.
"""

from __future__ import annotations

from .errors import ValidationError
from .geometry import ConvGeometry

#: Threads in one block, and shared memory one block may take without opting in.
MAX_THREADS = 1024
MAX_SHARED_BYTES = 48 * 1024
#: Row tiles are timed only for layers with at least this many output pixels
#: (batch included): with fewer, a grid of row tiles is a handful of blocks and
#: the pixel layout's input-channel slices win (resnet_3x3_28 at batch 1:
#: 17.3 us as row tiles against 9.9 us with slices, docs/perf-log.md).
MIN_PIXELS = 8192
#: Threads per block the candidate tiles aim at (rows = about this / OW).
TARGET_THREADS = (128, 256)
#: Candidate input channels per shared-memory fill.
CHUNKS = (1, 2)
#: Candidate group sizes for row tiles: at least this many output channels
#: share each tile read (smaller groups re-read the tile per group).
MIN_GROUP = 16


def tile_pitch(g: ConvGeometry) -> int:
    """Floats from one tile row to the next: the tile's width, padded at stride 1 to OW (mod 32)
    so that a warp's 32 reads hit 32 banks."""
    iw = (g.OW - 1) * g.stride + g.S
    return iw + (g.OW - iw) % 32 if g.stride == 1 else iw


def tile_floats(g: ConvGeometry, rows: int, chunk: int) -> int:
    """Shared memory of one block, in floats: ``chunk`` channels of the tile and one idle slot per thread."""
    ir = (rows - 1) * g.stride + g.R
    return chunk * ir * tile_pitch(g) + rows * g.OW


def tile_problem(g: ConvGeometry, rows: int, chunk: int) -> str | None:
    """Why (rows, chunk) cannot launch for ``g`` (one line), or None if it can."""
    if rows < 1 or chunk < 1:
        return f"rows {rows} and chunk {chunk} must be at least 1"
    if rows > g.OH:
        return f"rows {rows} exceed the layer's {g.OH} output rows"
    if chunk > g.Cg:
        return f"chunk {chunk} exceeds the {g.Cg} input channels per group"
    if rows * g.OW > MAX_THREADS:
        return (f"rows {rows} x {g.OW} output columns = {rows * g.OW} threads; a block holds "
                f"at most {MAX_THREADS}")
    need = 4 * tile_floats(g, rows, chunk)
    if need > MAX_SHARED_BYTES:
        return (f"rows {rows} x chunk {chunk} need {need} bytes of shared memory; at most "
                f"{MAX_SHARED_BYTES}: use fewer rows or a smaller chunk")
    return None


def check_tile(tile, g: ConvGeometry) -> tuple[int, int]:
    """``tile`` = (rows, chunk) as ints that launch for ``g``, or a one-line ValidationError."""
    from .validate import check_int

    if not isinstance(tile, (tuple, list)) or len(tile) != 2:
        raise ValidationError(f"tile must be a pair (rows, chunk); got {tile!r}", stage="validate")
    rows, chunk = tile
    rows = check_int(rows, "rows", 1)
    chunk = check_int(chunk, "chunk", 1)
    problem = tile_problem(g, rows, chunk)
    if problem:
        raise ValidationError(problem, stage="validate")
    return rows, chunk


def candidate_tiles(g: ConvGeometry) -> list[tuple[int, int]]:
    """(rows, chunk) pairs worth timing for ``g``: rows near TARGET_THREADS / OW, each chunk
    of CHUNKS; none for layers of fewer than MIN_PIXELS output pixels."""
    if g.N * g.OH * g.OW < MIN_PIXELS:
        return []
    rows = sorted({min(g.OH, max(1, round(t / g.OW))) for t in TARGET_THREADS})
    return [(r, c) for r in rows for c in CHUNKS if tile_problem(g, r, c) is None]
