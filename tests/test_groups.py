"""Grouped and depthwise convolutions (nn.Conv2d's ``groups``), checked on the CPU through the pruned IR."""

from __future__ import annotations

import numpy as np
import pytest

import irprune
from irprune.errors import ValidationError
from irprune.geometry import ConvGeometry
from irprune.host_exec import run_on_host
from irprune.reference import conv2d_reference, prune_random
from irprune.template import default_group_size
from irprune.tune import candidate_group_sizes

CASES = [
    # K, C, groups, group_size, N, stride, sparsity
    (8, 6, 2, None, 2, 1, 0.5),    # two groups, default group size
    (6, 6, 6, None, 3, 1, 0.5),    # depthwise
    (12, 8, 4, 1, 1, 2, 0.3),      # grouped, one channel per region, stride 2
    (16, 4, 4, 2, 2, 1, 0.0),      # 4 output channels per group from 1 input channel each, dense
    (32, 32, 32, None, 1, 1, 0.9),  # depthwise, most taps pruned
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "K{}C{}G{}g{}N{}s{}z{}".format(*c))
def test_grouped_conv_computes_the_reference(case):
    K, C, G, gs, N, stride, sparsity = case
    w = prune_random((K, C // G, 3, 3), sparsity, seed=K + G)
    b = np.random.default_rng(0).standard_normal(K).astype(np.float32)
    x = np.random.default_rng(1).standard_normal((N, C, 7, 6)).astype(np.float32)
    k = irprune.conv2d(w, x.shape, stride=stride, padding=1, bias=b, relu=True, groups=G,
                       group_size=gs, cache=False)
    assert k.stats["fma_ptx"] == np.count_nonzero(w)
    assert (k.geometry.Kg % k.group_size) == 0
    y = run_on_host(k, x)
    ref = conv2d_reference(x, w, stride, 1, b, relu=True, groups=G)
    assert not np.isnan(y).any()
    assert np.max(np.abs(y - ref)) / np.max(np.abs(ref)) < 1e-5


def test_grouped_layer_split_into_parts(monkeypatch):
    monkeypatch.setenv("IRPRUNE_MAX_PART_NNZ", "20")
    w = prune_random((8, 2, 3, 3), 0.4, seed=3)
    x = np.random.default_rng(2).standard_normal((2, 8, 5, 5)).astype(np.float32)
    k = irprune.conv2d(w, x.shape, padding=1, groups=4, group_size=1, cache=False)
    assert len(k.parts) > 1
    ref = conv2d_reference(x, w, 1, 1, groups=4)
    assert np.max(np.abs(run_on_host(k, x) - ref)) / np.max(np.abs(ref)) < 1e-5


def test_reference_groups_match_a_block_diagonal_dense_conv():
    """The grouped reference against its definition: a dense conv with zero off-group weights."""
    w = prune_random((6, 2, 3, 3), 0.0, seed=1)
    dense = np.zeros((6, 6, 3, 3), np.float32)
    for g in range(3):
        dense[2 * g:2 * g + 2, 2 * g:2 * g + 2] = w[2 * g:2 * g + 2]
    x = np.random.default_rng(0).standard_normal((2, 6, 5, 5))
    assert np.allclose(conv2d_reference(x, w, 1, 1, groups=3), conv2d_reference(x, dense, 1, 1))


@pytest.mark.parametrize("kwargs, match", [
    ({"weight_shape": (8, 3, 3, 3), "input_shape": (1, 6, 5, 5), "groups": 4}, "must divide both"),
    ({"weight_shape": (8, 2, 3, 3), "input_shape": (1, 6, 5, 5), "groups": 2},
     r"per group \(2 groups\).*\(K, 3, R, S\)"),
    ({"weight_shape": (8, 3, 3, 3), "input_shape": (1, 6, 5, 5), "groups": 0}, "groups must be >= 1"),
])
def test_bad_groups(kwargs, match):
    with pytest.raises(ValidationError, match=match):
        ConvGeometry.from_weight(**kwargs)


def test_group_size_must_divide_the_channels_of_a_group():
    w = prune_random((8, 3, 3, 3), 0.5)
    with pytest.raises(ValidationError, match="must divide the 4 output channels"):
        irprune.conv2d(w, (1, 6, 5, 5), groups=2, group_size=3, cache=False)
    g = ConvGeometry.from_weight((96, 1, 3, 3), (1, 96, 8, 8), groups=96)
    assert default_group_size(g) == 1 and candidate_group_sizes(g) == [1]
    g = ConvGeometry.from_weight((64, 8, 3, 3), (1, 32, 8, 8), groups=4)
    assert all(16 % gs == 0 for gs in candidate_group_sizes(g)) and 16 % default_group_size(g) == 0
