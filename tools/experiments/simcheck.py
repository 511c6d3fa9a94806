import os, sys
os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np
from numba import cuda
from gen import gen_smem
gen_smem("s_tiny", 2, 2, 3, 3, 1, 7)
import s_tiny as m
from irprune.reference import conv2d_reference
rng = np.random.default_rng(0)
# K=6 C=5 H=W=7 3x3 pad1 stride1 -> OH=OW=7; TR=2 -> tiles 4 (last ragged), CC=2 (ragged chunk)
x = rng.standard_normal((2, 5, 7, 7)).astype(np.float32)
w = rng.standard_normal((6, 5, 3, 3)).astype(np.float32)
b = rng.standard_normal(6).astype(np.float32)
y = np.full((2, 6, 7, 7), np.nan, np.float32)
gs = 4
grid = (2 * 4, 2)
m.conv2d_smem[grid, (m.TR * 7,)](x, w, b, y, 1, 1, False, gs, 1)
ref = conv2d_reference(x.astype(np.float64), w.astype(np.float64), 1, 1) + b[None, :, None, None]
print("max rel err", np.abs(y - ref).max() / np.abs(ref).max())
