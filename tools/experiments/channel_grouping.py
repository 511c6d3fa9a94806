"""The groupings channel_groups_ab.py measures: ``balanced`` (channels by nonzeros, dealt to the
groups in a snake order) here, and ``shared``, irprune.channel_order's (the experiment measured
it first as a copy of this file's; the library's is the same permutation)."""
import numpy as np

from irprune.channel_order import group_costs, shared_order as shared  # noqa: F401 (re-exported)


def balanced(mask, g):
    """A permutation of the K channels of ``mask`` whose runs of ``g`` are groups of nearly equal
    nonzeros (largest first, dealt forwards then backwards)."""
    K = mask.shape[0]
    G = K // g
    order = np.argsort(-mask.sum(1), kind="stable")
    groups = [[] for _ in range(G)]
    for i, k in enumerate(order):
        r, j = divmod(i, G)
        groups[j if r % 2 == 0 else G - 1 - j].append(int(k))
    return np.array([k for grp in groups for k in grp])
