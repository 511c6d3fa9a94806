"""Dense conv2d (NCHW, fp32) operator template with the input in shared-memory tiles.

Launch layout ("row tiles"): a block is ``rows`` whole output rows of one
image, one thread per output pixel (``rows * OW`` threads); grid x walks the
images' row tiles (``N * ceil(OH / rows)`` blocks) and grid y the groups of
``group_size`` output channels, as in :mod:`irprune.templates.conv2d`.

The block walks its input channels ``chunk`` at a time: it copies the input
rows its output rows read (``(rows - 1) * stride + R`` rows, padding zeroed)
of those channels into shared memory, each value loaded from global memory
once, then every thread reads its R x S taps from the tile. The weights stay
in the instruction stream (irprune makes them immediates); the input takes
this other path. A tap's shared-memory read feeds every output channel of
the group, so the tile replaces the R x S global loads of each pixel and
channel by about one.

Launched as plain Numba it is a correct dense convolution for any shapes;
``cuda.shared.array(0, ...)`` is dynamic, sized by the launch:
:func:`irprune.row_tile.tile_floats` floats (keep the two in step).
"""

from numba import cuda, float32

from irprune.template import sparse_conv

#: Upper bound of ``group_size`` (the per-thread accumulators are a local array).
MAX_GROUP = 64


@sparse_conv(weight="w", constants=("bias",))
@cuda.jit
def conv2d_rows(x, w, bias, y, stride, padding, relu, group_size, rows, chunk):
    """y = conv2d(x, w, groups=x.shape[1] // w.shape[1]) + bias, optionally ReLU; bias.shape[0] == 0 means none."""
    N, C, H, W = x.shape
    K = w.shape[0]
    Cg = w.shape[1]
    R = w.shape[2]
    S = w.shape[3]
    OH = y.shape[2]
    OW = y.shape[3]
    T = rows * OW
    IR = (rows - 1) * stride + R  # input rows of one tile
    IW = (OW - 1) * stride + S  # input columns of one tile
    # Tile rows are P floats apart. At stride 1, P = OW (mod 32) makes thread
    # t read bank t + const (mod 32), so a warp that straddles two output rows
    # reads 32 different banks.
    P = IW
    if stride == 1:
        P = IW + (OW - IW) % 32
    CL = min(IW, T)  # threads that fill one tile row
    RP = T // CL  # tile rows filled at once
    tiles = (OH + rows - 1) // rows
    b = cuda.blockIdx.x
    n = b // tiles
    oh0 = (b - n * tiles) * rows
    tid = cuda.threadIdx.x
    ohl = tid // OW
    ow = tid - ohl * OW
    # Rows past the output's last redo that last row and store the same
    # values as its own threads: no thread exits between the barriers and the
    # stores (an exit lets LLVM sink every FMA past the barriers, keeping
    # every loaded value live).
    oh = min(oh0 + ohl, OH - 1)
    ohl = oh - oh0
    rowlane = tid // CL
    lane = tid - rowlane * CL
    k0 = cuda.blockIdx.y * group_size
    cbase = (k0 // (K // (C // Cg))) * Cg
    tile = cuda.shared.array(0, float32)
    idle = chunk * IR * P + tid  # a slot of its own for a thread with nothing to fill
    acc = cuda.local.array(MAX_GROUP, float32)
    for kk in range(group_size):
        acc[kk] = float32(0.0)
        if bias.shape[0] > 0 and k0 + kk < K:
            acc[kk] = bias[k0 + kk]
    for c0 in range(0, Cg, chunk):
        cuda.syncthreads()  # everyone is done reading the previous chunk
        for cc in range(chunk):
            if c0 + cc < Cg:
                for rr0 in range(0, IR, RP):
                    rr = rr0 + rowlane
                    ih = oh0 * stride - padding + rr
                    ihc = min(max(ih, 0), H - 1)
                    for col0 in range(0, IW, CL):
                        col = col0 + lane
                        iw = col - padding
                        iwc = min(max(iw, 0), W - 1)
                        v = x[n, cbase + c0 + cc, ihc, iwc]
                        if ih < 0 or ih >= H or iw < 0 or iw >= W:
                            v = float32(0.0)
                        slot = (cc * IR + rr) * P + col
                        if rowlane >= RP or rr >= IR or col >= IW:
                            slot = idle  # no branch: the store goes somewhere harmless
                        tile[slot] = v
        cuda.syncthreads()  # the chunk is in shared memory
        for cc in range(chunk):
            c = c0 + cc
            if c < Cg:
                for r in range(R):
                    for s in range(S):
                        v = tile[(cc * IR + ohl * stride + r) * P + ow * stride + s]
                        for kk in range(group_size):
                            if k0 + kk < K:
                                acc[kk] += v * w[k0 + kk, c, r, s]
    for kk in range(group_size):
        k = k0 + kk
        if k < K:
            o = acc[kk]
            if relu and o < float32(0.0):
                o = float32(0.0)
            y[n, k, oh, ow] = o
