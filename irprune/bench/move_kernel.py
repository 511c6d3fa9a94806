"""The move floor's kernel (irprune.bench.impls.move_floor), in a module of its own: it imports
Numba's CUDA target, which the rest of the bench's modules import only when they launch."""

from numba import cuda, float32

#: Threads a block.
MOVE_BLOCK = 256


@cuda.jit
def move_floor(x, w, y):
    """``y[i]`` = the sum of every ``x[j]`` and ``w[j]`` with ``j`` congruent to ``i`` modulo
    ``y``'s size: each input and weight value read once, each output written once, and every
    store waiting for its loads, as in any convolution kernel. One thread an output value."""
    i = cuda.grid(1)
    n = y.size
    if i < n:
        v = float32(0.0)
        for j in range(i, x.size, n):
            v += x[j]
        for j in range(i, w.size, n):
            v += w[j]
        y[i] = v
