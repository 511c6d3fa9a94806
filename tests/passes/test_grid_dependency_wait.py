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


def test_table_kernels_wait_and_only_those_without_a_memset_launch_early():
    w = prune_random((16, 8, 1, 1), 0.8, seed=3)
    one = compile_table_conv2d(w, (1, 8, 5, 5), config=TableConfig(16, 1, 25), block=64,
                               cache=False)
    sliced = compile_table_conv2d(w, (1, 8, 5, 5), config=TableConfig(16, 2, 25), block=64,
                                  cache=False)
    for k in (one, sliced):
        assert "griddepcontrol.wait;" in k.asm["ptx"]
        assert not [l for l in _entry_head(k.asm["ptx"]) if _MEMORY.match(l)]
    assert uses_dependent_launch(one)
    # the launch zeroes a sliced kernel's output with a memset first: no grid to wait for
    assert sliced.zero_output and not uses_dependent_launch(sliced)


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
def test_unparsed_text_gets_the_same_module_as_parsed_functions(runs):
    # The pipeline hands this pass the clean-up's text unparsed; its text edit must give the
    # module the edit of parsed functions gives (and nothing more when run again).
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
