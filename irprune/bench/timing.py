"""Timing GPU work the way ../shared/BENCHMARKS.md says: CUDA-graph replays, median.

An operation is a Python callable that enqueues GPU work on PyTorch's current
stream. ``measure`` warms it up, picks how many launches fill about
``target_ms``, captures that many into a CUDA graph (falling back to timing
eager launches with events where capture fails), and returns the median time
of one launch over several replays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class Timing:
    median_us: float
    min_us: float
    max_us: float
    launches: int
    repeats: int
    method: str  # "graph" or "events"

    def to_dict(self) -> dict:
        return {"median_us": round(self.median_us, 3), "min_us": round(self.min_us, 3),
                "max_us": round(self.max_us, 3), "launches": self.launches,
                "repeats": self.repeats, "method": self.method}


def _events_us(torch, fn, n: int) -> float:
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for i in range(n):
        fn(i)
    b.record()
    b.synchronize()
    return a.elapsed_time(b) * 1000.0 / n


def measure(fn, rotation: int = 1, target_ms: float = 20.0, repeats: int = 7,
            max_launches: int = 2000, graph: bool = True) -> Timing:
    """Median time of ``fn(i)`` (i cycles over ``rotation`` input sets), in microseconds."""
    import torch

    def call(i):
        fn(i % rotation)

    for i in range(max(2, rotation)):  # warm-up: module load, autotuning, allocator
        call(i)
    torch.cuda.synchronize()
    one = _events_us(torch, call, max(1, rotation))
    if one > 50_000:  # a slow operation: a few launches tell enough
        times = sorted(_events_us(torch, call, 1) for _ in range(3))
        return Timing(times[1], times[0], times[-1], 1, 3, "events")
    n = int(min(max_launches, max(rotation, math.ceil(target_ms * 1000.0 / max(one, 1e-3)))))
    if graph:
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for i in range(rotation):
                    call(i)
            torch.cuda.current_stream().wait_stream(side)
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                for i in range(n):
                    call(i)
            g.replay()
            torch.cuda.synchronize()
            times = []
            for _ in range(repeats):
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                g.replay()
                b.record()
                b.synchronize()
                times.append(a.elapsed_time(b) * 1000.0 / n)
            del g
            times.sort()
            return Timing(times[len(times) // 2], times[0], times[-1], n, repeats, "graph")
        except Exception:  # capture not supported by this operation: time it eagerly
            torch.cuda.synchronize()
    times = sorted(_events_us(torch, call, n) for _ in range(repeats))
    return Timing(times[len(times) // 2], times[0], times[-1], n, repeats, "events")
