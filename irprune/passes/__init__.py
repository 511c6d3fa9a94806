"""irprune's passes, one per module, and the registry that names them.

``PASSES`` maps each pass's kebab-case name to its class, so pipelines can
be written as text (``"trace-weight-uses,strip-zero-weights"``).
"""

from __future__ import annotations

import re
from dataclasses import fields

from ..errors import UnknownPassError
from .base import ModulePass, PassContext, PipelineResult, run_pipeline
from .async_copy import AsyncCopy
from .contract_fma import ContractFma
from .decompose_rem import DecomposeRem
from .embed_tables import EmbedTables
from .fold_weight_constants import FoldWeightConstants
from .grid_dependency_wait import GridDependencyWait
from .llvm_cleanup import LlvmCleanup
from .outline_regions import OutlineRegions
from .place_output_channels import PlaceOutputChannels
from .strip_zero_weights import StripZeroWeights
from .trace_weight_uses import TraceMap, TraceWeightUses, WeightTrace

PASSES: dict[str, type[ModulePass]] = {
    p.name: p for p in (TraceWeightUses, StripZeroWeights, FoldWeightConstants, ContractFma, LlvmCleanup,
                        DecomposeRem, EmbedTables, AsyncCopy, OutlineRegions, GridDependencyWait,
                        PlaceOutputChannels)
}

#: The pipeline that turns an IR template into the pruned IR. grid-dependency-wait comes last:
#: no LLVM pass runs after it that could move a load above the wait.
DEFAULT_PIPELINE = ("trace-weight-uses,strip-zero-weights,place-output-channels,fold-weight-constants,"
                    "contract-fma,decompose-rem,"
                    "llvm-cleanup,grid-dependency-wait")
#: The pipeline of a table kernel (irprune.table_kernel): weights as data, not immediates.
TABLE_PIPELINE = "embed-tables,async-copy,contract-fma,decompose-rem,llvm-cleanup,grid-dependency-wait"


def parse_pipeline(spec: str) -> list[ModulePass]:
    """Turn ``"a,b{option=3},c"`` into pass instances.

    Options in braces set the pass's dataclass fields (integers or words, e.g.
    ``outline-regions{instructions=64}``). Unknown names and options raise
    UnknownPassError.
    """
    out = []
    for item in (s.strip() for s in re.split(r",(?![^{]*\})", spec)):
        if not item:
            continue
        name, _, opts = item.partition("{")
        name = name.strip()
        if name not in PASSES:
            raise UnknownPassError(
                f"unknown pass {name!r}; known passes: {', '.join(PASSES)}", stage="pipeline")
        out.append(PASSES[name](**_options(PASSES[name], opts.rstrip("}"))))
    return out


def _options(cls: type[ModulePass], text: str) -> dict:
    """``"a=1,b=x"`` as keyword arguments of pass ``cls`` (its dataclass fields)."""
    known = {f.name for f in fields(cls)}
    kw = {}
    for pair in filter(None, (s.strip() for s in text.split(","))):
        key, eq, value = (s.strip() for s in pair.partition("="))
        if not eq or key not in known:
            raise UnknownPassError(f"pass {cls.name} has no option {key!r}; its options: "
                                   f"{', '.join(sorted(known)) or 'none'}", stage="pipeline")
        kw[key] = int(value) if re.fullmatch(r"-?\d+", value) else value
    return kw


__all__ = [
    "PASSES", "DEFAULT_PIPELINE", "TABLE_PIPELINE", "parse_pipeline", "run_pipeline", "ModulePass", "PassContext",
    "PipelineResult", "TraceMap", "WeightTrace", "TraceWeightUses", "StripZeroWeights",
    "FoldWeightConstants", "ContractFma", "LlvmCleanup", "DecomposeRem", "EmbedTables", "AsyncCopy",
    "OutlineRegions", "GridDependencyWait",
]
