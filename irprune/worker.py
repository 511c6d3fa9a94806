"""Worker processes: run one irprune function per subprocess, from pickled arguments.

``python -m irprune.worker`` reads the path of a folder on stdin, loads the
pickled ``(module, function, kwargs)`` in its ``call.pkl``, calls it with the
cyclic GC paused and writes the pickled result (or the exception it raised)
to ``result.pkl`` there. :func:`run_in_workers` runs a list of such calls,
several processes at a time. Plain subprocesses, not multiprocessing: a
user's script is never re-imported and needs no ``__main__`` guard.

Why files and not the pipes: a call can carry megabytes (a share's IR
template is ~10 MB), and ``Popen.communicate`` moves them a page (4 KiB) per
trip through a Python loop in a thread that needs the GIL each time. While
the caller's own thread computes (its share of the passes), each trip waits
out a GIL switch interval: 10 MB took 3 s to reach the worker. One write to a
file and one read of it take milliseconds.
"""

from __future__ import annotations

import importlib
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor

from .errors import IrpruneError, ValidationError

#: The files of one call in its folder: the pickled call, and the pickled result.
CALL_FILE = "call.pkl"
RESULT_FILE = "result.pkl"


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
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, env={**os.environ, **(env or {})})
        self._used = False

    def call(self, module: str, function: str, kwargs: dict):
        """Call ``module.function(**kwargs)`` in the worker; return its result or raise its error."""
        if self._used:
            raise IrpruneError("a worker takes one call; start another", stage="worker")
        self._used = True
        folder = Path(tempfile.mkdtemp(prefix="irprune-worker-"))
        try:
            (folder / CALL_FILE).write_bytes(
                pickle.dumps((module, function, kwargs), protocol=pickle.HIGHEST_PROTOCOL))
            # Only the folder's path goes through the pipe (see the module's docstring).
            _, err = self._proc.communicate(os.fsencode(folder) + b"\n")
            result_file = folder / RESULT_FILE
            if self._proc.returncode != 0 or not result_file.exists():
                log = err.decode(errors="replace")
                raise IrpruneError(f"a worker process failed (exit {self._proc.returncode}): "
                                   f"{(log.strip().splitlines() or ['no output'])[-1]}",
                                   stage="worker", log=log)
            result = pickle.loads(result_file.read_bytes())
        finally:
            shutil.rmtree(folder, ignore_errors=True)
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
    line = sys.stdin.buffer.readline().rstrip(b"\n")
    if not line:  # closed without a call (Worker.close)
        return
    folder = Path(os.fsdecode(line))
    module, function, kwargs = pickle.loads((folder / CALL_FILE).read_bytes())
    try:
        with gc_paused():
            out = _call(module, function, kwargs)
    except Exception as exc:  # irprune's typed errors travel back to the parent as they are
        out = exc
    # Written under another name and renamed: the parent never reads half a result.
    partial = folder / (RESULT_FILE + ".part")
    partial.write_bytes(pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL))
    partial.replace(folder / RESULT_FILE)


if __name__ == "__main__":
    main()
