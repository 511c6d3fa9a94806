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
import os, subprocess, sys
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "generated"))
from gpu_timing import compile_layer, recorded_configs, time_compiled_pair

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


def kernel(variant, cfg):
    if variant == "int64":
        from conv2d_int64 import conv2d_nchw
        from conv2d_rows_int64 import conv2d_rows
    else:
        from irprune.templates.conv2d import conv2d_nchw
        from irprune.templates.conv2d_rows import conv2d_rows
    return compile_layer(conv2d_rows if cfg.tile else conv2d_nchw, cfg.layer, cfg.gs, cfg.slices,
                         CACHE, cfg.budget, tile=cfg.tile, assemble=True)


def main():
    if sys.argv[1:2] == ["generate"]:
        return generate()
    time_compiled_pair(recorded_configs(RESULTS, layers=sys.argv[1:]), kernel,
                       ("int64", "index32"), "index32_ab.json")

if __name__ == "__main__":
    main()
