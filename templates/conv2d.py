"""Dense conv2d (NCHW, fp32) operator template.

An ordinary Numba CUDA kernel: launched as plain Numba it is a correct dense
convolution for any shapes (this is also the benchmarks' "dense template").
It knows nothing of sparsity. irprune specializes it on one layer's shapes,
which turns every loop over the weight into a constant-trip-count loop that
LLVM unrolls, so that each weight element gets an instruction chain of its
own; the passes then strip the chains of zero weights and turn the rest into
immediates.

Launch layout: one thread per output pixel (n, oh, ow) on grid x; grid y
selects a group of ``group_size`` output channels (irprune may also run
several groups in one block, one per threadIdx.z). irprune lowers the code of
group 0 (blockIdx.y bound to 0) and instantiates one code region per group
from it, each with that group's weights as immediates, chosen by the block
index: every (k, c, r, s) has a chain of its own and a block only runs the
code of its own group.
"""

from numba import cuda, float32, int64, uint32

from irprune.template import sparse_conv

#: Upper bound of ``group_size``: the per-thread accumulators are a local
#: array, whose size Numba must know when it types the kernel.
MAX_GROUP = 64

#: Largest group size whose kernel runs the taps outermost (one select a tap for
#: the padding); larger groups run the input channels outermost. Taps outermost
#: read every line of a tap's input rows once a tap (three times a row for a 3x3);
#: at batch 64 with groups of 64 that was 1.7-1.9x slower (vgg16_c2, vgg16_c3,
#: resnet_3x3_56: the lines no longer stay in L1 between taps), with groups of
#: 8-25 1.0-1.3x faster, at batch 1 up to 1.17x faster (docs/perf-log.md,
#: "Padding without a select a load").
TAPS_OUTER_MAX_GROUP = 32


@sparse_conv(weight="w", constants=("bias",))
@cuda.jit
def conv2d_nchw(x, w, bias, y, stride, padding, relu, group_size, slices):
    """y = conv2d(x, w, groups=x.shape[1] // w.shape[1]) + bias, optionally ReLU; bias.shape[0] == 0 means none."""
    N, C, H, W = x.shape
    K = w.shape[0]
    Cg = w.shape[1]  # input channels per convolution group (C unless grouped)
    R = w.shape[2]
    S = w.shape[3]
    OH = y.shape[2]
    OW = y.shape[3]
    pixels = N * OH * OW
    pix = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    # Input-channel slices: threadIdx.y picks which of ``slices`` runs of
    # input channels this thread sums; the block adds them up at the end.
    sl = cuda.threadIdx.y if slices > 1 else 0
    if slices == 1:
        if pix >= pixels:
            return
        valid = True
    else:
        # Threads past the last pixel must reach the barrier: they work on
        # a clamped pixel and store nothing.
        valid = pix < pixels
        pix = min(pix, pixels - 1)
    # The pixel's (n, oh, ow) in 32-bit unsigned arithmetic (irprune refuses
    # 2**31 pixels or more): Numba's int64 floor division by the constant
    # OH * OW is some 50 dependent instructions of 64-bit multiplies and sign
    # fixes that every thread runs before its first load; unsigned 32-bit it
    # is a multiply-high and a shift, and for a 1x1 layer at stride 1 LLVM
    # folds the input offset oh * W + ow back into the remainder.
    p32 = uint32(pix)
    n = int64(p32 // uint32(OH * OW))
    rem = p32 % uint32(OH * OW)
    oh = int64(rem // uint32(OW))
    ow = int64(rem % uint32(OW))
    # Grid y picks the group of output channels; irprune builds the IR
    # template for group 0 and derives the other groups from it.
    k0 = cuda.blockIdx.y * group_size
    # Convolution groups: a block's channels lie in one group (group_size
    # divides K / groups), which reads input channels cbase .. cbase + Cg - 1.
    cbase = (k0 // (K // (C // Cg))) * Cg
    acc = cuda.local.array(MAX_GROUP, float32)
    before = cuda.local.array(MAX_GROUP, float32)
    for kk in range(group_size):
        acc[kk] = float32(0.0)
        if bias.shape[0] > 0 and k0 + kk < K and sl == 0:
            acc[kk] = bias[k0 + kk]
    per_slice = (Cg + slices - 1) // slices
    for q in range(slices):
        if q == sl:
            if group_size <= TAPS_OUTER_MAX_GROUP:
                # Taps outermost. Whether a tap lies in the padding depends
                # on the tap and the pixel, not on the channel: a padded
                # tap's products are dropped once, by keeping the sums from
                # before the tap (one select a tap and output channel),
                # instead of zeroing every value loaded (one select a load:
                # a third of a batch-1 kernel's instructions). The load is
                # clamped, so the unrolled code is one straight-line block.
                # Without padding every tap lies inside the input, which
                # LLVM cannot prove: say so (padding is a constant of the
                # specialization, so this folds away).
                for r in range(R):
                    ih = oh * stride - padding + r
                    ihc = min(max(ih, 0), H - 1) if padding > 0 else ih
                    for s in range(S):
                        iw = ow * stride - padding + s
                        iwc = min(max(iw, 0), W - 1) if padding > 0 else iw
                        inside = not (padding > 0 and (ih < 0 or ih >= H or iw < 0 or iw >= W))
                        if padding > 0:
                            for kk in range(group_size):
                                before[kk] = acc[kk]
                        for c in range(q * per_slice, min(Cg, (q + 1) * per_slice)):
                            v = x[n, cbase + c, ihc, iwc]
                            # Channels innermost: one input value feeds
                            # group_size accumulators (register blocking).
                            for kk in range(group_size):
                                if k0 + kk < K:
                                    acc[kk] += v * w[k0 + kk, c, r, s]
                        if padding > 0:
                            for kk in range(group_size):
                                acc[kk] = acc[kk] if inside else before[kk]
            else:
                # Input channels outermost: a channel's taps are loaded
                # together, so the lines they share are read once. Clamp,
                # load, then zero a padded tap's value.
                for c in range(q * per_slice, min(Cg, (q + 1) * per_slice)):
                    for r in range(R):
                        ih = oh * stride - padding + r
                        ihc = min(max(ih, 0), H - 1) if padding > 0 else ih
                        for s in range(S):
                            iw = ow * stride - padding + s
                            iwc = min(max(iw, 0), W - 1) if padding > 0 else iw
                            v = x[n, cbase + c, ihc, iwc]
                            if padding > 0 and (ih < 0 or ih >= H or iw < 0 or iw >= W):
                                v = float32(0.0)
                            for kk in range(group_size):
                                if k0 + kk < K:
                                    acc[kk] += v * w[k0 + kk, c, r, s]
    if slices > 1:
        # Slices 1.. leave their sums in shared memory (dynamic: the
        # launch sizes it); slice 0 adds them in slice order and stores.
        part = cuda.shared.array(0, float32)
        tx = cuda.threadIdx.x
        bx = cuda.blockDim.x
        # A block may hold several channel groups, one per threadIdx.z
        # (irprune's launch choice): each group owns its own bx columns of
        # every row of partial sums, which stays disjoint when a ragged last
        # group (fewer channels, its own IR template) shares the block.
        col = cuda.threadIdx.z * bx + tx
        row = bx * cuda.blockDim.z
        if sl > 0:
            for kk in range(group_size):
                part[((sl - 1) * group_size + kk) * row + col] = acc[kk]
        cuda.syncthreads()
        if sl > 0:
            return
        for q in range(1, slices):
            for kk in range(group_size):
                acc[kk] += part[((q - 1) * group_size + kk) * row + col]
    if not valid:
        return
    for kk in range(group_size):
        k = k0 + kk
        if k < K:
            o = acc[kk]
            if relu and o < float32(0.0):
                o = float32(0.0)
            y[n, k, oh, ow] = o
