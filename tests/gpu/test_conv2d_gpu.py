"""GPU checks: compiled kernels compute the dense convolution (float64 reference).

Marked ``gpu``: skipped with a reason where no GPU is present, run on the lent
H100/H200 by tools/gpu_check.sh. Every output buffer is poisoned with NaN
first, so an element the kernel fails to write fails the test.
"""

from __future__ import annotations

import numpy as np
import pytest

import irprune
from irprune.reference import conv2d_reference, prune_random
from tests.conftest import GEOMETRIES

pytestmark = pytest.mark.gpu

RTOL = 1e-5


def rel_err(out, ref) -> float:
    out = np.asarray(out, dtype=np.float64)
    denom = np.linalg.norm(ref)
    return float(np.linalg.norm(out - ref) / (denom if denom > 0 else 1.0))


def run_poisoned(k, x):
    from numba import cuda

    out = cuda.to_device(np.full(k.geometry.output_shape, np.nan, np.float32))
    k(cuda.to_device(x), out=out)
    return out.copy_to_host()


CASES = [(g, s) for g in GEOMETRIES for s in (0.0, 0.5, 0.9, 0.99, 1.0)]


@pytest.mark.parametrize("geom,sparsity", CASES)
@pytest.mark.parametrize("bias,relu", [(False, False), (True, True)])
def test_matches_float64_reference(geom, sparsity, bias, relu):
    wshape, ishape, stride, pad = GEOMETRIES[geom]
    rng = np.random.default_rng()
    w = prune_random(wshape, sparsity, seed=int(rng.integers(1 << 30)))
    b = rng.standard_normal(wshape[0]).astype(np.float32) if bias else None
    k = irprune.conv2d(w, ishape, stride=stride, padding=pad, bias=b, relu=relu)
    for _ in range(2):  # fresh inputs each time: the code must compute the function
        x = rng.standard_normal(ishape).astype(np.float32)
        out = run_poisoned(k, x)
        assert not np.isnan(out).any(), "some output elements were never written"
        ref = conv2d_reference(x, w, stride, pad, b, relu)
        if sparsity == 1.0 and not bias:
            assert np.all(out == 0.0)
        else:
            assert rel_err(out, ref) < RTOL


def test_numpy_in_numpy_out():
    wshape, ishape, stride, pad = GEOMETRIES["3x3_pad"]
    w = prune_random(wshape, 0.9, seed=3)
    k = irprune.conv2d(w, ishape, stride=stride, padding=pad)
    x = np.random.default_rng(0).standard_normal(ishape).astype(np.float32)
    out = k(x)
    assert isinstance(out, np.ndarray)
    assert rel_err(out, conv2d_reference(x, w, stride, pad)) < RTOL


def test_torch_and_cupy_arrays_round_trip():
    wshape, ishape, stride, pad = GEOMETRIES["batch3"]
    w = prune_random(wshape, 0.8, seed=4)
    k = irprune.conv2d(w, ishape, stride=stride, padding=pad)
    x = np.random.default_rng(1).standard_normal(ishape).astype(np.float32)
    ref = conv2d_reference(x, w, stride, pad)
    ran = 0
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None and torch.cuda.is_available():
        out = k(torch.from_numpy(x).cuda())
        assert isinstance(out, torch.Tensor) and out.is_cuda
        torch.cuda.synchronize()
        assert rel_err(out.cpu().numpy(), ref) < RTOL
        ran += 1
    try:
        import cupy
    except ImportError:
        cupy = None
    if cupy is not None:
        out = k(cupy.asarray(x))
        assert isinstance(out, cupy.ndarray)
        assert rel_err(cupy.asnumpy(out), ref) < RTOL
        ran += 1
    if not ran:
        pytest.skip("neither torch nor cupy is installed")


def test_pruned_weights_do_not_propagate_nan():
    # A NaN seen only by pruned weights must not reach the output.
    w = np.zeros((2, 2, 1, 1), np.float32)
    w[:, 0] = np.array([[[1.5]], [[-0.75]]], np.float32)  # channel 1 fully pruned
    k = irprune.conv2d(w, (1, 2, 4, 4))
    x = np.random.default_rng(2).standard_normal((1, 2, 4, 4)).astype(np.float32)
    x[:, 1] = np.nan
    out = run_poisoned(k, x)
    assert np.isfinite(out).all()
    ref = conv2d_reference(x[:, :1], w[:, :1])
    assert rel_err(out, ref) < RTOL


def test_seed_layer_resnet_3x3_56_at_90_percent():
    w = prune_random((64, 64, 3, 3), 0.9, seed=7)
    k = irprune.conv2d(w, (1, 64, 56, 56), padding=1)
    x = np.random.default_rng(3).standard_normal((1, 64, 56, 56)).astype(np.float32)
    out = run_poisoned(k, x)
    assert rel_err(out, conv2d_reference(x, w, 1, 1)) < RTOL


def test_dense_template_runs_as_plain_numba():
    from numba import cuda

    from irprune.templates.conv2d import conv2d_nchw

    wshape, ishape, stride, pad = GEOMETRIES["stride2"]
    w = prune_random(wshape, 0.0, seed=8)
    g = irprune.ConvGeometry.from_weight(wshape, ishape, stride, pad)
    x = np.random.default_rng(4).standard_normal(ishape).astype(np.float32)
    y = cuda.to_device(np.full(g.output_shape, np.nan, np.float32))
    gs = 4
    grid = (-(-g.N * g.OH * g.OW // 128), -(-g.K // gs))
    # One row of threads, then three that split the input channels (their
    # partial sums in dynamic shared memory, sized at launch).
    for slices in (1, 3):
        y = cuda.to_device(np.full(g.output_shape, np.nan, np.float32))
        shared = 4 * (slices - 1) * gs * 128
        conv2d_nchw[grid, (128, slices), 0, shared](
            cuda.to_device(x), cuda.to_device(w), cuda.to_device(np.zeros(0, np.float32)),
            y, stride, pad, False, gs, slices)
        assert rel_err(y.copy_to_host(), conv2d_reference(x, w, stride, pad)) < RTOL, slices


@pytest.mark.parametrize("sparsity", [0.0, 0.7, 1.0])
def test_user_template_with_fused_epilogue(sparsity):
    from tests.user_templates import conv2d_relu6

    rng = np.random.default_rng()
    w = prune_random((6, 3, 3, 3), sparsity, seed=int(rng.integers(1 << 30))) * 2
    b = rng.standard_normal(6).astype(np.float32)
    k = conv2d_relu6.compile(w, (2, 3, 9, 7), stride=2, padding=1, bias=b, group_size=4)
    x = rng.standard_normal((2, 3, 9, 7)).astype(np.float32)
    out = run_poisoned(k, x)
    ref = np.clip(conv2d_reference(x, w, 2, 1, b), 0.0, 6.0)
    assert not np.isnan(out).any()
    assert rel_err(out, ref) < RTOL


@pytest.mark.gpu
@pytest.mark.ptxas
def test_cubin_from_ptxas_is_what_gets_loaded(tmp_path):
    """A kernel assembled by ptxas (and one loaded back from the cache) runs from its cubin."""
    w = prune_random((8, 4, 3, 3), 0.8, seed=21)
    x = np.random.default_rng(2).standard_normal((2, 4, 9, 7)).astype(np.float32)
    ref = conv2d_reference(x, w, 1, 1)
    for _ in range(2):  # compiled, then from the cache
        k = irprune.conv2d(w, x.shape, padding=1, cache=tmp_path, assemble=True)
        assert k.cubin is not None
        y = k(x)
        assert np.linalg.norm(y - ref) / np.linalg.norm(ref) < 1e-5
    assert k.stats["cached"]


def test_one_kernel_runs_every_batch_size():
    """Compiled at N=2, the kernel computes batches 1, 5 and 300 (Numba arrays and numpy)."""
    from numba import cuda

    w = prune_random((12, 5, 3, 3), 0.8, seed=7)
    b = np.linspace(-1, 1, 12).astype(np.float32)
    k = irprune.conv2d(w, (2, 5, 6, 5), padding=1, bias=b, relu=True)
    rng = np.random.default_rng(2)
    for n in (1, 5, 300):
        x = rng.standard_normal((n, 5, 6, 5)).astype(np.float32)
        out = cuda.to_device(np.full((n, 12, 6, 5), np.nan, np.float32))
        k(cuda.to_device(x), out=out)
        ref = conv2d_reference(x, w, 1, 1, b, relu=True)
        got = out.copy_to_host()
        assert not np.isnan(got).any(), f"batch {n}: outputs never written"
        assert rel_err(got, ref) < RTOL, f"batch {n}"
        assert rel_err(k(x), ref) < RTOL  # numpy in, numpy out
    with pytest.raises(irprune.ValidationError, match=r"takes \(N, 5, 6, 5\) for any batch"):
        k(np.zeros((2, 5, 6, 6), np.float32))


@pytest.mark.parametrize("geom", sorted(GEOMETRIES))
@pytest.mark.parametrize("slices,group_size,block", [(2, 4, 32), (3, 5, 64), (8, 8, 128)])
def test_sliced_kernels_match_float64_reference(geom, slices, group_size, block):
    """Input channels split over rows of threads: every block size, a ragged last group, batches."""
    wshape, ishape, stride, pad = GEOMETRIES[geom]
    slices = min(slices, wshape[1])
    rng = np.random.default_rng(slices * 100 + group_size)
    w = prune_random(wshape, 0.7, seed=int(rng.integers(1 << 30)))
    b = rng.standard_normal(wshape[0]).astype(np.float32)
    # 1024 threads a block leave 64 registers a thread: the default budget (128) may not launch.
    k = irprune.conv2d(w, ishape, stride=stride, padding=pad, bias=b, relu=True,
                       group_size=min(group_size, wshape[0]), slices=slices,
                       max_registers=64 if slices * block > 512 else 128)
    k.block = block
    for n in (1, 3):
        x = rng.standard_normal((n, *ishape[1:])).astype(np.float32)
        out = run_poisoned_batch(k, x)
        assert not np.isnan(out).any(), "some output elements were never written"
        assert rel_err(out, conv2d_reference(x, w, stride, pad, b, True)) < RTOL


def test_a_block_over_the_loaded_kernels_registers_is_refused_in_one_line():
    """The driver's count for a kernel JIT-compiled from PTX (no ptxas here) bounds the block."""
    w = prune_random((16, 64, 1, 1), 0.5, seed=2)
    k = irprune.conv2d(w, (1, 64, 8, 8), group_size=4, slices=8, max_registers=255)
    k.block = 128  # 1024 threads: fine below 64 registers a thread
    x = np.random.default_rng(2).standard_normal((1, 64, 8, 8)).astype(np.float32)
    try:
        out = run_poisoned_batch(k, x)
    except irprune.ValidationError as exc:
        assert "registers a thread allow at most" in str(exc) and "\n" not in str(exc)
        return
    assert rel_err(out, conv2d_reference(x, w, 1, 0)) < RTOL  # ptxas kept it under 64


def run_poisoned_batch(k, x):
    from numba import cuda

    g = k.geometry
    out = cuda.to_device(np.full((x.shape[0], g.K, g.OH, g.OW), np.nan, np.float32))
    k(cuda.to_device(x), out=out)
    return out.copy_to_host()
