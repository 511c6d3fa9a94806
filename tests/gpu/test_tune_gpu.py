"""GPU checks of the autotuner: it times every candidate, returns a correct kernel, caches its choice."""

from __future__ import annotations

import numpy as np
import pytest

from irprune.cache import DiskCache
from irprune.reference import conv2d_reference, prune_random
from irprune.templates.conv2d import conv2d_nchw
from irprune.tune import BLOCKS, FINALISTS, autotune
from tests.gpu.test_conv2d_gpu import rel_err, run_poisoned

pytestmark = pytest.mark.gpu


def test_autotune_measures_every_candidate_and_caches_the_choice(tmp_path):
    w = prune_random((32, 16, 3, 3), 0.9, seed=5)
    x = np.random.default_rng(1).standard_normal((2, 16, 12, 12)).astype(np.float32)
    cache = DiskCache(tmp_path)
    k, table = autotune(conv2d_nchw, w, x.shape, padding=1, cache=cache, group_sizes=(8, 32),
                        slices=(1, 2), register_caps=(None,), groups_per_block=(1,))
    # Every block for one row; with two rows also 32 (threads x registers fit here); group size
    # 8 in both channel orders, 32 (one group) in the natural one.
    assert len(table) == 3 * len(BLOCKS) + 3 * (len(BLOCKS) + 1)
    assert {(c.group_size, c.channel_order) for c in table} == {
        (8, "natural"), (8, "shared"), (32, "natural")}
    assert {c.slices for c in table} == {1, 2}
    # The choice is one of the first round's fastest, timed again (irprune.tune.finalists).
    top = sorted(table, key=lambda c: c.median_us)[:FINALISTS]
    assert (k.group_size, k.block, k.slices) in {(c.group_size, c.block, c.slices) for c in top}
    assert rel_err(run_poisoned(k, x), conv2d_reference(x, w, 1, 1)) < 1e-5
    k2, table2 = autotune(conv2d_nchw, w, x.shape, padding=1, cache=cache, group_sizes=(8, 32),
                          slices=(1, 2), register_caps=(None,), groups_per_block=(1,))
    assert table2 == [] and (k2.group_size, k2.block, k2.slices) == (k.group_size, k.block, k.slices)
    assert k2.stats["tuned"]["channel_order"] == k.stats["tuned"]["channel_order"]
    assert k2.stats["tuned"]["cached"]


def test_autotune_times_register_budgets_and_reloads_the_chosen_one(tmp_path):
    w = prune_random((32, 128, 1, 1), 0.9, seed=7)
    x = np.random.default_rng(2).standard_normal((1, 128, 7, 7)).astype(np.float32)
    cache = DiskCache(tmp_path)
    k, table = autotune(conv2d_nchw, w, x.shape, cache=cache, group_sizes=(4, 16), slices=(1,))
    assert {c.max_registers for c in table} == {None, 64, 128}
    assert {(c.group_size, c.max_registers) for c in table} == {
        (gs, cap) for gs in (4, 16) for cap in (None, 64, 128)}
    top = sorted(table, key=lambda c: c.median_us)[:FINALISTS]
    assert (k.group_size, k.block, k.max_registers, k.groups_per_block) in {
        (c.group_size, c.block, c.max_registers, c.groups_per_block) for c in top}
    # Group size 4 makes 8 groups: 1, 2, 4 and 8 of them a block were all timed.
    assert {c.groups_per_block for c in table if c.group_size == 4} == {1, 2, 4, 8}
    assert k.registers <= (k.max_registers or 255)
    ref = conv2d_reference(x, w, 1, 0)
    assert rel_err(run_poisoned(k, x), ref) < 1e-5
    k2, table2 = autotune(conv2d_nchw, w, x.shape, cache=cache, group_sizes=(4, 16), slices=(1,))
    assert table2 == [] and k2.stats["tuned"]["cached"]
    assert (k2.group_size, k2.block, k2.max_registers, k2.groups_per_block) == (
        k.group_size, k.block, k.max_registers, k.groups_per_block)
    assert rel_err(run_poisoned(k2, x), ref) < 1e-5


def test_autotune_times_group_size_one_where_threads_are_very_few(tmp_path):
    """64 pixels x 4 groups of 4 (irprune.tune.VERY_FEW_THREADS): group size 1 is timed, with
    slices and several groups a block, and each such kernel is correct."""
    w = prune_random((16, 16, 3, 3), 0.9, seed=11)
    x = np.random.default_rng(3).standard_normal((1, 16, 8, 8)).astype(np.float32)
    k, table = autotune(conv2d_nchw, w, x.shape, padding=1, cache=DiskCache(tmp_path),
                        register_caps=(None,))
    ones = [c for c in table if c.group_size == 1]
    assert {c.slices for c in ones} == {1, 2, 4} and {c.groups_per_block for c in ones} == {1, 2, 4, 8}
    ref = conv2d_reference(x, w, 1, 1)
    assert rel_err(run_poisoned(k, x), ref) < 1e-5
    for sl in (1, 4):
        k1 = conv2d_nchw.compile(w, x.shape, padding=1, group_size=1, slices=sl,
                                 cache=DiskCache(tmp_path))
        for c in (c for c in ones if c.slices == sl):
            k1.block, k1.groups_per_block = c.block, c.groups_per_block
            assert rel_err(run_poisoned(k1, x), ref) < 1e-5, c


@pytest.mark.parametrize("cap", [24, 64, 128, 255])
@pytest.mark.parametrize("batch", [1, 3])
def test_a_register_budget_computes_the_same(cap, batch):
    w = prune_random((24, 96, 1, 1), 0.8, seed=3)
    x = np.random.default_rng(4).standard_normal((batch, 96, 9, 7)).astype(np.float32)
    k = conv2d_nchw.compile(w, x.shape, group_size=8, cache=False, max_registers=cap,
                            assemble=True)
    assert k.registers <= cap
    assert rel_err(run_poisoned(k, x), conv2d_reference(x, w, 1, 0)) < 1e-5
    w3 = prune_random((16, 8, 3, 3), 0.7, seed=4)  # with padding and slices too
    x3 = np.random.default_rng(5).standard_normal((batch, 8, 10, 10)).astype(np.float32)
    k3 = conv2d_nchw.compile(w3, x3.shape, padding=1, group_size=8, slices=2, cache=False,
                             max_registers=cap, assemble=True)
    assert rel_err(run_poisoned(k3, x3), conv2d_reference(x3, w3, 1, 1)) < 1e-5


@pytest.mark.parametrize("block", [64, 256])
def test_any_block_size_computes_the_same(block):
    w = prune_random((20, 6, 3, 3), 0.8, seed=2)
    x = np.random.default_rng(3).standard_normal((1, 6, 17, 9)).astype(np.float32)
    k = conv2d_nchw.compile(w, x.shape, padding=1, group_size=8, cache=False)
    k.block = block
    assert rel_err(run_poisoned(k, x), conv2d_reference(x, w, 1, 1)) < 1e-5


def test_autotune_times_the_table_layout_of_a_large_1x1_layer(tmp_path, monkeypatch):
    """With the layer made large (irprune.tune.LARGE_NNZ lowered) the table candidates are
    timed on the GPU beside the immediate one; whichever wins is correct and reloads."""
    import irprune.tune as T
    from irprune.table_layout import THREADS

    w = prune_random((512, 256, 1, 1), 0.9, seed=11)
    x = np.random.default_rng(3).standard_normal((1, 256, 14, 14)).astype(np.float32)
    monkeypatch.setattr(T, "LARGE_NNZ", 1000)
    cache = DiskCache(tmp_path)
    kw = dict(cache=cache, group_sizes=(8,), slices=(1,), tiles=False, register_caps=(128,))
    k, table = autotune(conv2d_nchw, w, x.shape, **kw)
    tables = [c for c in table if c.layout == "table"]
    assert {c.block for c in tables} == set(THREADS) and len(tables) >= 2 * len(THREADS)
    assert all(c.median_us > 0 for c in table)
    ref = conv2d_reference(x, w, 1, 0)
    assert rel_err(run_poisoned(k, x), ref) < 1e-5
    k2, table2 = autotune(conv2d_nchw, w, x.shape, **kw)
    assert table2 == [] and k2.stats["tuned"]["cached"]
    assert k2.stats["tuned"]["layout"] == k.stats["tuned"]["layout"] and k2.block == k.block
    assert rel_err(run_poisoned(k2, x), ref) < 1e-5
