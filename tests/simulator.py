"""Code run in Numba's CUDA simulator, in a subprocess: the simulator must be chosen before
Numba's CUDA target is imported, which the test session has already done."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def run_in_simulator(code: str, timeout: int = 600) -> str:
    """The standard output of ``code`` (dedented) run by a fresh Python with
    NUMBA_ENABLE_CUDASIM=1; an assertion error with its stderr's tail if it fails."""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, env=env, timeout=timeout)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout
