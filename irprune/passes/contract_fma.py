"""contract-fma: fuse each multiply and its accumulate into one ``llvm.fmuladd``.

Without this, the NVPTX backend emits ``mul.rn.f32`` + ``add.rn.f32`` pairs.
Contract flags alone are not enough: once the weights are constants, LLVM's
InstCombine rewrites ``(pad ? x : 0) * w`` into ``pad ? x * w : -0.0`` for
border taps, and the select between the multiply and the add blocks fusion.
An explicit ``llvm.fmuladd.f32(x, w, acc)`` keeps the pair together through
the clean-up; the backend lowers it to one ``fma.rn.f32`` whose multiplier is
the weight immediate. Fusing rounds once instead of twice, so results move
closer to the exact sum, never further.

Run it before ``llvm-cleanup``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ir.textir import Module, Rewriter
from .base import ModulePass, PassContext

DECLARE = "declare float @llvm.fmuladd.f32(float, float, float)"


@dataclass(frozen=True)
class ContractFma(ModulePass):
    """Replace ``fadd(acc, fmul(a, b))`` (one use of the product) by ``llvm.fmuladd(a, b, acc)``."""

    name = "contract-fma"
    region_local = True

    def apply(self, ctx: PassContext, module: Module) -> None:
        fused = 0
        for fn in module.functions:
            users = fn.users()
            defs = fn.definitions()
            rw = Rewriter(fn)
            for ins in fn.instructions():
                if ins.opcode != "fadd":
                    continue
                if " float " not in ins.text:
                    continue  # double, vectors: leave alone
                a, b = ins.binary_operands()
                for prod, acc in ((b, a), (a, b)):
                    m = defs.get(prod)
                    if m is None or m.opcode != "fmul" or len(users.get(prod, [])) != 1:
                        continue
                    x, y = m.binary_operands()
                    ins.text = (f"  {ins.name} = call float @llvm.fmuladd.f32("
                                f"float {x}, float {y}, float {acc})")
                    ins.opcode, ins.callee = "call", "@llvm.fmuladd.f32"
                    rw.erase(m)
                    fused += 1
                    break
            rw.commit()
        if fused and not any(isinstance(c, str) and DECLARE in c for c in module.chunks):
            module.chunks.append(DECLARE)
        ctx.stats.setdefault(self.name, {})["fused"] = fused
