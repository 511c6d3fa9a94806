"""embed-tables and async-copy on a small hand-written staging kernel."""

from __future__ import annotations

import numpy as np
import pytest

from irprune.errors import PassError
from irprune.ir.textir import parse_module
from irprune.ir.verify import verify_text
from irprune.passes import PassContext, parse_pipeline, run_pipeline

# A kernel that stages t[tid] (a table) and x[tid] into shared memory, waits at a barrier,
# then stores the neighbour's product; plus one shared-to-shared copy and one copy without a
# barrier-safe source (a local value), which must stay as they are.
STAGING = """
target datalayout = "e-p:64:64:64-i1:8:8-i8:8:8-i16:16:16-i32:32:32-i64:64:64-i128:128:128-f32:32:32-f64:64:64-v16:16:16-v32:32:32-v64:64:64-v128:128:128-n16:32:64"
target triple = "nvptx64-nvidia-cuda"

@s = external addrspace(3) global [0 x float], align 4

define ptx_kernel void @k(ptr noalias %x.4, ptr noalias %t.4, ptr noalias %y.4) {
entry:
  %tid = call i32 @llvm.nvvm.read.ptx.sreg.tid.x()
  %i = zext i32 %tid to i64
  %tp = getelementptr float, ptr %t.4, i64 %i
  %tv = load float, ptr %tp, align 4
  %sp = getelementptr float, ptr addrspacecast (ptr addrspace(3) @s to ptr), i64 %i
  store float %tv, ptr %sp, align 4
  %j = add i64 %i, 64
  %xp = getelementptr float, ptr %x.4, i64 %i
  %xv = load i64, ptr %xp, align 8
  %sq = getelementptr float, ptr addrspacecast (ptr addrspace(3) @s to ptr), i64 %j
  store i64 %xv, ptr %sq, align 8
  %again = load float, ptr %sp, align 4
  %sr = getelementptr float, ptr addrspacecast (ptr addrspace(3) @s to ptr), i64 200
  store float %again, ptr %sr, align 4
  call void @llvm.nvvm.barrier.cta.sync.aligned.all(i32 0)
  %k = add i64 %i, 1
  %a = getelementptr float, ptr addrspacecast (ptr addrspace(3) @s to ptr), i64 %k
  %av = load float, ptr %a, align 4
  %yp = getelementptr float, ptr %y.4, i64 %i
  store float %av, ptr %yp, align 4
  ret void
}

declare i32 @llvm.nvvm.read.ptx.sreg.tid.x()
declare void @llvm.nvvm.barrier.cta.sync.aligned.all(i32)
"""


def _run(pipeline, text=STAGING, **ctx):
    c = PassContext(**ctx)
    r = run_pipeline(parse_pipeline(pipeline), parse_module(text), c)
    return r.module.render(), c


def test_embed_tables_makes_a_constant_global_and_drops_the_parameter():
    table = np.array([1.5, -2.0, 0.0, 3.25], np.float32)
    out, ctx = _run("embed-tables", tables={"%t.4": table})
    header = next(l for l in out.splitlines() if l.startswith("define"))
    assert "%t.4" not in header and "%x.4" in header and "%y.4" in header
    bits = ", ".join(f"i32 {v}" for v in table.view(np.int32).tolist())
    assert f"@irp_table_t = internal addrspace(1) constant [4 x i32] [{bits}], align 16" in out
    assert "addrspacecast (ptr addrspace(1) @irp_table_t to ptr)" in out
    assert ctx.stats["embed-tables"]["words"] == 4
    verify_text(out, "test")


def test_embed_tables_of_zeros_and_of_nothing():
    out, _ = _run("embed-tables", tables={"%t.4": np.zeros(0, np.float32)})
    assert "[1 x i32] zeroinitializer" in out


def test_embed_tables_refuses_an_unknown_parameter_and_wide_values():
    with pytest.raises(PassError, match="not parameters"):
        _run("embed-tables", tables={"%nope.4": np.zeros(2, np.float32)})
    with pytest.raises(PassError, match="4-byte"):
        _run("embed-tables", tables={"%t.4": np.zeros(2, np.float64)})


def test_async_copy_converts_global_to_shared_copies_and_waits_before_the_barrier():
    out, ctx = _run("embed-tables,async-copy", tables={"%t.4": np.ones(64, np.float32)})
    assert ctx.stats["async-copy"] == {**ctx.stats["async-copy"], "copies": 2, "waits": 1}
    assert out.count("call void @llvm.nvvm.cp.async.ca.shared.global.4(") == 1  # the table
    assert out.count("call void @llvm.nvvm.cp.async.ca.shared.global.8(") == 1  # x, 8 bytes
    lines = [l.strip() for l in out.splitlines()]
    wait = lines.index("call void @llvm.nvvm.cp.async.wait.all()")
    assert lines[wait + 1].startswith("call void @llvm.nvvm.barrier")
    # the shared-to-shared copy stays a load and a store
    assert "%again = load float" in out and "store float %again" in out
    verify_text(out, "test")


def test_async_copy_leaves_a_function_without_a_barrier_alone():
    text = STAGING.replace("  call void @llvm.nvvm.barrier.cta.sync.aligned.all(i32 0)\n", "")
    out, ctx = _run("async-copy", text=text)
    assert "cp.async" not in out and ctx.stats["async-copy"]["copies"] == 0


def test_async_copy_needs_the_copy_aligned():
    text = STAGING.replace("load i64, ptr %xp, align 8", "load i64, ptr %xp, align 4")
    out, ctx = _run("async-copy", text=text)
    assert ctx.stats["async-copy"]["copies"] == 1 and "%xv = load i64" in out


# The padding of an input tile: a copy that stores zero in place of the loaded value where %c
# holds (x is read at a clamped address either way).
PADDED = STAGING.replace(
    "  %xp = getelementptr float, ptr %x.4, i64 %i\n  %xv = load i64, ptr %xp, align 8\n",
    "  %xp = getelementptr float, ptr %x.4, i64 %i\n  %xl = load i64, ptr %xp, align 8\n"
    "  %c = icmp ugt i64 %i, 30\n  %xv = select i1 %c, i64 0, i64 %xl\n")


def test_async_copy_turns_a_padding_select_into_a_zero_filling_copy():
    out, ctx = _run("async-copy", text=PADDED)
    verify_text(out, "test")
    assert ctx.stats["async-copy"]["zero_filled"] == 1 and ctx.stats["async-copy"]["copies"] == 2
    assert "%xl = load" not in out and "%xv = select" not in out
    # 0 bytes read where the select picked zero, all 8 elsewhere
    assert "%irp.ac1.n = select i1 %c, i32 0, i32 8" in out
    assert ("call void @llvm.nvvm.cp.async.ca.shared.global.8.s(ptr addrspace(3) %irp.ac1.d, "
            "ptr addrspace(1) %irp.ac1.s, i32 %irp.ac1.n)") in out
    assert "declare void @llvm.nvvm.cp.async.ca.shared.global.8.s(ptr addrspace(3), ptr addrspace(1), i32)" in out
    swapped = PADDED.replace("select i1 %c, i64 0, i64 %xl", "select i1 %c, i64 %xl, i64 0")
    out, _ = _run("async-copy", text=swapped)
    assert "%irp.ac1.n = select i1 %c, i32 8, i32 0" in out


def test_async_copy_keeps_a_select_that_is_not_a_zero_fill():
    for other in ("select i1 %c, i64 1, i64 %xl",  # not zero
                  "select i1 %c, i64 %i, i64 %xl"):  # two values
        out, ctx = _run("async-copy", text=PADDED.replace("select i1 %c, i64 0, i64 %xl", other))
        assert ctx.stats["async-copy"]["zero_filled"] == 0 and "%xl = load i64" in out
    # -0.0 is not the all-zero bits a zero-filling copy writes
    neg = STAGING.replace(
        "  %tv = load float, ptr %tp, align 4\n",
        "  %tl = load float, ptr %tp, align 4\n  %c = icmp ugt i64 %i, 30\n"
        "  %tv = select i1 %c, float -0.000000e+00, float %tl\n")
    out, ctx = _run("async-copy", text=neg)
    assert ctx.stats["async-copy"]["zero_filled"] == 0 and "%tl = load float" in out
    out, ctx = _run("async-copy", text=neg.replace("float -0.000000e+00", "float 0.000000e+00"))
    assert ctx.stats["async-copy"]["zero_filled"] == 1
