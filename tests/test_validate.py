"""Bad input is refused with one actionable line (irprune.validate), never compiled into a wrong kernel."""

from __future__ import annotations

import numpy as np
import pytest

import irprune
from irprune import launch, validate
from irprune.errors import LaunchError, ValidationError
from irprune.reference import prune_random

W = prune_random((4, 2, 3, 3), 0.5, seed=0)
SHAPE = (1, 2, 6, 6)


def refused(match, *args, **kwargs):
    """Compile with ``args``; assert a one-line ValidationError matching ``match``."""
    with pytest.raises(ValidationError, match=match) as info:
        irprune.conv2d(*args, cache=False, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("[validate]"), msg
    return msg


@pytest.mark.parametrize("weight, match", [
    (np.ones((4, 2, 3), np.float32), r"4-D \(K, C, R, S\); got 3-D"),
    (np.ones((4, 2, 3, 3), np.int32), "real floating.*int32"),
    (np.ones((4, 2, 3, 3), np.complex64), "real floating.*complex64"),
    (np.ones((4, 2, 3, 3), bool), "real floating.*bool"),
    (np.array([[["a"]]]), "4-D"),
    (np.ones((0, 2, 3, 3), np.float32), "empty dimension"),
])
def test_bad_weights(weight, match):
    refused(match, weight, SHAPE)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_in_weights(bad):
    w = W.copy()
    w[1, 1, 1, 1] = bad
    refused(r"1 NaN/Inf value\(s\); prune or replace", w, SHAPE)


def test_weights_beyond_float32_range():
    w = W.astype(np.float64)
    w[0, 0, 0, 0] = 1e300
    refused("beyond float32's range", w, SHAPE)


def test_float16_and_float64_weights_are_widened_or_narrowed_exactly():
    for dt in (np.float16, np.float64):
        k = irprune.conv2d(W.astype(dt), SHAPE, padding=1, cache=False)
        assert k.weight.dtype == np.float32 and np.array_equal(k.weight, W.astype(dt).astype(np.float32))


def test_channel_mismatch():
    refused("weight has 2 input channels but the input has 3", W, (1, 3, 6, 6))


@pytest.mark.parametrize("stride, match", [
    (0, "stride must be >= 1; got 0"), (-1, "stride must be >= 1"),
    (1.5, "stride must be an integer; got 1.5"), ("2", "stride must be an integer"),
    (True, "stride must be an integer; got True"), ((1, 2), r"stride \(1, 2\) differs"),
    ((1, 1, 1), "a pair"),
])
def test_bad_stride(stride, match):
    refused(match, W, SHAPE, stride=stride)


@pytest.mark.parametrize("padding, match", [
    (-1, "padding must be >= 0"), (3, "padding 3 is not smaller than the kernel"),
    (0.5, "padding must be an integer"), ("full", "'valid' or 'same'"),
    ((0, 1), "differs between height and width"),
])
def test_bad_padding(padding, match):
    refused(match, W, SHAPE, padding=padding)


def test_padding_same_needs_stride_1():
    refused("padding='same' needs stride 1", W, (1, 2, 8, 8), stride=2, padding="same")


def test_accepted_spellings_give_the_same_geometry():
    a = irprune.conv2d(W, SHAPE, stride=1, padding=1, cache=False).geometry
    for stride, padding in (((1, 1), (1, 1)), (1, "same"), (np.int64(1), 1.0)):
        assert irprune.conv2d(W, list(SHAPE), stride=stride, padding=padding, cache=False).geometry == a
    assert irprune.conv2d(W, SHAPE, padding="valid", cache=False).geometry.padding == 0


@pytest.mark.parametrize("shape, match", [
    ((1, 2, 2, 6), r"input 2x6 with padding 0 is smaller than the kernel 3x3"),
    ((1, 2, 6), "4 integers"), ((0, 2, 6, 6), "input_shape dimension must be >= 1"),
    ((1, 2, 6.5, 6), "must be an integer; got 6.5"), (None, "4 integers"),
])
def test_bad_input_shape(shape, match):
    refused(match, W, shape)


@pytest.mark.parametrize("kwargs, match", [
    ({"bias": np.ones(3, np.float32)}, r"bias must have 4 values.*got shape \(3,\)"),
    ({"bias": np.array([1, np.nan, 0, 0], np.float32)}, "bias holds 1 NaN/Inf"),
    ({"bias": np.ones(4, np.int64)}, "bias must be a real floating"),
    ({"relu": "yes"}, "relu must be True or False"),
    ({"group_size": 0}, r"group_size must be >= 1"), ({"group_size": 65}, "group_size must be <= 64"),
    ({"group_size": 2.5}, "group_size must be an integer"),
    ({"cpu": "sm90"}, "GPU architecture such as"), ({"cpu": "sm_35"}, "older than sm_50"),
])
def test_bad_options(kwargs, match):
    refused(match, W, SHAPE, **kwargs)


# -- call time: the checks themselves (CPU), and the launch path without a GPU -------------------

def cai(shape, typestr="<f4", strides=None, ptr=4096):
    return {"shape": shape, "typestr": typestr, "strides": strides, "data": (ptr, False), "version": 3}


def test_device_array_checks():
    s = (1, 2, 3, 3)
    assert validate.check_device_array(cai(s), s, "input") == 4096
    assert validate.check_device_array(cai(s, strides=(72, 36, 12, 4)), s, "input") == 4096
    # A dimension of extent 1 may have any stride (PyTorch gives such views).
    assert validate.check_device_array(cai(s, strides=(999, 36, 12, 4)), s, "input") == 4096
    cases = [
        (cai((1, 2, 3, 4)), r"input has shape \(1, 2, 3, 4\); expected \(1, 2, 3, 3\)"),
        (cai(s, "<f8"), "dtype float64; convert it to float32"),
        (cai(s, strides=(72, 4, 24, 8)), "not C-contiguous"),
        (cai(s, ptr=4098), "not 4-byte aligned"),
    ]
    for c, match in cases:
        with pytest.raises(ValidationError, match=match):
            validate.check_device_array(c, s, "input")


def test_batch_checks():
    assert validate.check_batch((5, 2, 3, 3), (2, 3, 3), "input") == 5
    for bad in [(5, 2, 3, 4), (0, 2, 3, 3), (2, 3, 3), (1, 5, 2, 3, 3)]:
        with pytest.raises(ValidationError, match=r"this kernel takes \(N, 2, 3, 3\) for any batch"):
            validate.check_batch(bad, (2, 3, 3), "input")


def test_host_memory_where_a_gpu_array_is_needed():
    FakeTensor = type("Tensor", (), {"__module__": "torch", "device": type("D", (), {"type": "cpu"})()})
    with pytest.raises(ValidationError, match=r"PyTorch tensor on .*\.cuda\(\)"):
        validate.cuda_interface(FakeTensor(), "input")
    with pytest.raises(ValidationError, match="must be a CUDA array.*got list"):
        validate.cuda_interface([1, 2], "input")


def test_memory_of_another_gpu_or_unknown_to_the_driver():
    validate.check_on_device(8, 0, "input", pointer_device=lambda p: 0)
    with pytest.raises(ValidationError, match="input is on GPU 1 but the current device is GPU 0"):
        validate.check_on_device(8, 0, "input", pointer_device=lambda p: 1)
    with pytest.raises(ValidationError, match="not CUDA memory"):
        validate.check_on_device(8, 0, "out", pointer_device=lambda p: None)


def test_array_device_reads_the_library_and_defers_to_the_driver_otherwise():
    Dev = type("D", (), {"type": "cuda", "index": 1})
    TorchLike = type("Tensor", (), {"__module__": "torch", "device": Dev()})
    CupyLike = type("ndarray", (), {"__module__": "cupy._core", "device": type("C", (), {"id": 2})()})
    assert validate.array_device(TorchLike()) == 1 and validate.array_device(CupyLike()) == 2
    assert validate.array_device(np.zeros(2)) is None


def test_out_overlapping_the_input():
    validate.check_no_overlap(0, 100, 100, 50)
    with pytest.raises(ValidationError, match="out shares memory with the input"):
        validate.check_no_overlap(0, 100, 96, 50)


def test_host_array_checks():
    with pytest.raises(ValidationError, match=r"out has shape \(2, 2\)"):
        validate.check_host_array(np.zeros((2, 2), np.float32), (1, 2), "out")
    with pytest.raises(ValidationError, match="dtype float64"):
        validate.check_host_array(np.zeros((1, 2)), (1, 2), "input")


def test_no_gpu_at_launch_says_how_to_compile_without_one(monkeypatch):
    monkeypatch.setattr(launch, "gpu_available", lambda: False)
    k = irprune.conv2d(W, SHAPE, padding=1, cache=False)
    with pytest.raises(LaunchError, match=r"no CUDA GPU is available; compiling needs none") as info:
        k(np.zeros(SHAPE, np.float32))
    assert "\n" not in str(info.value) and "asm" in str(info.value)
