"""The move floor's kernel (irprune.bench.move_kernel): output i is input i plus weight i where
they exist, every output written (none left NaN), checked in Numba's CUDA simulator
(tests.simulator)."""

from __future__ import annotations

from tests.simulator import run_in_simulator


def test_move_kernel_writes_every_output_from_its_loads_in_the_simulator():
    code = """
        import os
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
        import numpy as np
        from irprune.bench.move_kernel import MOVE_BLOCK, move_floor as kernel
        rng = np.random.default_rng(0)
        worst = 0.0
        # more inputs than outputs, fewer, as many; more weights than outputs, fewer, one
        for n_in, n_w, n_out in [(700, 90, 300), (50, 400, 260), (256, 1, 256), (3, 5, 7)]:
            x = rng.standard_normal(n_in).astype(np.float32)
            w = rng.standard_normal(n_w).astype(np.float32)
            y = np.full(n_out, np.nan, np.float32)
            kernel[-(-max(n_in, n_w, n_out) // MOVE_BLOCK), MOVE_BLOCK](x, w, y)
            ref = np.zeros(n_out)
            ref[:min(n_in, n_out)] += x[:n_out]
            ref[:min(n_w, n_out)] += w[:n_out]
            worst = max(worst, float(np.max(np.abs(y - ref))))
        print("max abs err", worst)
    """
    assert float(run_in_simulator(code).split()[-1]) < 1e-5
