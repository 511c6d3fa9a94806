"""GPU checks: kernels compiled in the shared channel order (irprune.channel_order) compute the
layer's output in its own channel order (float64 reference; outputs poisoned with NaN)."""

from __future__ import annotations

import numpy as np
import pytest

from irprune.reference import conv2d_reference, prune_random
from irprune.templates.conv2d import conv2d_nchw
from tests.gpu.test_conv2d_gpu import rel_err, run_poisoned

pytestmark = pytest.mark.gpu

CASES = [
    # weight shape, input shape, stride, padding, group size, slices, groups per block
    ((64, 128, 1, 1), (1, 128, 14, 14), 1, 0, 4, 1, 4),
    ((32, 64, 1, 1), (1, 64, 28, 28), 2, 0, 8, 2, 2),
    ((32, 16, 3, 3), (2, 16, 12, 12), 1, 1, 4, 1, 1),
    ((48, 96, 1, 1), (1, 96, 7, 7), 1, 0, 2, 1, 8),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"K{c[0][0]}C{c[0][1]}R{c[0][2]}g{c[4]}x{c[5]}m{c[6]}")
def test_shared_order_matches_float64(case):
    wshape, ishape, stride, pad, gs, slices, m = case
    rng = np.random.default_rng(wshape[0])
    w = prune_random(wshape, 0.9, seed=wshape[1])
    b = rng.standard_normal(wshape[0]).astype(np.float32)
    k = conv2d_nchw.compile(w, ishape, stride, pad, bias=b, relu=True, cache=False,
                            group_size=gs, slices=slices, channel_order="shared")
    assert k.output_channels is not None
    k.groups_per_block = m
    for _ in range(2):  # fresh inputs each time
        x = rng.standard_normal(ishape).astype(np.float32)
        out = run_poisoned(k, x)
        assert not np.isnan(out).any(), "some output elements were never written"
        assert rel_err(out, conv2d_reference(x, w, stride, pad, b, relu=True)) < 1e-5
