"""Fuzzing (irprune.fuzz) driven by hypothesis: random geometries and sparsities, on the CPU.

Each example is refused exactly when its geometry is invalid, or compiles to a
kernel that passes the structural checks and, run on the CPU through the
pruned IR, matches the float64 reference. Sizes are bounded so that CI stays
fast; `irprune fuzz --device gpu` runs larger cases on a GPU.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from irprune.fuzz import FuzzCase, random_case, run_case


@st.composite
def cases(draw, max_weights: int = 3000, max_pixels: int = 300):
    R, S = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    C = draw(st.integers(1, 64))
    K = draw(st.integers(1, max(1, min(64, max_weights // (C * R * S)))))
    if K * C * R * S > max_weights:  # a wide kernel on many channels: fewer input channels
        C = max(1, max_weights // (K * R * S))
    groups = 1
    if draw(st.booleans()) and draw(st.booleans()):  # a quarter grouped, some depthwise
        if draw(st.booleans()):
            K = C  # depthwise candidate: groups = C
        common = [d for d in range(2, min(C, K) + 1) if C % d == 0 and K % d == 0]
        groups = draw(st.sampled_from(common)) if common else 1
    H = draw(st.integers(1, 24))
    W = draw(st.integers(1, max(1, min(24, max_pixels // H))))
    return FuzzCase(N=draw(st.integers(1, 4)), C=C, K=K, H=H, W=W, R=R, S=S,
                    stride=draw(st.integers(1, 3)), padding=draw(st.integers(0, 3)),
                    sparsity=draw(st.sampled_from([0.0, 1.0]) | st.floats(0, 1).map(lambda v: round(v, 3))),
                    bias=draw(st.booleans()), relu=draw(st.booleans()),
                    group_size=draw(st.none() | (st.integers(1, 64) if groups == 1 else st.sampled_from(
                        [d for d in range(1, K // groups + 1) if (K // groups) % d == 0]))),
                    seed=draw(st.integers(0, 2**30)), groups=groups, run_N=draw(st.integers(1, 4)))


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cases())
def test_random_layers_compile_and_compute_the_reference(case):
    r = run_case(case, device="host")
    assert r.status != "failed", f"{case.describe()}: {r.detail}"


def test_the_checks_can_fail():
    """A kernel compiled for other weights is reported as failed, not ok."""
    rng = np.random.default_rng(7)
    case = next(c for c in (random_case(rng, 2000, 200) for _ in range(50))
                if not c.should_be_refused() and 0.2 < c.sparsity < 0.9)
    other = FuzzCase(**{**case.__dict__, "seed": case.seed + 1})
    from irprune.fuzz import compile_case

    r = run_case(case, device="host", kernel=compile_case(other))
    assert r.status == "failed", r


def test_an_invalid_geometry_is_refused_with_one_line():
    case = FuzzCase(N=1, C=2, K=2, H=2, W=9, R=3, S=3, stride=1, padding=0, sparsity=0.5,
                    bias=False, relu=False, group_size=None, seed=0)
    r = run_case(case, device="host")
    assert r.status == "refused" and "smaller than the kernel" in r.detail
