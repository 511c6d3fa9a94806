"""Experiment: how close a kernel that only moves a layer's bytes gets to the modelled floor.

The floor target of the performance issue is a model: one empty launch (a 1 x 1 grid) plus the
input, output and nonzero bytes at the device copy bandwidth. The bench's move floor
(irprune.bench.move_kernel: one thread a 4-byte value) sits 1.77x above it over the 34 batch-1
layers (docs/performance.md). That kernel is not the best a copy can do, so this script times
better ones beside it, in one process, inputs over the bench's rotation (make_inputs):

- ``empty``: the floor's launch, a 1 x 1 grid with an empty body;
- ``touch``: one thread loads one input value and stores it (a launch plus one round trip and
  a store that the grid's end waits for);
- ``scalar``: the bench's move kernel (Numba, one thread a value, 256 threads a block);
- ``vec4-T``: CUDA C++, one thread 16 bytes of each array (float4 loads and a float4 store), T
  threads a block, one thread for each 16 bytes of the largest array;
- ``stride-B``: CUDA C++, float4, a grid of B blocks a SM x 256 threads striding over the
  arrays (fewer blocks to launch, several loads in flight a thread).

For each layer: the modelled floor from this process's empty launch and copy bandwidth, each
kernel's median (CUDA-graph replays, irprune.bench.timing.measure), every output checked
against its float64 expectation first. The best move of each layer over the modelled floor
says how much of the floor target any kernel can reach.

    python3 move_ab.py [LAYER ...]     # on the GPU; results in $OUT/move_ab.json
"""
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

SRC = r"""
extern "C" __global__ void touch(const float* x, float* y) { y[0] = x[0]; }

extern "C" __global__ void vec4(const float4* x, long nx, const float4* w, long nw, float4* y,
                                long ny) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
    if (i < nx) { float4 a = __ldg(x + i); v.x += a.x; v.y += a.y; v.z += a.z; v.w += a.w; }
    if (i < nw) { float4 a = __ldg(w + i); v.x += a.x; v.y += a.y; v.z += a.z; v.w += a.w; }
    if (i < ny) y[i] = v;
    else if (v.x != v.x) y[0] = v;  // never for finite inputs: keeps the loads alive
}

extern "C" __global__ void stride4(const float4* x, long nx, const float4* w, long nw,
                                   float4* y, long ny) {
    long n = nx > nw ? nx : nw;
    n = n > ny ? n : ny;
    long step = (long)gridDim.x * blockDim.x;
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
        float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
        if (i < nx) { float4 a = __ldg(x + i); v.x += a.x; v.y += a.y; v.z += a.z; v.w += a.w; }
        if (i < nw) { float4 a = __ldg(w + i); v.x += a.x; v.y += a.y; v.z += a.z; v.w += a.w; }
        if (i < ny) y[i] = v;
        else if (v.x != v.x) y[0] = v;
    }
}
"""

VEC_THREADS = (128, 256, 512, 1024)
STRIDE_BLOCKS_PER_SM = (1, 2, 4, 8)


def layers_at_batch_one(names):
    from irprune.bench.suites import SUITES
    out = [l for s in ("seed", "mobilenet1x1", "resnet50") for l in SUITES[s]
           if s == "seed" or (l.R, l.S) == (1, 1)]
    return [l for l in out if not names or l.name in names]


def expected4(inp_x, w, n):
    """float64 of the vec4 kernels' output: element i is x[i] + w[i] (zero past an end), first
    ``n`` values."""
    import torch
    x = inp_x.double().reshape(-1)
    wd = w.double().reshape(-1)

    def first(v):
        v = v[:n]
        return torch.cat([v, v.new_zeros(n - len(v))])
    return first(x) + first(wd)


def main():
    import torch
    from cuda.core import LaunchConfig, ObjectCode
    from numba import cuda

    from gpu_timing import launcher, save_row
    from irprune.bench.compile_jobs import bench_weights
    from irprune.bench.impls import copy_bandwidth, empty_kernel, make_inputs, move_floor
    from irprune.bench.timing import measure
    from tma_tile import compile_cubin

    props = torch.cuda.get_device_properties(0)
    sms, l2 = props.multi_processor_count, props.L2_cache_size
    ctx = cuda.current_context()
    module = ctx.create_module_image(ObjectCode.from_cubin(compile_cubin(SRC)))
    fns = {n: module.get_function(n) for n in ("touch", "vec4", "stride4")}
    empty_us = measure(empty_kernel(), target_ms=10).median_us
    bw = copy_bandwidth()
    print(f"empty {empty_us:.3f} us, copy {bw / 1e9:.1f} GB/s, {sms} SMs", flush=True)
    rows = []
    for layer in layers_at_batch_one(sys.argv[1:]):
        inp = make_inputs(layer, 1, l2, seed=0)
        nnz = int((bench_weights(layer, 0.9, 0) != 0).sum())
        nx, ny = inp.xs[0].numel(), inp.ys[0].numel()
        bytes_ = 4 * (nx + ny + nnz)
        row = {"layer": layer.name, "nnz": nnz, "bytes": bytes_, "sets": inp.rotation,
               "floor_us": round(empty_us + bytes_ / bw * 1e6, 3)}
        times = {}
        # the bench's move kernel, checked as the bench checks it
        run = move_floor(inp, nnz)
        y = run(0)
        torch.cuda.synchronize()
        assert torch.allclose(y.double(), run.expected(0), rtol=1e-6, atol=1e-6), layer.name
        times["scalar"] = measure(run, rotation=inp.rotation, target_ms=10).median_us
        # touch
        call = launcher(fns["touch"], LaunchConfig(grid=(1, 1, 1), block=(1, 1, 1)),
                        lambda i: (inp.xs[i].data_ptr(), inp.ys[i].data_ptr()))
        times["touch"] = measure(call, rotation=inp.rotation, target_ms=10).median_us
        # float4 kernels: sizes in 16-byte pieces (the weights padded to whole pieces)
        w = torch.randn(-(-max(nnz, 1) // 4) * 4, device="cuda")
        n4 = [nx // 4, len(w) // 4, ny // 4]
        if nx % 4 or ny % 4:
            row["error"] = "input or output not a whole number of float4"
            save_row(rows, row, "move_ab.json")
            continue

        def args(i):
            return (inp.xs[i].data_ptr(), n4[0], w.data_ptr(), n4[1], inp.ys[i].data_ptr(), n4[2])
        variants = [(f"vec4-{t}", "vec4", (-(-max(n4) // t), 1, 1), t) for t in VEC_THREADS]
        variants += [(f"stride-{b}", "stride4", (b * sms, 1, 1), 256) for b in STRIDE_BLOCKS_PER_SM]
        for name, fn, grid, threads in variants:
            call = launcher(fns[fn], LaunchConfig(grid=grid, block=(threads, 1, 1)), args)
            inp.ys[0].fill_(float("nan"))
            call(0)
            torch.cuda.synchronize()
            ok = torch.allclose(inp.ys[0].double().reshape(-1), expected4(inp.xs[0], w, ny),
                                rtol=1e-6, atol=1e-6)
            if not ok:
                row[name + "_error"] = "wrong output"
                continue
            times[name] = measure(call, rotation=inp.rotation, target_ms=10).median_us
        row.update({k: round(v, 3) for k, v in times.items()})
        moves = {k: v for k, v in times.items() if k != "touch"}
        best = min(moves, key=moves.get)
        row["best"] = best
        row["best_over_floor"] = round(moves[best] / row["floor_us"], 3)
        row["scalar_over_floor"] = round(times["scalar"] / row["floor_us"], 3)
        row["touch_over_empty"] = round(times["touch"] / empty_us, 3)
        save_row(rows, row, "move_ab.json")
        del inp, w
        torch.cuda.empty_cache()

    def gm(key, sel=lambda r: True):
        v = [r[key] for r in rows if key in r and sel(r)]
        return round(math.exp(sum(map(math.log, v)) / len(v)), 3) if v else None
    from irprune.bench.suites import SUITES
    seed = {l.name for l in SUITES["seed"]}
    summary = {"empty_us": round(empty_us, 3), "copy_GBps": round(bw / 1e9, 1),
               "layers": len(rows),
               "geomean_best_over_floor": gm("best_over_floor"),
               "geomean_scalar_over_floor": gm("scalar_over_floor"),
               "seed_best_over_floor": gm("best_over_floor", lambda r: r["layer"] in seed),
               "1x1_best_over_floor": gm("best_over_floor", lambda r: r["layer"] not in seed),
               "geomean_touch_us": gm("touch")}
    print(json.dumps(summary), flush=True)
    with open(os.path.join(os.environ.get("OUT", "."), "move_ab_summary.json"), "w") as f:
        json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
