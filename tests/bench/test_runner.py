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
        assert all(table is None for *_, table, _ in cfgs)  # 3x3 layers: no table layout
        pixel = {(gs, sl) for gs, sl, tile, *_ in cfgs if tile is None}
        tiles = {(gs, tile) for gs, _, tile, *_ in cfgs if tile is not None}
        assert pixel and tiles  # 50,176 output pixels at batch 64: row tiles are candidates
        assert {cap for _, _, tile, cap, *_ in cfgs if tile is None} == set(CANDIDATES)
        assert all(cap is None for _, _, tile, cap, *_ in cfgs if tile is not None)
        # each pixel configuration of 2..K-1 channels a group in both channel orders (the
        # shared order and the natural one), a row tile or one group in the natural order only
        K = u.layer.K
        for gs, sl, tile, cap, _, order in cfgs:
            twin = (gs, sl, tile, cap, None, "natural" if order == "shared" else "shared")
            assert (twin in cfgs) == (tile is None and 1 < gs < K and K % gs == 0)
        assert any(o == "shared" for *_, o in cfgs)
        mine = [j for j in jobs if j.layer.name == u.layer.name]
        templates = [j for j in mine if j.sparsity is None]
        kernels = [j for j in mine if j.sparsity is not None]
        # one IR template serves both orders
        assert len(templates) == len({(gs, sl, tile) for gs, sl, tile, *_ in cfgs})
        assert len(kernels) == 2 * len(cfgs)  # two sparsities
        assert {j.channel_order for j in kernels} == {"natural", "shared"}


def test_an_untuned_run_compiles_what_irprune_conv2d_gives():
    cfg = BenchConfig(suites=["seed"], layers=["lenet5_c1"], batches=(1,), sparsities=(0.9,),
                      tune=False)
    (u,) = plan(cfg)
    gs = default_group_size(u.layer.geometry(1))
    assert configs(cfg, u, 0.9) == [(gs, 1, None, DEFAULT_MAX_REGISTERS, None, "natural")]
    jobs, _ = compile_plan(cfg, [u], "/tmp/x")
    assert [(j.sparsity, j.config) for j in jobs] == [
        (None, (gs, 1, None, None, None, "natural")),
        (0.9, (gs, 1, None, DEFAULT_MAX_REGISTERS, None, "natural"))]


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
    imm = [c for c in got if c[4] is None]
    assert {c[3] for c in imm} == set(LARGE_REGISTER_CAPS)
    assert {c[3] for c in full} == set(CANDIDATES)
    assert sorted({gs for gs, *_ in imm}) == [2, 4, 8, 16] and LARGE_GROUP_SIZES == 4
    assert {sl for _, sl, *_ in imm} == {1, 2}
    assert len(imm) == 2 * 8 < len(full)  # in both channel orders
    # the large 1x1 layer is also timed in the table layout, the small one is not
    tables = [c[4] for c in got if c[4] is not None]
    assert tables and all(c[:4] == (None, c[4].slices, None, None) and c[5] == "natural"
                          for c in got if c[4])
    assert all(c[4] is None for c in full)


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
    # a choice from before channel orders: its configuration in each order that regroups it
    assert configs(cfg, u64, 0.9) == [(32, 1, None, 128, None, "natural"),
                                      (32, 1, None, 128, None, "shared")]
    # A layer the earlier run did not time is tuned as usual.
    assert len(configs(cfg, u256, 0.9)) > 1
    jobs, _ = compile_plan(cfg, [u64], "/tmp/x")
    assert [(j.sparsity, j.config) for j in jobs] == [
        (None, (32, 1, None, None, None, "natural")), (0.9, (32, 1, None, 128, None, "natural")),
        (0.9, (32, 1, None, 128, None, "shared"))]
    # only the orders the run asks for
    cfg.channel_orders = ("natural",)
    assert configs(cfg, u64, 0.9) == [(32, 1, None, 128, None, "natural")]
    # a choice that records its order is replayed in that order only
    path = _choices_file(tmp_path, [dict(chosen, channel_order="shared")])
    cfg = BenchConfig(suites=["resnet50"], layers=["l1_1x1_64_64"], batches=(1,),
                      sparsities=(0.9,), choices_from=path)
    assert configs(cfg, plan(cfg)[0], 0.9) == [(32, 1, None, 128, None, "shared")]


def test_a_choices_file_without_irprune_rows_or_unreadable_fails_in_one_line(tmp_path):
    import pytest

    from irprune.bench.runner import load_choices

    path = _choices_file(tmp_path, [{"impl": "cudnn_fp32", "status": "ok"}])
    with pytest.raises(ValueError, match="no timed irprune record"):
        load_choices(path)
    with pytest.raises(ValueError, match="cannot read choices from"):
        load_choices(str(tmp_path / "missing.json"))


def test_a_choice_from_before_the_table_layout_is_timed_beside_the_table_candidates(tmp_path):
    """A record with no ``layout`` predates the table layout: a large 1x1 layer's earlier choice
    is compiled with this commit's table candidates (its run never timed them); a record that
    chose a table kernel compiles only that one, with no IR template job."""
    from irprune.table_layout import TableConfig

    old = {"suite": "mobilenet1x1", "layer": "pw_1024_1024_7", "batch": 1, "sparsity": 0.9,
           "impl": "irprune", "status": "ok", "group_size": 8, "slices": 1, "tile": None,
           "max_registers": 128, "block": 64, "groups_per_block": 2}
    cfg = BenchConfig(suites=["mobilenet1x1"], layers=["pw_1024_1024_7"], batches=(1,),
                      sparsities=(0.9,), choices_from=_choices_file(tmp_path, [old]))
    (u,) = plan(cfg)
    got = configs(cfg, u, 0.9)
    assert got[:2] == [(8, 1, None, 128, None, "natural"), (8, 1, None, 128, None, "shared")]
    assert len(got) > 2 and all(isinstance(c[4], TableConfig) for c in got[2:])
    # the same choice recorded by a run that had the table layout: nothing added
    newer = dict(old, layout="immediate", table=None, channel_order="natural")
    cfg = BenchConfig(suites=["mobilenet1x1"], layers=["pw_1024_1024_7"], batches=(1,),
                      sparsities=(0.9,), choices_from=_choices_file(tmp_path, [newer]))
    assert configs(cfg, u, 0.9) == [(8, 1, None, 128, None, "natural")]
    chose_table = dict(old, layout="table", group_size=None, slices=4, max_registers=None,
                       table={"tile_k": 32, "slices": 4, "tile_p": 49}, block=512)
    cfg = BenchConfig(suites=["mobilenet1x1"], layers=["pw_1024_1024_7"], batches=(1,),
                      sparsities=(0.9,), choices_from=_choices_file(tmp_path, [chose_table]))
    t = TableConfig(32, 4, 49)
    assert configs(cfg, u, 0.9) == [(None, 4, None, None, t, "natural")]
    jobs, _ = compile_plan(cfg, [u], "/tmp/x")
    assert [(j.sparsity, j.config) for j in jobs] == [(0.9, (None, 4, None, None, t, "natural"))]


def test_a_table_job_compiles_a_table_kernel_in_the_worker(tmp_path, monkeypatch):
    """run_job of a table configuration: the table kernel lands in the disk cache, where the
    timing process loads it."""
    # run_job sets these for its worker process: here they must not outlive the test
    monkeypatch.setenv("IRPRUNE_CACHE", "1")
    monkeypatch.setenv("IRPRUNE_JOBS", "1")
    from irprune.bench.compile_jobs import CompileJob, bench_weights, run_job
    from irprune.cache import DiskCache
    from irprune.table_kernel import compile_table_conv2d
    from irprune.table_layout import TableConfig

    cfg = BenchConfig(suites=["resnet50"], layers=["l3_1x1_1024_256"], batches=(1,),
                      sparsities=(0.9,))
    (u,) = plan(cfg)
    t = TableConfig(16, 8, 196)
    res = run_job(CompileJob(u.layer, 1, 0.9, 7, str(tmp_path), None, 8, None, None, t))
    assert res["ok"], res.get("error")
    assert res["stats"]["layout"] == "table" and res["stats"]["config"]["slices"] == 8
    w = bench_weights(u.layer, 0.9, 7)
    k = compile_table_conv2d(w, u.layer.geometry(1).input_shape, t, cache=DiskCache(tmp_path))
    assert k.stats["cached"] and k.stats["fma_ptx"] >= 1


def test_a_replayed_choice_keeps_its_block_unless_blocks_are_retimed():
    import irprune
    from irprune.bench.runner import replay_shapes
    from irprune.reference import prune_random

    w = prune_random((16, 8, 1, 1), 0.9, seed=3)
    k = irprune.conv2d(w, (1, 8, 14, 14), group_size=4, cache=False)
    k.stats["ptxas"] = {"registers": 64}
    chosen = {"block": 128, "groups_per_block": 2}
    assert replay_shapes(k, chosen, retime=False) == [(128, 2)]
    shapes = replay_shapes(k, chosen, retime=True)
    # the recorded shape first, then every other candidate block at its groups per block
    # (32 too: several groups a block)
    assert shapes[0] == (128, 2) and len(shapes) == len(set(shapes))
    assert sorted(b for b, _ in shapes) == [32, 64, 96, 128, 160, 192, 224, 256]
    assert {m for _, m in shapes} == {2}
    # 255 registers (256 allocated) x 2 groups: at most 128 threads along the pixels
    k.stats["ptxas"] = {"registers": 255}
    assert sorted(b for b, _ in replay_shapes(k, chosen, retime=True)) == [32, 64, 96, 128]


def test_retime_blocks_without_choices_is_refused_in_one_line():
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "irprune.cli", "bench", "--retime-blocks",
                        "--suite", "seed"], capture_output=True, text=True)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "--choices-from" in p.stderr
