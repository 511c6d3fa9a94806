"""Experiment: how fast can the SMs fetch a straight-line stream of FFMA-with-immediate code?

irprune's weights are immediates: 16 bytes of SASS per nonzero that every SM running a
channel group fetches from L2. This measures the fetch rate without any load: a kernel of
``T`` distinct code streams, each ``L`` FFMAs with immediates on 8 independent
accumulators (no dependency stalls), the stream a warp runs chosen at run time:

    stream = (warp index in the block) % S + (blockIdx.x % G) * S

so a block runs ``S`` distinct streams (``W`` warps each) and the grid's blocks cycle over
``G`` sets of them (G = 1: every SM fetches the same addresses). Sweeps:

- ``spread``: every block its own code (G = blocks), 8-128 blocks of one warp: does the rate
  grow with the SMs that fetch (a per-SM limit) or stay put (a limit the SMs share)?
- ``share``: 128 blocks over G = 1-64 sets of code: what fetching the same addresses buys;
- ``streams``: 32 blocks of S = 1-4 distinct streams (1 or 2 warps each): do more distinct
  streams in flight on an SM fetch faster?
- ``same``: every SM S = 1-16 streams, the same addresses on all SMs.

Reported: time per launch (20 launches captured in a CUDA graph, median of 7 replays; the
same grid's empty kernel timed alike and subtracted), bytes of code fetched per SM per cycle
at the device's SM clock (S x L x 16 bytes a block, one fetch per stream and SM assumed),
that rate over the SMs (fetched_gbs), and distinct code bytes per second (distinct_gbs).

    python3 fetch_rate.py ptx DIR     # CPU: write and assemble the kernels (ptxas) into DIR
    python3 fetch_rate.py DIR         # GPU: run the sweeps; $OUT/fetch-rate.json
"""
import json, os, sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from irprune.bench.code_fetch import _f32 as f32hex  # noqa: E402  (the bench's PTX immediates)

L = 1024          # FFMAs per stream (16 KB of SASS)
STREAMS = (1, 8, 16, 64, 128)  # kernels compiled with this many distinct streams
ACC = 8


def ptx(T: int) -> str:
    """A kernel of T streams of L FFMAs each; params: out, x, S, G."""
    lines = [".version 8.0", ".target sm_90", ".address_size 64", "",
             ".visible .entry fetch(.param .u64 out, .param .f32 x, .param .u32 S, .param .u32 G)",
             "{", "\t.reg .pred %p<4>;", "\t.reg .b32 %r<16>;", "\t.reg .b64 %rd<8>;",
             f"\t.reg .f32 %a<{ACC}>;", "\t.reg .f32 %x;", "\t.reg .f32 %s;",
             "\tld.param.f32 %x, [x];", "\tld.param.u32 %r1, [S];", "\tld.param.u32 %r2, [G];",
             "\tmov.u32 %r3, %tid.x;", "\tshr.u32 %r4, %r3, 5;", "\trem.u32 %r5, %r4, %r1;",
             "\tmov.u32 %r6, %ctaid.x;", "\trem.u32 %r7, %r6, %r2;", "\tmad.lo.u32 %r8, %r7, %r1, %r5;",
             ]
    for a in range(ACC):
        lines.append(f"\tadd.f32 %a{a}, %x, {f32hex(0.001 * (a + 1))};")
    targets = ", ".join(f"$S{t}" for t in range(T))
    lines += [f"\tts: .branchtargets {targets};", "\tbrx.idx %r8, ts;"]
    rng = 12345
    for t in range(T):
        lines.append(f"$S{t}:")
        for i in range(L):
            rng = (rng * 1103515245 + 12345) & 0x7FFFFFFF
            w = (rng / 0x7FFFFFFF - 0.5) * 0.01
            a = i % ACC
            lines.append(f"\tfma.rn.f32 %a{a}, %a{a}, {f32hex(w)}, %x;")
        lines.append("\tbra.uni $END;")
    lines.append("$END:")
    lines.append("\tadd.f32 %s, %a0, %a1;")
    for a in range(2, ACC):
        lines.append(f"\tadd.f32 %s, %s, %a{a};")
    lines += ["\tmov.u32 %r9, %ntid.x;", "\tmad.lo.u32 %r10, %r6, %r9, %r3;",
              "\tld.param.u64 %rd1, [out];", "\tcvta.to.global.u64 %rd2, %rd1;",
              "\tmul.wide.u32 %rd3, %r10, 4;", "\tadd.s64 %rd4, %rd2, %rd3;",
              "\tst.global.f32 [%rd4], %s;", "\tret;", "}"]
    lines += ["", ".visible .entry empty(.param .u64 out, .param .f32 x, .param .u32 S, .param .u32 G)",
              "{", "\tret;", "}"]
    return "\n".join(lines) + "\n"


def build(out_dir: str):
    os.makedirs(out_dir, exist_ok=True)
    from irprune.codegen import run_ptxas
    for T in STREAMS:
        r = run_ptxas(ptx(T), "sm_90")
        open(os.path.join(out_dir, f"fetch{T}.cubin"), "wb").write(r.cubin)
        print(T, "streams:", r.registers, "registers,", len(r.cubin), "bytes", flush=True)


def run(cubins: str):
    import cupy as cp
    import numpy as np
    mods = {T: cp.RawModule(path=os.path.join(cubins, f"fetch{T}.cubin")) for T in STREAMS}
    fns = {T: m.get_function("fetch") for T, m in mods.items()}
    empty = mods[STREAMS[0]].get_function("empty")
    dev = cp.cuda.Device()
    clock_khz = cp.cuda.runtime.getDeviceProperties(dev.id)["clockRate"]
    sms = cp.cuda.runtime.getDeviceProperties(dev.id)["multiProcessorCount"]
    out = cp.zeros(sms * 16 * 2 * 32 * 2, dtype=cp.float32)
    start, stop = cp.cuda.Event(), cp.cuda.Event()
    stream = cp.cuda.Stream(non_blocking=True)

    def time_us(fn, grid, block, S, G, launches=20, repeats=7):
        """Median us per launch of ``launches`` launches captured in one CUDA graph (the host's
        launch cost, ~5 us through cupy, would hide the kernels otherwise)."""
        args = (out, np.float32(1.0), np.uint32(S), np.uint32(G))
        with stream:
            stream.begin_capture()
            for _ in range(launches):
                fn((grid,), (block,), args)
            graph = stream.end_capture()
        graph.upload(stream)
        for _ in range(3):
            graph.launch(stream)
        ts = []
        for _ in range(repeats):
            start.record(stream)
            graph.launch(stream)
            stop.record(stream)
            stop.synchronize()
            ts.append(cp.cuda.get_elapsed_time(start, stop) * 1000 / launches)
        return sorted(ts)[len(ts) // 2]

    rows = []

    def case(sweep, grid, S, W, G):
        T = S * G
        fn = fns[min(t for t in STREAMS if t >= T)]
        block = S * W * 32
        t = time_us(fn, grid, block, S, G)
        t0 = time_us(empty, grid, block, S, G)
        busy = max(t - t0, 1e-3)
        per_sm = S * L * 16  # bytes of code each block fetches
        row = dict(sweep=sweep, blocks=grid, streams_per_block=S, warps_per_stream=W, sets=G,
                   distinct_kb=T * L * 16 // 1024, us=round(t, 3), empty_us=round(t0, 3),
                   bytes_per_sm_cycle=round(per_sm / (busy * 1e-6 * clock_khz * 1e3), 2),
                   fetched_gbs=round(min(grid, sms) * per_sm / (busy * 1e-6) / 1e9, 1),
                   distinct_gbs=round(T * L * 16 / (busy * 1e-6) / 1e9, 1))
        rows.append(row)
        print(json.dumps(row), flush=True)

    # Every block its own code: does the rate grow with the SMs fetching (per-SM limit) or
    # stay put (a limit the SMs share)?
    for n in (8, 16, 32, 64, 128):
        case("spread", n, 1, 1, n)
    case("spread", 128, 1, 2, 128)
    # 128 blocks over G sets of code: what sharing the addresses buys.
    for G in (1, 2, 4, 8, 16, 32, 64):
        case("share", 128, 1, 1, G)
    # Several distinct streams on each of 32 SMs (32 x S distinct).
    for S in (1, 2, 4):
        for W in (1, 2):
            case("streams", 32, S, W, 32)
    # The first sweep's sets, timed without the launch cost hiding them.
    for S in (1, 2, 4, 8, 16):
        case("same", sms, S, 1, 1)
    json.dump(dict(clock_khz=clock_khz, sms=sms, L=L, rows=rows),
              open(os.path.join(os.environ.get("OUT", "."), "fetch-rate.json"), "w"), indent=1)


if __name__ == "__main__":
    if sys.argv[1] == "ptx":
        build(sys.argv[2])
    else:
        run(sys.argv[1])
