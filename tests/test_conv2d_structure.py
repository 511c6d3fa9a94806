"""CPU checks of compiled kernels: weights are immediates, zero chains are gone.

These run in CI with no GPU. Each asserts something a broken pipeline gets
wrong: a weight left in memory, a zero weight's multiply kept, a nonzero
weight dropped or altered, a trace that misses or doubles an index.
"""

from __future__ import annotations

import re
import struct
import zlib

import numpy as np
import pytest

import irprune
from irprune.ir.textir import float_literal
from irprune.reference import prune_random
from tests.conftest import GEOMETRIES, SPARSITIES

_cache: dict = {}


def compiled(geom: str, sparsity: float, bias=False, relu=False):
    key = (geom, sparsity, bias, relu)
    if key not in _cache:
        wshape, ishape, stride, pad = GEOMETRIES[geom]
        w = prune_random(wshape, sparsity, seed=zlib.crc32(repr(key).encode()) % 1000)  # stable across runs
        b = np.random.default_rng(1).standard_normal(wshape[0]).astype(np.float32) if bias else None
        _cache[key] = (w, irprune.conv2d(w, ishape, stride=stride, padding=pad, bias=b, relu=relu))
    return _cache[key]


def ptx_immediate(v: np.float32) -> str:
    return "0f%08X" % struct.unpack("<I", struct.pack("<f", float(v)))[0]


def ptx_entry_params(ptx: str) -> list[str]:
    m = re.search(r"\.entry\s+\S+\(([^)]*)\)", ptx, flags=re.S)
    assert m, "no .entry in the PTX"
    return [p.strip() for p in m.group(1).split(",") if p.strip()]


CASES = [(g, s) for g in GEOMETRIES for s in SPARSITIES]


@pytest.mark.parametrize("geom,sparsity", CASES)
def test_no_weight_is_read_at_run_time(geom, sparsity):
    w, k = compiled(geom, sparsity)
    pruned, ptx = k.asm["llvm-pruned"], k.asm["ptx"]
    # The kernel takes the input and output pointers and the batch size only:
    # no weight array, no index array, nothing else to read weights from.
    params = ptx_entry_params(ptx)
    assert len(params) == 3
    assert [".ptr" in p for p in params] == [True, True, False]
    assert "%w.4" not in pruned and "%bias.4" not in pruned
    assert not re.search(r"^\s*\.(global|const)\s", ptx, flags=re.M), "a data array in the PTX"
    # Every load reads the input: one load per distinct input value at most.
    loads = re.findall(r"^\s*ld\.global[.\w]*\s", ptx, flags=re.M)
    assert len(loads) <= int(np.prod(w.shape[1:])) * k.groups


@pytest.mark.parametrize("geom,sparsity", CASES)
def test_each_nonzero_weight_is_an_immediate(geom, sparsity):
    w, k = compiled(geom, sparsity)
    ptx, pruned = k.asm["ptx"], k.asm["llvm-pruned"]
    ptx_imms = set(re.findall(r"0f[0-9A-F]{8}", ptx))
    for v in np.unique(w[w != 0]):
        assert ptx_immediate(v) in ptx_imms, f"weight {v!r} is not an immediate in the PTX"
        assert float_literal(v) in pruned, f"weight {v!r} is not a constant in the pruned IR"


@pytest.mark.parametrize("geom,sparsity", CASES)
def test_fma_count_equals_nnz(geom, sparsity):
    w, k = compiled(geom, sparsity)
    nnz = int(np.count_nonzero(w))
    fmas = len(re.findall(r"^\s*fma\.rn\.f32", k.asm["ptx"], flags=re.M))
    assert fmas == nnz == k.stats["nnz"] == k.stats["fma_ptx"]
    # No multiplies or adds outside FMAs: zero chains are gone, not folded to x*0.
    assert not re.search(r"^\s*(mul|add|sub)(\.rn)?\.f32", k.asm["ptx"], flags=re.M)
    pruned_mults = len(re.findall(r"@llvm\.fmuladd\.f32\(", k.asm["llvm-pruned"])) - (1 if nnz else 0)
    assert pruned_mults == nnz


@pytest.mark.parametrize("geom,sparsity", CASES)
def test_trace_covers_every_weight_once(geom, sparsity):
    w, k = compiled(geom, sparsity)
    tm = k.trace
    assert tm.missing == []
    assert sorted(tm.traces) == list(range(w.size))
    assert all(len(v) == 1 for v in tm.traces.values())
    for flat, (tr,) in tm.traces.items():
        assert tr.index == tuple(int(i) for i in np.unravel_index(flat, w.shape))
        assert tr.multiplies and tr.accumulates, f"weight {tr.index} has no multiply-add chain"
    # Stripping removed exactly the zero chains.
    st = k.stats["passes"]["strip-zero-weights"]
    assert st["weights_stripped"] == w.size - np.count_nonzero(w)


@pytest.mark.ptxas
@pytest.mark.parametrize("geom,sparsity", CASES)
def test_ptx_assembles_for_sm90(geom, sparsity):
    _, k = compiled(geom, sparsity)
    res = k.ptxas()
    assert res.cubin[:4] == b"\x7fELF"
    assert res.spill_stores == 0


def test_bias_and_relu_are_in_the_code():
    w, k = compiled("3x3_pad", 0.9, bias=True, relu=True)
    b = np.random.default_rng(1).standard_normal(w.shape[0]).astype(np.float32)
    imms = set(re.findall(r"0f[0-9A-F]{8}", k.asm["ptx"]))
    nnz_per_channel = np.count_nonzero(w.reshape(w.shape[0], -1), axis=1)
    for kk, v in enumerate(b):
        # A channel with no weight left computes relu(bias), a constant LLVM
        # folds: a negative bias then leaves no trace in the code (it is 0).
        if nnz_per_channel[kk] or v > 0:
            assert ptx_immediate(v) in imms, f"bias of channel {kk} ({v!r}) is not an immediate"
    assert "max.f32" in k.asm["ptx"] or "selp.f32" in k.asm["ptx"]
    assert len(ptx_entry_params(k.asm["ptx"])) == 3  # input, output, batch size


def test_ir_template_is_reused_across_weights():
    from irprune.templates.conv2d import conv2d_nchw

    wshape, ishape, stride, pad = GEOMETRIES["3x3_pad"]
    irprune.conv2d(prune_random(wshape, 0.5, seed=5), ishape, stride=stride, padding=pad)
    before = len(conv2d_nchw._ir_cache)
    k = irprune.conv2d(prune_random(wshape, 0.7, seed=6), ishape, stride=stride, padding=pad)
    assert len(conv2d_nchw._ir_cache) == before
    assert k.stats["seconds"]["ir_template"] < 0.05


def test_stages_and_stats_are_exposed():
    w, k = compiled("1x1", 0.5)
    for stage in ("nvvm", "llvm", "llvm-pruned", "ptx", "strip-zero-weights", "fold-weight-constants"):
        assert k.asm[stage].strip(), stage
    assert ".entry" in k.asm["ptx"] and "define" in k.asm["llvm"]
    assert k.stats["weights"] == w.size
    assert k.stats["instructions_pruned"] < k.stats["instructions_template"]


def test_without_padding_loads_are_not_clamped_or_zeroed():
    """With padding 0 every tap of an output pixel is inside the input: the template skips the
    clamp and the select that zeroes a padded tap (one instruction per load, 29% of a 1x1
    kernel's SASS); with padding the select stays."""
    _, k = compiled("1x1", 0.5)
    ptx = k.asm["ptx"]
    assert "ld.global.nc" in ptx
    assert "selp.f32" not in ptx and "max.s64" not in ptx and "min.s64" not in ptx
    _, padded = compiled("3x3_pad", 0.5)
    assert "selp.f32" in padded.asm["ptx"]


@pytest.mark.parametrize("geom", sorted(GEOMETRIES))
def test_pixel_index_math_is_32_bit(geom):
    """A thread finds its (n, oh, ow) with 32-bit unsigned multiply-highs before its first load:
    Numba's int64 floor division (a signed 64-bit multiply-high and its sign fixes, some 50
    SASS instructions in a chain) must not come back. For a 1x1 layer LLVM folds oh * OW + ow
    into the remainder, so no 64-bit multiply-high is left at all."""
    _, k = compiled(geom, 0.5)
    ptx = k.asm["ptx"]
    assert "mul.hi.u32" in ptx
    assert "mul.hi.s64" not in ptx and "div.s64" not in ptx and "rem.s64" not in ptx
    if geom == "1x1":
        assert "mul.hi.u64" not in ptx
