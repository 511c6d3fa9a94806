"""Several channel groups in one block on the GPU: the same kernel at every groups_per_block
computes the float64 convolution, with slices, a ragged last group, grouped convolutions
and several parts."""

from __future__ import annotations

import numpy as np
import pytest

import irprune
from irprune.reference import conv2d_reference, prune_random
from irprune.tune import candidate_groups_per_block, launch_shapes
from tests.gpu.test_conv2d_gpu import rel_err, run_poisoned_batch

pytestmark = pytest.mark.gpu

# (weight shape, input shape, stride, padding, groups, group size)
CASES = {
    "1x1": ((32, 64, 1, 1), (1, 64, 14, 14), 1, 0, 1, 4),
    "3x3_ragged": ((20, 8, 3, 3), (1, 8, 9, 11), 1, 1, 1, 8),
    "grouped": ((16, 4, 3, 3), (1, 16, 7, 7), 2, 1, 4, 2),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("slices", [1, 2])
def test_every_launch_shape_computes_the_same(name, slices):
    wshape, ishape, stride, pad, groups, gs = CASES[name]
    rng = np.random.default_rng(len(name) * 10 + slices)
    w = prune_random(wshape, 0.8, seed=int(rng.integers(1 << 30)))
    b = rng.standard_normal(wshape[0]).astype(np.float32)
    k = irprune.conv2d(w, ishape, stride=stride, padding=pad, bias=b, relu=True, groups=groups,
                       group_size=gs, slices=slices)
    k.ptxas()
    shapes = launch_shapes(k)
    assert {m for _, m in shapes} == set(candidate_groups_per_block(k))
    if name == "3x3_ragged":  # three groups (8, 8, 4): no candidate divides 3, so all three
        assert candidate_groups_per_block(k) == [1]
        shapes += [(32, 3), (64, 3)]
    else:
        assert candidate_groups_per_block(k) == [1, 2, 4, 8]
    for n in (1, 3):
        x = rng.standard_normal((n, *ishape[1:])).astype(np.float32)
        ref = conv2d_reference(x, w, stride, pad, b, True, groups=groups)
        for block, per in shapes:
            k.block, k.groups_per_block = block, per
            out = run_poisoned_batch(k, x)
            assert not np.isnan(out).any(), f"block {block} x {per} groups: outputs never written"
            assert rel_err(out, ref) < 1e-5, (block, per)


def test_groups_per_block_with_several_parts(monkeypatch):
    monkeypatch.setenv("IRPRUNE_MAX_PART_NNZ", "400")
    w = prune_random((64, 96, 1, 1), 0.8, seed=9)
    x = np.random.default_rng(9).standard_normal((2, 96, 6, 6)).astype(np.float32)
    k = irprune.conv2d(w, x.shape, group_size=4, cache=False)
    assert len(k.parts) > 1
    ref = conv2d_reference(x, w, 1, 0)
    for per in candidate_groups_per_block(k):
        k.groups_per_block = per
        assert rel_err(run_poisoned_batch(k, x), ref) < 1e-5, per
