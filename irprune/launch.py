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
    """The loaded CUfunction of each part of ``kernel`` in the current context (loaded once).

    Loads a part's cubin when ptxas made one for this device's architecture
    (no driver JIT at first launch), else its PTX (the driver compiles it).
    """
    from numba import cuda

    from .kernel import part_shared_bytes

    ctx = cuda.current_context()
    if id(ctx) not in kernel._loaded:
        major, minor = ctx.device.compute_capability
        native = kernel.cpu == f"sm_{major}{minor}"
        loaded = []
        for part in kernel.parts:
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
            fn = module.get_function(part.name or kernel.kernel_name)
            if part_shared_bytes(kernel, part) > OPT_IN_SHARED:
                _allow_shared(fn, part_shared_bytes(kernel, part))
            # Keep the module referenced: the function lives as long as it does.
            loaded.append((module, fn))
        kernel._loaded[id(ctx)] = loaded
    return [fn for _, fn in kernel._loaded[id(ctx)]]


#: Dynamic shared memory a block may take without the function opting in.
OPT_IN_SHARED = 48 * 1024


def _allow_shared(fn, nbytes: int) -> None:
    """Let loaded function ``fn`` take ``nbytes`` of dynamic shared memory (over 48 KB)."""
    from cuda.bindings import driver as drv

    attr = drv.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
    handle = getattr(getattr(fn, "kernel", None), "handle", None)
    if handle is not None:  # loaded through the library API: a CUkernel
        from numba import cuda

        dev = drv.CUdevice(cuda.get_current_device().id)
        result = drv.cuKernelSetAttribute(attr, nbytes, handle, dev)[0]
    else:
        result = drv.cuFuncSetAttribute(fn.handle, attr, nbytes)[0]
    if result != drv.CUresult.CUDA_SUCCESS:
        raise LaunchError(f"the driver refused {nbytes} bytes of shared memory a block "
                          f"({result.name}); compile with more slices or a smaller tile",
                          stage="load")


def _launches(kernel, batch: int, device: int) -> list:
    """(CUfunction handle, LaunchConfig) of each part for ``batch`` images on GPU ``device``.

    Memoized per (device, batch, block): a layer called again with the same
    batch size repeats no lookups, grid arithmetic or config construction,
    which matters when a model calls dozens of small layers per image. The
    launch shape is in the key because the tuner and the benchmark change
    ``kernel.block`` and ``kernel.groups_per_block`` between launches of one kernel.
    """
    key = (device, batch, kernel.block, kernel.groups_per_block,
           getattr(kernel, "dependent_launch", False))
    hit = kernel._launch_memo.get(key)
    if hit is None:
        from cuda.core import LaunchConfig

        from .kernel import part_shared_bytes

        fns = _functions(kernel)
        launches = kernel.part_launches(batch)
        for fn, (_, _, block) in zip(fns, launches):
            _check_threads(fn, block)
        extra = launch_options(kernel)
        hit = [(fn.kernel, LaunchConfig(grid=grid, block=block,
                                        shmem_size=part_shared_bytes(kernel, part), **extra))
               for fn, (part, grid, block) in zip(fns, launches)]
        kernel._launch_memo[key] = hit
    return hit


#: What a kernel's PTX holds when it waits for the grid before it (irprune.passes.grid_dependency_wait).
GRID_WAIT_PTX = "griddepcontrol.wait;"


def uses_dependent_launch(kernel) -> bool:
    """Whether ``kernel`` is launched with programmatic stream serialization: its
    ``dependent_launch`` is on and every part's code waits for the grid before it first
    (without the wait an early launch could read its input before it is written). A kernel
    whose launch zeroes the output first does not: a memset is not a grid it can wait for."""
    return (bool(getattr(kernel, "dependent_launch", False)) and bool(kernel.parts)
            and not getattr(kernel, "zero_output", False)
            and all(GRID_WAIT_PTX in p.ptx for p in kernel.parts))


def launch_options(kernel) -> dict:
    """Extra cuda.core LaunchConfig arguments of ``kernel``'s launches (uses_dependent_launch)."""
    return {"programmatic_stream_serialization": True} if uses_dependent_launch(kernel) else {}


def _check_threads(fn, block) -> None:
    """Refuse, in one line, a block with more threads than the loaded function's registers allow.

    The driver knows the registers of what it loaded even where ptxas never
    ran here (PTX JIT-compiled at load): a launch over that limit would fail
    with CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES.
    """
    attrs = getattr(fn, "attrs", None)
    threads = block[0] * block[1] * block[2]
    if attrs is None or threads <= attrs.maxthreads:
        return
    validate._fail(f"block {block[0]} x {block[1]} x {block[2]} = {threads} threads, but the "
                   f"kernel's {attrs.regs} registers a thread allow at most {attrs.maxthreads} "
                   "a block; use a smaller block, fewer slices or fewer groups per block, or "
                   "compile with a lower max_registers", "launch")


_streams: dict = {}


def _stream(handle: int):
    """A cuda.core Stream for a raw stream handle (made once per handle)."""
    s = _streams.get(handle)
    if s is None:
        from cuda.core import Stream

        s = _streams[handle] = Stream.from_handle(handle)
    return s


def _run(kernel, x_ptr: int, y_ptr: int, batch: int, device: int, stream_handle: int) -> None:
    from cuda.core import launch

    stream = _stream(stream_handle)
    if getattr(kernel, "zero_output", False):
        # the blocks add their sums into the output (irprune.table_layout): zero it first,
        # on the same stream (a memset node when a CUDA graph captures the call)
        from cuda.bindings import driver as drv

        g = kernel.geometry
        r = drv.cuMemsetD32Async(drv.CUdeviceptr(y_ptr), 0, batch * g.K * g.OH * g.OW,
                                 drv.CUstream(stream_handle))[0]
        if r != drv.CUresult.CUDA_SUCCESS:
            raise LaunchError(f"zeroing the output failed ({r.name})", stage="launch")
    for fn, config in _launches(kernel, batch, device):
        launch(stream, config, fn, x_ptr, y_ptr, batch)


def _is_torch(x) -> bool:
    return type(x).__module__.split(".")[0] == "torch"


def launch_torch(kernel, x, out=None):
    """Run ``kernel`` on a CUDA ``torch.Tensor`` on PyTorch's current stream; the fast path.

    Checks what the generic path checks (shape, dtype, layout, alignment,
    GPU, overlap) from the tensor's own attributes, with no
    ``__cuda_array_interface__`` and no driver query, so that it can also be
    captured in a CUDA graph (``torch.cuda.graph``): nothing here
    synchronizes or allocates outside PyTorch's allocator.
    """
    import torch

    g = kernel.geometry
    if x.device.type != "cuda":
        validate.cuda_interface(x, "input")  # raises the one-line "move it with .cuda()" error
    if x.dtype != torch.float32:
        dtype = str(x.dtype).removeprefix("torch.")
        validate._fail(f"input has dtype {dtype}; convert it to float32", "launch")
    batch = validate.check_batch(x.shape, (g.C, g.H, g.W), "input")
    if not x.is_contiguous():
        validate._fail("input is not C-contiguous; pass x.contiguous()", "launch")
    device = x.device.index
    current = torch.cuda.current_device()
    if device != current:
        validate._fail(f"input is on GPU {device} but the current device is GPU {current}; "
                       f"move it, or make GPU {device} current (torch.cuda.set_device)", "launch")
    oshape = (batch, g.K, g.OH, g.OW)
    if out is None:
        out = torch.empty(oshape, dtype=torch.float32, device=x.device)
    else:
        if not _is_torch(out) or out.device != x.device or out.dtype != torch.float32 \
                or tuple(out.shape) != oshape or not out.is_contiguous():
            validate._fail(f"out must be a contiguous float32 tensor of shape {oshape} on "
                           f"{x.device}", "launch")
        validate.check_no_overlap(x.data_ptr(), 4 * x.numel(), out.data_ptr(), 4 * out.numel())
    x_ptr, y_ptr = x.data_ptr(), out.data_ptr()
    if x_ptr % 4 or y_ptr % 4:
        validate._fail("input or out is not 4-byte aligned; pass a fresh float32 tensor", "launch")
    _check_input_alignment(kernel, x_ptr)
    _run(kernel, x_ptr, y_ptr, batch, device, torch.cuda.current_stream(x.device).cuda_stream)
    return out


def launch_conv(kernel, x, out=None):
    """Run ``kernel`` on ``x``; write into ``out`` (allocated if None); return the output.

    ``x`` (N, C, H, W), for any batch N, and ``out`` are CUDA arrays of the
    current GPU, or numpy arrays (copied there and back). Every array is
    checked first (shape, dtype, layout, which GPU it is on, that ``out``
    does not overlap ``x``). PyTorch tensors take :func:`launch_torch`.
    """
    if _is_torch(x) and getattr(x, "is_cuda", False):
        return launch_torch(kernel, x, out)
    _require_gpu()
    from numba import cuda

    g = kernel.geometry
    per_image = (g.C, g.H, g.W)
    host = isinstance(x, np.ndarray)
    if host:
        batch = validate.check_batch(x.shape, per_image, "input")
        x_dev = cuda.to_device(validate.check_host_array(x, x.shape, "input"))
        x_cai = validate.cuda_interface(x_dev, "input")
    else:
        x_dev = x
        x_cai = validate.cuda_interface(x_dev, "input")
        batch = validate.check_batch(x_cai["shape"], per_image, "input")
    ishape, oshape = (batch, *per_image), (batch, g.K, g.OH, g.OW)
    x_ptr = validate.check_device_array(x_cai, ishape, "input")
    if out is None:
        out_dev = _empty_like_kind(x_dev, oshape)
    elif isinstance(out, np.ndarray):
        validate.check_host_array(out, oshape, "out")
        out_dev = cuda.device_array(oshape, dtype=np.float32)
    else:
        out_dev = out
    y_ptr = validate.check_device_array(validate.cuda_interface(out_dev, "out"), oshape, "out")
    device = cuda.get_current_device().id
    for ptr, arr, what in ((x_ptr, x_dev, "input"), (y_ptr, out_dev, "out")):
        known = validate.array_device(arr)
        validate.check_on_device(ptr, device, what,
                                 pointer_device=None if known is None else (lambda _, d=known: d))
    validate.check_no_overlap(x_ptr, 4 * _size(ishape), y_ptr, 4 * _size(oshape))
    _check_input_alignment(kernel, x_ptr)
    _run(kernel, x_ptr, y_ptr, batch, device, _stream_handle(x_dev))
    if host:
        result = out_dev.copy_to_host()  # default stream: ordered after the launch
        if isinstance(out, np.ndarray):
            out[...] = result
            return out
        return result
    return out_dev


def _check_input_alignment(kernel, x_ptr: int) -> None:
    """Refuse an input that starts off the alignment the kernel's copies need (a table kernel
    may copy its input 8 or 16 bytes at a time), in one line."""
    align = getattr(kernel, "input_alignment", 4)
    if x_ptr % align:
        validate._fail(f"input is not {align}-byte aligned (this kernel copies it {align} bytes "
                       "at a time); pass a fresh tensor (x.clone())", "launch")


def _size(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
