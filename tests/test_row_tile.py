"""Row tiles: blocks of whole output rows that read their input from shared-memory tiles.

The pruned IR runs on the CPU with real barriers (irprune.host_exec); the
template's shared-memory size is checked against irprune.row_tile in Numba's
CUDA simulator (a subprocess: the simulator must be chosen before Numba's
CUDA module loads); the GPU runs them in tests/gpu/test_row_tile_gpu.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from irprune import host_exec
from irprune.errors import ValidationError
from irprune.geometry import ConvGeometry
from irprune.host_exec import run_on_host
from irprune.reference import pruned_reference, prune_random
from irprune.row_tile import MIN_PIXELS, candidate_tiles, tile_floats, tile_pitch, tile_problem
from irprune.templates.conv2d import conv2d_nchw
from irprune.templates.conv2d_rows import conv2d_rows
from tests.simulator import run_in_simulator

# (weight shape, input shape, stride, padding, groups, group size, (rows, chunk))
CASES = {
    # 5 output rows in tiles of 2 (the last tile ragged), 7 channels in chunks of 3, 10 = 4+4+2
    "ragged_rows_chunk_group": ((10, 7, 3, 3), (2, 7, 5, 6), 1, 1, 1, 4, (2, 3)),
    "1x1": ((6, 8, 1, 1), (1, 8, 4, 5), 1, 0, 1, 3, (3, 2)),
    "stride2": ((8, 5, 3, 3), (1, 5, 9, 9), 2, 1, 1, 8, (2, 2)),
    "grouped": ((8, 4, 3, 3), (1, 8, 5, 5), 1, 1, 2, 2, (5, 1)),
    "5x5_no_padding": ((4, 3, 5, 5), (2, 3, 9, 8), 1, 0, 1, 4, (1, 2)),
}


def _layer(name, sparsity=0.7, seed=0):
    wshape, ishape, stride, pad, groups, gs, tile = CASES[name]
    rng = np.random.default_rng(seed)
    w = prune_random(wshape, sparsity, seed=seed)
    b = rng.standard_normal(wshape[0]).astype(np.float32)
    x = rng.standard_normal(ishape).astype(np.float32)
    return w, b, x, dict(stride=stride, padding=pad, groups=groups, group_size=gs, tile=tile)


def _check(k, x, w, b, kw, relu=True):
    y = run_on_host(k, x)
    ref = pruned_reference(x.astype(np.float64), w.astype(np.float64), kw["stride"], kw["padding"],
                           bias=b.astype(np.float64), relu=relu, groups=kw["groups"])
    assert not np.isnan(y).any(), "some outputs were never written"
    return np.max(np.abs(y - ref)) / max(1.0, np.max(np.abs(ref)))


@pytest.mark.parametrize("name", sorted(CASES))
def test_row_tile_kernel_computes_the_convolution_on_the_host(name):
    w, b, x, kw = _layer(name)
    k = conv2d_rows.compile(w, x.shape, bias=b, relu=True, cache=False, **kw)
    assert k.tile == kw["tile"] and k.block == kw["tile"][0] * k.geometry.OW
    assert _check(k, x, w, b, kw) < 1e-5


@pytest.mark.parametrize("name", ["ragged_rows_chunk_group", "stride2"])
def test_row_tile_fills_as_zero_filling_cp_async_compute_the_convolution_on_the_host(name):
    """async-copy (not in the default pipeline: measured slower, docs/perf-log.md) turns the
    tile's padded fills into zero-filling copies; the host runs them as such."""
    from irprune.kernel import compile_conv2d
    from irprune.passes import DEFAULT_PIPELINE
    w, b, x, kw = _layer(name)
    pipeline = DEFAULT_PIPELINE.replace("contract-fma,", "contract-fma,async-copy,")
    k = compile_conv2d(conv2d_rows, w, x.shape, bias=b, relu=True, cache=False,
                       pipeline=pipeline, **kw)
    assert k.stats["passes"]["async-copy"]["zero_filled"] > 0
    assert "ld.global" not in k.asm["ptx"]
    assert _check(k, x, w, b, kw) < 1e-5


def test_the_host_check_fails_a_row_tile_kernel_without_its_barriers(monkeypatch):
    """The host's barriers are real: with them made no-ops, threads read tiles not yet filled."""
    w, b, x, kw = _layer("ragged_rows_chunk_group", sparsity=0.3)
    k = conv2d_rows.compile(w, x.shape, bias=b, relu=False, cache=False, **kw)
    monkeypatch.setattr(host_exec._BlockBarrier, "wait", lambda self: None)
    assert _check(k, x, w, b, kw, relu=False) > 1e-3


def test_row_tile_kernel_keeps_one_fma_per_kept_weight_and_loads_each_input_once_per_tile():
    w, b, x, kw = _layer("ragged_rows_chunk_group", sparsity=0.5)
    rows = conv2d_rows.compile(w, x.shape, bias=b, cache=False, **kw)
    kw.pop("tile")
    pix = conv2d_nchw.compile(w, x.shape, bias=b, cache=False, **kw)
    assert rows.stats["fma_ptx"] == pix.stats["fma_ptx"] == np.count_nonzero(w)
    ptx, pix_ptx = rows.asm["ptx"], pix.asm["ptx"]
    assert "bar.sync" in ptx
    # Each tap a group region keeps is read once, from shared memory instead of global.
    assert ptx.count("ld.shared") == pix_ptx.count("ld.global.nc") > 0
    # Global loads are the fills only: per region and channel, the tile's 4 input rows
    # x 8 columns over 12 threads (8 a row): 4 loads, whatever the weights.
    assert ptx.count("ld.global.nc") == 3 * 7 * 4


def test_launch_layout_of_a_row_tile_kernel():
    w, b, x, kw = _layer("ragged_rows_chunk_group")
    k = conv2d_rows.compile(w, x.shape, bias=b, cache=False, **kw)
    g = k.geometry  # 5x6 output, rows 2: 3 tiles per image
    assert k.grid_for(2) == (6, 3, 1) and k.grid_for(7) == (21, 3, 1)
    assert k.shared_bytes == 4 * tile_floats(g, 2, 3)
    # pitch P = IW + (OW - IW) mod 32 = 8 + 30: a warp's reads hit 32 banks
    assert tile_pitch(g) == 38 and tile_floats(g, 2, 3) == 3 * 4 * 38 + 12
    assert [launch[2] for launch in k.part_launches(2)] == [(12, 1, 1)]
    k.block = 64
    with pytest.raises(ValidationError, match="leave .block as compiled"):
        k.part_launches(2)


def test_row_tile_options_are_checked_in_one_line():
    w, b, x, kw = _layer("1x1")
    kw.pop("tile")
    with pytest.raises(ValidationError, match="runs row tiles; pass tile"):
        conv2d_rows.compile(w, x.shape, cache=False, **kw)
    with pytest.raises(ValidationError, match="takes no `rows, chunk`"):
        conv2d_nchw.compile(w, x.shape, cache=False, tile=(1, 1), **kw)
    with pytest.raises(ValidationError, match="takes no slices"):
        conv2d_rows.compile(w, x.shape, cache=False, tile=(1, 1), slices=2, **kw)
    with pytest.raises(ValidationError, match="tile must be a pair"):
        conv2d_rows.compile(w, x.shape, cache=False, tile=4, **kw)
    with pytest.raises(ValidationError, match="rows 5 exceed the layer's 4 output rows"):
        conv2d_rows.compile(w, x.shape, cache=False, tile=(5, 1), **kw)
    with pytest.raises(ValidationError, match="chunk 9 exceeds the 8 input channels"):
        conv2d_rows.compile(w, x.shape, cache=False, tile=(1, 9), **kw)
    big = ConvGeometry.from_weight((8, 64, 3, 3), (1, 64, 200, 200), padding=1)
    assert "threads; a block holds at most 1024" in tile_problem(big, 6, 1)
    assert "bytes of shared memory; at most 49152" in tile_problem(big, 5, 16)


def test_candidate_tiles_are_for_layers_with_many_pixels_and_all_launch():
    small = ConvGeometry.from_weight((128, 128, 3, 3), (1, 128, 28, 28), padding=1)
    assert small.N * small.OH * small.OW < MIN_PIXELS and candidate_tiles(small) == []
    big = small.with_batch(64)
    tiles = candidate_tiles(big)
    assert tiles == [(5, 1), (5, 2), (9, 1), (9, 2)]  # about 128 and 256 threads over 28 columns
    assert all(tile_problem(big, r, c) is None for r, c in tiles)


def test_template_tile_size_matches_irprune_row_tile_in_the_simulator(tmp_path):
    """Launched dense in Numba's CUDA simulator with exactly tile_floats floats of dynamic shared
    memory (an index past it raises there), the template computes the convolution."""
    code = """
        import os, sys
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
        import numpy as np
        from irprune.geometry import ConvGeometry
        from irprune.reference import pruned_reference
        from irprune.row_tile import tile_floats
        from irprune.templates.conv2d_rows import conv2d_rows
        rng = np.random.default_rng(1)
        worst = 0.0
        for (K, C, R, S), (N, H, W), stride, pad, rows, chunk in [
                ((5, 4, 3, 3), (2, 7, 6), 1, 1, 3, 3), ((4, 3, 3, 3), (1, 9, 9), 2, 1, 2, 2)]:
            g = ConvGeometry.from_weight((K, C, R, S), (N, C, H, W), stride, pad)
            x = rng.standard_normal((N, C, H, W)).astype(np.float32)
            w = rng.standard_normal((K, C, R, S)).astype(np.float32)
            b = rng.standard_normal(K).astype(np.float32)
            y = np.full(g.output_shape, np.nan, np.float32)
            grid = (N * -(-g.OH // rows), -(-K // 4))
            conv2d_rows[grid, (rows * g.OW,), 0, 4 * tile_floats(g, rows, chunk)](
                x, w, b, y, stride, pad, False, 4, rows, chunk)
            ref = pruned_reference(x.astype(np.float64), w.astype(np.float64), stride, pad,
                                   bias=b.astype(np.float64))
            worst = max(worst, float(np.max(np.abs(y - ref)) / np.max(np.abs(ref))))
        print("max rel err", worst)
    """
    assert float(run_in_simulator(code).split()[-1]) < 1e-5
