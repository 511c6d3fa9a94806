"""Every check on what a caller passes in, before anything is compiled or launched.

Each check raises :class:`~irprune.errors.ValidationError` (stage
``"validate"`` at compile time, ``"launch"`` at call time) with one line that
says what was wrong and what to do. Nothing here guesses: an input that could
be read two ways (a stride of 1.5, a weight of integers) is refused rather
than converted into a silently different layer.
"""

from __future__ import annotations

import numbers
import re

import numpy as np

from .errors import ValidationError

_ARCH = re.compile(r"^sm_(\d{2,3})[a-f]?$")


def _fail(msg: str, stage: str = "validate"):
    raise ValidationError(msg, stage=stage)


def _host_array(value, what: str) -> np.ndarray:
    """``value`` as a numpy array, copying PyTorch, CuPy and Numba device arrays to the host."""
    mod = type(value).__module__.split(".")[0]
    if mod == "torch":
        t = value.detach()
        if not t.is_floating_point():
            _fail(f"{what} must be a real floating tensor; got {t.dtype}")
        # float16/bfloat16 widen exactly to float32 (numpy has no bfloat16).
        return (t.float() if t.dtype.itemsize < 4 else t).cpu().numpy()
    if hasattr(value, "__cuda_array_interface__"):
        if hasattr(value, "copy_to_host"):
            return value.copy_to_host()
        if hasattr(value, "get"):
            return value.get()
    try:
        return np.asarray(value)
    except Exception as exc:
        _fail(f"{what} must be an array of numbers; got {type(value).__name__} ({exc})")


def _check_real_float(a: np.ndarray, what: str) -> None:
    if a.dtype.kind != "f":
        _fail(f"{what} must be a real floating array (float16/32/64); got dtype {a.dtype}")


def _finite_as_float32(a: np.ndarray, what: str) -> np.ndarray:
    if not np.all(np.isfinite(a)):
        bad = int(a.size - np.count_nonzero(np.isfinite(a)))
        _fail(f"{what} holds {bad} NaN/Inf value(s); prune or replace them before compiling")
    big = float(np.max(np.abs(a))) if a.size else 0.0
    if big > float(np.finfo(np.float32).max):
        _fail(f"{what} holds values beyond float32's range (|w| up to {big:.3g}); "
              "rescale the layer before compiling")
    return np.ascontiguousarray(a, dtype=np.float32)


def check_weight(weight) -> np.ndarray:
    """``weight`` as a C-contiguous float32 (K, C, R, S) array with finite values.

    Accepts numpy arrays and PyTorch, CuPy or Numba arrays (copied to the host).
    """
    w = _host_array(weight, "weight")
    if w.ndim != 4:
        _fail(f"weight must be 4-D (K, C, R, S); got {w.ndim}-D shape {w.shape}")
    _check_real_float(w, "weight")
    if w.size == 0:
        _fail(f"weight has an empty dimension: shape {w.shape}")
    return _finite_as_float32(w, "weight")


def check_bias(bias, channels: int) -> np.ndarray | None:
    """``bias`` as a float32 array of ``channels`` finite values, or None."""
    if bias is None:
        return None
    b = _host_array(bias, "bias")
    _check_real_float(b, "bias")
    if b.ndim != 1 or b.shape[0] != channels:
        _fail(f"bias must have {channels} values (one per output channel); got shape {b.shape}")
    return _finite_as_float32(b, "bias")


def check_int(value, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int; refuses bools, non-integral floats and strings."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer():
            value = int(value)
        else:
            _fail(f"{name} must be an integer; got {value!r}")
    v = int(value)
    if minimum is not None and v < minimum:
        _fail(f"{name} must be >= {minimum}; got {v}")
    if maximum is not None and v > maximum:
        _fail(f"{name} must be <= {maximum}; got {v}")
    return v


def check_pair(value, name: str, minimum: int) -> int:
    """An int, or a pair of equal ints as ``nn.Conv2d`` takes them, as one int."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            _fail(f"{name} must be an integer or a pair (h, w); got {tuple(value)}")
        a, b = (check_int(v, name, minimum) for v in value)
        if a != b:
            _fail(f"{name} {tuple(value)} differs between height and width; irprune compiles "
                  f"the same {name} in both directions")
        return a
    return check_int(value, name, minimum)


def check_padding(padding, stride: int, kernel: tuple[int, int]) -> int:
    """Padding as an int: ints, equal pairs, ``"valid"`` (0) and ``"same"`` (odd square kernels, stride 1).

    Padding as large as the kernel is refused: output borders would see only padding.
    """
    R, S = kernel
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return 0
        if mode == "same":
            if stride != 1 or R != S or R % 2 == 0:
                _fail(f"padding='same' needs stride 1 and an odd square kernel; got stride "
                      f"{stride}, kernel {R}x{S}: pass an explicit padding")
            return R // 2
        _fail(f"padding must be an integer, a pair, 'valid' or 'same'; got {padding!r}")
    p = check_pair(padding, "padding", 0)
    if p >= max(R, S):
        _fail(f"padding {p} is not smaller than the kernel ({R}x{S}): output borders would "
              f"see only padding; use padding <= {max(R, S) - 1}")
    return p


def check_shape(shape, name: str, ndim: int = 4) -> tuple[int, ...]:
    """A shape of ``ndim`` positive integers (a tuple, list or torch.Size)."""
    try:
        dims = tuple(shape)
    except TypeError:
        _fail(f"{name} must be {ndim} integers N,C,H,W; got {shape!r}")
    if len(dims) != ndim:
        _fail(f"{name} must be {ndim} integers N,C,H,W; got {dims}")
    return tuple(check_int(d, f"{name} dimension", 1) for d in dims)


def check_flag(value, name: str) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    _fail(f"{name} must be True or False; got {value!r}")


def check_arch(cpu: str) -> str:
    """A GPU architecture name such as ``sm_90``."""
    if not isinstance(cpu, str) or not _ARCH.match(cpu):
        _fail(f"cpu must name a GPU architecture such as 'sm_80' or 'sm_90'; got {cpu!r}")
    if int(_ARCH.match(cpu).group(1)) < 50:
        _fail(f"architecture {cpu} is older than sm_50, which the CUDA 13 toolchain no longer "
              "targets; use sm_50 or later")
    return cpu


# -- call time -----------------------------------------------------------------------------

def _describe_host(arr) -> str | None:
    """A reason why ``arr`` is host memory where a GPU array is needed, or None."""
    mod = type(arr).__module__.split(".")[0]
    if mod == "torch" and getattr(arr, "device", None) is not None and arr.device.type != "cuda":
        return (f"is a PyTorch tensor on {arr.device}; move it to the GPU with .cuda() "
                "(or pass a numpy array, which irprune copies)")
    return None


def cuda_interface(arr, what: str) -> dict:
    """``arr.__cuda_array_interface__``, or a one-line error naming what to pass instead."""
    cai = getattr(arr, "__cuda_array_interface__", None)
    if cai is None:
        why = _describe_host(arr)
        if why:
            _fail(f"{what} {why}", "launch")
        _fail(f"{what} must be a CUDA array (Numba, CuPy, PyTorch) or a numpy array; got "
              f"{type(arr).__name__}", "launch")
    return cai


def check_batch(shape, per_image: tuple, what: str) -> int:
    """The batch size of an array of ``shape`` that must be (N, *per_image) with N >= 1."""
    shape = tuple(shape)
    if len(shape) != 1 + len(per_image) or shape[1:] != tuple(per_image) or shape[0] < 1:
        dims = ", ".join(map(str, per_image))
        _fail(f"{what} has shape {shape}; this kernel takes (N, {dims}) for any batch N >= 1",
              "launch")
    return int(shape[0])


def check_device_array(cai: dict, shape: tuple, what: str) -> int:
    """Check a CUDA array's shape, dtype and layout; return its data pointer."""
    if tuple(cai["shape"]) != tuple(shape):
        _fail(f"{what} has shape {tuple(cai['shape'])}; expected {tuple(shape)}", "launch")
    if np.dtype(cai["typestr"]) != np.float32:
        _fail(f"{what} has dtype {np.dtype(cai['typestr'])}; convert it to float32", "launch")
    strides = cai.get("strides")
    if strides is not None:
        expect, acc = [], 4
        for d in reversed(shape):
            expect.append(acc)
            acc *= d
        expect = tuple(reversed(expect))
        # A dimension of extent 1 may carry any stride: it is never stepped over.
        if any(s != e for s, e, d in zip(strides, expect, shape) if d > 1):
            _fail(f"{what} is not C-contiguous (strides {tuple(strides)}); pass a contiguous "
                  "copy (.contiguous() / numpy.ascontiguousarray)", "launch")
    ptr = int(cai["data"][0])
    if ptr % 4:
        _fail(f"{what}'s data is not 4-byte aligned; pass a fresh float32 array", "launch")
    return ptr


def check_host_array(arr: np.ndarray, shape: tuple, what: str) -> np.ndarray:
    """A numpy array of the right shape and dtype, as a contiguous array."""
    if arr.shape != tuple(shape):
        _fail(f"{what} has shape {arr.shape}; expected {tuple(shape)}", "launch")
    if arr.dtype != np.float32:
        _fail(f"{what} has dtype {arr.dtype}; convert it to float32", "launch")
    return np.ascontiguousarray(arr)


def check_no_overlap(a_ptr: int, a_bytes: int, b_ptr: int, b_bytes: int) -> None:
    """The kernel reads the input while writing the output: they must not share memory."""
    if a_ptr < b_ptr + b_bytes and b_ptr < a_ptr + a_bytes:
        _fail("out shares memory with the input; the kernel reads the input while it writes "
              "out: pass a separate array", "launch")


def check_on_device(ptr: int, device: int, what: str, pointer_device=None) -> None:
    """The memory at ``ptr`` is device memory of GPU ``device``.

    ``pointer_device(ptr)`` returns the GPU ordinal owning ``ptr`` or None for
    memory the driver does not know (default: asks the CUDA driver).
    """
    owner = (pointer_device or _pointer_device)(ptr)
    if owner is None:
        _fail(f"{what}'s pointer is not CUDA memory the driver knows; pass a CUDA array "
              "(or a numpy array, which irprune copies)", "launch")
    if owner != device:
        _fail(f"{what} is on GPU {owner} but the current device is GPU {device}; move it, or "
              f"make GPU {owner} current (torch.cuda.set_device / numba.cuda.select_device)",
              "launch")


def array_device(arr) -> int | None:
    """The GPU ordinal a PyTorch or CuPy array says it lives on (None: ask the driver).

    Saves the driver query (cuPointerGetAttribute) on every launch for the
    arrays that carry their device.
    """
    mod = type(arr).__module__.split(".")[0]
    if mod == "torch" and arr.device.type == "cuda":
        return arr.device.index
    if mod == "cupy":
        return arr.device.id
    return None


def _pointer_device(ptr: int) -> int | None:
    from cuda.bindings import driver as cu

    err, ordinal = cu.cuPointerGetAttribute(
        cu.CUpointer_attribute.CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, ptr)
    if err != cu.CUresult.CUDA_SUCCESS:
        return None
    return int(ordinal)
