"""Experiment: 1x1 layers with the input brought into shared memory by the copy engine.

The small 1x1 layers wait on their loads (docs/perf-log.md, a889d9e and 5811e96): a thread's
input loads are straight-line code whose round trips it can overlap only as far as its
registers allow, and the earlier shared-memory tile (pwtile_ab.py) filled the tile with the same
register-bound loads, then a barrier. Hopper's bulk copy (``cp.async.bulk``) moves a block's
input rows into shared memory without registers or instructions per value: one instruction
per input channel row, all issued at the start, each chunk of channels signalling an
``mbarrier`` when it lands. A thread then reads each channel of its pixel from the tile (one
shared load feeding its group's accumulators) as soon as that channel's chunk is in.

The kernels here are CUDA C++ written out per layer (weights as float literals, so ptxas makes
them FFMA immediates; one switch case of straight-line code per channel group, as irprune's
regions), compiled by NVRTC to a cubin. Variants: pixels a block ``tp`` (one thread each),
channel groups of ``g`` outputs, ``m`` groups a block (threadIdx.z), channels a chunk ``ch``;
mode ``tma`` (the tile) and ``ldg`` (the same code reading global memory: a check that this
code generator is on par with irprune's). Each layer's tuned irprune kernel of the 0eb8e05 run
is timed in the same process; every output is checked against float64; inputs rotate over 16
sets. Batch 1, stride 1, sparsity 0.9, H * W a multiple of 4 (bulk copies are 16-byte units).

    python3 tma_tile.py build DIR [LAYER ...]   # CPU: generate and compile the cubins into DIR
    python3 tma_tile.py DIR [LAYER ...]         # GPU: time them; results in $OUT/tma-tile.json
    TMA_BIG=1 python3 tma_tile.py DIR [LAYER ...]   # the same, only the tiles over 48 KB
"""
import json, os, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

RESULTS = os.path.join(HERE, "..", "..", "docs", "perf", "0eb8e05", "results.json")
LAYERS = ("pw_32_64_112", "pw_64_128_56", "pw_128_128_56", "pw_128_256_28", "pw_256_256_28",
          "l1_1x1_64_64", "l1_1x1_64_256", "l1_1x1_256_64", "l2_1x1_256_128", "l2_1x1_128_512",
          "l2_1x1_512_128", "l3_1x1_512_256", "pw_256_512_14", "l3_1x1_256_1024")
MAX_SMEM = 227 * 1024
MAX_THREADS = 512


def _lit(v) -> str:
    import numpy as np
    return float(np.float32(v)).hex() + "f"


PRELUDE = r"""
__device__ __forceinline__ unsigned saddr(const void* p) { return (unsigned)__cvta_generic_to_shared(p); }
__device__ __forceinline__ void wait0(unsigned a) {
  unsigned ok;
  do {
    asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], 0;\nselp.u32 %0, 1, 0, p;\n}"
                 : "=r"(ok) : "r"(a) : "memory");
  } while (!ok);
}
"""


def source(w, l, g, m, tp, ch, mode) -> str:
    """CUDA C++ of kernel ``conv`` for weights ``w`` (K, C, 1, 1) of layer ``l``."""
    K, C = w.shape[:2]
    hw = l.H * l.W
    nt = tp * m
    nch = -(-C // ch)
    out = [PRELUDE, f'extern "C" __global__ void __launch_bounds__({nt}) '
           "conv(const float* __restrict__ x, float* __restrict__ y) {"]
    out.append("  extern __shared__ __align__(128) float tile[];")
    out.append(f"  unsigned long long* mbar = (unsigned long long*)(tile + {C * tp});")
    out.append(f"  const int tp = threadIdx.x, tz = threadIdx.z, tid = tz * {tp} + tp;")
    out.append(f"  const int p0 = blockIdx.x * {tp}; const int np = min({tp}, {hw} - p0);")
    out.append("  const int px = min(tp, np - 1);")
    if mode == "tma":
        out.append("  const unsigned bytes = np * 4u;")
        out.append("  if (tid == 0) {")
        for j in range(nch):
            out.append(f'    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" :: "r"(saddr(mbar + {j})));')
        out.append('    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");')
        for j in range(nch):
            n = min(ch, C - j * ch)
            out.append('    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" '
                       f':: "r"(saddr(mbar + {j})), "r"(bytes * {n}u) : "memory");')
        out.append("  }")
        out.append("  __syncthreads();")
        out.append(f"  for (int c = tid; c < {C}; c += {nt})")
        out.append('    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes '
                   '[%0], [%1], %2, [%3];" :: "r"(saddr(tile + c * ' + str(tp) + ')), '
                   f'"l"(x + (size_t)c * {hw} + p0), "r"(bytes), "r"(saddr(mbar + c / {ch})) : "memory");')
        out.append("  const float* t = tile + px;")
    else:
        out.append("  const float* t = x + p0 + px;")
    out.append(f"  const int gi = blockIdx.y * {m} + tz;")
    out.append("  " + " ".join(f"float a{i} = 0.f;" for i in range(g)))
    out.append("  switch (gi) {")
    for gi in range(K // g):
        out.append(f"  case {gi}: {{")
        waited = -1
        for c in range(C):
            col = w[gi * g:(gi + 1) * g, c, 0, 0]
            nz = [(i, v) for i, v in enumerate(col) if v != 0]
            if not nz:
                continue
            if mode == "tma" and c // ch != waited:
                waited = c // ch
                out.append(f"    wait0(saddr(mbar + {waited}));")
            stride = tp if mode == "tma" else hw
            out.append(f"    {{ const float v = t[{c * stride}];")
            for i, v in nz:
                out.append(f"      a{i} = fmaf(v, {_lit(v)}, a{i});")
            out.append("    }")
        out.append("    break; }")
    out.append("  }")
    out.append("  if (tp < np) {")
    out.append(f"    float* o = y + (size_t)gi * {g * hw} + p0 + tp;")
    for i in range(g):
        out.append(f"    o[{i * hw}] = a{i};")
    out.append("  }")
    out.append("}")
    return "\n".join(out)


def smem_bytes(l, tp, ch, mode) -> int:
    if mode != "tma":
        return 0
    return l.C * tp * 4 + 8 * -(-l.C // ch)


def variants(l):
    """(g, m, tp, ch, mode) worth timing for layer ``l``."""
    out = []
    for g in (4, 8, 16, 32):
        for m in (1, 2, 4, 8, 16):
            for tp in (32, 64, 128):
                if l.K % (g * m) or tp * m > MAX_THREADS or g * m > l.K:
                    continue
                if smem_bytes(l, tp, 16, "tma") > MAX_SMEM:
                    continue
                blocks = -(-l.H * l.W // tp) * (l.K // (g * m))
                if blocks < 66:  # fewer blocks than half the SMs
                    continue
                out.append((g, m, tp, 16, "tma"))
    return out


def compile_cubin(src: str, arch: str = "sm_90") -> bytes:
    from cuda.bindings import nvrtc
    err, prog = nvrtc.nvrtcCreateProgram(src.encode(), b"conv.cu", 0, [], [])
    opts = [f"-arch={arch}".encode(), b"-std=c++17"]
    err, = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        _, n = nvrtc.nvrtcGetProgramLogSize(prog)
        log = b" " * n
        nvrtc.nvrtcGetProgramLog(prog, log)
        raise RuntimeError(log.decode()[:2000])
    _, n = nvrtc.nvrtcGetCUBINSize(prog)
    buf = b" " * n
    nvrtc.nvrtcGetCUBIN(prog, buf)
    return buf


def _name(layer, v):
    g, m, tp, ch, mode = v
    return f"{layer}-g{g}-m{m}-tp{tp}-ch{ch}-{mode}.cubin"


def _build_one(job):
    d, layer, v = job
    from gpu_timing import layer_of
    from irprune.bench.compile_jobs import bench_weights
    l = layer_of(layer)
    w = bench_weights(l, 0.9, 0)
    path = os.path.join(d, _name(layer, v))
    if not os.path.exists(path):
        open(path, "wb").write(compile_cubin(source(w, l, *v)))
    return path


def jobs_for(d, layers):
    from gpu_timing import layer_of
    out = []
    for name in layers:
        l = layer_of(name)
        vs = variants(l)
        if os.environ.get("TMA_BIG"):  # a second run: only the tiles over 48 KB
            out += [(d, name, v) for v in vs if smem_bytes(l, *v[2:]) > 48 * 1024]
            continue
        out += [(d, name, v) for v in vs]
        # the same code reading global memory, at the first tile variant's (g, m, tp)
        if vs:
            out.append((d, name, vs[0][:4] + ("ldg",)))
    return out


def build(d, layers):
    from concurrent.futures import ProcessPoolExecutor
    os.makedirs(d, exist_ok=True)
    jobs = jobs_for(d, layers)
    t0 = time.time()
    with ProcessPoolExecutor(int(os.environ.get("WORKERS", "2"))) as ex:
        for job, r in zip(jobs, ex.map(_build_one, jobs)):
            pass
    print(len(jobs), "cubins in", round(time.time() - t0), "s")


def allow_smem(fn, shm):
    """Let loaded function ``fn`` take ``shm`` bytes of dynamic shared memory (over 48 KB):
    irprune's own launch path does it (irprune.launch._allow_shared)."""
    from irprune.launch import _allow_shared
    _allow_shared(fn, shm)


def run(d, layers):
    from cuda.core import LaunchConfig, ObjectCode
    from numba import cuda
    from gpu_timing import check_then_time, launcher, layer_case, recorded_configs, tuned_row

    ctx = cuda.current_context()
    rows = []
    tuned = {c.layer: c for c in recorded_configs(RESULTS, tiles=False, layers=layers)}
    for name in layers:
        l, w, xs, ref, y = layer_case(name)
        if name in tuned:
            rows.append(tuned_row(tuned[name], w, l, "/tmp/tmacache"))
            print(rows[-1], flush=True)
        for _, _, v in jobs_for(d, [name]):
            g, m, tp, ch, mode = v
            row = {"layer": name, "kind": mode, "g": g, "m": m, "tp": tp, "ch": ch}
            try:
                cubin = open(os.path.join(d, _name(name, v)), "rb").read()
                module = ctx.create_module_image(ObjectCode.from_cubin(cubin))
                fn = module.get_function("conv")
                shm = smem_bytes(l, tp, ch, mode)
                if shm > 48 * 1024:
                    allow_smem(fn, shm)
                cfg = LaunchConfig(grid=(-(-l.H * l.W // tp), l.K // (g * m), 1), block=(tp, 1, m),
                                   shmem_size=shm)
                call = launcher(fn, cfg, lambda i: (xs[i].data_ptr(), y.data_ptr()))
                row["err"], row["us"] = check_then_time(call, y, ref)
                row["regs"] = fn.attrs.regs if hasattr(fn, "attrs") else None
            except Exception as exc:
                row["error"] = str(exc)[:300]
            rows.append(row)
            print(row, flush=True)
        t = [r for r in rows if r["layer"] == name and r["kind"] == "tuned"]
        best = min((r for r in rows if r["layer"] == name and r["kind"] == "tma" and "us" in r),
                   key=lambda r: r["us"], default=None)
        if t and best:
            print(f"== {name}: tuned {t[0]['us']} | best tma {best['us']} "
                  f"(g{best['g']} m{best['m']} tp{best['tp']}) | tuned / tma "
                  f"{t[0]['us'] / best['us']:.3f}", flush=True)
    json.dump(rows, open(os.path.join(os.environ.get("OUT", "."), "tma-tile.json"), "w"), indent=1)


def main():
    args = sys.argv[1:]
    if args and args[0] == "build":
        return build(args[1], args[2:] or LAYERS)
    return run(args[0], args[1:] or LAYERS)


if __name__ == "__main__":
    main()
