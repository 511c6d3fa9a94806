"""fold-weight-constants: every remaining weight load becomes an immediate constant.

Every float load from the weight at a constant offset (through any chain of
constant getelementptrs, such as a channel group's shifted base) becomes the
weight's value, and the loads of other compile-time arrays
(``ctx.constants``, e.g. the bias) the same way. Afterwards nothing reads those arrays, and their parameters are
removed from the kernel: no weight array is passed or read at run time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import PassError, TemplateContractError
from ..ir.textir import Module, Rewriter, erase_dead, float_literal
from .base import ModulePass, PassContext
from .trace_weight_uses import constant_offset_loads


@dataclass(frozen=True)
class FoldWeightConstants(ModulePass):
    """Replace weight (and bias) loads by their values; drop the weight parameters."""

    name = "fold-weight-constants"
    region_local = True

    def apply(self, ctx: PassContext, module: Module) -> None:
        if ctx.weights is None:
            raise PassError("no weight values were given to fold", stage=f"pass:{self.name}")
        flat = ctx.weights.reshape(-1).astype(np.float32)
        fn = module.function()
        rw = Rewriter(fn)
        dead = []
        folded = 0
        users = fn.users()
        if ctx.weight_param:
            for load, gep, off in constant_offset_loads(fn, ctx.weight_param, users):
                if off % 4 or not 0 <= off // 4 < flat.size:
                    raise TemplateContractError(
                        f"weight load at byte offset {off} is outside the {ctx.weight_shape} "
                        "float32 weight", stage=f"pass:{self.name}")
                rw.replace_uses(load.name, float_literal(flat[off // 4]))
                rw.erase(load)
                folded += 1
                if gep is not None:
                    dead.append(gep)
        for param, values in ctx.constants.items():
            vals = np.asarray(values, dtype=np.float32).reshape(-1)
            for load, gep, off in constant_offset_loads(fn, param, users):
                if off % 4 or not 0 <= off // 4 < vals.size:
                    raise TemplateContractError(
                        f"load at byte offset {off} outside constant array {param} "
                        f"of {vals.size} floats", stage=f"pass:{self.name}")
                rw.replace_uses(load.name, float_literal(vals[off // 4]))
                rw.erase(load)
                if gep is not None:
                    dead.append(gep)
        # The map of readers made above stays true through these edits (loads
        # erased, constants put in their readers' place: no reader added), so
        # the rewrite, the dead-address sweep and the check below reuse it.
        gone = set(rw.pending_erasures())
        rw.commit(users=users)
        erase_dead(fn, dead, users=users, gone=gone)
        live = {id(i) for i in fn.instructions()}
        drop = {p for p in [ctx.weight_param, *ctx.constants] if p}
        readers = {p: [u for u in users.get(p, ()) if id(u) in live] for p in drop}
        still = sorted(p for p in drop if readers[p])
        if still:
            raise PassError(f"{still} still read at run time after folding: "
                            f"`{readers[still[0]][0].text.strip()}`", stage=f"pass:{self.name}")
        fn.set_params([(t, n) for t, n in fn.params() if n not in drop])
        ctx.stats.setdefault(self.name, {}).update(
            {"weights_folded": folded, "params_dropped": sorted(drop)})
