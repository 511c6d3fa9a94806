"""The code-fetch kernel and the code floor (CPU: the PTX, ptxas, the arithmetic)."""

from __future__ import annotations

import re

import pytest

from irprune.bench.code_fetch import (SASS_BYTES, code_floor_us, fetch_ptx, fetch_rate)
from irprune.bench.runner import MODELS, model_record


def test_each_block_runs_a_stream_of_its_own():
    ptx = fetch_ptx(3, 40)
    # a jump table over the three streams, chosen by the block index
    assert "brx.idx %r1, ts;" in ptx and "ts: .branchtargets $S0, $S1, $S2;" in ptx
    assert "mov.u32 %r1, %ctaid.x;" in ptx
    streams = re.split(r"^\$S\d+:$", ptx.split("$END:")[0], flags=re.M)[1:]
    assert len(streams) == 3
    imms = []
    for s in streams:
        fmas = re.findall(r"fma\.rn\.f32 %a\d, %a\d, (0f[0-9A-F]{8}), %x;", s)
        assert len(fmas) == 40
        imms.append(tuple(fmas))
    assert len(set(imms)) == 3  # no two streams share their code
    # no load: the stream is all the kernel fetches
    assert "ld.global" not in ptx
    assert ".visible .entry empty(" in ptx


@pytest.mark.ptxas
def test_the_ffmas_keep_their_immediates_after_ptxas():
    from irprune.codegen import run_ptxas

    small = run_ptxas(fetch_ptx(2, 64), "sm_90")
    large = run_ptxas(fetch_ptx(2, 1088), "sm_90")
    # 1024 more FFMAs a stream: 2 x 1024 x 16 bytes more SASS (none folded or merged)
    grown = large.code_bytes - small.code_bytes
    assert 2 * 1024 * SASS_BYTES <= grown < 2 * 1024 * SASS_BYTES * 1.05
    assert small.spill_stores == 0


def test_rate_and_code_floor():
    t = {"fetch_us": 4.0, "empty_us": 1.0, "sms": 100, "length": 1024}
    rate = fetch_rate(t)
    assert rate == pytest.approx(100 * 1024 * 16 / 3e-6)
    # 1,000,000 nonzeros at 16 bytes: 16 MB at that rate, plus the empty launch
    assert code_floor_us(1_000_000, 1.0, rate) == pytest.approx(1.0 + 16e6 / rate * 1e6)
    with pytest.raises(ValueError, match="not slower than the empty one"):
        fetch_rate(dict(t, fetch_us=1.0))
    with pytest.raises(ValueError, match="positive"):
        fetch_ptx(0)


def test_model_records():
    assert MODELS == ("floor", "code_floor")
    base = {"impl": "floor", "nnz": 1000, "bytes": 6000, "median_us": None, "status": "ok"}
    floor = model_record(base, 2.0, 1e9, None)
    assert floor["median_us"] == pytest.approx(2.0 + 10_000 / 1e9 * 1e6) and floor["method"] == "model"
    code = model_record(dict(base, impl="code_floor"), 2.0, 1e9, 16e9)
    assert code["median_us"] == pytest.approx(2.0 + 1.0) and code["status"] == "ok"
    missing = model_record(dict(base, impl="code_floor"), 2.0, 1e9, None)
    assert missing["status"] == "error" and missing["median_us"] is None
    assert "not measured" in missing["error"]
