"""GPU checks of row-tile kernels (irprune.row_tile) and of the tuner's choice between layouts."""

from __future__ import annotations

import numpy as np
import pytest

from irprune.cache import DiskCache
from irprune.reference import conv2d_reference, prune_random
from irprune.templates.conv2d import conv2d_nchw
from irprune.templates.conv2d_rows import conv2d_rows
from irprune.tune import FINALISTS, autotune
from tests.conftest import GEOMETRIES
from tests.gpu.test_conv2d_gpu import RTOL, rel_err, run_poisoned_batch

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("geom", sorted(GEOMETRIES))
@pytest.mark.parametrize("rows,chunk,group_size", [(1, 1, 4), (2, 3, 5), (4, 2, 16)])
def test_row_tile_kernels_match_float64_reference(geom, rows, chunk, group_size):
    """Ragged last row tiles, chunks and channel groups; bias and ReLU; batches 1 and 3."""
    wshape, ishape, stride, pad = GEOMETRIES[geom]
    rng = np.random.default_rng(rows * 100 + chunk * 10 + group_size)
    w = prune_random(wshape, 0.7, seed=int(rng.integers(1 << 30)))
    b = rng.standard_normal(wshape[0]).astype(np.float32)
    oh = (ishape[2] + 2 * pad - wshape[2]) // stride + 1
    tile = (min(rows, oh), min(chunk, wshape[1]))
    k = conv2d_rows.compile(w, ishape, stride=stride, padding=pad, bias=b, relu=True,
                            group_size=min(group_size, wshape[0]), tile=tile)
    for n in (1, 3):
        x = rng.standard_normal((n, *ishape[1:])).astype(np.float32)
        out = run_poisoned_batch(k, x)
        assert not np.isnan(out).any(), "some output elements were never written"
        assert rel_err(out, conv2d_reference(x, w, stride, pad, b, True)) < RTOL


def test_a_seed_layer_at_batch_64_as_row_tiles():
    """resnet_3x3_28 at 0.9, batch 64, the tile the experiments favoured (4 rows, 1 channel)."""
    w = prune_random((128, 128, 3, 3), 0.9, seed=3)
    x = np.random.default_rng(4).standard_normal((64, 128, 28, 28)).astype(np.float32)
    k = conv2d_rows.compile(w, x.shape, padding=1, group_size=32, tile=(4, 1))
    assert k.block == 112 and k.grid_for(64) == (64 * 7, 4, 1)
    assert rel_err(run_poisoned_batch(k, x), conv2d_reference(x, w, 1, 1)) < RTOL


def test_autotune_times_row_tiles_beside_pixels_and_caches_either(tmp_path):
    w = prune_random((32, 16, 3, 3), 0.9, seed=6)
    x = np.random.default_rng(2).standard_normal((8, 16, 32, 32)).astype(np.float32)  # 8192 pixels
    cache = DiskCache(tmp_path)
    k, table = autotune(conv2d_nchw, w, x.shape, padding=1, cache=cache, group_sizes=(16, 32),
                        slices=(1,))
    tiles = {c.tile for c in table}
    assert None in tiles and {(4, 1), (4, 2), (8, 1), (8, 2)} <= tiles
    assert all(c.block == c.tile[0] * 32 for c in table if c.tile)
    # One of the first round's fastest, timed again (irprune.tune.finalists), was kept.
    top = sorted(table, key=lambda c: c.median_us)[:FINALISTS]
    assert (k.group_size, k.block, k.tile) in {(c.group_size, c.block, c.tile) for c in top}
    assert rel_err(run_poisoned_batch(k, x), conv2d_reference(x, w, 1, 1)) < RTOL
    k2, table2 = autotune(conv2d_nchw, w, x.shape, padding=1, cache=cache, group_sizes=(16, 32),
                          slices=(1,))
    assert table2 == [] and (k2.group_size, k2.block, k2.tile) == (k.group_size, k.block, k.tile)
    assert rel_err(run_poisoned_batch(k2, x), conv2d_reference(x, w, 1, 1)) < RTOL
