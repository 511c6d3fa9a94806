"""Cases for the documented semantics of pruned weights (docs/reliability.md), shared by CPU and GPU tests."""

from __future__ import annotations

import numpy as np

from irprune.reference import conv2d_reference, prune_random, pruned_reference


def poisoned_case(seed: int = 0, relu: bool = False):
    """A sparse layer and an input with NaN/Inf at positions, some seen only by pruned weights.

    Returns (weight, bias, x, expected, dense): ``expected`` is
    :func:`pruned_reference` (pruned weights absent), ``dense`` the float64
    dense conv, which propagates the NaN/Inf to more outputs.
    """
    rng = np.random.default_rng(seed)
    K, C, H, W = 6, 3, 9, 8
    w = prune_random((K, C, 3, 3), 0.8, seed=seed)
    b = rng.standard_normal(K).astype(np.float32)
    x = rng.standard_normal((2, C, H, W)).astype(np.float32)
    for n, c, h, ww, v in ((0, 0, 4, 3, np.nan), (1, 2, 0, 7, np.inf), (1, 1, 5, 5, -np.inf)):
        x[n, c, h, ww] = v
    with np.errstate(invalid="ignore"):
        expected = pruned_reference(x, w, 1, 1, b, relu=relu)
        dense = conv2d_reference(x, w, 1, 1, b, relu=relu)
    return w, b, x, expected, dense


def check_poisoned(y: np.ndarray, expected: np.ndarray, dense: np.ndarray) -> None:
    """``y`` equals ``expected`` (NaN where it is NaN, the same Inf where it is Inf, close elsewhere)."""
    finite = np.isfinite(expected)
    assert (~finite).any() and (np.isnan(dense) & finite).any(), \
        "the case must poison some outputs and spare some that a dense conv would poison"
    assert np.array_equal(np.isnan(y), np.isnan(expected)), "NaN where the pruned semantics has none, or missing"
    inf = np.isinf(expected)
    assert np.array_equal(y[inf], expected[inf].astype(np.float32)), "Inf outputs differ"
    err = np.max(np.abs(y[finite] - expected[finite])) / np.max(np.abs(expected[finite]))
    assert err < 1e-5, err
