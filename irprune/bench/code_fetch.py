"""The GPU's rate of fetching code that only one SM runs: the bound of weights kept as code.

irprune turns each nonzero weight into one FFMA with an immediate, 16 bytes of SASS. At
batch 1 a channel group's code is run by the one or two warps of its pixels, on one SM, so
the SMs fetch distinct code from L2, and that fetch, not the arithmetic nor the bytes of the
tensors, sets the time of the layers with many nonzeros and few pixels (docs/perf-log.md,
"The large layers wait for their code"). This module measures it the way those kernels
meet it: one block of one warp per SM, each block its own straight-line stream of
``LENGTH`` FFMAs with immediates on 8 independent accumulators (no loads, no dependency
stalls), the stream chosen by the block index through a jump table.

The bench's **code floor** of a layer is then one empty launch plus its nonzeros' SASS
bytes at that rate: a bound for any kernel that keeps every nonzero as one instruction and
runs it once per warp of pixels, as irprune's do (most layers' loads add to it).
"""

from __future__ import annotations

import struct

#: Bytes of SASS per instruction (sm_70 onwards): one nonzero's FFMA.
SASS_BYTES = 16
#: FFMAs per stream: 16 KB of code, larger than an SM's first-level instruction cache.
LENGTH = 1024
#: Independent accumulators per stream: enough that a warp issues an FFMA every cycle.
ACCUMULATORS = 8


def _f32(v: float) -> str:
    """A float as a PTX immediate (exact bits)."""
    return "0f%08X" % struct.unpack("<I", struct.pack("<f", v))[0]


def fetch_ptx(streams: int, length: int = LENGTH, arch: str = "sm_90") -> str:
    """PTX of ``fetch(out, x)``: block b runs stream b (of ``streams``), ``length`` FFMAs with
    immediates, and its threads store their sum to ``out[global thread]`` (so that nothing is
    dead code); and ``empty(out, x)``, the same launch doing nothing."""
    if streams < 1 or length < 1:
        raise ValueError(f"streams and length must be positive, got {streams} and {length}")
    acc = ACCUMULATORS
    out = [".version 7.8", f".target {arch}", ".address_size 64", "",
           ".visible .entry fetch(.param .u64 out, .param .f32 x)", "{",
           "\t.reg .b32 %r<8>;", "\t.reg .b64 %rd<6>;", f"\t.reg .f32 %a<{acc}>;",
           "\t.reg .f32 %x;", "\t.reg .f32 %s;",
           "\tld.param.f32 %x, [x];", "\tmov.u32 %r1, %ctaid.x;"]
    out += [f"\tadd.f32 %a{a}, %x, {_f32(0.001 * (a + 1))};" for a in range(acc)]
    out += ["\tts: .branchtargets " + ", ".join(f"$S{t}" for t in range(streams)) + ";",
            "\tbrx.idx %r1, ts;"]
    seed = 12345
    for t in range(streams):
        out.append(f"$S{t}:")
        for i in range(length):
            # Distinct pseudo-random weights: no two streams share code, none folds away.
            seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
            a = i % acc
            out.append(f"\tfma.rn.f32 %a{a}, %a{a}, {_f32((seed / 0x7FFFFFFF - 0.5) * 0.01)}, %x;")
        out.append("\tbra.uni $END;")
    out += ["$END:", "\tadd.f32 %s, %a0, %a1;"]
    out += [f"\tadd.f32 %s, %s, %a{a};" for a in range(2, acc)]
    out += ["\tmov.u32 %r2, %ntid.x;", "\tmov.u32 %r3, %tid.x;", "\tmad.lo.u32 %r4, %r1, %r2, %r3;",
            "\tld.param.u64 %rd1, [out];", "\tcvta.to.global.u64 %rd2, %rd1;",
            "\tmul.wide.u32 %rd3, %r4, 4;", "\tadd.s64 %rd4, %rd2, %rd3;",
            "\tst.global.f32 [%rd4], %s;", "\tret;", "}", "",
            ".visible .entry empty(.param .u64 out, .param .f32 x)", "{", "\tret;", "}", ""]
    return "\n".join(out)


def code_floor_us(nnz: int, empty_us: float, rate: float) -> float:
    """One empty launch plus ``nnz`` FFMAs of SASS fetched at ``rate`` bytes/s, in us."""
    return empty_us + SASS_BYTES * nnz / rate * 1e6


def fetch_rate(timing: dict) -> float:
    """Bytes/s from :func:`measure_fetch`'s times: every SM's stream over the time the fetch
    kernel took beyond the empty one."""
    busy = timing["fetch_us"] - timing["empty_us"]
    if busy <= 0:
        raise ValueError(f"the fetch kernel ({timing['fetch_us']} us) was not slower than the "
                         f"empty one ({timing['empty_us']} us): nothing was measured")
    return timing["sms"] * timing["length"] * SASS_BYTES / (busy * 1e-6)


def measure_fetch(length: int = LENGTH, target_ms: float = 20.0, repeats: int = 7) -> dict:
    """Time the fetch and the empty kernel on the current GPU (one block of 32 threads per SM,
    on PyTorch's current stream, through the bench's CUDA-graph timing). Needs a GPU."""
    import numpy as np
    import torch
    from cuda.core import LaunchConfig, ObjectCode, launch
    from numba import cuda

    from ..codegen import run_ptxas
    from ..launch import _stream
    from ..tune import device_arch
    from .timing import measure

    ctx = cuda.current_context()
    sms = ctx.device.MULTIPROCESSOR_COUNT
    arch = device_arch()
    cubin = run_ptxas(fetch_ptx(sms, length, arch), arch).cubin
    module = ctx.create_module_image(ObjectCode.from_cubin(cubin))
    out = torch.empty(sms * 32, device="cuda")
    config = LaunchConfig(grid=(sms, 1, 1), block=(32, 1, 1))
    times = {}
    for name in ("fetch", "empty"):
        fn = module.get_function(name).kernel

        def run(i, fn=fn):
            stream = _stream(int(torch.cuda.current_stream().cuda_stream))
            launch(stream, config, fn, out.data_ptr(), np.float32(1.0))

        times[name + "_us"] = measure(run, target_ms=target_ms, repeats=repeats).median_us
    torch.cuda.synchronize()
    return dict(times, sms=sms, length=length, arch=arch)
