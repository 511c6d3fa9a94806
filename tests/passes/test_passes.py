"""Each pass on a small hand-written module, checked on the printed IR."""

from __future__ import annotations

import numpy as np
import pytest

from irprune.errors import TemplateContractError, UnknownPassError
from irprune.ir.textir import float_literal, parse_module
from irprune.ir.verify import verify_text
from irprune.passes import PASSES, PassContext, parse_pipeline, run_pipeline
from tests.passes.small_ir import SMALL


def run(spec: str, weights, text: str = SMALL):
    ctx = PassContext(weight_param="%w.4", weight_shape=(2, 2, 1, 1),
                      weights=None if weights is None else np.asarray(weights, np.float32).reshape(2, 2, 1, 1))
    res = run_pipeline(parse_pipeline(spec), parse_module(text), ctx, registry=PASSES)
    return ctx, res.module.render()


def test_trace_maps_each_weight_to_its_chain():
    ctx, _ = run("trace-weight-uses", None)
    tm = ctx.analyses["trace-weight-uses"]
    assert tm.missing == []
    (t1,) = tm.for_index(0, 1, 0, 0)
    assert t1.load.name == "%w1" and t1.address.name == "%wp1"
    assert [m.name for m in t1.multiplies] == ["%m1"]
    assert [a.name for a in t1.accumulates] == ["%s1"]
    (t3,) = tm.for_index(1, 1, 0, 0)  # float-typed GEP: index 3 -> byte 12
    assert t3.load.name == "%w3"
    # x[1] feeds two weights, so neither owns it.
    assert t1.inputs == [] and t1.shared_inputs == 1


def test_strip_removes_zero_chain_and_dead_input():
    _, out = run("strip-zero-weights", [1.5, 0.0, -2.25, 0.0])
    for gone in ("%w1 ", "%m1 ", "%s1 ", "%w3 ", "%m3 ", "%t1 ", "%xb ", "%xp1 "):
        assert gone not in out, gone
    assert "store float %s0, ptr %y.4" in out
    assert "store float %t0, ptr %yp1" in out
    verify_text(out, "test")


def test_strip_keeps_shared_input_while_one_user_remains():
    _, out = run("strip-zero-weights", [1.5, 0.0, -2.25, 3.0])
    assert "%xb = load" in out and "%m3 = fmul" in out and "%m1 " not in out


def test_fold_turns_loads_into_immediates_and_drops_the_parameter():
    w = [1.5, 0.0, -2.25, 0.1]
    _, out = run("strip-zero-weights,fold-weight-constants", w)
    assert "%w.4" not in out
    assert "load float, ptr %x.4" in out
    for v in (1.5, -2.25, 0.1):
        assert f"float %x{'a' if v != 0.1 else 'b'}, {float_literal(np.float32(v))}" in out


def test_fold_without_strip_keeps_zero_products():
    _, out = run("fold-weight-constants", [1.0, 0.0, 2.0, 3.0])
    assert "fmul float %xb, 0x0000000000000000" in out


def test_contract_fuses_multiply_into_accumulate():
    _, out = run("strip-zero-weights,fold-weight-constants,contract-fma", [1.5, 0.5, -2.25, 0.1])
    assert out.count("call float @llvm.fmuladd.f32(") == 4
    assert "= fmul " not in out
    assert "declare float @llvm.fmuladd.f32(float, float, float)" in out


def test_unknown_pass_name():
    with pytest.raises(UnknownPassError, match="unknown pass 'strip-zeros'"):
        parse_pipeline("trace-weight-uses,strip-zeros")


def test_weight_used_outside_a_multiply_breaks_the_contract():
    bad = SMALL.replace("%m1 = fmul float %xb, %w1", "%m1 = fadd float %xb, %w1")
    with pytest.raises(TemplateContractError, match="may only multiply a weight"):
        run("trace-weight-uses", None, bad)


def test_store_to_weight_breaks_the_contract():
    bad = SMALL.replace("  ret void", "  store float 0.0, ptr %w.4, align 4\n  ret void")
    with pytest.raises(TemplateContractError, match="never store"):
        run("trace-weight-uses", None, bad)


def test_runtime_weight_index_breaks_the_contract():
    bad = SMALL.replace("%wp2 = getelementptr i8, ptr %w.4, i64 8",
                        "%wp2 = getelementptr i8, ptr %w.4, i64 %i").replace(
        "ptr noalias %y.4)", "ptr noalias %y.4, i64 %i)")
    with pytest.raises(TemplateContractError, match="not a compile-time constant"):
        run("trace-weight-uses", None, bad)


def test_pipeline_verifies_after_each_transform():
    seen = []
    ctx = PassContext(weight_param="%w.4", weight_shape=(2, 2, 1, 1),
                      weights=np.array([1, 0, 2, 0], np.float32).reshape(2, 2, 1, 1),
                      print_between=lambda name, text: seen.append(name))
    run_pipeline(parse_pipeline("strip-zero-weights,fold-weight-constants"), parse_module(SMALL), ctx,
                 registry=PASSES)
    assert seen == ["strip-zero-weights", "fold-weight-constants"]
    assert ctx.stats["strip-zero-weights"]["removed"] > 0


def test_a_transform_that_changed_nothing_is_not_rendered_or_verified_again(monkeypatch):
    """decompose-rem on a module without a remainder returns False: its stage is the text of
    the stage before, and LLVM verifies only the transforms that changed the module."""
    import irprune.passes.base as base
    verified = []
    real = base.verify_text
    monkeypatch.setattr(base, "verify_text", lambda text, stage: (verified.append(stage),
                                                                  real(text, stage)))
    ctx = PassContext(weight_param="%w.4", weight_shape=(2, 2, 1, 1),
                      weights=np.array([1, 0, 2, 0], np.float32).reshape(2, 2, 1, 1))
    res = run_pipeline(parse_pipeline("strip-zero-weights,decompose-rem,fold-weight-constants,"
                                      "decompose-rem"), parse_module(SMALL), ctx, registry=PASSES)
    assert verified == ["pass:strip-zero-weights", "pass:fold-weight-constants"]
    assert ctx.stats["decompose-rem"]["rewritten"] == 0
    assert res.stages["decompose-rem"] is res.stages["fold-weight-constants"]
    assert res.stages["decompose-rem"] == res.module.render() == res.text
    # First in a pipeline, an unchanged module is still rendered and verified (no stage before).
    verified.clear()
    res = run_pipeline(parse_pipeline("decompose-rem"), parse_module(SMALL), PassContext())
    assert verified == ["pass:decompose-rem"] and res.stages["decompose-rem"] == res.module.render()


DIVREM = """target triple = "nvptx64-nvidia-cuda"

define void @k(i64 %p, i64 %d, ptr %out) {
entry:
  %q = udiv i64 %p, 3136
  %r = urem i64 %p, 3136
  %r2 = urem i64 %p, 56
  %rd = urem i64 %p, %d
  %qd = udiv i64 %p, %d
  br label %next

next:
  %r3 = urem i64 %p, 3136
  %s = add i64 %q, %r
  %s2 = add i64 %s, %r2
  %s3 = add i64 %s2, %r3
  %s4 = add i64 %s3, %rd
  %s5 = add i64 %s4, %qd
  store i64 %s5, ptr %out
  ret void
}
"""


def test_decompose_rem_reuses_the_quotient_of_the_same_block():
    ctx, out = run("decompose-rem", None, DIVREM)
    verify_text(out, "test")
    assert "%r.quotient.mul = mul i64 %q, 3136" in out
    assert "%r = sub i64 %p, %r.quotient.mul" in out
    # No quotient of (p, 56); the quotient by %d comes after its remainder; %r3 is in
    # another block: all three stay remainders.
    for kept in ("%r2 = urem i64 %p, 56", "%rd = urem i64 %p, %d", "%r3 = urem i64 %p, 3136"):
        assert kept in out, kept
    assert ctx.stats["decompose-rem"]["rewritten"] == 1


def test_decompose_rem_gives_the_same_values():
    """The function before and after, run on the host by LLVM's JIT, on random dividends."""
    import ctypes

    import llvmlite.binding as llvm

    _, out = run("decompose-rem", None, DIVREM)
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()

    def jit(text):
        mod = llvm.parse_assembly(text.replace("nvptx64-nvidia-cuda", llvm.get_default_triple()))
        # The engine owns its target machine: one each.
        tm = llvm.Target.from_default_triple().create_target_machine()
        engine = llvm.create_mcjit_compiler(mod, tm)
        engine.finalize_object()
        fn = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p)(
            engine.get_function_address("k"))
        return engine, fn

    (e1, before), (e2, after) = jit(DIVREM), jit(out)
    rng = np.random.default_rng(0)
    for p, d in zip(rng.integers(0, 2**40, 200), rng.integers(1, 5000, 200)):
        a, b = ctypes.c_int64(), ctypes.c_int64()
        before(int(p), int(d), ctypes.addressof(a))
        after(int(p), int(d), ctypes.addressof(b))
        assert a.value == b.value
