"""Experiment: the large 1x1 layers with input-channel slices across blocks and larger groups.

The large layers wait for their code (docs/perf-log.md, "The large layers wait for their
code"): every SM fetches its own stream at about 4 bytes a cycle, and about half of each
stream is input loads. A load feeds every output channel of the group that uses its input
channel, so larger groups need fewer loads per FMA (group 4 at 0.9: 0.86 loads an FMA;
group 16: 0.51; group 64: 0.16), but a layer then has fewer groups than SMs. Slicing the
input channels over S blocks (splitc_template.py, blockIdx.z) keeps about 128 streams with
groups S times larger. What this measures is the kernel alone: each block adds its partial
sums into the output with float atomics, and the timed loop lets the output accumulate (a
product would reduce the slices elsewhere, e.g. in a cluster's shared memory); the fastest
variant is also timed with the output zeroed in the timed call.

For each large layer: its tuned configuration of the 0eb8e05 run with the built-in template,
and the split variants whose group count times slices is 128, with the group at least twice
the tuned one. Compiles run in parallel processes first; every output is checked against
float64 (the split template's pixel index is Numba's int64 math: a prologue of about 50
instructions the built-in template no longer has).

    python3 large_splitc.py [LAYER ...]     # GPU; results in $OUT/large-splitc.json
"""
import json, os, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gpu_timing import best_time, build_all, compile_layer, layer_of, recorded_configs
import splitc_ab
from splitc_ab import as_split_launch, time_split, time_with_zeroing

RESULTS = os.path.join(HERE, "..", "..", "docs", "perf", "0eb8e05", "results.json")
CACHE = os.environ.get("SPLIT_CACHE", "/tmp/largesplit")
LARGE = ("pw_512_1024_7", "pw_1024_1024_7", "l3_down_512_1024_s2", "l4_1x1_1024_512",
         "l4_1x1_512_2048", "l4_down_1024_2048_s2", "l4_1x1_2048_512")
STREAMS = 128
SLICES = (2, 4, 8)
MAX_CHAINS = 70_000  # group x input channels of the IR template (its unrolling time)
MIN_SLICE_CHANNELS = 64
splitc_ab.PER_BLOCK = (1, 2)
splitc_ab.BLOCKS = (32, 64)


def variants(cfg):
    l = layer_of(cfg.layer)
    out = []
    for s in SLICES:
        gs = l.K * s // STREAMS
        if (gs >= 2 * cfg.gs and l.K % gs == 0 and gs <= 64 and gs * l.C <= MAX_CHAINS
                and l.C // s >= MIN_SLICE_CHANNELS):
            out.append((gs, s))
    return out


def build(job):
    kind, cfg, gs, s = job
    if kind == "base":
        from irprune.templates.conv2d import conv2d_nchw
        compile_layer(conv2d_nchw, cfg.layer, cfg.gs, cfg.slices, CACHE, cfg.budget, assemble=True)
    else:
        from splitc_template import conv2d_splitc
        compile_layer(conv2d_splitc, cfg.layer, gs, s, CACHE, 128, assemble=True)


def main():
    out = os.environ.get("OUT", ".")
    cfgs = recorded_configs(RESULTS, tiles=False, layers=sys.argv[1:] or LARGE)
    jobs = [("split", c, gs, s) for c in cfgs for gs, s in variants(c)]
    jobs += [("base", c, None, None) for c in cfgs]
    print(len(jobs), "kernels", flush=True)
    t0 = time.time()
    build_all(build, jobs, workers=int(os.environ.get("WORKERS", "16")))
    print(f"compiled in {time.time() - t0:.0f} s", flush=True)
    from irprune.templates.conv2d import conv2d_nchw
    from splitc_template import conv2d_splitc
    rows = []
    for c in cfgs:
        k, w, l = compile_layer(conv2d_nchw, c.layer, c.gs, c.slices, CACHE, c.budget,
                                assemble=True)
        k.groups_per_block = c.m
        us, blk, err = best_time(k, w, l, 1, (c.block,), rotation=16)
        row = {"layer": c.layer, "kind": "tuned", "gs": c.gs, "slices": c.slices, "m": c.m,
               "block": blk, "us": round(us, 3), "err": f"{err:.1e}"}
        rows.append(row)
        print(row, flush=True)
        for gs, s in variants(c):
            try:
                k, w, l = compile_layer(conv2d_splitc, c.layer, gs, s, CACHE, 128, assemble=True)
                k = as_split_launch(k, s)
                for t, bx, m, e in time_split(k, w, l, s)[0]:
                    rows.append({"layer": c.layer, "kind": "split", "gs": gs, "s": s, "m": m,
                                 "block": bx, "us": round(t, 3), "err": f"{e:.1e}",
                                 "regs": k.registers})
                best = min((r for r in rows if r["layer"] == c.layer and r.get("gs") == gs
                            and r.get("s") == s and r["kind"] == "split"), key=lambda r: r["us"])
                print(best, flush=True)
            except Exception as exc:
                rows.append({"layer": c.layer, "kind": "split", "gs": gs, "s": s,
                             "error": str(exc)[:300]})
                print(rows[-1], flush=True)
    for c in cfgs:
        rs = [r for r in rows if r["layer"] == c.layer and r["kind"] == "split" and "us" in r]
        if not rs:
            continue
        v = min(rs, key=lambda r: r["us"])
        k, w, l = compile_layer(conv2d_splitc, c.layer, v["gs"], v["s"], CACHE, 128, assemble=True)
        v["us_with_zero"] = time_with_zeroing(k, l, v)
        t = [r for r in rows if r["layer"] == c.layer and r["kind"] == "tuned"][0]
        print(f"{c.layer}: tuned {t['us']} (g{c.gs}) | best split {v['us']} "
              f"(g{v['gs']} s{v['s']} m{v['m']} b{v['block']}), with zeroing {v['us_with_zero']} "
              f"| tuned / split {t['us'] / v['us']:.3f}", flush=True)
    json.dump(rows, open(os.path.join(out, "large-splitc.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
