"""Baselines and irprune timed in several processes: the fastest is kept (CPU)."""

from __future__ import annotations

import pytest

from irprune.bench.baseline_processes import config_from_json, config_json, fold, run_processes
from irprune.bench.impls import BASELINES
from irprune.bench.runner import BenchConfig


def _rec(impl, us, status="ok", layer="l", sparsity=0.9):
    return {"suite": "s", "layer": layer, "batch": 1, "sparsity": sparsity, "impl": impl,
            "median_us": us, "status": status}


def test_each_baseline_keeps_its_fastest_process_and_lists_them_all():
    main = [_rec("cudnn_fp32", 10.0), _rec("cusparse_csr", 12.0), _rec("cudnn_tf32", 4.0)]
    runs = [[_rec("cudnn_fp32", 6.5), _rec("cusparse_csr", 12.5), _rec("cudnn_tf32", 4.4)],
            [_rec("cudnn_fp32", 7.0), _rec("cusparse_csr", 11.0), _rec("cudnn_tf32", 4.1)]]
    assert fold(main, runs) == 2
    fp32, csr, tf32 = main
    assert fp32["median_us"] == 6.5 and fp32["process_us"] == [10.0, 6.5, 7.0]
    assert fp32["first_process_us"] == 10.0
    assert csr["median_us"] == 11.0 and csr["process_us"] == [12.0, 12.5, 11.0]
    # The main process was fastest: its median stands, the others are recorded.
    assert tf32["median_us"] == 4.0 and tf32["process_us"] == [4.0, 4.4, 4.1]
    assert "first_process_us" not in tf32


def test_models_and_untimed_or_failed_records_are_not_changed():
    main = [_rec("dense_template", 3.0), _rec("floor", 1.0), _rec("cudnn_fp32", None, "wrong"),
            _rec("cudnn_fp16", 5.0)]
    runs = [[_rec("dense_template", 1.0), _rec("floor", 0.5), _rec("cudnn_fp32", 2.0),
             _rec("cudnn_fp16", 1.0, "wrong"), _rec("cudnn_fp16", None, "error")]]
    assert fold(main, runs) == 0
    assert [r["median_us"] for r in main] == [3.0, 1.0, None, 5.0]
    assert "process_us" not in main[0] and "process_us" not in main[2]
    assert main[3]["process_us"] == [5.0]  # another process's wrong result is not a time


def test_irprune_keeps_its_fastest_process_unless_timed_once():
    main = [_rec("irprune", 3.67), _rec("cudnn_fp32", 10.0)]
    runs = [[_rec("irprune", 3.20), _rec("cudnn_fp32", 9.0)], [_rec("irprune", 3.21)]]
    assert fold(main, runs) == 2
    assert main[0]["median_us"] == 3.20 and main[0]["process_us"] == [3.67, 3.20, 3.21]
    assert main[0]["first_process_us"] == 3.67
    # irprune timed once (--irprune-once): only the baselines are folded
    main = [_rec("irprune", 3.67), _rec("cudnn_fp32", 10.0)]
    assert fold(main, runs, impls=BASELINES) == 1
    assert main[0]["median_us"] == 3.67 and "process_us" not in main[0]


def test_records_match_on_layer_and_sparsity():
    main = [_rec("cudnn_fp32", 10.0, layer="a"), _rec("cudnn_fp32", 10.0, layer="b", sparsity=0.5)]
    runs = [[_rec("cudnn_fp32", 1.0, layer="b"), _rec("cudnn_fp32", 2.0, layer="a", sparsity=0.5)]]
    assert fold(main, runs) == 0


def test_the_config_goes_to_a_process_and_back_unchanged():
    cfg = BenchConfig(suites=["resnet50"], layers=["l1_1x1_64_64"], batches=(1, 16),
                      sparsities=(0.9,), impls=("irprune", "cudnn_fp32"), baseline_processes=4)
    assert config_from_json(config_json(cfg)) == cfg


def test_a_process_that_fails_is_reported_and_left_out():
    # A failing process (here: no usable GPU, or a layer that does not exist) must not end
    # the run: the main run's times stand and the failure is logged in one line.
    cfg = BenchConfig(suites=["seed"], layers=["no_such_layer"], sparsities=(0.9,))
    lines = []
    assert run_processes(cfg, 1, log=lines.append) == []
    assert len(lines) == 1 and lines[0].startswith("baseline process 2 failed (exit 1)")


def test_the_command_line_takes_a_positive_count():
    from irprune.cli import build_parser

    p = build_parser()
    assert p.parse_args(["bench"]).baseline_processes == 3
    assert p.parse_args(["bench", "--baseline-processes", "1"]).baseline_processes == 1
    with pytest.raises(SystemExit):
        p.parse_args(["bench", "--baseline-processes", "0"])
