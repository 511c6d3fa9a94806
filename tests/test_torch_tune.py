"""convert(..., tune=True)'s compile side, on the CPU: every candidate lands in the disk cache.

The GPU timing and the choice are tested in tests/gpu/test_torch_convert_gpu.py.
"""

from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="irprune.torch_tune is part of the PyTorch converter")

from irprune.cache import DiskCache  # noqa: E402
from irprune.reference import prune_random  # noqa: E402
from irprune.templates.conv2d import conv2d_nchw  # noqa: E402
from irprune.torch_tune import compile_candidates  # noqa: E402


def test_compile_candidates_caches_every_configuration_and_budget(tmp_path):
    w = prune_random((8, 6, 3, 3), 0.8, seed=9)
    shape = (1, 6, 7, 7)
    configs = [(4, 1, None, "natural", [None, 64, 128]), (8, 2, None, "natural", [None, 128]),
               (4, 1, None, "shared", [128])]
    n = compile_candidates(w, shape, 1, 1, None, 1, "sm_90", configs, str(tmp_path))
    assert n == 6
    for gs, sl, _, order, caps in configs:
        for cap in caps:
            k = conv2d_nchw.compile(w, shape, padding=1, group_size=gs, slices=sl,
                                    max_registers=cap, channel_order=order,
                                    cache=DiskCache(tmp_path))
            assert k.stats["cached"] and k.max_registers == cap
            assert k.stats["channel_order"] == order
            if k.cubins[0] is not None:  # assembled in the worker when ptxas is there
                assert k.registers is not None
    # Nothing else was compiled: a configuration not asked for is not in the cache.
    k = conv2d_nchw.compile(w, shape, padding=1, group_size=2, cache=DiskCache(tmp_path))
    assert not k.stats["cached"]


def test_tune_layers_compiles_in_workers_and_autotune_only_times(tmp_path, monkeypatch):
    """The whole tuning path with the GPU's two parts (device name, timing) stood in for: the
    candidates compile in the workers, autotune then compiles nothing, keeps the fastest (by a
    made-up timing) and the report says which; tuning again reuses the cached choice."""
    import irprune.kernel as K
    import irprune.launch as L
    import irprune.torch_tune as TT
    import irprune.tune as T
    from irprune import worker
    from irprune.torch_convert import LayerReport, SparseConv2d

    monkeypatch.setattr(T, "device_arch", lambda: "sm_90")
    monkeypatch.setattr(T, "device_id", lambda: "stand-in GPU sm_90")
    monkeypatch.setattr(L, "_require_gpu", lambda: None)

    def made_up_us(k):  # deterministic: small groups, no slices, a budget of 64, big blocks
        # and the most groups per block win
        return k.group_size * 10 + k.slices + {None: 0.5, 64: 0.1, 128: 0.3}[k.max_registers] \
            - k.block / 1e4 - k.groups_per_block / 1e2
    real = T.autotune
    monkeypatch.setattr(T, "autotune", lambda *a, **kw: real(*a, measure=made_up_us, **kw))

    w = prune_random((8, 6, 3, 3), 0.8, seed=4)
    shape = (2, 6, 9, 9)
    layer = SparseConv2d(w, None, 1, 1, 1, cache=str(tmp_path), assemble=True)
    rep = LayerReport("c", "conv2d", "converted", 0.8, 0, shape)
    layer.kernel_for(shape)  # what convert compiles first: the default kernel

    compiles, calls = [], []
    real_parts, real_workers = K.compile_parts, worker.run_in_workers
    monkeypatch.setattr(K, "compile_parts", lambda jobs: compiles.append(1) or real_parts(jobs))
    monkeypatch.setattr(worker, "run_in_workers",
                        lambda c, *a, **kw: calls.append(len(c)) or real_workers(c, *a, **kw))
    TT.tune_layers([(rep, None, layer, shape)], str(tmp_path), progress=False, jobs=2)
    assert calls and not compiles  # every candidate came from the workers through the cache
    # 162 pixels x 2 groups of 4 are very few threads (irprune.tune.VERY_FEW_THREADS): group
    # sizes 1 and 2 too; with eight groups of 1, eight a block (blocks 32-128) wins
    assert rep.tuned == {"layout": "immediate", "group_size": 1, "slices": 1, "tile": None,
                         "max_registers": 64, "block": 128, "groups_per_block": 8, "table": None,
                         "channel_order": "natural"}
    k = layer.kernel_for(shape)
    assert (k.group_size, k.max_registers, k.block, k.groups_per_block) == (1, 64, 128, 8)
    # x 3 budgets: group size 1 (eight groups) with one group a block (blocks 64-256, 32
    # apart: 7), two or four (32-256: 8) or eight (32-128: 4); group size 2 (four groups) with
    # one, two or four; group size 4 (two groups) with one or both; group size 8 (one group)
    # with one; group sizes 2 and 4 in both channel orders (one channel a group, or one group,
    # is the same kernel in either)
    cands = k.stats["tuned"]["candidates"]
    assert len(cands) == (3 * (7 + 8 + 8 + 4) + 2 * 3 * (7 + 8 + 8) + 2 * 3 * (7 + 8) + 3 * 7)
    assert {c["group_size"] for c in cands if c["channel_order"] == "shared"} == {2, 4}

    layer2 = SparseConv2d(w, None, 1, 1, 1, cache=str(tmp_path), assemble=True)
    rep2 = LayerReport("c", "conv2d", "converted", 0.8, 0, shape)
    layer2.kernel_for(shape)
    calls.clear()
    TT.tune_layers([(rep2, None, layer2, shape)], str(tmp_path), progress=False, jobs=2)
    assert not calls and rep2.tuned == rep.tuned
    assert layer2.kernel_for(shape).stats["tuned"]["cached"]


def test_a_large_1x1_layers_table_candidates_compile_in_the_workers(tmp_path, monkeypatch):
    """tune_layers on a 1x1 layer made large (irprune.tune.LARGE_NNZ lowered): its table
    candidates compile in the workers too, autotune compiles no table kernel itself, and a table
    kernel that times faster becomes the layer's kernel, named in the report."""
    import numpy as np

    import irprune.launch as L
    import irprune.table_kernel as TK
    import irprune.torch_tune as TT
    import irprune.tune as T
    from irprune.torch_convert import LayerReport, SparseConv2d

    monkeypatch.setattr(T, "device_arch", lambda: "sm_90")
    monkeypatch.setattr(T, "device_id", lambda: "stand-in GPU sm_90")
    monkeypatch.setattr(L, "_require_gpu", lambda: None)
    w = prune_random((256, 64, 1, 1), 0.9, seed=3)
    monkeypatch.setattr(T, "LARGE_NNZ", int(np.count_nonzero(w)) - 1)
    # a table kernel is the fastest, and of those the one with the most threads
    real = T.autotune
    monkeypatch.setattr(T, "autotune", lambda *a, **kw: real(*a, measure=lambda k: (
        1.0 - k.block / 1e4 if isinstance(k, TK.TableConvKernel) else 2.0), **kw))
    built = []
    real_ir = TK._ir_template
    monkeypatch.setattr(TK, "_ir_template", lambda *a: built.append(1) or real_ir(*a))

    shape = (1, 64, 14, 14)
    layer = SparseConv2d(w, None, 1, 0, 1, cache=str(tmp_path), assemble=True)
    rep = LayerReport("c", "conv2d", "converted", 0.9, 0, shape)
    layer.kernel_for(shape)
    TT.tune_layers([(rep, None, layer, shape)], str(tmp_path), progress=False, jobs=2)
    assert not built  # the table kernels came from the workers through the cache
    assert rep.tuned["layout"] == "table" and rep.tuned["block"] == 1024
    assert rep.tuned["table"] == {"tile_k": 16, "slices": 8, "tile_p": 196}
    assert isinstance(layer.kernel_for(shape), TK.TableConvKernel)
