"""``irprune model``: a pruned CNN converted whole, checked against PyTorch and timed.

With a GPU: the converted model's logits and every converted layer's output
against the PyTorch model's (fp32, TF32 off), and the latency of both
(:data:`COLUMNS`) at each sparsity and batch size, side by side in one
process. With no GPU (or ``--compile-only``): every layer is compiled and
its code statistics printed.
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
    """Per converted layer: its output's relative error against PyTorch's layer and float64.

    Logits alone can hide a wrong layer: global magnitude pruning of a
    randomly initialised model may prune a classifier entirely, leaving
    logits that equal the bias whatever came before. Each converted layer
    is run on the input it receives in the PyTorch model; returns name ->
    {"torch": error against the PyTorch layer (fp32), "fp64": irprune's error
    against the layer in float64, "torch_fp64": PyTorch's own fp32 error
    against float64, "zero_input": whether that input was all zeros (then the
    layer's check says little)}.
    """
    import copy

    from .torch_convert import SparseConv2d, run_hooked

    names = {n for n, m in fast.named_modules() if isinstance(m, SparseConv2d)}
    seen: dict[str, tuple] = {}
    run_hooked(model, x, [m.register_forward_hook(lambda mod, a, out, n=n: seen.__setitem__(n, (a[0], out)))
                          for n, m in model.named_modules() if n in names])
    errs = {}
    with torch.no_grad():
        for n, (inp, ref) in seen.items():
            got = fast.get_submodule(n)(inp)
            ref64 = copy.deepcopy(model.get_submodule(n)).double()(inp.double())
            errs[n] = {"torch": _rel_err(got, ref), "fp64": _rel_err(got.double(), ref64),
                       "torch_fp64": _rel_err(ref.double(), ref64),
                       "zero_input": not bool(inp.any())}
    return errs


def _time_fastest(fast, x, ref) -> dict:
    """Each layer irprune or PyTorch, whichever times faster on ``x``; the model from a CUDA graph.

    The layers go back to irprune afterwards, so that the next batch size
    chooses afresh.
    """
    from .torch_graph import graphed
    from .torch_select import keep_faster, time_layers

    timings = time_layers(fast, x)
    slower = keep_faster(fast, timings)
    try:
        g = graphed(fast)  # a new capture: the layers' code changed
        got = g(x)
        ms = _median_ms(lambda: g(x))
    finally:
        keep_faster(fast, None)
    return {"irprune_fastest_graph_ms": ms, "rel_err_logits_fastest": _rel_err(got, ref),
            "layers_left_to_pytorch": len(slower),
            "layer_us": {n: [round(t.irprune_us, 2), round(t.torch_us, 2)] for n, t in timings.items()}}


def _tf32(on: bool) -> None:
    torch.backends.cudnn.allow_tf32 = on
    torch.backends.cuda.matmul.allow_tf32 = on


def _rel_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    scale = float(ref.abs().max())
    return float((got - ref).abs().max()) / (scale if scale > 0 else 1.0)


#: (column, what it times) of each latency measured; ``irprune_graph_ms`` is the headline.
COLUMNS = {
    "eager_fp32_ms": "PyTorch eager, fp32 (TF32 off)",
    "eager_tf32_ms": "PyTorch eager, TF32 on",
    "eager_fp32_graph_ms": "PyTorch eager fp32 replayed from a CUDA graph",
    "compile_fp32_ms": "torch.compile (default mode), fp32",
    "irprune_ms": "irprune, one Python launch per layer",
    "irprune_graph_ms": "irprune replayed from a CUDA graph (irprune.torch_convert.graphed)",
    "irprune_fastest_graph_ms": "the same, each layer irprune or PyTorch, whichever measured faster at "
                                "this batch (irprune.torch_select), from a CUDA graph",
}


def _convert_all(name, base, sparsities, batch, image, threshold, jobs, cache, progress, log):
    """Per sparsity: (PyTorch model with masks folded in, converted model, result dict)."""
    import copy

    from .models import make_permanent, prune_global

    gpu = torch.cuda.is_available()
    device = "cuda" if gpu else "cpu"
    out = []
    for sp in sparsities:
        pruned = copy.deepcopy(base)
        if sp is not None:
            prune_global(pruned, sp)  # masks kept: convert reads weight_orig * weight_mask
        pruned = pruned.to(device).eval()
        x0 = torch.randn(batch, 3, image, image, device=device)
        t0 = time.perf_counter()
        fast = convert(pruned, x0, threshold=threshold, cache=cache, progress=progress, jobs=jobs)
        compile_s = time.perf_counter() - t0
        reps = fast.irprune_report
        conv = [r for r in reps if r.status == "converted"]
        total = sum(r.weights for r in reps)
        res = {
            "model": name, "sparsity": sp, "threshold": threshold,
            "device": torch.cuda.get_device_name() if gpu else "cpu",
            "layers": len(reps), "converted": len(conv),
            "sparsity_measured": round(1 - sum(r.nnz for r in reps) / total, 4),
            "weights_converted": sum(r.weights for r in conv),
            "nnz_converted": int(sum(r.nnz for r in conv)), "fma": int(sum(r.fma for r in conv)),
            "compile_seconds": round(compile_s, 1),
            "report": [r.__dict__ | {"input_shape": list(r.input_shape or ())} for r in reps],
        }
        dense = sum(r.status == "dense" for r in reps)
        skipped = [f"{r.name} ({r.reason})" for r in reps if r.status == "skipped"]
        log(f"{name} at {sp}: {len(conv)}/{len(reps)} layers converted, {res['nnz_converted']:,} "
            f"nonzero weights, {res['fma']:,} FMAs, compiled in {compile_s:.1f} s; {dense} below "
            f"the threshold; skipped: {', '.join(skipped) or 'none'}")
        out.append((make_permanent(pruned), fast, res))
    return out


def run(name: str, sparsities=(0.9,), batches=(1, 16), threshold: float = 0.5, image: int = 224,
        jobs: int | None = None, cache=None, progress: bool = True, compare_compile: bool = True,
        compile_only: bool = False, seed: int = 0, model: torch.nn.Module | None = None,
        select_fastest: bool = True, log=print) -> list[dict]:
    """Build, prune, convert and (on a GPU) check and time ``name`` at each sparsity.

    ``model``: the unpruned model (default: :func:`irprune.models.build` of
    ``name``); each sparsity prunes a copy of it (None: as it is).

    Every number of one call is measured in one process, side by side: per
    batch size, the PyTorch model (masks folded in, as deployed) eager with
    TF32 off and on, eager replayed from a CUDA graph, torch.compile (compiled
    once per batch; each sparsity's weights are copied into it in place), and
    irprune with per-layer launches and from a CUDA graph, and (``select_fastest``)
    irprune with each layer irprune or PyTorch by measured time at that batch.
    Correctness: the logits and every converted layer's output against
    PyTorch's in fp32 and float64.
    Returns one result dict per sparsity.
    """
    from .torch_graph import graphed

    from .models import build

    gpu = torch.cuda.is_available()
    base = build(name, seed=seed) if model is None else model
    entries = _convert_all(name, base, sparsities, batches[0], image, threshold, jobs, cache,
                           progress, log)
    results = [res for _, _, res in entries]
    if not gpu or compile_only:
        return results
    for res in results:
        res["timings"] = []
    # One PyTorch module for the baselines: each sparsity's weights are loaded
    # into it in place, so that its CUDA graphs and torch.compile stay valid.
    import copy

    baseline = copy.deepcopy(entries[0][0])
    base_graph = graphed(baseline)
    compiled = None
    if compare_compile:
        try:
            compiled = torch.compile(baseline)
        except Exception as exc:  # torch.compile is not everywhere
            log(f"torch.compile unavailable: {type(exc).__name__}: {str(exc)[:200]}")
    with torch.no_grad():
        for n in batches:
            x = torch.randn(n, 3, image, image, device="cuda")
            for (model, fast, res) in entries:
                baseline.load_state_dict(model.state_dict())
                fast_graph = graphed(fast)
                _tf32(False)
                ref = model(x)
                ref64 = copy.deepcopy(model).double()(x.double())
                got, got_graph = fast(x), fast_graph(x)
                layers = compare_layers(model, fast, x)
                worst = max(layers, key=lambda k: layers[k]["fp64"]) if layers else None
                row = {"batch": n, "rel_err_logits": _rel_err(got, ref),
                       "rel_err_logits_graph": _rel_err(got_graph, ref),
                       "rel_err_logits_fp64": _rel_err(got.double(), ref64),
                       "rel_err_logits_torch_fp64": _rel_err(ref.double(), ref64),
                       "max_layer_rel_err": max((e["torch"] for e in layers.values()), default=None),
                       "max_layer_rel_err_fp64": layers[worst]["fp64"] if worst else None,
                       "max_layer_rel_err_torch_fp64": max((e["torch_fp64"] for e in layers.values()),
                                                           default=None),
                       "worst_layer": worst,
                       "layers_checked": len(layers),
                       "layers_zero_input": sum(e["zero_input"] for e in layers.values()),
                       # True when pruning cut every path to the logits (e.g. the whole classifier).
                       "logits_same_for_every_image": bool((ref == ref[:1]).all()) if n > 1 else None,
                       "top1_agree": float((got.argmax(1) == ref.argmax(1)).float().mean())}
                row["eager_fp32_ms"] = _median_ms(lambda: baseline(x))
                row["eager_fp32_graph_ms"] = _median_ms(lambda: base_graph(x))
                _tf32(True)
                row["eager_tf32_ms"] = _median_ms(lambda: baseline(x))
                _tf32(False)
                if compiled is not None:
                    try:
                        row["compile_fp32_ms"] = _median_ms(lambda: compiled(x))
                    except Exception as exc:
                        row["compile_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
                row["irprune_ms"] = _median_ms(lambda: fast(x))
                row["irprune_graph_ms"] = _median_ms(lambda: fast_graph(x))
                if select_fastest and layers:  # nothing to choose in a model with no irprune layer
                    row.update(_time_fastest(fast, x, ref))
                for k in ("eager_fp32_ms", "eager_tf32_ms", "eager_fp32_graph_ms", "compile_fp32_ms"):
                    if k in row:
                        row["speedup_vs_" + k[:-3]] = round(row[k] / row["irprune_graph_ms"], 3)
                        if "irprune_fastest_graph_ms" in row:
                            row["speedup_fastest_vs_" + k[:-3]] = round(
                                row[k] / row["irprune_fastest_graph_ms"], 3)
                res["timings"].append(row)
                log(json.dumps({"model": name, "sparsity": res["sparsity"], **row}))
    return results


def main(args) -> int:
    """The ``irprune model`` command."""
    from pathlib import Path

    results = run(args.name, tuple(args.sparsity), batches=tuple(args.batches),
                  threshold=args.threshold, jobs=args.jobs, progress=not args.no_progress,
                  compare_compile=not args.no_torch_compile, compile_only=args.compile_only,
                  select_fastest=not args.no_select,
                  seed=args.seed)
    if not torch.cuda.is_available() or args.compile_only:
        from rich.console import Console
        from rich.table import Table

        for res in results:
            t = Table(title=f"{args.name} at sparsity {res['sparsity']}: per layer (code only)")
            for col in ("layer", "kind", "input", "sparsity", "nnz", "FMAs", "status"):
                t.add_column(col)
            for r in res["report"]:
                t.add_row(r["name"], r["kind"], "x".join(map(str, r["input_shape"])),
                          f"{r['sparsity']:.3f}", f"{r['nnz']:,}", f"{r['fma']:,}",
                          r["status"] + (f" ({r['reason']})" if r["reason"] else ""))
            Console().print(t)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1, default=str))
    return 0
