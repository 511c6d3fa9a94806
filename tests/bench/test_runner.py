"""The bench's compile plan, on the CPU: which kernels a run compiles before it times anything."""

from __future__ import annotations

from irprune.bench.compile_jobs import bench_nnz
from irprune.bench.runner import BenchConfig, compile_plan, configs, plan
from irprune.register_budget import CANDIDATES, DEFAULT_MAX_REGISTERS
from irprune.template import default_group_size


def test_a_tuned_run_compiles_each_configuration_with_each_budget_and_one_template():
    cfg = BenchConfig(suites=["seed"], layers=["resnet_3x3_28", "vgg16_c3"], batches=(64,),
                      sparsities=(0.9, 0.95))
    units = plan(cfg)
    jobs, refused = compile_plan(cfg, units, "/tmp/x")
    assert not refused
    for u in units:
        cfgs = configs(cfg, u, 0.9)
        pixel = {(gs, sl) for gs, sl, tile, _ in cfgs if tile is None}
        tiles = {(gs, tile) for gs, _, tile, _ in cfgs if tile is not None}
        assert pixel and tiles  # 50,176 output pixels at batch 64: row tiles are candidates
        assert {cap for *_, tile, cap in cfgs if tile is None} == set(CANDIDATES)
        assert all(cap is None for *_, tile, cap in cfgs if tile is not None)
        mine = [j for j in jobs if j.layer.name == u.layer.name]
        templates = [j for j in mine if j.sparsity is None]
        kernels = [j for j in mine if j.sparsity is not None]
        assert len(templates) == len({(gs, sl, tile) for gs, sl, tile, _ in cfgs})
        assert len(kernels) == 2 * len(cfgs)  # two sparsities


def test_an_untuned_run_compiles_what_irprune_conv2d_gives():
    cfg = BenchConfig(suites=["seed"], layers=["lenet5_c1"], batches=(1,), sparsities=(0.9,),
                      tune=False)
    (u,) = plan(cfg)
    gs = default_group_size(u.layer.geometry(1))
    assert configs(cfg, u, 0.9) == [(gs, 1, None, DEFAULT_MAX_REGISTERS)]
    jobs, _ = compile_plan(cfg, [u], "/tmp/x")
    assert [(j.sparsity, j.config) for j in jobs] == [
        (None, (gs, 1, None, None)), (0.9, (gs, 1, None, DEFAULT_MAX_REGISTERS))]


def test_layers_over_max_nnz_or_max_weights_are_refused_with_the_reason():
    # 1,048,576 weights: 104,858 nonzeros at 0.9 (compiled), 524,288 at 0.5 (refused)
    cfg = BenchConfig(suites=["mobilenet1x1"], layers=["pw_1024_1024_7"], batches=(1,),
                      sparsities=(0.5, 0.9))
    jobs, refused = compile_plan(cfg, plan(cfg), "/tmp/x")
    assert list(refused) == [("pw_1024_1024_7", 1, 0.5)]
    assert "524,288 nonzeros" in refused[("pw_1024_1024_7", 1, 0.5)]
    assert "--max-nnz" in refused[("pw_1024_1024_7", 1, 0.5)]
    assert jobs and {j.sparsity for j in jobs} == {None, 0.9}
    cfg.max_nnz = 104_858
    assert len(compile_plan(cfg, plan(cfg), "/tmp/x")[1]) == 1
    cfg.max_nnz = 104_857
    assert len(compile_plan(cfg, plan(cfg), "/tmp/x")[1]) == 2
    cfg.max_weights = 1_000_000
    jobs, refused = compile_plan(cfg, plan(cfg), "/tmp/x")
    assert not jobs and all("--max-weights" in why for why in refused.values())


def test_a_large_layer_compiles_fewer_configurations_with_one_budget():
    from irprune.tune import LARGE_GROUP_SIZES, LARGE_NNZ, LARGE_REGISTER_CAPS

    cfg = BenchConfig(suites=["mobilenet1x1"], layers=["pw_512_512_14", "pw_512_1024_7"],
                      batches=(1,), sparsities=(0.9,))
    small, large = plan(cfg)
    assert bench_nnz(small.layer, 0.9) < LARGE_NNZ < bench_nnz(large.layer, 0.9)
    got, full = configs(cfg, large, 0.9), configs(cfg, small, 0.9)
    assert {cap for *_, cap in got} == set(LARGE_REGISTER_CAPS)
    assert {cap for *_, cap in full} == set(CANDIDATES)
    assert sorted({gs for gs, *_ in got}) == [2, 4, 8, 16] and LARGE_GROUP_SIZES == 4
    assert {sl for _, sl, *_ in got} == {1, 2}
    assert len(got) == 8 < len(full)


def _choices_file(tmp_path, records):
    import json

    path = tmp_path / "earlier.json"
    path.write_text(json.dumps({"environment": {"commit": "abc123"}, "records": records}))
    return str(path)


def test_choices_from_an_earlier_run_compile_only_that_runs_configuration(tmp_path):
    chosen = {"suite": "resnet50", "layer": "l1_1x1_64_64", "batch": 1, "sparsity": 0.9,
              "impl": "irprune", "status": "ok", "group_size": 32, "slices": 1, "tile": None,
              "max_registers": 128, "block": 32, "groups_per_block": 2}
    other = dict(chosen, impl="cudnn_fp32", group_size=None)
    path = _choices_file(tmp_path, [chosen, other, dict(chosen, sparsity=0.5, group_size=8)])
    cfg = BenchConfig(suites=["resnet50"], layers=["l1_1x1_64_64", "l1_1x1_64_256"],
                      batches=(1,), sparsities=(0.9,), choices_from=path)
    u64, u256 = plan(cfg)
    assert configs(cfg, u64, 0.9) == [(32, 1, None, 128)]
    # A layer the earlier run did not time is tuned as usual.
    assert len(configs(cfg, u256, 0.9)) > 1
    jobs, _ = compile_plan(cfg, [u64], "/tmp/x")
    assert [(j.sparsity, j.config) for j in jobs] == [(None, (32, 1, None, None)),
                                                      (0.9, (32, 1, None, 128))]


def test_a_choices_file_without_irprune_rows_or_unreadable_fails_in_one_line(tmp_path):
    import pytest

    from irprune.bench.runner import load_choices

    path = _choices_file(tmp_path, [{"impl": "cudnn_fp32", "status": "ok"}])
    with pytest.raises(ValueError, match="no timed irprune record"):
        load_choices(path)
    with pytest.raises(ValueError, match="cannot read choices from"):
        load_choices(str(tmp_path / "missing.json"))
