"""Compiling a 1x1 layer in the table layout: the weights as data in the kernel's own module.

Stages, each kept as text (``kernel.asm``):

``nvvm``
    templates/conv2d_table.py as numba-cuda lowers it.
``llvm``
    its IR template: shapes, the configuration and the tables' shapes bound to constants
    (irprune.lowering.build_ir_template, as for every template).
``embed-tables``, ``async-copy``, ``contract-fma``, ``llvm-cleanup``
    the module after each pass of irprune.passes.TABLE_PIPELINE: the tables become constant
    globals of the module, the staging copies ``cp.async``, each multiply-add one FMA.
``llvm-pruned``, ``ptx``
    the final module and its PTX.

The kernel launches as every irprune kernel does (input, output, batch; irprune.launch). With
several slices its blocks add into the output, which must be zero first: from sm_90 on the
kernel has a zeroing part launched before it (irprune.zero_part; stages ``zero-fill`` and
``zero-fill-ptx``), below that the launch runs a memset.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from . import validate
from .codegen import PtxasResult, emit_ptx, run_ptxas
from .geometry import ConvGeometry
from .kernel import KernelPart, _count_fma_ptx, _resolve_cache
from .llvm_opt import DEFAULT_CPU
from .table_layout import (TableConfig, Tables, build_tables, check_table_config,
                           check_threads, grid, input_copy_bytes, optin_shared, row_pitch,
                           shared_bytes, table_problem)

#: Bumped when what the disk cache keeps of a table kernel changes.
_ENTRY_FORMAT = 5
#: IR templates of this process, by everything they are specialized on.
_ir_memo: dict = {}


@dataclass
class TableConvKernel:
    """A 1x1 conv2d whose nonzero weights are (offset, weight) tables in its module.

    Launched like :class:`irprune.kernel.SparseConvKernel` (``kernel(x)``, irprune.launch);
    ``asm`` and ``stats`` as there. ``config`` is the launch layout (irprune.table_layout).
    """

    geometry: ConvGeometry
    config: TableConfig
    relu: bool
    has_bias: bool
    kernel_name: str
    cpu: str
    asm: dict
    stats: dict
    weight: np.ndarray = field(default=None, repr=False)
    #: int32 words of (offset, weight) pairs a block stages (the largest block's, padded).
    words: int = 0
    parts: list[KernelPart] = field(default_factory=list, repr=False)
    cache_key: str | None = None
    #: Threads per block: a constant of the code (the copy loops' stride), so the launch takes
    #: only the number compiled for; compile again for another.
    block: int = 512
    #: A table kernel runs one channel tile per block (the launch memo's key needs it).
    groups_per_block: int = 1
    tile = None
    #: As :attr:`irprune.kernel.SparseConvKernel.dependent_launch` (never with a zeroed output).
    dependent_launch: bool = True
    _loaded: dict = field(default_factory=dict, repr=False)
    _launch_memo: dict = field(default_factory=dict, repr=False)

    @property
    def zero_output(self) -> bool:
        """Whether the launch zeroes the output with a memset first (several slices add into
        it, and there is no zeroing part: below sm_90)."""
        return self.config.atomic and len(self.parts) == 1

    @property
    def main_part(self) -> KernelPart:
        """The table part (after the zeroing part, where there is one)."""
        return self.parts[-1]

    @property
    def input_alignment(self) -> int:
        """Bytes the input's address must be a multiple of: the width its rows are copied with
        (irprune.table_layout.input_copy_bytes; irprune.launch checks it)."""
        return input_copy_bytes(self.geometry, self.config)

    @property
    def shared_bytes(self) -> int:
        """Dynamic shared memory of a block: its pairs, row offsets and input tile."""
        return shared_bytes(self.geometry, self.config, self.words)

    @property
    def registers(self) -> int | None:
        return (self.stats.get("ptxas") or {}).get("registers")

    def part_launches(self, batch: int | None = None):
        """(part, grid, block) of the one launch of a call on ``batch`` images."""
        n = self.geometry.N if batch is None else batch
        b = self.block
        compiled = self.stats.get("threads", b)
        if b != compiled:
            validate._fail(f"this table kernel was compiled for {compiled} threads a block, not "
                           f"{b!r}: leave .block as compiled, or compile with block={b!r}",
                           "launch")
        main = (self.main_part, grid(self.geometry, self.config, n), (b, 1, 1))
        if len(self.parts) == 1:
            return [main]
        from .zero_part import ZERO_THREADS, zero_grid

        return [(self.parts[0], zero_grid(self.geometry, n), (ZERO_THREADS, 1, 1)), main]

    def ptxas(self) -> PtxasResult:
        """Assemble the PTX with ptxas (once, every part): the table part's cubin and
        resources."""
        part = self.main_part
        if any(p._ptxas is None for p in self.parts):
            t0 = time.perf_counter()
            for p in self.parts:
                if p._ptxas is None:
                    p._ptxas = run_ptxas(p.ptx, cpu=self.cpu)
            self.stats["ptxas"] = part._ptxas.to_dict()
            self.stats["seconds"]["ptxas"] = round(time.perf_counter() - t0, 3)
        return part._ptxas

    @property
    def cubin(self) -> bytes | None:
        return self.main_part.cubin

    @property
    def cubins(self) -> list[bytes | None]:
        return [p.cubin for p in self.parts]

    def __call__(self, x, out=None):
        """Run the kernel on ``x`` (a CUDA array, or numpy, which is copied); return the output."""
        from .launch import launch_conv

        return launch_conv(self, x, out)

    def __repr__(self) -> str:
        s = self.stats
        return (f"<TableConvKernel {self.geometry.describe()}; {self.config.describe()}; "
                f"nnz {s['nnz']}/{s['weights']} ({s['sparsity']:.1%} zero)>")


def _ir_template(g: ConvGeometry, config: TableConfig, words: int, has_bias: bool, relu: bool,
                 cpu: str, block: int):
    """The IR template of the table template for one geometry, configuration, table size and
    thread count."""
    from numba import types

    from .lowering import ArrayArg, build_ir_template
    from .templates.conv2d_table import conv2d_table

    g1 = g.with_batch(1)
    late_wait = late_wait_of(config, cpu)
    key = (g1, config, words, has_bias, relu, cpu, block, late_wait)
    hit = _ir_memo.get(key)
    if hit is not None:
        return hit
    blocks = (g.K // config.tile_k) * config.slices
    chw = g.C * g.H * g.W
    arrays = [ArrayArg("x", (1, chw), "input"),
              ArrayArg("x2", (1, chw // 2), "input", view_of="x", itemsize=8),
              ArrayArg("pairs", (blocks, words), "table"),
              ArrayArg("pairs2", (blocks, words // 2), "table", view_of="pairs", itemsize=8),
              ArrayArg("rowptr", (blocks, config.tile_k + 1), "table"),
              ArrayArg("bias", (g.K if has_bias else 0,), "table"),
              ArrayArg("y", (1, g.K, g.OH * g.OW), "output")]
    i2, q2 = types.int32[:, ::1], types.int64[:, ::1]
    argtypes = (types.float32[:, ::1], q2, i2, q2, i2, types.float32[::1],
                types.float32[:, :, ::1], *(types.int64,) * 6, types.boolean, types.boolean,
                types.int64, types.int64, types.int64, types.boolean)
    scalars = {"stride": ("i64", g.stride), "channels": ("i64", g.C), "width": ("i64", g.W),
               "tile_k": ("i64", config.tile_k),
               "slices": ("i64", config.slices), "tile_p": ("i64", config.tile_p),
               "relu": ("i8", int(relu)), "atomic": ("i8", int(config.atomic)),
               "copy_bytes": ("i64", input_copy_bytes(g, config)), "threads": ("i64", block),
               "pitch": ("i64", row_pitch(g, config)), "late_wait": ("i8", int(late_wait))}
    irt = build_ir_template(conv2d_table.py_func, arrays, scalars, argtypes, cpu=cpu,
                            symbol="irprune_conv2d_table", group_zero=False, loops_stay=True)
    _ir_memo[key] = irt
    return irt


def compile_table_conv2d(weight, input_shape, config: TableConfig, stride: int = 1, bias=None,
                         relu: bool = False, cpu: str = DEFAULT_CPU, cache=None,
                         assemble: bool = False, block: int = 512) -> TableConvKernel:
    """Compile 1x1 ``weight`` (K, C, 1, 1) for ``input_shape`` in the table layout ``config``.

    ``cache``, ``assemble``: as in :func:`irprune.kernel.compile_conv2d`; ``block``: threads
    per block, a constant of the code (a multiple of 32 in 32..1024). A layer or
    configuration the layout cannot take (not 1x1, padding, groups, sm_70, ReLU with several
    slices, shared memory over the GPU's limit, ...) is refused with a one-line
    ValidationError.
    """
    from .cache import digest, toolchain_fingerprint
    from .ir.textir import parse_module
    from .passes import TABLE_PIPELINE, PassContext, parse_pipeline, run_pipeline

    t0 = time.perf_counter()
    w = validate.check_weight(weight)
    g = ConvGeometry.from_weight(w.shape, input_shape, stride, 0)
    b = validate.check_bias(bias, g.K)
    relu = validate.check_flag(relu, "relu")
    cpu = validate.check_arch(cpu)
    block = check_threads(block)
    problem = table_problem(g, cpu)
    if problem:
        validate._fail(problem)
    config = check_table_config(g, cpu, relu, config)
    config = TableConfig(config.tile_k, config.slices, min(config.tile_p, g.OH * g.OW))
    tables = build_tables(w, config, b)
    need = shared_bytes(g, config, tables.words)
    if need > optin_shared(cpu):
        validate._fail(f"{config.describe()} needs {need} bytes of shared memory a block, over "
                       f"the {optin_shared(cpu)} of {cpu}: use more slices or a smaller tile_p")
    store = _resolve_cache(cache)
    key = None
    if store is not None:
        from .templates import conv2d_table as src
        from .templates import grid_control, zero_fill
        from .zero_part import ZERO_PIPELINE

        key = digest("table-kernel", _ENTRY_FORMAT, TABLE_PIPELINE, _source(src),
                     _source(zero_fill), _source(grid_control), ZERO_PIPELINE, g.with_batch(1),
                     config, w.tobytes(), b.tobytes() if b is not None else b"", relu, cpu, block,
                     toolchain_fingerprint())
        hit = store.get("table-kernel", key)
        if hit is not None:
            hit["stats"]["cached"] = True
            k = TableConvKernel(geometry=g, cache_key=key, block=block, **hit)
            if assemble:
                k.ptxas()
            return k
    irt = _ir_template(g, config, tables.words, b is not None, relu, cpu, block)
    t1 = time.perf_counter()
    params = {a.name: a.data_param for a in irt.arrays}
    ctx = PassContext(tables={params["pairs"]: tables.pairs, params["rowptr"]: tables.rowptr,
                              params["bias"]: tables.bias}, cpu=cpu)
    result = run_pipeline(parse_pipeline(TABLE_PIPELINE), parse_module(irt.text), ctx)
    final = result.text
    t2 = time.perf_counter()
    late_wait = late_wait_of(config, cpu)
    ptx = emit_ptx(final, cpu, reads_before_wait=late_wait)
    t3 = time.perf_counter()
    parts, zero_stages = [], {}
    if late_wait:
        from .zero_part import compile_zero_part

        zero, zero_stages = compile_zero_part(g, cpu)
        parts.append(zero)
    t4 = time.perf_counter()
    nnz = int(np.count_nonzero(w))
    stats = {"weights": g.num_weights, "nnz": nnz, "sparsity": 1.0 - nnz / g.num_weights,
             "layout": "table", "config": config.__dict__, "threads": block,
             "words": tables.words,
             "shared_bytes": need, "passes": ctx.stats, "cached": False,
             # the loop's FMAs (a few), as counted for every irprune kernel
             "fma_ptx": _count_fma_ptx(ptx), "ptx_lines": ptx.count("\n"),
             "seconds": {"ir_template": round(t1 - t0, 3),
                         **{n: round(v, 3) for n, v in irt.timings.items()},
                         "passes": round(t2 - t1, 3), "ptx": round(t3 - t2, 3),
                         **({"zero_part": round(t4 - t3, 3)} if late_wait else {})}}
    parts.append(KernelPart(first_group=0, groups=1, nnz=nnz, llvm=final, ptx=ptx))
    asm = {"nvvm": irt.nvvm, "llvm": irt.text, **result.stages, "llvm-pruned": final,
           "ptx": ptx, **zero_stages}
    k = TableConvKernel(geometry=g, config=config, relu=bool(relu), has_bias=b is not None,
                        kernel_name=irt.kernel_name, cpu=cpu, asm=asm, stats=stats, weight=w,
                        words=tables.words, parts=parts, block=block)
    if assemble:
        k.ptxas()
    if store is not None:
        # the final stages only: the pass stages hold the tables again each
        store.put("table-kernel", key, {
            "config": config, "relu": k.relu, "has_bias": k.has_bias,
            "kernel_name": k.kernel_name, "cpu": cpu,
            "asm": {"llvm-pruned": final, "ptx": ptx, **zero_stages},
            "stats": stats, "weight": w, "words": k.words, "parts": k.parts})
        k.cache_key = key
    return k


def late_wait_of(config: TableConfig, cpu: str) -> bool:
    """Whether a table kernel of ``config`` on ``cpu`` zeroes its output with a zeroing part
    and waits for it only before its adds (several slices, sm_90 and newer); else, with
    several slices, its launch runs a memset."""
    from .passes.grid_dependency_wait import supports_grid_wait

    return config.atomic and supports_grid_wait(cpu)


def _source(module) -> str:
    import inspect

    return inspect.getsource(module)
