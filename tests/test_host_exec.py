"""The pruned IR run on the CPU (irprune.host_exec) against the float64 reference.

This is the numerical check of lowering and passes that CI can run without a
GPU: channel-group regions (full and ragged), strides, padding, bias, ReLU,
all-zero and dense weights.
"""

from __future__ import annotations

import numpy as np
import pytest

from irprune.host_exec import host_module_text, run_on_host
from irprune.reference import conv2d_reference, prune_random
from irprune.templates.conv2d import conv2d_nchw

CASES = [
    # K, C, H, W, R, stride, padding, group_size, sparsity
    (8, 4, 8, 8, 3, 1, 1, 4, 0.7),     # two full groups
    (10, 3, 7, 9, 3, 2, 1, 4, 0.5),    # ragged last group, stride 2, non-square
    (5, 2, 6, 6, 1, 1, 0, 2, 0.0),     # dense 1x1, ragged
    (6, 3, 8, 8, 5, 1, 2, None, 0.9),  # default group size
    (7, 2, 5, 5, 3, 1, 1, 3, 1.0),     # every weight pruned: bias (through ReLU) only
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "K{}C{}H{}W{}R{}s{}p{}g{}z{}".format(*c))
def test_pruned_ir_computes_the_convolution(case):
    K, C, H, W, R, stride, padding, gs, sparsity = case
    rng = np.random.default_rng(K * 100 + C)
    w = prune_random((K, C, R, R), sparsity, seed=K)
    b = rng.standard_normal(K).astype(np.float32)
    x = rng.standard_normal((2, C, H, W)).astype(np.float32)
    k = conv2d_nchw.compile(w, x.shape, stride, padding, bias=b, relu=True, cache=False,
                            group_size=gs)
    y = run_on_host(k, x)
    ref = conv2d_reference(x, w, stride, padding, b, relu=True)
    assert not np.isnan(y).any(), "some output was never written"
    err = np.max(np.abs(y - ref)) / max(1e-30, np.max(np.abs(ref)))
    assert err < 1e-5


def test_a_wrong_weight_is_caught():
    """The check can fail: a kernel compiled for other weights disagrees with the reference."""
    w = prune_random((4, 2, 3, 3), 0.5, seed=3)
    x = np.random.default_rng(0).standard_normal((1, 2, 6, 6)).astype(np.float32)
    k = conv2d_nchw.compile(w, x.shape, 1, 1, cache=False, group_size=2)
    w2 = w.copy()
    w2[3, 1, 2, 2] += 0.5
    assert np.max(np.abs(run_on_host(k, x) - conv2d_reference(x, w2, 1, 1))) > 1e-3


def test_host_text_has_no_gpu_registers():
    w = prune_random((4, 2, 3, 3), 0.5, seed=3)
    k = conv2d_nchw.compile(w, (1, 2, 6, 6), 1, 1, cache=False, group_size=2)
    text, name = host_module_text(k.asm["llvm-pruned"])
    assert "call i32 @llvm.nvvm.read.ptx.sreg" not in text and "ptx_kernel" not in text
    assert name == k.kernel_name


def test_one_kernel_serves_every_batch_size():
    """The batch is a kernel parameter: a kernel compiled at N=2 computes batches 1, 3 and 5."""
    w = prune_random((6, 3, 3, 3), 0.6, seed=5)
    b = np.linspace(-1, 1, 6).astype(np.float32)
    k = conv2d_nchw.compile(w, (2, 3, 7, 6), 2, 1, bias=b, cache=False, group_size=4)
    rng = np.random.default_rng(1)
    for n in (1, 3, 5):
        x = rng.standard_normal((n, 3, 7, 6)).astype(np.float32)
        y = run_on_host(k, x)
        assert y.shape == (n, 6, 4, 3) and not np.isnan(y).any()
        ref = conv2d_reference(x, w, 2, 1, b)
        assert np.max(np.abs(y - ref)) / np.max(np.abs(ref)) < 1e-5, f"batch {n}"


def test_the_batch_is_not_in_the_code():
    """Kernels for N=1 and N=16 of one layer are the same code (and one cache entry)."""
    w = prune_random((4, 2, 3, 3), 0.5, seed=3)
    k1 = conv2d_nchw.compile(w, (1, 2, 6, 6), 1, 1, cache=False, group_size=2)
    k16 = conv2d_nchw.compile(w, (16, 2, 6, 6), 1, 1, cache=False, group_size=2)
    assert k1.asm["ptx"] == k16.asm["ptx"]
    assert "%irp.batch" in k1.asm["llvm-pruned"]
    # 36 output pixels per image, 128 threads a block: 1 block at N=1, 5 at N=16.
    assert k1.part_launches()[0][1][0] == 1 and k16.part_launches()[0][1][0] == 5
    assert k1.part_launches(16)[0][1] == k16.part_launches()[0][1]


def test_host_barrier_lets_exited_threads_go_and_breaks_when_one_never_comes(monkeypatch):
    import threading

    from irprune import host_exec

    b = host_exec._BlockBarrier(2)
    b.leave()  # one thread returned before the barrier: the other does not wait for it
    b.wait()
    assert not b.broken
    monkeypatch.setattr(host_exec, "BARRIER_TIMEOUT", 0.2)
    b = host_exec._BlockBarrier(2)
    t = threading.Thread(target=b.wait)
    t.start()
    t.join(5)
    assert not t.is_alive() and b.broken  # the other thread neither came nor returned
