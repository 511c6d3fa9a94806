"""Parse and verify IR text with llvmlite's LLVM (the check run after every pass)."""

from __future__ import annotations

import llvmlite.binding as llvm

from ..errors import IRParseError

_initialized = False


def init_llvm() -> None:
    """Initialize llvmlite's NVPTX target once per process."""
    global _initialized
    if _initialized:
        return
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    _initialized = True


def verify_text(text: str, stage: str) -> "llvm.ModuleRef":
    """Parse ``text`` with LLVM and run its verifier.

    Returns the parsed module. Raises IRParseError naming ``stage``, with
    LLVM's message as the error's log, if either step fails.
    """
    init_llvm()
    try:
        mod = llvm.parse_assembly(text)
        mod.verify()
    except RuntimeError as exc:
        lines = [l.strip() for l in str(exc).strip().splitlines() if l.strip()]
        # LLVM's own first line is generic; the line with "error:" says what and where.
        first = next((l for l in lines if "error:" in l), lines[0] if lines else "invalid IR")
        raise IRParseError(f"LLVM rejected the IR: {first}", stage=stage, log=str(exc)) from None
    return mod
