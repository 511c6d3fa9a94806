"""grid-dependency-wait: a kernel waits for the grid before it, so that it may launch early.

At batch 1 a layer's kernel runs for 1-5 us, and the launch is a large part of that: in a CUDA
graph each kernel's blocks are scheduled only once the kernel before it has finished and its
memory has been flushed. Programmatic dependent launch (sm_90 and newer) lets a kernel launched
with *programmatic stream serialization* (irprune.launch does this for kernels that carry the
wait) be scheduled as soon as the blocks of the kernel before it have exited; its
``griddepcontrol.wait`` then blocks until that kernel has completed and its writes are visible.

This pass puts the wait (``llvm.nvvm.griddepcontrol.wait``) first in each kernel's entry block,
before any load or store, so a kernel reads its input only after whatever wrote it has
finished: a model's previous layer, a copy, anything on the stream. What overlaps is the launch
and block scheduling, not the work (docs/perf-log.md, "Consecutive calls chained by
programmatic dependent launch"). The kernel does not trigger its own dependents early
(``griddepcontrol.launch_dependents``): triggering at the start let a chain of calls pile up
waiting blocks on the SMs and was up to 3x slower; at the end it lost on some layers. Without
a trigger the next kernel may launch once this one's blocks have exited, before its completion
and memory flush, which is what the measured gain is. A waiting kernel launched without the
attribute behaves as before (its wait returns at once).

Only kernels (``ptx_kernel`` functions) get the wait; functions they call run after it. A
kernel that already waits somewhere is left as it is: its template placed the wait itself
(templates/conv2d_table.py waits just before its atomic adds, reading its input before that,
which is safe only because irprune launches it right after its zeroing kernel; irprune.codegen
checks such a kernel for writes before the wait instead). Below
sm_90 the instruction does not exist and the pass changes nothing. irprune.codegen checks in
the PTX that the backend kept the wait ahead of every global memory access
(:func:`irprune.codegen.check_grid_wait`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..ir.textir import Module
from .base import ModulePass, PassContext

WAIT = "@llvm.nvvm.griddepcontrol.wait"
WAIT_DECLARE = f"declare void {WAIT}()"
WAIT_CALL = f"  call void {WAIT}()"
#: The oldest architecture with programmatic dependent launch (PTX ``griddepcontrol``).
MIN_ARCH = 90


def arch_number(cpu: str) -> int:
    """90 for ``sm_90`` or ``sm_90a``; 0 for a name that is not ``sm_<digits>``."""
    digits = "".join(c for c in cpu[3:] if c.isdigit()) if cpu.startswith("sm_") else ""
    return int(digits) if digits else 0


def supports_grid_wait(cpu: str) -> bool:
    """Whether kernels for ``cpu`` can wait for the grid before them (sm_90 and newer)."""
    return arch_number(cpu) >= MIN_ARCH


@dataclass(frozen=True)
class GridDependencyWait(ModulePass):
    """Put ``griddepcontrol.wait`` first in every kernel (sm_90+), so that it may launch early."""

    name = "grid-dependency-wait"

    def apply(self, ctx: PassContext, module: Module) -> bool:
        stats = ctx.stats.setdefault(self.name, {})
        if not supports_grid_wait(ctx.cpu):
            stats.update({"kernels": 0, "skipped": f"{ctx.cpu} has no griddepcontrol"})
            return False
        # An edit of the text, parsed or not: the pipelines hand this pass the clean-up's text
        # unparsed, and parsing its megabytes to insert one line a kernel took 0.22 s on
        # resnet_3x3_28 at batch 1.
        text, kernels = _wait_in_text(module.render())
        if kernels:
            module.set_text(text)
        stats["kernels"] = kernels
        return kernels > 0


#: A kernel's define line, and an optional label line of its entry block after it. The pattern
#: starts with a literal (a newline) so that re searches megabytes for it quickly; the text
#: passed in is given a leading newline.
_KERNEL_ENTRY_RE = re.compile(
    r'\ndefine [^\n]*\bptx_kernel\b[^\n]*\{[^\n]*\n(?:(?:[-a-zA-Z$._0-9]+|"[^"]*"):[^\n]*\n)?')


def _wait_in_text(text: str) -> tuple[str, int]:
    """``text`` (LLVM IR as LLVM or :meth:`Module.render` prints it) with the wait first in the
    entry block of each kernel that does not wait yet, and how many kernels got it."""
    text = "\n" + text
    out, last, kernels = [], 1, 0
    for m in _KERNEL_ENTRY_RE.finditer(text):
        end = text.find("\n}\n", m.end())
        if text.find(f"call void {WAIT}()", m.end(), end if end >= 0 else len(text)) >= 0:
            continue  # it waits already: the pass run twice, or its template's own wait
        out += [text[last:m.end()], WAIT_CALL + "\n"]
        last, kernels = m.end(), kernels + 1
    out.append(text[last:])
    text = "".join(out)
    if kernels and f"\ndeclare void {WAIT}(" not in text:
        text = text.rstrip("\n") + "\n" + WAIT_DECLARE + "\n"
    return text, kernels
