"""irprune.torch_convert on the CPU: which layers convert, and the converted model's output
(irprune layers run through the pruned IR on the CPU) against the original PyTorch model."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the PyTorch converter's tests need torch (make install adds the CPU build)")
from torch import nn  # noqa: E402
from torch.nn.utils import prune  # noqa: E402

from irprune.torch_convert import SparseConv2d, convert  # noqa: E402


class Tiny(nn.Module):
    """Conv, depthwise conv, grouped conv, a dilated conv (skipped), pooling and a linear head."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False)
        self.grouped = nn.Conv2d(8, 12, 1, groups=4)
        self.dilated = nn.Conv2d(12, 12, 3, padding=2, dilation=2)
        self.fc = nn.Linear(12, 5)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.dw(x))
        x = self.dilated(torch.relu(self.grouped(x)))
        return self.fc(x.mean((2, 3)))


def pruned_tiny(amount=0.8, seed=0):
    torch.manual_seed(seed)
    m = Tiny()
    for mod in m.modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            prune.l1_unstructured(mod, "weight", amount=amount)
    return m.eval()


def test_torch_pruned_model_converts_and_matches():
    m = pruned_tiny()
    x = torch.randn(2, 3, 10, 9)
    c = convert(m, x, threshold=0.5, cache=False, progress=False, jobs=2)  # worker processes
    rep = {r.name: r for r in c.irprune_report}
    assert {n for n, r in rep.items() if r.status == "converted"} == {"conv1", "dw", "grouped", "fc"}
    assert rep["dilated"].status == "skipped" and "dilation" in rep["dilated"].reason
    assert isinstance(c.fc, SparseConv2d) and isinstance(c.dilated, nn.Conv2d)
    assert all(r.fma == r.nnz for r in rep.values() if r.status == "converted")
    with torch.no_grad():
        ref, got = m(x), c(x)
    assert got.shape == ref.shape
    assert torch.max(torch.abs(got - ref)) / torch.max(torch.abs(ref)) < 1e-5
    # The original model is untouched.
    assert isinstance(m.conv1, nn.Conv2d) and hasattr(m.conv1, "weight_orig")


def test_threshold_keeps_dense_layers_in_pytorch():
    torch.manual_seed(1)
    m = Tiny().eval()
    with torch.no_grad():  # zero by hand: conv1 90%, the others dense
        w = m.conv1.weight
        w[w.abs() < w.abs().flatten().kthvalue(int(0.9 * w.numel())).values] = 0
    c = convert(m, torch.randn(1, 3, 8, 8), threshold=0.85, cache=False, progress=False, jobs=1)
    status = {r.name: r.status for r in c.irprune_report}
    assert status == {"conv1": "converted", "dw": "dense", "grouped": "dense", "dilated": "dense",
                      "fc": "dense"}
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(c(x), m(x), rtol=1e-4, atol=1e-5)


def test_one_kernel_serves_every_batch_size_and_a_new_input_size_compiles():
    m = pruned_tiny(seed=2)
    c = convert(m, torch.randn(1, 3, 8, 8), cache=False, progress=False, jobs=1)
    with torch.no_grad():
        for shape in [(3, 3, 8, 8), (2, 3, 8, 8)]:
            x = torch.randn(*shape)
            ref, got = m(x), c(x)
            assert torch.max(torch.abs(got - ref)) / torch.max(torch.abs(ref)) < 1e-5, shape
        assert list(c.conv1.kernels) == [(3, 8, 8)]  # compiled once, at conversion
        x = torch.randn(2, 3, 6, 7)  # another spatial size: compiled on first use
        ref, got = m(x), c(x)
    assert list(c.conv1.kernels) == [(3, 8, 8), (3, 6, 7)]
    assert torch.max(torch.abs(got - ref)) / torch.max(torch.abs(ref)) < 1e-5


def test_bad_inputs_are_refused():
    from irprune.errors import IrpruneError

    m = pruned_tiny()
    with pytest.raises(IrpruneError, match="threshold must be in"):
        convert(m, torch.randn(1, 3, 8, 8), threshold=2, progress=False)
    with pytest.raises(IrpruneError, match="tune=True times each layer on the GPU") as e:
        convert(m, torch.randn(1, 3, 8, 8), tune=True, progress=False)
    assert "\n" not in str(e.value)
    c = convert(m, torch.randn(1, 3, 8, 8), cache=False, progress=False, jobs=1)
    with pytest.raises(IrpruneError, match="float32"):
        c(torch.randn(1, 3, 8, 8, dtype=torch.float64))


def test_model_run_without_gpu_compiles_and_reports():
    from irprune.model_run import run

    lines = []
    torch.manual_seed(4)
    results = run("tiny", (0.8, 0.95), batches=(1, 2), image=12, threshold=0.1, cache=False, progress=False,
                  jobs=2, model=Tiny().eval(), log=lines.append)
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the timing path runs instead")
    assert [r["sparsity"] for r in results] == [0.8, 0.95]
    for res, line in zip(results, lines):
        assert res["converted"] == 4 and res["layers"] == 5 and res["fma"] == res["nnz_converted"]
        assert "timings" not in res and "4/5 layers converted" in line
    assert abs(results[1]["sparsity_measured"] - 0.95) < 0.01
    assert results[1]["nnz_converted"] < results[0]["nnz_converted"]


def test_global_pruning_and_the_reference_models():
    from irprune.models import MobileNetV2, ResNet50, prune_global

    assert sum(p.numel() for p in ResNet50().parameters()) == 25_557_032  # torchvision's count
    assert sum(p.numel() for p in MobileNetV2().parameters()) == 3_504_872
    m = prune_global(pruned_tiny(amount=0.0), 0.9)
    ws = [mod.weight for mod in m.modules() if isinstance(mod, (nn.Conv2d, nn.Linear))]
    zeros = sum(int((w == 0).sum()) for w in ws)
    assert zeros == round(0.9 * sum(w.numel() for w in ws))


def test_compare_layers_checks_every_converted_layer():
    from irprune.model_run import compare_layers

    m = pruned_tiny(seed=5)
    x = torch.randn(1, 3, 9, 9)
    c = convert(m, x, cache=False, progress=False, jobs=1)
    errs = compare_layers(m, c, x)
    assert set(errs) == {"conv1", "dw", "grouped", "fc"}
    for e in errs.values():
        assert e["torch"] < 1e-5 and e["fp64"] < 1e-5 and e["torch_fp64"] < 1e-5
        assert not e["zero_input"]
    with torch.no_grad():  # a wrong weight in one layer shows in that layer
        c.grouped.weight_values[0, 0, 0, 0] += 1.0
        c.grouped.kernels.clear()
    errs = compare_layers(m, c, x)
    assert errs["grouped"]["torch"] > 1e-3 and errs["grouped"]["fp64"] > 1e-3
    assert errs["grouped"]["torch_fp64"] < 1e-5 and errs["conv1"]["fp64"] < 1e-5


def test_graphed_runs_cpu_inputs_directly():
    """graphed() captures CUDA graphs only; a CPU input runs the module as it is."""
    from irprune.torch_convert import graphed

    m = pruned_tiny(seed=9)
    c = convert(m, torch.randn(1, 3, 8, 8), cache=False, progress=False, jobs=1)
    g = graphed(c)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(g(x), c(x))
    assert not g._graphs
