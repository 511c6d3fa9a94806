"""Register budgets: a `.maxnreg` directive written into a kernel's PTX, cached beside the kernel.

On the CPU: the directive's text, the validation, the compile path (one
compiled kernel shared by every budget, each budget cached on its own), the
command line, and ptxas honouring the budget. The GPU times budgets in
tests/gpu/test_tune_gpu.py.
"""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from irprune.cache import DiskCache
from irprune.cli import main
from irprune.errors import CodegenError, ValidationError
from irprune.reference import prune_random
from irprune.register_budget import (MAX_REGISTERS, MIN_REGISTERS, check_max_registers,
                                     max_registers_of, set_max_registers)
from irprune.templates.conv2d import conv2d_nchw
from irprune.tune import candidate_register_caps

PTX = """.version 7.8
.target sm_90
.address_size 64

.visible .entry k(
\t.param .u64 .ptr .align 1 k_param_0,
\t.param .u64 k_param_1
)
{
\tret;
}
"""


def test_set_max_registers_inserts_replaces_and_removes_one_directive():
    with_64 = set_max_registers(PTX, 64)
    assert re.search(r"\)\n\.maxnreg 64\n\{", with_64), with_64
    assert max_registers_of(with_64) == 64
    with_128 = set_max_registers(with_64, 128)
    assert with_128.count(".maxnreg") == 1 and max_registers_of(with_128) == 128
    assert set_max_registers(with_128, None) == PTX
    assert max_registers_of(PTX) is None


def test_set_max_registers_needs_exactly_one_entry():
    with pytest.raises(CodegenError, match="2 kernel entries"):
        set_max_registers(PTX + PTX.split(".address_size 64\n")[1], 64)
    with pytest.raises(CodegenError, match="0 kernel entries"):
        set_max_registers(".version 7.8\n", 64)


@pytest.mark.parametrize("bad", [MIN_REGISTERS - 1, MAX_REGISTERS + 1, 64.5, "64", True, -1])
def test_a_budget_out_of_range_or_not_an_int_is_one_line(bad):
    with pytest.raises(ValidationError) as e:
        check_max_registers(bad)
    assert "max_registers" in str(e.value) and "\n" not in str(e.value)


def test_budgets_in_range_pass():
    assert [check_max_registers(v) for v in (None, MIN_REGISTERS, 64.0, MAX_REGISTERS)] == [
        None, MIN_REGISTERS, 64, MAX_REGISTERS]


def _one_by_one(channels=64, outputs=8):
    return prune_random((outputs, channels, 1, 1), 0.8, seed=5), (1, channels, 6, 6)


def test_a_budget_reuses_the_compiled_kernel_and_is_cached_on_its_own(tmp_path):
    w, shape = _one_by_one()
    cache = DiskCache(tmp_path)
    base = conv2d_nchw.compile(w, shape, group_size=4, cache=cache)
    capped = conv2d_nchw.compile(w, shape, group_size=4, cache=cache, max_registers=96)
    assert capped.max_registers == 96 and base.max_registers is None
    assert capped.asm["llvm-pruned"] == base.asm["llvm-pruned"]
    # The PTX differs by the one directive line and nothing else.
    assert capped.asm["ptx"].replace(".maxnreg 96\n", "") == base.asm["ptx"]
    assert capped.cache_key != base.cache_key
    again = conv2d_nchw.compile(w, shape, group_size=4, cache=cache, max_registers=96)
    assert again.stats["cached"] and again.max_registers == 96
    assert max_registers_of(again.asm["ptx"]) == 96
    assert max_registers_of(conv2d_nchw.compile(w, shape, group_size=4, cache=cache).asm["ptx"]) is None


def test_with_max_registers_without_a_cache_rewrites_only_the_ptx():
    w, shape = _one_by_one(16, 4)
    k = conv2d_nchw.compile(w, shape, group_size=4, cache=False)
    k64 = k.with_max_registers(64)
    assert k64 is not k and k64.stats["max_registers"] == 64 and k64.block == k.block
    assert k64.asm["llvm"] == k.asm["llvm"] and k64.asm["llvm-pruned"] == k.asm["llvm-pruned"]
    assert [max_registers_of(p.ptx) for p in k64.parts] == [64] * len(k.parts)
    assert k64.with_max_registers(None).asm["ptx"] == k.asm["ptx"]
    assert k.with_max_registers(None) is k


@pytest.mark.ptxas
def test_ptxas_honours_the_budget_and_spends_it_on_loads_in_flight():
    """A 1x1 kernel over many input channels: ptxas's own choice is few registers; a budget of
    128 lets it keep more input loads in flight (more registers), a budget of 24 caps it."""
    w, shape = _one_by_one(256, 8)
    k = conv2d_nchw.compile(w, shape, group_size=4, cache=False, assemble=True)
    own = k.registers
    assert own is not None and own < 128
    k128 = k.with_max_registers(128)
    k128.ptxas()
    assert own < k128.registers <= 128
    k24 = k.with_max_registers(24)
    k24.ptxas()
    assert k24.registers <= 24


def test_the_tuner_times_budgets_for_the_pixel_layout_only():
    assert candidate_register_caps(None) == [None, 64, 128]
    assert candidate_register_caps((4, 1)) == [None]


def test_cli_max_registers_reaches_the_ptx(tmp_path, capsys):
    w, _ = _one_by_one(8, 4)
    np.save(tmp_path / "w.npy", w)
    assert main(["compile", "--weights", str(tmp_path / "w.npy"), "--input-shape", "1,8,4,4",
                 "--max-registers", "64", "--emit", "ptx"]) == 0
    assert max_registers_of(capsys.readouterr().out) == 64
    p = subprocess.run([sys.executable, "-m", "irprune.cli", "compile", "--weights",
                        str(tmp_path / "w.npy"), "--input-shape", "1,8,4,4", "--max-registers",
                        "8"], capture_output=True, text=True)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "max_registers" in p.stderr


def test_cli_tile_and_slices_reach_the_kernel(tmp_path, capsys):
    w = prune_random((8, 4, 3, 3), 0.5, seed=3)
    np.save(tmp_path / "w.npy", w)
    args = ["compile", "--weights", str(tmp_path / "w.npy"), "--input-shape", "1,4,8,8",
            "--padding", "1", "--emit", "ptx", "--stats"]
    assert main([*args, "--tile", "2,2"]) == 0
    out = capsys.readouterr()
    assert "bar.sync" in out.out and '"tile": [\n    2,\n    2\n  ]' in out.err
    assert main([*args, "--slices", "2"]) == 0
    assert '"slices": 2' in capsys.readouterr().err
