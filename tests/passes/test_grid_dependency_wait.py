"""grid-dependency-wait: kernels wait for the grid before them, and only those launch early."""

from __future__ import annotations

import re

import numpy as np
import pytest

from irprune.codegen import check_grid_wait
from irprune.errors import CodegenError
from irprune.host_exec import run_on_host
from irprune.kernel import compile_conv2d
from irprune.launch import launch_options, uses_dependent_launch
from irprune.passes import DEFAULT_PIPELINE, TABLE_PIPELINE
from irprune.passes.grid_dependency_wait import arch_number, supports_grid_wait
from irprune.reference import conv2d_reference, prune_random
from irprune.table_kernel import compile_table_conv2d
from irprune.table_layout import TableConfig
from irprune.templates.conv2d import conv2d_nchw

#: Global memory, a branch or a label: what must not come before the wait in an entry.
_MEMORY = re.compile(r"^\s*(?:@!?%\w+\s+)?(?:(?:ld|st|atom|red|cp)\.(?!param)|bra|brx|[$\w]+:)")


def _kernel(cpu="sm_90", pipeline=DEFAULT_PIPELINE):
    w = prune_random((8, 5, 3, 3), 0.7, seed=11)
    b = np.random.default_rng(2).standard_normal(8).astype(np.float32)
    k = compile_conv2d(conv2d_nchw, w, (2, 5, 6, 7), 1, 1, bias=b, relu=True, cache=False,
                       group_size=2, cpu=cpu, pipeline=pipeline)
    return k, w, b


def _entry_head(ptx: str) -> list[str]:
    """The kernel's PTX lines from its opening brace to its griddepcontrol.wait."""
    body = ptx[ptx.index("{", ptx.index(".entry")):]
    return body[:body.index("griddepcontrol.wait;")].splitlines()


def test_both_pipelines_end_with_the_wait():
    # last: no LLVM pass after it may move a load above it
    assert DEFAULT_PIPELINE.endswith(",grid-dependency-wait")
    assert TABLE_PIPELINE.endswith(",grid-dependency-wait")


def test_the_kernel_waits_before_any_memory_access_and_launches_dependent():
    k, w, b = _kernel()
    ptx = k.asm["ptx"]
    assert ptx.count("griddepcontrol.wait;") == 1
    assert not [l for l in _entry_head(ptx) if _MEMORY.match(l)]
    assert "griddepcontrol.launch_dependents" not in ptx  # it does not trigger early
    assert k.stats["passes"]["grid-dependency-wait"]["kernels"] == 1
    assert uses_dependent_launch(k)
    assert launch_options(k) == {"programmatic_stream_serialization": True}
    k.dependent_launch = False
    assert launch_options(k) == {}


def test_the_wait_leaves_the_result_unchanged():
    k, w, b = _kernel()
    x = np.random.default_rng(4).standard_normal((2, 5, 6, 7)).astype(np.float32)
    ref = conv2d_reference(x, w, 1, 1, b, True)
    assert np.abs(run_on_host(k, x) - ref).max() / np.abs(ref).max() < 1e-5


def test_no_wait_and_no_dependent_launch_before_sm_90():
    k, _, _ = _kernel(cpu="sm_80")
    assert "griddepcontrol" not in k.asm["ptx"]
    assert "skipped" in k.stats["passes"]["grid-dependency-wait"]
    assert not uses_dependent_launch(k)
    assert launch_options(k) == {}


def test_a_pipeline_without_the_pass_launches_as_before():
    k, _, _ = _kernel(pipeline=DEFAULT_PIPELINE.replace(",grid-dependency-wait", ""))
    assert "griddepcontrol" not in k.asm["ptx"]
    assert not uses_dependent_launch(k)


def test_table_kernels_wait_and_launch_early():
    w = prune_random((16, 8, 1, 1), 0.8, seed=3)
    one = compile_table_conv2d(w, (1, 8, 5, 5), config=TableConfig(16, 1, 25), block=64,
                               cache=False)
    assert len(one.parts) == 1 and not one.zero_output
    assert not [l for l in _entry_head(one.asm["ptx"]) if _MEMORY.match(l)]
    assert uses_dependent_launch(one)


def _sliced(cpu="sm_90"):
    w = prune_random((16, 8, 1, 1), 0.8, seed=3)
    return compile_table_conv2d(w, (1, 8, 5, 5), config=TableConfig(16, 2, 25), block=64,
                                cache=False, cpu=cpu), w


def test_a_sliced_table_kernel_has_a_zeroing_part_and_waits_only_before_its_adds():
    k, w = _sliced()
    zero, main = k.parts
    assert zero.name == "irprune_zero_fill" and zero.shared_bytes == 0
    assert k.main_part is main and not k.zero_output  # no memset
    assert uses_dependent_launch(k)
    # the zeroing part: the wait first, then the trigger that lets the table part launch
    zhead = _entry_head(zero.ptx)
    assert not [l for l in zhead if _MEMORY.match(l) or "launch_dependents" in l]
    assert zero.ptx.index("griddepcontrol.wait;") < zero.ptx.index(
        "griddepcontrol.launch_dependents;")
    assert k.asm["zero-fill-ptx"] == zero.ptx
    # the table part copies its input and runs its loop before its wait; writes only after it
    head = _entry_head(main.ptx)
    assert [l for l in head if "ld." in l and ".param" not in l]
    assert not [l for l in head if re.match(r"\s*(?:@!?%\w+\s+)?(?:st|atom|red)\.global", l)]
    assert main.ptx.count("griddepcontrol.wait;") == 1
    assert "atom.global.add.f32" in main.ptx.split("griddepcontrol.wait;")[1]
    (zp, zgrid, zblock), (mp, _, _) = k.part_launches(3)
    assert (zp, mp) == (zero, main) and zgrid == (-(-16 * 25 // 256), 3, 1)
    assert zblock == (256, 1, 1)
    # on the host the output starts as NaN: only the zeroing part makes it zero
    x = np.random.default_rng(4).standard_normal((3, 8, 5, 5)).astype(np.float32)
    ref = conv2d_reference(x, w, 1, 0)
    assert np.abs(run_on_host(k, x) - ref).max() / np.abs(ref).max() < 1e-5


def test_without_its_zeroing_part_a_sliced_table_kernel_is_wrong_on_the_host():
    # the test above can fail: the table part alone adds into NaN
    import dataclasses

    k, w = _sliced()
    bare = dataclasses.replace(k, parts=[k.main_part])
    x = np.random.default_rng(4).standard_normal((1, 8, 5, 5)).astype(np.float32)
    assert np.isnan(run_on_host(_NoMemset(bare), x)).all()


class _NoMemset:
    """A kernel seen without the launch's memset (what a lost zeroing part would leave)."""

    zero_output = False

    def __init__(self, k):
        self._k = k

    def __getattr__(self, name):
        return getattr(self._k, name)


def test_a_sliced_table_kernel_below_sm_90_is_zeroed_by_a_memset():
    k, w = _sliced("sm_80")
    assert len(k.parts) == 1 and k.zero_output
    assert "griddepcontrol" not in k.asm["ptx"] and "zero-fill" not in k.asm
    assert not uses_dependent_launch(k)
    x = np.random.default_rng(4).standard_normal((2, 8, 5, 5)).astype(np.float32)
    ref = conv2d_reference(x, w, 1, 0)
    assert np.abs(run_on_host(k, x) - ref).max() / np.abs(ref).max() < 1e-5


@pytest.mark.parametrize("cpu,number,ok", [("sm_90", 90, True), ("sm_90a", 90, True),
                                            ("sm_100", 100, True), ("sm_89", 89, False),
                                            ("sm_80", 80, False), ("compute_90", 0, False)])
def test_architectures(cpu, number, ok):
    assert arch_number(cpu) == number
    assert supports_grid_wait(cpu) is ok


PTX = """.visible .entry k(
\t.param .u64 k_param_0
)
{
\t.reg .b64 \t%rd<4>;

\tld.param.b64 \t%rd1, [k_param_0];
\tcvta.to.global.u64 \t%rd2, %rd1;
{before}\tgriddepcontrol.wait;
\tld.global.nc.f32 \t%f1, [%rd2];
\tret;

}
"""


@pytest.mark.parametrize("before", ["", "\tmov.u32 \t%r1, %ctaid.x;\n"])
def test_check_grid_wait_accepts_a_wait_before_every_access(before):
    check_grid_wait(PTX.replace("{before}", before))


@pytest.mark.parametrize("before,what", [
    ("\tld.global.nc.f32 \t%f2, [%rd2];\n", "ld.global.nc.f32"),
    ("\tst.global.f32 \t[%rd2], %f2;\n", "st.global.f32"),
    ("\t@%p1 bra \t$L__BB0_2;\n", "bra"),
    ("$L__BB0_1:\n", "$L__BB0_1:"),
])
def test_check_grid_wait_refuses_an_access_or_branch_before_the_wait(before, what):
    with pytest.raises(CodegenError, match=re.escape(what)):
        check_grid_wait(PTX.replace("{before}", before))


def test_check_grid_wait_refuses_a_trigger_before_the_wait():
    trigger = "\tgriddepcontrol.launch_dependents;\n"
    for reads in (False, True):
        with pytest.raises(CodegenError, match="launch_dependents"):
            check_grid_wait(PTX.replace("{before}", trigger), reads_before_wait=reads)


@pytest.mark.parametrize("before", ["\tld.global.nc.f32 \t%f2, [%rd2];\n",
                                    "\t@%p1 bra \t$L__BB0_1;\n$L__BB0_1:\n", "\tst.shared.b32 \t[%rd2], %r1;\n",
                                    "\tcp.async.ca.shared.global [%rd1], [%rd2], 16;\n"])
def test_a_kernel_that_reads_before_its_wait_may_read_and_branch_first(before):
    check_grid_wait(PTX.replace("{before}", before), reads_before_wait=True)


@pytest.mark.parametrize("before,what", [
    ("\tst.global.f32 \t[%rd2], %f2;\n", "st.global.f32"),
    ("\tst.b32 \t[%rd2], %r2;\n", "st.b32"),  # generic: may be global
    ("\tatom.global.add.f32 \t%f3, [%rd2], %f2;\n", "atom.global.add.f32"),
    ("\tred.global.add.f32 \t[%rd2], %f2;\n", "red.global.add.f32"),
    ("\tcall.uni \tf, (param0);\n", "call.uni"),  # the walk cannot follow a call
    ("\t@%p1 bra \t$L__BB9_9;\n", "$L__BB9_9"),  # nor a branch out of the body
])
def test_a_kernel_that_reads_before_its_wait_may_not_write_before_it(before, what):
    with pytest.raises(CodegenError, match=re.escape(what)):
        check_grid_wait(PTX.replace("{before}", before), reads_before_wait=True)


_LOOP = """.visible .entry k(
\t.param .u64 k_param_0
)
{
\tld.param.b64 \t%rd1, [k_param_0];
\tld.global.nc.f32 \t%f1, [%rd1];
\tbra.uni \t$L__BB0_2;
$L__BB0_1:
\tatom.global.add.f32 \t%f3, [%rd1], %f1;
$L__BB0_2:
\t{skip}
\tgriddepcontrol.wait;
\t@%p1 bra \t$L__BB0_1;
\tret;

}
"""


def test_a_write_laid_out_before_the_wait_but_reached_only_through_it_is_accepted():
    # a loop rotated by the backend: the add comes first in the text, after the wait in the flow
    check_grid_wait(_LOOP.replace("{skip}", ""), reads_before_wait=True)


def test_a_path_around_the_wait_to_a_write_is_refused():
    with pytest.raises(CodegenError, match="can run `atom.global.add.f32"):
        check_grid_wait(_LOOP.replace("{skip}", "@%p2 bra \t$L__BB0_1;"), reads_before_wait=True)


def test_check_grid_wait_refuses_a_kernel_without_the_wait():
    ptx = PTX.replace("{before}", "").replace("\tgriddepcontrol.wait;\n", "")
    with pytest.raises(CodegenError, match="has no griddepcontrol.wait"):
        check_grid_wait(ptx)


_TWO_KERNELS = """target triple = "nvptx64-nvidia-cuda"

define void @helper(ptr %y) {
  store float 1.0, ptr %y, align 4
  ret void
}

define ptx_kernel void @labelled(ptr noalias readonly %x, ptr noalias %y) #0 {
entry:
  %v = load float, ptr %x, align 4
  call void @helper(ptr %y)
  ret void
}

define ptx_kernel void @unlabelled(ptr %x, ptr %y) {
  %1 = load float, ptr %x, align 4
  store float %1, ptr %y, align 4
  ret void
}

attributes #0 = { nounwind }
"""


@pytest.mark.parametrize("runs", [1, 2])
def test_an_unparsed_and_a_parsed_module_get_the_same_wait(runs):
    # The pipeline hands this pass the clean-up's text unparsed, `irprune opt` a parsed module:
    # both must come out as the same module (and nothing more when run again).
    from irprune.ir.textir import Module, parse_module
    from irprune.ir.verify import verify_text
    from irprune.passes.base import PassContext
    from irprune.passes.grid_dependency_wait import GridDependencyWait

    lazy, parsed = Module.lazy(_TWO_KERNELS), parse_module(_TWO_KERNELS)
    for _ in range(runs):
        ctx_l, ctx_p = PassContext(), PassContext()
        GridDependencyWait().apply(ctx_l, lazy)
        GridDependencyWait().apply(ctx_p, parsed)
        assert ctx_l.stats["grid-dependency-wait"] == ctx_p.stats["grid-dependency-wait"]
    assert not lazy.parsed  # edited as text
    text = lazy.render()
    verify_text(text, "test")
    assert parse_module(text).render() == parsed.render()
    assert text.count("call void @llvm.nvvm.griddepcontrol.wait()") == 2
    assert text.count("declare void @llvm.nvvm.griddepcontrol.wait()") == 1
    assert ctx_l.stats["grid-dependency-wait"]["kernels"] == (2 if runs == 1 else 0)
    for kernel in ("labelled", "unlabelled"):
        body = text[text.index(f"@{kernel}("):]
        first = [l for l in body.splitlines()[1:] if l and not l.endswith(":")][0]
        assert first.strip() == "call void @llvm.nvvm.griddepcontrol.wait()", kernel
    helper = text[text.index("@helper("):text.index("@labelled(")]
    assert "griddepcontrol" not in helper


def test_unparsed_text_is_left_alone_below_sm_90():
    from irprune.ir.textir import Module
    from irprune.passes.base import PassContext
    from irprune.passes.grid_dependency_wait import GridDependencyWait

    m = Module.lazy(_TWO_KERNELS)
    assert GridDependencyWait().apply(PassContext(cpu="sm_80"), m) is False
    assert m.render() == _TWO_KERNELS


_WAITS_LATE = """target triple = "nvptx64-nvidia-cuda"

define ptx_kernel void @late(ptr %x, ptr %y) {
entry:
  %v = load float, ptr %x, align 4
  call void @llvm.nvvm.griddepcontrol.wait()
  store float %v, ptr %y, align 4
  ret void
}

declare void @llvm.nvvm.griddepcontrol.wait()
"""


@pytest.mark.parametrize("lazy", [True, False])
def test_a_kernel_whose_template_waits_gets_no_second_wait(lazy):
    from irprune.ir.textir import Module, parse_module
    from irprune.passes.base import PassContext
    from irprune.passes.grid_dependency_wait import GridDependencyWait

    m = Module.lazy(_WAITS_LATE) if lazy else parse_module(_WAITS_LATE)
    ctx = PassContext()
    assert not GridDependencyWait().apply(ctx, m)
    assert ctx.stats["grid-dependency-wait"]["kernels"] == 0
    text = m.render()
    assert text.count("call void @llvm.nvvm.griddepcontrol.wait()") == 1
    assert text.index("load float") < text.index("call void @llvm.nvvm.griddepcontrol.wait()")


_JUMP_BODY = """
\tmov.u32 %r1, %tid.z;
\t$L_brx_0: .branchtargets
\t\t$L_a,
\t\t$L_b;
\tbrx.idx %r1, $L_brx_0;
$L_a:
\tgriddepcontrol.wait;
\tld.global.nc.b32 %r2, [%rd1];
\tret;
$L_b:
\tadd.s32 %r3, %r1, 1;
\tld.global.nc.b32 %r4, [%rd1+4];
\tst.global.b32 [%rd2], %r4;
\tret;
""".split("\n")

_LOAD = re.compile(r"^\s*ld\.global")


def test_reached_before_wait_follows_jump_tables():
    """The walk goes into every target of a ``brx.idx`` table: the region that waits first is
    clean, the other one's first load is reported (and nothing after it on that path)."""
    from irprune.codegen import reached_before_wait

    found = reached_before_wait(_JUMP_BODY, _LOAD)
    assert [_JUMP_BODY[i].strip() for i in found] == ["ld.global.nc.b32 %r4, [%rd1+4];"]


def test_reached_before_wait_refuses_a_table_target_outside_the_body():
    from irprune.codegen import reached_before_wait

    body = [l.replace("$L_b;", "$L_gone;") for l in _JUMP_BODY]
    found = reached_before_wait(body, _LOAD)
    assert [body[i].strip() for i in found] == ["brx.idx %r1, $L_brx_0;"]


def test_writes_before_wait_still_refuses_an_indirect_branch():
    """A table kernel's check does not follow ``brx.idx``: the branch itself is refused."""
    from irprune.codegen import writes_before_wait

    assert writes_before_wait(_JUMP_BODY) == "brx.idx %r1, $L_brx_0;"
