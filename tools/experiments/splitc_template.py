"""Experiment template: input-channel slices across blocks (split-C), summed with atomics.

The built-in template's ``slices`` split a pixel's input channels over rows of
threads of one block (threadIdx.y) and add the rows' sums in shared memory.
Here the slice is blockIdx.z instead: the grid has ``slices`` times as many
blocks, each summing C / slices input channels of its pixels for its channel
groups, and each adds its partial sums into the output with a float atomic
(the output must start at zero: no bias, no ReLU in this variant). What it
tests: a block may then hold many channel groups (threadIdx.z), so that the
input a block reads from L2 feeds many output channels, and the grid still
fills every SM.
"""

from numba import cuda, float32

from irprune.template import sparse_conv

MAX_GROUP = 64


@sparse_conv(weight="w", constants=("bias",))
@cuda.jit
def conv2d_splitc(x, w, bias, y, stride, padding, relu, group_size, slices):
    """y += conv2d(x, w) over blockIdx.z's slice of the input channels (y must start at zero)."""
    N, C, H, W = x.shape
    K = w.shape[0]
    Cg = w.shape[1]
    R = w.shape[2]
    S = w.shape[3]
    OH = y.shape[2]
    OW = y.shape[3]
    pixels = N * OH * OW
    pix = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    if pix >= pixels:
        return
    sl = cuda.blockIdx.z if slices > 1 else 0
    n = pix // (OH * OW)
    rem = pix - n * (OH * OW)
    oh = rem // OW
    ow = rem - oh * OW
    k0 = cuda.blockIdx.y * group_size
    acc = cuda.local.array(MAX_GROUP, float32)
    for kk in range(group_size):
        acc[kk] = float32(0.0)
    per_slice = (Cg + slices - 1) // slices
    for q in range(slices):
        if q == sl:
            for c in range(q * per_slice, min(Cg, (q + 1) * per_slice)):
                for r in range(R):
                    ih = oh * stride + r
                    for s in range(S):
                        iw = ow * stride + s
                        v = x[n, c, ih, iw]
                        for kk in range(group_size):
                            if k0 + kk < K:
                                acc[kk] += v * w[k0 + kk, c, r, s]
    for kk in range(group_size):
        k = k0 + kk
        if k < K:
            cuda.atomic.add(y, (n, k, oh, ow), acc[kk])
