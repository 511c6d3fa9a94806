"""Templates as a user would write them: used by the CPU and GPU tests."""

from numba import cuda, float32

from irprune import sparse_conv


@sparse_conv(weight="w", constants=("b",))
@cuda.jit
def conv2d_relu6(x, w, b, y, stride, padding, relu, group_size):
    """A 1-channel-per-thread conv with a fused ReLU6 epilogue (relu flag ignored)."""
    N, C, H, W = x.shape
    K = w.shape[0]
    R = w.shape[2]
    S = w.shape[3]
    OH = y.shape[2]
    OW = y.shape[3]
    pix = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    if pix >= N * OH * OW:
        return
    n = pix // (OH * OW)
    oh = (pix // OW) % OH
    ow = pix % OW
    for k in range(K):
        if k // group_size == cuda.blockIdx.y:
            acc = float32(0.0)
            if b.shape[0] > 0:
                acc = b[k]
            for c in range(C):
                for r in range(R):
                    for s in range(S):
                        ih = oh * stride - padding + r
                        iw = ow * stride - padding + s
                        ihc = min(max(ih, 0), H - 1)
                        iwc = min(max(iw, 0), W - 1)
                        v = x[n, c, ihc, iwc]
                        if ih < 0 or ih >= H or iw < 0 or iw >= W:
                            v = float32(0.0)
                        acc = cuda.fma(v, w[k, c, r, s], acc)
            y[n, k, oh, ow] = min(max(acc, float32(0.0)), float32(6.0))


@sparse_conv(weight="w")
@cuda.jit
def breaks_contract(x, w, y, stride, padding, relu, group_size):
    """Uses a weight as a threshold, which no pruning can honour."""
    N, C, H, W = x.shape
    pix = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
    if pix < N * H * W:
        v = x[0, 0, 0, 0]
        if v > w[0, 0, 0, 0]:
            v = float32(1.0)
        y[0, 0, 0, 0] = v
