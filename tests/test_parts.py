"""A split layer's parts compiled in worker processes give the same code as in-process."""

from __future__ import annotations

import numpy as np
import pytest

from irprune.errors import PassError
from irprune.parts import PartJob, compile_part, compile_parts
from irprune.reference import prune_random
from irprune.templates.conv2d import conv2d_nchw


def test_workers_and_in_process_agree(monkeypatch):
    w = prune_random((9, 3, 3, 3), 0.5, seed=8)
    monkeypatch.setenv("IRPRUNE_MAX_PART_NNZ", "30")
    monkeypatch.setenv("IRPRUNE_JOBS", "1")
    serial = conv2d_nchw.compile(w, (1, 3, 6, 7), 1, 1, group_size=2, cache=False)
    monkeypatch.setenv("IRPRUNE_JOBS", "2")
    parallel = conv2d_nchw.compile(w, (1, 3, 6, 7), 1, 1, group_size=2, cache=False)
    assert len(serial.parts) > 2
    assert [p.ptx for p in serial.parts] == [p.ptx for p in parallel.parts]
    assert serial.stats["passes"]["strip-zero-weights"]["weights_stripped"] == \
        parallel.stats["passes"]["strip-zero-weights"]["weights_stripped"] == int(np.sum(w == 0))


def test_a_worker_error_comes_back_typed():
    job = PartJob(template="this is not LLVM IR", ragged=None, regions=[(0, 1, False, {})],
                  weight_param="%w.4", weights=np.ones((2, 1, 1, 1), np.float32), constants={},
                  channel_strides={}, pipeline="trace-weight-uses,strip-zero-weights", cpu="sm_90")
    with pytest.raises(PassError, match="trace-weight-uses"):
        compile_part(job)
    with pytest.raises(PassError, match="trace-weight-uses"):
        compile_parts([job, job], workers=2)
