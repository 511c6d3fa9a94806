"""Experiment template: a 1x1 (pointwise) conv whose block reads its input once, into shared memory.

The block is (bx, 1, M): bx output pixels, M channel groups (one per
threadIdx.z, irprune's groups per block). Before any FMA every thread of the
block loads C / M input channels of its pixel into a shared tile (so the block
reads each input value of its pixels once, from L2 or DRAM, with many loads in
flight), a barrier, and then each group reads all its channels from the tile.
The ``slices`` parameter is used as M here: a compile-time constant, so that
the fill unrolls into independent loads. The tile's pitch is C + 1 floats per
pixel: a thread's channels sit at immediate offsets from one base, and the 32
threads of a warp (pitch odd) hit 32 different banks.
"""

from numba import cuda, float32

from irprune.template import sparse_conv

MAX_GROUP = 64


@sparse_conv(weight="w", constants=("bias",))
@cuda.jit
def conv2d_pw_tile(x, w, bias, y, stride, padding, relu, group_size, slices):
    """1x1 conv (any stride, padding 0) through a shared-memory input tile per block."""
    N, C, H, W = x.shape
    K = w.shape[0]
    OH = y.shape[2]
    OW = y.shape[3]
    pixels = N * OH * OW
    bx = cuda.blockDim.x
    tx = cuda.threadIdx.x
    tz = cuda.threadIdx.z
    first = cuda.blockIdx.x * bx + tx
    valid = first < pixels
    pix = min(first, pixels - 1)
    n = pix // (OH * OW)
    rem = pix - n * (OH * OW)
    oh = rem // OW
    ow = rem - oh * OW
    tile = cuda.shared.array(0, float32)
    base = tx * (C + 1)
    per = (C + slices - 1) // slices
    for i in range(per):
        c = tz * per + i
        if c < C:
            tile[base + c] = x[n, c, oh * stride, ow * stride]
    cuda.syncthreads()
    k0 = cuda.blockIdx.y * group_size
    acc = cuda.local.array(MAX_GROUP, float32)
    for kk in range(group_size):
        acc[kk] = float32(0.0)
        if bias.shape[0] > 0 and k0 + kk < K:
            acc[kk] = bias[k0 + kk]
    for c in range(C):
        v = tile[base + c]
        for kk in range(group_size):
            if k0 + kk < K:
                acc[kk] += v * w[k0 + kk, c, 0, 0]
    if not valid:
        return
    for kk in range(group_size):
        k = k0 + kk
        if k < K:
            o = acc[kk]
            if relu and o < float32(0.0):
                o = float32(0.0)
            y[n, k, oh, ow] = o
