"""A part's regions cut into shares compiled in several processes give, text for text, one process's code."""

from __future__ import annotations

import numpy as np
import pytest

import irprune.region_shares as rs
from irprune.errors import IrpruneError, PassError
from irprune.ir.textir import parse_module
from irprune.passes import parse_pipeline
from irprune.reference import prune_random
from irprune.templates.conv2d import conv2d_nchw
from irprune.worker import Worker


def _compile(monkeypatch, jobs: str, w, shape, **kw):
    monkeypatch.setenv("IRPRUNE_JOBS", jobs)
    return conv2d_nchw.compile(w, shape, 1, 1, cache=False, **kw)


@pytest.mark.parametrize("kw", [
    dict(group_size=2),                                             # 5 full groups + a ragged one
    dict(group_size=2, bias=np.linspace(-1, 1, 11).astype(np.float32), relu=True),
])
def test_shares_make_the_same_code_as_one_process(monkeypatch, kw):
    w = prune_random((11, 3, 3, 3), 0.6, seed=3)
    w[4:6] = 0.0  # a group with no nonzero at all
    monkeypatch.setattr(rs, "SHARE_MIN_NNZ", 8)
    one = _compile(monkeypatch, "1", w, (1, 3, 6, 7), **kw)
    three = _compile(monkeypatch, "3", w, (1, 3, 6, 7), **kw)
    assert one.stats["parts"] == three.stats["parts"] == 1
    assert (one.stats["shares"], three.stats["shares"]) == (1, 3)
    assert three.asm["ptx"] == one.asm["ptx"]
    assert three.asm["llvm-pruned"] == one.asm["llvm-pruned"]
    # Every stage, the region-local ones joined from the shares' texts when read.
    for stage in ("strip-zero-weights", "fold-weight-constants", "contract-fma", "llvm-cleanup"):
        assert three.asm[stage] == one.asm[stage], stage
    for key in ("weights_stripped", "accumulates_stripped", "regions"):
        assert (three.stats["passes"]["strip-zero-weights"][key]
                == one.stats["passes"]["strip-zero-weights"][key]), key
    assert three.stats["passes"]["strip-zero-weights"]["regions"] == 6
    assert three.stats["instructions_template"] == one.stats["instructions_template"]


def test_no_shares_below_the_threshold_or_without_workers():
    assert rs.share_count(rs.SHARE_MIN_NNZ - 1, 64, 16) == 1
    assert rs.share_count(3 * rs.SHARE_MIN_NNZ, 64, 2) == 2
    assert rs.share_count(3 * rs.SHARE_MIN_NNZ, 64, 16) == 3
    assert rs.share_count(100 * rs.SHARE_MIN_NNZ, 2, 16) == 2  # never more shares than regions
    assert rs.share_count(100 * rs.SHARE_MIN_NNZ, 64, 1) == 1


@pytest.mark.parametrize("regions,shares", [(1, 3), (5, 2), (32, 2), (7, 3), (4, 4)])
def test_share_bounds_cover_every_region_once(regions, shares):
    bounds = rs.share_bounds(regions, shares)
    covered = [i for first, count in bounds for i in range(first, first + count)]
    assert covered == list(range(regions))
    counts = [c for _, c in bounds]
    assert len(bounds) == min(regions, shares) and max(counts) - min(counts) <= 1


def test_the_head_is_the_region_local_passes_and_needs_strip():
    head, rest = rs.split_pipeline(parse_pipeline(
        "trace-weight-uses,strip-zero-weights,fold-weight-constants,contract-fma,llvm-cleanup,contract-fma"))
    assert [p.name for p in head] == ["trace-weight-uses", "strip-zero-weights",
                                      "fold-weight-constants", "contract-fma"]
    assert [p.name for p in rest] == ["llvm-cleanup", "contract-fma"]
    head, rest = rs.split_pipeline(parse_pipeline("trace-weight-uses,fold-weight-constants,llvm-cleanup"))
    assert head == [] and len(rest) == 3


def _share_modules(monkeypatch):
    """The stripped modules of shares (0, 2) and (2, 1) of a 3-region layer, by hand."""
    from irprune.parts import compile_share

    w = prune_random((6, 2, 3, 3), 0.5, seed=1)
    monkeypatch.setattr(rs, "SHARE_MIN_NNZ", 1)
    jobs = []
    import irprune.parts as parts

    real = parts.compile_part
    monkeypatch.setattr(parts, "compile_part", lambda job, helpers=None: jobs.append(job) or real(job))
    _compile(monkeypatch, "1", w, (1, 2, 5, 5), group_size=2)
    job = jobs[0]
    job.pipeline = "trace-weight-uses,strip-zero-weights"
    return [parse_module(compile_share(job, s).text) for s in ((0, 2), (2, 1))]


def test_join_refuses_overlapping_shares(monkeypatch):
    a, b = _share_modules(monkeypatch)
    joined = rs.join_shares([a, b])
    assert [g for g, _ in rs.dispatch_cases(joined.function())] == [0, 1, 2]
    a2, _ = _share_modules(monkeypatch)
    with pytest.raises(PassError, match="overlap or are out of order"):
        rs.join_shares([a2, a2])


def test_join_refuses_shares_of_different_kernels(monkeypatch):
    a, b = _share_modules(monkeypatch)
    b.function().header = b.function().header.replace("(", "(i32 %extra, ", 1)
    with pytest.raises(PassError, match="different headers"):
        rs.join_shares([a, b])


def test_a_worker_takes_one_call_and_an_unused_one_stops():
    with Worker(preload=("irprune.parts",)) as w:
        assert w.call("irprune.region_shares", "share_count", {"nnz": 0, "regions": 1, "workers": 1}) == 1
        with pytest.raises(IrpruneError, match="one call"):
            w.call("irprune.region_shares", "share_count", {"nnz": 0, "regions": 1, "workers": 1})
    idle = Worker()
    idle.close()
    assert idle._proc.returncode is not None
