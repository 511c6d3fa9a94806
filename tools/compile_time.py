"""Cold compile time of seed-suite layers on this machine, per stage (issue 5's compile target).

    python tools/compile_time.py resnet_3x3_28 [--sparsity 0.9] [--ptxas] [--profile out.prof]
    python tools/compile_time.py --choices-from docs/perf/results.json --batch 1 --ptxas vgg16_c2
    python tools/compile_time.py --batch 64 --ptxas --config '{"group_size": 32, "slices": 1,
        "tile": [5, 1], "max_registers": null}' resnet_3x3_28

Each layer compiles in a fresh process with an empty cache (what "cold"
means in docs/performance.md): IR template, passes, PTX, optionally ptxas.
Without ``--choices-from`` it is the kernel ``irprune.conv2d`` gives untuned
(the default group size); with it, the configuration an earlier bench run's
tuner chose for the layer at ``--batch`` (group size, slices, tile, register
budget, channel order), i.e. the kernel that run timed.
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
choice = json.loads(sys.argv[5])
kw = {}
if choice:
    kw = dict(group_size=choice["group_size"], slices=choice["slices"],
              tile=tuple(choice["tile"]) if choice["tile"] else None,
              max_registers=choice["max_registers"],
              channel_order=choice.get("channel_order", "natural"))
batch = int(sys.argv[6])
t1 = time.perf_counter()
k = irprune.conv2d(w, (batch, layer.C, layer.H, layer.W), stride=layer.stride, padding=layer.padding,
                   cache=sys.argv[3], assemble=sys.argv[4] == "1", **kw)
t2 = time.perf_counter()
print(json.dumps({"layer": sys.argv[1], "batch": batch, "nnz": k.stats["nnz"],
                  "group_size": k.stats["group_size"], "config": kw,
                  "import_s": round(t1 - t0, 2), "compile_s": round(t2 - t1, 2),
                  "stages": k.stats["seconds"], "instructions_pruned": k.stats["instructions_pruned"]}))
"""


def stored_choice(path: str, layer: str, batch: int, sparsity: float) -> dict:
    """The immediate-weight configuration a bench run's tuner chose for ``layer`` (a
    ValueError naming the file where it has none, or where the choice is a table kernel)."""
    from irprune.bench.runner import load_choices

    rec = load_choices(path).get((layer, batch, sparsity))
    if rec is None:
        raise ValueError(f"{path} has no timed irprune record of {layer} at batch {batch}, "
                         f"sparsity {sparsity}")
    if rec.get("layout") == "table":
        raise ValueError(f"{layer} runs on the table layout in {path}; this script times the "
                         "immediate-weight compile")
    return {**{n: rec[n] for n in ("group_size", "slices", "tile", "max_registers")},
            "channel_order": rec.get("channel_order", "natural")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("layers", nargs="+")
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--ptxas", action="store_true", help="run ptxas as well")
    ap.add_argument("--profile", help="cProfile the compile into this file (one layer)")
    ap.add_argument("--choices-from", help="compile the configuration chosen in this results.json")
    ap.add_argument("--batch", type=int, default=1, help="the batch whose choice to compile")
    ap.add_argument("--config", help="compile this configuration, a JSON object of group_size, "
                    "slices, tile, max_registers and optionally channel_order (instead of "
                    "--choices-from)")
    a = ap.parse_args(argv)
    for name in a.layers:
        choice = (json.loads(a.config) if a.config else
                  stored_choice(a.choices_from, name, a.batch, a.sparsity) if a.choices_from else {})
        with tempfile.TemporaryDirectory() as cache:
            script = Path(cache) / "child.py"
            script.write_text(CHILD)
            cmd = [sys.executable] + (["-m", "cProfile", "-o", a.profile] if a.profile else [])
            cmd += [str(script), name, str(a.sparsity), cache, "1" if a.ptxas else "0",
                    json.dumps(choice), str(a.batch)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode:
                print(out.stderr, file=sys.stderr)
                return 1
            print(json.dumps(json.loads(out.stdout.strip().splitlines()[-1])), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
