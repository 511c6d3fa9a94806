"""The table layout's arithmetic (irprune.table_layout): problems, tables, candidates, grid."""

from __future__ import annotations

import numpy as np
import pytest

from irprune.errors import ValidationError
from irprune.geometry import ConvGeometry
from irprune.reference import prune_random
from irprune.table_layout import (MAX_BLOCKS, MIN_BLOCKS, TableConfig, build_tables,
                                  candidate_configs, check_table_config, grid, optin_shared,
                                  input_copy_bytes, shared_bytes, table_problem)


def _geometry(K=32, C=16, H=5, stride=1, padding=0, R=1, groups=1, N=1):
    return ConvGeometry.from_weight((K, C // groups, R, R), (N, C, H, H), stride, padding, groups)


def _weights_from_tables(t, K, C, config):
    """The (K, C) weights the tables say, read back the way the kernel reads them."""
    tk, ns, tp = config.tile_k, config.slices, config.tile_p
    cs = C // ns
    out = np.zeros((K, C), np.float32)
    for b in range(t.pairs.shape[0]):
        s, tt = divmod(b, K // tk)
        for o in range(tk):
            for j in range(t.rowptr[b, o], t.rowptr[b, o + 1]):
                off, bits = t.pairs[b, 2 * j], t.pairs[b, 2 * j + 1:2 * j + 2]
                assert off % tp == 0
                out[tt * tk + o, s * cs + off // tp] += bits.view(np.float32)[0]
    return out


@pytest.mark.parametrize("config", [TableConfig(16, 1, 25), TableConfig(8, 4, 10),
                                    TableConfig(32, 2, 7)])
def test_tables_hold_every_nonzero_once_in_launch_order(config):
    w = prune_random((32, 16, 1, 1), 0.8, seed=config.slices)
    t = build_tables(w, config)
    assert t.pairs.shape[0] == (32 // config.tile_k) * config.slices == t.rowptr.shape[0]
    assert t.words % 4 == 0 and t.words >= 2 * int(t.rowptr[:, -1].max())
    assert np.array_equal(_weights_from_tables(t, 32, 16, config), w[:, :, 0, 0])
    # padding past a block's last pair is zero pairs, never read
    for b in range(t.pairs.shape[0]):
        assert not t.pairs[b, 2 * t.rowptr[b, -1]:].any()


def test_tables_of_all_zero_weights_are_empty_rows():
    t = build_tables(np.zeros((16, 8, 1, 1), np.float32), TableConfig(8, 2, 4))
    assert not t.rowptr.any() and t.words == 4 and t.bias.size == 0


@pytest.mark.parametrize("geometry,cpu,needle", [
    (dict(R=3, padding=1), "sm_90", "1x1 convolutions"),
    (dict(groups=2), "sm_90", "groups"),
    (dict(), "sm_75", "sm_80"),
])
def test_layers_the_layout_refuses(geometry, cpu, needle):
    assert needle in table_problem(_geometry(**geometry), cpu)


@pytest.mark.parametrize("config,relu,needle", [
    (TableConfig(12, 1, 25), False, "tile_k 12 must divide"),
    (TableConfig(16, 3, 25), False, "slices 3 must divide"),
    (TableConfig(16, 1, 300), False, "tile_p must be"),
    (TableConfig(16, 2, 25), True, "ReLU"),
])
def test_configurations_the_layout_refuses_in_one_line(config, relu, needle):
    with pytest.raises(ValidationError, match=needle) as e:
        check_table_config(_geometry(), "sm_90", relu, config)
    assert "\n" not in str(e.value)


def test_relu_is_fine_with_one_slice():
    assert check_table_config(_geometry(), "sm_90", True, TableConfig(16, 1, 25)) == \
        TableConfig(16, 1, 25)


def test_input_copies_are_as_wide_as_the_runs_length_allows():
    g = _geometry(H=5)  # 16 channels x 25 pixels
    assert input_copy_bytes(g, TableConfig(16, 1, 25)) == 16   # 16 x 25 = 400 values
    assert input_copy_bytes(g, TableConfig(16, 8, 25)) == 8    # 2 x 25 = 50: even, not 4k
    assert input_copy_bytes(g, TableConfig(16, 16, 25)) == 4   # 1 x 25: odd
    assert input_copy_bytes(g, TableConfig(16, 2, 10)) == 4    # pixel tiles: rows apart
    assert input_copy_bytes(_geometry(H=9, stride=2), TableConfig(16, 2, 25)) == 4


def test_strided_layers_stage_the_rows_they_read():
    from irprune.table_layout import row_pitch, staged_floats

    g = _geometry(C=16, H=14, stride=2)  # 14x14 -> 7x7: columns 0..12 of rows 0, 2, .., 12
    whole = TableConfig(16, 2, 49)
    assert row_pitch(g, whole) == 16 and staged_floats(g, whole) == 8 * 7 * 16
    assert input_copy_bytes(g, whole) == 16
    # the packed tile (8 channels of 49, to a multiple of 4), then the staged rows, which the
    # 15 floats that lanes past the last pixel read fall into
    assert shared_bytes(g, whole, 40) == 4 * (40 + 20 + 392 + 8 * 7 * 16)
    assert row_pitch(g, TableConfig(16, 2, 25)) == 0  # pixel tiles: value by value
    assert staged_floats(g, TableConfig(16, 2, 25)) == 0
    assert row_pitch(_geometry(H=8, stride=2), TableConfig(16, 2, 16)) == 8
    assert row_pitch(_geometry(H=7, stride=2), TableConfig(16, 2, 16)) == 0  # 49: rows unaligned
    assert row_pitch(_geometry(H=6, stride=2), TableConfig(16, 2, 9)) == 8  # 5 read, 3 over
    assert row_pitch(_geometry(H=8), TableConfig(16, 2, 64)) == 0  # stride 1: one run
    # a tiny strided tile: the overrun is larger than the staged rows
    tiny = _geometry(C=2, H=4, stride=2)  # 4x4 -> 2x2, one channel a slice, rows of 4 floats
    assert staged_floats(tiny, TableConfig(16, 2, 4)) == 2 * 4
    assert shared_bytes(tiny, TableConfig(16, 2, 4), 40) == 4 * (40 + 20 + 4 + 28)
    # a pair's offset is its channel's place in the packed tile, as on a stride-1 layer
    w = np.zeros((16, 16, 1, 1), np.float32)
    w[0, 3] = 1.0
    assert build_tables(w, whole).pairs[0, 0] == 3 * 49


def test_shared_bytes_and_grid():
    g = _geometry(N=3)
    c = TableConfig(16, 2, 10)
    # pairs, row offsets (16 + 1, to a multiple of 4), the input tile, and the 22 floats that
    # the lanes past the tile's 10 pixels read after its last row (no clamp in the template)
    assert shared_bytes(g, c, 40) == 4 * (40 + 20 + 8 * 10 + 22)
    assert shared_bytes(g, TableConfig(16, 2, 64), 40) == 4 * (40 + 20 + 8 * 64)
    assert grid(g, c, 3) == (2, 2, 3 * 3)
    with pytest.raises(ValidationError, match="65535"):
        grid(g, TableConfig(16, 2, 1), 3000)


def test_candidates_fit_the_block_count_and_shared_memory():
    g = ConvGeometry.from_weight((1024, 1024, 1, 1), (1, 1024, 7, 7))
    w = prune_random((1024, 1024, 1, 1), 0.9, seed=1)
    cands = candidate_configs(w, g, "sm_90")
    assert TableConfig(32, 4, 49) in cands and TableConfig(64, 8, 49) in cands
    for c in cands:
        blocks = (g.K // c.tile_k) * c.slices
        assert MIN_BLOCKS <= blocks <= MAX_BLOCKS
        assert shared_bytes(g, c, build_tables(w, c).words) <= optin_shared("sm_90")
    # a smaller shared memory rules out the largest input tiles
    assert len(candidate_configs(w, g, "sm_86")) < len(cands)
    assert candidate_configs(w, _geometry(R=3, padding=1), "sm_90") == []


@pytest.mark.parametrize("config", [TableConfig(4, 1, 16), TableConfig(8, 4, 9),
                                    TableConfig(16, 2, 32)])
def test_pair_of_finds_every_weight_where_build_tables_put_it(config):
    """pair_of (irprune inspect's view of a table kernel's weight) agrees with build_tables on
    every weight: a nonzero's pair holds its offset and bits, a zero has no pair."""
    import numpy as np

    from irprune.table_layout import build_tables, pair_of

    w = prune_random((32, 16, 1, 1), 0.8, seed=4)
    t = build_tables(w, config)
    seen = set()
    for k in range(32):
        for c in range(16):
            p = pair_of(w, config, k, c)
            assert p["block"] == p["grid"][1] * (32 // config.tile_k) + p["grid"][0]
            if w[k, c, 0, 0] == 0:
                assert p["slot"] is None and p["words"] is None
                continue
            lo, hi = t.rowptr[p["block"], p["row"]], t.rowptr[p["block"], p["row"] + 1]
            assert lo <= p["slot"] < hi
            assert t.pairs[p["block"], 2 * p["slot"]:2 * p["slot"] + 2].tolist() == p["words"]
            assert np.int32(p["words"][1]).view(np.float32) == w[k, c, 0, 0]
            seen.add((p["block"], p["slot"]))
    assert len(seen) == np.count_nonzero(w)  # one pair per nonzero, none shared
