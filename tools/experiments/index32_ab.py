"""Experiment: the built-in templates' pixel index math in 32-bit unsigned arithmetic, A/B.

Every irprune configuration the a889d9e run timed (docs/perf/a889d9e/results.json:
the 17 1x1 layers at batch 1, the seed suite at batches 1 and 64; group size,
slices, row tile, register budget, block, groups per block) is compiled twice:
with the templates as they were at a889d9e (int64 floor division of the pixel
index by OH * OW and OW: generated/conv2d_int64.py and generated/conv2d_rows_int64.py,
written by ``python3 index32_ab.py generate`` from git on the CPU machine) and
with the templates as they are now. Both are checked against float64 and timed
one after the other in this process, inputs rotating over 16 sets.

    python3 index32_ab.py generate        # CPU machine: the a889d9e templates into generated/
    python3 index32_ab.py [LAYER ...]     # on the GPU; results in $OUT/index32_ab.json
"""
import json, math, os, subprocess, sys
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "generated"))
from gpu_timing import best_time, build_all, compile_layer

CACHE = "/tmp/index32cache"
RESULTS = os.path.join(HERE, "..", "..", "docs", "perf", "a889d9e", "results.json")
OLD = "a889d9e"


def generate():
    root = os.path.join(HERE, "..", "..")
    os.makedirs(os.path.join(HERE, "generated"), exist_ok=True)
    for src, dst in (("templates/conv2d.py", "conv2d_int64.py"),
                     ("templates/conv2d_rows.py", "conv2d_rows_int64.py")):
        text = subprocess.run(["git", "show", f"{OLD}:{src}"], cwd=root, check=True,
                              capture_output=True, text=True).stdout
        open(os.path.join(HERE, "generated", dst), "w").write(text)


def configs():
    """[(suite, layer, batch, gs, slices, tile, budget, block, groups per block)] of the a889d9e run."""
    out = []
    for r in json.load(open(RESULTS))["records"]:
        if r.get("impl") == "irprune" and r.get("status") == "ok":
            out.append((r["suite"], r["layer"], r["batch"], r["group_size"], r["slices"],
                        tuple(r["tile"]) if r["tile"] else None, r["max_registers"], r["block"],
                        r["groups_per_block"]))
    return out


def kernel(variant, cfg):
    if variant == "int64":
        from conv2d_int64 import conv2d_nchw
        from conv2d_rows_int64 import conv2d_rows
    else:
        from irprune.templates.conv2d import conv2d_nchw
        from irprune.templates.conv2d_rows import conv2d_rows
    suite, name, batch, gs, sl, tile, budget, blk, per = cfg
    return compile_layer(conv2d_rows if tile else conv2d_nchw, name, gs, sl, CACHE, budget,
                         tile=tile, assemble=True)


def prebuild(job):
    kernel(*job)


def main():
    if sys.argv[1:2] == ["generate"]:
        return generate()
    out = os.environ.get("OUT", ".")
    cfgs = [c for c in configs() if not sys.argv[1:] or c[1] in sys.argv[1:]]
    jobs = [(v, c) for c in cfgs for v in ("int64", "index32")]
    print(len(jobs), "kernels", flush=True)
    build_all(prebuild, jobs)
    rows = []
    for c in cfgs:
        row = {"suite": c[0], "layer": c[1], "batch": c[2], "gs": c[3], "slices": c[4],
               "tile": c[5], "budget": c[6], "block": c[7], "m": c[8]}
        try:
            for v in ("int64", "index32"):
                k, w, l = kernel(v, c)
                k.groups_per_block = c[8]
                us, _, err = best_time(k, w, l, c[2], (c[7],), rotation=16)
                row[v] = round(us, 3)
                row[v + "_err"] = f"{err:.1e}"
                row[v + "_regs"] = k.registers
            row["speedup"] = round(row["int64"] / row["index32"], 3)
        except Exception as exc:
            row["error"] = str(exc)[:300]
        rows.append(row)
        print(row, flush=True)
    json.dump(rows, open(os.path.join(out, "index32_ab.json"), "w"), indent=1)
    groups = {}
    for r in rows:
        if "speedup" in r:
            key = ("1x1" if r["suite"] != "seed" else "seed", r["batch"])
            groups.setdefault(key, []).append(r["speedup"])
    for key, v in sorted(groups.items()):
        print(f"{key[0]} batch {key[1]}: {len(v)} layers, geomean speedup "
              f"{math.exp(sum(map(math.log, v)) / len(v)):.3f}x, min {min(v):.3f}, max {max(v):.3f}",
              flush=True)


if __name__ == "__main__":
    main()
