"""The implementations a benchmark row compares, each as "run on input set i".

Every implementation gets the same inputs (a rotation of float32 NCHW
tensors on the GPU) and the same pruned weights, and returns an output
tensor, so that each is checked against the float64 reference before it is
timed. All enqueue work on PyTorch's current stream, which is what CUDA-graph
capture records.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .suites import Layer

IMPLS = ("irprune", "dense_template", "cudnn_fp32", "cudnn_tf32", "cudnn_fp16", "cusparse_csr",
         "floor", "code_floor", "move_floor")


@dataclass
class Inputs:
    """One (layer, batch): the rotation of inputs and outputs, on the GPU."""

    layer: Layer
    batch: int
    xs: list  # torch float32 tensors, N x C x H x W
    ys: list  # torch float32 tensors, N x K x OH x OW

    @property
    def rotation(self) -> int:
        return len(self.xs)


def make_inputs(layer: Layer, batch: int, l2_bytes: int, seed: int, max_rotation: int = 16) -> Inputs:
    """Random inputs: enough sets (at most ``max_rotation``) to cover twice the L2's bytes.

    No launch reads the input the previous launch read. A large layer's sets
    then run from DRAM; a small layer's (12 of the 17 1x1 layers at batch 1:
    16 sets of pw_256_512_14 are 9.6 MB of the H200's 60 MiB L2) stay in L2,
    as a network's activations do when the previous layer has just written them.
    """
    import torch

    gen = torch.Generator(device="cuda").manual_seed(seed)
    g = layer.geometry(batch)
    ishape, oshape = g.input_shape, g.output_shape
    per_set = 4 * (int(np.prod(ishape)) + int(np.prod(oshape)))
    n = int(min(max_rotation, max(1, -(-2 * l2_bytes // per_set))))
    xs = [torch.randn(ishape, device="cuda", generator=gen) for _ in range(n)]
    ys = [torch.empty(oshape, device="cuda") for _ in range(n)]
    return Inputs(layer, batch, xs, ys)


def cudnn(inp: Inputs, w, tf32: bool):
    import torch
    import torch.nn.functional as F

    layer = inp.layer
    wt = torch.from_numpy(w).cuda()

    def run(i):
        torch.backends.cudnn.allow_tf32 = tf32
        return F.conv2d(inp.xs[i], wt, stride=layer.stride, padding=layer.padding)

    return run


def cudnn_fp16(inp: Inputs, w):
    import torch
    import torch.nn.functional as F

    layer = inp.layer
    wh = torch.from_numpy(w).cuda().half()
    xh = [x.half() for x in inp.xs]

    def run(i):
        return F.conv2d(xh[i], wh, stride=layer.stride, padding=layer.padding)

    return run


def cusparse_csr(inp: Inputs, w):
    """torch.sparse CSR weight (K x C*R*S) times the input (1x1, stride 1) or its im2col."""
    import torch
    import torch.nn.functional as F

    layer = inp.layer
    N = inp.batch
    K = layer.K
    oh, ow = layer.out_hw
    wcsr = torch.from_numpy(w.reshape(K, -1)).cuda().to_sparse_csr()
    direct = layer.R == layer.S == 1 and layer.stride == 1 and layer.padding == 0

    def run(i):
        x = inp.xs[i]
        if direct:
            cols = x.reshape(N, layer.C, -1)
        else:
            cols = F.unfold(x, (layer.R, layer.S), padding=layer.padding, stride=layer.stride)
        # (N, CRS, L) -> (CRS, N*L): one sparse-dense product for the whole batch.
        b = cols[0] if N == 1 else cols.transpose(0, 1).reshape(cols.shape[1], -1)
        out = torch.sparse.mm(wcsr, b)  # cusparseSpMM: (K, N*L)
        if N == 1:
            return out.view(1, K, oh, ow)
        return out.view(K, N, oh, ow).transpose(0, 1).contiguous()

    return run


#: The library baselines: timed by cuDNN / cuSPARSE, checked like every implementation.
BASELINES = ("cudnn_fp32", "cudnn_tf32", "cudnn_fp16", "cusparse_csr")


def baseline(impl: str, inp: Inputs, w):
    """The run function of library baseline ``impl`` (one of :data:`BASELINES`)."""
    if impl == "cudnn_fp32":
        return cudnn(inp, w, tf32=False)
    if impl == "cudnn_tf32":
        return cudnn(inp, w, tf32=True)
    if impl == "cudnn_fp16":
        return cudnn_fp16(inp, w)
    if impl == "cusparse_csr":
        return cusparse_csr(inp, w)
    raise ValueError(f"unknown baseline {impl!r}; choose from {', '.join(BASELINES)}")


def irprune_run(inp: Inputs, kernel):
    def run(i):
        return kernel(inp.xs[i], out=inp.ys[i])

    return run


def dense_template(inp: Inputs, w, group_size: int):
    """The same Numba template, launched dense (weights read from memory)."""
    import torch
    from numba import cuda

    from ..kernel import BLOCK
    from ..templates.conv2d import conv2d_nchw

    layer = inp.layer
    wd = cuda.as_cuda_array(torch.from_numpy(w).cuda())
    bias = cuda.device_array(0, np.float32)
    xd = [cuda.as_cuda_array(x) for x in inp.xs]
    yd = [cuda.as_cuda_array(y) for y in inp.ys]
    oh, ow = layer.out_hw
    grid = (-(-inp.batch * oh * ow // BLOCK), -(-layer.K // group_size))
    keep = [wd]

    def run(i):
        stream = cuda.external_stream(torch.cuda.current_stream().cuda_stream)
        conv2d_nchw[grid, BLOCK, stream](xd[i], keep[0], bias, yd[i], layer.stride, layer.padding,
                                         False, group_size, 1)
        return inp.ys[i]

    return run


def empty_kernel():
    """One launch of an empty kernel (the floor's launch part)."""
    import torch
    from numba import cuda

    @cuda.jit
    def _empty():
        pass

    def run(i):
        _empty[1, 1, cuda.external_stream(torch.cuda.current_stream().cuda_stream)]()

    return run


def move_floor(inp: Inputs, nnz: int):
    """The floor's bytes moved by a real launch: one kernel that reads the input and ``nnz``
    floats (the nonzero weights) and writes the output, computing nothing else, one thread a
    value (irprune.bench.move_kernel). It pays what the modelled floor (one empty launch plus
    the bytes at copy bandwidth) leaves out and every convolution kernel pays too: a grid's
    launch, and a load's latency before each store. Returns the run function;
    ``run.expected(i)`` is its output for input set ``i`` in float64, computed by PyTorch."""
    import torch
    from numba import cuda

    from .move_kernel import MOVE_BLOCK, move_floor as kernel

    w = torch.randn(max(nnz, 1), device="cuda")  # (one float for a layer with none)
    wd = cuda.as_cuda_array(w)
    xd = [cuda.as_cuda_array(x.reshape(-1)) for x in inp.xs]
    yd = [cuda.as_cuda_array(y.reshape(-1)) for y in inp.ys]
    n = inp.ys[0].numel()
    grid = -(-max(n, inp.xs[0].numel(), len(w)) // MOVE_BLOCK)

    def run(i):
        stream = cuda.external_stream(torch.cuda.current_stream().cuda_stream)
        kernel[grid, MOVE_BLOCK, stream](xd[i], wd, yd[i])
        return inp.ys[i]

    def first_n(v):
        """v's first n values in float64, zeros past its end."""
        v = v.double().reshape(-1)[:n]
        return torch.cat([v, v.new_zeros(n - len(v))])

    run.expected = lambda i: (first_n(inp.xs[i]) + first_n(w)).view(inp.ys[i].shape)
    return run


def copy_bandwidth(nbytes: int = 1 << 30) -> float:
    """Device-to-device copy bandwidth in bytes/s (bytes read plus bytes written)."""
    import torch

    from .timing import measure

    a = torch.empty(nbytes // 4, device="cuda")
    b = torch.empty_like(a)
    t = measure(lambda i: b.copy_(a), target_ms=50, repeats=5)
    del a, b
    return 2 * nbytes / (t.median_us * 1e-6)
