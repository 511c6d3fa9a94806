"""The library baselines, and irprune's chosen kernels, timed again in fresh processes; each
keeps its fastest.

cuDNN's time for one layer can differ by up to 1.8x from one process to the
next on the same GPU (docs/perf-log.md, "cuDNN fp32's own spread"): more than
the margins some targets are judged by. So after the main run, ``processes - 1``
new processes each check and time the baselines again, on the same inputs and
weights (the bench's seeds), one after another on the same GPU, and every
baseline record keeps the fastest median of all processes (each process's
median in ``process_us``).

irprune's time moves between processes too: on the same H200, l1_1x1_256_64 ran 3.20 us in
three processes and 3.67 us in the one before (docs/perf-log.md, "Channel orders as a tuning
candidate, and irprune timed in every process"). So each process also times the kernel configuration the main run chose for every
layer (replayed from the main run's records and its disk cache: nothing is tuned or compiled
again) and irprune keeps its fastest process as the baselines do, unless the run asks for
irprune to be timed once (``BenchConfig.retime_irprune``, ``irprune bench --irprune-once``).

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

#: The implementations a process times again: the baselines, and irprune's chosen kernels.
RETIMED = ("irprune", *BASELINES)


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
    (the same unit loop, inputs and weights, with only the baselines); their records. With
    irprune in ``cfg.impls``, ``cfg.choices_from`` must be the main run's records and
    ``cfg.cache_dir`` its cache: irprune's chosen kernel of each (layer, batch, sparsity) that
    has one is loaded from there and checked and timed too (one that has none is left out)."""
    import torch

    from ..templates.conv2d import conv2d_nchw
    from .compile_jobs import compile_here
    from .runner import _choice, _run_unit, compile_plan, environment, plan

    torch.backends.cudnn.benchmark = True  # as in the main run
    l2 = environment(None)["l2_bytes"] or 50 << 20
    only = dataclasses.replace(cfg, impls=tuple(i for i in cfg.impls if i in RETIMED))
    doc = {"records": []}
    for u in plan(only):
        chosen = tuple(s for s in u.sparsities if _choice(only, u, s) is not None)
        ucfg, compiled = only, {}
        if "irprune" in only.impls:
            if chosen:
                u = dataclasses.replace(u, sparsities=chosen)
                # every kernel is in the main run's cache: this loads, it does not compile
                compiled = compile_here(compile_plan(only, [u], only.cache_dir)[0])
            else:
                ucfg = dataclasses.replace(only, impls=tuple(i for i in only.impls
                                                             if i != "irprune"))
        _run_unit(u, ucfg, doc, compiled, {}, only.cache_dir, l2, None, None, conv2d_nchw)
        log(f"re-timed: {u.suite}/{u.layer.name} b{u.batch}")
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


def fold(records: list[dict], runs: list[list[dict]], impls=RETIMED) -> int:
    """Give each timed record of ``impls`` (the baselines and irprune) in the main run the
    fastest median over all processes.

    ``process_us`` lists the main run's median first, then each other
    process's where it timed the record (ok); ``median_us`` becomes their
    minimum. Records of other implementations, or not timed in the main
    run, are left as they are. Returns how many records changed their median.
    """
    others: dict[tuple, list[float]] = {}
    for run in runs:
        for r in run:
            if r.get("status") == "ok" and r.get("median_us"):
                others.setdefault(_key(r), []).append(r["median_us"])
    changed = 0
    for rec in records:
        if rec.get("impl") not in impls or rec.get("status") != "ok" or not rec.get("median_us"):
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
