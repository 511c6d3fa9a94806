"""Cold compile time of seed-suite layers on this machine, per stage (issue 5's compile target).

    python tools/compile_time.py resnet_3x3_28 [--sparsity 0.9] [--ptxas] [--profile out.prof]

Each layer compiles in a fresh process with an empty cache (what "cold"
means in docs/performance.md): IR template, passes, PTX, optionally ptxas.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import irprune
from irprune.bench.compile_jobs import bench_weights
from irprune.bench.suites import SUITES
layer = {l.name: l for ls in SUITES.values() for l in ls}[sys.argv[1]]; w = bench_weights(layer, float(sys.argv[2]), 0)
t1 = time.perf_counter()
k = irprune.conv2d(w, (1, layer.C, layer.H, layer.W), stride=layer.stride, padding=layer.padding,
                   cache=sys.argv[3], assemble=sys.argv[4] == "1")
t2 = time.perf_counter()
print(json.dumps({"layer": sys.argv[1], "nnz": k.stats["nnz"], "group_size": k.stats["group_size"],
                  "import_s": round(t1 - t0, 2), "compile_s": round(t2 - t1, 2),
                  "stages": k.stats["seconds"], "instructions_pruned": k.stats["instructions_pruned"]}))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("layers", nargs="+")
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--ptxas", action="store_true", help="run ptxas as well")
    ap.add_argument("--profile", help="cProfile the compile into this file (one layer)")
    a = ap.parse_args(argv)
    for name in a.layers:
        with tempfile.TemporaryDirectory() as cache:
            script = Path(cache) / "child.py"
            script.write_text(CHILD)
            cmd = [sys.executable] + (["-m", "cProfile", "-o", a.profile] if a.profile else [])
            cmd += [str(script), name, str(a.sparsity), cache, "1" if a.ptxas else "0"]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode:
                print(out.stderr, file=sys.stderr)
                return 1
            print(json.dumps(json.loads(out.stdout.strip().splitlines()[-1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
