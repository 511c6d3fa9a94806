"""One part's channel-group regions compiled in several processes and joined into one module.

A layer of one part (most layers) would otherwise run its whole pass
pipeline on one core. The passes up to the first one that looks across
regions (``region_local``: trace-weight-uses, strip-zero-weights,
fold-weight-constants, contract-fma) do to each region what they would do
with the others there, so a part's regions are cut into *shares*: each share
goes through those passes in its own process (the first in this one), the
shares' functions are joined (their region blocks in order, one group
switch), and the rest of the pipeline (llvm-cleanup) and NVPTX codegen run
once on the joined module. The regions keep their part-wide indices, names
and switch cases, so the joined module is, text for text, the one a single
process makes (tests/test_region_shares.py checks the PTX is identical).

A share costs a worker start (about 0.3 s) and its module's trip back, so
only parts of :data:`SHARE_MIN_NNZ` nonzeros per share or more are cut.
"""

from __future__ import annotations

from .errors import PassError
from .ir.textir import Function, Module, parse_module
from .passes.base import ModulePass
from .passes.strip_zero_weights import dispatch_blocks, dispatch_cases

#: Nonzeros per share below which another process costs more than it saves
#: (resnet_3x3_28's 14,746 nonzeros in 32 regions: 2 shares on 2 cores save ~1.3 s).
SHARE_MIN_NNZ = 4096


def share_count(nnz: int, regions: int, workers: int) -> int:
    """How many shares a part of ``nnz`` nonzeros in ``regions`` regions is cut into."""
    return max(1, min(workers, regions, nnz // SHARE_MIN_NNZ))


def share_bounds(regions: int, shares: int) -> list[tuple[int, int]]:
    """``(first, count)`` of each share: consecutive regions, counts differing by one at most."""
    shares = max(1, min(shares, regions))
    size, extra = divmod(regions, shares)
    out, first = [], 0
    for i in range(shares):
        count = size + (i < extra)
        out.append((first, count))
        first += count
    return out


def split_pipeline(passes: list[ModulePass]) -> tuple[list[ModulePass], list[ModulePass]]:
    """The pipeline's leading region-local passes (run per share) and the rest (run once, joined).

    The head must strip: without strip-zero-weights there are no regions to share.
    """
    n = 0
    while n < len(passes) and passes[n].region_local:
        n += 1
    head = passes[:n]
    if not any(p.name == "strip-zero-weights" for p in head):
        return [], passes
    return head, passes[n:]


def join_shares(modules: list[Module]) -> Module:
    """One module from the shares' modules: the first's, with every share's regions behind one switch.

    The shares were made from the same template by the same region-local
    passes, so their headers, declarations and metadata agree; the regions'
    blocks follow each other in share order, as one process would write them.
    Declarations one share added and another did not (e.g. ``llvm.fmuladd``
    when a share fused nothing) are kept.
    """
    if len(modules) == 1:
        return modules[0]
    out = modules[0]
    fn = out.function()
    cases = dispatch_cases(fn)
    regions = fn.blocks[2:]
    known = {line for c in out.chunks if isinstance(c, str) for line in c.splitlines()}
    for m in modules[1:]:
        other: Function = m.function()
        if other.header != fn.header:
            raise PassError(f"shares of @{fn.name} have different headers: {fn.header!r} and "
                            f"{other.header!r}", stage="join-shares")
        cases += dispatch_cases(other)
        regions += other.blocks[2:]
        for line in (x for c in m.chunks if isinstance(c, str) for x in c.splitlines()):
            if line.startswith("declare ") and line not in known:
                out.chunks.append(line)  # where the pass that declared it would have put it
                known.add(line)
    groups = [g for g, _ in cases]
    if groups != sorted(set(groups)):
        raise PassError(f"shares of @{fn.name} overlap or are out of order: groups {groups}",
                        stage="join-shares")
    fn.blocks = dispatch_blocks(cases) + regions
    return out


def join_share_texts(texts: list[str]) -> str:
    """:func:`join_shares` on module texts (a stage's text of each share), as text."""
    return join_shares([parse_module(t) for t in texts]).render()


__all__ = ["SHARE_MIN_NNZ", "share_count", "share_bounds", "split_pipeline", "join_shares",
           "join_share_texts"]
