"""Tables, summary and plots from a results document (synthetic numbers: no GPU needed)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from irprune.bench.report import (geomean, markdown, merge, plots, problems, speedup, summary,
                                  tables)

TIMES = {"irprune": 10.0, "dense_template": 40.0, "cudnn_fp32": 30.0, "cudnn_tf32": 20.0,
         "cudnn_fp16": 15.0, "cusparse_csr": 60.0, "floor": 5.0,
         "code_floor": 8.0, "move_floor": 2.5}


def fake_doc():
    recs = []
    for layer, scale in (("a", 1.0), ("b", 4.0)):
        for sp in (0.5, 0.9):
            for impl, t in TIMES.items():
                r = {"suite": "seed", "layer": layer, "batch": 1, "sparsity": sp, "impl": impl,
                     "median_us": t * (scale if impl == "irprune" else 1.0), "status": "ok", "nnz": 10}
                if impl == "irprune":
                    r["compile"] = {"cold_s": 3.0, "cached_s": 0.01, "numba_s": 0.5, "unroll_s": 1.0,
                                    "passes_s": 1.0, "ptx_s": 0.4, "ptxas_s": 0.1}
                recs.append(r)
    recs.append({"suite": "seed", "layer": "c", "batch": 1, "sparsity": 0.9, "impl": "irprune",
                 "median_us": None, "status": "wrong", "rel_err": 0.5, "nnz": 1})
    recs.append({"suite": "seed", "layer": "c", "batch": 1, "sparsity": 0.9, "impl": "cudnn_fp32",
                 "median_us": 7.0, "status": "ok", "nnz": 1})
    return {"environment": {"gpu": "Test GPU", "date": "today", "commit": "abc"}, "records": recs}


def test_speedups_and_geomean():
    doc = fake_doc()
    from irprune.bench.report import index

    row = index(doc)[("seed", "a", 1, 0.9)]
    assert speedup(row, "cudnn_fp32") == pytest.approx(3.0)
    assert speedup(row, "floor") == pytest.approx(0.5)
    assert geomean([3.0, 0.75]) == pytest.approx(1.5)
    assert geomean([None]) is None


def test_summary_counts_wrong_results_as_not_timed():
    s = summary(fake_doc())
    line = [l for l in s.splitlines() if l.startswith("| seed")][0]
    # layers a (3x) and b (0.75x) timed; c wrong: geomean 1.5x, 1 of 2 beats fp32 and TF32
    assert "2/3" in line and "1.50x" in line and "1/2" in line
    # irprune over the code floor: 10 / 8 and 40 / 8, geomean 2.5; over the move floor:
    # 10 / 2.5 and 40 / 2.5, geomean 8
    assert line.split(" | ")[-3:-1] == ["2.50x", "8.00x"]


def test_tables_and_problems():
    doc = fake_doc()
    t = tables(doc)
    assert ("| a | 0.90 | 10.0 | 40.0 | 30.0 | 20.0 | 15.0 | 60.0 | 5.00 | 8.00 | 2.50 | 3.00x | 2.00x "
            "| 6.00x | 4.00x | 0.50 | 0.80 | 0.25 |") in t
    assert "| c | 0.90 | wrong |" in t
    assert problems(doc) == ["seed/c b1 s0.9 irprune: wrong, rel err 5.00e-01"]


def test_a_later_run_supersedes_an_earlier_record_of_the_same_row():
    early = fake_doc()
    refused = {"suite": "seed", "layer": "d", "batch": 1, "sparsity": 0.9, "impl": "irprune",
               "median_us": None, "status": "refused", "error": "too large"}
    early["records"].append(refused)
    late = {"environment": {"gpu": "Test GPU", "commit": "def"}, "records": [
        dict(refused, status="ok", median_us=2.0, error=None),
        {"suite": "seed", "layer": "d", "batch": 1, "sparsity": 0.9, "impl": "cudnn_fp32",
         "median_us": 8.0, "status": "ok"}]}
    doc = merge([early, late])
    assert len(doc["records"]) == len(early["records"]) + 1  # d's fp32 is new, its irprune replaced
    assert not any("seed/d" in p for p in problems(doc))
    assert "| d | 0.90 | 2.00 |" in tables(doc)
    assert [r["commit"] for r in (x["environment"] for x in doc["runs"])] == ["abc", "def"]
    # the other order: the refusal stands
    assert any("seed/d" in p for p in problems(merge([late, early])))


def test_plots_and_markdown(tmp_path):
    doc = fake_doc()
    pngs = plots(doc, tmp_path)
    assert [p.name for p in pngs] == ["seed_b1.png"]
    assert pngs[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = markdown(doc, pngs, rel_to=tmp_path)
    assert "![seed_b1](seed_b1.png)" in md and "Test GPU" in md and "3.1-9.6x" in md
    assert "## Not timed" in md


def test_cli_report_redraws_from_json(tmp_path):
    (tmp_path / "r.json").write_text(json.dumps(fake_doc()))
    out = subprocess.run([sys.executable, "-m", "irprune", "bench", "--report", str(tmp_path / "r.json"),
                          "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "o" / "tables.md").is_file() and (tmp_path / "o" / "plots" / "seed_b1.png").is_file()
    assert "1.50x" in out.stdout


def test_cli_bench_bad_impl_is_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "irprune", "bench", "--impls", "cudnn_fp32,magic",
                          "--out", str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "magic" in out.stderr


def test_cli_bench_without_torch_or_gpu_is_one_line(tmp_path):
    try:
        import torch

        if torch.cuda.is_available():
            pytest.skip("a GPU is here: the bench would run")
    except ImportError:
        pass
    out = subprocess.run([sys.executable, "-m", "irprune", "bench", "--quick", "--out", str(tmp_path)],
                         capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "torch" in out.stderr.lower() or "gpu" in out.stderr.lower()


def test_cli_bench_refuses_an_unknown_channel_order(tmp_path):
    from irprune.cli import build_parser

    out = subprocess.run([sys.executable, "-m", "irprune", "bench", "--channel-orders",
                          "natural,sorted", "--out", str(tmp_path)], capture_output=True, text=True)
    last = out.stderr.strip().splitlines()[-1]
    assert out.returncode == 2 and "--channel-orders" in last and "'natural,sorted'" in last
    args = build_parser().parse_args(["bench", "--channel-orders", "shared"])
    assert args.channel_orders == ("shared",)
    assert build_parser().parse_args(["bench"]).channel_orders == ("natural", "shared")


def test_the_runs_line_says_which_implementations_took_their_fastest_process():
    from irprune.bench.report import _processes_note

    assert _processes_note({"baseline_processes": 1}) == ""
    old = _processes_note({"baseline_processes": 3})  # a run from before irprune was re-timed
    assert old == "; cuDNN and cuSPARSE: the fastest of 3 processes (irprune: one)"
    new = _processes_note({"baseline_processes": 3, "retimed_in_processes": [
        "irprune", "cudnn_fp32", "cusparse_csr"]})
    assert new == "; cuDNN, cuSPARSE and irprune: the fastest of 3 processes"
