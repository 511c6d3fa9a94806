"""A float64 dense conv2d on the CPU: the reference every kernel is checked against."""

from __future__ import annotations

import numpy as np


def conv2d_reference(x, w, stride: int = 1, padding: int = 0, bias=None, relu: bool = False,
                     groups: int = 1) -> np.ndarray:
    """conv2d of NCHW ``x`` with (K, C / groups, R, S) ``w`` in float64 (same semantics as torch)."""
    return _conv(x, w, stride, padding, bias, relu, groups, _dense_tap)


def pruned_reference(x, w, stride: int = 1, padding: int = 0, bias=None, relu: bool = False,
                     groups: int = 1) -> np.ndarray:
    """conv2d in float64 where zero weights are absent rather than multiplied by.

    This is what an irprune kernel computes: a pruned weight contributes
    nothing, so a NaN or Inf input seen only by pruned weights does not reach
    the output (in :func:`conv2d_reference`, as in torch, 0 * NaN = NaN).
    For finite inputs the two agree.
    """
    return _conv(x, w, stride, padding, bias, relu, groups, _sparse_tap)


def _dense_tap(out, patch, wt) -> None:
    """out += every weight of tap ``wt`` (K, C) times the input it sees."""
    out += np.einsum("nchw,kc->nkhw", patch, wt)


def _sparse_tap(out, patch, wt) -> None:
    """The same, but only the nonzero weights are multiplied (so 0 x NaN never happens)."""
    for c in np.nonzero(np.any(wt != 0, axis=0))[0]:
        ks = np.nonzero(wt[:, c])[0]
        out[:, ks] += patch[:, c, None] * wt[ks, c][None, :, None, None]


def _conv(x, w, stride, padding, bias, relu, groups, tap) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    if groups > 1:
        Cg, Kg = w.shape[1], w.shape[0] // groups
        out = np.concatenate([_conv(x[:, i * Cg:(i + 1) * Cg], w[i * Kg:(i + 1) * Kg], stride,
                                    padding, None, False, 1, tap) for i in range(groups)], axis=1)
    else:
        N, C, H, W = x.shape
        K, _, R, S = w.shape
        xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
        OH = (H + 2 * padding - R) // stride + 1
        OW = (W + 2 * padding - S) // stride + 1
        out = np.zeros((N, K, OH, OW))
        for r in range(R):
            for s in range(S):
                patch = xp[:, :, r: r + stride * (OH - 1) + 1: stride, s: s + stride * (OW - 1) + 1: stride]
                tap(out, patch, w[:, :, r, s])
    if bias is not None:
        out += np.asarray(bias, dtype=np.float64).reshape(1, -1, 1, 1)
    return np.maximum(out, 0.0) if relu else out


def prune_random(shape, sparsity: float, seed: int = 0) -> np.ndarray:
    """Random normal float32 weights with the ``sparsity`` fraction of smallest magnitudes zeroed.

    Magnitude pruning of random normal values, as in ../shared/BENCHMARKS.md:
    random weights never hit values like 0.5 or 1.0 that compilers rewrite.
    """
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(shape).astype(np.float32)
    n = w.size
    k = int(round(sparsity * n))
    if k >= n:
        return np.zeros(shape, np.float32)
    if k > 0:
        idx = np.argsort(np.abs(w).reshape(-1), kind="stable")[:k]
        w.reshape(-1)[idx] = 0.0
    return w
