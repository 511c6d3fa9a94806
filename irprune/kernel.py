"""A compiled sparse conv2d kernel: its stages as text, its statistics, and its launch."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .codegen import PtxasResult, run_ptxas_many
from . import validate
from .geometry import ConvGeometry
from .validate import check_weight
from .ir.textir import parse_module
from .limits import check_grid, check_layer_size, max_part_nnz, split_groups
from .llvm_opt import DEFAULT_CPU
from .parts import PartJob, compile_parts, merge_stats, start_share_workers
from .passes import DEFAULT_PIPELINE, parse_pipeline
from .region_shares import share_count, split_pipeline
from .worker import worker_count
from .passes.trace_weight_uses import TraceMap

#: Threads per block along the output pixels.
BLOCK = 128


#: Rows of threads a pixel's input channels may be split over (irprune.tune's largest candidate).
MAX_SLICES = 16
#: Threads in one block, and dynamic shared memory a block may take without opting in.
MAX_BLOCK_THREADS = 1024
MAX_SHARED_BYTES = 48 * 1024


def shared_bytes(slices: int, group_size: int, block: int, groups_per_block: int = 1) -> int:
    """Shared memory for the partial sums of slices 1.. of a block: one float per (slice,
    channel, pixel) of each of its ``groups_per_block`` channel groups."""
    return 4 * (slices - 1) * group_size * block * groups_per_block


def check_slices(slices, g: ConvGeometry) -> int:
    """``slices`` as an int in 1..min(MAX_SLICES, input channels per group), or a one-line error."""
    return validate.check_int(slices, "slices", 1, max(1, min(MAX_SLICES, g.Cg)))


#: Registers of one block (every GPU irprune targets, sm_70 to sm_120).
MAX_BLOCK_REGISTERS = 65536


def block_fits(slices: int, group_size: int, block: int, registers: int | None = None,
               groups_per_block: int = 1) -> bool:
    """Whether a block of ``block`` x ``slices`` x ``groups_per_block`` threads can launch:
    threads, shared memory and, when ptxas's count is known, registers (allocated per
    thread in multiples of 8)."""
    threads = block * slices * groups_per_block
    return (threads <= MAX_BLOCK_THREADS and _registers_fit(threads, registers)
            and shared_bytes(slices, group_size, block, groups_per_block) <= MAX_SHARED_BYTES)


def _registers_fit(threads: int, registers: int | None) -> bool:
    return -(-(registers or 0) // 8) * 8 * threads <= MAX_BLOCK_REGISTERS


def check_launch_shape(slices: int, group_size: int, block: int, registers: int | None = None,
                       groups_per_block: int = 1) -> None:
    """Refuse a block of more than 1024 threads, more registers than a block has, or partial
    sums over 48 KB of shared memory, in one line naming the numbers."""
    shape = f"block {block} x slices {slices}" + (
        f" x groups_per_block {groups_per_block}" if groups_per_block > 1 else "")
    threads = block * slices * groups_per_block
    if threads > MAX_BLOCK_THREADS:
        validate._fail(f"{shape} = {threads} threads; a block holds at most {MAX_BLOCK_THREADS}",
                       "launch")
    if not _registers_fit(threads, registers):
        validate._fail(f"{shape} threads x {registers} registers "
                       f"(ptxas) exceed the {MAX_BLOCK_REGISTERS} registers of a block; "
                       "use a smaller block, fewer slices or fewer groups per block", "launch")
    need = shared_bytes(slices, group_size, block, groups_per_block)
    if need > MAX_SHARED_BYTES:
        validate._fail(f"{shape} x group size {group_size} need {need} bytes of shared memory; "
                       f"at most {MAX_SHARED_BYTES}: use fewer slices or a smaller block", "launch")


def _count_fma_ptx(ptx: str) -> int:
    return len(re.findall(r"^\s*fma\.rn\.f32", ptx, flags=re.M))


class Stages(Mapping):
    """Stage name -> text, where some stages are loaded only when asked for.

    A kernel loaded from the disk cache carries its final stages (``llvm-pruned``,
    ``ptx``); ``nvvm`` and ``llvm`` come from the IR template (memo or cache)
    the first time they are read.
    """

    def __init__(self, texts: dict[str, str], loaders: dict | None = None):
        self._texts = dict(texts)
        self._loaders = dict(loaders or {})

    def __getitem__(self, name: str) -> str:
        if name not in self._texts and name in self._loaders:
            self._texts[name] = self._loaders.pop(name)()
        return self._texts[name]

    def __iter__(self):
        yield from self._texts
        yield from (n for n in self._loaders if n not in self._texts)

    def __len__(self) -> int:
        return len(set(self._texts) | set(self._loaders))

    def __repr__(self) -> str:
        return f"Stages({list(self)})"

    def replaced(self, loaders: dict) -> "Stages":
        """These stages with the named ones read from ``loaders`` instead (the rest shared)."""
        return Stages({n: t for n, t in self._texts.items() if n not in loaders},
                      {**{n: f for n, f in self._loaders.items() if n not in loaders}, **loaders})


@dataclass
class KernelPart:
    """One module of a kernel: the code of channel groups ``first_group .. first_group + groups - 1``.

    A layer whose nonzeros exceed :data:`MAX_PART_NNZ` is compiled as several
    parts, each its own LLVM module, PTX and cubin, launched one after the
    other on the same stream (their output channels are disjoint). This keeps
    the memory and time of each LLVM and ptxas step bounded; most layers have
    one part.
    """

    first_group: int
    groups: int
    nnz: int
    llvm: str
    ptx: str
    _ptxas: PtxasResult | None = field(default=None, repr=False)
    #: The part's kernel symbol, where it is not its kernel's ``kernel_name`` (a table
    #: kernel's zeroing part), and its dynamic shared memory, where not its kernel's.
    name: str | None = None
    shared_bytes: int | None = None

    @property
    def cubin(self) -> bytes | None:
        return self._ptxas.cubin if self._ptxas is not None else None


def part_shared_bytes(kernel, part: KernelPart) -> int:
    """Dynamic shared memory of a block of ``part`` of ``kernel``: the part's own where it has
    one, else its kernel's."""
    return kernel.shared_bytes if part.shared_bytes is None else part.shared_bytes


@dataclass
class SparseConvKernel:
    """A conv2d specialized on one weight tensor, with the weights as immediates.

    Attributes:
        geometry: the layer's shapes.
        asm: stage name -> text: ``"nvvm"`` (numba-cuda's IR), ``"llvm"`` (the
            IR template), one entry per transform pass, ``"llvm-pruned"`` (the
            final IR) and ``"ptx"``.
        stats: weights, nnz, sparsity, instruction counts before and after
            pruning, FMA count, per-pass numbers and compile times.
        trace: the trace-weight-uses map of the IR template (channel group 0;
            every group's region is made from it, see :meth:`template_index`).
        weight: the weights it was compiled with (float32, K x C x R x S).
        cache_key: the kernel's key in the disk cache (None when not cached).
    """

    geometry: ConvGeometry
    group_size: int
    relu: bool
    has_bias: bool
    kernel_name: str
    cpu: str
    asm: Mapping[str, str]
    stats: dict
    trace_map: TraceMap | None = field(default=None, repr=False)
    weight: np.ndarray = field(default=None, repr=False)
    weight_param: str = ""
    cache_key: str | None = None
    #: Threads per block at launch (irprune.tune picks it per layer and GPU).
    block: int = BLOCK
    #: The modules the layer is compiled into (one unless it is very large).
    parts: list[KernelPart] = field(default_factory=list, repr=False)
    #: Rows of threads (threadIdx.y) that split the input channels of a pixel
    #: between them; their sums meet in shared memory (1: no split).
    slices: int = 1
    #: (rows, chunk) of a row-tile kernel (irprune.row_tile): a block is
    #: ``rows`` output rows of one image; None for the pixel layout.
    tile: tuple[int, int] | None = None
    #: The register budget of its PTX (irprune.register_budget; None: ptxas chooses).
    max_registers: int | None = None
    #: Channel groups one block runs, one per threadIdx.z (a launch choice like ``block``,
    #: which irprune.tune picks): their warps read the same input pixels, so all but the
    #: first read hits L1. Must divide each part's group count; 1 for a row-tile kernel.
    groups_per_block: int = 1
    #: Launch with programmatic stream serialization where the code waits for the grid before
    #: it (irprune.launch.uses_dependent_launch): its launch then overlaps the end of the kernel
    #: before it. False launches it as any other kernel (its wait returns at once).
    dependent_launch: bool = True
    #: The layer's channel of each channel in the order the kernel computes them
    #: (irprune.channel_order; group ``i`` is ``output_channels[i * group_size:][:group_size]``),
    #: or None for the natural order. The output is in the layer's order either way.
    output_channels: np.ndarray | None = field(default=None, repr=False)
    _loaded: dict = field(default_factory=dict, repr=False)
    _launch_memo: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if self.tile:
            self.tile = tuple(self.tile)
            self.block = self.tile[0] * self.geometry.OW  # fixed by the layout

    @property
    def trace(self) -> TraceMap:
        """The trace-weight-uses map (recomputed from the IR template for a cached kernel)."""
        if self.trace_map is None:
            from .passes.trace_weight_uses import trace_function

            module = parse_module(self.asm["llvm"])
            self.trace_map = trace_function(module.function(), self.weight_param,
                                            self.geometry.weight_shape,
                                            min(self.group_size, self.geometry.K))
        return self.trace_map

    @property
    def groups(self) -> int:
        return -(-self.geometry.K // self.group_size)

    def part_of(self, group: int) -> KernelPart:
        """The part whose module holds channel group ``group``."""
        return next(p for p in self.parts if p.first_group <= group < p.first_group + p.groups)

    def template_index(self, k: int, c: int, r: int, s: int) -> tuple[int, str, tuple[int, int, int, int]]:
        """Where weight (k, c, r, s) lives: (group, value-name prefix of its region, index in the IR template).

        Group ``k // group_size``'s region is instantiated from the IR template,
        whose weight (k mod group_size, c, r, s) it is; its values are the
        template's names with the region's prefix in its part's module
        (:meth:`part_of`). (A smaller last group is made from a template of
        its own, which :attr:`trace` does not cover.) ``k`` is the layer's channel: in a
        kernel compiled in another channel order its group is where that order put it.
        """
        from .passes.strip_zero_weights import region_prefix

        if self.output_channels is not None:
            k = int(np.flatnonzero(np.asarray(self.output_channels) == k)[0])
        gi = k // self.group_size
        part = self.part_of(gi)
        return gi, region_prefix(gi - part.first_group, part.groups), (k - gi * self.group_size, c, r, s)

    @property
    def launch_config(self) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        """Grid and block of the whole layer at the compiled batch (each part launches its own slice of the grid's y)."""
        return self.grid_for(self.geometry.N), (self.block, self.slices, 1)

    @property
    def registers(self) -> int | None:
        """Registers per thread (the most of any part), once ptxas has run; else None."""
        return (self.stats.get("ptxas") or {}).get("registers")

    @property
    def shared_bytes(self) -> int:
        """Dynamic shared memory a block needs: a row tile's input tile, else the partial sums of
        slices 1.. (0 with one slice)."""
        if self.tile:
            from .row_tile import tile_floats

            return 4 * tile_floats(self.geometry, *self.tile)
        return shared_bytes(self.slices, min(self.group_size, self.geometry.K), self.block,
                            self.groups_per_block)

    def grid_for(self, batch: int) -> tuple[int, int, int]:
        """The grid of a call on ``batch`` images: one thread per output pixel on x (a row-tile
        kernel: one block per ``rows`` output rows of an image)."""
        g = self.geometry
        pixels = batch * g.OH * g.OW
        check_grid(pixels, self.groups)
        if self.tile:
            return (batch * -(-g.OH // self.tile[0]), self.groups, 1)
        return (-(-pixels // self.block), self.groups, 1)

    def part_launches(self, batch: int | None = None
                      ) -> list[tuple[KernelPart, tuple[int, int, int], tuple[int, int, int]]]:
        """(part, grid, block) of each launch that makes up one call on ``batch`` images (default: the compiled batch)."""
        gx, _, gz = self.grid_for(self.geometry.N if batch is None else batch)
        per = self.groups_per_block
        if type(per) is not int or per < 1:
            validate._fail(f"groups_per_block must be a positive int, got {per!r}", "launch")
        if per > 1 and self.tile:
            validate._fail("a row-tile kernel runs one channel group per block; set "
                           "groups_per_block = 1", "launch")
        uneven = [p.groups for p in self.parts if p.groups % per]
        if uneven:
            validate._fail(f"groups_per_block {per} does not divide the {uneven[0]} channel "
                           "groups of a part; use a divisor of it", "launch")
        if self.tile:
            rows = self.tile[0]
            if self.block != rows * self.geometry.OW:
                validate._fail(f"a row-tile kernel runs rows {rows} x {self.geometry.OW} output "
                               f"columns = {rows * self.geometry.OW} threads a block, not "
                               f"{self.block}; leave .block as compiled", "launch")
            if not _registers_fit(self.block, self.registers):
                validate._fail(f"block {self.block} threads x {self.registers} registers (ptxas) "
                               f"exceed the {MAX_BLOCK_REGISTERS} registers of a block; "
                               "compile with fewer rows", "launch")
        else:
            check_launch_shape(self.slices, min(self.group_size, self.geometry.K), self.block,
                               self.registers, per)
        block = (self.block, self.slices, per)
        return [(p, (gx, p.groups // per, gz), block) for p in self.parts]

    def ptxas(self) -> PtxasResult:
        """Assemble each part's PTX with ptxas (once; parts in parallel): cubins and resources.

        For a kernel of several parts the result sums their code and spills
        and takes the largest register count; its ``cubin`` is empty (see
        :attr:`cubins`).
        """
        todo = [p for p in self.parts if p._ptxas is None]
        if todo:
            t0 = time.perf_counter()
            results = run_ptxas_many([p.ptx for p in todo], cpu=self.cpu)
            for p, r in zip(todo, results):
                p._ptxas = r
            combined = PtxasResult.combine([p._ptxas for p in self.parts])
            self.stats["ptxas"] = combined.to_dict()
            self.stats["seconds"]["ptxas"] = round(time.perf_counter() - t0, 3)
            if self.cache_key is not None:
                from .cache import default_cache

                c = default_cache()
                if c is not None:
                    c.put("kernel", self.cache_key, _cache_entry(self))
        return PtxasResult.combine([p._ptxas for p in self.parts])

    @property
    def cubins(self) -> list[bytes | None]:
        """Each part's cubin, or None for a part ptxas has not assembled."""
        return [p.cubin for p in self.parts]

    @property
    def cubin(self) -> bytes | None:
        """The cubin of a one-part kernel once :meth:`ptxas` has run (None for several parts)."""
        return self.parts[0].cubin if len(self.parts) == 1 else None

    def with_max_registers(self, n: int | None) -> "SparseConvKernel":
        """This kernel with each part's PTX given a register budget of ``n`` (None: none).

        Only the PTX stage changes (a ``.maxnreg`` directive); the new kernel is
        not assembled yet, is not in the disk cache (``compile(...,
        max_registers=n)`` puts it there) and launches with the same block.
        """
        from dataclasses import replace

        from .register_budget import check_max_registers, set_max_registers

        n = check_max_registers(n)
        if n == self.max_registers:
            return self
        parts = [KernelPart(first_group=p.first_group, groups=p.groups, nnz=p.nnz, llvm=p.llvm,
                            ptx=set_max_registers(p.ptx, n)) for p in self.parts]
        stats = {**self.stats, "max_registers": n,
                 "seconds": {k: v for k, v in self.stats["seconds"].items() if k != "ptxas"}}
        stats.pop("ptxas", None)
        asm = self.asm.replaced({"ptx": _joined(parts, "ptx", "//")}) if isinstance(
            self.asm, Stages) else _stages(dict(self.asm), parts)
        return replace(self, parts=parts, max_registers=n, stats=stats, asm=asm, cache_key=None,
                       _loaded={}, _launch_memo={})

    def __call__(self, x, out=None):
        """Run the kernel on ``x`` (a CUDA array, or numpy, which is copied); return the output."""
        from .launch import launch_conv

        return launch_conv(self, x, out)

    def __repr__(self) -> str:
        s = self.stats
        return (f"<SparseConvKernel {self.geometry.describe()}; nnz {s['nnz']}/{s['weights']} "
                f"({s['sparsity']:.1%} zero), {s['fma_ptx']} FMAs>")


#: Bumped when what :func:`_cache_entry` stores changes shape.
_ENTRY_FORMAT = 7


def _cache_entry(k: SparseConvKernel) -> dict:
    """What the disk cache keeps of a kernel: SparseConvKernel's fields, final stages only."""
    return {"geometry": k.geometry, "group_size": k.group_size, "relu": k.relu,
            "has_bias": k.has_bias, "kernel_name": k.kernel_name, "cpu": k.cpu,
            "stats": k.stats, "weight": k.weight, "weight_param": k.weight_param,
            "parts": k.parts, "slices": k.slices, "tile": k.tile,
            "max_registers": k.max_registers, "output_channels": k.output_channels}


def _resolve_cache(cache):
    from .cache import DiskCache, default_cache

    if cache is None or cache is True:
        return default_cache()
    if cache is False:
        return None
    if isinstance(cache, DiskCache):
        return cache
    return DiskCache(cache)


def _joined(parts: list[KernelPart], attr: str, comment: str):
    """A loader of one text for all parts (each after a header line when there are several)."""
    def load():
        if len(parts) == 1:
            return getattr(parts[0], attr)
        return "".join(f"{comment} ---- part {i}: channel groups {p.first_group}.."
                       f"{p.first_group + p.groups - 1}, {p.nnz} nonzeros ----\n"
                       f"{getattr(p, attr)}" for i, p in enumerate(parts))
    return load


def _stages(texts: dict, parts: list[KernelPart], loaders: dict | None = None) -> Stages:
    """The kernel's stages: ``llvm-pruned`` and ``ptx`` joined from its parts when read."""
    return Stages(texts, {**(loaders or {}), "llvm-pruned": _joined(parts, "llvm", ";"),
                          "ptx": _joined(parts, "ptx", "//")})


def compile_conv2d(template, weight, input_shape, stride: int = 1, padding: int = 0, bias=None,
                   relu: bool = False, group_size: int | None = None, cpu: str = DEFAULT_CPU,
                   pipeline: str = DEFAULT_PIPELINE, cache=None,
                   assemble: bool = False, groups: int = 1, slices: int = 1,
                   tile: tuple[int, int] | None = None,
                   max_registers: int | None = None,
                   channel_order: str = "natural") -> SparseConvKernel:
    """Specialize ``template`` on ``weight`` (K, C, R, S) and ``input_shape`` (N, C, H, W).

    ``cache``: None or True for the disk cache at :func:`irprune.cache.cache_dir`
    (unless ``IRPRUNE_CACHE=0``), False for none, or a folder / DiskCache.
    ``assemble``: also run ptxas now (the cubin is cached with the kernel and
    loaded instead of the PTX).
    ``slices``: split each pixel's input channels over this many rows of
    threads (threadIdx.y), which add their sums in the block: more threads
    for layers with few pixels and many input channels (the template must
    take a ``slices`` parameter).
    ``tile``: (rows, chunk) for a row-tile template (irprune.row_tile): a
    block of ``rows`` output rows reads its input from shared-memory tiles of
    ``chunk`` channels.
    ``max_registers``: a register budget for ptxas (irprune.register_budget),
    24..255, or None to let ptxas choose. The kernel without a budget is
    compiled (or loaded from the cache) first and the budget is then written
    into its PTX, so trying several budgets costs one compile and a ptxas
    run each.
    ``channel_order``: ``"natural"`` (group i is channels i * group_size ..) or ``"shared"``
    (channels grouped by their nonzeros: fewer input loads, evener groups;
    irprune.channel_order). The output is in the layer's channel order either way.
    """
    from .gcpause import gc_paused

    with gc_paused():
        return _compile_conv2d(template, weight, input_shape, stride, padding, bias, relu,
                               group_size, cpu, pipeline, cache, assemble, groups, slices, tile,
                               max_registers, channel_order)


def _compile_conv2d(template, weight, input_shape, stride, padding, bias, relu, group_size, cpu,
                    pipeline, cache, assemble, groups, slices, tile,
                    max_registers=None, channel_order="natural") -> SparseConvKernel:
    from .cache import digest
    from .channel_order import check_channel_order, permutation
    from .register_budget import check_max_registers
    from .row_tile import check_tile
    from .template import check_group_size, check_tile_use, default_group_size

    t_start = time.perf_counter()
    w = check_weight(weight)
    g = ConvGeometry.from_weight(w.shape, input_shape, stride, padding, groups)
    check_layer_size(w)
    b = validate.check_bias(bias, g.K)
    relu = validate.check_flag(relu, "relu")
    cpu = validate.check_arch(cpu)
    gs = check_group_size(group_size, g) if group_size is not None else default_group_size(g)
    check_grid(g.N * g.OH * g.OW, -(-g.K // gs))
    slices = check_slices(slices, g)
    check_tile_use(template, tile)
    if tile:
        tile = check_tile(tile, g)
        if slices != 1:
            validate._fail("a row-tile kernel takes no slices; pass slices=1", "validate")
    else:
        tile = None
    max_registers = check_max_registers(max_registers)
    check_channel_order(channel_order, g.K, gs, groups, tile)
    store = _resolve_cache(cache)
    key = None
    if store is not None:
        tkey = template.ir_template_key(g, gs, relu, b is not None, cpu, slices, tile)
        # The part limit changes how the layer is split, hence the code.
        key = digest("kernel", _ENTRY_FORMAT, tkey, w.tobytes(),
                     b.tobytes() if b is not None else b"", pipeline, max_part_nnz(),
                     max_registers, channel_order)
        hit = store.get("kernel", key)
        if hit is not None and hit["geometry"].with_batch(g.N) == g:
            hit["geometry"] = g  # stored under another batch size: the code is the same
            hit["stats"]["cached"] = True
            hit["stats"]["seconds"]["cache_load"] = round(time.perf_counter() - t_start, 4)

            def template_stage(name):
                return lambda: getattr(
                    template.ir_template(g, gs, relu, b is not None, cpu, cache=store,
                                         slices=slices, tile=tile), name)

            hit["asm"] = _stages({}, hit["parts"], {"nvvm": template_stage("nvvm"),
                                                    "llvm": template_stage("text")})
            k = SparseConvKernel(**hit, cache_key=key)
            if assemble:
                k.ptxas()
            return k

    if max_registers is not None:
        # A budget is only a PTX directive: the kernel without one (cached
        # separately) is shared by every budget tried on the layer.
        base = _compile_conv2d(template, w, input_shape, stride, padding, b, relu, gs, cpu,
                               pipeline, store if store is not None else False, False, groups,
                               slices, tile, channel_order=channel_order)
        return _finish(base.with_max_registers(max_registers), assemble, store, key)

    layer_w = w
    order = permutation(channel_order, w, gs)  # checked above; a cache miss: the grouping runs now
    if order is not None:
        # Compiled in the new order; place-output-channels stores each channel where it belongs.
        w = np.ascontiguousarray(w[order])
        b = np.ascontiguousarray(b[order]) if b is not None else None
    full, rest = divmod(g.K, gs)
    sizes = [gs] * full + ([rest] if rest else [])  # a smaller last group when gs does not divide K
    group_nnz = [int(np.count_nonzero(w[i * gs:i * gs + size])) for i, size in enumerate(sizes)]
    split = split_groups(group_nnz, max_part_nnz())
    passes = parse_pipeline(pipeline)  # a bad pipeline fails here, before any worker starts
    # One part would leave the other cores idle: its regions' passes are shared
    # out, and the share workers start now so that their start-up overlaps the IR template's.
    shares = (share_count(sum(group_nnz), len(sizes), worker_count())
              if len(split) == 1 and split_pipeline(passes)[0] else 1)
    helpers = start_share_workers(shares)
    try:
        t0 = time.perf_counter()
        irt = template.ir_template(g, gs, relu, b is not None, cpu, cache=store, slices=slices,
                                   tile=tile)
        t1 = time.perf_counter()
        jobs = _part_jobs(template, irt, g, w, b, sizes, relu, cpu, store, slices, tile, pipeline,
                          split, order)
        jobs[0].shares = shares
        results = compile_parts(jobs, helpers=helpers)
    finally:
        for h in helpers:
            h.close()
    before = results[0].template_instructions
    pass_stats, parts, first = {}, [], 0
    for job, r in zip(jobs, results):
        merge_stats(pass_stats, r.stats)
        parts.append(KernelPart(first_group=first, groups=len(job.regions),
                                nnz=sum(group_nnz[first:first + len(job.regions)]),
                                llvm=r.llvm, ptx=r.ptx))
        first += len(job.regions)
    stages = results[0].stages  # a split layer shows its first part's pass stages
    after = sum(r.instructions for r in results)
    fmas = sum(_count_fma_ptx(r.ptx) for r in results)
    ptx_lines = sum(r.ptx.count("\n") for r in results)
    t3 = time.perf_counter()
    # With parts side by side, the PTX share of the wall time is its share of the work.
    work_ptx = sum(r.seconds_ptx for r in results)
    work = work_ptx + sum(r.seconds_passes for r in results)
    t_ptx = (t3 - t1) * work_ptx / work if work else 0.0

    nnz = int(np.count_nonzero(w))
    asm = {"nvvm": irt.nvvm, "llvm": irt.text}
    asm.update({n: t for n, t in stages.items() if isinstance(t, str)})
    loaders = {n: t for n, t in stages.items() if not isinstance(t, str)}
    stats = {
        "weights": g.num_weights, "nnz": nnz, "sparsity": 1.0 - nnz / g.num_weights,
        "group_size": gs, "slices": slices, "tile": list(tile) if tile else None,
        "channel_order": channel_order if order is not None else "natural",
        "max_registers": None,
        "groups": -(-g.K // gs), "parts": len(parts),
        "shares": max(r.shares for r in results),
        "instructions_template": before, "instructions_pruned": after,
        "fma_ptx": fmas, "ptx_lines": ptx_lines,
        "passes": pass_stats, "cached": False,
        "seconds": {"ir_template": round(t1 - t0, 3), **{k: round(v, 3) for k, v in irt.timings.items()},
                    "passes": round(t3 - t1 - t_ptx, 3), "ptx": round(t_ptx, 3)},
        # Peak memory of whichever process compiled each part (this one, or a worker).
        "part_peak_mib": max(r.peak_mib for r in results),
    }
    k = SparseConvKernel(geometry=g, group_size=gs, relu=bool(relu), has_bias=b is not None,
                         kernel_name=irt.kernel_name, cpu=cpu, asm=_stages(asm, parts, loaders), stats=stats,
                         weight=layer_w, weight_param=jobs[0].weight_param, parts=parts,
                         slices=slices, tile=tile, output_channels=order)
    return _finish(k, assemble, store, key)


def _part_jobs(template, irt, g: ConvGeometry, w, b, sizes: list[int], relu, cpu: str, store,
               slices, tile, pipeline: str, split: list[tuple[int, int]],
               order=None) -> list[PartJob]:
    """One job per part of ``split`` ((first group, count) each): the regions it instantiates.

    ``sizes``: the channels of each group (all the group size, the last maybe fewer).
    """
    weight_arr = irt.array("weight")[0]
    # Group gi's arrays start k0 = gi * gs output channels further along.
    strides = {weight_arr.data_param: g.Cg * g.R * g.S * 4,
               **{c.data_param: 4 for c in irt.array("constant")},
               **{o.data_param: g.OH * g.OW * 4 for o in irt.array("output")}}
    # With convolution groups a region's input starts cbase = (k0 // Kg) * Cg
    # channels further along (the template computes cbase from k0, which is 0 in
    # the IR template); group_size divides Kg, so a region never straddles two.
    x_param = irt.array("input")[0].data_param

    def input_shift(k0: int) -> dict[str, int]:
        return {x_param: (k0 // g.Kg) * g.Cg * g.H * g.W * 4} if g.groups > 1 else {}

    gs = sizes[0]
    regions = [(i * gs, size, size != gs, input_shift(i * gs)) for i, size in enumerate(sizes)]
    ragged = None
    if sizes[-1] != gs:  # a smaller last group is made from an IR template of its own size
        ragged = template.ir_template(g, sizes[-1], relu, b is not None, cpu, cache=store,
                                      slices=slices, tile=tile).text
    constants = {c.data_param: b if b is not None else np.zeros(0, np.float32)
                 for c in irt.array("constant")}  # with no bias the parameter must still go
    return [PartJob(template=irt.text, ragged=ragged, regions=regions[first:first + count],
                    weight_param=weight_arr.data_param, weights=w, constants=constants,
                    channel_strides=strides, pipeline=pipeline, cpu=cpu, keep_stages=not i,
                    output_channels=order, output_param=irt.array("output")[0].data_param)
            for i, (first, count) in enumerate(split)]


def _finish(k: SparseConvKernel, assemble: bool, store, key) -> SparseConvKernel:
    """A freshly made kernel assembled if asked and put in the disk cache under ``key``."""
    if assemble:
        k.ptxas()
    if store is not None:
        store.put("kernel", key, _cache_entry(k))
        k.cache_key = key
    return k
