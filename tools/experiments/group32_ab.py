"""Experiment: group size 32 on the 7x7 large 1x1 layers (the large-layer tuner stops at 16).

The large layers are bound by fetching their code (docs/perf-log.md): fewer, larger channel
groups load each input value for more FMAs, so the module holds fewer load instructions
(l4_1x1_512_2048: 53K loads at group 16, about 32K at 32) for the same FMAs, but the grid
has half the blocks. This times, for each layer, its tuned configuration of the 0fb64ac run
and group size 32 with 1 and 2 slices at budget 128, over blocks of 32 and 64 threads and 1
or 2 groups per block, twice each, interleaved (inputs over 16 sets, every output checked
against float64).

    python3 group32_ab.py [LAYER ...]   # GPU: $OUT/group32-ab.json
"""
import json, os, sys
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gpu_timing import best_time, build_all
from large_anatomy import configs, kernel

LAYERS = ("l4_1x1_512_2048", "l4_down_1024_2048_s2", "l4_1x1_2048_512", "pw_1024_1024_7")


def main():
    out = os.environ.get("OUT", ".")
    tuned = configs(sys.argv[1:] or LAYERS)
    trials = []
    for c in tuned:
        trials.append(("tuned", c, [(c.block, c.m)]))
        for sl in (1, 2):
            g = c._replace(gs=32, slices=sl, budget=128)
            trials.append((f"g32s{sl}", g, [(b, m) for b in (32, 64) for m in (1, 2)]))
    build_all(kernel, [c for _, c, _ in trials])
    rows = []
    for rnd in range(2):
        for name, c, shapes in trials:
            k, w, l = kernel(c)
            for blk, m in shapes:
                if any(p.groups % m for p in k.parts):
                    continue
                k.groups_per_block = m
                try:
                    us, _, err = best_time(k, w, l, 1, (blk,), rotation=16)
                except Exception as exc:  # a shape that does not launch
                    print(c.layer, name, blk, m, "failed:", str(exc)[:120], flush=True)
                    continue
                row = dict(layer=c.layer, variant=name, round=rnd, gs=c.gs, slices=c.slices,
                           block=blk, m=m, us=round(us, 3), err=f"{err:.1e}",
                           cubin_bytes=k.stats["ptxas"]["cubin_bytes"])
                rows.append(row)
                print(json.dumps(row), flush=True)
        json.dump(rows, open(os.path.join(out, "group32-ab.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
