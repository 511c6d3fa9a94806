"""Experiment: a `prefetch` of the input D channels ahead of each input load, on the GPU.

The built-in template's thread walks its input channels in order; each
channel's first load misses L1, so a thread pays one L2 (or DRAM) round trip
per channel that ptxas cannot hide (it has no registers to hoist loads
further). Here the PTX of the tuned kernels is rewritten: before every
``ld.global.nc.b32 [addr]`` a ``prefetch.global.L1/L2 [addr + D*H*W*4]``
(the same tap D channels later), which needs no register. Inputs are
allocated with room past the end, since the last image's last channels
prefetch past the tensor. Each variant is checked against float64, then
timed per block size (best of the blocks), side by side in one run.
"""
import json, os, re, sys
from concurrent.futures import ProcessPoolExecutor
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_timing import best_time, built_in_kernel, install_ptx

CACHE = "/tmp/pfcache"
# (layer, group size, slices, batch, blocks): the tuned choices of the a9fb0ec run.
JOBS = [
    ("resnet_3x3_28", 32, 1, 64, (128, 256)),
    ("resnet_3x3_56", 64, 1, 64, (64, 128)),
    ("vgg16_c3", 64, 1, 64, (128, 256)),
    ("alexnet_cifar_c2", 32, 2, 64, (64, 128)),
    ("lenet5_c2", 2, 1, 64, (128,)),
    ("resnet_3x3_28", 8, 4, 1, (128,)),
    ("vgg16_c3", 32, 2, 1, (128,)),
]
# (name, cache level, channels ahead, every n-th load)
VARIANTS = [("base", None, 0, 1), ("L1d1", "L1", 1, 1), ("L1d2", "L1", 2, 1),
            ("L1d4", "L1", 4, 1), ("L2d2", "L2", 2, 1), ("L2d8", "L2", 8, 1),
            ("L1d2/3", "L1", 2, 3)]
_LD = re.compile(r"^(\s*)ld\.global\.nc\.b32\s+%r\d+,\s*\[(%rd\d+)(?:\+(-?\d+))?\];", re.M)



def with_prefetch(ptx, level, shift, every):
    n = [0]

    def sub(m):
        n[0] += 1
        if (n[0] - 1) % every:
            return m.group(0)
        off = int(m.group(3) or 0) + shift
        return f"{m.group(1)}prefetch.global.{level} [{m.group(2)}+{off}];\n{m.group(0)}"
    return _LD.sub(sub, ptx)


def build(job):
    return built_in_kernel(job[0], job[1], job[2], CACHE)


def prebuild(job):
    build(job)  # into the disk cache; the kernel itself does not pickle


def variant(args):
    from irprune.codegen import run_ptxas
    job, v = args
    k, w, l = build(job)
    plane = l.H * l.W * 4
    out = []
    for p in k.parts:
        ptx = p.ptx if v[1] is None else with_prefetch(p.ptx, v[1], v[2] * plane, v[3])
        r = run_ptxas(ptx, k.cpu)
        out.append((ptx, r))
    return out


def main():
    out = os.environ.get("OUT", ".")
    with ProcessPoolExecutor(16) as ex:
        list(ex.map(prebuild, JOBS))
        todo = [(j, v) for j in JOBS for v in VARIANTS]
        built = list(ex.map(variant, todo))
    rows = []
    for (job, v), parts in zip(todo, built):
        k, w, l = build(job)
        regs = install_ptx(k, parts)
        t, blk, err = best_time(k, w, l, job[3], job[4], pad_bytes=v[2] * l.H * l.W * 4 * 2 + 4096)
        row = {"layer": job[0], "gs": job[1], "slices": job[2], "batch": job[3], "variant": v[0],
               "us": round(t, 2), "block": blk, "err": f"{err:.1e}", "regs": regs}
        rows.append(row)
        print(row, flush=True)
    json.dump(rows, open(os.path.join(out, "prefetch_ab.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
