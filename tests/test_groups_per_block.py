"""Several channel groups in one block (``SparseConvKernel.groups_per_block``, threadIdx.z).

The group switch reads blockIdx.y * blockDim.z + threadIdx.z, so one compiled
kernel runs with any number of groups per block that divides its group count.
These checks run the pruned IR on the CPU (irprune.host_exec: every thread of
the launch, barriers included) against a float64 reference, read the IR and
PTX, and exercise the launch checks and the tuner's candidates; the GPU runs
the same kernels in tests/gpu/test_groups_per_block_gpu.py.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import irprune
from irprune.errors import ValidationError
from irprune.host_exec import run_on_host
from irprune.reference import pruned_reference, prune_random
from irprune.tune import candidate_groups_per_block, launch_shapes

# (weight shape, input shape, stride, padding, groups, group size, groups per block)
CASES = {
    "1x1_four_groups": ((8, 12, 1, 1), (1, 12, 3, 3), 1, 0, 1, 2, (2, 4)),
    "3x3_ragged_last_group": ((10, 5, 3, 3), (2, 5, 4, 5), 1, 1, 1, 4, (3,)),
    "grouped_conv": ((8, 4, 3, 3), (1, 8, 5, 5), 1, 1, 2, 2, (2, 4)),
}


def _layer(name, seed=0):
    wshape, ishape, stride, pad, groups, gs, pers = CASES[name]
    rng = np.random.default_rng(seed)
    w = prune_random(wshape, 0.6, seed=seed)
    b = rng.standard_normal(wshape[0]).astype(np.float32)
    x = rng.standard_normal(ishape).astype(np.float32)
    ref = pruned_reference(x.astype(np.float64), w.astype(np.float64), stride, pad,
                           bias=b.astype(np.float64), relu=True, groups=groups)
    return w, b, x, ref, dict(stride=stride, padding=pad, groups=groups, group_size=gs), pers


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("slices", [1, 3])
def test_groups_sharing_a_block_compute_the_convolution_on_the_host(name, slices):
    w, b, x, ref, kw, pers = _layer(name)
    k = irprune.conv2d(w, x.shape, bias=b, relu=True, slices=min(slices, w.shape[1]),
                       cache=False, **kw)
    k.block = 32  # threads past the last pixel, in every group of the block
    for per in pers:
        k.groups_per_block = per
        (_, grid, block), = k.part_launches(x.shape[0])
        assert grid[1] == k.groups // per and block == (32, k.slices, per)
        y = run_on_host(k, x)
        assert not np.isnan(y).any(), f"{per} groups a block: outputs never written"
        assert np.max(np.abs(y - ref)) / max(1.0, np.max(np.abs(ref))) < 1e-5, per


def test_groups_per_block_in_a_kernel_of_several_parts(monkeypatch):
    """Each part has its own switch over its own groups: the count must divide each."""
    monkeypatch.setenv("IRPRUNE_MAX_PART_NNZ", "20")
    w = prune_random((16, 10, 1, 1), 0.5, seed=3)
    x = np.random.default_rng(1).standard_normal((1, 10, 3, 4)).astype(np.float32)
    k = irprune.conv2d(w, x.shape, group_size=2, cache=False)
    counts = [p.groups for p in k.parts]
    assert len(counts) > 1
    ref = pruned_reference(x.astype(np.float64), w.astype(np.float64), 1, 0, groups=1)
    for per in candidate_groups_per_block(k):
        k.groups_per_block = per
        assert np.max(np.abs(run_on_host(k, x) - ref)) < 1e-5, per
    assert candidate_groups_per_block(k) == [m for m in (1, 2, 4, 8)
                                             if all(c % m == 0 for c in counts)]


def test_the_group_index_is_block_y_times_block_z_plus_thread_z():
    w, b, x, ref, kw, _ = _layer("1x1_four_groups")
    k = irprune.conv2d(w, x.shape, bias=b, cache=False, **kw)
    pruned = k.asm["llvm-pruned"]
    # (LLVM adds nuw/nsw: the special registers' ranges bound the product)
    assert re.search(r"%irp\.group = add [a-z ]*i32 %irp\.group\.first, %irp\.group\.lane", pruned)
    assert re.search(r"%irp\.group\.first = mul [a-z ]*i32 %irp\.group\.block, %irp\.group\.count",
                     pruned)
    assert re.search(r"switch i32 %irp\.group,", pruned)
    for reg in ("ctaid.y", "ntid.z", "tid.z"):
        assert len(re.findall(rf"^declare [^\n]*@llvm\.nvvm\.read\.ptx\.sreg\.{re.escape(reg)}\(",
                              pruned, re.M)) == 1, reg
    ptx = k.asm["ptx"]
    assert "%ntid.z" in ptx and "%tid.z" in ptx


def test_shared_memory_holds_every_groups_partial_sums():
    w, b, x, ref, kw, _ = _layer("1x1_four_groups")
    k = irprune.conv2d(w, x.shape, slices=3, cache=False, **kw)
    k.block = 64
    one = k.shared_bytes
    k.groups_per_block = 4
    assert k.shared_bytes == 4 * one == 4 * 2 * kw["group_size"] * 64 * 4


def test_bad_groups_per_block_are_refused_in_one_line():
    w, b, x, ref, kw, _ = _layer("1x1_four_groups")
    k = irprune.conv2d(w, x.shape, cache=False, **kw)
    for bad, msg in [(3, "does not divide the 4 channel groups"), (0, "positive int"),
                     (2.0, "positive int")]:
        k.groups_per_block = bad
        with pytest.raises(ValidationError, match=msg):
            k.part_launches(1)
    k.groups_per_block, k.block = 4, 512
    with pytest.raises(ValidationError, match="groups_per_block 4 = 2048 threads"):
        k.part_launches(1)


def test_a_row_tile_kernel_keeps_one_group_a_block():
    from irprune.templates.conv2d_rows import conv2d_rows

    w = prune_random((8, 4, 3, 3), 0.5, seed=1)
    k = conv2d_rows.compile(w, (1, 4, 8, 8), padding=1, group_size=4, tile=(2, 2), cache=False)
    assert candidate_groups_per_block(k) == [1]
    assert {m for _, m in launch_shapes(k)} == {1}
    k.groups_per_block = 2
    with pytest.raises(ValidationError, match="row-tile kernel runs one channel group"):
        k.part_launches(1)


def test_launch_shapes_add_the_blocks_that_fit_each_count():
    w, b, x, ref, kw, _ = _layer("1x1_four_groups")
    k = irprune.conv2d(w, x.shape, cache=False, **kw)
    assert candidate_groups_per_block(k) == [1, 2, 4]  # 4 groups
    shapes = launch_shapes(k)
    blocks = [64, 96, 128, 160, 192, 224, 256]  # irprune.tune.BLOCKS
    assert [s for s in shapes if s[1] == 1] == [(b, 1) for b in blocks]
    assert [s for s in shapes if s[1] == 2] == [(b, 2) for b in [32] + blocks]
    assert [s for s in shapes if s[1] == 4] == [(b, 4) for b in [32] + blocks]
    # Registers bound the block: 1024 threads x 128 registers do not fit.
    k.stats["ptxas"] = {"registers": 128}  # what ptxas reports once it has run
    assert (256, 4) not in launch_shapes(k) and (128, 4) in launch_shapes(k)
    assert (160, 4) not in launch_shapes(k)  # 640 threads x 128 registers
    assert launch_shapes(k, groups_per_block=(1,)) == [(b, 1) for b in blocks]


def test_a_block_over_what_the_loaded_function_allows_is_refused():
    """The driver's limit for the loaded function (its registers) bounds every launch."""
    from collections import namedtuple

    from irprune.launch import _check_threads

    attrs = namedtuple("FuncAttr", "regs maxthreads")
    fn = type("Fn", (), {"attrs": attrs(regs=128, maxthreads=512)})()
    _check_threads(fn, (128, 1, 4))
    with pytest.raises(ValidationError, match=r"128 x 2 x 4 = 1024 threads, but the kernel's "
                                              r"128 registers a thread allow at most 512"):
        _check_threads(fn, (128, 2, 4))


def test_groups_per_block_candidates_keep_only_divisors():
    w, b, x, ref, kw, _ = _layer("1x1_four_groups")
    k = irprune.conv2d(w, x.shape, cache=False, **kw)
    assert candidate_groups_per_block(k, (3, 8)) == []   # neither divides 4 groups
    assert launch_shapes(k, groups_per_block=(3, 8)) == []
    assert candidate_groups_per_block(k, (2, 3)) == [2]
