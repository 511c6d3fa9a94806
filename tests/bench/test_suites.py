"""The suites match ../shared/BENCHMARKS.md, and the run plan is what the flags ask for."""

from __future__ import annotations

import pytest

from irprune.bench.runner import BenchConfig, plan, weight_seed
from irprune.bench.suites import BATCHES, SPARSITIES, SUITES, suite_layers

# (name, C, K, output H) as the paper's Table 2 states them.
SEED_TABLE = [("lenet5_c1", 1, 20, 24), ("lenet5_c2", 20, 50, 8), ("alexnet_cifar_c1", 3, 32, 32),
              ("alexnet_cifar_c2", 32, 32, 16), ("alexnet_cifar_c3", 32, 64, 8),
              ("resnet_3x3_56", 64, 64, 56), ("resnet_3x3_28", 128, 128, 28),
              ("vgg16_c1", 3, 64, 224), ("vgg16_c2", 64, 64, 224), ("vgg16_c3", 64, 128, 112)]


def test_seed_suite_reproduces_the_papers_output_sizes():
    layers = {l.name: l for l in SUITES["seed"]}
    assert list(layers) == [n for n, *_ in SEED_TABLE]
    for name, C, K, oh in SEED_TABLE:
        l = layers[name]
        assert (l.C, l.K, l.out_hw) == (C, K, (oh, oh)), name


def test_mobilenet_and_resnet50_shapes():
    mb = SUITES["mobilenet1x1"]
    assert len(mb) == 9 and all(l.R == l.S == 1 for l in mb)
    assert [(l.K, l.C, l.H) for l in mb][-1] == (1024, 1024, 7)
    rn = {l.name: l for l in SUITES["resnet50"]}
    assert rn["conv1_7x7_s2"].out_hw == (112, 112)
    assert rn["l4_3x3_512_512_s2"].out_hw == (7, 7)
    assert rn["l2_down_256_512_s2"].out_hw == (28, 28)
    # every stride-2 3x3 halves its input (v1.5: stride on the 3x3)
    for l in rn.values():
        if l.stride == 2:
            assert l.out_hw[0] * 2 == l.H
    assert len({(l.C, l.K, l.H, l.R, l.stride) for l in rn.values()}) == len(rn), "duplicate shapes"


def test_plan_defaults_and_quick():
    full = plan(BenchConfig(suites=["seed"]))
    assert len(full) == 10 * len(BATCHES["seed"])
    assert all(u.sparsities == SPARSITIES for u in full)
    quick = plan(BenchConfig(suites=["seed", "mobilenet1x1"], quick=True))
    assert 0 < len(quick) < len(full)
    assert all(len(u.sparsities) == 3 for u in quick)
    one = plan(BenchConfig(suites=["seed"], layers=["vgg16_c1"], batches=(2,), sparsities=(0.9,)))
    assert [(u.layer.name, u.batch, u.sparsities) for u in one] == [("vgg16_c1", 2, (0.9,))]


def test_unknown_names_are_refused():
    with pytest.raises(KeyError, match="unknown suite"):
        suite_layers("nope")
    with pytest.raises(KeyError, match="has no layer"):
        suite_layers("seed", ["resnet_9x9"])


def test_weights_do_not_depend_on_batch_and_differ_by_sparsity():
    l = SUITES["seed"][0]
    assert weight_seed(l, 0.9) == weight_seed(l, 0.9) != weight_seed(l, 0.5)
