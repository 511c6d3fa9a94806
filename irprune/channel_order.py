"""Which output channels share a code region: the order the layer's channels are grouped in.

A kernel's code region computes ``group_size`` output channels: its threads load the union of
the input positions those channels' nonzeros read, and run one FMA per nonzero. In their
natural order (channels ``k0 .. k0 + group_size - 1`` together) the regions' work spreads with
the channels' nonzero counts (at sparsity 0.9 the largest region's loads + FMAs are 1.05-1.22x
the mean on the bench's tuned configurations) and a region loads an input position for each
of its channels that reads it. The ``shared`` order groups channels by their nonzeros instead:
each channel, largest first, joins the group it adds the fewest new input positions to, under
a cap on a group's loads + FMAs. On the bench's layers that is 3-17% fewer input loads and
the largest region within 1.01-1.07x of the mean (docs/perf-log.md, "Output channels grouped
by their nonzeros").

The kernel still writes channel ``k`` of the output where the layer's channel ``k`` belongs:
it is compiled from the weights in the new order and the pass ``place-output-channels`` moves
each output store of a region to its channel's place (a constant offset: no index array).
"""

from __future__ import annotations

import numpy as np

from .errors import ValidationError

#: The channel orders a kernel can be compiled with.
ORDERS = ("natural", "shared")
#: How far above the mean a group's loads + FMAs may go while a channel looks for the group
#: that shares the most of its input positions (then the least loaded group takes it).
SLACK = 1.03
#: Rounds of the grouping, each with the cap from the round before; the best is kept.
ROUNDS = 3


def group_costs(mask: np.ndarray, order: np.ndarray, group_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(input positions loaded, nonzeros) of each group when the channels of ``mask`` (K x
    positions, True where a weight is nonzero) are taken in ``order``, ``group_size`` a group."""
    m = mask[np.asarray(order)].reshape(-1, group_size, mask.shape[1])
    return m.any(1).sum(1), m.sum((1, 2))


def shared_order(mask: np.ndarray, group_size: int) -> np.ndarray:
    """The ``shared`` order of the K channels of ``mask`` (see the module's docstring): a
    permutation whose consecutive runs of ``group_size`` channels are the groups."""
    K, D = mask.shape
    G = K // group_size
    nnz = mask.sum(1)
    by_size = np.argsort(-nnz, kind="stable")
    big = D * (group_size + 1) + 1  # above any group's loads + FMAs: keys sort by two numbers
    cap = None
    best = None
    for _ in range(ROUNDS):
        union = np.zeros((G, D), bool)
        cost = np.zeros(G, np.int64)
        size = np.zeros(G, np.int64)
        groups: list[list[int]] = [[] for _ in range(G)]
        for k in by_size:
            added = (mask[k] & ~union).sum(1)
            new = cost + added + nnz[k]
            room = size < group_size
            if cap is None:  # the first round balances only: the least loaded group
                key = np.where(room, new * big + added, np.iinfo(np.int64).max)
            else:  # then the most shared group that stays under the cap
                fits = room & (new <= cap)
                key = np.where(fits if fits.any() else room, added * big + new,
                               np.iinfo(np.int64).max)
            j = int(np.argmin(key))
            union[j] |= mask[k]
            cost[j] = new[j]
            size[j] += 1
            groups[j].append(int(k))
        order = np.array([k for grp in groups for k in grp], dtype=np.int64)
        loads, fmas = group_costs(mask, order, group_size)
        c = loads + fmas
        score = (int(c.max()), int(loads.sum()))
        if best is None or score < best[0]:
            best = (score, order)
        cap = int(c.mean() * SLACK)
    return best[1]


def channel_order(order: str, weight: np.ndarray, group_size: int, groups: int = 1,
                  tile=None) -> np.ndarray | None:
    """The channels in the order their kernel computes them (a permutation of range(K)), or None
    for the natural order. Refuses, in one line, what the order cannot be used with."""
    check_channel_order(order, weight.shape[0], group_size, groups, tile)
    return permutation(order, weight, group_size)


def permutation(order: str, weight: np.ndarray, group_size: int) -> np.ndarray | None:
    """:func:`channel_order` of an order already checked (check_channel_order)."""
    if order == "natural":
        return None
    K = weight.shape[0]
    perm = shared_order(weight.reshape(K, -1) != 0, group_size)
    return None if np.array_equal(perm, np.arange(K)) else perm


def check_channel_order(order: str, K: int, group_size: int, groups: int = 1, tile=None) -> None:
    """Refuse, in one line, an order that is not known or cannot be used with this layout (before
    any work: the grouping itself runs only when the kernel is not in the cache)."""
    if order not in ORDERS:
        raise ValidationError(f"channel_order must be one of {', '.join(ORDERS)}, got {order!r}",
                              stage="validate")
    if order == "natural":
        return
    if K % group_size:
        raise ValidationError(f"channel_order='shared' needs a group size that divides the "
                              f"{K} output channels, got {group_size}; pick a divisor or "
                              "channel_order='natural'", stage="validate")
    if groups != 1:
        raise ValidationError("channel_order='shared' is for layers without convolution groups; "
                              "use channel_order='natural'", stage="validate")
    if tile:
        raise ValidationError("channel_order='shared' is for the pixel layout, not row tiles; "
                              "use channel_order='natural'", stage="validate")
