"""Experiment: pixels per thread (tile variants u2, u4 from gen.py) and one launch per region (parts), on the GPU."""
import json, os, sys, time, importlib
from concurrent.futures import ProcessPoolExecutor
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen import gen_tile
from gpu_timing import best_time
gen_tile("u2", 2)
gen_tile("u4", 4)
CACHE = "/tmp/abcache"

JOBS = [
    # (layer, template, gs, slices, part_limit, batches)
    ("resnet_3x3_28", "prod", 32, 1, 0, (64,)),
    ("resnet_3x3_28", "prod", 32, 1, 1, (64,)),
    ("resnet_3x3_28", "prod", 64, 1, 0, (64,)),
    ("resnet_3x3_28", "prod", 64, 1, 1, (64,)),
    ("resnet_3x3_28", "prod", 16, 1, 1, (64,)),
    ("resnet_3x3_28", "u2", 16, 1, 0, (64,)),
    ("resnet_3x3_28", "u2", 32, 1, 0, (64,)),
    ("resnet_3x3_28", "u2", 32, 1, 1, (64,)),
    ("resnet_3x3_28", "u4", 16, 1, 0, (64,)),
    ("resnet_3x3_28", "u4", 16, 1, 1, (64,)),
    ("resnet_3x3_28", "prod", 8, 1, 0, (1,)),
    ("resnet_3x3_28", "prod", 8, 4, 0, (1,)),
    ("resnet_3x3_28", "u2", 8, 1, 0, (1,)),
    ("resnet_3x3_28", "u2", 4, 1, 0, (1,)),
    ("resnet_3x3_56", "prod", 64, 1, 0, (64,)),
    ("resnet_3x3_56", "u2", 32, 1, 0, (64,)),
    ("resnet_3x3_56", "u2", 64, 1, 0, (64,)),
    ("resnet_3x3_56", "u4", 16, 1, 0, (64,)),
    ("resnet_3x3_56", "u4", 32, 1, 0, (64,)),
    ("vgg16_c3", "prod", 64, 1, 0, (64,)),
    ("vgg16_c3", "prod", 64, 1, 1, (64,)),
    ("vgg16_c3", "u2", 32, 1, 0, (64,)),
    ("vgg16_c3", "u2", 32, 1, 1, (64,)),
    ("alexnet_cifar_c2", "prod", 32, 2, 0, (64,)),
    ("alexnet_cifar_c2", "u2", 32, 1, 0, (64,)),
]


def template(name):
    if name == "prod":
        from irprune.templates.conv2d import conv2d_nchw
        return conv2d_nchw
    return importlib.import_module(name).conv2d_tile


def build(job, load=False):
    layer_name, tname, gs, slices, plimit, _ = job
    if plimit:
        os.environ["IRPRUNE_MAX_PART_NNZ"] = str(plimit)
    else:
        os.environ.pop("IRPRUNE_MAX_PART_NNZ", None)
    os.environ.setdefault("IRPRUNE_JOBS", "1")
    from irprune.bench.compile_jobs import bench_weights
    from irprune.bench.suites import SUITES
    from irprune.cache import DiskCache
    layer = {l.name: l for ls in SUITES.values() for l in ls}[layer_name]
    w = bench_weights(layer, 0.9, 0)
    t0 = time.perf_counter()
    k = template(tname).compile(w, (1, layer.C, layer.H, layer.W), stride=layer.stride,
                                padding=layer.padding, group_size=gs, slices=slices,
                                cache=DiskCache(CACHE), assemble=True)
    if load:
        return k, w, layer
    return {"job": job, "s": round(time.perf_counter() - t0, 1), "regs": k.stats["ptxas"]["registers"],
            "cubin": k.stats["ptxas"]["cubin_bytes"], "parts": len(k.parts), "fma": k.stats["fma_ptx"],
            "spill": k.stats["ptxas"]["spill_stores"]}


def main():
    out = os.environ.get("OUT", ".")
    with ProcessPoolExecutor(16) as ex:
        info = list(ex.map(build, JOBS))
    for i in info:
        print("compiled", i, flush=True)
    rows = []
    for job in JOBS:
        k, w, layer = build(job, load=True)
        tname = job[1]
        for b in job[5]:
            best = best_time(k, w, layer, b)
            row = {"layer": job[0], "tmpl": tname, "gs": job[2], "slices": job[3], "parts": len(k.parts),
                   "batch": b, "us": round(best[0], 2), "block": best[1], "err": best[2],
                   "regs": k.stats["ptxas"]["registers"]}
            rows.append(row)
            print(row, flush=True)
    json.dump(rows, open(os.path.join(out, "ab.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
