"""Table kernels (irprune.table_kernel) on the GPU: against float64, through every launch path."""

from __future__ import annotations

import numpy as np
import pytest

from irprune.reference import conv2d_reference, prune_random
from irprune.table_kernel import compile_table_conv2d
from irprune.table_layout import TableConfig
from tests.gpu.test_conv2d_gpu import RTOL, rel_err, run_poisoned_batch
from tests.test_table_kernel import CASES

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[4].describe()}-b{c[6]}")
def test_table_kernels_match_float64_reference(case):
    """Outputs poisoned with NaN: the launch's zeroing (several slices) and the stores (one)
    must cover them."""
    K, C, H, stride, config, block, n, bias, relu = case
    rng = np.random.default_rng(K + C + H)
    w = prune_random((K, C, 1, 1), 0.7, seed=H)
    b = rng.standard_normal(K).astype(np.float32) if bias else None
    k = compile_table_conv2d(w, (n, C, H, H), config, stride=stride, bias=b, relu=relu,
                             cache=False, block=block)
    for batch in (1, 3):
        x = rng.standard_normal((batch, C, H, H)).astype(np.float32)
        out = run_poisoned_batch(k, x)
        assert not np.isnan(out).any()
        assert rel_err(out, conv2d_reference(x, w, stride, 0, b, relu)) < RTOL


def test_a_large_layer_over_48_kb_of_shared_memory_with_torch_and_a_graph():
    """l4_1x1_512_2048's shape at 0.9: 107 KB a block (the launch opts in), through PyTorch's
    fast path, replayed from a CUDA graph (the zeroing is captured too)."""
    import torch

    w = prune_random((2048, 512, 1, 1), 0.9, seed=5)
    for config in (TableConfig(16, 1, 49), TableConfig(64, 4, 49)):
        k = compile_table_conv2d(w, (1, 512, 7, 7), config, cache=False, block=512)
        assert config.slices > 1 or k.shared_bytes > 48 * 1024
        x = torch.randn(1, 512, 7, 7, device="cuda")
        ref = conv2d_reference(x.cpu().numpy(), w)
        out = torch.full((1, 2048, 7, 7), float("nan"), device="cuda")
        k(x, out=out)
        torch.cuda.synchronize()
        assert rel_err(out.cpu().numpy(), ref) < RTOL
        g = torch.cuda.CUDAGraph()
        out.fill_(float("nan"))
        with torch.cuda.graph(g):
            k(x, out=out)
        out.fill_(float("nan"))
        g.replay()
        torch.cuda.synchronize()
        assert rel_err(out.cpu().numpy(), ref) < RTOL


def test_a_misaligned_torch_input_is_refused():
    import torch

    from irprune.errors import ValidationError

    w = prune_random((16, 8, 1, 1), 0.5, seed=1)
    k = compile_table_conv2d(w, (1, 8, 4, 4), TableConfig(16, 2, 16), cache=False)
    assert k.input_alignment == 16  # copied 16 bytes at a time
    for skip in (1, 2):  # on 4 bytes, on 8 bytes: both refused
        x = torch.randn(8 * 16 + skip, device="cuda")[skip:].view(1, 8, 4, 4)
        with pytest.raises(ValidationError, match="16-byte aligned"):
            k(x)
    x = torch.randn(8 * 16 + 4, device="cuda")[4:].view(1, 8, 4, 4)  # on 16 bytes: runs
    assert torch.isfinite(k(x)).all()
