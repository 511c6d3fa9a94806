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


class Worker:
    """One worker process, started now and given its call later.

    Starting it ahead lets its interpreter start-up and ``preload`` imports
    overlap the caller's own work (a layer's shares start while its IR
    template is still being made). A worker takes one call; one never
    called is stopped by :meth:`close` (or leaving its ``with`` block).
    """

    def __init__(self, env: dict | None = None, preload: tuple[str, ...] = ()):
        cmd = [sys.executable, "-m", "irprune.worker", *preload]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, env={**os.environ, **(env or {})})
        self._used = False

    def call(self, module: str, function: str, kwargs: dict):
        """Call ``module.function(**kwargs)`` in the worker; return its result or raise its error."""
        if self._used:
            raise IrpruneError("a worker takes one call; start another", stage="worker")
        self._used = True
        out, err = self._proc.communicate(
            pickle.dumps((module, function, kwargs), protocol=pickle.HIGHEST_PROTOCOL))
        if self._proc.returncode != 0:
            log = err.decode(errors="replace")
            raise IrpruneError(f"a worker process failed (exit {self._proc.returncode}): "
                               f"{(log.strip().splitlines() or ['no output'])[-1]}",
                               stage="worker", log=log)
        result = pickle.loads(out)
        if isinstance(result, BaseException):
            raise result
        return result

    def close(self) -> None:
        """Stop the worker if it was never called."""
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.communicate()

    def __enter__(self) -> "Worker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def run_one(module: str, function: str, kwargs: dict, env: dict | None = None):
    """Call ``module.function(**kwargs)`` in a fresh subprocess; return its result or raise its error."""
    with Worker(env) as w:
        return w.call(module, function, kwargs)


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

    for name in sys.argv[1:]:  # imported while the caller has not sent the call yet
        importlib.import_module(name)
    module, function, kwargs = pickle.loads(sys.stdin.buffer.read())
    try:
        with gc_paused():
            out = _call(module, function, kwargs)
    except Exception as exc:  # irprune's typed errors travel back to the parent as they are
        out = exc
    sys.stdout.buffer.write(pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL))


if __name__ == "__main__":
    main()
