"""Kernels launched early (programmatic dependent launch) still read what the kernel before wrote.

irprune launches a kernel whose code waits for the grid before it
(irprune.passes.grid_dependency_wait) with programmatic stream serialization, so its blocks
may be scheduled before that grid has finished. These tests chain two layers, the second
reading the first's output, with a new input every time, eagerly and as CUDA-graph replays,
and compare every result with float64. The first layer runs as compiled, and rebuilt to let
the second launch as soon as it starts: without its wait the second layer then reads its input
before it is written (tools/experiments/pdl_hazard.py measured that it does). The second layer
is an immediate-weight kernel, or a table kernel with slices: a zeroing part that lets it
launch at once, and a table part that reads its input before its wait and adds into the
output after it (irprune.zero_part).
"""

from __future__ import annotations

import copy
import dataclasses

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.gpu

import irprune  # noqa: E402
from irprune.launch import uses_dependent_launch  # noqa: E402
from irprune.reference import prune_random  # noqa: E402
from irprune.table_kernel import compile_table_conv2d  # noqa: E402
from irprune.table_layout import TableConfig  # noqa: E402

RTOL = 1e-5


def _chain(table=False):
    """A: 16 -> 64, 3x3 on 56x56 (the longer kernel); B: 64 -> 8, 1x1, reading A's output
    (with ``table``, a table kernel of 4 slices and its zeroing part)."""
    wa = prune_random((64, 16, 3, 3), 0.9, seed=21)
    wb = prune_random((8, 64, 1, 1), 0.5, seed=22)
    a = irprune.conv2d(wa, (1, 16, 56, 56), padding=1, cache=False)
    if table:
        b = compile_table_conv2d(wb, (1, 64, 56, 56), TableConfig(8, 4, 128), cache=False,
                                 block=128, assemble=True)
        assert len(b.parts) == 2 and not b.zero_output  # the zeroing part, then the table
    else:
        b = irprune.conv2d(wb, (1, 64, 56, 56), cache=False)
    ref = lambda x: torch.nn.functional.conv2d(  # noqa: E731
        torch.nn.functional.conv2d(x.double(), torch.from_numpy(wa).double().cuda(), padding=1),
        torch.from_numpy(wb).double().cuda())
    return a, b, ref


def _triggering(kernel):
    """``kernel`` rebuilt to let the kernel after it launch as soon as it starts
    (``griddepcontrol.launch_dependents`` right after its wait), as other libraries' kernels
    may: the next kernel's blocks then run while this one still writes, and only their wait
    keeps them from reading its output early (tools/experiments/pdl_hazard.py)."""
    k = copy.copy(kernel)
    k.parts = [dataclasses.replace(p, ptx=p.ptx.replace(
        "griddepcontrol.wait;", "griddepcontrol.wait;\n\tgriddepcontrol.launch_dependents;"),
        _ptxas=None) for p in kernel.parts]
    assert all("launch_dependents" in p.ptx for p in k.parts)
    k._loaded, k._launch_memo = {}, {}
    return k


def _rel(got, ref) -> float:
    return float((got.double() - ref).abs().max() / ref.abs().max())


def test_kernels_launch_early_where_the_gpu_can():
    if torch.cuda.get_device_capability()[0] < 9:
        pytest.skip("programmatic dependent launch needs sm_90 or newer")
    a, b, _ = _chain()
    assert a.cpu == b.cpu == "sm_90"
    assert uses_dependent_launch(a) and uses_dependent_launch(b)
    assert uses_dependent_launch(_chain(table=True)[1])


def _inputs(early, table):
    """(a, b, mid, xs, refs): the chain (A rebuilt to trigger early with ``early``; B a table
    kernel with ``table``), the buffer between its layers, 8 inputs and their float64
    results."""
    a, b, ref = _chain(table)
    xs = [torch.randn(1, 16, 56, 56, device="cuda") for _ in range(8)]
    return (_triggering(a) if early else a), b, torch.empty(1, 64, 56, 56, device="cuda"), xs, \
        [ref(x) for x in xs]


def _run(a, b, mid, xs, outs):
    """A then B for each output, input ``i % 8``: one buffer in the middle, rewritten every time."""
    for i, out in enumerate(outs):
        a(xs[i % len(xs)], out=mid)
        b(mid, out=out)


def _every_chain(test):
    """Each chain: A as compiled or triggering early, B immediate or a sliced table kernel."""
    test = pytest.mark.parametrize("early", [False, True],
                                   ids=["a-as-compiled", "a-triggers-early"])(test)
    return pytest.mark.parametrize("table", [False, True], ids=["b-immediate", "b-table"])(test)


@_every_chain
def test_a_chain_reads_what_the_kernel_before_wrote(early, table):
    a, b, mid, xs, refs = _inputs(early, table)
    outs = [torch.full((1, 8, 56, 56), float("nan"), device="cuda") for _ in range(64)]
    _run(a, b, mid, xs, outs)
    torch.cuda.synchronize()
    worst = max(_rel(out, refs[i % 8]) for i, out in enumerate(outs))
    assert worst < RTOL


@_every_chain
def test_a_chain_in_a_cuda_graph_reads_what_the_kernel_before_wrote(early, table):
    a, b, mid, xs, refs = _inputs(early, table)
    outs = [torch.empty(1, 8, 56, 56, device="cuda") for _ in range(8)]
    _run(a, b, mid, xs, outs)  # warm-up outside the capture (loads the modules)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        with torch.cuda.graph(g, stream=s):
            _run(a, b, mid, xs, outs)
    for _ in range(5):
        for o in outs:
            o.fill_(float("nan"))
        g.replay()
        torch.cuda.synchronize()
        assert max(_rel(o, r) for o, r in zip(outs, refs)) < RTOL
