"""strip-zero-weights: delete the whole instruction chain of every zero weight.

Uses the trace-weight-uses map. For a weight equal to zero (either sign) the
pass erases its address, load and multiply, makes each accumulate read the
running sum it was adding to (so the sum skips the term), and erases the
input-side instructions that no other weight needs, including input loads
that become dead. A pruned weight therefore contributes nothing: a NaN or
Inf seen only through pruned weights never reaches the output.

This is irprune's own rewrite, not fast-math flags left for LLVM: without
them LLVM must keep ``x * 0.0`` (x may be NaN or inf).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import PassError
from ..ir.textir import Module, Rewriter, erase_dead
from .base import ModulePass, PassContext
from .trace_weight_uses import TraceMap

ZERO = "0.000000e+00"


@dataclass(frozen=True)
class StripZeroWeights(ModulePass):
    """Erase the chains of zero weights (their loads, multiplies, accumulates, dead inputs)."""

    name = "strip-zero-weights"
    requires = ("trace-weight-uses",)

    def apply(self, ctx: PassContext, module: Module) -> None:
        if ctx.weights is None:
            raise PassError("no weight values were given to strip", stage=f"pass:{self.name}")
        tm: TraceMap = ctx.analyses["trace-weight-uses"]
        flat = ctx.weights.reshape(-1)
        fn = module.function()
        rw = Rewriter(fn)
        zero_products: set[str] = set()
        candidates = []
        shared: set[str] = set()
        stripped = 0
        for tr in tm.all():
            if flat[tr.flat] != 0.0:
                continue
            stripped += 1
            for m in tr.multiplies:
                # Inputs shared with other weights may die too once all are stripped.
                shared.update(o for o in m.operands() if o != tr.load.name)
                if m.opcode == "call":  # fma(a, w, acc) -> acc
                    rw.replace_uses(m.name, m.operands()[-1] if len(m.operands()) == 3 else ZERO)
                else:
                    zero_products.add(m.name)
                rw.erase(m)
            rw.erase(tr.load)
            if tr.address is not None:
                candidates.append(tr.address)
            candidates.extend(tr.inputs)
        # Each accumulate `s' = fadd s, p` of a zero product p becomes s.
        for tr in tm.all():
            for a in tr.accumulates:
                ops = a.binary_operands()
                if not any(o in zero_products for o in ops):
                    continue
                rest = [o for o in ops if o not in zero_products]
                # The other operand is the running sum (a value, or a literal
                # such as 0.0 or a folded bias); two zero products give 0.0.
                rw.replace_uses(a.name, rest[0] if rest else ZERO)
                rw.erase(a)
        # Any other reader of a zero product reads 0.0.
        for p in zero_products:
            rw.replace_uses(p, ZERO)
        rw.commit()
        defs = fn.definitions()
        candidates.extend(defs[n] for n in shared if n in defs)
        dead = erase_dead(fn, candidates)
        ctx.stats.setdefault(self.name, {}).update(
            {"weights_stripped": stripped, "dead_inputs_erased": dead})
