"""Experiment: raise ptxas's register budget (`.maxnreg`) so that a thread keeps more input loads in flight.

Without a cap ptxas compiles most 1x1 kernels to 32 registers, which keeps
only about 17 input loads of a thread in flight (the SASS issues 17 loads,
then one per FMA group); a batch-1 thread that sums 80+ input channels then
waits on several L2/DRAM round trips in a row. With `.maxnreg 128` the same
PTX becomes a kernel that issues about 80 loads up front (126 registers).
Here every kernel's PTX gets `.maxnreg N` for N in CAPS (0: none), is
checked against float64 and timed per block size (best of the blocks), side
by side in one run: the 1x1 layers at batch 1 at their tuned (group size,
slices) of the a9fb0ec run and at group sizes 8 and 16, and the seed
suite's pixel-layout choices of the 41aa51f run.
"""
import json, os, sys
from concurrent.futures import ProcessPoolExecutor
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_timing import best_time, built_in_kernel, install_ptx

CACHE = "/tmp/mrcache"
CAPS = (0, 64, 128, 255)
HERE = os.path.dirname(os.path.abspath(__file__))
PERF = os.path.join(HERE, "..", "..", "docs", "perf")


def jobs():
    """(layer, group size, slices, batch) to measure."""
    out = []
    for f in ("a9fb0ec/mobilenet1x1-0.9.json", "a9fb0ec/resnet50-1x1-0.9.json",
              "41aa51f/seed-0.9-b1.json", "41aa51f/seed-0.9-b64.json"):
        for r in json.load(open(os.path.join(PERF, f)))["records"]:
            if r.get("impl") != "irprune" or r.get("status") != "ok" or r.get("tile"):
                continue
            if r["batch"] not in (1, 64):
                continue
            out.append((r["layer"], r["group_size"], r["slices"], r["batch"]))
            if "1x1" in f and r["batch"] == 1:
                for gs in (8, 16):
                    if gs != r["group_size"]:
                        out.append((r["layer"], gs, 1, 1))
    return out



def build(job):
    return built_in_kernel(job[0], job[1], job[2], CACHE)


def prebuild(job):
    build(job)


def variant(args):
    from irprune.codegen import run_ptxas
    from irprune.register_budget import set_max_registers
    job, cap = args
    k, w, l = build(job)
    ptxs = [set_max_registers(p.ptx, cap or None) for p in k.parts]
    return [(ptx, run_ptxas(ptx, k.cpu)) for ptx in ptxs]


def main():
    out = os.environ.get("OUT", ".")
    js = jobs()
    print(len(js), "jobs", flush=True)
    with ProcessPoolExecutor(16) as ex:
        list(ex.map(prebuild, js))
        todo = [(j, c) for j in js for c in CAPS]
        built = list(ex.map(variant, todo))
    rows = []
    for (job, cap), parts in zip(todo, built):
        k, w, l = build(job)
        regs = install_ptx(k, parts)
        blocks = (32, 64, 128) if job[2] > 1 else (64, 128, 256)
        best = best_time(k, w, l, job[3], blocks)
        row = {"layer": job[0], "gs": job[1], "slices": job[2], "batch": job[3], "cap": cap,
               "regs": regs, "spills": max(r.spill_stores for _, r in parts)}
        if best:
            row.update(us=round(best[0], 3), block=best[1], err=f"{best[2]:.1e}")
        rows.append(row)
        print(row, flush=True)
    json.dump(rows, open(os.path.join(out, "maxnreg_ab.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
