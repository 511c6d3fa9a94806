"""Experiment: input tiles in shared memory (smem_template.txt) against the built-in template, on the GPU."""
import importlib, json, os, sys
from concurrent.futures import ProcessPoolExecutor
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen import gen_smem
from gpu_timing import best_time, layer_of

CACHE = "/tmp/smemcache"
# (layer, (TR, CC) or None for the built-in template, group size, slices, batches)
JOBS = [
    ("resnet_3x3_28", None, 32, 1, (64,)),
    ("resnet_3x3_28", None, 8, 4, (1,)),
    ("resnet_3x3_28", (4, 2), 32, 1, (64,)),
    ("resnet_3x3_28", (4, 4), 32, 1, (64,)),
    ("resnet_3x3_28", (7, 2), 32, 1, (64,)),
    ("resnet_3x3_28", (4, 2), 16, 1, (64,)),
    ("resnet_3x3_28", (4, 2), 8, 1, (1, 64)),
    ("resnet_3x3_28", (7, 2), 8, 1, (1,)),
    ("resnet_3x3_56", None, 64, 1, (64,)),
    ("resnet_3x3_56", (2, 2), 64, 1, (64,)),
    ("resnet_3x3_56", (4, 2), 64, 1, (64,)),
    ("resnet_3x3_56", (2, 2), 32, 1, (64,)),
    ("vgg16_c3", None, 64, 1, (64,)),
    ("vgg16_c3", (1, 2), 64, 1, (64,)),
    ("vgg16_c3", (2, 2), 32, 1, (64,)),
]


def template(job):
    name, tc = job[0], job[1]
    if tc is None:
        from irprune.templates.conv2d import conv2d_nchw
        return conv2d_nchw
    l = layer_of(name)
    mod = f"smem_{name}_{tc[0]}_{tc[1]}"
    gen_smem(mod, tc[0], tc[1], l.R, l.S, l.stride, l.OW if hasattr(l, "OW") else l.geometry(1).OW)
    importlib.invalidate_caches()
    return importlib.import_module(mod).conv2d_smem


def build(job, load=False):
    os.environ.setdefault("IRPRUNE_JOBS", "1")
    from irprune.bench.compile_jobs import bench_weights
    from irprune.cache import DiskCache
    l = layer_of(job[0])
    w = bench_weights(l, 0.9, 0)
    k = template(job).compile(w, (1, l.C, l.H, l.W), stride=l.stride, padding=l.padding,
                              group_size=job[2], slices=job[3], cache=DiskCache(CACHE), assemble=True)
    if load:
        return k, w, l
    return job, k.stats["ptxas"]["registers"], k.stats["ptxas"]["spill_stores"]


def main():
    out = os.environ.get("OUT", ".")
    with ProcessPoolExecutor(16) as ex:
        for r in ex.map(build, JOBS):
            print("compiled", r, flush=True)
    rows = []
    for job in JOBS:
        k, w, l = build(job, load=True)
        g = l.geometry(1)
        blocks = (64, 128, 256) if job[1] is None else (job[1][0] * g.OW,)
        for b in job[4]:
            best = best_time(k, w, l, b, blocks)
            row = {"layer": job[0], "tile": job[1], "gs": job[2], "slices": job[3], "batch": b,
                   "us": round(best[0], 2), "block": best[1], "err": f"{best[2]:.1e}",
                   "regs": k.stats["ptxas"]["registers"]}
            rows.append(row)
            print(row, flush=True)
    json.dump(rows, open(os.path.join(out, "smem_ab.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
