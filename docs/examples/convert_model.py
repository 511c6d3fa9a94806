"""Prune a small CNN with torch.nn.utils.prune, convert it with irprune, check it, time it.

    python docs/examples/convert_model.py

Runs anywhere: on a machine with a CUDA GPU the converted layers are irprune
kernels on PyTorch's stream (and the model is also replayed from a CUDA
graph); with no GPU they run the pruned IR on the CPU, which checks the
conversion but is slow (use small inputs there).
"""

import time

import torch
from torch import nn
from torch.nn.utils import prune

from irprune.torch_convert import convert, graphed

torch.manual_seed(0)
gpu = torch.cuda.is_available()
device = "cuda" if gpu else "cpu"

# 1. A model: any nn.Module; here a small CNN with a depthwise and a linear layer.
model = nn.Sequential(
    nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(),
    nn.Conv2d(32, 32, 3, padding=1, groups=32), nn.ReLU(),     # depthwise
    nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
).to(device).eval()

# 2. Prune 90% of each layer's weights by magnitude (prune.global_unstructured
#    over all layers together works the same way; irprune reads module.weight,
#    i.e. weight_orig * weight_mask).
for m in model.modules():
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        prune.l1_unstructured(m, "weight", amount=0.9)

# 3. Convert: one example input gives every layer's input shape. Layers at
#    least `threshold` zeros become irprune kernels (compiled side by side,
#    kept in the disk cache: a second run loads them in milliseconds).
size = 56 if gpu else 12
x = torch.randn(1, 3, size, size, device=device)
fast = convert(model, x, threshold=0.5)
for r in fast.irprune_report:
    print(f"{r.name:>3} {r.kind:7} sparsity {r.sparsity:.2f}  {r.status:9} {r.reason}")

# 4. Check: same output as PyTorch in fp32 (TF32 off), for any batch size.
torch.backends.cudnn.allow_tf32 = False
with torch.no_grad():
    for n in (1, 4):
        xb = torch.randn(n, 3, size, size, device=device)
        ref, got = model(xb), fast(xb)
        err = float((got - ref).abs().max() / ref.abs().max())
        print(f"batch {n}: max relative difference from PyTorch {err:.1e}")
        assert err < 1e-5

# 5. On a GPU: replay the whole forward pass from a CUDA graph, and time it;
#    and let each layer run irprune or PyTorch, whichever times faster on it.
if gpu:
    from irprune.models import make_permanent

    make_permanent(model)  # PyTorch timed as deployed: masks folded in, no pre-hook per layer
    fast_g = graphed(fast)
    best = convert(model, x, select="fastest", progress=False)  # kernels from the cache
    for r in best.irprune_report:
        if r.irprune_us is not None:
            print(f"{r.name:>3} irprune {r.irprune_us:7.1f} us  PyTorch {r.torch_us:7.1f} us  -> {r.status}")
    best_g = graphed(best)
    with torch.no_grad():
        for name, f in (("PyTorch", model), ("irprune", fast), ("irprune, CUDA graph", fast_g),
                        ("fastest per layer, graph", best_g)):
            for _ in range(10):
                f(x)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(100):
                f(x)
            torch.cuda.synchronize()
            print(f"{name:>24}: {(time.perf_counter() - t0) * 10:.3f} ms per call")
