"""`irprune inspect` views and `irprune opt`, and their errors (one line, exit status 2)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from irprune.cli import main
from irprune.reference import prune_random


@pytest.fixture(scope="module")
def layer(tmp_path_factory):
    d = tmp_path_factory.mktemp("layer")
    w = prune_random((8, 4, 3, 3), 0.7, seed=0)
    np.save(d / "w.npy", w)
    return w, ["--weights", str(d / "w.npy"), "--input-shape", "1,4,8,8", "--padding", "1"]


def run(capsys, *args) -> str:
    assert main(["inspect", *args]) == 0
    return capsys.readouterr().out


def test_summary_numbers(layer, capsys):
    w, args = layer
    s = json.loads(run(capsys, *args, "--json"))
    assert s["nnz"] == np.count_nonzero(w) == s["fma"]
    assert s["weights"] == w.size
    assert s["removed_by_pass"]["strip-zero-weights"]["removed"] > 0
    assert s["loads_pruned"] < s["loads_template"]
    assert s["code_bytes"] > 0 and s["code_bytes_per_block"] * s["groups"] <= s["code_bytes"]
    assert s["registers"] > 0
    text = run(capsys, *args)
    assert "fma.rn.f32 in PTX" in text and f"{np.count_nonzero(w)}" in text
    assert "\x1b[" not in text  # piped: no colour codes


def test_stages(layer, capsys):
    _, args = layer
    names = json.loads(run(capsys, *args, "--list-stages", "--json"))
    assert names[:2] == ["nvvm", "llvm"] and "llvm-pruned" in names and "ptxas" in names
    assert ".entry irprune_conv2d_nchw" in run(capsys, *args, "--stage", "ptx")
    assert "Used" in run(capsys, *args, "--stage", "ptxas")
    between = run(capsys, *args, "--print-between-passes")
    for p in ("strip-zero-weights", "fold-weight-constants", "contract-fma", "llvm-cleanup"):
        assert f"; *** IR after {p} ***" in between


def test_weight_chain_of_zero_and_nonzero_weights(layer, capsys):
    w, args = layer
    z = tuple(int(i) for i in np.argwhere(w == 0)[0])
    nz = tuple(int(i) for i in np.argwhere(w != 0)[0])
    cz = json.loads(run(capsys, *args, "--weight", ",".join(map(str, z)), "--json"))
    assert cz["pruned"] and cz["after_pruning"] == []
    assert "load float" in cz["template"][0]["load"] and "fmul" in cz["template"][0]["multiplies"][0]
    cn = json.loads(run(capsys, *args, "--weight", ",".join(map(str, nz)), "--json"))
    assert not cn["pruned"] and 1 <= len(cn["after_pruning"]) <= 2
    from irprune.ir.textir import float_literal

    assert any("llvm.fmuladd" in l and float_literal(w[nz]) in l for l in cn["after_pruning"])
    text = run(capsys, *args, "--weight", ",".join(map(str, z)))
    assert "nothing (the whole chain is gone)" in text


def test_channel_and_diff(layer, capsys):
    w, args = layer
    chains = json.loads(run(capsys, *args, "--channel", "3", "--json"))
    assert len(chains) == 4 * 3 * 3
    assert sum(not c["pruned"] for c in chains) == np.count_nonzero(w[3])
    d = run(capsys, *args, "--diff")
    assert d.startswith("--- llvm (IR template)")
    assert re.search(r"^-\s+%\S+ = load float, ptr %w\.4", d, flags=re.M)  # a weight load went


def test_opt_on_ir_file(tmp_path, capsys):
    from tests.passes.small_ir import SMALL

    f = tmp_path / "k.ll"
    f.write_text(SMALL)
    assert main(["opt", str(f), "-p", "strip-zero-weights,fold-weight-constants", "--weight-shape",
                 "2,2,1,1", "--weight-values", "1,0,2,0"]) == 0
    out = capsys.readouterr().out
    assert "%w.4" not in out and "%xb" not in out


def _fails_cleanly(*args):
    p = subprocess.run([sys.executable, "-m", "irprune.cli", *args], capture_output=True, text=True)
    assert p.returncode == 2, (args, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    return p.stderr


def test_bad_input(layer, tmp_path):
    _, args = layer
    bad = tmp_path / "bad.ll"
    bad.write_text("define void @f( {\n")
    good = tmp_path / "good.ll"
    from tests.passes.small_ir import SMALL

    good.write_text(SMALL)
    assert "does not exist" in _fails_cleanly("opt", str(tmp_path / "none.ll"), "-p", "trace-weight-uses")
    assert "LLVM rejected the IR" in _fails_cleanly("opt", str(bad), "-p", "trace-weight-uses",
                                                    "--weight-shape", "1,1,1,1")
    assert "unknown pass 'strip'" in _fails_cleanly("opt", str(good), "-p", "strip")
    assert "outside the weight's shape" in _fails_cleanly("inspect", *args, "--weight", "8,0,0,0")
    assert "4 numbers" in _fails_cleanly("inspect", *args, "--weight", "1,2")
    assert "input channels" in _fails_cleanly("inspect", "--weights", args[1], "--input-shape", "1,3,8,8")
    assert "unknown stage" in _fails_cleanly("inspect", *args, "--stage", "bogus")
    assert "2 weight values given" in _fails_cleanly("opt", str(good), "-p", "strip-zero-weights",
                                                     "--weight-shape", "2,2,1,1", "--weight-values", "1,2")


def test_sass_view_shows_ffma_with_immediates(layer, capsys):
    from irprune.codegen import find_cuda_tool

    if not find_cuda_tool("nvdisasm"):
        pytest.skip("no nvdisasm: pip install nvidia-cuda-nvdisasm")
    w, args = layer
    sass = run(capsys, *args, "--stage", "sass")
    ffma = [l for l in sass.splitlines() if "FFMA" in l]
    assert len(ffma) == np.count_nonzero(w)


def test_colour_when_asked(layer, capsys):
    _, args = layer
    out = run(capsys, *args, "--stage", "llvm-pruned", "--color", "always")
    assert "\x1b[" in out
