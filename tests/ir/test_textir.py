"""The IR text model: parsing, editing and re-printing keep LLVM's verifier happy."""

from __future__ import annotations

import numpy as np

from irprune.ir.textir import (Instruction, Module, Rewriter, count_text_instructions, erase_dead,
                               float_literal, parse_module)
from irprune.ir.verify import verify_text
from tests.passes.small_ir import SMALL

NUMBERED = """
define float @f(float %a, float %b) {
  %1 = fadd float %a, %b
  br label %3
3:
  %4 = fmul float %1, %1
  ret float %4
}
"""


def test_round_trip_verifies():
    m = parse_module(SMALL)
    verify_text(m.render(), "test")
    assert m.function().name == "k"
    assert [n for _, n in m.function().params()] == ["%x.4", "%w.4", "%y.4"]


def test_numbered_values_and_blocks_are_renamed():
    m = parse_module(NUMBERED)
    text = m.render()
    assert "%irp.1 = fadd" in text and "irp.3:" in text and "label %irp.3" in text
    verify_text(text, "test")
    # A second parse of text holding irp.N names picks a fresh prefix.
    again = parse_module(text.replace("%irp.4", "%9").replace("ret float %9", "ret float %9"))
    verify_text(again.render(), "test")


def test_rewriter_replaces_and_erases_in_one_sweep():
    m = parse_module(SMALL)
    fn = m.function()
    defs = fn.definitions()
    rw = Rewriter(fn)
    rw.replace_uses("%s1", "%s0")
    rw.erase(defs["%s1"])
    assert rw.commit() == 1
    assert "store float %s0, ptr %y.4" in m.render()


def test_erase_dead_is_transitive_and_spares_side_effects():
    m = parse_module(SMALL)
    fn = m.function()
    defs = fn.definitions()
    rw = Rewriter(fn)
    rw.replace_uses("%t1", "%t0")
    rw.erase(defs["%t1"])
    rw.commit()
    n = erase_dead(fn)
    text = m.render()
    assert n == 3  # %m3, %w3, %wp3
    assert "%wp3" not in text and "store float %t0" in text
    verify_text(text, "test")


def _fold(loads=("%w1", "%w3"), users=None):
    """Fold ``loads`` of SMALL to constants the way fold-weight-constants does.

    ``users(fn)``: the map of readers to commit with (made before any text
    changes, as the pass makes it); None commits with the full sweep.
    Returns the module, its function, its definitions, the erased ids and the map.
    """
    m = parse_module(SMALL)
    fn = m.function()
    defs = fn.definitions()
    umap = users(fn) if users else None
    rw = Rewriter(fn)
    for name, value in zip(loads, ("0x3FF0000000000000", "0x4000000000000000")):
        rw.replace_uses(name, value)
        rw.erase(defs[name])
    gone = set(rw.pending_erasures())
    assert rw.commit(users=umap) == len(loads)
    return m, fn, defs, gone, umap


def test_rewriter_with_a_users_map_rewrites_only_the_readers_to_the_same_text():
    full = _fold()[0]
    fast = _fold(users=lambda fn: fn.users())[0]
    assert fast.render() == full.render()
    assert "%m1 = fmul float %xb, 0x3FF0000000000000" in fast.render()
    # A map that misses a reader leaves that reader alone: only mapped readers are visited.
    partial = _fold(users=lambda fn: {"%w1": fn.users()["%w1"]})[0]
    assert "%m3 = fmul float %xb, %w3" in partial.render()


def test_erase_dead_with_an_earlier_users_map_matches_a_fresh_sweep():
    m_fresh, fn_fresh, defs, _, _ = _fold()
    n_fresh = erase_dead(fn_fresh, [defs["%wp1"], defs["%wp3"]])
    m_old, fn, defs, gone, users = _fold(users=lambda fn: fn.users())
    n = erase_dead(fn, [defs["%wp1"], defs["%wp3"]], users=users, gone=gone)
    assert n == n_fresh == 2
    assert m_old.render() == m_fresh.render()
    verify_text(m_old.render(), "test")
    # Without ``gone`` the erased load still counts as a reader: nothing is erased.
    _, fn2, defs2, _, users2 = _fold(loads=("%w1",), users=lambda fn: fn.users())
    assert erase_dead(fn2, [defs2["%wp1"]], users=users2) == 0


def test_lazy_module_is_its_text_until_looked_into():
    from irprune.llvm_opt import run_light_cleanup

    text = run_light_cleanup(NUMBERED.replace("define float", "define float"), "test")
    parsed = parse_module(text)
    want = sum(f.instruction_count() for f in parsed.functions)
    assert count_text_instructions(text) == want
    assert count_text_instructions(SMALL) == parse_module(SMALL).function().instruction_count()
    m = Module.lazy(text)
    assert not m.parsed
    assert m.render() is text  # handed on as it is, no parse and print
    assert m.instruction_count() == want
    assert m.function().name == "f" and m.parsed  # the first look parses it
    assert m.instruction_count() == want
    assert m.render() == parsed.render()
    m.set_text(SMALL)
    assert not m.parsed and m.function().name == "k"


def test_set_params_drops_a_parameter():
    m = parse_module(SMALL.replace("store float %s1, ptr %y.4", "store float %s1, ptr %x.4")
                     .replace("%yp1 = getelementptr i8, ptr %y.4", "%yp1 = getelementptr i8, ptr %x.4"))
    fn = m.function()
    fn.set_params([p for p in fn.params() if p[1] != "%y.4"])
    assert [n for _, n in fn.params()] == ["%x.4", "%w.4"]
    assert "%y.4" not in fn.header
    verify_text(m.render(), "test")


def test_instruction_parsing():
    i = Instruction.parse("  %r = tail call i64 @llvm.smax.i64(i64 %a, i64 0)")
    assert i.opcode == "call" and i.callee == "@llvm.smax.i64" and i.is_pure
    assert i.operands() == ["%a"]
    s = Instruction.parse("  store float %v, ptr %p, align 4")
    assert s.name is None and not s.is_pure and s.operands() == ["%v", "%p"]


def test_float_literal_is_exact():
    import struct

    for v in (0.1, -2.5e-8, 3.4e38, 1.0, -0.0):
        f = np.float32(v)
        lit = float_literal(f)
        text = f"define float @f() {{\n  ret float {lit}\n}}\n"
        verify_text(text, "test")  # LLVM rejects a literal that is not an exact float
        (bits,) = struct.unpack("<Q", bytes.fromhex(lit[2:])[::-1])
        back = np.float32(struct.unpack("<d", struct.pack("<Q", bits))[0])
        assert back.tobytes() == f.tobytes()  # same float32 bits, sign of zero included


def test_codegen_takes_the_cleanup_module_once_and_emits_the_same_ptx():
    from irprune.codegen import emit_ptx
    from irprune.ir import verify
    from irprune.llvm_opt import run_light_cleanup

    text = run_light_cleanup(SMALL, "test")
    assert verify._last_verified and verify._last_verified[0][0] is text
    reused = emit_ptx(text)
    assert verify._last_verified == []  # handed out, not parsed: nothing new was kept
    fresh = emit_ptx(str(text))  # parsed again from the text
    assert reused == fresh and ".entry k(" in reused
