"""Compile time and peak memory of one layer, each compile in a fresh process.

    python tools/measure_resources.py --suite resnet50 --layer l4_3x3_512_512_s2 --sparsities 0.9,0.5

Prints one JSON line per sparsity: wall seconds, the compile's own stage
seconds, parts, nonzeros, and the peak resident memory of the compiling
process (ru_maxrss) and of the largest part's worker process (parts compile
side by side in IRPRUNE_JOBS workers, default one per CPU; ptxas runs as
separate processes too). The disk cache is off so that every number is a
cold compile.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import irprune, irprune.worker
from irprune.bench.suites import SUITES
from irprune.reference import prune_random
suite, name, sparsity, assemble = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4] == "1"
layer = next(l for l in SUITES[suite] if l.name == name)
g = layer.geometry(1)
w = prune_random(g.weight_shape, sparsity, seed=0)
t = time.perf_counter()
k = irprune.conv2d(w, g.input_shape, stride=g.stride, padding=g.padding, cache=False)
compile_s = time.perf_counter() - t
if assemble:
    k.ptxas()
mib = lambda who: resource.getrusage(who).ru_maxrss / 1024
print(json.dumps({"layer": name, "sparsity": sparsity, "nnz": k.stats["nnz"],
                  "parts": len(k.parts), "group_size": k.group_size,
                  "compile_s": round(compile_s, 1), "seconds": k.stats["seconds"],
                  "jobs": irprune.worker.worker_count(),
                  "peak_mib": round(mib(resource.RUSAGE_SELF)),
                  "part_worker_peak_mib": round(k.stats["part_peak_mib"]),
                  "registers": k.stats.get("ptxas", {}).get("registers")}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="resnet50")
    ap.add_argument("--layer", default="l4_3x3_512_512_s2")
    ap.add_argument("--sparsities", default="0.9,0.5")
    ap.add_argument("--no-ptxas", action="store_true", help="stop at PTX")
    a = ap.parse_args()
    for sp in a.sparsities.split(","):
        proc = subprocess.run([sys.executable, "-c", CHILD, a.suite, a.layer, sp,
                               "0" if a.no_ptxas else "1"],
                              capture_output=True, text=True, env={**__import__("os").environ,
                                                                   "IRPRUNE_CACHE": "0"})
        if proc.returncode != 0:
            print(json.dumps({"layer": a.layer, "sparsity": float(sp), "failed": proc.returncode,
                              "error": proc.stderr.strip().splitlines()[-1:]}), flush=True)
        else:
            print(proc.stdout.strip(), flush=True)


if __name__ == "__main__":
    main()
