"""The benchmark harness end to end on one small layer (GPU and PyTorch needed)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gpu


def test_bench_checks_and_times_every_impl(tmp_path):
    pytest.importorskip("torch", reason="the benchmark's baselines need PyTorch")
    from irprune.bench.impls import IMPLS
    from irprune.bench.runner import BenchConfig, run

    cfg = BenchConfig(suites=["seed"], layers=["alexnet_cifar_c1"], batches=(2,), sparsities=(0.9,),
                      jobs=2, target_ms=2, repeats=3)
    doc = run(cfg, out_json=tmp_path / "r.json", log=print)
    recs = {r["impl"]: r for r in doc["records"]}
    assert set(recs) == set(IMPLS)
    for impl, r in recs.items():
        assert r["status"] == "ok", (impl, r)
        assert r["median_us"] > 0
    assert recs["irprune"]["rel_err"] < 1e-5 and recs["irprune"]["rel_diff_cudnn_fp32"] < 1e-5
    # The move floor is a measured kernel, checked against its own float64 result.
    assert recs["move_floor"]["rel_err"] < 1e-6 and recs["move_floor"]["method"] == "graph"
    # The code floor: one empty launch plus the nonzeros' SASS at the measured fetch rate.
    env = doc["environment"]
    assert env["code_fetch_GBps"] > 0 and "code_fetch_error" not in env
    assert recs["code_floor"]["median_us"] == pytest.approx(
        env["empty_launch_us"] + 16 * recs["code_floor"]["nnz"] / (env["code_fetch_GBps"] * 1e9) * 1e6,
        rel=1e-3, abs=2e-3)
    assert recs["irprune"]["compile"]["from_cache"]
    assert recs["irprune"]["fma_ptx"] == recs["irprune"]["nnz"]
    # Every configuration was timed with each register budget; the choice is recorded.
    tuning = recs["irprune"]["tuning"]
    assert {t["max_registers"] for t in tuning} == {None, 64, 128}
    # The first round's fastest were timed again; the fastest of that round was kept.
    from irprune.tune import FINALISTS

    fin = recs["irprune"]["finalists"]
    key = ("group_size", "slices", "max_registers", "block", "groups_per_block", "channel_order")
    assert len(fin) == min(FINALISTS, len(tuning)) and all(len(f["again_us"]) == 2 for f in fin)
    # (compared as rounded in the table: equal first-round times may sort either way)
    chosen = {tuple(f[k] for k in key) for f in fin}
    assert all(t["median_us"] >= max(f["median_us"] for f in fin)
               for t in tuning if tuple(t[k] for k in key) not in chosen)
    won = min(fin, key=lambda f: min(f["again_us"]))
    assert tuple(recs["irprune"][k] for k in key) == tuple(won[k] for k in key)
    assert (tmp_path / "r.json").is_file()
    # The baselines and irprune's chosen kernel were timed in three processes (the default) and
    # keep their fastest; the other processes replayed the choice (checked against float64
    # there too: a wrong result is not a time).
    from irprune.bench.impls import BASELINES

    assert doc["environment"]["baseline_processes"] == 3
    for impl in (*BASELINES, "irprune"):
        times = recs[impl]["process_us"]
        assert len(times) == 3 and recs[impl]["median_us"] == pytest.approx(min(times), abs=1e-3)
    assert "process_us" not in recs["dense_template"]
    assert "irprune" in doc["environment"]["retimed_in_processes"]


def test_a_wrong_result_is_recorded_and_never_timed(tmp_path, monkeypatch):
    pytest.importorskip("torch", reason="the benchmark's baselines need PyTorch")
    from irprune.bench import impls
    from irprune.bench.runner import BenchConfig, run

    real = impls.irprune_run

    def off_by_a_bit(inp, kernel):
        fn = real(inp, kernel)
        return lambda i: fn(i).mul_(1.001)  # 1e-3 relative error: past the 1e-5 tolerance

    monkeypatch.setattr(impls, "irprune_run", off_by_a_bit)
    cfg = BenchConfig(suites=["seed"], layers=["lenet5_c1"], batches=(1,), sparsities=(0.8,),
                      impls=("irprune", "cudnn_fp32"), jobs=1, target_ms=2, repeats=3)
    doc = run(cfg, log=print)
    rec = next(r for r in doc["records"] if r["impl"] == "irprune")
    assert rec["status"] == "wrong" and rec["median_us"] is None and "launches" not in rec
    assert 5e-4 < rec["rel_err"] < 2e-3


def test_a_run_can_time_an_earlier_runs_choice_without_tuning(tmp_path):
    pytest.importorskip("torch", reason="the benchmark's baselines need PyTorch")
    import json

    from irprune.bench.runner import BenchConfig, run

    chosen = {"suite": "seed", "layer": "lenet5_c2", "batch": 1, "sparsity": 0.9,
              "impl": "irprune", "status": "ok", "group_size": 10, "slices": 2, "tile": None,
              "max_registers": 64, "block": 64, "groups_per_block": 5}
    path = tmp_path / "earlier.json"
    path.write_text(json.dumps({"environment": {"commit": "abc123"}, "records": [chosen]}))
    cfg = BenchConfig(suites=["seed"], layers=["lenet5_c2"], batches=(1,), sparsities=(0.9,),
                      impls=("irprune", "cudnn_fp32"), jobs=2, target_ms=2, repeats=3,
                      baseline_processes=1, choices_from=str(path), channel_orders=("natural",))
    doc = run(cfg, log=print)
    rec = next(r for r in doc["records"] if r["impl"] == "irprune")
    assert rec["status"] == "ok" and rec["rel_err"] < 1e-5, rec
    assert (rec["group_size"], rec["slices"], rec["max_registers"], rec["block"],
            rec["groups_per_block"], rec["channel_order"]) == (10, 2, 64, 64, 5, "natural")
    assert rec["choice_from"]["commit"] == "abc123" and "tuning" not in rec
    fp32 = next(r for r in doc["records"] if r["impl"] == "cudnn_fp32")
    assert "process_us" not in fp32  # one process asked for
    # With both channel orders (the default) a choice that records none is timed in each, and
    # the faster kept; a choice that records its order replays it alone.
    cfg.channel_orders = ("natural", "shared")
    doc = run(cfg, log=print)
    rec = next(r for r in doc["records"] if r["impl"] == "irprune")
    assert rec["status"] == "ok" and rec["rel_err"] < 1e-5, rec
    assert sorted(t["channel_order"] for t in rec["tuning"]) == ["natural", "shared"]
    assert rec["channel_order"] in ("natural", "shared") and rec["group_size"] == 10
    path.write_text(json.dumps({"environment": {"commit": "abc124"},
                                "records": [dict(chosen, channel_order="shared")]}))
    doc = run(cfg, log=print)
    rec = next(r for r in doc["records"] if r["impl"] == "irprune")
    assert rec["status"] == "ok" and rec["rel_err"] < 1e-5, rec
    assert rec["channel_order"] == "shared" and "tuning" not in rec


def test_a_large_1x1_layer_is_timed_in_the_table_layout_and_a_table_choice_replays(
        tmp_path, monkeypatch):
    """A choice recorded before the table layout is timed beside the table candidates (the
    layer made large by lowering irprune.tune.LARGE_NNZ); a recorded table choice is compiled,
    checked against float64 and timed as the only irprune kernel."""
    pytest.importorskip("torch", reason="the benchmark's baselines need PyTorch")
    import json

    import irprune.tune as T
    from irprune.bench.runner import BenchConfig, run

    monkeypatch.setattr(T, "LARGE_NNZ", 1000)
    old = {"suite": "resnet50", "layer": "l3_1x1_256_1024", "batch": 1, "sparsity": 0.9,
           "impl": "irprune", "status": "ok", "group_size": 8, "slices": 1, "tile": None,
           "max_registers": 128, "block": 64, "groups_per_block": 1}
    path = tmp_path / "earlier.json"
    path.write_text(json.dumps({"environment": {"commit": "abc123"}, "records": [old]}))
    kw = dict(suites=["resnet50"], layers=["l3_1x1_256_1024"], batches=(1,), sparsities=(0.9,),
              impls=("irprune",), jobs=8, target_ms=2, repeats=3, baseline_processes=1)
    doc = run(BenchConfig(choices_from=str(path), **kw), log=print)
    rec = doc["records"][0]
    assert rec["status"] == "ok" and rec["rel_err"] < 1e-5, rec
    layouts = [t["layout"] for t in rec["tuning"]]
    # the earlier choice in both channel orders, beside the table candidates
    assert layouts.count("immediate") == 2 and layouts.count("table") >= 2
    assert {t["channel_order"] for t in rec["tuning"] if t["layout"] == "immediate"} == {
        "natural", "shared"}
    assert all(t["median_us"] > 0 for t in rec["tuning"])
    tables = [t for t in rec["tuning"] if t["layout"] == "table"]
    assert {t["block"] for t in tables} == set(T.TABLE_THREADS)
    pick = dict(tables[0], impl="irprune", status="ok", suite="resnet50",
                layer="l3_1x1_256_1024", batch=1, sparsity=0.9)
    path.write_text(json.dumps({"environment": {"commit": "def456"}, "records": [pick]}))
    doc = run(BenchConfig(choices_from=str(path), **kw), log=print)
    rec = doc["records"][0]
    assert rec["status"] == "ok" and rec["rel_err"] < 1e-5, rec
    assert (rec["layout"], rec["table"], rec["block"]) == ("table", pick["table"], pick["block"])
    assert rec["group_size"] is None and "tuning" not in rec and rec["median_us"] > 0


def test_the_code_fetch_kernel_runs_and_takes_longer_than_an_empty_one():
    pytest.importorskip("torch", reason="the benchmark's timing needs PyTorch")
    from irprune.bench.code_fetch import fetch_rate, measure_fetch

    t = measure_fetch(target_ms=2, repeats=3)
    assert t["fetch_us"] > t["empty_us"] > 0
    # a GPU of this decade fetches distinct code at 0.05-20 TB/s (an H200: about 0.7)
    assert 5e10 < fetch_rate(t) < 2e13
