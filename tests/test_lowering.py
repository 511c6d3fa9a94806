"""Lowering: numba-cuda's private kernel-IR entry point behaves as irprune assumes."""

from __future__ import annotations

import numpy as np
import pytest
from numba import types

from irprune.geometry import ConvGeometry
from irprune.lowering import numba_nvvm_ir
from irprune.templates.conv2d import conv2d_nchw


def test_numba_kernel_ir_has_the_array_abi():
    f4 = types.float32[:, :, :, ::1]
    text = numba_nvvm_ir(conv2d_nchw.py_func, (f4, f4, types.float32[::1], f4,
                                                types.int64, types.int64, types.boolean, types.int64,
                                                types.int64))
    define = next(l for l in text.splitlines() if l.startswith("define"))
    # 7 ABI fields per array (4-D: 5 + 4 shape + 4 strides = 13), then the scalars.
    for field in ("x.0", "x.4", "x.5.3", "x.6.3", "w.4", "bias.4", "y.4"):
        assert f'%"{field}"' in define
    assert '%"stride"' in define and "!nvvm.annotations" in text


def test_ir_template_has_one_constant_offset_load_per_weight():
    g = ConvGeometry(1, 3, 6, 6, 4, 3, 3, 1, 1)
    irt = conv2d_nchw.ir_template(g, 2, relu=False, has_bias=False)
    text = irt.text
    assert "%w.4" in text and "%x.5" not in text  # shapes are bound, data pointers are not
    loads = [l for l in text.splitlines() if "load float" in l]
    gep_w = [l for l in text.splitlines() if "getelementptr" in l and "%w.4" in l]
    # The IR template is channel group 0: group_size (2) x C x R x S weights.
    group_weights = 2 * g.C * g.R * g.S
    assert len(gep_w) == group_weights - 1  # offset 0 is the pointer itself
    assert len(loads) >= group_weights
    assert "ctaid.y" not in text  # blockIdx.y is bound to 0
    assert irt.kernel_name == "irprune_conv2d_nchw"


def test_ir_template_computes_each_input_index_once():
    """After full unrolling each tap recomputed its input's clamped index and padding test;
    value numbering in the template build shares them: they depend on (r, s), not on c."""
    g = ConvGeometry(1, 16, 8, 8, 4, 3, 3, 1, 1)
    text = conv2d_nchw.ir_template(g, 2, relu=False, has_bias=False).text
    clamps = sum("@llvm.smax.i64(" in l and "call" in l for l in text.splitlines())
    taps = g.C * g.R * g.S  # 144 input loads
    assert 0 < clamps <= 2 * (g.R + g.S), clamps  # one per row and column offset, not one per tap
    assert clamps < taps


def test_light_and_o1_cleanup_give_the_same_ptx_instructions():
    """llvm-cleanup's default (InstCombine + SimplifyCFG) against LLVM's O1 pipeline: the same
    PTX instructions, up to the operand order of commutative ones."""
    import collections
    import re

    import numpy as np

    import irprune
    from irprune.codegen import emit_ptx
    from irprune.llvm_opt import run_light_cleanup, run_o3
    from irprune.reference import prune_random

    w = prune_random((8, 8, 3, 3), 0.8, seed=3)
    k = irprune.conv2d(w, (1, 8, 10, 10), padding=1, cache=False)
    pre = k.asm["decompose-rem"]  # the stage before llvm-cleanup

    def opcodes(ptx):
        return collections.Counter(m.group(1) for m in re.finditer(r"^\s+([a-z][\w.]*)\s", ptx, re.M))

    light = emit_ptx(run_light_cleanup(pre, "test"))
    o1 = emit_ptx(run_o3(pre, "test", unroll=False, level=1))
    assert opcodes(light) == opcodes(o1)
    assert light.count("fma.rn.f32") == int(np.count_nonzero(w)) > 0


UNROLL_CASES = [
    # (K, C, H, W, R, stride, padding, group size, slices, tile, groups)
    (8, 8, 10, 10, 3, 1, 1, 4, 1, None, 1),     # 3x3 with padding: clamped taps
    (16, 16, 7, 7, 1, 1, 0, 8, 1, None, 1),     # 1x1
    (8, 6, 9, 9, 3, 2, 1, 4, 2, None, 1),       # stride 2, input-channel slices
    (8, 8, 12, 12, 3, 1, 1, 4, 1, (3, 1), 1),   # the row-tile template
    (8, 8, 8, 8, 3, 1, 1, 2, 1, None, 4),       # convolution groups
    # A 12 -> 5 1x1 layer on one pixel at 2 slices: the slice's channel loop has constant
    # bounds only once the slice loop unrolls (partial unrolling in the first round broke it).
    (5, 12, 1, 1, 1, 1, 0, 2, 2, None, 1),
    # 3 slices of 8 channels: a channel loop whose trip count the rounds cannot fold (O1's).
    (16, 8, 6, 6, 1, 1, 0, 5, 3, None, 1),
]


def test_has_loop_finds_a_cycle_in_the_printed_control_flow():
    from irprune.llvm_opt import has_loop

    head = "define void @k(i64 %n) {\n"
    straight = head + "entry:\n  br label %b\n\nb:  ; preds = %entry\n  ret void\n}\n"
    # Laid out backwards but acyclic: a branch to an earlier block is not a loop by itself.
    backwards = (head + "  br label %c\n\nb:\n  ret void\n\nc:\n  br label %b\n}\n")
    loop = (head + "entry:\n  br label %h\n\nh:\n  %i = phi i64 [ 0, %entry ], [ %j, %h ]\n"
            "  %j = add i64 %i, 1\n  %c = icmp eq i64 %j, %n\n  br i1 %c, label %x, label %h\n\n"
            "x:\n  ret void\n}\n")
    switch = (head + "entry:\n  switch i64 %n, label %a [\n    i64 1, label %b\n  ]\n\n"
              "a:\n  ret void\n\nb:\n  br label %entry2\n\nentry2:\n  br label %b\n}\n")
    assert not has_loop(straight) and not has_loop(backwards)
    assert has_loop(loop) and has_loop(switch)


@pytest.mark.parametrize("case", UNROLL_CASES, ids=lambda c: f"k{c[0]}c{c[1]}r{c[4]}s{c[5]}g{c[7]}x{c[8]}t{c[9]}")
def test_unroll_pipeline_keeps_o1s_fmas_in_o1s_order(case, monkeypatch):
    """run_unroll against LLVM's O1 with full unrolling (the pipeline it replaced): the
    pruned kernel's PTX runs the same FMAs, immediates included, in the same order (the
    order is the loop nest's, which ptxas's register allocation follows), and about as
    many instructions."""
    import re

    import irprune
    import irprune.lowering as lowering
    from irprune.llvm_opt import run_o3
    from irprune.reference import prune_random
    from irprune.templates.conv2d import conv2d_nchw
    from irprune.templates.conv2d_rows import conv2d_rows

    K, C, H, W, R, stride, padding, gs, slices, tile, groups = case
    w = prune_random((K, C // groups, R, R), 0.7, seed=5)

    def compiled():
        for t in (conv2d_nchw, conv2d_rows):
            t._ir_cache.clear()  # both pipelines share the in-process memo's keys
        k = irprune.conv2d(w, (1, C, H, W), stride=stride, padding=padding, groups=groups,
                           group_size=gs, slices=slices, tile=tile, cache=False)
        ptx = "\n".join(p.ptx for p in k.parts)
        return (re.findall(r"^\s*fma\.rn\.f32\s+%r\d+, %r\d+, (0f[0-9A-F]{8})", ptx, re.M),
                len(re.findall(r"^\s+[a-z@][^;]*;", ptx, re.M)))

    fmas, count = compiled()
    monkeypatch.setattr(lowering, "run_unroll", lambda text, stage, cpu: run_o3(
        text, stage, cpu=cpu, unroll=True, level=1))
    o1_fmas, o1_count = compiled()
    monkeypatch.undo()
    for t in (conv2d_nchw, conv2d_rows):
        t._ir_cache.clear()
    assert len(fmas) == int(np.count_nonzero(w)) > 0
    assert fmas == o1_fmas
    # Since the template runs its taps outermost, O1 folds a few more of the clamped tap
    # indices and slice bounds of these small kernels than the rounds do (14 of 325
    # instructions; 21 of 514 for the 1x1 at 3 slices, where the rounds give 4 more than
    # before and O1 7 fewer); on a large kernel the two agree (resnet_3x3_28 at group 2:
    # 33,697 PTX instructions each).
    assert abs(count - o1_count) <= max(24, 0.02 * o1_count), (count, o1_count)


def test_table_template_loops_keep_o1s_shape_after_an_unrolled_template(monkeypatch):
    """The table template is built by O1 (its loop stays a loop), after run_unroll switched the
    unroller's partial and runtime unrolling off and on again in this process: its PTX is what
    O1 gives in a process where run_unroll never ran (the partial unrolling O1 chooses for the
    table loops survives the switch)."""
    import subprocess
    import sys

    script = """
import sys
from irprune.reference import prune_random
from irprune.table_kernel import compile_table_conv2d
from irprune.table_layout import TableConfig
import irprune
if sys.argv[1] == "after":
    irprune.conv2d(prune_random((4, 6, 3, 3), 0.5, seed=1), (1, 6, 6, 6), padding=1, slices=2,
                   group_size=2, cache=False)
w = prune_random((2048, 512, 1, 1), 0.9, seed=2)  # l4_1x1_512_2048's shape and table layout
k = compile_table_conv2d(w, (1, 512, 7, 7), config=TableConfig(16, 1, 49), block=512, cache=False)
print("".join(l for l in k.parts[0].ptx.splitlines(True) if "NumbaEnv" not in l))
"""
    out = [subprocess.run([sys.executable, "-c", script, arg], capture_output=True, text=True,
                          check=True, env={**__import__("os").environ, "IRPRUNE_JOBS": "1"}).stdout
           for arg in ("alone", "after")]
    assert "fma.rn.f32" in out[0]
    assert out[0] == out[1]
