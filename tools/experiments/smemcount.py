"""PTX counts of a shared-memory variant: python gen.py smem s28 4 8 3 3 1 28; python smemcount.py resnet_3x3_28 s28 32"""
import sys, time, re, importlib, os
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from irprune.bench.compile_jobs import bench_weights
from irprune.bench.suites import SUITES
layer = {l.name: l for ls in SUITES.values() for l in ls}[sys.argv[1]]
w = bench_weights(layer, 0.9, 0)
import gen
mod = importlib.import_module(sys.argv[2])
t = getattr(mod, "conv2d_smem2", None) or mod.conv2d_smem
t0 = time.perf_counter()
k = t.compile(w, (1, layer.C, layer.H, layer.W), stride=layer.stride, padding=layer.padding, group_size=int(sys.argv[3]), cache=False, assemble=True)
ptx = k.asm['ptx']
c = lambda p: len(re.findall(p, ptx))
print(sys.argv[2], 'compile', round(time.perf_counter()-t0, 1), 'ld.global', c(r'ld\.global'), 'ld.shared', c(r'ld\.shared'), 'st.shared', c(r'st\.shared'), 'fma', c(r'fma\.rn'), 'selp', c('selp'), 'bar', c('bar.sync'), 'lines', ptx.count('\n'), k.stats['ptxas'])
