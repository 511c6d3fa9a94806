"""llvm-cleanup: LLVM's standard pipeline (through llvmlite) after irprune's own passes.

Folding weights leaves address arithmetic and duplicate index computations
that LLVM's standard passes tidy up. Vectorizers stay off (see llvm_opt).

The default (``level=0``) is InstCombine + SimplifyCFG only
(:func:`irprune.llvm_opt.run_light_cleanup`): since the IR template's index
computations are shared by value numbering before the passes, the full O1
pipeline changes nothing more that reaches the PTX (same PTX up to operand
order on the seed layers) and takes 4x as long. ``level=1``/``3`` run LLVM's
O1/O3 pipeline (O3 gave the same PTX as O1 within 0.2% of its lines on the
pruned 64 -> 64 3x3 layer, at twice the time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..ir.textir import Module
from ..llvm_opt import DEFAULT_CPU, run_light_cleanup, run_o3
from .base import ModulePass, PassContext, reparse


@dataclass(frozen=True)
class LlvmCleanup(ModulePass):
    """LLVM's clean-up over the module: InstCombine + SimplifyCFG (``level=0``) or O``level``."""

    name = "llvm-cleanup"
    #: run_o3 parses its input and verifies its output in LLVM already.
    verifies_output: ClassVar[bool] = True
    cpu: str = DEFAULT_CPU
    level: int = 0

    def apply(self, ctx: PassContext, module: Module) -> None:
        stage = f"pass:{self.name}"
        text = (run_light_cleanup(module.render(), stage, cpu=self.cpu) if self.level == 0 else
                run_o3(module.render(), stage, cpu=self.cpu, unroll=False, level=self.level))
        reparse(module, text)
