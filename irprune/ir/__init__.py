"""LLVM IR handling: the editable text model and verification."""

from .textir import Module, Function, Instruction, Rewriter, parse_module, erase_dead, float_literal
from .verify import verify_text, llvm

__all__ = [
    "Module", "Function", "Instruction", "Rewriter", "parse_module",
    "erase_dead", "float_literal", "verify_text", "llvm",
]
