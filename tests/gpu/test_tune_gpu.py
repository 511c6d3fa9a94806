"""GPU checks of the autotuner: it times every candidate, returns a correct kernel, caches its choice."""

from __future__ import annotations

import numpy as np
import pytest

from irprune.cache import DiskCache
from irprune.reference import conv2d_reference, prune_random
from irprune.templates.conv2d import conv2d_nchw
from irprune.tune import BLOCKS, autotune
from tests.gpu.test_conv2d_gpu import rel_err, run_poisoned

pytestmark = pytest.mark.gpu


def test_autotune_measures_every_candidate_and_caches_the_choice(tmp_path):
    w = prune_random((32, 16, 3, 3), 0.9, seed=5)
    x = np.random.default_rng(1).standard_normal((2, 16, 12, 12)).astype(np.float32)
    cache = DiskCache(tmp_path)
    k, table = autotune(conv2d_nchw, w, x.shape, padding=1, cache=cache, group_sizes=(8, 32),
                        slices=(1, 2))
    # Every block for one row; with two rows also 32 (threads x registers fit here).
    assert len(table) == 2 * len(BLOCKS) + 2 * (len(BLOCKS) + 1)
    assert {c.slices for c in table} == {1, 2}
    best = min(table, key=lambda c: c.median_us)
    assert (k.group_size, k.block, k.slices) == (best.group_size, best.block, best.slices)
    assert rel_err(run_poisoned(k, x), conv2d_reference(x, w, 1, 1)) < 1e-5
    k2, table2 = autotune(conv2d_nchw, w, x.shape, padding=1, cache=cache, group_sizes=(8, 32),
                          slices=(1, 2))
    assert table2 == [] and (k2.group_size, k2.block, k2.slices) == (k.group_size, k.block, k.slices)
    assert k2.stats["tuned"]["cached"]


@pytest.mark.parametrize("block", [64, 256])
def test_any_block_size_computes_the_same(block):
    w = prune_random((20, 6, 3, 3), 0.8, seed=2)
    x = np.random.default_rng(3).standard_normal((1, 6, 17, 9)).astype(np.float32)
    k = conv2d_nchw.compile(w, x.shape, padding=1, group_size=8, cache=False)
    k.block = block
    assert rel_err(run_poisoned(k, x), conv2d_reference(x, w, 1, 1)) < 1e-5
