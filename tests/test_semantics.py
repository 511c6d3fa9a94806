"""What pruned weights mean, checked on the CPU through the pruned IR (irprune.host_exec).

Pruned weights contribute nothing at all: an input position that only pruned
weights see is never read, so a NaN or Inf there does not reach the output
(a dense convolution would compute 0 * NaN = NaN). All-zero weights give the
bias, or zeros.
"""

from __future__ import annotations

import numpy as np
import pytest

from irprune.host_exec import run_on_host
from irprune.templates.conv2d import conv2d_nchw
from tests.semantics_cases import check_poisoned, poisoned_case


@pytest.mark.parametrize("relu", [False, True])
def test_nan_inf_seen_only_by_pruned_weights_do_not_reach_the_output(relu):
    w, b, x, expected, dense = poisoned_case(seed=1, relu=relu)
    k = conv2d_nchw.compile(w, x.shape, 1, 1, bias=b, relu=relu, cache=False, group_size=4)
    check_poisoned(run_on_host(k, x), expected, dense)


def test_a_dense_reference_would_propagate_them():
    """The difference is real: with every weight kept, the same input poisons more outputs."""
    w, b, x, expected, _ = poisoned_case(seed=1)
    dense = np.where(w == 0, np.float32(1e-3), w)
    k = conv2d_nchw.compile(dense, x.shape, 1, 1, bias=b, cache=False)
    y = run_on_host(k, x)
    assert (~np.isfinite(y)).sum() > (~np.isfinite(expected)).sum()


@pytest.mark.parametrize("with_bias", [False, True])
def test_all_zero_weights_give_the_bias_or_zeros(with_bias):
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 4)).astype(np.float32)
    x[0, 0, 0, 0] = np.nan  # nothing reads the input at all
    b = np.arange(5, dtype=np.float32) - 2 if with_bias else None
    k = conv2d_nchw.compile(np.zeros((5, 3, 3, 3), np.float32), x.shape, 1, 1, bias=b, cache=False)
    assert k.stats["fma_ptx"] == 0
    y = run_on_host(k, x)
    want = np.broadcast_to((b if with_bias else np.zeros(5, np.float32))[None, :, None, None], y.shape)
    assert np.array_equal(y, want)
