"""Input-channel slices: rows of threads (threadIdx.y) that split a pixel's input channels.

The built-in template adds the rows' partial sums through shared memory
behind a barrier. These checks run the pruned IR on the CPU
(irprune.host_exec), read the PTX, and exercise the limits; the GPU runs
them in tests/gpu/test_conv2d_gpu.py.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import irprune
from irprune.errors import ValidationError
from irprune.geometry import ConvGeometry
from irprune.host_exec import HostKernel, run_on_host
from irprune.ir.textir import find_locals, sub_locals
from irprune.reference import pruned_reference, prune_random
from irprune.tune import candidate_blocks, candidate_configs, candidate_slices

# (weight shape, input shape, stride, padding, groups, group size)
CASES = {
    "3x3_ragged_group": ((10, 7, 3, 3), (2, 7, 5, 6), 1, 1, 1, 4),
    "1x1_many_channels": ((6, 24, 1, 1), (1, 24, 3, 3), 1, 0, 1, 3),
    "stride2": ((8, 6, 3, 3), (1, 6, 7, 7), 2, 1, 1, 8),
    "grouped": ((8, 4, 3, 3), (1, 8, 5, 5), 1, 1, 2, 2),
}


def _layer(name, sparsity=0.7, seed=0):
    wshape, ishape, stride, pad, groups, gs = CASES[name]
    rng = np.random.default_rng(seed)
    w = prune_random(wshape, sparsity, seed=seed)
    b = rng.standard_normal(wshape[0]).astype(np.float32)
    x = rng.standard_normal(ishape).astype(np.float32)
    return w, b, x, dict(stride=stride, padding=pad, groups=groups, group_size=gs)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("slices", [2, 3])
def test_sliced_kernel_computes_the_convolution_on_the_host(name, slices):
    w, b, x, kw = _layer(name)
    k = irprune.conv2d(w, x.shape, bias=b, relu=True, slices=slices, cache=False, **kw)
    k.block = 32  # several blocks of pixels, and threads past the last pixel
    y = run_on_host(k, x)
    ref = pruned_reference(x.astype(np.float64), w.astype(np.float64), kw["stride"], kw["padding"],
                           bias=b.astype(np.float64), relu=True, groups=kw["groups"])
    assert not np.isnan(y).any(), "some outputs were never written"
    assert np.max(np.abs(y - ref)) / max(1.0, np.max(np.abs(ref))) < 1e-5


def test_slices_keep_one_fma_per_kept_weight_and_add_a_barrier():
    w, b, x, kw = _layer("1x1_many_channels", sparsity=0.5)
    one = irprune.conv2d(w, x.shape, bias=b, slices=1, cache=False, **kw)
    four = irprune.conv2d(w, x.shape, bias=b, slices=4, cache=False, **kw)
    assert one.stats["fma_ptx"] == four.stats["fma_ptx"] > 0
    assert "bar.sync" not in one.asm["ptx"] and ".shared" not in one.asm["ptx"]
    assert "bar.sync" in four.asm["ptx"] and "st.shared" in four.asm["ptx"]
    # Still no weight array: input, output and batch are the only parameters.
    assert len(re.findall(r"_param_\d+", four.asm["ptx"].split(")")[0])) == 3
    assert four.launch_config[1] == (four.block, 4, 1)
    assert four.shared_bytes == 4 * 3 * kw["group_size"] * four.block


def test_the_host_check_fails_a_reduction_read_before_it_is_written():
    """Rows run last first on the host; first-to-last would read empty partial sums."""
    w, b, x, kw = _layer("1x1_many_channels")
    k = irprune.conv2d(w, x.shape, slices=3, cache=False, **kw)
    ref = pruned_reference(x.astype(np.float64), w.astype(np.float64), groups=1)
    y = run_on_host(k, x)
    assert np.max(np.abs(y - ref)) < 1e-4
    wrong = np.full_like(y, np.nan)
    for part, grid, block in k.part_launches(1):
        hk = HostKernel(part.llvm, k.shared_bytes)
        # Each row alone, row 0 first: slice 0 finds no partial sums yet.
        hk.launch(grid, (block[0], 1, 1), x, wrong, 1)
    assert np.max(np.abs(wrong - ref)) > 1e-3


def test_slices_are_checked():
    w, b, x, kw = _layer("stride2")
    with pytest.raises(ValidationError, match="slices must be <= 6"):
        irprune.conv2d(w, x.shape, slices=7, cache=False, **kw)
    with pytest.raises(ValidationError, match="slices must be >= 1"):
        irprune.conv2d(w, x.shape, slices=0, cache=False, **kw)
    k = irprune.conv2d(w, x.shape, slices=6, cache=False, **kw)
    k.block = 256
    with pytest.raises(ValidationError, match="1024"):
        k.part_launches(1)


def test_a_template_without_a_slices_parameter_refuses_slices():
    from tests.user_templates import conv2d_relu6

    w, b, x, kw = _layer("stride2")
    assert not conv2d_relu6.splits
    kw.pop("groups")
    with pytest.raises(ValidationError, match="takes no `slices` parameter"):
        conv2d_relu6.compile(w, x.shape, bias=b, slices=2, cache=False, **kw)


def test_tuner_candidates_respect_channels_threads_and_shared_memory():
    g3 = ConvGeometry.from_weight((8, 3, 3, 3), (1, 3, 8, 8), 1, 1)
    assert candidate_slices(g3) == [1]  # 3 channels: no slice would keep 4
    g = ConvGeometry.from_weight((256, 1024, 1, 1), (1, 1024, 14, 14), 1, 0)
    assert candidate_slices(g) == [1, 2, 4, 8]
    assert {(gs, s) for gs, s, _ in candidate_configs(g)} >= {(8, 1), (8, 8), (64, 2)}
    assert candidate_blocks(8, 1) == [64, 96, 128, 160, 192, 224, 256]
    assert candidate_blocks(8, 8) == [32, 64, 96, 128]   # 8 x 160 threads is too many
    assert candidate_blocks(64, 4) == [32, 64]           # 3 x 64 x 128 x 4 bytes > 48 KB
    assert candidate_blocks(64, 8) == [] and (64, 8, None) not in candidate_configs(g)


def test_inline_asm_strings_are_not_renamed():
    text = '%a = tail call i32 asm sideeffect "mov.u32 $0, %dynamic_smem_size;", "=r"(i32 %b)'
    assert find_locals(text) == ["%a", "%b"]
    out = sub_locals(lambda m: "%rg1." + m.group(0)[1:], text)
    assert "%dynamic_smem_size;" in out and "%rg1.b" in out


def test_blocks_that_would_run_out_of_registers_are_refused_and_not_tuned():
    from irprune.kernel import block_fits

    assert block_fits(8, 8, 128, registers=64)           # 1024 x 64 = 65536
    assert not block_fits(8, 8, 128, registers=65)       # 65 -> 72 per thread
    assert candidate_blocks(8, 8, registers=72) == [32, 64, 96]  # 8 x 128 x 72 > 65536
    w, b, x, kw = _layer("stride2")
    k = irprune.conv2d(w, x.shape, slices=4, cache=False, **kw)
    k.block = 256
    k.stats["ptxas"] = {"registers": 80}
    with pytest.raises(ValidationError, match="registers"):
        k.part_launches(1)
