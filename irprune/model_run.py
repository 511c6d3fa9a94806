"""``irprune model``: a pruned CNN converted whole, checked against PyTorch and timed.

With a GPU: the converted model's logits against the PyTorch model's (fp32,
TF32 off), and the latency of both (PyTorch eager with TF32 off and on,
torch.compile where it works, irprune) at each batch size, side by side in
one process. With no GPU: every layer is compiled and its code statistics
printed.
"""

from __future__ import annotations

import json
import time

import numpy as np
import torch

from .torch_convert import convert


def _median_ms(fn, iters: int = 30, warmup: int = 5) -> float:
    """Median milliseconds of ``fn()`` on the GPU (CUDA events around each call)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return float(np.median(times))


def compare_layers(model: torch.nn.Module, fast: torch.nn.Module, x: torch.Tensor) -> dict:
    """Per converted layer, the relative error of its output against the PyTorch layer's.

    Logits alone can hide a wrong layer: global magnitude pruning of a
    randomly initialised model may prune a classifier entirely, leaving
    logits that equal the bias whatever came before. Each converted layer
    is checked on the input it receives in the PyTorch model.
    """
    from .torch_convert import SparseConv2d

    names = {n for n, m in fast.named_modules() if isinstance(m, SparseConv2d)}
    seen: dict[str, tuple] = {}
    hooks = [m.register_forward_hook(lambda mod, a, out, n=n: seen.__setitem__(n, (a[0], out)))
             for n, m in model.named_modules() if n in names]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    errs = {}
    with torch.no_grad():
        for n, (inp, ref) in seen.items():
            got = fast.get_submodule(n)(inp)
            scale = float(ref.abs().max())
            errs[n] = float((got - ref).abs().max()) / scale if scale > 0 else float((got - ref).abs().max())
    return errs


def _tf32(on: bool) -> None:
    torch.backends.cudnn.allow_tf32 = on
    torch.backends.cuda.matmul.allow_tf32 = on


def run(model: torch.nn.Module, name: str, sparsity: float | None, batches=(1, 16),
        threshold: float = 0.5, image: int = 224, jobs: int | None = None, cache=None,
        progress: bool = True, compare_compile: bool = True, log=print) -> dict:
    """Convert ``model`` (already pruned), then check and time it on a GPU if there is one."""
    gpu = torch.cuda.is_available()
    device = "cuda" if gpu else "cpu"
    model = model.to(device).eval()
    x0 = torch.randn(batches[0], 3, image, image, device=device)
    t0 = time.perf_counter()
    fast = convert(model, x0, threshold=threshold, cache=cache, progress=progress, jobs=jobs,
                   batch_sizes=batches[1:])
    compile_s = time.perf_counter() - t0
    reps = fast.irprune_report
    conv = [r for r in reps if r.status == "converted"]
    result = {
        "model": name, "sparsity": sparsity, "threshold": threshold, "batches": list(batches),
        "device": torch.cuda.get_device_name() if gpu else "cpu",
        "layers": len(reps), "converted": len(conv),
        "weights_converted": int(sum(r.nnz / max(1e-9, 1 - r.sparsity) for r in conv)),
        "nnz_converted": int(sum(r.nnz for r in conv)), "fma": int(sum(r.fma for r in conv)),
        "compile_seconds": round(compile_s, 1),
        "report": [r.__dict__ | {"input_shape": list(r.input_shape or ())} for r in reps],
    }
    dense = sum(r.status == "dense" for r in reps)
    skipped = [f"{r.name} ({r.reason})" for r in reps if r.status == "skipped"]
    log(f"{name}: {len(conv)}/{len(reps)} layers converted, {result['nnz_converted']:,} nonzero "
        f"weights, {result['fma']:,} FMAs, compiled in {compile_s:.1f} s; {dense} below the "
        f"threshold; skipped: {', '.join(skipped) or 'none'}")
    if not gpu:
        return result
    rows = []
    for n in batches:
        x = torch.randn(n, 3, image, image, device=device)
        with torch.no_grad():
            _tf32(False)
            ref = model(x)
            got = fast(x)
            scale = float(ref.abs().max())
            err = float((got - ref).abs().max()) / (scale if scale > 0 else 1.0)
            layers = compare_layers(model, fast, x)
            row = {"batch": n, "rel_err_logits": err,
                   "max_layer_rel_err": max(layers.values()) if layers else None,
                   "worst_layer": max(layers, key=layers.get) if layers else None,
                   "top1_agree": float((got.argmax(1) == ref.argmax(1)).float().mean())}
            row["eager_fp32_ms"] = _median_ms(lambda: model(x))
            _tf32(True)
            row["eager_tf32_ms"] = _median_ms(lambda: model(x))
            _tf32(False)
            if compare_compile:
                try:
                    compiled = torch.compile(model)
                    row["compile_fp32_ms"] = _median_ms(lambda: compiled(x))
                except Exception as exc:  # torch.compile is not everywhere
                    row["compile_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
            row["irprune_ms"] = _median_ms(lambda: fast(x))
        for k in ("eager_fp32_ms", "eager_tf32_ms", "compile_fp32_ms"):
            if k in row:
                row["speedup_vs_" + k[:-3]] = round(row[k] / row["irprune_ms"], 3)
        rows.append(row)
        log(json.dumps(row))
    result["timings"] = rows
    return result


def main(args) -> int:
    """The ``irprune model`` command."""
    from pathlib import Path

    from .models import build, prune_global

    model = build(args.name, seed=args.seed)
    if args.sparsity is not None:
        prune_global(model, args.sparsity)
    res = run(model, args.name, args.sparsity, batches=tuple(args.batches), threshold=args.threshold,
              jobs=args.jobs, progress=not args.no_progress, compare_compile=not args.no_torch_compile)
    if not torch.cuda.is_available():
        from rich.console import Console
        from rich.table import Table

        t = Table(title=f"{args.name} at sparsity {args.sparsity}: per layer (no GPU: code only)")
        for col in ("layer", "kind", "input", "sparsity", "nnz", "FMAs", "status"):
            t.add_column(col)
        for r in res["report"]:
            t.add_row(r["name"], r["kind"], "x".join(map(str, r["input_shape"])),
                      f"{r['sparsity']:.3f}", f"{r['nnz']:,}", f"{r['fma']:,}",
                      r["status"] + (f" ({r['reason']})" if r["reason"] else ""))
        Console().print(t)
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1, default=str))
    return 0
