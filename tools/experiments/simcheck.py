"""A template variant launched dense in Numba's CUDA simulator against float64 (CPU).

    python simcheck.py [smem | smemp | smem2 | rowpad]
"""
import os, sys
os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np
from gen import gen_rowpad, gen_smem, gen_smem2
VARIANT = sys.argv[1] if len(sys.argv) > 1 else "smem"
name = "s_tiny_" + VARIANT
if VARIANT == "rowpad":
    gen_rowpad(name)
elif VARIANT == "smemp":
    gen_smem(name, 2, 2, 3, 3, 1, 7, 1)
else:
    {"smem": gen_smem, "smem2": gen_smem2}[VARIANT](name, 2, 2, 3, 3, 1, 7)
m = __import__(name)
kern = getattr(m, "conv2d_" + VARIANT.replace("smemp", "smem"))
from irprune.reference import conv2d_reference
rng = np.random.default_rng(0)
# K=6 C=5 H=W=7 3x3 pad1 stride1 -> OH=OW=7; TR=2 -> tiles 4 (last ragged), CC=2 (ragged chunk)
x = rng.standard_normal((2, 5, 7, 7)).astype(np.float32)
w = rng.standard_normal((6, 5, 3, 3)).astype(np.float32)
b = rng.standard_normal(6).astype(np.float32)
y = np.full((2, 6, 7, 7), np.nan, np.float32)
gs = 4
if VARIANT == "rowpad":  # rows of 8 threads (OW 7), blocks of 32
    kern[(-(-2 * 7 * 8 // 32), 2), (32,)](x, w, b, y, 1, 1, False, gs, 1)
else:
    kern[(2 * 4, 2), (m.TR * 7,)](x, w, b, y, 1, 1, False, gs, 1)
ref = conv2d_reference(x.astype(np.float64), w.astype(np.float64), 1, 1) + b[None, :, None, None]
print(VARIANT, "max rel err", np.abs(y - ref).max() / np.abs(ref).max())
