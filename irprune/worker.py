"""Worker processes: run one irprune function per subprocess, from pickled arguments.

``python -m irprune.worker`` reads one pickled ``(module, function, kwargs)``
on stdin, calls it with the cyclic GC paused and writes the pickled result (or
the exception it raised) on stdout. :func:`run_in_workers` runs a list of such
calls, several processes at a time. Plain subprocesses, not multiprocessing:
a user's script is never re-imported and needs no ``__main__`` guard.
"""

from __future__ import annotations

import importlib
import os
import pickle
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from .errors import IrpruneError, ValidationError


def worker_count() -> int:
    """Processes to run at once: ``IRPRUNE_JOBS``, else the CPU count."""
    raw = os.environ.get("IRPRUNE_JOBS")
    if raw:
        try:
            return max(1, int(raw))
        except ValueError:
            raise ValidationError(f"IRPRUNE_JOBS={raw!r} is not an integer", stage="validate") from None
    return os.cpu_count() or 1


def _call(module: str, function: str, kwargs: dict):
    return getattr(importlib.import_module(module), function)(**kwargs)


def run_one(module: str, function: str, kwargs: dict, env: dict | None = None):
    """Call ``module.function(**kwargs)`` in a fresh subprocess; return its result or raise its error."""
    proc = subprocess.run([sys.executable, "-m", "irprune.worker"],
                          input=pickle.dumps((module, function, kwargs), protocol=pickle.HIGHEST_PROTOCOL),
                          capture_output=True, env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        log = proc.stderr.decode(errors="replace")
        raise IrpruneError(f"a worker process failed (exit {proc.returncode}): "
                           f"{(log.strip().splitlines() or ['no output'])[-1]}",
                           stage="worker", log=log)
    out = pickle.loads(proc.stdout)
    if isinstance(out, BaseException):
        raise out
    return out


def run_in_workers(calls: list[tuple[str, str, dict]], workers: int | None = None,
                   env: dict | None = None, done=None) -> list:
    """Run every call, ``workers`` subprocesses at a time; results in order.

    ``done(index)`` is called as each call finishes (for progress bars).
    """
    workers = worker_count() if workers is None else workers

    def one(i_call):
        i, (m, f, kw) = i_call
        r = run_one(m, f, kw, env)
        if done is not None:
            done(i)
        return r

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(calls)))) as pool:
        return list(pool.map(one, enumerate(calls)))


def main() -> None:
    from .gcpause import gc_paused

    module, function, kwargs = pickle.loads(sys.stdin.buffer.read())
    try:
        with gc_paused():
            out = _call(module, function, kwargs)
    except Exception as exc:  # irprune's typed errors travel back to the parent as they are
        out = exc
    sys.stdout.buffer.write(pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL))


if __name__ == "__main__":
    main()
