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
    assert recs["irprune"]["compile"]["from_cache"]
    assert recs["irprune"]["fma_ptx"] == recs["irprune"]["nnz"]
    assert (tmp_path / "r.json").is_file()
