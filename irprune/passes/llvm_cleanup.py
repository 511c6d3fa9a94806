"""llvm-cleanup: LLVM's standard pipeline (through llvmlite) after irprune's own passes.

Folding weights leaves address arithmetic and duplicate index computations
that LLVM's standard passes tidy up. Vectorizers stay off (see llvm_opt).

The default level is O1: on the pruned 64 -> 64 3x3 layer (90% zeros) it
takes 0.44 s against 0.99 s at O3 and gives the same PTX within 0.2% of its
lines and a cubin within 0.7% of the size with the same register count
(ptxas does the scheduling and allocation that matter).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..ir.textir import Module
from ..llvm_opt import DEFAULT_CPU, run_o3
from .base import ModulePass, PassContext, reparse


@dataclass(frozen=True)
class LlvmCleanup(ModulePass):
    """Run LLVM's O``level`` pipeline over the module."""

    name = "llvm-cleanup"
    #: run_o3 parses its input and verifies its output in LLVM already.
    verifies_output: ClassVar[bool] = True
    cpu: str = DEFAULT_CPU
    level: int = 1

    def apply(self, ctx: PassContext, module: Module) -> None:
        reparse(module, run_o3(module.render(), f"pass:{self.name}", cpu=self.cpu, unroll=False,
                               level=self.level))
