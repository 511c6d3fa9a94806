"""The zeroing part of a table kernel whose blocks add into its output.

A table kernel with several slices (templates/conv2d_table.py) adds each block's sums into the
output with atomics, so the output must be zero first. On sm_90 and newer irprune launches this
kernel for that, just before the table kernel, instead of a memset (irprune.table_kernel): it
waits for the grid before it (irprune.passes.grid_dependency_wait puts the wait first), lets
the table kernel launch at once (``launch_dependents``), and zeroes the output. The table
kernel, launched early, stages its input and computes its sums meanwhile and waits for this
kernel only before its first atomic add. A memset is not a grid: the kernel after it could not
launch early, and it cost about 1 us a call (docs/perf-log.md).
"""

from numba import cuda, float32, uint64

from .grid_control import launch_dependents


@cuda.jit
def zero_fill(x, y, threads):
    """y[:] = 0. ``y`` is N x (K * OH * OW) and ``x`` the layer's input (unused: every part of a
    kernel takes the same arguments). Launch: grid (ceil(K * OH * OW / threads), N), ``threads``
    threads a block."""
    launch_dependents()
    i = uint64(cuda.blockIdx.x) * uint64(threads) + uint64(cuda.threadIdx.x)
    if i < uint64(y.shape[1]):
        y[uint64(cuda.blockIdx.y), i] = float32(0.0)
