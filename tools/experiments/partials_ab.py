"""Experiment: two partial sums per output channel (even and odd input channels), A/B.

In the tuned 1x1 kernels ptxas issues every input load up front and then runs
the FMAs as ``group_size`` dependent chains, one per accumulator; with 1-2 warps
per scheduler a chain's 4-cycle FMA latency is not hidden (Nsight Compute's
"wait" stall, 1.7 cycles per issued instruction on pw_256_512_14). The variant
template (generated/conv2d_p2.py, written from templates/conv2d.py by
``python3 partials_ab.py generate``) adds input channel c into a second
accumulator when c is odd and sums the two before the store, which doubles the
independent chains at the cost of ``group_size`` registers and adds.

Every pixel-layout configuration of the c107ed9 run (docs/perf/c107ed9/results.json:
the 17 1x1 layers at batch 1, the seed suite at batches 1 and 64; row tiles are
left out, their template is not changed) is compiled with both templates, checked
against float64 and timed one after the other in this process, inputs rotating
over 16 sets.

    python3 partials_ab.py generate        # CPU machine: the variant into generated/
    python3 partials_ab.py [LAYER ...]     # on the GPU; results in $OUT/partials_ab.json
"""
import json, os, sys
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "generated"))
from gpu_timing import (build_all, compile_layer, config_row, print_geomeans, recorded_configs,
                        time_into)

CACHE = "/tmp/partialscache"
RESULTS = os.path.join(HERE, "..", "..", "docs", "perf", "c107ed9", "results.json")

# (old, new): each must occur exactly once in templates/conv2d.py.
EDITS = [
    ("    acc = cuda.local.array(MAX_GROUP, float32)\n",
     "    acc = cuda.local.array(MAX_GROUP, float32)\n"
     "    acc2 = cuda.local.array(MAX_GROUP, float32)\n"),
    ("        acc[kk] = float32(0.0)\n",
     "        acc[kk] = float32(0.0)\n        acc2[kk] = float32(0.0)\n"),
    ("                            if k0 + kk < K:\n"
     "                                acc[kk] += v * w[k0 + kk, c, r, s]\n",
     "                            if k0 + kk < K:\n"
     "                                if c % 2 == 1:\n"
     "                                    acc2[kk] += v * w[k0 + kk, c, r, s]\n"
     "                                else:\n"
     "                                    acc[kk] += v * w[k0 + kk, c, r, s]\n"),
    ("    if slices > 1:\n        # Slices 1..",
     "    for kk in range(group_size):\n        acc[kk] += acc2[kk]\n"
     "    if slices > 1:\n        # Slices 1.."),
]


def generate():
    text = open(os.path.join(HERE, "..", "..", "templates", "conv2d.py")).read()
    for old, new in EDITS:
        if text.count(old) != 1:
            raise SystemExit(f"template changed, edit not applicable: {old[:60]!r}")
        text = text.replace(old, new)
    os.makedirs(os.path.join(HERE, "generated"), exist_ok=True)
    open(os.path.join(HERE, "generated", "conv2d_p2.py"), "w").write(text)


def kernel(variant, cfg):
    if variant == "p2":
        from conv2d_p2 import conv2d_nchw
    else:
        from irprune.templates.conv2d import conv2d_nchw
    return compile_layer(conv2d_nchw, cfg.layer, cfg.gs, cfg.slices, CACHE, cfg.budget,
                         assemble=True)


def prebuild(job):
    kernel(*job)


def main():
    if sys.argv[1:2] == ["generate"]:
        return generate()
    out = os.environ.get("OUT", ".")
    cfgs = recorded_configs(RESULTS, tiles=False, layers=sys.argv[1:])
    jobs = [(v, c) for c in cfgs for v in ("base", "p2")]
    print(len(jobs), "kernels", flush=True)
    build_all(prebuild, jobs)
    rows = []
    for c in cfgs:
        row = config_row(c)
        try:
            # Each template twice, interleaved (base, p2, base, p2): a drift over the run
            # shows up as a gap between the two timings of one template.
            for v, tmpl in (("base", "base"), ("p2", "p2"), ("base2", "base"), ("p2b", "p2")):
                k, w, l = kernel(tmpl, c)
                time_into(row, v, k, w, l, c)
                row[v + "_regs"] = k.registers
            row["speedup"] = round(min(row["base"], row["base2"]) / min(row["p2"], row["p2b"]), 3)
        except Exception as exc:
            row["error"] = str(exc)[:300]
        rows.append(row)
        print(row, flush=True)
    json.dump(rows, open(os.path.join(out, "partials_ab.json"), "w"), indent=1)
    print_geomeans(rows)

if __name__ == "__main__":
    main()
