"""Experiment: several channel groups in one block, so that their warps share the input through L1.

At batch 1 a 1x1 layer's blocks of one pixel range but different channel
groups run on different SMs, and each reads the same input channels from
L2: pw_128_128_56 at group 16 moves about 8 x 0.81 x 1.6 MB = 10 MB from L2
for 1.6 MB of input. Here the block gets a third dimension: threadIdx.z
picks one of M groups (group = blockIdx.y * M + threadIdx.z), so M warps of
one SM read the same input addresses and all but the first hit L1. The
kernel is irprune's own (pixel layout, one slice, budget 128); only the one
`mov %r, %ctaid.y` that feeds the group switch is rewritten in the PTX, and
the launch is (pixel blocks, groups / M) x (bx, 1, M). Each variant is
checked against float64 and timed per bx, side by side with the layer's
tuned kernel of the af3c68d run (group size, slices, budget, block).
"""
import json, os, re, sys
from concurrent.futures import ProcessPoolExecutor
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_timing import best_time, built_in_kernel, install_ptx

CACHE = "/tmp/zcache"
GROUPS = (4, 8, 16)
MS = (1, 2, 4, 8)
HERE = os.path.dirname(os.path.abspath(__file__))
PERF = os.path.join(HERE, "..", "..", "docs", "perf", "af3c68d")
_GROUP_READ = re.compile(r"mov\.u32\s+(%r\d+), %ctaid\.y;")


def tuned():
    """(layer, group size, slices, budget, block) of each 1x1 layer's tuned kernel at af3c68d."""
    out = []
    for f in ("mobilenet1x1-0.9-b1.json", "resnet50-1x1-0.9-b1.json"):
        for r in json.load(open(os.path.join(PERF, f)))["records"]:
            if r.get("impl") == "irprune" and r.get("status") == "ok":
                out.append((r["layer"], r["group_size"], r["slices"], r["max_registers"], r["block"]))
    return out


def z_ptx(ptx: str, m: int) -> str:
    """``ptx`` with its group index read as ctaid.y * m + tid.z."""
    found = _GROUP_READ.findall(ptx)
    if len(found) != 1:
        raise RuntimeError(f"expected one read of %ctaid.y, found {len(found)}")
    reg = found[0]
    new = ("{ .reg .b32 %zq<2>; mov.u32 %zq0, %ctaid.y; mov.u32 %zq1, %tid.z; "
           f"mad.lo.s32 {reg}, %zq0, {m}, %zq1; }}")
    return _GROUP_READ.sub(lambda _: new, ptx, count=1)


def prebuild(job):
    built_in_kernel(job[0], job[1], job[2], CACHE)


def assemble(args):
    """(ptx, ptxas result) of each part of one variant."""
    from irprune.codegen import run_ptxas
    from irprune.register_budget import set_max_registers
    (name, gs, slices, budget), m = args
    k, _, _ = built_in_kernel(name, gs, slices, CACHE)
    out = []
    for p in k.parts:
        ptx = set_max_registers(p.ptx, budget)
        if m:
            ptx = z_ptx(ptx, m)
        out.append((ptx, run_ptxas(ptx, k.cpu)))
    return out


def variant_kernel(name, gs, slices, budget, m, parts):
    k, w, l = built_in_kernel(name, gs, slices, CACHE)
    k = k.with_max_registers(budget)
    install_ptx(k, parts)
    if m:
        def launches(batch=None, k=k, m=m):
            g = k.geometry
            pixels = (g.N if batch is None else batch) * g.OH * g.OW
            return [(p, (-(-pixels // k.block), -(-p.groups // m), 1), (k.block, 1, m))
                    for p in k.parts]
        k.part_launches = launches
    return k, w, l


def main():
    out = os.environ.get("OUT", ".")
    base = tuned()
    builds = sorted({(n, gs, sl) for n, gs, sl, _, _ in base} |
                    {(n, gs, 1) for n, *_ in base for gs in GROUPS})
    todo = [((n, gs, sl, b), None) for n, gs, sl, b, _ in base]
    todo += [((n, gs, 1, 128), m) for n, *_ in base for gs in GROUPS for m in MS]
    print(len(builds), "kernels,", len(todo), "variants", flush=True)
    with ProcessPoolExecutor(16) as ex:
        list(ex.map(prebuild, builds))
        assembled = list(ex.map(assemble, todo))
    blocks_of = {n: blk for n, _, _, _, blk in base}
    rows = []
    for ((name, gs, sl, budget), m), parts in zip(todo, assembled):
        k, w, l = variant_kernel(name, gs, sl, budget, m, parts)
        if m is None:
            blocks = (blocks_of[name],)
        else:
            blocks = tuple(b for b in (32, 64, 128, 256) if b * m <= 512)
        best = best_time(k, w, l, 1, blocks)
        row = {"layer": name, "gs": gs, "slices": sl, "budget": budget,
               "m": "tuned" if m is None else m,
               "regs": max(r.registers for _, r in parts)}
        if best:
            row.update(us=round(best[0], 3), block=best[1], err=f"{best[2]:.1e}")
        rows.append(row)
        print(row, flush=True)
    json.dump(rows, open(os.path.join(out, "zgroups_ab.json"), "w"), indent=1)
    # Per layer: tuned time, best z variant, best M=1 variant.
    for name in dict.fromkeys(n for n, *_ in base):
        rs = [r for r in rows if r["layer"] == name and "us" in r]
        t = [r for r in rs if r["m"] == "tuned"]
        z1 = min((r for r in rs if r["m"] == 1), key=lambda r: r["us"], default=None)
        zm = min((r for r in rs if r["m"] not in ("tuned", 1)), key=lambda r: r["us"], default=None)
        print(name, "tuned", t[0]["us"] if t else None, "| M=1", z1 and (z1["us"], z1["gs"], z1["block"]),
              "| M>1", zm and (zm["us"], zm["gs"], zm["m"], zm["block"]), flush=True)


if __name__ == "__main__":
    main()
