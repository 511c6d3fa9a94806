"""Experiment: the grid wait moved from the kernel's entry to each code region's first memory
access, on the GPU, against the standing's tuned kernels.

Every kernel irprune compiles for sm_90 waits for the grid before it first thing
(irprune.passes.grid_dependency_wait) and is launched with programmatic stream serialization,
so its blocks are scheduled while the kernel before it drains, and then wait. What they wait
for is only the right to touch memory: the group dispatch (``brx.idx`` to the block's channel
group), the region's index arithmetic and, above all, the first fetch of the region's code
(a cold instruction-cache miss, an L2 round trip) need no memory and could run before the wait.
Here each tuned configuration's PTX is rewritten (``late``): the entry's wait is removed and
a wait is put into every region (each ``brx.idx`` target, or the body's start without one)
just before its first memory access; a path walk (:func:`unwaited_accesses`) refuses the
rewrite if any path from the entry reaches a memory access other than ``ld.param`` without a
wait. Prediction: 0.1-0.3 us off every call (the region's first code fetch and address math),
most on the short ones.

Every variant's output is checked against float64 (poisoned with NaN first), then the base
and the variant are timed twice each, interleaved, in one process, with the bench's input
rotation (irprune.bench.impls.make_inputs), both launched as irprune launches them (chained by
programmatic dependent launch in the timing's CUDA graph).

    python3 wait_ab.py cpu [LAYER ...]     # rewrite and check every configuration's PTX (no GPU)
    python3 wait_ab.py [LAYER ...]         # on the GPU; results in $OUT/wait_ab.json
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gpu_timing import build_variants, recorded_configs, recorded_kernel, variant_rows, variants_row

CACHE = "/tmp/waitcache"
RESULTS = os.path.join(HERE, "..", "..", "docs", "perf", "results.json")
VARIANTS = ("late",)
ROUNDS = 2
WAIT = "griddepcontrol.wait;"

#: A memory access (or barrier) that must come after the wait; ld.param is not one.
_ACCESS = re.compile(r"^\s*(?:@!?%\w+\s+)?(?:ld|st|atom|red|cp|prefetch|prefetchu|tex|suld|sust|"
                     r"sured|mbarrier|bar|barrier|call)\b(?!\.param)")


def _body(ptx: str) -> tuple[int, int]:
    """(start, end) of the one kernel body's lines in ``ptx`` (after its brace, before its end)."""
    m = re.search(r"^(?:\.visible\s+)?\.entry\s+[\w$]+", ptx, re.M)
    start = ptx.index("{", m.end()) + 1
    return start, ptx.find("\n}", start)


def unwaited_accesses(lines) -> list[int]:
    """The memory accesses some path from the body's start reaches first without passing a wait
    (irprune.codegen.reached_before_wait: branches, fall-through and ``brx.idx`` tables)."""
    from irprune.codegen import reached_before_wait
    return reached_before_wait(lines, _ACCESS)


def late_wait(ptx: str) -> str:
    """``ptx`` with its entry wait moved to just before each region's first memory access: the
    wait removed, then put before every access that a path reaches first without one (a
    region's first access comes before the rest of its straight-line code); checked again."""
    if ptx.count(WAIT) != 1:
        raise RuntimeError(f"{ptx.count(WAIT)} grid waits in the PTX, not one")
    start, end = _body(ptx)
    lines = [l for l in ptx[start:end].split("\n") if WAIT not in l]
    for i in reversed(unwaited_accesses(lines)):
        lines.insert(i, "\t" + WAIT)
    if unwaited_accesses(lines):
        raise RuntimeError("an access is still reached without a wait")
    return ptx[:start] + "\n".join(lines) + ptx[end:]


def kernel(variant, c):
    return recorded_kernel(c, CACHE, late_wait if variant != "base" else None)


def _build(job):
    kernel(*job)


def _configs(layers):
    return [c for c in recorded_configs(RESULTS, tiles=True, layers=layers) if c.gs]


def cpu(layers):
    """Rewrite each configuration's PTX (waits moved, then checked); print its wait count."""
    for c in _configs(layers):
        k, _, _ = kernel("base", c)
        for p in k.parts:
            late = late_wait(p.ptx)
            print(c.layer, c.batch, "waits", late.count(WAIT), flush=True)


def main():
    if sys.argv[1:2] == ["cpu"]:
        cpu(sys.argv[2:])
        return
    cfgs = _configs(sys.argv[1:])
    build_variants(_build, cfgs, VARIANTS)
    variant_rows(cfgs, kernel, VARIANTS, "wait_ab.json", variants_row(ROUNDS))


if __name__ == "__main__":
    main()
