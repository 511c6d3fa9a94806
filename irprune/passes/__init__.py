"""irprune's passes, one per module, and the registry that names them.

``PASSES`` maps each pass's kebab-case name to its class, so pipelines can
be written as text (``"trace-weight-uses,strip-zero-weights"``).
"""

from __future__ import annotations

from ..errors import UnknownPassError
from .base import ModulePass, PassContext, PipelineResult, run_pipeline
from .async_copy import AsyncCopy
from .contract_fma import ContractFma
from .decompose_rem import DecomposeRem
from .embed_tables import EmbedTables
from .fold_weight_constants import FoldWeightConstants
from .llvm_cleanup import LlvmCleanup
from .strip_zero_weights import StripZeroWeights
from .trace_weight_uses import TraceMap, TraceWeightUses, WeightTrace

PASSES: dict[str, type[ModulePass]] = {
    p.name: p for p in (TraceWeightUses, StripZeroWeights, FoldWeightConstants, ContractFma, LlvmCleanup,
                        DecomposeRem, EmbedTables, AsyncCopy)
}

#: The pipeline that turns an IR template into the pruned IR.
DEFAULT_PIPELINE = ("trace-weight-uses,strip-zero-weights,fold-weight-constants,contract-fma,decompose-rem,"
                    "llvm-cleanup")
#: The pipeline of a table kernel (irprune.table_kernel): weights as data, not immediates.
TABLE_PIPELINE = "embed-tables,async-copy,contract-fma,decompose-rem,llvm-cleanup"


def parse_pipeline(spec: str) -> list[ModulePass]:
    """Turn ``"a,b,c"`` into pass instances; unknown names raise UnknownPassError."""
    out = []
    for name in (s.strip() for s in spec.split(",")):
        if not name:
            continue
        if name not in PASSES:
            raise UnknownPassError(
                f"unknown pass {name!r}; known passes: {', '.join(PASSES)}", stage="pipeline")
        out.append(PASSES[name]())
    return out


__all__ = [
    "PASSES", "DEFAULT_PIPELINE", "TABLE_PIPELINE", "parse_pipeline", "run_pipeline", "ModulePass", "PassContext",
    "PipelineResult", "TraceMap", "WeightTrace", "TraceWeightUses", "StripZeroWeights",
    "FoldWeightConstants", "ContractFma", "LlvmCleanup", "DecomposeRem", "EmbedTables", "AsyncCopy",
]
