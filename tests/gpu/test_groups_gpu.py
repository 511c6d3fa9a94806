"""Grouped and depthwise convolutions on the GPU against PyTorch's and the float64 reference."""

from __future__ import annotations

import numpy as np
import pytest

import irprune
from irprune.reference import conv2d_reference, prune_random

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("K, C, G, N, stride", [(32, 32, 32, 2, 1), (32, 32, 32, 1, 2),
                                                 (64, 32, 4, 3, 1), (24, 12, 3, 1, 2)])
def test_grouped_conv_matches_torch(K, C, G, N, stride):
    torch = pytest.importorskip("torch")
    w = prune_random((K, C // G, 3, 3), 0.7, seed=K + G)
    b = np.random.default_rng(0).standard_normal(K).astype(np.float32)
    x = np.random.default_rng(1).standard_normal((N, C, 14, 13)).astype(np.float32)
    k = irprune.conv2d(w, x.shape, stride=stride, padding=1, bias=b, groups=G, cache=False)
    xt = torch.from_numpy(x).cuda()
    y = k(xt)
    assert y.shape == (N, K) + tuple(k.geometry.output_shape[2:])
    with torch.backends.cudnn.flags(allow_tf32=False):
        ref_t = torch.nn.functional.conv2d(xt.double(), torch.from_numpy(w).cuda().double(),
                                           torch.from_numpy(b).cuda().double(), stride, 1, 1, G)
    ref = conv2d_reference(x, w, stride, 1, b, groups=G)
    assert np.allclose(ref, ref_t.cpu().numpy(), rtol=1e-9, atol=1e-9)
    assert np.max(np.abs(y.cpu().numpy() - ref)) / np.max(np.abs(ref)) < 1e-5
