"""embed-tables: turn a kernel's table arrays into constant globals of its own module.

A table kernel (templates/conv2d_table.py) reads its weights as data: per block (input
offset, weight) pairs and row offsets, built from the weights (irprune.table_layout). Passing
them as arrays would make every caller allocate and keep them, and change the kernel's
parameters. Instead each table's data-pointer parameter is replaced by a constant global of
the module, initialized with the table's values: the kernel keeps the same parameters as
every other irprune kernel (input, output, batch), and its weights travel inside its code
object, as the immediates of the other kernels do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import PassError
from ..ir.textir import Module, Rewriter
from .base import ModulePass, PassContext

#: Alignment of each table: the async copies may move 16 bytes at a time.
ALIGN = 16


def table_symbol(param: str) -> str:
    """The global that holds the table of data-pointer parameter ``param`` (``%pairs.4``)."""
    return "@irp_table_" + param.lstrip("%").split(".")[0]


def global_definition(symbol: str, values: np.ndarray) -> str:
    """A module-level constant ``[n x i32]`` in the global address space holding ``values``'
    bytes (any 4-byte dtype; an empty table gets one zero word, never read)."""
    words = np.ascontiguousarray(values).reshape(-1).view(np.int32)
    if words.size == 0 or not words.any():
        init = "zeroinitializer"
    else:
        init = "[" + ", ".join(f"i32 {v}" for v in words.tolist()) + "]"
    n = max(1, words.size)
    return f"{symbol} = internal addrspace(1) constant [{n} x i32] {init}, align {ALIGN}"


@dataclass(frozen=True)
class EmbedTables(ModulePass):
    """Replace each parameter of ``ctx.tables`` by a constant global holding its array."""

    name = "embed-tables"

    def apply(self, ctx: PassContext, module: Module) -> None:
        fn = module.function()
        params = fn.params()
        names = {n for _, n in params}
        missing = [p for p in ctx.tables if p not in names]
        if missing:
            raise PassError(f"table parameters {missing} are not parameters of "
                            f"{fn.name}", stage=f"pass:{self.name}")
        rw = Rewriter(fn)
        words = 0
        for param, values in ctx.tables.items():
            if np.asarray(values).dtype.itemsize != 4:
                raise PassError(f"table {param} has {np.asarray(values).dtype} elements; "
                                "tables hold 4-byte values", stage=f"pass:{self.name}")
            symbol = table_symbol(param)
            # after the preamble (source_filename and the target must come first)
            module.chunks.insert(1, global_definition(symbol, values))
            rw.replace_uses(param, f"addrspacecast (ptr addrspace(1) {symbol} to ptr)")
            words += int(np.asarray(values).size)
        rw.commit()
        fn.set_params([(t, n) for t, n in params if n not in ctx.tables])
        ctx.stats.setdefault(self.name, {}).update({"tables": len(ctx.tables), "words": words})
