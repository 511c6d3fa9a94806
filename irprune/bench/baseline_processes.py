"""The library baselines timed again in fresh processes; each keeps its fastest.

cuDNN's time for one layer can differ by up to 1.8x from one process to the
next on the same GPU (docs/perf-log.md, "cuDNN fp32's own spread"): more than
the margins some targets are judged by. So after the main run, ``processes - 1``
new processes each check and time the baselines again, on the same inputs and
weights (the bench's seeds), one after another on the same GPU, and every
baseline record keeps the fastest median of all processes (each process's
median in ``process_us``). irprune is timed once, in the main process: where
the processes differ, the comparison leans against irprune.

    python -m irprune.bench.baseline_processes CONFIG.json OUT.json   # one such process
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from .impls import BASELINES


def config_json(cfg) -> str:
    """A BenchConfig as JSON (what a baseline process is given)."""
    return json.dumps(dataclasses.asdict(cfg))


def config_from_json(text: str):
    """The BenchConfig of :func:`config_json`'s text."""
    from .runner import BenchConfig

    d = json.loads(text)
    for name in ("batches", "sparsities", "impls", "channel_orders"):
        if d.get(name) is not None:
            d[name] = tuple(d[name])
    return BenchConfig(**d)


def _key(rec: dict) -> tuple:
    return rec["suite"], rec["layer"], rec["batch"], rec["sparsity"], rec["impl"]


def retime(cfg, log=print) -> list[dict]:
    """Check and time every baseline of ``cfg``'s units in this process, as the main run does
    (the same unit loop, inputs and weights, with only the baselines); their records."""
    import torch

    from .runner import _run_unit, environment, plan

    torch.backends.cudnn.benchmark = True  # as in the main run
    l2 = environment(None)["l2_bytes"] or 50 << 20
    only = dataclasses.replace(cfg, impls=tuple(i for i in cfg.impls if i in BASELINES))
    doc = {"records": []}
    for u in plan(only):
        _run_unit(u, only, doc, {}, {}, None, l2, None, None, None)
        log(f"baselines re-timed: {u.suite}/{u.layer.name} b{u.batch}")
        torch.cuda.empty_cache()
    return doc["records"]


def run_processes(cfg, count: int, log=print) -> list[list[dict]]:
    """:func:`retime` in ``count`` fresh processes, one after another; each one's records.

    A process that fails is reported through ``log`` and left out.
    """
    runs = []
    with tempfile.TemporaryDirectory(prefix="irprune-baselines-") as tmp:
        cfg_path = Path(tmp) / "config.json"
        cfg_path.write_text(config_json(cfg))
        for i in range(count):
            out = Path(tmp) / f"process{i}.json"
            done = subprocess.run([sys.executable, "-m", "irprune.bench.baseline_processes",
                                   str(cfg_path), str(out)], capture_output=True, text=True)
            if done.returncode != 0 or not out.is_file():
                tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
                log(f"baseline process {i + 2} failed (exit {done.returncode}): {tail[0]}")
                continue
            runs.append(json.loads(out.read_text()))
            log(f"baseline process {i + 2} of {count + 1} done")
    return runs


def fold(records: list[dict], runs: list[list[dict]]) -> int:
    """Give each timed baseline record of the main run the fastest median over all processes.

    ``process_us`` lists the main run's median first, then each other
    process's where it timed the record (ok); ``median_us`` becomes their
    minimum. Records that are not baselines, or were not timed in the main
    run, are left as they are. Returns how many records changed their median.
    """
    others: dict[tuple, list[float]] = {}
    for run in runs:
        for r in run:
            if r.get("status") == "ok" and r.get("median_us"):
                others.setdefault(_key(r), []).append(r["median_us"])
    changed = 0
    for rec in records:
        if rec.get("impl") not in BASELINES or rec.get("status") != "ok" or not rec.get("median_us"):
            continue
        times = [rec["median_us"], *others.get(_key(rec), [])]
        rec["process_us"] = [round(t, 3) for t in times]
        best = min(times)
        if best < rec["median_us"]:
            rec["first_process_us"] = rec["median_us"]
            rec["median_us"] = round(best, 3)
            changed += 1
    return changed


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m irprune.bench.baseline_processes CONFIG.json OUT.json",
              file=sys.stderr)
        return 2
    cfg = config_from_json(Path(argv[0]).read_text())
    recs = retime(cfg, log=lambda m: print(m, file=sys.stderr))
    Path(argv[1]).write_text(json.dumps(recs, default=float))  # as write_json does
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
