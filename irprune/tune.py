"""A small autotuner: per layer and GPU, the channel-group size and block size that run fastest.

Two knobs shape a kernel. ``group_size`` (output channels per thread and per
code region) trades input reuse against parallelism: every input value a
thread loads feeds ``group_size`` accumulators, but a layer has only
``N * OH * OW * ceil(K / group_size)`` threads, few at batch 1. ``block``
(threads per block) sets how many blocks the grid has and how they fill the
SMs. ``slices`` splits each pixel's input channels over rows of threads.
And for layers with many output pixels the built-in template has a second
launch layout, row tiles (irprune.row_tile): a block of whole output rows
that reads its input from shared memory, with ``(rows, chunk)`` as its knobs.
Each pixel-layout kernel is also timed with register budgets for ptxas
(irprune.register_budget), which set how many loads a thread keeps in flight,
and with several channel groups per block (``groups_per_block``, threadIdx.z):
their warps read the same input pixels, so the input comes from L2 once per
block instead of once per group.
A large 1x1 layer is also timed in the table layout (irprune.table_layout): its
weights as (offset, weight) data in the module instead of immediates in the code,
a short loop that does not wait for instruction fetch. And each pixel-layout
configuration is timed in each channel order (irprune.channel_order) that changes
its groups: ``shared`` groups output channels that read the same input positions.
None of this is predictable enough from the shape alone (the best choice
moves with batch, sparsity and GPU), so :func:`autotune` compiles each
candidate configuration (through the disk cache), times each with every
block size that fits on the GPU, times the fastest few again (:func:`finalists`:
the best candidates are often within a timing's noise of each other) and keeps
the fastest of that second round. The choice is stored in the
disk cache under the weights, shapes, options and GPU, so the next
``autotune`` of the same layer on the same GPU compiles one kernel and times
nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from .errors import ValidationError
from .geometry import ConvGeometry
from .table_layout import THREADS as TABLE_THREADS
from .table_layout import TableConfig

#: Candidate threads per block (along the pixels; times ``slices`` rows in all). Every multiple
#: of 32 from 64 to 256, not only the powers of two: a batch-1 grid is a wave or less, and how
#: its tiles of pixels fall on the SMs is set by the block (resnet_3x3_56's 3,136 pixels make
#: 100 blocks of 128 or 132 of 96). Timed on the standing's 30 immediate-weight batch-1
#: configurations, another block was 1.03-1.10x faster on six of them (96 on resnet_3x3_56
#: and l1_1x1_256_64, 160 on l2_down_256_512_s2, 192 on vgg16_c2 and vgg16_c3, 224 on
#: l1_1x1_64_256) and not faster on the others; a whole standing with the blocks re-timed moved
#: within its run-to-run spread (docs/perf-log.md, "Blocks of any multiple of 32").
BLOCKS = (64, 96, 128, 160, 192, 224, 256)
#: Candidate input-channel slices (rows of threads that split a pixel's input channels).
SLICE_TARGETS = (1, 2, 4, 8)
#: The fewest input channels a slice may get: fewer and the block's
#: shared-memory reduction costs more than the slice's own work.
MIN_SLICE_CHANNELS = 4
#: Candidate channel-group sizes (each replaced by a nearby divisor of K when one is close).
GROUP_TARGETS = (4, 8, 16, 32, 64)
#: Group size 2 is also a candidate where group size 4 leaves fewer threads than this (about
#: one 256-thread block per SM). Timed on all 17 1x1 layers at 6450689 it won once, on the
#: layer with the fewest threads (l3_1x1_1024_256: 196 pixels, 12,544 threads at group 4),
#: by 1.9%, and elsewhere only cost compiles (docs/perf-log.md, "Group size 2 and 16 groups
#: per block"); at 75ad652, without it, that layer's tuned time was 5% longer.
FEW_THREADS = 32_768
#: Group size 1 (one output channel a code region) is also a candidate where group size 4
#: leaves fewer threads than this. On the H200 at 12102bf (tools/experiments/fine_split.py,
#: docs/perf-log.md, "Group size 1 on the layers with the fewest threads") it took
#: alexnet_cifar_c2 from 2.94 to 1.87 us and alexnet_cifar_c3 from 3.04 to 1.92 (2,048 and
#: 1,024 threads at group size 4), and lost on every layer of 12,544 threads or more.
VERY_FEW_THREADS = 8_192
#: The fastest this many candidates of the first round are timed again, twice each and
#: interleaved, before one is kept: on the 1x1 layers the best candidates lie within a few
#: percent, less than a short timing's run-to-run spread (docs/perf-log.md).
FINALISTS = 4
#: The largest IR template (group_size x C x R x S dense chains) a candidate may need: the
#: template's unrolling time grows with it (6 s for 36,864 chains on the 2-core machine).
MAX_TEMPLATE_CHAINS = 80_000
#: A layer with more nonzeros than this is a *large* layer: its candidates are cut down, since
#: every configuration is a full compile (about 0.35 ms of one core per nonzero, ptxas
#: included: pw_512_1024_7's 52,429 nonzeros took 18 s on 2 cores) and a 1x1 layer has about
#: 23 configurations times 3 register budgets. The largest layers of the bench's 0.9 suites
#: below it have 26,214 nonzeros, above it 52,428 to 235,929.
LARGE_NNZ = 40_000
#: A large layer is tuned with only its smallest this many candidate group sizes, each with the
#: slice counts LARGE_SLICES. At 18b0741 (two smallest group sizes, every slice count) the
#: larger of the two won on 6 of the 7 large 1x1 layers, and more slices were slower at the
#: same group size on all 7 (1.2-2.1x at 4 slices): docs/perf-log.md.
LARGE_GROUP_SIZES = 4
#: The slice counts a large layer is tuned with (see LARGE_GROUP_SIZES).
LARGE_SLICES = (1, 2)
#: A large layer's register budgets: 128 won on 15 of the 17 1x1 layers at 5811e96 (and a budget
#: costs a ptxas run over the whole layer).
LARGE_REGISTER_CAPS = (128,)
#: Candidate channel groups per block (pixel layout; each must divide the group count).
#: 16 never won at 6450689.
GROUPS_PER_BLOCK = (1, 2, 4, 8)
#: The channel orders (irprune.channel_order) each pixel-layout configuration is timed in, where
#: an order changes its groups (:func:`candidate_channel_orders`). Side by side on the standing's
#: configurations at a1046ce, ``shared`` was 1.021x on the 19 immediate-weight 1x1 layers (17
#: faster) and 0.988x on six seed layers (docs/perf-log.md, "Output channels grouped by their
#: nonzeros"): a choice per layer, not a default.
CHANNEL_ORDERS = ("natural", "shared")
#: Bumped when the candidates or the measurement change, so stored choices are redone.
TUNE_FORMAT = 12
#: Row tiles are timed with the largest this many candidate group sizes of at least
#: irprune.row_tile.MIN_GROUP (each (group size, tile) pair is a compile).
TILE_GROUP_SIZES = 2


@dataclass(frozen=True)
class Choice:
    """A tuned configuration and what it was measured at."""

    group_size: int
    block: int
    median_us: float
    slices: int = 1
    #: (rows, chunk) of a row-tile kernel, else None.
    tile: tuple[int, int] | None = None
    #: The register budget given to ptxas (None: ptxas's own choice).
    max_registers: int | None = None
    #: Channel groups per block (threadIdx.z; SparseConvKernel.groups_per_block).
    groups_per_block: int = 1
    #: The table layout's configuration (irprune.table_layout) when the choice is a table
    #: kernel (then ``group_size`` is its tile_k and ``block`` its threads), else None.
    table: TableConfig | None = None
    #: The order output channels are grouped in (irprune.channel_order).
    channel_order: str = "natural"

    @property
    def layout(self) -> str:
        """``"table"`` or ``"immediate"`` (weights as data, or as immediates in the code)."""
        return "table" if self.table else "immediate"


def candidate_group_sizes(g: ConvGeometry, max_group: int = 64) -> list[int]:
    """Group sizes worth timing for ``g``: near each of GROUP_TARGETS (and 2 where group size 4
    leaves fewer than FEW_THREADS threads, 1 as well where it leaves fewer than
    VERY_FEW_THREADS), divisors of K preferred.

    With convolution groups only divisors of K / groups qualify (a region
    must not straddle two groups).
    """
    crs = g.Cg * g.R * g.S
    out = []
    threads = g.N * g.OH * g.OW * -(-g.K // 4)  # at group size 4
    small = (1, 2) if threads < VERY_FEW_THREADS else (2,) if threads < FEW_THREADS else ()
    for t in small + GROUP_TARGETS:
        t = min(t, g.K, max_group)
        if g.groups > 1:
            t = min(t, g.Kg)
            out.append(max(d for d in range(1, t + 1) if g.Kg % d == 0))
            continue
        divs = [d for d in range(1, t + 1) if g.K % d == 0]
        best = max(divs)
        gs = best if 2 * best >= t else t
        if gs * crs <= MAX_TEMPLATE_CHAINS or not out:
            out.append(gs)
    if g.groups == 1 and g.K <= max_group and g.K * crs <= MAX_TEMPLATE_CHAINS:
        out.append(g.K)
    return sorted(set(out))


def finalists(entries, retime, n: int = FINALISTS):
    """The winner of a second round among the ``n`` fastest of ``entries``.

    ``entries`` are ``(microseconds, item)`` pairs from the first round;
    ``retime(item)`` times an item again. Each finalist is timed twice, the
    finalists interleaved (so a drift in the GPU's clocks touches them
    alike), and the one with the smallest new time wins: the first round's
    best time is biased low (it is the minimum of many noisy timings), a new
    timing of the same candidates is not. Returns ``(microseconds, item,
    rounds)``: the winner's better new time, the winner, and for every
    finalist ``(first time, [new times], item)``, fastest first.
    """
    top = sorted(entries, key=lambda e: e[0])[:max(1, n)]
    if len(top) < 2:
        return top[0][0], top[0][1], [(top[0][0], [], top[0][1])]
    again = [[] for _ in top]
    for _ in range(2):
        for i, (_, item) in enumerate(top):
            again[i].append(float(retime(item)))
    win = min(range(len(top)), key=lambda i: min(again[i]))
    return min(again[win]), top[win][1], [(us, t, item) for (us, item), t in zip(top, again)]


def candidate_slices(g: ConvGeometry) -> list[int]:
    """Slice counts worth timing for ``g``: 1, and 2/4/8 where each slice keeps MIN_SLICE_CHANNELS channels."""
    return [s for s in SLICE_TARGETS if s == 1 or g.Cg // s >= MIN_SLICE_CHANNELS]


def is_large(nnz: int | None) -> bool:
    """Whether a layer of ``nnz`` nonzeros is tuned over the cut-down candidates (LARGE_NNZ;
    None, an unknown count, is not large)."""
    return nnz is not None and nnz > LARGE_NNZ


def large_cut(sizes: list[int], cuts: list[int], nnz: int | None
              ) -> tuple[list[int], list[int]]:
    """The group sizes and slice counts a layer of ``nnz`` nonzeros is tuned with, out of
    ``sizes`` and ``cuts``: all of them, or for a large layer (:func:`is_large`) its
    LARGE_GROUP_SIZES smallest group sizes above 1 and the slice counts in LARGE_SLICES."""
    if not is_large(nnz):
        return list(sizes), list(cuts)
    # Group size 1 was never timed on a large layer (a compile of one region per output
    # channel, and it lost on every layer of 12,544+ threads), so it does not take the place
    # of a larger size there.
    sizes = [s for s in sizes if s > 1] or list(sizes)
    return sizes[:LARGE_GROUP_SIZES], [c for c in cuts if c in LARGE_SLICES]


def candidate_configs(g: ConvGeometry, max_group: int = 64, tiles: bool = True,
                      nnz: int | None = None) -> list[tuple[int, int, tuple[int, int] | None]]:
    """(group_size, slices, tile) configurations worth compiling for ``g``: each candidate group
    size with each slice count that leaves a block size to launch it with (tile None: the
    pixel layout); with ``tiles``, also :func:`candidate_tile_configs` (slices 1). A layer of
    more than LARGE_NNZ nonzeros (``nnz``) gets only its LARGE_GROUP_SIZES smallest group
    sizes with LARGE_SLICES, and one row-tile group size."""
    sizes, cuts = large_cut(candidate_group_sizes(g, max_group), candidate_slices(g), nnz)
    pixel = [(gs, s, None) for gs in sizes for s in cuts if candidate_blocks(gs, s)]
    return pixel + (candidate_tile_configs(g, max_group, nnz) if tiles else [])


def candidate_tile_configs(g: ConvGeometry, max_group: int = 64, nnz: int | None = None
                           ) -> list[tuple[int, int, tuple[int, int]]]:
    """Row-tile configurations for ``g``: irprune.row_tile.candidate_tiles with the largest
    TILE_GROUP_SIZES candidate group sizes of at least irprune.row_tile.MIN_GROUP channels
    (the largest one when none is that large; only the largest for a large layer)."""
    from .row_tile import MIN_GROUP, candidate_tiles

    tiles = candidate_tiles(g)
    if not tiles:
        return []
    sizes = candidate_group_sizes(g, max_group)
    keep = 1 if is_large(nnz) else TILE_GROUP_SIZES
    sizes = [gs for gs in sizes if gs >= MIN_GROUP][-keep:] or sizes[-1:]
    return [(gs, 1, t) for gs in sizes for t in tiles]


def candidate_register_caps(tile, nnz: int | None = None) -> list[int | None]:
    """Register budgets to time a configuration with: irprune.register_budget.CANDIDATES for
    the pixel layout (LARGE_REGISTER_CAPS for a layer of more than LARGE_NNZ nonzeros); ptxas's
    own choice only for a row tile (whose block size, fixed by the layout, must keep fitting
    the registers)."""
    from .register_budget import CANDIDATES

    if tile:
        return [None]
    return list(LARGE_REGISTER_CAPS if is_large(nnz) else CANDIDATES)


def candidate_channel_orders(g: ConvGeometry, group_size: int, tile,
                             orders=CHANNEL_ORDERS) -> list[str]:
    """The channel orders of ``orders`` to time a configuration in: ``natural`` (when listed) and
    each other order that can change its groups, that is with channel groups of 2 to K - 1
    channels (one channel a group, or one group, is the same kernel in any order), a group size
    that divides K, no convolution groups and the pixel layout (irprune.channel_order's own
    refusals); ``["natural"]`` where none of ``orders`` would."""
    from .channel_order import ORDERS

    bad = [o for o in orders if o not in ORDERS]
    if bad or not orders:
        raise ValidationError(f"channel orders must be some of {', '.join(ORDERS)}, got "
                              f"{list(orders)}", stage="tune")
    reorders = (1 < group_size < g.K and g.K % group_size == 0 and g.groups == 1
                and not tile)
    # Where no listed order changes the groups, the kernel is the natural order's.
    return [o for o in dict.fromkeys(orders) if o == "natural" or reorders] or ["natural"]


def candidate_table_configs(weight: np.ndarray, g: ConvGeometry, cpu: str, relu: bool = False,
                            nnz: int | None = None) -> list[TableConfig]:
    """Table-layout configurations to time for ``weight`` on layer ``g``: those of
    irprune.table_layout.candidate_configs for a large layer (:func:`is_large`), none for the
    others. On the 17 smaller 1x1 layers of the bench the layout ran at 0.27-0.61x the tuned
    immediate kernels; on the 7 large ones it won 4 times (docs/perf-log.md)."""
    from .table_layout import candidate_configs as table_configs

    if not is_large(nnz):
        return []
    return table_configs(weight, g, cpu, relu)


def table_kernels(compile_one, threads=TABLE_THREADS) -> list:
    """The table kernels of one configuration to time: ``compile_one(block)`` for each of
    ``threads`` (a table kernel's thread count is a constant of its code), those whose
    registers fit their block."""
    from .kernel import _registers_fit

    out = []
    for b in threads:
        k = compile_one(b)
        if _registers_fit(b, k.registers):
            out.append(k)
    return out


def compile_choice(template, weight, input_shape, choice: Choice, **compile_kw):
    """The kernel of a stored ``choice``, its launch shape set (compiled through the cache)."""
    if choice.table is not None:
        from .table_kernel import compile_table_conv2d

        kw = {n: compile_kw[n] for n in ("stride", "bias", "relu", "cpu", "cache", "assemble")
              if n in compile_kw}
        return compile_table_conv2d(weight, input_shape, choice.table, block=choice.block, **kw)
    k = template_for(template, choice.tile).compile(
        weight, input_shape, group_size=choice.group_size, slices=choice.slices,
        tile=choice.tile, max_registers=choice.max_registers,
        channel_order=choice.channel_order, **compile_kw)
    k.block, k.groups_per_block = choice.block, choice.groups_per_block
    return k


def _choice_dict(c: Choice) -> dict:
    return dict(c.__dict__, table=c.table.__dict__ if c.table else None, layout=c.layout)


def tuned_stats(choice: Choice, cached: bool) -> dict:
    """What ``kernel.stats["tuned"]`` says of a ``choice``."""
    return {"layout": choice.layout, "group_size": choice.group_size, "block": choice.block,
            "slices": choice.slices, "tile": choice.tile, "max_registers": choice.max_registers,
            "groups_per_block": choice.groups_per_block,
            "table": choice.table.__dict__ if choice.table else None,
            "channel_order": choice.channel_order, "cached": cached}


def template_for(template, tile):
    """The template that compiles a configuration: the built-in row-tile template for a tile of
    the built-in template, else ``template`` itself."""
    from .templates.conv2d import conv2d_nchw
    from .templates.conv2d_rows import conv2d_rows

    if tile and template is conv2d_nchw:
        return conv2d_rows
    return template


def candidate_blocks(group_size: int, slices: int, blocks=BLOCKS, registers: int | None = None,
                     groups_per_block: int = 1) -> list[int]:
    """Blocks (threads along the pixels) that fit ``slices`` rows of ``groups_per_block``
    channel groups (irprune.kernel.block_fits: threads, shared memory, and registers once
    ptxas's count is known); with slices or several groups, 32 as well (the rows or groups
    then make the block)."""
    from .kernel import block_fits

    extra = (32,) if slices > 1 or groups_per_block > 1 else ()
    return [b for b in dict.fromkeys((*extra, *blocks))
            if block_fits(slices, group_size, b, registers, groups_per_block)]


def kernel_blocks(k, blocks=BLOCKS, groups_per_block: int = 1) -> list[int]:
    """The blocks to time a compiled kernel with: its own for a row-tile kernel (fixed by the
    layout; none if its registers do not fit), else :func:`candidate_blocks`."""
    from .kernel import _registers_fit

    if k.tile:
        return [k.block] if _registers_fit(k.block, k.registers) else []
    return candidate_blocks(min(k.group_size, k.geometry.K), k.slices, blocks, k.registers,
                            groups_per_block)


def candidate_groups_per_block(k, candidates=GROUPS_PER_BLOCK) -> list[int]:
    """Groups per block worth timing for compiled kernel ``k``: each of ``candidates`` that
    divides every part's group count (only 1 for a row-tile kernel, whose block is its rows)."""
    if k.tile:
        return [m for m in candidates if m == 1]
    return [m for m in candidates if all(p.groups % m == 0 for p in k.parts)]


def launch_shapes(k, blocks=BLOCKS, groups_per_block=GROUPS_PER_BLOCK) -> list[tuple[int, int]]:
    """(block, groups_per_block) pairs to time compiled kernel ``k`` with: for each count of
    :func:`candidate_groups_per_block`, the :func:`kernel_blocks` that fit it."""
    return [(b, m) for m in candidate_groups_per_block(k, groups_per_block)
            for b in kernel_blocks(k, blocks, m)]


def _configs(template, g: ConvGeometry, group_sizes, slices, tiles, nnz: int | None = None
             ) -> list:
    """autotune's (group_size, slices, tile) candidates (see its docstring)."""
    from .templates.conv2d import conv2d_nchw

    # Sizes or slices the caller names are kept as they are; only the tuner's own are cut.
    cut_sizes, cut_slices = large_cut(candidate_group_sizes(g), candidate_slices(g), nnz)
    sizes = list(group_sizes) if group_sizes else cut_sizes
    if getattr(template, "row_tiles", False):
        from .row_tile import candidate_tiles

        found = candidate_tiles(g) or [(1, 1)]
        return [(gs, 1, t) for gs in sizes for t in found]
    cuts = list(slices) if slices else cut_slices
    if not getattr(template, "splits", False):
        cuts = [1]
    out = [(gs, sl, None) for gs in sizes for sl in cuts]
    if tiles is None:
        tiles = template is conv2d_nchw
    if tiles:
        tile_cfgs = candidate_tile_configs(g, nnz=nnz)
        if group_sizes:
            tile_cfgs = [(gs, 1, t) for gs in sizes for t in sorted({c[2] for c in tile_cfgs})]
        out += sorted(tile_cfgs, key=lambda c: (c[0], c[2]))
    return out


def time_kernel(kernel, x, y, launches: int = 50, repeats: int = 3) -> float:
    """Median microseconds per launch of ``kernel`` on device arrays ``x``, ``y`` (CUDA events)."""
    from numba import cuda

    for _ in range(3):
        kernel(x, out=y)
    samples = []
    for _ in range(repeats):
        start, stop = cuda.event(), cuda.event()
        start.record()
        for _ in range(launches):
            kernel(x, out=y)
        stop.record()
        stop.synchronize()
        samples.append(cuda.event_elapsed_time(start, stop) * 1e3 / launches)
    return float(np.median(samples))


def device_id() -> str:
    """The current GPU's name and compute capability (part of the choice's key)."""
    from numba import cuda

    dev = cuda.get_current_device()
    name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
    return f"{name} sm_{dev.compute_capability[0]}{dev.compute_capability[1]}"


def device_arch() -> str:
    """The current GPU's architecture as irprune compiles for it (``"sm_90"``)."""
    from numba import cuda

    cc = cuda.get_current_device().compute_capability
    return f"sm_{cc[0]}{cc[1]}"


def choice_key(template, weight: np.ndarray, g: ConvGeometry, bias, relu: bool, cpu: str,
               device: str, tiles=None, register_caps=None,
               groups_per_block=GROUPS_PER_BLOCK, tables=None,
               channel_orders=CHANNEL_ORDERS) -> str:
    from dataclasses import asdict

    from .cache import digest, toolchain_fingerprint

    return digest("tune", TUNE_FORMAT, template.source_digest(), asdict(g), weight.tobytes(),
                  b"" if bias is None else np.asarray(bias, np.float32).tobytes(), bool(relu), cpu,
                  device, toolchain_fingerprint(), repr(tiles),  # with or without row tiles
                  repr(register_caps), repr(tuple(groups_per_block)), repr(tables),
                  repr(tuple(channel_orders)))


def autotune(template, weight, input_shape, stride: int = 1, padding: int = 0, bias=None,
             relu: bool = False, cpu: str | None = None, cache=None, group_sizes=None,
             blocks=BLOCKS, measure=None, log=None, groups: int = 1, slices=None, tiles=None,
             register_caps=None, groups_per_block=GROUPS_PER_BLOCK, tables=None,
             channel_orders=None):
    """Compile and time the candidates; return the fastest kernel (its ``block`` set) and the table.

    ``measure(kernel) -> microseconds`` times one configured kernel (default:
    CUDA events on random input). ``group_sizes`` and ``slices`` override the
    candidates (default: :func:`candidate_configs`, fewer for a layer of more than
    LARGE_NNZ nonzeros); ``tiles`` (default: True
    for the built-in template) adds the row-tile candidates, compiled with the
    built-in row-tile template; a row-tile template of one's own is timed with
    row tiles only. ``register_caps`` overrides the register budgets timed with
    each pixel-layout configuration (default :func:`candidate_register_caps`;
    None in it means ptxas's own choice); ``groups_per_block`` the channel
    groups per block tried with each (:func:`launch_shapes`). ``tables`` (default: True for
    the built-in template) adds the table-layout candidates of a large 1x1 layer
    (:func:`candidate_table_configs`), each compiled and timed with TABLE_THREADS threads; the winner may
    then be an :class:`irprune.table_kernel.TableConvKernel`. ``channel_orders`` are the
    channel orders each pixel-layout configuration is compiled in where they change its groups
    (:func:`candidate_channel_orders`; default: CHANNEL_ORDERS for the built-in template,
    ``("natural",)``, one compile a configuration, for a template of one's own, whose output
    stores the pass place-output-channels may not be able to move).
    Returns ``(kernel, table)`` where
    ``table`` lists every measured :class:`Choice`, empty when the choice came from the cache.
    """
    from .geometry import check_weight
    from .kernel import _resolve_cache
    from .launch import _require_gpu

    _require_gpu()
    from numba import cuda

    w = check_weight(weight)
    g = ConvGeometry.from_weight(w.shape, input_shape, stride, padding, groups)
    if cpu is None:
        cpu = device_arch()
    store = _resolve_cache(cache)
    if register_caps is not None:
        from .register_budget import check_max_registers

        register_caps = [check_max_registers(c) for c in register_caps] or [None]
    groups_per_block = tuple(groups_per_block)
    if not groups_per_block or any(type(m) is not int or m < 1 for m in groups_per_block):
        raise ValidationError(f"groups_per_block must list positive ints, got {groups_per_block}",
                              stage="tune")
    if channel_orders is None:
        from .templates.conv2d import conv2d_nchw

        channel_orders = CHANNEL_ORDERS if template is conv2d_nchw else ("natural",)
    channel_orders = tuple(channel_orders)
    candidate_channel_orders(g, 1, None, channel_orders)  # an unknown order fails before any work
    key = choice_key(template, w, g, bias, relu, cpu, device_id(), tiles,
                     None if register_caps is None else tuple(register_caps), groups_per_block,
                     tables, channel_orders)
    compile_kw = dict(stride=stride, padding=padding, bias=bias, relu=relu, cpu=cpu,
                      cache=store if store is not None else False, assemble=True, groups=groups)
    if store is not None:
        hit = store.get("tune", key)
        if hit is not None:
            k = compile_choice(template, w, input_shape, hit, **compile_kw)
            k.stats["tuned"] = tuned_stats(hit, cached=True)
            return k, []
    nnz = int(np.count_nonzero(w))
    configs = _configs(template, g, group_sizes, slices, tiles, nnz)
    if tables is None:
        from .templates.conv2d import conv2d_nchw

        tables = template is conv2d_nchw
    table_configs = candidate_table_configs(w, g, cpu, relu, nnz) if tables else []
    if not configs or any(b < 32 or b > 1024 or b % 32 for b in blocks):
        raise ValidationError("autotune needs group sizes and blocks that are multiples of 32 "
                              "in 32..1024", stage="tune")
    if measure is None:
        x = cuda.to_device(np.random.default_rng(0).standard_normal(g.input_shape).astype(np.float32))
        y = cuda.device_array(g.output_shape, np.float32)

        def measure(k):
            return time_kernel(k, x, y)

    table, entries = [], []
    for (gs, sl, tile), order in ((c, o) for c in configs
                                  for o in candidate_channel_orders(g, c[0], c[2], channel_orders)):
        tmpl = template_for(template, tile)
        caps = candidate_register_caps(tile, nnz) if register_caps is None else (
            register_caps if not tile else [None])
        first = None
        for cap in caps:
            t0 = time.perf_counter()
            if first is not None and store is None:
                # No disk cache to share the compiled kernel through: rewrite the one in hand.
                k = first.with_max_registers(cap)
                k.ptxas()
            else:
                # With a disk cache every budget after the first reuses the same compiled kernel.
                k = tmpl.compile(w, input_shape, group_size=gs, slices=sl, tile=tile,
                                 max_registers=cap, channel_order=order, **compile_kw)
            first = first or k
            if log:
                log(f"tune: group_size {gs} slices {sl} tile {tile} max_registers {cap} "
                    f"channel_order {order} compiled in {time.perf_counter() - t0:.1f} s")
            for b, m in launch_shapes(k, blocks, groups_per_block):
                k.block, k.groups_per_block = b, m
                us = measure(k)
                table.append(Choice(gs, b, round(us, 3), sl, tile, cap, m, channel_order=order))
                entries.append((us, (k, table[-1])))
    for tc in table_configs:
        from .table_kernel import compile_table_conv2d

        t0 = time.perf_counter()
        kernels = table_kernels(lambda b, tc=tc: compile_table_conv2d(
            w, input_shape, tc, stride=stride, bias=bias, relu=relu, cpu=cpu,
            cache=compile_kw["cache"], assemble=True, block=b), TABLE_THREADS)
        if log:
            log(f"tune: {tc.describe()} compiled in {time.perf_counter() - t0:.1f} s")
        for k in kernels:
            us = measure(k)
            table.append(Choice(tc.tile_k, k.block, round(us, 3), tc.slices, table=tc))
            entries.append((us, (k, table[-1])))
    if not entries:
        raise ValidationError("no candidate launch fits: every block was too large for the "
                              "kernels' registers, or no groups_per_block divides their group "
                              "count (1 always does)", stage="tune")

    def retime(item):
        k, c = item
        k.block, k.groups_per_block = c.block, c.groups_per_block
        return measure(k)
    us, (best_k, first), _ = finalists(entries, retime)
    best = replace(first, median_us=us)
    best_k.block, best_k.groups_per_block = best.block, best.groups_per_block
    best_k.stats["tuned"] = dict(tuned_stats(best, cached=False),
                                 candidates=[_choice_dict(c) for c in table])
    if store is not None:
        store.put("tune", key, best)
    return best_k, table
