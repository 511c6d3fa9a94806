"""Experiment: data_kernel.py's loop kernel written as a Numba CUDA kernel instead of CUDA C++.

A product version of the weights-as-data kernel would be a template that irprune lowers
itself, through Numba, not NVRTC. This checks what that costs: the same algorithm as
data_kernel.py's ``atomic`` and ``direct`` modes, with the staging done by ordinary loads
(Numba has no ``cp.async``): each thread loads all of its input values and pairs into a
local array first (unrolled: registers), then stores them into shared memory, so that its
loads are in flight together. Compiled with ``numba.cuda.compile_ptx`` (the shapes are
closure constants), loaded as PTX, launched with Numba's array ABI expanded by hand.

For each large layer: its three fastest data_kernel.py configurations of
docs/perf/experiments-data-kernel.json, each as CUDA C++ (NVRTC) and as Numba, and the tuned
irprune kernel, all in one process; checked against float64; inputs over 16 sets.

    python3 data_numba.py [LAYER ...]     # GPU; results in $OUT/data-numba.json
"""
import json, os, re, sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from data_kernel import LARGE, RESULTS, _shape, compile_cubin, smem_bytes, source, tables

RUN = os.path.join(HERE, "..", "..", "docs", "perf", "experiments-data-kernel.json")


def numba_kernel(l, to, ns, pt, nt, maxb, atomic):
    """The Python function of the Numba kernel for one configuration (shapes as constants)."""
    from numba import cuda, float32, int32

    oh, ow, p_all = _shape(l)
    P, PT, OW, W, HW, ST, CS, TO, NT, MAXB = p_all, pt, ow, l.W, l.H * l.W, l.stride, l.C // ns, to, nt, maxb
    NPP = -(-PT // 32)
    RPW = TO // (NT // 32)
    N = CS * PT
    IT = -(-N // NT)
    PIT = -(-(2 * MAXB) // NT)
    XS = 2 * MAXB + ((TO + 4) & ~3)

    def k(x, y, rowptr, nz):
        smi = cuda.shared.array(0, int32)
        smf = cuda.shared.array(0, float32)  # the same bytes: pairs' weights and the input
        t = cuda.blockIdx.x
        s = cuda.blockIdx.y
        p0 = cuda.blockIdx.z * PT
        tid = cuda.threadIdx.x
        lane = tid & 31
        warp = tid >> 5
        npx = min(PT, P - p0)
        blk = (cuda.blockIdx.z * cuda.gridDim.y + s) * cuda.gridDim.x + t
        xv = cuda.local.array(IT, float32)
        pv = cuda.local.array(PIT, int32)
        xoff = s * CS * HW
        for j in range(IT):  # every load first, into registers
            i = min(tid + j * NT, N - 1)
            c = i // PT
            q = i - c * PT
            p = p0 + min(q, npx - 1)
            r = p // OW
            col = p - r * OW
            xv[j] = x[xoff + c * HW + r * ST * W + col * ST]
        for j in range(PIT):
            pv[j] = nz[blk * 2 * MAXB + min(tid + j * NT, 2 * MAXB - 1)]
        if tid <= TO:
            smi[2 * MAXB + tid] = rowptr[blk * (TO + 1) + tid]
        for j in range(IT):
            i = tid + j * NT
            if i < N:
                smf[XS + i] = xv[j]
        for j in range(PIT):
            i = tid + j * NT
            if i < 2 * MAXB:
                smi[i] = pv[j]
        cuda.syncthreads()
        for rr in range(RPW):
            o = rr * (NT // 32) + warp
            b = smi[2 * MAXB + o]
            e = smi[2 * MAXB + o + 1]
            acc = cuda.local.array(NPP, float32)
            for q in range(NPP):
                acc[q] = float32(0)
            for kk in range(b, e):
                off = smi[2 * kk]
                w = smf[2 * kk + 1]
                for q in range(NPP):
                    acc[q] += w * smf[XS + off + min(lane + 32 * q, PT - 1)]
            for q in range(NPP):
                p = lane + 32 * q
                if p < npx:
                    if atomic:
                        cuda.atomic.add(y, (t * TO + o) * P + p0 + p, acc[q])
                    else:
                        y[(t * TO + o) * P + p0 + p] = acc[q]
    return k


def numba_ptx(l, to, ns, pt, nt, maxb, atomic):
    """(PTX, entry name) of the Numba kernel."""
    from numba import cuda, float32, int32
    sig = (float32[::1], float32[::1], int32[::1], int32[::1])
    ptx, _ = cuda.compile_ptx(numba_kernel(l, to, ns, pt, nt, maxb, atomic), sig, device=False,
                              cc=(9, 0))
    return ptx, re.search(r"\.entry\s+(\S+)\s*\(", ptx).group(1)


def abi(t):
    """Numba's array ABI for a contiguous 1-D tensor: meminfo, parent, nitems, itemsize, data,
    shape, strides."""
    n = t.numel()
    return (0, 0, n, t.element_size(), t.data_ptr(), n, t.element_size())


def main():
    import torch
    from cuda.core import LaunchConfig, ObjectCode
    from numba import cuda
    from gpu_timing import check_then_time, launcher, layer_case, recorded_configs, tuned_row
    from tma_tile import allow_smem

    layers = sys.argv[1:] or LARGE
    prior = json.load(open(RUN))
    ctx = cuda.current_context()
    tuned = {c.layer: c for c in recorded_configs(RESULTS, tiles=False, layers=layers)}
    rows = []
    for name in layers:
        l, w, xs, ref, y = layer_case(name)
        rows.append(tuned_row(tuned[name], w, l, "/tmp/datacache"))
        print(rows[-1], flush=True)
        cands = [r for r in prior if r["layer"] == name and r["kind"] in ("atomic", "direct")
                 and "us" in r]
        cands.sort(key=lambda r: r.get("us_with_zero", r["us"]))
        for r in cands[:3]:
            to, ns, pt, nt, mode = r["to"], r["ns"], r["pt"], r["nt"], r["kind"]
            rp, nzs, maxb = tables(w, l, to, ns, pt)
            rp_d, nz_d = torch.from_numpy(rp).cuda(), torch.from_numpy(nzs).cuda()
            shm = smem_bytes(l, to, ns, pt, mode, maxb)
            grid = (l.K // to, ns, -(-_shape(l)[2] // pt))
            cfg = LaunchConfig(grid=grid, block=(nt, 1, 1), shmem_size=shm)
            ws = torch.empty(1, device="cuda")
            cnt = torch.zeros(1, dtype=torch.int32, device="cuda")
            yf = y.view(-1)
            for lang in ("nvrtc", "numba"):
                row = {"layer": name, "kind": mode, "lang": lang, "to": to, "ns": ns, "pt": pt,
                       "nt": nt}
                try:
                    if lang == "nvrtc":
                        mod = ctx.create_module_image(ObjectCode.from_cubin(
                            compile_cubin(source(l, to, ns, pt, nt, mode, maxb))))
                        fn = mod.get_function("conv")

                        def args(i):
                            return (xs[i].data_ptr(), y.data_ptr(), rp_d.data_ptr(),
                                    nz_d.data_ptr(), ws.data_ptr(), cnt.data_ptr())
                    else:
                        ptx, entry = numba_ptx(l, to, ns, pt, nt, maxb, mode == "atomic")
                        mod = ctx.create_module_ptx(ptx)
                        fn = mod.get_function(entry)
                        row["local_ld"] = ptx.count("ld.local")

                        def args(i):
                            return (*abi(xs[i].view(-1)), *abi(yf), *abi(rp_d), *abi(nz_d.view(-1)))
                    if shm > 48 * 1024:
                        allow_smem(fn, shm)
                    row["regs"] = fn.attrs.regs if hasattr(fn, "attrs") else None
                    call = launcher(fn, cfg, args)

                    def zcall(i, call=call):
                        y.zero_()
                        call(i)
                    atomic = mode == "atomic"
                    row["err"], row["us"] = check_then_time(call, y, ref, atomic,
                                                            zcall if atomic else None)
                except Exception as exc:
                    row["error"] = str(exc)[:300]
                rows.append(row)
                print(row, flush=True)
        json.dump(rows, open(os.path.join(os.environ.get("OUT", "."), "data-numba.json"), "w"),
                  indent=1)
    for name in layers:
        t = [r for r in rows if r["layer"] == name and r["kind"] == "tuned"][0]["us"]
        for lang in ("nvrtc", "numba"):
            rs = [r for r in rows if r["layer"] == name and r.get("lang") == lang and "us" in r]
            if rs:
                b = min(rs, key=lambda r: r["us"])
                print(f"== {name} {lang}: best {b['us']} ({b['kind']} {b['to']}x{b['ns']} "
                      f"nt{b['nt']}) | tuned {t} | tuned / best {t / b['us']:.3f}", flush=True)


if __name__ == "__main__":
    main()
