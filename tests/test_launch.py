"""irprune.launch on the CPU: the memoized launch configurations follow the kernel's block size."""

from __future__ import annotations

import pytest

from irprune import launch
from irprune.reference import prune_random
from irprune.templates.conv2d import conv2d_nchw

pytest.importorskip("cuda.core", reason="cuda.core (a numba-cuda dependency) builds the launch configs")


def test_changing_the_block_size_changes_the_launch(monkeypatch):
    """The tuner and the benchmark set ``kernel.block`` between launches of one kernel; a memo
    keyed on (device, batch) alone kept the first block size for every later candidate."""
    w = prune_random((16, 4, 3, 3), 0.8, seed=1)
    k = conv2d_nchw.compile(w, (1, 4, 9, 9), padding=1, group_size=8, cache=False)
    fake = type("Fn", (), {"kernel": object()})
    monkeypatch.setattr(launch, "_functions", lambda kernel: [fake() for _ in kernel.parts])
    blocks = {}
    for b in (64, 256, 64):
        k.block = b
        (_, cfg), = launch._launches(k, 3, 0)
        blocks.setdefault(b, cfg)
        assert tuple(cfg.block) == (b, 1, 1)
        assert tuple(cfg.grid) == k.grid_for(3)
    assert blocks[64] is launch._launches(k, 3, 0)[0][1]  # memoized per block size
