"""Experiment: each block prefetches its input region into L2 right after its grid wait, on the
GPU, against the standing's tuned kernels at batch 1.

A tuned kernel's thread walks its input channels in order, and its loads go out only as far
as its registers allow: on a layer whose inputs come from DRAM (the bench rotates input sets
over twice the L2, so every layer of 3.75 MiB or more of input and output a set), each batch
of loads waits a DRAM round trip. Here the PTX of each tuned configuration is rewritten: after
``griddepcontrol.wait`` every block issues prefetches of the input rows its output pixels read
(every input channel; a 1x1 stride-1 layer exactly its pixels, any other layer the rows from
its first output row's first tap to its last row's last), one ``cp.async.bulk.prefetch.L2``
per channel (``bulk``) or one ``prefetch.global.L2`` per 128-byte line (``line``); the blocks
of one pixel tile share the channels between them (channel c by the block with blockIdx.y = c
mod gridDim.y). The threads' own loads are unchanged: nothing waits for a prefetch.
Batch 1 only (the region math takes image 0).

Every variant's output is checked against float64 (poisoned with NaN first), then the base
and the variants are timed twice each, interleaved, in one process, with the bench's input
rotation (irprune.bench.impls.make_inputs: sets of input and output over twice the L2).

    python3 l2_prefetch_ab.py [LAYER ...]     # on the GPU; results in $OUT/l2_prefetch_ab.json
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gpu_timing import (assembled, build_variants, compile_layer, install_ptx, recorded_configs,
                        rotation_ab, variant_rows)

CACHE = "/tmp/l2pfcache"
RESULTS = os.path.join(HERE, "..", "..", "docs", "perf", "results.json")
VARIANTS = ("bulk", "line")
ROUNDS = 2


def region_ptx(layer, mode: str, kernel_name: str) -> str:
    """The PTX block that prefetches a block's input rows (see the module's docstring)."""
    l = layer
    OH = (l.H + 2 * l.padding - l.R) // l.stride + 1
    OW = (l.W + 2 * l.padding - l.S) // l.stride + 1
    exact = (l.R, l.S, l.stride, l.padding) == (1, 1, 1, 0)
    hw4 = l.H * l.W * 4
    lines = [
        "{",
        ".reg .b32 %qf<24>;", ".reg .b64 %qd<12>;", ".reg .pred %qp<4>;",
        "mov.u32 %qf0, %ctaid.x;", "mov.u32 %qf1, %ntid.x;",
        "mul.lo.u32 %qf2, %qf0, %qf1;",            # p0
        "add.u32 %qf3, %qf2, %qf1;",
        f"min.u32 %qf3, %qf3, {OH * OW};",          # end pixel
    ]
    if not exact:
        lines += [
            f"div.u32 %qf4, %qf2, {OW};",
            "sub.u32 %qf5, %qf3, 1;", f"div.u32 %qf5, %qf5, {OW};",
            f"mul.lo.u32 %qf4, %qf4, {l.stride};",
            f"sub.s32 %qf4, %qf4, {l.padding};", "max.s32 %qf4, %qf4, 0;",
            f"mad.lo.u32 %qf5, %qf5, {l.stride}, {l.R - 1 - l.padding};",
            f"min.s32 %qf5, %qf5, {l.H - 1};",
            f"mul.lo.u32 %qf2, %qf4, {l.W};",
            "add.u32 %qf3, %qf5, 1;", f"mul.lo.u32 %qf3, %qf3, {l.W};",
        ]
    lines += [
        "shl.b32 %qf2, %qf2, 2;", "shl.b32 %qf3, %qf3, 2;",   # bytes in the channel
        "mov.u32 %qf6, %tid.x;", "mov.u32 %qf7, %tid.y;", "mov.u32 %qf8, %tid.z;",
        "mov.u32 %qf9, %ntid.y;", "mov.u32 %qf10, %ntid.z;",
        "mad.lo.u32 %qf11, %qf9, %qf8, %qf7;", "mad.lo.u32 %qf11, %qf11, %qf1, %qf6;",  # f
        "mul.lo.u32 %qf12, %qf1, %qf9;", "mul.lo.u32 %qf12, %qf12, %qf10;",           # T
        "mov.u32 %qf13, %ctaid.y;", "mov.u32 %qf14, %nctaid.y;",
        "mad.lo.u32 %qf15, %qf11, %qf14, %qf13;",   # first channel
        "mul.lo.u32 %qf16, %qf12, %qf14;",           # step
        f"ld.param.b64 %qd0, [{kernel_name}_param_0];", "cvta.to.global.u64 %qd0, %qd0;",
        "cvt.u64.u32 %qd2, %qf2;", "cvt.u64.u32 %qd4, %qf3;",
        "$Lqpf_loop:",
        f"setp.ge.u32 %qp0, %qf15, {l.C};", "@%qp0 bra $Lqpf_done;",
        f"mul.wide.u32 %qd1, %qf15, {hw4};", "add.s64 %qd1, %qd1, %qd0;",
        "add.s64 %qd3, %qd1, %qd2;", "and.b64 %qd3, %qd3, -16;",       # first byte, aligned
        "add.s64 %qd5, %qd1, %qd4;", "add.s64 %qd5, %qd5, 15;", "and.b64 %qd5, %qd5, -16;",
    ]
    if mode == "bulk":
        lines += ["sub.s64 %qd6, %qd5, %qd3;", "cvt.u32.u64 %qf17, %qd6;",
                  "cp.async.bulk.prefetch.L2.global [%qd3], %qf17;"]
    else:
        lines += ["and.b64 %qd3, %qd3, -128;",
                  "$Lqpf_line:", "setp.ge.u64 %qp1, %qd3, %qd5;", "@%qp1 bra $Lqpf_next;",
                  "prefetch.global.L2 [%qd3];", "add.s64 %qd3, %qd3, 128;", "bra.uni $Lqpf_line;",
                  "$Lqpf_next:"]
    lines += ["add.u32 %qf15, %qf15, %qf16;", "bra.uni $Lqpf_loop;", "$Lqpf_done:", "}"]
    return "\n\t".join(lines)


def with_prefetch(ptx: str, layer, mode: str) -> str:
    """``ptx`` with the prefetch block after its grid wait (PTX ISA 8.0 for the bulk form)."""
    name = re.search(r"\.entry\s+(\w+)\(", ptx).group(1)
    if "griddepcontrol.wait;" not in ptx:
        raise RuntimeError("no grid wait in the PTX")
    ptx = ptx.replace("griddepcontrol.wait;", "griddepcontrol.wait;\n\t" + region_ptx(layer, mode, name), 1)
    return re.sub(r"^\.version 7\.\d+", ".version 8.0", ptx, count=1, flags=re.M)


def kernel(variant, c):
    from irprune.templates.conv2d import conv2d_nchw
    k, w, l = compile_layer(conv2d_nchw, c.layer, c.gs, c.slices, CACHE, c.budget, assemble=True)
    if variant != "base":
        install_ptx(k, assembled([p.ptx for p in k.parts],
                                 lambda ptx: with_prefetch(ptx, l, variant), k.cpu))
    k.block, k.groups_per_block = c.block, c.m
    return k, w, l


def _build(job):
    kernel(*job)


def main():
    cfgs = [c for c in recorded_configs(RESULTS, tiles=False, layers=sys.argv[1:])
            if c.batch == 1 and c.gs]
    build_variants(_build, cfgs, VARIANTS)
    variant_rows(cfgs, kernel, VARIANTS, "l2_prefetch_ab.json", _time_row)


def _time_row(row, c, built):
    _, w, l = built["base"]
    rotation_ab(row, {v: b[0] for v, b in built.items()}, w, l, 1, ROUNDS, "base")


if __name__ == "__main__":
    main()
