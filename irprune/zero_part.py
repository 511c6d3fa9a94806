"""The zeroing part of a table kernel whose blocks add into its output (sm_90 and newer).

A table kernel with several slices adds each block's sums into the output with atomics, so the
output must be zero before the first add. Below sm_90 the launch zeroes it with a memset. From
sm_90 on, the kernel gets a part of its own that does it (templates/zero_fill.py), launched
just before the table part: it waits for the grid before it and lets the table part launch at
once, and the table part waits for it only before its first add (templates/conv2d_table.py,
``late_wait``). A memset is not a grid: nothing after it could launch early, and it held every
call up by about 1 us (docs/perf-log.md, "The zeroing chained by programmatic dependent
launch").

Stages (``kernel.asm``): ``zero-fill`` (its IR after grid-dependency-wait) and
``zero-fill-ptx``.
"""

from __future__ import annotations

from .codegen import emit_ptx
from .geometry import ConvGeometry
from .kernel import KernelPart

#: Threads a block of the zeroing part (one output value each).
ZERO_THREADS = 256
#: The part's kernel symbol.
ZERO_SYMBOL = "irprune_zero_fill"
#: Its passes: the IR template is already optimized; the wait goes first, before the trigger.
ZERO_PIPELINE = "grid-dependency-wait"
#: Zeroing parts of this process, by (output values an image, input values an image, cpu).
_memo: dict = {}


def compile_zero_part(g: ConvGeometry, cpu: str) -> tuple[KernelPart, dict[str, str]]:
    """The zeroing part for layer ``g`` on ``cpu`` (sm_90 or newer) and its stages' text."""
    from numba import types

    from .ir.textir import Module
    from .lowering import ArrayArg, build_ir_template
    from .passes import PassContext, parse_pipeline, run_pipeline
    from .templates.zero_fill import zero_fill

    out, chw = g.K * g.OH * g.OW, g.C * g.H * g.W
    key = (out, chw, cpu)
    hit = _memo.get(key)
    if hit is None:
        arrays = [ArrayArg("x", (1, chw), "input"), ArrayArg("y", (1, out), "output")]
        f2 = types.float32[:, ::1]
        irt = build_ir_template(zero_fill.py_func, arrays, {"threads": ("i64", ZERO_THREADS)},
                                (f2, f2, types.int64), cpu=cpu, symbol=ZERO_SYMBOL,
                                group_zero=False, loops_stay=True)
        ctx = PassContext(cpu=cpu)
        text = run_pipeline(parse_pipeline(ZERO_PIPELINE), Module.lazy(irt.text), ctx).text
        ptx = emit_ptx(text, cpu)
        hit = _memo[key] = (text, ptx)
    text, ptx = hit
    part = KernelPart(first_group=0, groups=0, nnz=0, llvm=text, ptx=ptx, name=ZERO_SYMBOL,
                      shared_bytes=0)
    return part, {"zero-fill": text, "zero-fill-ptx": ptx}


def zero_grid(g: ConvGeometry, batch: int) -> tuple[int, int, int]:
    """The zeroing part's grid for ``batch`` images of layer ``g``."""
    return (-(-g.K * g.OH * g.OW // ZERO_THREADS), batch, 1)
