"""The `irprune compile` command, on a machine with no GPU."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np

from irprune.cli import main
from irprune.reference import prune_random


def test_compile_emits_ptx_with_immediates(tmp_path, capsys):
    w = prune_random((8, 4, 3, 3), 0.9, seed=2)
    np.save(tmp_path / "w.npy", w)
    out = tmp_path / "k.ptx"
    rc = main(["compile", "--weights", str(tmp_path / "w.npy"), "--input-shape", "1,4,10,10",
               "--padding", "1", "--emit", "ptx", "-o", str(out), "--stats"])
    assert rc == 0
    ptx = out.read_text()
    assert len(re.findall(r"^\s*fma\.rn\.f32", ptx, flags=re.M)) == np.count_nonzero(w)
    assert '"nnz": %d' % np.count_nonzero(w) in capsys.readouterr().err


def test_every_stage_can_be_emitted(tmp_path, capsys):
    w = prune_random((4, 2, 1, 1), 0.5, seed=3)
    np.save(tmp_path / "w.npy", w)
    for stage in ("nvvm", "llvm", "llvm-pruned", "ptx"):
        assert main(["compile", "--weights", str(tmp_path / "w.npy"), "--input-shape", "1,2,4,4",
                     "--emit", stage]) == 0
        assert capsys.readouterr().out.strip()


def test_bad_input_is_one_line_and_status_2(tmp_path):
    np.save(tmp_path / "w.npy", np.ones((4, 3, 3, 3), np.float32))
    cases = [
        ["--weights", str(tmp_path / "missing.npy"), "--input-shape", "1,3,8,8"],
        ["--weights", str(tmp_path / "w.npy"), "--input-shape", "1,5,8,8"],
        ["--weights", str(tmp_path / "w.npy"), "--input-shape", "1,3,8,8", "--stride", "0"],
        ["--weights", str(tmp_path / "w.npy"), "--input-shape", "1,3,2,2"],
    ]
    for args in cases:
        p = subprocess.run([sys.executable, "-m", "irprune.cli", "compile", *args],
                           capture_output=True, text=True)
        assert p.returncode == 2, (args, p.stderr)
        assert "Traceback" not in p.stderr
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_compile_resnet_3x3_64_at_90_percent(tmp_path):
    """The issue's acceptance case: weights as immediates, no weight loads."""
    import struct

    w = prune_random((64, 64, 3, 3), 0.9, seed=11)
    np.save(tmp_path / "w.npy", w)
    out = tmp_path / "layer.ptx"
    assert main(["compile", "--weights", str(tmp_path / "w.npy"), "--input-shape", "1,64,56,56",
                 "--padding", "1", "--emit", "ptx", "-o", str(out)]) == 0
    ptx = out.read_text()
    entry = re.search(r"\.entry\s+\S+\(([^)]*)\)", ptx, flags=re.S).group(1)
    assert len([p for p in entry.split(",") if p.strip()]) == 3  # input, output, batch size only
    assert len(re.findall(r"^\s*fma\.rn\.f32", ptx, flags=re.M)) == np.count_nonzero(w)
    imms = set(re.findall(r"0f[0-9A-F]{8}", ptx))
    for v in w[w != 0]:
        assert "0f%08X" % struct.unpack("<I", struct.pack("<f", float(v)))[0] in imms


def test_the_table_layout_compiles_and_inspects_from_the_command_line(tmp_path, capsys,
                                                                      monkeypatch):
    """``--table`` compiles a 1x1 layer in the table layout: every stage can be emitted (also
    after a disk-cache hit, which keeps the last stages only), the PTX reads its tables from
    the module's constant globals, inspect shows the layout and where a weight's pair sits,
    and options of the other layouts are refused in one line."""
    import json

    from irprune.table_layout import TableConfig, build_tables

    monkeypatch.setenv("IRPRUNE_CACHE", "1")
    monkeypatch.setenv("IRPRUNE_CACHE_DIR", str(tmp_path / "cache"))
    w = prune_random((64, 32, 1, 1), 0.9, seed=2)
    np.save(tmp_path / "w.npy", w)
    base = ["--weights", str(tmp_path / "w.npy"), "--input-shape", "1,32,8,8",
            "--table", "16,2,64"]
    for stage in ("ptx", "nvvm", "llvm", "llvm-pruned"):
        assert main(["compile", *base, "--emit", stage]) == 0
        text = capsys.readouterr().out
        assert text.strip()
        if stage == "ptx":
            assert ".global .align 16 .b8 irp_table_pairs" in text and "cp.async" in text
    assert main(["inspect", *base, "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["layout"] == "table" and s["config"] == "table k16 s2 p64" and s["nnz"] == 205
    # the printed summary: the table layout's rows, not the immediate layout's
    assert main(["inspect", *base, "--color", "never"]) == 0
    text = capsys.readouterr().out
    assert "table k16 s2 p64, 512 threads a block" in text
    assert f"{s['table_blocks']:,} / {s['table_bytes']:,}" in text
    assert "channel groups" not in text and "per thread block" not in text
    plain = ["--weights", str(tmp_path / "w.npy"), "--input-shape", "1,32,8,8"]
    assert main(["inspect", *plain, "--color", "never"]) == 0
    text = capsys.readouterr().out
    assert "channel groups" in text and "removed by strip-zero-weights" in text
    assert "code bytes per thread block" in text and "table blocks" not in text
    k_, c = map(int, np.argwhere(w[:, :, 0, 0] != 0)[7])
    assert main(["inspect", *base, "--weight", f"{k_},{c},0,0", "--json"]) == 0
    ch = json.loads(capsys.readouterr().out)
    pairs = build_tables(w, TableConfig(16, 2, 64)).pairs
    assert ch["words"] == pairs[ch["block"], 2 * ch["slot"]:2 * ch["slot"] + 2].tolist()
    p = subprocess.run([sys.executable, "-m", "irprune.cli", "compile", *base, "--padding", "1"],
                       capture_output=True, text=True)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "--table is a layout of its own: drop --padding" in p.stderr
    # a fourth number is the threads a block, a constant of the code; a fifth is refused
    four = ["--weights", str(tmp_path / "w.npy"), "--input-shape", "1,32,8,8",
            "--table", "16,2,64,128"]
    assert main(["compile", *four, "--emit", "ptx"]) == 0
    assert "%ntid" not in capsys.readouterr().out
    assert main(["inspect", *four, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["threads"] == 128
    p = subprocess.run([sys.executable, "-m", "irprune.cli", "compile", *base[:-1], "16,2,64,1,2"],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "--table takes 3 or 4 numbers" in p.stderr, p.stderr
