"""The autotuner's candidates (CPU); its measurements are in tests/gpu/test_tune_gpu.py."""

from __future__ import annotations

import pytest

from irprune.errors import LaunchError
from irprune.geometry import ConvGeometry
from irprune.launch import gpu_available
from irprune.tune import (FEW_THREADS, FINALISTS, LARGE_NNZ, MAX_TEMPLATE_CHAINS,
                          VERY_FEW_THREADS, autotune, candidate_configs, candidate_group_sizes,
                          finalists)
from irprune.templates.conv2d import conv2d_nchw


@pytest.mark.parametrize("shape", [(64, 64, 3), (128, 128, 3), (50, 20, 5), (20, 1, 5), (512, 512, 3),
                                   (7, 3, 3)])
def test_candidates_are_bounded_and_prefer_divisors(shape):
    K, C, R = shape
    g = ConvGeometry(1, C, 16, 16, K, R, R, 1, R // 2)
    sizes = candidate_group_sizes(g)
    assert sizes == sorted(set(sizes)) and sizes
    assert all(1 <= s <= min(K, 64) for s in sizes)
    # Only the smallest candidate may exceed the template budget (some group must exist).
    assert all(s * C * R * R <= MAX_TEMPLATE_CHAINS for s in sizes[1:])
    if K == 64:  # 256 pixels x 16 groups of 4: very few threads, so group sizes 1 and 2 too
        assert sizes == [1, 2, 4, 8, 16, 32, 64]
    if K == 50:
        assert 10 in sizes and 25 in sizes


def test_group_size_two_only_where_group_size_four_leaves_few_threads():
    few = ConvGeometry.from_weight((256, 1024, 1, 1), (1, 1024, 14, 14))  # 196 x 64 threads
    many = ConvGeometry.from_weight((256, 512, 1, 1), (1, 512, 28, 28))  # 784 x 64 threads
    assert few.N * few.OH * few.OW * 64 < FEW_THREADS <= many.N * many.OH * many.OW * 64
    assert candidate_group_sizes(few) == [2, 4, 8, 16, 32, 64]
    assert candidate_group_sizes(many) == [4, 8, 16, 32, 64]
    # The batch counts: the same layer at batch 4 has threads enough.
    assert 2 not in candidate_group_sizes(few.with_batch(4))


def test_group_size_one_only_where_group_size_four_leaves_very_few_threads():
    # alexnet_cifar_c3 (64 pixels x 16 groups of 4) and alexnet_cifar_c2 (256 x 8), where it won
    c3 = ConvGeometry.from_weight((64, 32, 5, 5), (1, 32, 8, 8), padding=2)
    c2 = ConvGeometry.from_weight((32, 32, 5, 5), (1, 32, 16, 16), padding=2)
    # l3_1x1_1024_256 (196 x 64), where it lost
    deep = ConvGeometry.from_weight((256, 1024, 1, 1), (1, 1024, 14, 14))
    assert 64 * 16 < 256 * 8 < VERY_FEW_THREADS <= 196 * 64 < FEW_THREADS
    assert candidate_group_sizes(c3)[:3] == [1, 2, 4]
    assert candidate_group_sizes(c2)[:3] == [1, 2, 4]
    assert candidate_group_sizes(deep)[:2] == [2, 4]
    assert 1 not in candidate_group_sizes(c3.with_batch(8))  # 8,192 threads at batch 8
    assert 1 in candidate_group_sizes(c3.with_batch(7))


def test_a_large_layer_is_not_tuned_at_group_size_one():
    g = ConvGeometry.from_weight((512, 2048, 1, 1), (1, 2048, 7, 7))  # 49 x 128 threads
    assert candidate_group_sizes(g)[0] == 1
    assert {gs for gs, _, _ in candidate_configs(g, nnz=LARGE_NNZ)} >= {1}
    large = {gs for gs, _, _ in candidate_configs(g, nnz=LARGE_NNZ + 1, tiles=False)}
    assert large == {2, 4, 8, 16}


def test_finalists_are_timed_again_interleaved_and_the_new_times_decide():
    first = {"a": 1.00, "b": 1.01, "c": 1.02, "d": 1.03, "e": 1.04, "f": 0.99}
    new = {"f": [1.2, 1.1], "a": [1.05, 1.06], "b": [0.98, 1.3], "c": [1.0, 1.0], "d": [2.0, 2.0]}
    calls = []

    def retime(item):
        calls.append(item)
        return new[item][sum(c == item for c in calls) - 1]
    us, won, rounds = finalists([(t, k) for k, t in first.items()], retime)
    top = sorted(first, key=first.get)[:FINALISTS]
    # only the fastest FINALISTS, each twice, one pass over all before the second
    assert calls == top + top and "e" not in calls
    # b's first round was not the fastest, nor its mean the smallest: its best new time wins
    assert (won, us) == ("b", 0.98)
    assert [(t, again, item) for t, again, item in rounds] == [
        (first[k], new[k], k) for k in top]


def test_a_single_candidate_is_not_timed_again():
    assert finalists([(2.5, "only")], lambda item: 1 / 0) == (2.5, "only", [(2.5, [], "only")])


@pytest.mark.skipif(gpu_available(), reason="checks the no-GPU message")
def test_autotune_without_a_gpu_says_so():
    import numpy as np

    with pytest.raises(LaunchError, match="GPU"):
        autotune(conv2d_nchw, np.ones((4, 2, 3, 3), np.float32), (1, 2, 8, 8))


def test_row_tile_candidates_join_the_pixel_ones_for_layers_with_many_pixels():
    from irprune.templates.conv2d_rows import conv2d_rows
    from irprune.tune import _configs, candidate_configs, candidate_tile_configs, template_for

    b1 = ConvGeometry.from_weight((128, 128, 3, 3), (1, 128, 28, 28), padding=1)
    assert candidate_tile_configs(b1) == [] and all(t is None for *_, t in candidate_configs(b1))
    b64 = b1.with_batch(64)
    tiles = candidate_tile_configs(b64)
    # the two largest candidate group sizes, each with every candidate tile
    assert {gs for gs, _, _ in tiles} == set(candidate_group_sizes(b64)[-2:]) == {32, 64}
    assert all(sl == 1 and t in {(5, 1), (5, 2), (9, 1), (9, 2)} for _, sl, t in tiles)
    assert candidate_configs(b64)[-len(tiles):] == tiles
    assert candidate_configs(b64, tiles=False) == candidate_configs(b64)[:-len(tiles)]
    assert template_for(conv2d_nchw, (5, 1)) is conv2d_rows
    assert template_for(conv2d_nchw, None) is conv2d_nchw
    # autotune's list: overridden group sizes get every tile; a user template gets none
    got = _configs(conv2d_nchw, b64, (8,), (1,), None)
    assert got == [(8, 1, None), (8, 1, (5, 1)), (8, 1, (5, 2)), (8, 1, (9, 1)), (8, 1, (9, 2))]
    assert _configs(conv2d_rows, b64, (8,), None, None) == [(8, 1, t) for t in
                                                              [(5, 1), (5, 2), (9, 1), (9, 2)]]
    assert _configs(conv2d_nchw, b64, (8,), (1,), False) == [(8, 1, None)]


def test_a_choice_made_without_row_tiles_is_not_reused_with_them():
    import numpy as np

    from irprune.tune import choice_key

    w = np.ones((4, 2, 3, 3), np.float32)
    g = ConvGeometry.from_weight(w.shape, (1, 2, 8, 8), padding=1)
    keys = {choice_key(conv2d_nchw, w, g, None, False, "sm_90", "gpu", t) for t in (None, False, True)}
    assert len(keys) == 3


def test_a_large_layer_is_tuned_over_its_smallest_group_sizes_and_one_budget():
    from irprune.tune import (LARGE_GROUP_SIZES, LARGE_NNZ, LARGE_REGISTER_CAPS, LARGE_SLICES,
                              _configs, candidate_configs, candidate_register_caps,
                              candidate_tile_configs)

    g = ConvGeometry.from_weight((1024, 1024, 1, 1), (1, 1024, 7, 7))
    sizes = candidate_group_sizes(g)
    full, large = candidate_configs(g), candidate_configs(g, nnz=LARGE_NNZ + 1)
    assert candidate_configs(g, nnz=LARGE_NNZ) == full  # the limit itself is not large
    assert {gs for gs, *_ in large} == set(sizes[:LARGE_GROUP_SIZES]) == {2, 4, 8, 16}
    assert {sl for _, sl, _ in large} == set(LARGE_SLICES) == {1, 2}
    assert {sl for _, sl, _ in full} == {1, 2, 4, 8}
    assert large == [c for c in full if c[0] in sizes[:LARGE_GROUP_SIZES] and c[1] in LARGE_SLICES]
    mine = _configs(conv2d_nchw, g, None, None, None, LARGE_NNZ)
    assert _configs(conv2d_nchw, g, None, None, None, LARGE_NNZ + 1) == [
        c for c in mine if c[0] in sizes[:LARGE_GROUP_SIZES] and c[1] in LARGE_SLICES] != mine
    # group sizes and slices given by the caller are kept, large or not
    assert {gs for gs, *_ in _configs(conv2d_nchw, g, (32,), None, None, 10 ** 6)} == {32}
    assert {sl for _, sl, _ in _configs(conv2d_nchw, g, (4,), (8,), None, 10 ** 6)} == {8}
    assert candidate_register_caps(None, LARGE_NNZ + 1) == list(LARGE_REGISTER_CAPS)
    assert candidate_register_caps(None, LARGE_NNZ) == candidate_register_caps(None)
    assert candidate_register_caps((5, 1), 10 ** 6) == [None]
    # a large layer with many pixels keeps row tiles, of its largest group size only
    b64 = ConvGeometry.from_weight((128, 128, 3, 3), (64, 128, 28, 28), padding=1)
    tiles, few = candidate_tile_configs(b64), candidate_tile_configs(b64, nnz=LARGE_NNZ + 1)
    assert few == [c for c in tiles if c[0] == max(gs for gs, *_ in tiles)] and few != tiles
    assert [c for c in _configs(conv2d_nchw, b64, None, None, None, LARGE_NNZ + 1) if c[2]] == few


def test_a_large_1x1_layer_is_also_timed_in_the_table_layout(monkeypatch, tmp_path):
    """autotune with the GPU's parts stood in for: a large 1x1 layer's table candidates are
    compiled and timed beside the immediate ones, a faster table kernel is returned (checked on
    the CPU against float64), and the stored choice reloads as the same table kernel."""
    import numpy as np

    import irprune.launch as L
    import irprune.tune as T
    from irprune.cache import DiskCache
    from irprune.host_exec import run_on_host
    from irprune.reference import conv2d_reference, prune_random
    from irprune.table_kernel import TableConvKernel
    from irprune.table_layout import TableConfig

    monkeypatch.setattr(T, "device_id", lambda: "stand-in GPU sm_90")
    monkeypatch.setattr(L, "_require_gpu", lambda: None)
    # a table kernel's threads are compiled in: few, for the host to emulate them quickly
    THREADS = (32, 64)
    monkeypatch.setattr(T, "TABLE_THREADS", THREADS)
    w = prune_random((256, 64, 1, 1), 0.9, seed=3)
    shape = (1, 64, 14, 14)
    g = ConvGeometry.from_weight(w.shape, shape)
    nnz = int(np.count_nonzero(w))
    assert T.candidate_table_configs(w, g, "sm_90", nnz=nnz) == []  # 1,638 nonzeros: not large
    monkeypatch.setattr(T, "LARGE_NNZ", nnz - 1)
    (tc,) = T.candidate_table_configs(w, g, "sm_90", nnz=nnz)  # 16 x 8 blocks of 16 channels
    assert tc == TableConfig(16, 8, 196)
    assert T.candidate_table_configs(w, g, "sm_90", relu=True, nnz=nnz) == []  # atomics

    def made_up_us(k):  # the table kernel with the most threads is the fastest
        return 1.0 - k.block / 1e4 if isinstance(k, TableConvKernel) else 2.0
    kw = dict(cpu="sm_90", cache=DiskCache(tmp_path), group_sizes=(8,), slices=(1,), tiles=False,
              register_caps=(None,), groups_per_block=(1,), measure=made_up_us)
    k, table = autotune(conv2d_nchw, w, shape, **kw)
    assert [c.layout for c in table].count("table") == len(THREADS)
    assert isinstance(k, TableConvKernel) and (k.config, k.block) == (tc, max(THREADS))
    assert k.stats["tuned"]["layout"] == "table" and not k.stats["tuned"]["cached"]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    ref = conv2d_reference(x.astype(np.float64), w.astype(np.float64), 1, 0)
    assert np.abs(run_on_host(k, x) - ref).max() / np.abs(ref).max() < 1e-5
    k2, table2 = autotune(conv2d_nchw, w, shape, **kw)
    assert table2 == [] and k2.stats["tuned"]["cached"]
    assert isinstance(k2, TableConvKernel) and (k2.config, k2.block) == (tc, max(THREADS))
    # tables=False: the immediate kernel only, under a choice of its own
    k3, table3 = autotune(conv2d_nchw, w, shape, tables=False, **kw)
    assert table3 and {c.layout for c in table3} == {"immediate"}
    assert not isinstance(k3, TableConvKernel)


def test_channel_orders_are_candidates_only_where_they_regroup():
    from irprune.errors import ValidationError
    from irprune.tune import candidate_channel_orders

    g = ConvGeometry.from_weight((64, 32, 1, 1), (1, 32, 14, 14))
    assert candidate_channel_orders(g, 8, None) == ["natural", "shared"]
    assert candidate_channel_orders(g, 1, None) == ["natural"]  # one channel a group
    assert candidate_channel_orders(g, 64, None) == ["natural"]  # one group
    assert candidate_channel_orders(g, 24, None) == ["natural"]  # 24 does not divide 64
    assert candidate_channel_orders(g, 8, (2, 8)) == ["natural"]  # row tiles
    assert candidate_channel_orders(g, 8, None, ("natural",)) == ["natural"]
    assert candidate_channel_orders(g, 8, None, ("shared",)) == ["shared"]
    assert candidate_channel_orders(g, 1, None, ("shared",)) == ["natural"]  # the same kernel
    dw = ConvGeometry.from_weight((64, 1, 3, 3), (1, 64, 14, 14), padding=1, groups=64)
    assert candidate_channel_orders(dw, 8, None) == ["natural"]  # convolution groups
    with pytest.raises(ValidationError, match="channel orders must be some of natural, shared"):
        candidate_channel_orders(g, 8, None, ("sorted",))


def test_autotune_times_both_channel_orders_and_keeps_the_faster(monkeypatch, tmp_path):
    """autotune with the GPU's parts stood in for: each configuration is compiled in both
    orders; a faster shared order wins, computes the layer (host emulation against float64),
    and reloads from the stored choice in that order; ``channel_orders=("natural",)`` never
    compiles it."""
    import numpy as np

    import irprune.launch as L
    import irprune.tune as T
    from irprune.cache import DiskCache
    from irprune.host_exec import run_on_host
    from irprune.reference import conv2d_reference, prune_random

    monkeypatch.setattr(T, "device_id", lambda: "stand-in GPU sm_90")
    monkeypatch.setattr(L, "_require_gpu", lambda: None)
    w = prune_random((16, 12, 1, 1), 0.7, seed=5)
    shape = (1, 12, 5, 5)

    def made_up_us(k):  # the shared order is faster, the rest equal
        return 1.0 if k.output_channels is None else 0.5
    kw = dict(cpu="sm_90", cache=DiskCache(tmp_path), group_sizes=(4,), slices=(1,), tiles=False,
              register_caps=(None,), groups_per_block=(1,), blocks=(64,), measure=made_up_us,
              tables=False)
    k, table = autotune(conv2d_nchw, w, shape, **kw)
    assert [c.channel_order for c in table] == ["natural", "shared"]
    assert k.output_channels is not None and k.stats["tuned"]["channel_order"] == "shared"
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    ref = conv2d_reference(x.astype(np.float64), w.astype(np.float64), 1, 0)
    assert np.abs(run_on_host(k, x) - ref).max() / np.abs(ref).max() < 1e-5
    k2, table2 = autotune(conv2d_nchw, w, shape, **kw)
    assert table2 == [] and k2.stats["tuned"]["cached"]
    assert np.array_equal(k2.output_channels, k.output_channels)
    k3, table3 = autotune(conv2d_nchw, w, shape, **dict(kw, channel_orders=("natural",)))
    assert [c.channel_order for c in table3] == ["natural"] and k3.output_channels is None
    # a template of one's own is timed in the natural order unless asked for more
    from tests.user_templates import conv2d_relu6

    k4, table4 = autotune(conv2d_relu6, w, shape, bias=np.zeros(16, np.float32), **kw)
    assert [c.channel_order for c in table4] == ["natural"] and k4.output_channels is None
