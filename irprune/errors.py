"""Every exception irprune raises on purpose, in one place.

Each error names the compilation stage that failed and carries that stage's
log (the verifier's message, ptxas's output, ...) so that a failure can be
reported without a traceback: ``str(err)`` is one actionable line and
``err.log`` the full text.
"""

from __future__ import annotations


class IrpruneError(Exception):
    """Base class of irprune's errors.

    Attributes:
        stage: the compilation stage that failed (``"lowering"``,
            ``"pass:strip-zero-weights"``, ``"ptx"``, ``"ptxas"``, ...) or None.
        log: the failing tool's full output, or "".
    """

    def __init__(self, message: str, *, stage: str | None = None, log: str = ""):
        super().__init__(message)
        self.stage = stage
        self.log = log

    def __str__(self) -> str:
        msg = Exception.__str__(self)  # not KeyError's, which would quote it
        return f"[{self.stage}] {msg}" if self.stage else msg


class ValidationError(IrpruneError, ValueError):
    """The caller's input (weights, shapes, options, arrays) is not acceptable."""


class TemplateContractError(IrpruneError):
    """An operator template uses its weight argument in a way irprune cannot prune.

    docs/templates.md states the contract: the weight argument is only read,
    at indices that become compile-time constants once the loops over it are
    unrolled, and each value read is only multiplied into a sum.
    """


class IRParseError(IrpruneError):
    """LLVM could not parse or verify a module; ``log`` holds LLVM's message."""


class PassError(IrpruneError):
    """A pass failed or left the module invalid."""


class UnknownPassError(IrpruneError, KeyError):
    """A pipeline names a pass that is not registered."""

    __str__ = IrpruneError.__str__


class CodegenError(IrpruneError):
    """The NVPTX backend failed to emit PTX."""


class PtxasError(IrpruneError):
    """ptxas rejected the PTX, or could not be found."""


class LaunchError(IrpruneError):
    """A compiled kernel could not be loaded or launched (no GPU, bad arrays, ...)."""
