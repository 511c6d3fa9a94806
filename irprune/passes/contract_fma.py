"""contract-fma: allow each multiply and its accumulate to fuse into one FMA.

Without ``contract`` flags the NVPTX backend must emit ``mul.rn.f32`` and
``add.rn.f32`` pairs; with them it emits one ``fma.rn.f32`` whose multiplier
is the weight immediate. LLVM's clean-up turns ``s + x * (-c)`` into
``s - x * c``, so fsub is flagged too. Fusing rounds once instead of twice, so results
move closer to the exact sum, never further.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..ir.textir import Module
from .base import ModulePass, PassContext

_OP_RE = re.compile(r"=\s*(fmul|fadd|fsub)\s+(?!.*\bcontract\b)")


@dataclass(frozen=True)
class ContractFma(ModulePass):
    """Add the ``contract`` fast-math flag to every fmul, fadd and fsub."""

    name = "contract-fma"

    def apply(self, ctx: PassContext, module: Module) -> None:
        n = 0
        for fn in module.functions:
            for ins in fn.instructions():
                if ins.opcode in ("fmul", "fadd", "fsub"):
                    new = _OP_RE.sub(lambda m: f"= {m.group(1)} contract ", ins.text, count=1)
                    n += new != ins.text
                    ins.text = new
        ctx.stats.setdefault(self.name, {})["flagged"] = n
