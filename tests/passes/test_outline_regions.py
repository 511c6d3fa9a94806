"""outline-regions: a large kernel's regions in device functions, computed and assembled as before."""

from __future__ import annotations

import re

import numpy as np
import pytest

from irprune.codegen import device_functions, find_cuda_tool, find_ptxas, run_ptxas
from irprune.errors import PassError, UnknownPassError
from irprune.host_exec import run_on_host
from irprune.ir.textir import parse_module
from irprune.kernel import compile_conv2d
from irprune.passes import DEFAULT_PIPELINE, PassContext, parse_pipeline, run_pipeline
from irprune.passes import outline_regions
from irprune.reference import conv2d_reference, prune_random
from irprune.register_budget import set_max_registers
from irprune.templates.conv2d import conv2d_nchw

needs_ptxas = pytest.mark.skipif(find_ptxas() is None, reason="ptxas not found (nvidia-cuda-nvcc)")


def _compile(monkeypatch, per: int, **kw):
    """A 16 -> 16 3x3 layer in 8 regions, its regions outlined at ``per`` instructions a function."""
    monkeypatch.setattr(outline_regions, "FUNCTION_INSTRUCTIONS", per)
    w = prune_random((16, 6, 3, 3), 0.6, seed=5)
    b = np.random.default_rng(1).standard_normal(16).astype(np.float32)
    k = compile_conv2d(conv2d_nchw, w, (2, 6, 7, 5), 1, 1, bias=b, relu=True, cache=False,
                       group_size=2, pipeline=DEFAULT_PIPELINE + ",outline-regions", **kw)
    return k, w, b


def test_the_default_pipeline_does_not_outline():
    # its kernels ran slower (irprune.passes.outline_regions): opt-in only
    assert "outline-regions" not in DEFAULT_PIPELINE


def test_outlined_kernel_computes_the_convolution(monkeypatch):
    k, w, b = _compile(monkeypatch, 300)
    st = k.stats["passes"]["outline-regions"]
    assert st["functions"] >= 3 and st["largest_instructions"] <= 2 * 300
    assert device_functions(k.asm["ptx"]) == st["functions"]
    assert k.stats["fma_ptx"] == np.count_nonzero(w)  # every weight still one FMA
    # the wait for the grid before it (grid-dependency-wait) stays first in the kernel; the
    # functions it calls run after it and wait again nowhere
    mod = parse_module(k.asm["llvm-pruned"])
    kernel = mod.function(k.kernel_name)
    assert kernel.blocks[0].instructions[0].callee == "@llvm.nvvm.griddepcontrol.wait"
    assert sum("griddepcontrol" in i.text for f in mod.functions for i in f.instructions()) == 1
    assert k.asm["ptx"].count("griddepcontrol.wait;") == 1
    x = np.random.default_rng(2).standard_normal((2, 6, 7, 5)).astype(np.float32)
    y = run_on_host(k, x)
    ref = conv2d_reference(x, w, 1, 1, b, relu=True)
    assert np.max(np.abs(y - ref)) / np.max(np.abs(ref)) < 1e-5


def test_a_small_kernel_stays_one_function(monkeypatch):
    k, _, _ = _compile(monkeypatch, 10**6)
    assert k.stats["passes"]["outline-regions"]["functions"] == 0
    assert device_functions(k.asm["ptx"]) == 0


def test_functions_hold_consecutive_groups_within_the_size(monkeypatch):
    k, _, _ = _compile(monkeypatch, 300)
    mod = parse_module(k.asm["llvm-pruned"])
    names = [f.name for f in mod.functions if f.name != k.kernel_name]
    spans = [tuple(map(int, re.search(r"_groups_(\d+)_(\d+)$", n).groups())) for n in names]
    assert spans[0][0] == 0 and spans[-1][1] == 7
    assert all(a[1] + 1 == b[0] for a, b in zip(spans, spans[1:]))
    # a function holds whole regions: at most about the size, one region more at worst
    assert all(mod.function(n).instruction_count() <= 2 * 300 for n in names)


def _switch_module(head: str) -> str:
    return f"""
define ptx_kernel void @k(ptr %y.4) {{
irp.dispatch:
  %irp.group = call i32 @llvm.nvvm.read.ptx.sreg.ctaid.y()
{head}
  switch i32 %irp.group, label %done [ i32 0, label %a i32 1, label %b ]
done:
  ret void
a:
  store i32 1, ptr %y.4
  ret void
b:
  store i32 2, ptr %y.4
  ret void
}}
declare i32 @llvm.nvvm.read.ptx.sreg.ctaid.y()
"""


def test_a_switch_block_with_side_effects_is_refused():
    ok = run_pipeline(parse_pipeline("outline-regions{instructions=1}"),
                      parse_module(_switch_module("  %g2 = add i32 %irp.group, 1")), PassContext())
    assert "define internal void @k_groups_1_1" in ok.text
    with pytest.raises(PassError, match="does more than compute the group"):
        run_pipeline(parse_pipeline("outline-regions{instructions=1}"),
                     parse_module(_switch_module("  store i32 0, ptr %y.4")), PassContext())


def test_pass_options_are_checked():
    assert parse_pipeline("outline-regions{instructions=64}")[0].instructions == 64
    with pytest.raises(UnknownPassError, match="no option 'size'"):
        parse_pipeline("outline-regions{size=64}")


@needs_ptxas
@pytest.mark.ptxas
def test_a_budgeted_kernel_is_linked_from_relocatable_functions(monkeypatch):
    if find_cuda_tool("nvlink") is None:
        pytest.skip("nvlink not found (nvidia-cuda-nvcc)")
    k, _, _ = _compile(monkeypatch, 300, max_registers=64)
    r = k.ptxas()
    assert "nvlink info" in r.log  # linked: the report is nvlink's
    assert r.registers is not None and r.registers <= 64 and r.stack_bytes == 0
    assert r.cubin[:4] == b"\x7fELF"
    # without a budget the same PTX is compiled whole
    whole = run_ptxas(set_max_registers(k.asm["ptx"], None))
    assert "nvlink info" not in whole.log and whole.registers is not None
