"""Experiment: template variants against the built-in template on the GPU.

    python3 smem2_ab.py        # the double-buffered shared-memory tile (smem2_template.txt)
                               # and the single-buffered one; optionally ptxas capped at fewer
                               # registers (a `.maxnreg` directive in the PTX)
    python3 smem2_ab.py pad    # the shared-memory tile with a padded row pitch (smemp) and
                               # output rows padded to whole warps (rowpad_template.txt)
"""
import importlib, json, os, sys
from concurrent.futures import ProcessPoolExecutor
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen import gen_rowpad, gen_smem, gen_smem2
from gpu_timing import best_time
from gpu_timing import layer_of

CACHE = "/tmp/smem2cache"
# (layer, kind, (TR, CC) or None, group size, slices, batches, maxnreg or None)
SMEM2_JOBS = [
    ("resnet_3x3_28", "base", None, 32, 1, (64,), None),
    ("resnet_3x3_28", "smem", (4, 2), 32, 1, (64,), None),
    ("resnet_3x3_28", "smem2", (4, 2), 32, 1, (64,), None),
    ("resnet_3x3_28", "smem2", (4, 2), 32, 1, (64,), 80),
    ("resnet_3x3_28", "smem2", (4, 1), 32, 1, (64,), None),
    ("resnet_3x3_28", "smem2", (7, 2), 32, 1, (64,), None),
    ("resnet_3x3_28", "smem2", (4, 2), 64, 1, (64,), None),
    ("resnet_3x3_28", "smem2", (4, 2), 16, 1, (64,), None),
    ("resnet_3x3_56", "base", None, 64, 1, (64,), None),
    ("resnet_3x3_56", "smem2", (2, 2), 64, 1, (64,), None),
    ("resnet_3x3_56", "smem2", (2, 2), 32, 1, (64,), None),
    ("resnet_3x3_56", "smem2", (4, 1), 32, 1, (64,), None),
    ("vgg16_c3", "base", None, 64, 1, (64,), None),
    ("vgg16_c3", "smem2", (1, 2), 64, 1, (64,), None),
    ("vgg16_c3", "smem2", (2, 1), 32, 1, (64,), None),
    ("alexnet_cifar_c2", "base", None, 32, 2, (64,), None),
    ("alexnet_cifar_c2", "smem2", (4, 2), 32, 1, (64,), None),
    ("alexnet_cifar_c2", "smem2", (8, 2), 16, 1, (64,), None),
]
# The padded shared-memory tile (smemp: pitch = OW mod 32) and whole-warp rows (rowpad).
PAD_JOBS = [
    ("resnet_3x3_28", "base", None, 32, 1, (64,), None),
    ("resnet_3x3_28", "smem", (4, 2), 32, 1, (64,), None),
    ("resnet_3x3_28", "smemp", (4, 2), 32, 1, (64,), None),
    ("resnet_3x3_28", "smemp", (4, 1), 32, 1, (64,), None),
    ("resnet_3x3_28", "smemp", (7, 2), 32, 1, (64,), None),
    ("resnet_3x3_28", "smemp", (4, 2), 64, 1, (64,), None),
    ("resnet_3x3_28", "rowpad", None, 32, 1, (64,), None),
    ("resnet_3x3_28", "rowpad", None, 64, 1, (64,), None),
    ("resnet_3x3_56", "base", None, 64, 1, (64,), None),
    ("resnet_3x3_56", "smemp", (2, 2), 64, 1, (64,), None),
    ("resnet_3x3_56", "smemp", (4, 2), 32, 1, (64,), None),
    ("resnet_3x3_56", "rowpad", None, 64, 1, (64,), None),
    ("vgg16_c3", "base", None, 64, 1, (64,), None),
    ("vgg16_c3", "smemp", (1, 2), 64, 1, (64,), None),
    ("vgg16_c3", "rowpad", None, 64, 1, (64,), None),
    ("alexnet_cifar_c2", "base", None, 32, 2, (64,), None),
    ("alexnet_cifar_c2", "smemp", (8, 2), 16, 1, (64,), None),
    ("alexnet_cifar_c2", "rowpad", None, 32, 1, (64,), None),
]
JOBS = PAD_JOBS if "pad" in sys.argv[1:] else SMEM2_JOBS


def rows_of_threads(ow: int) -> int:
    """Threads a row takes in rowpad_template.txt."""
    return 8 if ow <= 8 else 16 if ow <= 16 else 32 * -(-ow // 32)


def template(job):
    name, kind, tc = job[0], job[1], job[2]
    if kind == "base":
        from irprune.templates.conv2d import conv2d_nchw
        return conv2d_nchw
    l = layer_of(name)
    if kind == "rowpad":
        mod = "rowpad"
        gen_rowpad(mod)
    else:
        mod = f"{kind}_{name}_{tc[0]}_{tc[1]}"
        gen = gen_smem2 if kind == "smem2" else gen_smem
        gen(mod, tc[0], tc[1], l.R, l.S, l.stride, l.geometry(1).OW, *((1,) if kind == "smemp" else ()))
    importlib.invalidate_caches()
    return getattr(importlib.import_module(mod), "conv2d_" + kind.replace("smemp", "smem"))


def build(job, load=False):
    os.environ.setdefault("IRPRUNE_JOBS", "1")
    from irprune.bench.compile_jobs import bench_weights
    from irprune.cache import DiskCache
    from irprune.codegen import run_ptxas
    l = layer_of(job[0])
    w = bench_weights(l, 0.9, 0)
    k = template(job).compile(w, (1, l.C, l.H, l.W), stride=l.stride, padding=l.padding,
                              group_size=job[3], slices=job[4], cache=DiskCache(CACHE))
    if job[6]:
        for p in k.parts:
            p.ptx = p.ptx.replace("\n{\n", f"\n.maxnreg {job[6]}\n{{\n", 1)
        k.cache_key = None
    for p, r in zip(k.parts, [run_ptxas(p.ptx, k.cpu) for p in k.parts]):
        p._ptxas = r
    regs = max(p._ptxas.registers for p in k.parts)
    spills = sum(p._ptxas.spill_stores or 0 for p in k.parts)
    if job[1] == "rowpad":  # grid x covers the padded rows
        g, owp = l.geometry(1), rows_of_threads(l.geometry(1).OW)
        k.grid_for = lambda batch, k=k: (-(-batch * g.OH * owp // k.block), k.groups, 1)
    if load:
        return k, w, l, regs, spills
    return job, regs, spills


def main():
    out = os.environ.get("OUT", ".")
    with ProcessPoolExecutor(16) as ex:
        for r in ex.map(build, JOBS):
            print("compiled", r, flush=True)
    rows = []
    for job in JOBS:
        k, w, l, regs, spills = build(job, load=True)
        g = l.geometry(1)
        blocks = (64, 128, 256) if job[2] is None else (job[2][0] * g.OW,)
        for b in job[5]:
            best = best_time(k, w, l, b, blocks)
            row = {"layer": job[0], "kind": job[1], "tile": job[2], "gs": job[3], "slices": job[4],
                   "maxnreg": job[6], "batch": b, "us": round(best[0], 2), "block": best[1],
                   "err": f"{best[2]:.1e}", "regs": regs, "spills": spills}
            rows.append(row)
            print(row, flush=True)
    name = "pad_ab.json" if JOBS is PAD_JOBS else "smem2_ab.json"
    json.dump(rows, open(os.path.join(out, name), "w"), indent=1)


if __name__ == "__main__":
    main()
