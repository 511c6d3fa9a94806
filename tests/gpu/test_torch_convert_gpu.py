"""A converted PyTorch model on the GPU: same logits as PyTorch (fp32, TF32 off), output on the input's device."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.gpu


def test_converted_model_on_cuda_matches_pytorch():
    from irprune.torch_convert import convert
    from tests.test_torch_convert import pruned_tiny

    m = pruned_tiny(seed=3).cuda()
    x = torch.randn(4, 3, 16, 15, device="cuda")
    c = convert(m, x, cache=False, progress=False)
    assert sum(r.status == "converted" for r in c.irprune_report) == 4
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    with torch.no_grad():
        ref, got = m(x), c(x)
    assert got.is_cuda and got.device == x.device
    assert torch.max(torch.abs(got - ref)) / torch.max(torch.abs(ref)) < 1e-5
