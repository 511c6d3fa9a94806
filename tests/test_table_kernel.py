"""Table kernels (irprune.table_kernel): compiled here, checked on the CPU against float64."""

from __future__ import annotations

import re

import numpy as np
import pytest

from irprune.errors import ValidationError
from irprune.host_exec import run_on_host
from irprune.reference import conv2d_reference, prune_random
from irprune.table_kernel import compile_table_conv2d
from irprune.table_layout import TableConfig

RTOL = 1e-5

# (K, C, H, stride, config, block, batch, bias, relu): one slice (plain stores, ReLU) and
# several (atomics into a zeroed output); input copied 8 bytes at a time or 4; whole images or
# pixel tiles; stride 2; a block with fewer warps than output channels and one with more.
CASES = [
    (32, 16, 5, 1, TableConfig(16, 2, 25), 64, 1, False, False),
    (32, 16, 5, 1, TableConfig(16, 1, 25), 64, 2, True, True),
    (32, 16, 9, 2, TableConfig(8, 4, 10), 32, 2, True, False),
    (16, 12, 6, 1, TableConfig(16, 4, 36), 128, 1, False, False),
    (24, 8, 7, 1, TableConfig(8, 8, 49), 32, 1, True, False),
    # stride 2, the whole image a tile: the rows read staged whole (irprune.table_layout.
    # row_pitch), 8 and 16 floats apart, then packed into the tile; a 7x7 image's rows do not
    # start on 16 bytes, so that one copies value by value; a 4x4 image's staged rows are
    # fewer floats than the lanes past its 4 pixels read
    (32, 16, 8, 2, TableConfig(8, 2, 16), 64, 2, True, False),
    (16, 2, 4, 2, TableConfig(16, 2, 4), 64, 2, True, False),
    (16, 8, 14, 2, TableConfig(16, 2, 49), 64, 1, False, False),
    (16, 8, 14, 2, TableConfig(16, 1, 49), 32, 1, True, True),
    (16, 8, 7, 2, TableConfig(16, 2, 16), 64, 2, False, False),
]


def rel_err(out, ref) -> float:
    return float(np.abs(out - ref).max() / max(np.abs(ref).max(), 1e-30))


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[4].describe()}-b{c[6]}")
def test_table_kernels_compute_the_convolution(case):
    K, C, H, stride, config, block, n, bias, relu = case
    rng = np.random.default_rng(K * C + H)
    w = prune_random((K, C, 1, 1), 0.7, seed=H)
    b = rng.standard_normal(K).astype(np.float32) if bias else None
    k = compile_table_conv2d(w, (n, C, H, H), config, stride=stride, bias=b, relu=relu,
                             cache=False, block=block)
    x = rng.standard_normal((n, C, H, H)).astype(np.float32)
    y = run_on_host(k, x)
    assert not np.isnan(y).any(), "some outputs were never written"
    assert rel_err(y, conv2d_reference(x, w, stride, 0, b, relu)) < RTOL
    # several slices add into the output: zeroed by a part of the kernel's own (sm_90)
    assert len(k.parts) == (2 if config.slices > 1 else 1) and not k.zero_output


def test_stages_and_statistics():
    w = prune_random((32, 16, 1, 1), 0.9, seed=2)
    k = compile_table_conv2d(w, (1, 16, 5, 5), TableConfig(16, 2, 25), cache=False)
    assert list(k.asm)[:2] == ["nvvm", "llvm"]
    for stage in ("embed-tables", "async-copy", "contract-fma", "llvm-cleanup", "llvm-pruned",
                  "ptx", "zero-fill", "zero-fill-ptx"):
        assert stage in k.asm
    ptx = k.asm["ptx"]
    assert "cp.async.ca.shared.global" in ptx and "cp.async.wait_all" in ptx
    assert ".global .align 16 .b8 irp_table_pairs" in ptx
    # the kernel takes the input, the output and the batch, as every irprune kernel does
    entry = ptx[ptx.index(".entry"):ptx.index(")")]
    assert entry.count(".param") == 3
    assert "fma.rn.f32" in ptx and "atom.global.add.f32" in ptx
    assert k.stats["nnz"] == int(np.count_nonzero(w)) and k.input_alignment == 16
    # 8 channels x 25 pixels a slice: the input and the pairs are copied 16 bytes at a time
    assert re.search(r"cp\.async\.ca\.shared\.global \[%rd\d+\], \[%rd\d+\], 16;", ptx)
    assert not re.search(r"cp\.async\.ca\.shared\.global \[[^]]+\], \[[^]]+\], 8;", ptx)
    assert k.stats["passes"]["async-copy"]["copies"] > 0
    assert "table k16 s2 p25" in repr(k)


def test_tile_p_is_cut_to_the_image():
    w = prune_random((16, 8, 1, 1), 0.5, seed=1)
    k = compile_table_conv2d(w, (1, 8, 4, 4), TableConfig(16, 1, 256), cache=False)
    assert k.config.tile_p == 16 and k.part_launches(3)[0][1] == (1, 1, 3)


def test_refusals_are_one_line():
    w = prune_random((16, 8, 1, 1), 0.5, seed=1)
    for kwargs, needle in [
        (dict(relu=True, config=TableConfig(16, 2, 16)), "ReLU"),
        (dict(config=TableConfig(16, 1, 16), cpu="sm_75"), "sm_80"),
    ]:
        with pytest.raises(ValidationError, match=needle) as e:
            compile_table_conv2d(w, (1, 8, 4, 4), cache=False, **kwargs)
        assert "\n" not in str(e.value)
    w3 = prune_random((16, 8, 3, 3), 0.5, seed=1)
    with pytest.raises(ValidationError, match="1x1"):
        compile_table_conv2d(w3, (1, 8, 4, 4), TableConfig(16, 1, 4), cache=False)
    big = prune_random((16, 4096, 1, 1), 0.0, seed=1)
    with pytest.raises(ValidationError, match="shared memory"):
        compile_table_conv2d(big, (1, 4096, 4, 4), TableConfig(16, 1, 16), cache=False)


def test_threads_are_a_constant_of_the_code():
    """The block's thread count is compiled in (the copy loops' stride, no blockDim read): a
    bad count is refused when compiling, another count than the compiled one at launch."""
    w = prune_random((16, 8, 1, 1), 0.5, seed=1)
    for bad in (48, 0, 2048, 512.0):
        with pytest.raises(ValidationError, match="multiple of 32") as e:
            compile_table_conv2d(w, (1, 8, 4, 4), TableConfig(16, 1, 16), cache=False, block=bad)
        assert "\n" not in str(e.value)
    k = compile_table_conv2d(w, (1, 8, 4, 4), TableConfig(16, 1, 16), cache=False, block=64)
    assert "%ntid" not in k.asm["ptx"] and k.stats["threads"] == 64
    assert k.part_launches(1)[0][2] == (64, 1, 1)
    k.block = 128
    with pytest.raises(ValidationError, match="compiled for 64 threads"):
        k.part_launches(1)


def test_a_misaligned_input_is_refused():
    from irprune.launch import _check_input_alignment

    w = prune_random((16, 8, 1, 1), 0.5, seed=1)
    k = compile_table_conv2d(w, (1, 8, 4, 4), TableConfig(16, 2, 16), cache=False)
    assert k.input_alignment == 16  # 4 channels x 16 pixels a slice: 16-byte copies
    _check_input_alignment(k, 4096)
    with pytest.raises(ValidationError, match="16-byte aligned"):
        _check_input_alignment(k, 4104)


def test_the_disk_cache_gives_the_same_code(tmp_path):
    w = prune_random((16, 8, 1, 1), 0.5, seed=1)
    a = compile_table_conv2d(w, (1, 8, 4, 4), TableConfig(8, 2, 16), cache=tmp_path)
    b = compile_table_conv2d(w, (2, 8, 4, 4), TableConfig(8, 2, 16), cache=tmp_path)
    c = compile_table_conv2d(w, (2, 8, 4, 4), TableConfig(8, 2, 16), cache=tmp_path, block=256)
    assert b.stats["cached"] and not a.stats["cached"]
    assert not c.stats["cached"] and c.block == 256  # another thread count is another kernel
    assert b.asm["ptx"] == a.asm["ptx"] and b.geometry.N == 2
    x = np.random.default_rng(0).standard_normal((2, 8, 4, 4)).astype(np.float32)
    assert rel_err(run_on_host(b, x), conv2d_reference(x, w)) < RTOL
