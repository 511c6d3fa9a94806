"""Experiment: what the large 1x1 layers' tuned kernels spend their time on (anatomy.py's
rewrites, for layers whose ptxas runs take a minute each).

For each large layer's tuned configuration of the 0fb64ac run (docs/perf/0fb64ac/results.json:
group size, slices, budget, block, groups per block; batch 1, sparsity 0.9) the kernel is
timed as it is and with its PTX rewritten (anatomy.py): ``empty`` (launching the grid),
``fixed`` (every input load the constant 1.0: the weights' instruction stream, dispatch and
stores, no load), ``half`` (every second load kept). The rewritten modules are assembled in
parallel processes before any timing. Outputs of the rewrites are wrong by design.

    python3 large_anatomy.py build [LAYER ...]   # CPU or GPU machine: the tuned kernels into the cache
    python3 large_anatomy.py [LAYER ...]         # GPU: results in $OUT/large-anatomy.json
    python3 large_anatomy.py ncu LAYER           # GPU, under ncu: 32 launches of the tuned kernel
"""
import json, os, sys
from concurrent.futures import ProcessPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gpu_timing import (assembled, build_all, compile_layer, config_row, install_ptx,
                        recorded_configs, time_into)
from anatomy import constant_loads, empty

RESULTS = os.path.join(HERE, "..", "..", "docs", "perf", "0fb64ac", "results.json")
CACHE = os.environ.get("LARGE_CACHE", os.path.join(HERE, "generated", "largecache"))
LARGE = ("pw_512_1024_7", "pw_1024_1024_7", "l3_down_512_1024_s2", "l4_1x1_1024_512",
         "l4_1x1_512_2048", "l4_down_1024_2048_s2", "l4_1x1_2048_512")
VARIANTS = {"base": None, "empty": empty, "fixed": constant_loads(0), "half": constant_loads(2)}


def kernel(cfg):
    from irprune.templates.conv2d import conv2d_nchw
    return compile_layer(conv2d_nchw, cfg.layer, cfg.gs, cfg.slices, CACHE, cfg.budget,
                         assemble=True)


def configs(layers):
    return recorded_configs(RESULTS, tiles=False, layers=layers or LARGE)


def variant(job):
    """The assembled modules of configuration ``cfg`` rewritten by variant ``name``."""
    cfg, name = job
    k, _, _ = kernel(cfg)
    return assembled([p.ptx for p in k.parts], VARIANTS[name], k.cpu)


def main():
    args = sys.argv[1:]
    if args and args[0] == "build":
        build_all(kernel, configs(args[1:]), workers=int(os.environ.get("WORKERS", "16")))
        return
    if args and args[0] == "ncu":
        return ncu(args[1])
    out = os.environ.get("OUT", ".")
    cfgs = configs(args)
    build_all(kernel, cfgs)
    jobs = [(c, v) for c in cfgs for v in VARIANTS if VARIANTS[v]]
    with ProcessPoolExecutor(16) as ex:
        done = dict(zip(jobs, ex.map(variant, jobs)))
    rows = []
    for c in cfgs:
        row = config_row(c)
        k, w, l = kernel(c)
        row["nnz"] = int((w != 0).sum())
        row["ptx_ld"] = sum(p.ptx.count("ld.global") for p in k.parts)
        row["ptx_fma"] = sum(p.ptx.count("fma.rn.f32") for p in k.parts)
        row["cubin_bytes"] = k.stats["ptxas"]["cubin_bytes"]
        original = [(p.ptx, p._ptxas) for p in k.parts]
        for v in VARIANTS:
            row[v + "_regs"] = install_ptx(k, done[(c, v)] if VARIANTS[v] else original)
            time_into(row, v, k, w, l, c)
        rows.append(row)
        print(json.dumps(row), flush=True)
        json.dump(rows, open(os.path.join(out, "large-anatomy.json"), "w"), indent=1)


def ncu(name):
    import torch
    c = configs([name])[0]
    k, w, l = kernel(c)
    k.block, k.groups_per_block = c.block, c.m
    xs = [torch.randn(1, l.C, l.H, l.W, device="cuda") for _ in range(16)]
    ref = torch.nn.functional.conv2d(xs[0].double(), torch.from_numpy(w).double().cuda(),
                                     stride=l.stride, padding=l.padding)
    y = k(xs[0])
    torch.cuda.synchronize()
    err = float((y.double() - ref).abs().max() / ref.abs().max())
    print(name, c, "registers", k.registers, f"err {err:.1e}", file=sys.stderr, flush=True)
    for i in range(32):  # as the bench rotates its inputs; ncu profiles the last launch
        k(xs[i % 16], out=y)
    torch.cuda.synchronize()


if __name__ == "__main__":
    main()
