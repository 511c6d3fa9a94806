"""Where a geomean target's gap lies (irprune.bench.gap; synthetic records, no GPU needed)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from irprune.bench.gap import gaps, markdown


def _rec(layer, impl, us, shape="64->64, 1x1, s1, p0, 7x7 -> 7x7", nnz=100, batch=1,
         sparsity=0.9, status="ok"):
    return {"suite": "s", "layer": layer, "batch": batch, "sparsity": sparsity, "impl": impl,
            "median_us": us, "status": status, "shape": shape, "nnz": nnz}


def doc(extra=()):
    """Four 1x1 layers and one 3x3: two small (nnz 100), two large (nnz 50,000), cuSPARSE at
    10 us on the 1x1 layers, the floor at 1 us."""
    recs = []
    for layer, t, nnz, code in (("small_a", 1.0, 100, 0.5), ("small_b", 4.0, 100, 0.5),
                                ("large_a", 4.0, 50_000, 3.0), ("large_b", 9.0, 50_000, 2.5)):
        recs += [_rec(layer, "irprune", t, nnz=nnz), _rec(layer, "cusparse_csr", 10.0),
                 _rec(layer, "floor", 1.0), _rec(layer, "code_floor", code)]
    k3 = "64->64, 3x3, s1, p1, 7x7 -> 7x7"
    recs += [_rec("conv3", "irprune", 2.0, shape=k3), _rec("conv3", "cusparse_csr", 100.0, shape=k3),
             _rec("conv3", "floor", 1.0, shape=k3)]
    recs += list(extra)
    return {"environment": {}, "records": recs}


def test_geomeans_split_and_factors():
    cus, floor = gaps(doc(), large_nnz=40_000)
    # cuSPARSE: the 1x1 layers only; irprune / cuSPARSE 0.1, 0.4, 0.4, 0.9
    assert cus.target.key == "cusparse" and len(cus.layers) == 4
    assert cus.ratio == pytest.approx((0.1 * 0.4 * 0.4 * 0.9) ** 0.25)
    assert cus.factor == pytest.approx(cus.ratio / 0.2)
    assert [r.layer for r in cus.large] == ["large_a", "large_b"]
    # the large pair alone: gm(large)' ^ 2 * gm(small) ^ 2 = 0.2 ^ 4
    need = math.sqrt(0.2 ** 4 / (0.1 * 0.4))
    assert cus.factor_alone(cus.large) == pytest.approx(math.sqrt(0.4 * 0.9) / need)
    assert cus.factor_alone(cus.layers) is None and cus.factor_alone([]) is None
    # the floor: every layer, the 3x3 too (2x its floor)
    assert floor.target.key == "floor" and len(floor.layers) == 5
    assert floor.ratio == pytest.approx((1 * 4 * 4 * 9 * 2) ** 0.2)


def test_a_met_target_and_the_filters():
    # irprune at 1 us on every layer: 10x over cuSPARSE, at the floor: both met
    recs = [r | {"median_us": 1.0} if r["impl"] == "irprune" else r for r in doc()["records"]]
    extra = [_rec("small_a", "irprune", 99.0, batch=64), _rec("small_a", "floor", 1.0, batch=64),
             _rec("bad", "irprune", None, status="wrong"), _rec("bad", "floor", 1.0)]
    found = gaps({"environment": {}, "records": recs + extra})
    assert all(g.factor <= 1 for g in found)
    assert all("bad" not in [r.layer for r in g.layers] for g in found)  # not timed ok
    assert [g.layers[0].irprune_us for g in found] == [1.0, 1.0]  # batch 64 not read
    md = markdown(found)
    assert md.count("(met)") == 2 and "code floor" not in md
    assert gaps({"environment": {}, "records": []}) == []


def test_markdown_marks_needed_times_under_the_code_floor():
    md = markdown(gaps(doc(), large_nnz=40_000))
    cus = md.split("### ")[1]
    # geomean of irprune / cuSPARSE 0.0144 ** 0.25 = 0.346: 2.89x, 0.346 / 0.2 = 1.732x short
    assert "4 layers: 2.89x against the goal's 5x (not met: every layer 1.732x faster)" in cus
    # the large pair alone: sqrt(0.4 * 0.9) / sqrt(0.2 ** 4 / (0.1 * 0.4)) = 0.6 / 0.2
    f = float(cus.split("The large layers at ")[1].split("x")[0])
    assert f == pytest.approx(3.0)
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in cus.splitlines()
            if line.startswith("| large_")}
    # large_a: 4 / 3 us under its 3 us code floor; large_b: 9 / 3 us above its 2.5
    assert rows["large_a"][-1].rstrip(" |") == "yes" and rows["large_b"][-1].rstrip(" |") == "no"
    assert rows["large_a"][3] == f"{4.0 / f:.2f}"


def test_cli_gap_prints_and_refuses_an_empty_file(tmp_path):
    (tmp_path / "r.json").write_text(json.dumps(doc()))
    out = subprocess.run([sys.executable, "-m", "irprune", "bench", "--gap", str(tmp_path / "r.json"),
                          "--large-nnz", "1000"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "more than 1,000 nonzeros | 2 |" in out.stdout and "within 2x of the floor" in out.stdout
    (tmp_path / "e.json").write_text(json.dumps({"environment": {}, "records": []}))
    out = subprocess.run([sys.executable, "-m", "irprune", "bench", "--gap", str(tmp_path / "e.json")],
                         capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "results.json" in out.stderr


@pytest.mark.parametrize("flag", ["--gap", "--report"])
@pytest.mark.parametrize("text", ["not json", '{"environment": {}}', "[1, 2]"])
def test_cli_refuses_a_file_that_is_not_a_bench_run(tmp_path, flag, text):
    (tmp_path / "bad.json").write_text(text)
    out = subprocess.run([sys.executable, "-m", "irprune", "bench", flag, str(tmp_path / "bad.json"),
                          "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "bad.json" in out.stderr and "results.json" in out.stderr
