"""llvm-cleanup: LLVM's O3 pipeline (through llvmlite) after irprune's own passes.

Folding weights leaves address arithmetic and duplicate index computations
that LLVM's standard passes tidy up. Vectorizers stay off (see llvm_opt).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ir.textir import Module
from ..llvm_opt import DEFAULT_CPU, run_o3
from .base import ModulePass, PassContext, reparse


@dataclass(frozen=True)
class LlvmCleanup(ModulePass):
    """Run LLVM's O3 pipeline over the module."""

    name = "llvm-cleanup"
    cpu: str = DEFAULT_CPU

    def apply(self, ctx: PassContext, module: Module) -> None:
        reparse(module, run_o3(module.render(), f"pass:{self.name}", cpu=self.cpu, unroll=False))
