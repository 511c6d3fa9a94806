"""The move floor's kernel (irprune.bench.impls.move_floor), in a module of its own: it imports
Numba's CUDA target, which the rest of the bench's modules import only when they launch."""

from numba import cuda, float32

#: Threads a block.
MOVE_BLOCK = 256


@cuda.jit
def move_floor(x, w, y):
    """Thread ``i`` reads ``x[i]`` and ``w[i]`` where they exist and writes their sum to
    ``y[i]`` where that exists: each input and weight value read once, each output written
    once, every store waiting for its loads, as in any convolution kernel. Launch one thread
    for each element of the largest of the three arrays.

    No loops: a loop over ``j = i, i + n, ...`` costs its trip count's 64-bit division, which
    made a first version bound by its integer instructions at batch 64 (half the copy
    bandwidth on vgg16_c2)."""
    i = cuda.grid(1)
    v = float32(0.0)
    if i < x.size:
        v += x[i]
    if i < w.size:
        v += w[i]
    if i < y.size:
        y[i] = v
    elif v != v:  # never for finite values: keeps a thread's loads past y's end alive
        y[0] = v
