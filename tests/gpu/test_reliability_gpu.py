"""GPU checks of issue-6 behaviour: call-time validation on real arrays, pruned-weight
semantics, split (multi-part) kernels, and a fuzz batch with numerics on the GPU."""

from __future__ import annotations

import numpy as np
import pytest

import irprune
from irprune.errors import ValidationError
from irprune.reference import conv2d_reference, prune_random
from tests.semantics_cases import check_poisoned, poisoned_case

pytestmark = pytest.mark.gpu

W = prune_random((8, 4, 3, 3), 0.7, seed=1)
SHAPE = (2, 4, 9, 7)


@pytest.fixture(scope="module")
def kernel():
    return irprune.conv2d(W, SHAPE, padding=1, cache=False)


def x_host():
    return np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)


def refused(k, x, match, out=None):
    with pytest.raises(ValidationError, match=match) as info:
        k(x, out=out)
    assert "\n" not in str(info.value) and str(info.value).startswith("[launch]")


def test_numba_arrays_are_checked(kernel):
    from numba import cuda

    refused(kernel, cuda.to_device(np.zeros((2, 4, 9, 8), np.float32)), r"input has shape \(2, 4, 9, 8\)")
    refused(kernel, cuda.to_device(np.zeros(SHAPE, np.float64)), "dtype float64; convert it to float32")
    big = cuda.to_device(np.zeros((2, 4, 9, 14), np.float32))
    refused(kernel, big[:, :, :, ::2], "not C-contiguous")
    x = cuda.to_device(x_host())
    refused(kernel, x, r"out has shape", out=cuda.device_array((2, 8, 9, 8), np.float32))


def test_torch_tensors_are_checked(kernel):
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(x_host())
    refused(kernel, x, r"PyTorch tensor on cpu; move it to the GPU with \.cuda\(\)")
    xc = x.cuda()
    refused(kernel, xc.half(), "dtype float16")
    refused(kernel, xc.permute(0, 1, 3, 2).contiguous().permute(0, 1, 3, 2), "not C-contiguous")
    y = kernel(xc)
    ref = conv2d_reference(x.numpy(), W, 1, 1)
    assert np.max(np.abs(y.cpu().numpy() - ref)) / np.max(np.abs(ref)) < 1e-5


def test_out_overlapping_the_input_is_refused():
    torch = pytest.importorskip("torch")
    w = prune_random((4, 4, 1, 1), 0.5, seed=2)
    k = irprune.conv2d(w, (1, 4, 5, 5), cache=False)
    x = torch.randn(1, 4, 5, 5, device="cuda")
    refused(k, x, "out shares memory with the input", out=x)


def test_host_arrays_are_copied_and_checked(kernel):
    y = kernel(x_host())
    assert isinstance(y, np.ndarray) and y.shape == (2, 8, 9, 7)
    refused(kernel, x_host().astype(np.float64), "dtype float64")


def test_pointer_attribute_query_sees_this_gpu():
    from numba import cuda

    from irprune.validate import _pointer_device

    a = cuda.device_array(16, np.float32)
    assert _pointer_device(a.device_ctypes_pointer.value) == cuda.get_current_device().id
    host = np.zeros(16, np.float32)
    assert _pointer_device(host.ctypes.data) is None


@pytest.mark.parametrize("relu", [False, True])
def test_nan_inf_seen_only_by_pruned_weights_on_the_gpu(relu):
    w, b, x, expected, dense = poisoned_case(seed=3, relu=relu)
    k = irprune.conv2d(w, x.shape, padding=1, bias=b, relu=relu, cache=False)
    check_poisoned(np.asarray(k(x)), expected, dense)


def test_all_zero_weights_give_the_bias_on_the_gpu():
    b = np.arange(6, dtype=np.float32) - 3
    k = irprune.conv2d(np.zeros((6, 3, 3, 3), np.float32), (2, 3, 8, 8), padding=1, bias=b, cache=False)
    y = np.asarray(k(np.full((2, 3, 8, 8), np.nan, np.float32)))
    assert np.array_equal(y, np.broadcast_to(b[None, :, None, None], y.shape))


def test_a_split_kernel_runs_every_part(monkeypatch):
    monkeypatch.setenv("IRPRUNE_MAX_PART_NNZ", "200")
    w = prune_random((20, 8, 3, 3), 0.6, seed=4)
    b = np.random.default_rng(1).standard_normal(20).astype(np.float32)
    x = np.random.default_rng(2).standard_normal((3, 8, 10, 11)).astype(np.float32)
    for assemble in (False, True):
        k = irprune.conv2d(w, x.shape, stride=2, padding=1, bias=b, relu=True, group_size=3,
                           cache=False, assemble=assemble)
        assert len(k.parts) >= 3
        from numba import cuda

        out = cuda.to_device(np.full(k.geometry.output_shape, np.nan, np.float32))
        k(cuda.to_device(x), out=out)
        y = out.copy_to_host()
        ref = conv2d_reference(x, w, 2, 1, b, relu=True)
        assert not np.isnan(y).any()
        assert np.max(np.abs(y - ref)) / np.max(np.abs(ref)) < 1e-5


def test_fuzz_batch_on_the_gpu():
    from irprune.fuzz import fuzz, summarize

    res = fuzz(30, seed=11, device="gpu", max_weights=20_000)
    s = summarize(res)
    assert s["failed"] == 0, [r.detail for r in res if r.status == "failed"][:3]
    assert s["ok"] >= 20
