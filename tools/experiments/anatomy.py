"""Experiment: what a tuned kernel's time is made of (the PTX rewritten, same launch).

For every pixel-layout configuration of the c107ed9 run (docs/perf/c107ed9/results.json)
the kernel is timed as it is and with its PTX changed, each with the same grid,
block and groups per block:

- ``empty``: the entry's body is just ``ret``: the launch and the block scheduling
  of that grid;
- ``fixed``: every input load replaced by a constant, so that ptxas folds the FMAs
  away: launch, group dispatch, index math and the output stores;
- ``half``, ``quarter``: all but every second (fourth) input load replaced by a
  constant: half (a quarter of) the loads and the FMAs that use them.

The differences say how much of the time the input loads and their FMAs take
and how much is fixed. Outputs of the rewritten kernels are wrong by design
(their errors are recorded, not checked). Inputs rotate over 16 sets, as in
the other experiments.

    python3 anatomy.py [LAYER ...]     # on the GPU; results in $OUT/anatomy.json
"""
import json, os, re, sys
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gpu_timing import (assembled, build_all, config_row, install_ptx, recorded_configs,
                        time_into)
from dispatch_ab import RESULTS, kernel

_LOAD = re.compile(r"^(\s*)ld\.global\.nc\.b32\s+(%r\d+), \[[^\]]+\];", re.M)


def empty(ptx):
    start = ptx.index("{", ptx.index(".entry"))
    end = ptx.rindex("}")
    return ptx[:start + 1] + "\n\tret;\n" + ptx[end:]


def constant_loads(keep_every):
    """A rewrite that keeps every ``keep_every``-th input load (none with 0) and makes the others
    the constant 1.0."""
    def rewrite(ptx):
        n = [0]

        def sub(m):
            n[0] += 1
            if keep_every and n[0] % keep_every == 0:
                return m.group(0)
            return f"{m.group(1)}mov.b32 {m.group(2)}, 0x3F800000;"
        return _LOAD.sub(sub, ptx)
    return rewrite


VARIANTS = {"base": None, "empty": empty, "fixed": constant_loads(0), "half": constant_loads(2),
            "quarter": constant_loads(4)}


def main():
    out = os.environ.get("OUT", ".")
    cfgs = recorded_configs(RESULTS, tiles=False, layers=sys.argv[1:])
    print(len(cfgs), "configurations", flush=True)
    build_all(kernel, cfgs)
    rows = []
    for c in cfgs:
        row = config_row(c)
        try:
            k, w, l = kernel(c)
            original = [p.ptx for p in k.parts]  # install_ptx replaces p.ptx
            for v, rw in VARIANTS.items():
                row[v + "_regs"] = install_ptx(k, assembled(original, rw, k.cpu))
                time_into(row, v, k, w, l, c)
        except Exception as exc:
            row["error"] = str(exc)[:300]
        rows.append(row)
        print(row["layer"], row["batch"], *(f"{v} {row.get(v)}" for v in VARIANTS), flush=True)
    json.dump(rows, open(os.path.join(out, "anatomy.json"), "w"), indent=1)

if __name__ == "__main__":
    main()
