"""Experiment: the large 1x1 layers with their weights as data instead of instructions.

The seven large 1x1 layers wait for their code (docs/perf-log.md, "The large layers wait for
their code"): an FFMA with an immediate is 16 bytes of code per nonzero, fetched at about 740
GB/s over the whole GPU, and at 49 output pixels each fetched instruction serves two warps.
Here the same layers run a loop kernel whose instruction stream is a few hundred bytes, with
each nonzero an 8-byte (input offset, weight) pair read as data: lane j of a warp loads pair
j (one coalesced load for 32 nonzeros), and the warp broadcasts them with shuffles.

Blocks tile (TO output channels) x (an input-channel slice of CS channels) x (PT output
pixels). A block brings its slice's input rows (CS x PT values) into shared memory with
``cp.async`` (no registers held), each warp runs TO / warps output rows over its pixel lanes,
and the slices' partial sums are added:

- ``cluster``: the NS slice blocks of one output tile form a thread-block cluster; each block
  leaves its partial tile in its shared memory and, after a cluster barrier, block r adds the
  r-th part of the tile from every block's shared memory (DSMEM) and stores it. No atomics,
  no zeroing, one launch.
- ``atomic``: every block adds its partial tile into the output with float atomics. Timed as
  the kernel alone (the output left accumulating) and with the output zeroed in the timed call.
- ``fixup``: every block writes its partial tile to a workspace; the last slice block of a
  tile to finish (a counter per tile) adds them in slice order, stores, and resets the counter.
- NS 1: one slice, stores directly.

CUDA C++ per configuration (the layer's shape as constants, the weights in device arrays),
compiled by NVRTC to a cubin. Each layer's tuned irprune kernel of the 0eb8e05 run is timed
in the same process; every output is checked against float64; inputs rotate over 16 sets.
Batch 1, sparsity 0.9.

    python3 data_kernel.py [LAYER ...]     # GPU; results in $OUT/data-kernel.json
    DATA_CLUSTER=1 python3 data_kernel.py  # the cluster run (128/256 threads, cluster, atomic)
"""
import json, os, sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

RESULTS = os.path.join(HERE, "..", "..", "docs", "perf", "0eb8e05", "results.json")
LARGE = ("pw_512_1024_7", "pw_1024_1024_7", "l3_down_512_1024_s2", "l4_1x1_1024_512",
         "l4_1x1_512_2048", "l4_down_1024_2048_s2", "l4_1x1_2048_512")
MAX_SMEM = 227 * 1024
#: DATA_CLUSTER=1: the earlier run's variants (128 and 256 threads, cluster and atomic modes)
CLUSTER_RUN = bool(os.environ.get("DATA_CLUSTER"))

PRELUDE = r"""
__device__ __forceinline__ unsigned saddr(const void* p) { return (unsigned)__cvta_generic_to_shared(p); }
__device__ __forceinline__ void cluster_sync() {
  asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;" ::: "memory");
}
__device__ __forceinline__ float ld_remote(const float* p, unsigned rank) {
  unsigned a, r; float v;
  a = saddr(p);
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(rank));
  asm volatile("ld.shared::cluster.f32 %0, [%1];" : "=f"(v) : "r"(r) : "memory");
  return v;
}
"""


def _shape(l):
    oh = (l.H - 1) // l.stride + 1
    ow = (l.W - 1) // l.stride + 1
    return oh, ow, oh * ow


def source(l, to, ns, pt, nt, mode, maxb) -> str:
    """CUDA C++ of kernel ``conv`` for layer ``l`` (batch 1): output tiles of ``to`` channels,
    ``ns`` input slices, ``pt`` pixels a block, ``nt`` threads, reduction ``mode``; every
    block's nonzeros padded to ``maxb`` pairs (tables)."""
    oh, ow, p_all = _shape(l)
    cs = l.C // ns
    # the slice's rows are one contiguous run of the input: 16-byte copies
    flat = l.stride == 1 and pt == p_all and (cs * p_all) % 4 == 0
    d = dict(P=p_all, PT=pt, OW=ow, W=l.W, HW=l.H * l.W, ST=l.stride, CS=cs, TO=to, NS=ns,
             NT=nt, NPP=-(-pt // 32), RPW=to // (nt // 32), SPAN=to // ns if ns > 1 else to,
             MAXB=maxb, FLAT=int(flat))
    defs = "\n".join(f"#define {k} {v}" for k, v in d.items())
    cluster = "__cluster_dims__(1, NS, 1) " if mode == "cluster" else ""
    body = r"""
extern "C" __global__ void CLUSTER__launch_bounds__(NT) conv(
    const float* __restrict__ x, float* __restrict__ y, const int* __restrict__ rowptr,
    const int2* __restrict__ nz, float* __restrict__ ws, int* __restrict__ cnt) {
  extern __shared__ __align__(16) float sm[];
  int2* wz = (int2*)sm;                     // MAXB (offset, weight) pairs
  int* rps = (int*)(wz + MAXB);             // TO + 1 row offsets into wz
  float* xs = (float*)(rps + ((TO + 4) & ~3)); // CS x PT input values
  float* part = xs + CS * PT;               // TO x PT partial sums (cluster)
  const int t = blockIdx.x, s = blockIdx.y, p0 = blockIdx.z * PT;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int np = min(PT, P - p0);
  const size_t blk = ((size_t)blockIdx.z * gridDim.y + s) * gridDim.x + t;
  // everything the block reads goes to shared memory first: no register round trips
  const int4* nzb = (const int4*)(nz + blk * MAXB);
  for (int i = tid; i < MAXB / 2; i += NT)
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" :: "r"(saddr(wz + 2 * i)), "l"(nzb + i) : "memory");
  for (int i = tid; i <= TO; i += NT)
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" :: "r"(saddr(rps + i)), "l"(rowptr + blk * (TO + 1) + i) : "memory");
  const float* xb = x + (size_t)s * CS * HW;
#if FLAT
  for (int i = tid; i < CS * PT / 4; i += NT)
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" :: "r"(saddr(xs + 4 * i)), "l"(xb + 4 * i) : "memory");
#else
  for (int i = tid; i < CS * PT; i += NT) {
    const int c = i / PT, q = i - c * PT;
    const int p = p0 + min(q, np - 1);
    const int r = p / OW, col = p - r * OW;
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" :: "r"(saddr(xs + i)), "l"(xb + c * HW + r * ST * W + col * ST) : "memory");
  }
#endif
  asm volatile("cp.async.wait_all;" ::: "memory");
  __syncthreads();
  #pragma unroll 1
  for (int rr = 0; rr < RPW; ++rr) {
    const int o = rr * (NT / 32) + warp;
    const int b = rps[o], e = rps[o + 1];
    float acc[NPP];
    #pragma unroll
    for (int q = 0; q < NPP; ++q) acc[q] = 0.f;
    #pragma unroll 4
    for (int k = b; k < e; ++k) {
      const int2 pr = wz[k];
      const float w = __int_as_float(pr.y);
      #pragma unroll
      for (int q = 0; q < NPP; ++q)
        acc[q] = fmaf(w, xs[pr.x + min(lane + 32 * q, PT - 1)], acc[q]);
    }
    #pragma unroll
    for (int q = 0; q < NPP; ++q) {
      const int p = lane + 32 * q;
      if (p < PT) {
MODE_STORE
      }
    }
  }
MODE_END
}
"""
    if mode == "cluster":
        store = "        part[o * PT + p] = acc[q];"
        end = r"""  cluster_sync();
  // block s adds rows [s * SPAN, (s + 1) * SPAN) of the tile from every block of the cluster
  for (int i = tid; i < SPAN * PT; i += NT) {
    const int o = s * SPAN + i / PT, q = i % PT;
    float v = 0.f;
    #pragma unroll
    for (int r = 0; r < NS; ++r) v += ld_remote(part + o * PT + q, r);
    if (q < np) y[(size_t)(t * TO + o) * P + p0 + q] = v;
  }
  cluster_sync();"""
    elif mode == "fixup":
        store = "        ws[blk * (TO * PT) + o * PT + p] = acc[q];"
        end = r"""  // the last slice block of this output tile to finish adds the slices' partial tiles
  // (in slice order) and stores them, then resets the tile's counter for the next launch
  __shared__ int last;
  __threadfence();
  __syncthreads();
  const int tile = blockIdx.z * gridDim.x + t;
  if (tid == 0) last = atomicAdd(cnt + tile, 1) == NS - 1;
  __syncthreads();
  if (!last) return;
  __threadfence();
  for (int i = tid; i < TO * PT; i += NT) {
    const int o = i / PT, q = i - o * PT;
    float v = 0.f;
    #pragma unroll
    for (int r = 0; r < NS; ++r)
      v += __ldcg(ws + (((size_t)blockIdx.z * NS + r) * gridDim.x + t) * (TO * PT) + i);
    if (q < np) y[(size_t)(t * TO + o) * P + p0 + q] = v;
  }
  if (tid == 0) cnt[tile] = 0;"""
    elif mode == "atomic":
        store = "        if (p < np) atomicAdd(y + (size_t)(t * TO + o) * P + p0 + p, acc[q]);"
        end = ""
    else:
        store = "        if (p < np) y[(size_t)(t * TO + o) * P + p0 + p] = acc[q];"
        end = ""
    body = (body.replace("CLUSTER", cluster).replace("MODE_STORE", store)
            .replace("MODE_END", end))
    return PRELUDE + defs + body


def smem_bytes(l, to, ns, pt, mode, maxb) -> int:
    part = to * pt if mode == "cluster" else 0
    return maxb * 8 + ((to + 4) & ~3) * 4 + (l.C // ns * pt + part) * 4


def tables(w, l, to, ns, pt):
    """(rowptr, nz, maxb) for weights ``w`` (K, C, 1, 1): for every block in launch order (z, y,
    x), TO + 1 row offsets into its own ``maxb`` pairs of ``nz`` (padded to an even count),
    each pair (c_local * PT, weight bits), by row."""
    K, C = w.shape[:2]
    cs = C // ns
    nzp = -(-_shape(l)[2] // pt)
    w2 = np.ascontiguousarray(w[:, :, 0, 0], np.float32)
    blocks = []
    for s in range(ns):
        for t in range(K // to):
            sub = w2[t * to:(t + 1) * to, s * cs:(s + 1) * cs]
            r, c = np.nonzero(sub)  # row-major: by output channel, then input channel
            pairs = np.stack([c.astype(np.int32) * pt, sub[r, c].view(np.int32)], 1)
            rp = np.concatenate([[0], np.cumsum(np.count_nonzero(sub, 1))]).astype(np.int32)
            blocks.append((rp, pairs))
    maxb = max(2, max(len(p) for _, p in blocks))
    maxb += maxb % 2
    nz = np.zeros((len(blocks), maxb, 2), np.int32)
    for i, (_, p) in enumerate(blocks):
        nz[i, :len(p)] = p
    rowptr = np.concatenate([rp for rp, _ in blocks])
    # every pixel tile (grid z) runs the same slices and tiles
    return np.tile(rowptr, nzp), np.tile(nz.reshape(-1, 2), (nzp, 1)), maxb


def variants(l):
    """(to, ns, pt, nt, mode) worth timing for layer ``l``."""
    oh = (l.H - 1) // l.stride + 1
    p_all = oh * ((l.W - 1) // l.stride + 1)
    out = []
    for pt in ((p_all,) if p_all <= 256 else (128, 256)):
        for to in (16, 32, 64):
            for ns in (1, 2, 4, 8):
                for nt in ((128, 256) if CLUSTER_RUN else (256, 512, 1024)):
                    if l.K % to or l.C % ns or to % (nt // 32) or (ns > 1 and to % ns):
                        continue
                    if (l.C // ns + to) * pt * 4 > MAX_SMEM - 16 * 1024:
                        continue
                    blocks = (l.K // to) * ns * -(-p_all // pt)
                    if blocks < 66 or blocks > 4096:
                        continue
                    split = ("cluster", "atomic") if CLUSTER_RUN else ("fixup", "atomic")
                    for mode in (("direct",) if ns == 1 else split):
                        out.append((to, ns, pt, nt, mode))
    return out


def compile_cubin(src: str) -> bytes:
    from tma_tile import compile_cubin as nvrtc
    return nvrtc(src)


def run(layers):
    import torch
    from cuda.core import LaunchConfig, ObjectCode
    from numba import cuda
    from gpu_timing import check_then_time, launcher, layer_case, recorded_configs, tuned_row
    from tma_tile import allow_smem

    ctx = cuda.current_context()
    rows = []
    tuned = {c.layer: c for c in recorded_configs(RESULTS, tiles=False, layers=layers)}
    for name in layers:
        l, w, xs, ref, y = layer_case(name)
        if name in tuned:
            rows.append(tuned_row(tuned[name], w, l, "/tmp/datacache"))
            print(rows[-1], flush=True)
        for v in variants(l):
            to, ns, pt, nt, mode = v
            row = {"layer": name, "kind": mode, "to": to, "ns": ns, "pt": pt, "nt": nt}
            try:
                rp, nzs, maxb = tables(w, l, to, ns, pt)
                shm = smem_bytes(l, to, ns, pt, mode, maxb)
                if shm > MAX_SMEM:
                    raise RuntimeError(f"{shm} bytes of shared memory")
                cubin = compile_cubin(source(l, to, ns, pt, nt, mode, maxb))
                module = ctx.create_module_image(ObjectCode.from_cubin(cubin))
                fn = module.get_function("conv")
                if shm > 48 * 1024:
                    allow_smem(fn, shm)
                rp_d = torch.from_numpy(rp).cuda()
                nz_d = torch.from_numpy(nzs).cuda()
                grid = (l.K // to, ns, -(-_shape(l)[2] // pt))
                ws = torch.empty(grid[0] * grid[1] * grid[2] * to * pt, device="cuda")
                cnt = torch.zeros(grid[0] * grid[2], dtype=torch.int32, device="cuda")
                call = launcher(fn, LaunchConfig(grid=grid, block=(nt, 1, 1), shmem_size=shm),
                                lambda i, t=(rp_d, nz_d, ws, cnt): (
                                    xs[i].data_ptr(), y.data_ptr(), *(a.data_ptr() for a in t)))
                row["err"], row["us"] = check_then_time(call, y, ref, zero=mode == "atomic")
                if mode == "atomic":
                    def zcall(i, call=call):
                        y.zero_()
                        call(i)
                    row["us_with_zero"] = check_then_time(call, y, ref, True, zcall)[1]
            except Exception as exc:
                row["error"] = str(exc)[:300]
            rows.append(row)
            print(row, flush=True)
        t = [r for r in rows if r["layer"] == name and r["kind"] == "tuned"]
        done = [r for r in rows if r["layer"] == name and r["kind"] != "tuned" and "us" in r]
        fair = [dict(r, us=r.get("us_with_zero", r["us"])) for r in done]
        best = min(fair, key=lambda r: r["us"], default=None)
        if t and best:
            print(f"== {name}: tuned {t[0]['us']} | best data {best['us']} ({best['kind']} "
                  f"to{best['to']} ns{best['ns']} pt{best['pt']} nt{best['nt']}) | tuned / data "
                  f"{t[0]['us'] / best['us']:.3f}", flush=True)
        # after every layer: a run cut short keeps what it measured
        json.dump(rows, open(os.path.join(os.environ.get("OUT", "."), "data-kernel.json"), "w"),
                  indent=1)


def main():
    run(sys.argv[1:] or LARGE)


if __name__ == "__main__":
    main()
