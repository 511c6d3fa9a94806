"""Experiment: a block's warps dealt to its channel groups round-robin, so that each of an SM's
four schedulers (SMSPs) runs fewer code streams, on the GPU, against the standing's tuned
kernels at batch 1.

With several channel groups per block (``groups_per_block`` M, threadIdx.z), warp w of a block
of (bx, 1, M) threads runs group w // (bx / 32): a group's warps are consecutive. An SM hands
its warps to its four SMSPs round-robin by warp slot (``diag`` below checks that with
``%warpid``), so each SMSP gets one warp of each of the block's M code streams, and each
SMSP's instruction cache must hold all M streams (at 128 pixels and group 4, 4 streams of
about 6 KB of SASS each on the large 1x1 layers, which wait for instruction fetch: the
"no_instruction" stall was 5.6-6.2 of 9 cycles an issued instruction, docs/perf-log.md).
Here the PTX of each tuned configuration with M > 1 (and one slice) is rewritten so that warp
w runs group w mod M and pixels (w div M) * 32 + lane: the same threads, the same bijection of
(pixel, group) onto them, but a group's warps w = g, g + M, ... all on SMSP g mod 4 (for M = 2,
4, 8). With M = 1 the mapping is the identity. Prediction: faster where fetch is the bound
(the layers of 26,214 and more nonzeros), about even elsewhere.

Every variant's output is checked against float64 (poisoned with NaN first), then the base
and the variant are timed twice each, interleaved, in one process, with the bench's input
rotation (irprune.bench.impls.make_inputs).

    python3 smsp_ab.py diag                # where a 16-warp block's warps land (%warpid)
    python3 smsp_ab.py [LAYER ...]         # on the GPU; results in $OUT/smsp_ab.json
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gpu_timing import build_variants, recorded_configs, recorded_kernel, variant_rows, variants_row

CACHE = "/tmp/smspcache"
RESULTS = os.path.join(HERE, "..", "..", "docs", "perf", "results.json")
VARIANTS = ("smsp",)
ROUNDS = 2

#: The computed thread indices, after the grid wait: lin = tid.z * ntid.x + tid.x, w = lin / 32,
#: tid.z' = w mod ntid.z, tid.x' = (w div ntid.z) * 32 + lin mod 32.
PROLOGUE = """
	.reg .b32 %smq<12>;
	mov.u32 %smq0, %tid.x;
	mov.u32 %smq1, %tid.z;
	mov.u32 %smq2, %ntid.x;
	mov.u32 %smq3, %ntid.z;
	mad.lo.u32 %smq4, %smq1, %smq2, %smq0;
	shr.u32 %smq5, %smq4, 5;
	and.b32 %smq6, %smq4, 31;
	rem.u32 %smq7, %smq5, %smq3;
	div.u32 %smq8, %smq5, %smq3;
	shl.b32 %smq9, %smq8, 5;
	or.b32 %smq10, %smq9, %smq6;"""


def interleaved(ptx: str) -> str:
    """``ptx`` with every read of %tid.x / %tid.z replaced by the round-robin mapping above."""
    wait = "griddepcontrol.wait;"
    at = ptx.find(wait)
    if at < 0:
        raise RuntimeError("no grid wait in the PTX")
    if re.search(r"%tid\.[xz]", ptx[:at]) or re.search(r"%tid\.y", ptx):
        raise RuntimeError("a thread index read before the wait, or slices (tid.y)")
    body = ptx[at + len(wait):]
    body, nx = re.subn(r"mov\.u32\s+(%r\d+),\s*%tid\.x;", r"mov.u32 \1, %smq10;", body)
    body, nz = re.subn(r"mov\.u32\s+(%r\d+),\s*%tid\.z;", r"mov.u32 \1, %smq7;", body)
    if not nx or re.search(r"%tid\.", body):
        raise RuntimeError(f"unexpected thread index reads ({nx} x, {nz} z)")
    return ptx[:at + len(wait)] + PROLOGUE + body


def kernel(variant, c):
    return recorded_kernel(c, CACHE, interleaved if variant != "base" else None)


def _build(job):
    kernel(*job)


def diag():
    """Print, for a 16-warp block of (128, 1, 4) threads, each warp's %warpid (its slot; the
    SMSP is the slot mod 4 on the GPUs documented) and SM, for a few blocks."""
    import cupy as cp
    src = r'''extern "C" __global__ void k(unsigned *out) {
        unsigned wid, sm;
        asm volatile("mov.u32 %0, %%warpid;" : "=r"(wid));
        asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));
        unsigned lin = threadIdx.z * blockDim.x + threadIdx.x;
        if ((lin & 31) == 0) {
            unsigned i = (blockIdx.x * 16 + (lin >> 5)) * 2;
            out[i] = wid; out[i + 1] = sm;
        }
    }'''
    k = cp.RawKernel(src, "k")
    blocks = 8
    out = cp.zeros(blocks * 16 * 2, dtype=cp.uint32)
    k((blocks,), (128, 1, 4), (out,))
    o = out.get().reshape(blocks, 16, 2)
    for b in range(blocks):
        print(f"block {b} sm {o[b, 0, 1]}: warp -> %warpid", list(map(int, o[b, :, 0])),
              "mod 4:", [int(x) % 4 for x in o[b, :, 0]], flush=True)


def main():
    if sys.argv[1:2] == ["diag"]:
        diag()
        return
    cfgs = [c for c in recorded_configs(RESULTS, tiles=False, layers=sys.argv[1:])
            if c.batch == 1 and c.gs and c.m > 1 and c.slices == 1]
    build_variants(_build, cfgs, VARIANTS)
    variant_rows(cfgs, kernel, VARIANTS, "smsp_ab.json", variants_row(ROUNDS))


if __name__ == "__main__":
    main()
