"""Size limits: layers split into parts of bounded nonzeros, refused past the layer limit."""

from __future__ import annotations

import re

import numpy as np
import pytest

from irprune.errors import PtxasError, ValidationError
from irprune.host_exec import run_on_host
from irprune.limits import MAX_CHANNEL_WEIGHTS, split_groups
from irprune.reference import conv2d_reference, prune_random
from irprune.templates.conv2d import conv2d_nchw


def test_split_groups_packs_consecutive_groups_under_the_limit():
    assert split_groups([3, 3, 3, 3], 6) == [(0, 2), (2, 2)]
    assert split_groups([3, 3, 3, 3], 100) == [(0, 4)]
    # A group over the limit is a part of its own; zero-nonzero groups ride along.
    assert split_groups([2, 9, 0, 1], 4) == [(0, 1), (1, 1), (2, 2)]
    assert split_groups([0, 0], 1) == [(0, 2)]


def test_a_split_layer_computes_the_convolution(monkeypatch):
    monkeypatch.setenv("IRPRUNE_MAX_PART_NNZ", "40")
    rng = np.random.default_rng(1)
    w = prune_random((10, 3, 3, 3), 0.5, seed=2)
    b = rng.standard_normal(10).astype(np.float32)
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    k = conv2d_nchw.compile(w, x.shape, 1, 1, bias=b, cache=False, group_size=3)
    assert len(k.parts) >= 3 and k.stats["parts"] == len(k.parts)
    assert sum(p.groups for p in k.parts) == k.groups == 4  # 3+3+3+1 channels
    assert [p.first_group for p in k.parts] == sorted(p.first_group for p in k.parts)
    assert all(p.nnz <= 40 or p.groups == 1 for p in k.parts)
    # Every nonzero weight is one FMA somewhere; the joined PTX names each part.
    assert k.stats["fma_ptx"] == int(np.count_nonzero(w))
    assert len(re.findall(r"^// ---- part \d+", k.asm["ptx"], flags=re.M)) == len(k.parts)
    y = run_on_host(k, x)
    ref = conv2d_reference(x, w, 1, 1, b)
    assert not np.isnan(y).any(), "a part left its channels unwritten"
    assert np.max(np.abs(y - ref)) / np.max(np.abs(ref)) < 1e-5


@pytest.mark.ptxas
def test_every_part_is_assembled(monkeypatch):
    monkeypatch.setenv("IRPRUNE_MAX_PART_NNZ", "30")
    w = prune_random((8, 4, 3, 3), 0.6, seed=5)
    k = conv2d_nchw.compile(w, (1, 4, 6, 6), 1, 1, cache=False, group_size=2)
    res = k.ptxas()
    assert len(k.parts) > 1 and all(c[:4] == b"\x7fELF" for c in k.cubins)
    assert res.code_bytes == sum(len(c) for c in k.cubins) and k.cubin is None
    assert res.registers and res.log.count("---- part") == len(k.parts)


def test_a_layer_over_the_nonzero_limit_is_refused_before_compiling(monkeypatch):
    monkeypatch.setenv("IRPRUNE_MAX_NNZ", "100")
    w = prune_random((16, 8, 3, 3), 0.5, seed=0)  # 576 nonzeros
    with pytest.raises(ValidationError, match=r"576 nonzero weights.*IRPRUNE_MAX_NNZ"):
        conv2d_nchw.compile(w, (1, 8, 8, 8), 1, 1, cache=False)


def test_a_channel_too_wide_to_unroll_is_refused():
    C = MAX_CHANNEL_WEIGHTS // 9 + 1
    w = np.zeros((1, C, 3, 3), np.float32)
    w[0, 0, 0, 0] = 1
    with pytest.raises(ValidationError, match="MAX_CHANNEL_WEIGHTS"):
        conv2d_nchw.compile(w, (1, C, 3, 3), cache=False)


def test_a_bad_limit_setting_is_named(monkeypatch):
    monkeypatch.setenv("IRPRUNE_MAX_PART_NNZ", "lots")
    with pytest.raises(ValidationError, match="IRPRUNE_MAX_PART_NNZ"):
        conv2d_nchw.compile(prune_random((2, 1, 1, 1), 0.0), (1, 1, 2, 2), cache=False)


@pytest.mark.ptxas
def test_ptxas_past_its_time_limit_is_stopped_with_the_limit_named(monkeypatch):
    from irprune.codegen import run_ptxas

    k = conv2d_nchw.compile(prune_random((4, 2, 3, 3), 0.5), (1, 2, 6, 6), 1, 1, cache=False)
    monkeypatch.setenv("IRPRUNE_PTXAS_TIMEOUT", "0.001")
    with pytest.raises(PtxasError, match="IRPRUNE_PTXAS_TIMEOUT"):
        run_ptxas(k.parts[0].ptx)


def test_inspect_views_of_a_split_layer(monkeypatch):
    from irprune import inspect_views as views

    monkeypatch.setenv("IRPRUNE_MAX_PART_NNZ", "30")
    w = prune_random((8, 3, 3, 3), 0.5, seed=6)
    k = conv2d_nchw.compile(w, (1, 3, 6, 6), 1, 1, cache=False, group_size=2)
    assert len(k.parts) > 2
    kk, c, r, s = (int(i[0]) for i in np.nonzero(w[6:]))
    ch = views.weight_chain(k, kk + 6, c, r, s)  # a weight in a later part
    assert ch["group"] == 3 and ch["after_pruning"], ch
    assert "part 0 of" in views.diff(k)
    assert views.summary(k, with_ptxas=False)["parts"] == len(k.parts)


def test_compile_command_writes_each_part_of_a_split_layer(tmp_path, monkeypatch, capsys):
    from irprune.cli import main

    monkeypatch.setenv("IRPRUNE_MAX_PART_NNZ", "40")
    np.save(tmp_path / "w.npy", prune_random((8, 3, 3, 3), 0.5, seed=1))
    out = tmp_path / "layer.ptx"
    assert main(["compile", "--weights", str(tmp_path / "w.npy"), "--input-shape", "1,3,6,6",
                 "--padding", "1", "--group-size", "2", "-o", str(out)]) == 0
    parts = sorted(tmp_path.glob("layer.part*.ptx"))
    assert len(parts) > 1 and "split into" in capsys.readouterr().err
    assert all(p.read_text().count(".entry") == 1 for p in parts)


def test_grids_cuda_cannot_launch_are_refused():
    from irprune.limits import check_grid

    check_grid(10_000, 100)
    with pytest.raises(ValidationError, match="MAX_GRID_Y"):
        check_grid(10, 70_000)
    check_grid(2**31 - 1, 1)
    with pytest.raises(ValidationError, match="MAX_PIXELS"):
        check_grid(2**31, 1)
    w = np.zeros((70_000, 1, 1, 1), np.float32)
    w[0] = 1
    with pytest.raises(ValidationError, match="MAX_GRID_Y"):
        conv2d_nchw.compile(w, (1, 1, 2, 2), cache=False, group_size=1)
