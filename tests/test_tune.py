"""The autotuner's candidates (CPU); its measurements are in tests/gpu/test_tune_gpu.py."""

from __future__ import annotations

import pytest

from irprune.errors import LaunchError
from irprune.geometry import ConvGeometry
from irprune.launch import gpu_available
from irprune.tune import MAX_TEMPLATE_CHAINS, autotune, candidate_group_sizes
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
    if K == 64:
        assert sizes == [4, 8, 16, 32, 64]
    if K == 50:
        assert 10 in sizes and 25 in sizes


@pytest.mark.skipif(gpu_available(), reason="checks the no-GPU message")
def test_autotune_without_a_gpu_says_so():
    import numpy as np

    with pytest.raises(LaunchError, match="GPU"):
        autotune(conv2d_nchw, np.ones((4, 2, 3, 3), np.float32), (1, 2, 8, 8))
