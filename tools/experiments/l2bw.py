"""Experiment: the GPU's L2-to-SM read bandwidth, the ceiling of a layer whose input sits in L2.

Every SM's warps read an L2-resident buffer (warmed first) with 16-byte loads, each block its
own rotation through it; printed: GB/s per buffer size and block count (CUDA events, best of 5).

    python3 l2bw.py     # on the GPU
"""
import numpy as np
from numba import cuda, float32


@cuda.jit
def read(buf, n4, reps, out):
    t = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    stride = cuda.gridDim.x * cuda.blockDim.x
    acc = float32(0.0)
    for r in range(reps):
        i = (t + r * 7919 * 32) & (n4 - 1)
        for _ in range(8):
            acc += buf[i * 4] + buf[i * 4 + 1] + buf[i * 4 + 2] + buf[i * 4 + 3]
            i = (i + stride) & (n4 - 1)
    if acc == float32(-1.0):
        out[0] = acc


def main():
    sms = cuda.get_current_device().MULTIPROCESSOR_COUNT
    out = cuda.device_array(1, np.float32)
    for mb in (4, 16, 32):  # powers of two (the index wraps with a mask); beyond L1
        n4 = mb * 2**20 // 16
        buf = cuda.to_device(np.ones(n4 * 4, np.float32))
        for per_sm in (2, 4, 8):
            grid, block, reps = sms * per_sm, 256, 16
            read[grid, block](buf, n4, reps, out)
            cuda.synchronize()
            best = 1e9
            for _ in range(5):
                a, b = cuda.event(), cuda.event()
                a.record(); read[grid, block](buf, n4, reps, out); b.record(); b.synchronize()
                best = min(best, cuda.event_elapsed_time(a, b))
            nbytes = grid * block * reps * 8 * 16
            print(f"buffer {mb} MB, {per_sm} blocks of 256 a SM: {nbytes / best / 1e6:.0f} GB/s "
                  f"({best * 1e3:.1f} us for {nbytes / 2**20:.0f} MB)", flush=True)


if __name__ == "__main__":
    main()
