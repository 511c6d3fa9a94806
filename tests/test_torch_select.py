"""irprune.torch_select on the CPU: each converted layer timed both ways, the faster one kept."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="the PyTorch converter's tests need torch (make install adds the CPU build)")

from irprune.errors import IrpruneError  # noqa: E402
from irprune.torch_convert import SparseConv2d, convert  # noqa: E402
from irprune.torch_select import LayerTiming, keep_faster, select_fastest, time_layers  # noqa: E402
from tests.test_torch_convert import pruned_tiny  # noqa: E402

CONVERTED = {"conv1", "dw", "grouped", "fc"}


def _converted(seed=11):
    m = pruned_tiny(seed=seed)
    return m, convert(m, torch.randn(1, 3, 8, 8), cache=False, progress=False, jobs=1)


def test_every_converted_layer_is_timed_on_its_own_input():
    m, c = _converted()
    seen = {}

    def timer(fn, x):
        seen.setdefault(fn.__self__ if hasattr(fn, "__self__") else fn, []).append(tuple(x.shape))
        return 1.0

    t = time_layers(c, torch.randn(3, 3, 8, 8), timer=timer)
    assert set(t) == CONVERTED and all(v.batch == 3 for v in t.values())
    # Both ways, on the input the layer sees in the model (the linear layer: (N, features)).
    assert seen[c.fc] == [(3, 12)] and seen[c.fc.pytorch] == [(3, 12)]
    assert seen[c.dw] == [(3, 8, 8, 8)] and seen[c.dw.pytorch] == [(3, 8, 8, 8)]


def test_the_faster_side_runs_and_the_choice_can_be_undone():
    m, c = _converted()
    x = torch.randn(2, 3, 8, 8)
    times = {n: LayerTiming(irprune_us=5.0, torch_us=2.0 if n in ("dw", "fc") else 9.0, batch=2)
             for n in CONVERTED}
    assert sorted(keep_faster(c, times)) == ["dw", "fc"]
    rep = {r.name: r for r in c.irprune_report}
    assert rep["dw"].status == "slower" and "2.0 us against 5.0 us" in rep["dw"].reason
    assert rep["conv1"].status == "converted" and rep["conv1"].irprune_us == 5.0
    assert c.dw.use_pytorch and not c.conv1.use_pytorch and "runs PyTorch" in repr(c.dw)

    calls = []
    for layer in (c.conv1, c.dw, c.grouped, c.fc):  # count the kernels that run
        layer.run_irprune = (lambda f, n: lambda x: calls.append(n) or f(x))(layer.run_irprune, layer)
    with torch.no_grad():
        ref, got = m(x), c(x)
    assert calls == [c.conv1, c.grouped]
    assert torch.max(torch.abs(got - ref)) / torch.max(torch.abs(ref)) < 1e-5

    assert keep_faster(c, None) == []
    calls.clear()
    with torch.no_grad():
        c(x)
    assert calls == [c.conv1, c.dw, c.grouped, c.fc]
    assert all(r.status == "converted" for r in c.irprune_report if r.name in CONVERTED)


def test_measured_on_the_cpu_pytorch_wins_everywhere():
    """The pruned IR interpreted on the CPU is far slower than PyTorch: a real timing chooses PyTorch."""
    m, c = _converted(seed=12)
    assert sorted(select_fastest(c, torch.randn(1, 3, 8, 8))) == sorted(CONVERTED)
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(c(x), m(x), rtol=1e-5, atol=1e-6)


def test_the_fallback_is_the_deployed_layer_and_the_original_is_untouched():
    m, c = _converted()
    assert not hasattr(c.conv1.pytorch, "weight_mask")  # mask folded in: no pre-hook per call
    assert hasattr(m.conv1, "weight_mask")
    assert torch.equal(c.conv1.pytorch.weight, m.conv1.weight)


def test_bad_selections_are_refused():
    m = pruned_tiny()
    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(IrpruneError, match="select must be"):
        convert(m, x, select="auto", progress=False)
    with pytest.raises(IrpruneError, match="CUDA example input"):
        convert(m, x, select="fastest", progress=False)
    with pytest.raises(IrpruneError, match="no irprune layers"):
        time_layers(m, x)
    assert isinstance(_converted()[1].fc, SparseConv2d)


def test_a_layer_without_its_pytorch_layer_is_refused():
    m, c = _converted()
    c.dw.pytorch = None
    with pytest.raises(IrpruneError, match="'dw' has no PyTorch layer"):
        time_layers(c, torch.randn(1, 3, 8, 8))
