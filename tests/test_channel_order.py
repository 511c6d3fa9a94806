"""irprune.channel_order: which output channels share a code region."""

from __future__ import annotations

import numpy as np
import pytest

from irprune.channel_order import channel_order, group_costs, shared_order
from irprune.errors import ValidationError
from irprune.reference import prune_random


def _mask(K, D, sparsity, seed):
    return prune_random((K, D, 1, 1), sparsity, seed=seed).reshape(K, D) != 0


@pytest.mark.parametrize("K,D,g,seed", [(64, 256, 4, 1), (128, 128, 8, 2), (32, 512, 2, 3),
                                        (256, 512, 4, 4)])
def test_shared_order_is_a_permutation_with_fewer_loads_and_even_groups(K, D, g, seed):
    mask = _mask(K, D, 0.9, seed)
    perm = shared_order(mask, g)
    assert sorted(perm.tolist()) == list(range(K))
    loads0, fmas0 = group_costs(mask, np.arange(K), g)
    loads, fmas = group_costs(mask, perm, g)
    assert fmas.sum() == fmas0.sum() == mask.sum()
    assert loads.sum() < loads0.sum()  # channels that share inputs load them once
    c0, c = loads0 + fmas0, loads + fmas
    assert c.max() < c0.max()
    assert c.max() <= 1.1 * c.mean()


def test_shared_order_groups_channels_that_read_the_same_inputs():
    # channels 0/2 read inputs 0-3, channels 1/3 read inputs 4-7: the natural pairs (0, 1) and
    # (2, 3) load all 8 inputs each, the shared pairs 4
    mask = np.zeros((4, 8), bool)
    mask[[0, 2], :4] = True
    mask[[1, 3], 4:] = True
    perm = shared_order(mask, 2)
    groups = {frozenset(perm[i:i + 2].tolist()) for i in (0, 2)}
    assert groups == {frozenset({0, 2}), frozenset({1, 3})}
    assert group_costs(mask, perm, 2)[0].tolist() == [4, 4]


def test_natural_order_is_none_and_bad_uses_are_refused():
    w = prune_random((8, 4, 1, 1), 0.5, seed=0)
    assert channel_order("natural", w, 4) is None
    assert sorted(channel_order("shared", w, 4).tolist()) == list(range(8))
    with pytest.raises(ValidationError, match="one of natural, shared"):
        channel_order("sorted", w, 4)
    with pytest.raises(ValidationError, match="divides the 8 output channels"):
        channel_order("shared", w, 3)
    with pytest.raises(ValidationError, match="convolution groups"):
        channel_order("shared", w, 4, groups=2)
    with pytest.raises(ValidationError, match="row tiles"):
        channel_order("shared", w, 4, tile=(2, 4))
