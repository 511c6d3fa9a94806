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
  broadcast 8-byte load of the pair, one address add, and per 32 pixels one load of the input
  and one FFMA. Lanes past the tile's last pixel read on into the next row (or the padding
  irprune.table_layout.shared_bytes adds after the last one): their sums are never stored, and
  a clamp would cost an add per 32 pixels instead of one per pair.
- With one slice a block stores its sums (plus bias, ReLU); with several, each block adds its
  sums into the output with atomics (the launch zeroes the output first; slice 0 adds the
  bias). With ``late_wait`` (sm_90 and newer) the zeroing is a kernel launched just before
  this one (templates/zero_fill.py), which lets this one launch at once: this kernel then
  waits for it (``griddepcontrol.wait``) only before its first add, after its copies and its
  loop, so that the zeroing and the launch overlap them (docs/perf-log.md, "The zeroing
  chained by programmatic dependent launch").

All index arithmetic is unsigned 64-bit: Numba adds a negative-index fix-up to every array
access with a signed index, some 20 instructions per nonzero in the inner loop. The threads per
block are a constant of the kernel (``threads``), not ``blockDim``: the strided copy loops then
need no division for their trip counts, which took about a tenth of the kernel's time
(docs/perf-log.md, "The table kernel taken apart").
"""

from llvmlite import ir
from numba import cuda, float32, int64, types, uint32, uint64
from numba.cuda.extending import intrinsic

from .grid_control import grid_wait

#: The most pixels one block may take, in 32-pixel steps (the per-lane accumulators are a
#: local array, whose size Numba must know when it types the kernel).
MAX_STEPS = 8


@intrinsic
def _bits_to_float(typingctx, bits):
    """The float32 whose bits are the uint32 ``bits`` (an LLVM bitcast: Numba has no scalar
    view that lowers without the CUDA driver)."""
    if bits != types.uint32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.uint32), codegen


@intrinsic
def _copy16(typingctx, dst, di, src, n, si):
    """``dst[di:di + 2] = src[n, si:si + 2]`` for int64 arrays, as one 16-byte load and store
    (the elements on 16 bytes): irprune.passes.async_copy turns the pair into one 16-byte
    ``cp.async``. Numba has no 16-byte scalar type to copy with."""
    def codegen(context, builder, signature, args):
        from numba.cuda import cgutils

        dty, _, sty, _, _ = signature.args
        d = context.make_array(dty)(context, builder, args[0])
        s = context.make_array(sty)(context, builder, args[2])
        dp = cgutils.get_item_pointer(context, builder, dty, d, [args[1]], wraparound=False)
        sp = cgutils.get_item_pointer(context, builder, sty, s, [args[3], args[4]],
                                      wraparound=False)
        wide = ir.IntType(128).as_pointer()
        v = builder.load(builder.bitcast(sp, wide), align=16)
        builder.store(v, builder.bitcast(dp, wide), align=16)
        return context.get_dummy_value()
    return types.void(dst, di, src, n, si), codegen


@cuda.jit(device=True, inline=True)
def _accumulate(acc, smq, smf, k, base, steps):
    """acc[j] += weight * input for pair ``k`` over the lane's pixels (_accumulate_pair)."""
    # one 8-byte shared load for the pair
    _accumulate_pair(acc, uint64(smq[k]), smf, base, steps)


@cuda.jit(device=True, inline=True)
def _accumulate_pair(acc, pair, smf, base, steps):
    """acc[j] += weight * input for the (offset, weight) ``pair`` (the offset its low word, the
    weight its high one) over the lane's pixels: the floats at ``base + offset + 32 j``
    (``base``: the input tile's start plus the lane)."""
    off = pair & uint64(0xFFFFFFFF)
    w = _bits_to_float(uint32(pair >> uint64(32)))
    at = base + off
    for j in range(steps):
        acc[j] += w * smf[at + uint64(32) * j]


@cuda.jit
def conv2d_table(x, x2, pairs, pairs2, rowptr, bias, y, stride, channels, width, tile_k, slices,
                 tile_p, relu, atomic, copy_bytes, threads, pitch, late_wait):
    """y = conv2d(x, W) + bias for a 1x1 kernel, W given as per-block (offset, weight) tables.

    ``x`` is passed as N x (C * H * W) and ``y`` as N x K x (OH * OW); ``channels`` and
    ``width`` are the input's C and W. ``x2`` and ``pairs2`` are ``x`` and ``pairs`` seen as
    int64 (irprune binds them to the same memory): where a slice's rows are one run the input
    is copied ``copy_bytes`` (4, 8 or 16) bytes at a time (irprune.table_layout.input_copy_bytes;
    irprune checks the input's alignment at launch), and the pairs always 16 bytes at a time.
    With ``pitch`` (irprune.table_layout.row_pitch: a strided layer, the whole image a tile) the
    block copies each row it reads whole, 16 bytes at a time, ``pitch`` floats apart, into a
    staging area, then packs the values the layer reads into the tile as a stride-1 layer's.
    ``late_wait``: wait for the grid before (the zeroing kernel) just before the adds; the
    kernel reads its input before that wait, so it must be launched right after the zeroing
    kernel, which lets it start only once that kernel's own wait has returned.
    Launch: grid (K / tile_k, slices, N * pixel tiles), ``threads`` (a multiple of 32) threads.
    """
    one = uint64(1)
    C = uint64(channels)
    W = uint64(width)
    HW = uint64(x.shape[1]) // C
    K = uint64(y.shape[1])
    P = uint64(y.shape[2])  # output pixels of an image
    ST = uint64(stride)
    OW = (W - one) // ST + one
    PITCH = uint64(pitch)
    TK = uint64(tile_k)
    TP = uint64(tile_p)
    CS = C // uint64(slices)
    # pairs.shape[1] int32 words: (offset, weight bits) pairs, padded to a multiple of 4
    words = uint64(pairs.shape[1])
    ptiles = (P + TP - one) // TP
    t = uint64(cuda.blockIdx.x)
    s = uint64(cuda.blockIdx.y)
    z = uint64(cuda.blockIdx.z)
    n = z // ptiles
    p0 = (z - n * ptiles) * TP
    npx = min(TP, P - p0)
    tid = uint64(cuda.threadIdx.x)
    nt = uint64(threads)
    lane = tid & uint64(31)
    warp = tid >> uint64(5)
    blk = s * (K // TK) + t
    # One dynamic shared buffer seen as ints and as floats: pairs, then row offsets, then input.
    smi = cuda.shared.array(0, "int32")
    smf = cuda.shared.array(0, float32)
    smq = cuda.shared.array(0, int64)  # the same bytes, 8 at a time (copies only)
    rows = words
    two = uint64(2)
    xs = words + ((TK + uint64(4)) & ~uint64(3))  # a multiple of 4: 16-byte aligned
    # a block's pairs are a whole number of 16-byte pieces (irprune.table_layout.build_tables)
    for i in range(tid, words // uint64(4), nt):
        _copy16(smq, two * i, pairs2, blk, two * i)
    for i in range(tid, TK + one, nt):
        smi[rows + i] = rowptr[blk, i]
    first = s * CS * HW  # the slice's first input channel
    if ST == one and TP == P and copy_bytes == 16:
        # the slice's input rows are one run of CS * HW values: 16-byte copies, no index math
        for i in range(tid, CS * P // uint64(4), nt):
            _copy16(smq, xs // two + two * i, x2, n, first // two + two * i)
    elif ST == one and TP == P and copy_bytes == 8:
        for i in range(tid, CS * P // two, nt):
            smq[xs // two + i] = x2[n, first // two + i]
    elif ST == one and TP == P:
        for i in range(tid, CS * P, nt):
            smf[xs + i] = x[n, first + i]
    elif PITCH > uint64(0):
        # the rows the layer reads (every ST-th of each channel), PITCH floats each, staged after
        # the tile: PITCH / 4 16-byte pieces a row, OH rows a channel (all of them multiples of
        # 4 floats apart)
        pieces = PITCH // uint64(4)
        OH = P // OW
        st = xs + ((CS * P + uint64(3)) & ~uint64(3))
        for i in range(tid, CS * OH * pieces, nt):
            row = uint64(uint32(i) // uint32(pieces))
            c = uint64(uint32(row) // uint32(OH))
            r = row - c * OH
            src = first + c * HW + r * ST * W + (i - row * pieces) * uint64(4)
            _copy16(smq, st // two + two * i, x2, n, src // two)
        cuda.syncthreads()
        # then each channel's used values packed into the tile, P floats a channel as on a
        # stride-1 layer: the loop's lanes then read consecutive floats. Read in place, a
        # stride-ST row is 2-way bank-conflicted for ST = 2 (every lane on an even bank);
        # packing costs each value one shared load and store, where the loop reads it once
        # per nonzero of its channel in the block (docs/perf-log.md, "Strided rows packed").
        # A thread keeps its pixel and strides over channels (its place worked out once: an
        # index divided by P and OW in the loop cost more than the packing's loads and stores).
        cstep = max(nt // P, one)
        if tid < cstep * P:
            c0 = uint64(uint32(tid) // uint32(P))
            for q in range(tid - c0 * P, P, nt):
                r = uint64(uint32(q) // uint32(OW))
                src = st + r * PITCH + (q - r * OW) * ST
                for c in range(c0, CS, cstep):
                    smf[xs + c * P + q] = smf[src + c * OH * PITCH]
    else:
        for i in range(tid, CS * TP, nt):
            # 32-bit division by the constants: a multiply-high and a shift, not a 64-bit one
            c = uint64(uint32(i) // uint32(TP))
            q = i - c * TP
            p = p0 + min(q, npx - one)  # pixels past the last read the last (never stored)
            r = uint64(uint32(p) // uint32(OW))
            col = p - r * OW
            smf[xs + i] = x[n, first + c * HW + r * ST * W + col * ST]
    cuda.syncthreads()
    steps = (TP + uint64(31)) // uint64(32)
    base = xs + lane
    for o in range(warp, TK, nt >> uint64(5)):
        b = uint64(smi[rows + o])
        e = uint64(smi[rows + o + one])
        acc = cuda.local.array(MAX_STEPS, float32)
        for j in range(steps):
            acc[j] = float32(0.0)
        # two pairs an iteration (half the loop's own instructions), then an odd last one
        for k in range(b, e - ((e - b) & one), uint64(2)):
            _accumulate(acc, smq, smf, k, base, steps)
            _accumulate(acc, smq, smf, k + one, base, steps)
        if (e - b) & one:
            _accumulate(acc, smq, smf, e - one, base, steps)
        if late_wait:
            # the output is zero from here on (later calls return at once)
            grid_wait()
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
