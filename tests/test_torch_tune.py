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
    configs = [(4, 1, None, [None, 64, 128]), (8, 2, None, [None, 128])]
    n = compile_candidates(w, shape, 1, 1, None, 1, "sm_90", configs, str(tmp_path))
    assert n == 5
    for gs, sl, _, caps in configs:
        for cap in caps:
            k = conv2d_nchw.compile(w, shape, padding=1, group_size=gs, slices=sl,
                                    max_registers=cap, cache=DiskCache(tmp_path))
            assert k.stats["cached"] and k.max_registers == cap
            if k.cubins[0] is not None:  # assembled in the worker when ptxas is there
                assert k.registers is not None
    # Nothing else was compiled: a configuration not asked for is not in the cache.
    k = conv2d_nchw.compile(w, shape, padding=1, group_size=2, cache=DiskCache(tmp_path))
    assert not k.stats["cached"]
