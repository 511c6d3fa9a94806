"""Experiment template: a 1x1 stride-1 conv with four adjacent output pixels a thread, 16-byte
input loads and output stores.

The built-in template gives a thread one output pixel, so each input value it uses is a 4-byte
load: a warp moves 128 bytes a load instruction, as the bench's scalar move kernel does. A
kernel that only moves a layer's bytes ran 1.25x above the modelled floor with 16-byte accesses
and 1.66x with 4-byte ones (move_ab.py). Here a thread takes pixels 4t .. 4t + 3 of an image
(the image's pixels flattened; H * W a multiple of 4, so a channel's four values are one
aligned 16-byte piece): per input channel one ``ld.global.nc.v4.f32``, per nonzero weight four
FFMAs with the same immediate, per output channel one 16-byte store. ``group_size`` output
channels a thread (at most 16: 64 accumulators); slices are not supported.
"""

from llvmlite import ir
from numba import cuda, float32, int64, types, uint32
from numba.cuda.extending import intrinsic

from irprune.template import sparse_conv

#: Most output channels a thread (4 accumulators each).
MAX_GROUP = 16
#: Accumulators a thread (Numba needs the local array's size as a constant).
ACCUMULATORS = 4 * MAX_GROUP


def _flat_pointer(context, builder, aty, arr, i, j, p):
    """Pointer to element ``arr[i, j]``'s row start plus ``p`` elements (4-D array, no wraparound)."""
    from numba.cuda import cgutils

    a = context.make_array(aty)(context, builder, arr)
    zero = ir.Constant(ir.IntType(64), 0)
    ptr = cgutils.get_item_pointer(context, builder, aty, a, [i, j, zero, zero], wraparound=False)
    return builder.gep(ptr, [p])


@intrinsic
def _load4(typingctx, arr, i, j, p):
    """The four floats at ``arr[i, j]``'s row start + ``p`` .. + 3 as one 16-byte load."""
    def codegen(context, builder, signature, args):
        ptr = _flat_pointer(context, builder, signature.args[0], args[0], args[1], args[2], args[3])
        vty = ir.VectorType(ir.FloatType(), 4)
        v = builder.load(builder.bitcast(ptr, vty.as_pointer()), align=16)
        vals = [builder.extract_element(v, ir.Constant(ir.IntType(32), e)) for e in range(4)]
        return context.make_tuple(builder, signature.return_type, vals)
    return types.UniTuple(types.float32, 4)(arr, i, j, p), codegen


@intrinsic
def _store4(typingctx, arr, i, j, p, a, b, c, d):
    """``arr[i, j]``'s row start + ``p`` .. + 3 = a, b, c, d as one 16-byte store."""
    def codegen(context, builder, signature, args):
        ptr = _flat_pointer(context, builder, signature.args[0], args[0], args[1], args[2], args[3])
        vty = ir.VectorType(ir.FloatType(), 4)
        v = ir.Constant(vty, ir.Undefined)
        for e in range(4):
            v = builder.insert_element(v, args[4 + e], ir.Constant(ir.IntType(32), e))
        builder.store(v, builder.bitcast(ptr, vty.as_pointer()), align=16)
        return context.get_dummy_value()
    return types.void(arr, i, j, p, a, b, c, d), codegen


@sparse_conv(weight="w", constants=("bias",))
@cuda.jit
def conv2d_vec4(x, w, bias, y, stride, padding, relu, group_size, slices):
    """1x1 conv, stride 1, no padding, H * W a multiple of 4: four output pixels a thread."""
    N, C, H, W = x.shape
    K = w.shape[0]
    HW = H * W
    quads = N * (HW // 4)
    t = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    if t >= quads:
        return
    t32 = uint32(t)
    n = int64(t32 // uint32(HW // 4))
    p = int64(t32 % uint32(HW // 4)) * 4
    k0 = cuda.blockIdx.y * group_size
    acc = cuda.local.array(ACCUMULATORS, float32)
    for kk in range(group_size):
        b = float32(0.0)
        if bias.shape[0] > 0 and k0 + kk < K:
            b = bias[k0 + kk]
        for e in range(4):
            acc[4 * kk + e] = b
    for c in range(C):
        v0, v1, v2, v3 = _load4(x, n, c, p)
        for kk in range(group_size):
            if k0 + kk < K:
                wv = w[k0 + kk, c, 0, 0]
                acc[4 * kk] += v0 * wv
                acc[4 * kk + 1] += v1 * wv
                acc[4 * kk + 2] += v2 * wv
                acc[4 * kk + 3] += v3 * wv
    for kk in range(group_size):
        k = k0 + kk
        if k < K:
            a0, a1, a2, a3 = acc[4 * kk], acc[4 * kk + 1], acc[4 * kk + 2], acc[4 * kk + 3]
            if relu:
                a0 = a0 if a0 > float32(0.0) else float32(0.0)
                a1 = a1 if a1 > float32(0.0) else float32(0.0)
                a2 = a2 if a2 > float32(0.0) else float32(0.0)
                a3 = a3 if a3 > float32(0.0) else float32(0.0)
            _store4(y, n, int64(k), p, a0, a1, a2, a3)
