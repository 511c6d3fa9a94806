"""The move floor's kernel (irprune.bench.move_kernel): every input and weight value read
once into the output, checked in Numba's CUDA simulator (a subprocess: the simulator must be
chosen before Numba's CUDA target is imported)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def test_move_kernel_reads_every_value_once_in_the_simulator():
    code = textwrap.dedent("""
        import os
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
        import numpy as np
        from irprune.bench.move_kernel import MOVE_BLOCK, move_floor as kernel
        rng = np.random.default_rng(0)
        worst = 0.0
        # more inputs than outputs, fewer, equal; weights more, fewer than outputs, one
        for n_in, n_w, n_out in [(700, 90, 300), (50, 400, 260), (256, 1, 256), (3, 5, 7)]:
            x = rng.standard_normal(n_in).astype(np.float32)
            w = rng.standard_normal(n_w).astype(np.float32)
            y = np.full(n_out, np.nan, np.float32)
            kernel[-(-n_out // MOVE_BLOCK), MOVE_BLOCK](x, w, y)
            ref = np.zeros(n_out)
            np.add.at(ref, np.arange(n_in) % n_out, x.astype(np.float64))
            np.add.at(ref, np.arange(n_w) % n_out, w.astype(np.float64))
            worst = max(worst, float(np.max(np.abs(y - ref))))
        print("max abs err", worst)
    """)
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout.split()[-1]) < 1e-5
