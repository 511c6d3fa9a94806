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


_last_verified: list = []  # [(text, module)]: the last module verify_text parsed


def verify_text(text: str, stage: str, reuse: bool = False) -> "llvm.ModuleRef":
    """Parse ``text`` with LLVM and run its verifier.

    Returns the parsed module. Raises IRParseError naming ``stage``, with
    LLVM's message as the error's log, if either step fails.

    The module is also kept for one later call with ``reuse=True`` and the
    same text, which gets it without parsing again: the pipeline verifies
    each pass's output, and the next LLVM step (clean-up, PTX emission) would
    otherwise parse the same megabytes of text a second time. The caller that
    takes it owns it (it may change it), so it is handed out once.
    """
    init_llvm()
    if reuse and _last_verified:
        old_text, old_mod = _last_verified.pop()
        if old_text is text or old_text == text:
            return old_mod
    try:
        mod = llvm.parse_assembly(text)
        mod.verify()
    except RuntimeError as exc:
        lines = [l.strip() for l in str(exc).strip().splitlines() if l.strip()]
        # LLVM's own first line is generic; the line with "error:" says what and where.
        first = next((l for l in lines if "error:" in l), lines[0] if lines else "invalid IR")
        raise IRParseError(f"LLVM rejected the IR: {first}", stage=stage, log=str(exc)) from None
    _last_verified[:] = [(text, mod)]
    return mod


def remember(text: str, mod: "llvm.ModuleRef") -> None:
    """Keep ``mod``, already verified and printed as ``text``, for one ``reuse=True`` call of
    :func:`verify_text` on that text (LLVM's clean-up hands its module on to codegen)."""
    _last_verified[:] = [(text, mod)]
