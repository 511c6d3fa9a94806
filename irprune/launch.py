"""Loading a compiled kernel on the GPU and launching it on the caller's arrays.

Arrays come in through ``__cuda_array_interface__`` (Numba device arrays,
CuPy, PyTorch); a numpy input is copied to the GPU and the result copied
back. The module is loaded through numba-cuda's driver layer (the cubin when
ptxas made one for this device, else the PTX, which the driver JIT-compiles)
and launched with cuda.core,
which numba-cuda itself uses.
"""

from __future__ import annotations

import numpy as np

from . import validate
from .errors import LaunchError


def gpu_available() -> bool:
    """True if a CUDA driver and at least one GPU can be used in this process."""
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:  # no driver library, broken install: treat as no GPU
        return False


def _require_gpu() -> None:
    if not gpu_available():
        raise LaunchError(
            "no CUDA GPU is available; compiling needs none (irprune.conv2d(...).asm, "
            "`irprune compile --emit ptx`), running the kernel does", stage="launch")


def _empty_like_kind(x, shape):
    """A float32 device array of ``shape`` of the same library as ``x``."""
    mod = type(x).__module__.split(".")[0]
    if mod == "torch":
        import torch

        return torch.empty(shape, dtype=torch.float32, device=x.device)
    if mod == "cupy":
        import cupy

        return cupy.empty(shape, dtype=np.float32)
    from numba import cuda

    return cuda.device_array(shape, dtype=np.float32)


def _stream_handle(x) -> int:
    """The stream to launch on: PyTorch's current stream for torch tensors, else the default (0)."""
    if type(x).__module__.split(".")[0] == "torch":
        import torch

        return int(torch.cuda.current_stream(x.device).cuda_stream)
    return 0


def _functions(kernel) -> list:
    """(loaded CUfunction, grid) of each part of ``kernel`` in the current context (loaded once).

    Loads a part's cubin when ptxas made one for this device's architecture
    (no driver JIT at first launch), else its PTX (the driver compiles it).
    """
    from numba import cuda

    ctx = cuda.current_context()
    if id(ctx) not in kernel._loaded:
        major, minor = ctx.device.compute_capability
        native = kernel.cpu == f"sm_{major}{minor}"
        loaded = []
        for part, grid, _ in kernel.part_launches():
            cubin = part.cubin if native else None
            try:
                if cubin:
                    from cuda.core import ObjectCode

                    module = ctx.create_module_image(ObjectCode.from_cubin(cubin))
                else:
                    module = ctx.create_module_ptx(part.ptx)
            except Exception as exc:
                what = "cubin" if cubin else "PTX"
                raise LaunchError(f"the driver could not load the {what}: {exc}", stage="load",
                                  log=str(exc)) from None
            # Keep the module referenced: the function lives as long as it does.
            loaded.append((module, module.get_function(kernel.kernel_name), grid))
        kernel._loaded[id(ctx)] = loaded
    return [(fn, grid) for _, fn, grid in kernel._loaded[id(ctx)]]


def launch_conv(kernel, x, out=None):
    """Run ``kernel`` on ``x``; write into ``out`` (allocated if None); return the output.

    ``x`` and ``out`` are CUDA arrays of the current GPU, or numpy arrays
    (copied there and back). Every array is checked first (shape, dtype,
    layout, which GPU it is on, that ``out`` does not overlap ``x``).
    """
    _require_gpu()
    from cuda.core import LaunchConfig, Stream, launch
    from numba import cuda

    g = kernel.geometry
    host = isinstance(x, np.ndarray)
    if host:
        x_dev = cuda.to_device(validate.check_host_array(x, g.input_shape, "input"))
    else:
        x_dev = x
    x_ptr = validate.check_device_array(validate.cuda_interface(x_dev, "input"), g.input_shape, "input")
    if out is None:
        out_dev = _empty_like_kind(x_dev, g.output_shape)
    elif isinstance(out, np.ndarray):
        validate.check_host_array(out, g.output_shape, "out")
        out_dev = cuda.device_array(g.output_shape, dtype=np.float32)
    else:
        out_dev = out
    y_ptr = validate.check_device_array(validate.cuda_interface(out_dev, "out"), g.output_shape, "out")
    device = cuda.get_current_device().id
    for ptr, arr, what in ((x_ptr, x_dev, "input"), (y_ptr, out_dev, "out")):
        known = validate.array_device(arr)
        validate.check_on_device(ptr, device, what,
                                 pointer_device=None if known is None else (lambda _, d=known: d))
    validate.check_no_overlap(x_ptr, 4 * _size(g.input_shape), y_ptr, 4 * _size(g.output_shape))
    _, block = kernel.launch_config
    handle = _stream_handle(x_dev)
    stream = Stream.from_handle(handle)
    for fn, grid in _functions(kernel):
        launch(stream, LaunchConfig(grid=grid, block=block), fn.kernel, x_ptr, y_ptr)
    if host:
        result = out_dev.copy_to_host()  # default stream: ordered after the launch
        if isinstance(out, np.ndarray):
            out[...] = result
            return out
        return result
    return out_dev


def _size(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
