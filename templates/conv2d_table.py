"""1x1 conv2d (NCHW, fp32) with the weights read as data: the table template.

The other templates put every nonzero weight in the instruction stream: an FFMA with an
immediate, 16 bytes of code per nonzero. On layers of 50,000 nonzeros and more at batch 1
those kernels wait for their code (docs/perf-log.md, "The large layers wait for their code").
This template is a short loop instead, and each nonzero is an 8-byte (input offset, weight)
pair in a table that irprune builds from the weights and puts into the module itself
(irprune.passes.embed_tables): the kernel still takes only the input, the output and the
batch, and no zero weight is stored or read.

Launch layout (irprune.table_layout builds the tables in this order):

- grid x: tiles of ``tile_k`` output channels; grid y: ``slices`` runs of input channels;
  grid z: image times tiles of ``tile_p`` output pixels.
- A block first copies into shared memory its (offset, weight) pairs, their row offsets (one
  row per output channel of its tile) and its input rows (``C / slices`` channels times
  ``tile_p`` pixels). irprune.passes.async_copy turns these copies into ``cp.async``.
- Each warp then runs output channels ``warp, warp + warps, ...`` of the tile: per nonzero one
  broadcast load of the pair and, per 32 pixels, one load of the input and one FFMA.
- With one slice a block stores its sums (plus bias, ReLU); with several, each block adds its
  sums into the output with atomics (the launch zeroes the output first; slice 0 adds the
  bias).

All index arithmetic is unsigned 64-bit: Numba adds a negative-index fix-up to every array
access with a signed index, some 20 instructions per nonzero in the inner loop.
"""

from numba import cuda, float32, uint64

#: The most pixels one block may take, in 32-pixel steps (the per-lane accumulators are a
#: local array, whose size Numba must know when it types the kernel).
MAX_STEPS = 8


@cuda.jit
def conv2d_table(x, pairs, rowptr, bias, y, stride, tile_k, slices, tile_p, relu, atomic):
    # (launch: grid (K / tile_k, slices, N * pixel tiles), any multiple of 32 threads)
    """y = conv2d(x, W) + bias for a 1x1 kernel, W given as per-block (offset, weight) tables."""
    one = uint64(1)
    N = uint64(x.shape[0])
    C = uint64(x.shape[1])
    W = uint64(x.shape[3])
    K = uint64(y.shape[1])
    P = uint64(y.shape[2])  # output pixels of an image (the output is passed as N x K x P)
    OW = (W - one) // uint64(stride) + one
    TK = uint64(tile_k)
    TP = uint64(tile_p)
    CS = C // uint64(slices)
    # pairs.shape[1] int32 words: (offset, weight bits) pairs, padded to an even count
    words = uint64(pairs.shape[1])
    ptiles = (P + TP - one) // TP
    t = uint64(cuda.blockIdx.x)
    s = uint64(cuda.blockIdx.y)
    z = uint64(cuda.blockIdx.z)
    n = z // ptiles
    p0 = (z - n * ptiles) * TP
    npx = min(TP, P - p0)
    tid = uint64(cuda.threadIdx.x)
    nt = uint64(cuda.blockDim.x)
    lane = tid & uint64(31)
    warp = tid >> uint64(5)
    blk = s * (K // TK) + t
    # One dynamic shared buffer seen as ints and as floats: pairs, then row offsets, then input.
    smi = cuda.shared.array(0, "int32")
    smf = cuda.shared.array(0, float32)
    rows = words
    xs = words + ((TK + uint64(4)) & ~uint64(3))
    for i in range(tid, words, nt):
        smi[i] = pairs[blk, i]
    for i in range(tid, TK + one, nt):
        smi[rows + i] = rowptr[blk, i]
    for i in range(tid, CS * TP, nt):
        c = i // TP
        q = i - c * TP
        p = p0 + min(q, npx - one)  # pixels past the last read the last (never stored)
        r = p // OW
        col = p - r * OW
        smf[xs + i] = x[n, s * CS + c, r * uint64(stride), col * uint64(stride)]
    cuda.syncthreads()
    steps = (TP + uint64(31)) // uint64(32)
    for o in range(warp, TK, nt >> uint64(5)):
        b = uint64(smi[rows + o])
        e = uint64(smi[rows + o + one])
        acc = cuda.local.array(MAX_STEPS, float32)
        for j in range(steps):
            acc[j] = float32(0.0)
        for k in range(b, e):
            off = uint64(smi[uint64(2) * k])
            w = smf[uint64(2) * k + one]
            for j in range(steps):
                acc[j] += w * smf[xs + off + min(lane + uint64(32) * j, TP - one)]
        ko = t * TK + o
        for j in range(steps):
            q = lane + uint64(32) * j
            if q < npx:
                v = acc[j]
                if bias.shape[0] > 0 and s == uint64(0):
                    v += bias[ko]
                if atomic:
                    cuda.atomic.add(y, (n, ko, p0 + q), v)
                else:
                    if relu and v < float32(0.0):  # (not max(): that links libdevice)
                        v = float32(0.0)
                    y[n, ko, p0 + q] = v
