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

from .errors import LaunchError, ValidationError


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


def _interface(arr, what: str) -> dict:
    cai = getattr(arr, "__cuda_array_interface__", None)
    if cai is None:
        raise ValidationError(f"{what} must be a CUDA array (Numba, CuPy, PyTorch) or numpy; "
                              f"got {type(arr).__name__}", stage="launch")
    return cai


def _check(cai: dict, shape: tuple, what: str) -> int:
    if tuple(cai["shape"]) != tuple(shape):
        raise ValidationError(f"{what} has shape {tuple(cai['shape'])}; this kernel was compiled "
                              f"for {tuple(shape)}", stage="launch")
    if np.dtype(cai["typestr"]) != np.float32:
        raise ValidationError(f"{what} has dtype {np.dtype(cai['typestr'])}; convert it to float32",
                              stage="launch")
    strides = cai.get("strides")
    if strides is not None:
        expect, acc = [], 4
        for d in reversed(shape):
            expect.append(acc)
            acc *= d
        if tuple(strides) != tuple(reversed(expect)) and int(np.prod(shape)) > 1:
            raise ValidationError(f"{what} is not C-contiguous (strides {tuple(strides)}); "
                                  "pass a contiguous copy", stage="launch")
    return int(cai["data"][0])


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


def _function(kernel):
    """The loaded CUfunction of ``kernel`` in the current context (loaded once per context).

    Loads the cubin when the kernel has one for this device's architecture
    (no driver JIT at first launch), else the PTX (the driver compiles it).
    """
    from numba import cuda

    ctx = cuda.current_context()
    if id(ctx) not in kernel._loaded:
        major, minor = ctx.device.compute_capability
        cubin = kernel.cubin if kernel.cpu == f"sm_{major}{minor}" else None
        try:
            if cubin:
                from cuda.core import ObjectCode

                module = ctx.create_module_image(ObjectCode.from_cubin(cubin))
            else:
                module = ctx.create_module_ptx(kernel.asm["ptx"])
            # Keep the module referenced: the function lives as long as it does.
            kernel._loaded[id(ctx)] = (module, module.get_function(kernel.kernel_name))
        except Exception as exc:
            what = "cubin" if cubin else "PTX"
            raise LaunchError(f"the driver could not load the {what}: {exc}", stage="load",
                              log=str(exc)) from None
    return kernel._loaded[id(ctx)][1]


def launch_conv(kernel, x, out=None):
    """Run ``kernel`` on ``x``; write into ``out`` (allocated if None); return the output."""
    _require_gpu()
    from cuda.core import LaunchConfig, Stream, launch
    from numba import cuda

    g = kernel.geometry
    host = isinstance(x, np.ndarray)
    if host:
        if x.shape != g.input_shape or x.dtype != np.float32:
            raise ValidationError(f"input must be float32 of shape {g.input_shape}; got "
                                  f"{x.dtype} {x.shape}", stage="launch")
        x_dev = cuda.to_device(np.ascontiguousarray(x))
    else:
        x_dev = x
    x_ptr = _check(_interface(x_dev, "input"), g.input_shape, "input")
    if out is None:
        out_dev = _empty_like_kind(x_dev, g.output_shape)
    elif isinstance(out, np.ndarray):
        if out.shape != g.output_shape or out.dtype != np.float32:
            raise ValidationError(f"out must be float32 of shape {g.output_shape}; got "
                                  f"{out.dtype} {out.shape}", stage="launch")
        out_dev = cuda.device_array(g.output_shape, dtype=np.float32)
    else:
        out_dev = out
    y_ptr = _check(_interface(out_dev, "out"), g.output_shape, "out")
    fn = _function(kernel)
    grid, block = kernel.launch_config
    handle = _stream_handle(x_dev)
    stream = Stream.from_handle(handle)
    launch(stream, LaunchConfig(grid=grid, block=block), fn.kernel, x_ptr, y_ptr)
    if host:
        result = out_dev.copy_to_host()  # default stream: ordered after the launch
        if isinstance(out, np.ndarray):
            out[...] = result
            return out
        return result
    return out_dev
