"""The ``irprune`` command line.

Every subcommand works with no GPU. Bad input gets one line on stderr and
exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from .errors import IrpruneError, ValidationError
from .llvm_opt import DEFAULT_CPU
from .register_budget import DEFAULT_MAX_REGISTERS

STAGES = ("nvvm", "llvm", "llvm-pruned", "ptx")


def _shape(text: str) -> tuple[int, ...]:
    dims = _dims(text)
    if len(dims) != 4:
        raise argparse.ArgumentTypeError(f"expected 4 numbers N,C,H,W, got {text!r}")
    return dims


def _budget(text: str) -> int | None:
    if text.strip().lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of registers or 'none', got {text!r}") from None


def _pair(text: str) -> tuple[int, int]:
    dims = _dims(text)
    if len(dims) != 2:
        raise argparse.ArgumentTypeError(f"expected 2 numbers ROWS,CHUNK, got {text!r}")
    return dims


def _load_npy(path: str, what: str) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise IrpruneError(f"{what} file {path} does not exist", stage="cli")
    try:
        return np.load(p, allow_pickle=False)
    except Exception as exc:
        raise IrpruneError(f"{what} file {path} is not a .npy array: {exc}", stage="cli") from None


def _compile_from_args(args, cache=None):
    from . import conv2d

    w = _load_npy(args.weights, "weights")
    bias = _load_npy(args.bias, "bias") if args.bias else None
    if args.table is not None:
        return _compile_table(args, w, bias, cache)
    return conv2d(w, args.input_shape, stride=args.stride, padding=args.padding, bias=bias,
                  relu=args.relu, group_size=args.group_size, cpu=args.arch, cache=cache,
                  slices=args.slices, tile=args.tile, max_registers=args.max_registers,
                  channel_order=args.channel_order)


def _compile_table(args, w, bias, cache):
    """The table-layout kernel ``--table TILE_K,SLICES,TILE_P[,THREADS]`` asks for (1x1
    layers)."""
    from .table_kernel import compile_table_conv2d
    from .table_layout import TableConfig

    if len(args.table) not in (3, 4):
        raise ValidationError("--table takes 3 or 4 numbers TILE_K,SLICES,TILE_P[,THREADS]",
                              stage="cli")
    clash = [f for f, on in (("--group-size", args.group_size is not None),
                             ("--slices", args.slices != 1), ("--tile", args.tile is not None),
                             ("--padding", args.padding != 0)) if on]
    if clash:
        raise ValidationError(f"--table is a layout of its own: drop {', '.join(clash)} (its "
                              "slices are the second number of --table)", stage="cli")
    threads = {"block": args.table[3]} if len(args.table) == 4 else {}  # else the default
    return compile_table_conv2d(w, args.input_shape, TableConfig(*args.table[:3]),
                                stride=args.stride, bias=bias, relu=args.relu, cpu=args.arch,
                                cache=cache, **threads)


def cmd_compile(args) -> int:
    k = _compile_from_args(args)
    if args.emit not in k.asm:  # a table kernel from the disk cache keeps its last stages only
        k = _compile_from_args(args, cache=False)
    text = k.asm[args.emit]
    if args.output in (None, "-"):
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text)
        if len(k.parts) > 1 and args.emit in ("ptx", "llvm-pruned"):
            # The joined text is for reading; each part is a module of its own.
            out = Path(args.output)
            for i, part in enumerate(k.parts):
                out.with_name(f"{out.stem}.part{i}{out.suffix}").write_text(
                    part.ptx if args.emit == "ptx" else part.llvm)
            print(f"irprune: the layer is split into {len(k.parts)} parts (IRPRUNE_MAX_PART_NNZ); "
                  f"each module is also in {out.stem}.partN{out.suffix}", file=sys.stderr)
    if args.stats:
        s = {key: v for key, v in k.stats.items() if key != "passes"}
        print(json.dumps(s, indent=2), file=sys.stderr)
    return 0


def _csv(conv, what: str):
    """An argparse type: ``what`` separated by commas, each converted by ``conv``."""
    def parse(text: str) -> tuple:
        try:
            return tuple(conv(v) for v in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what} separated by commas, got {text!r}")
    return parse


_dims = _csv(int, "integers")
_floats = _csv(float, "numbers")


def _positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return n


def _channel_orders(text: str) -> tuple[str, ...]:
    """An argparse type: channel orders (irprune.channel_order.ORDERS) separated by commas."""
    from .channel_order import ORDERS

    orders = tuple(v.strip() for v in text.split(","))
    bad = [o for o in orders if o not in ORDERS]
    if bad:
        raise argparse.ArgumentTypeError(f"expected channel orders out of {', '.join(ORDERS)} "
                                         f"separated by commas, got {text!r}")
    return orders


def _table(text: str):
    """``%t.4=1.5,2`` -> ("%t.4", float32 values) for ``irprune opt --table``."""
    import numpy as np

    param, sep, values = text.partition("=")
    if not sep or not param.startswith("%"):
        raise argparse.ArgumentTypeError(f"expected PARAM=v1,v2,... (e.g. %t.4=1,2), got {text!r}")
    return param, np.asarray(_floats(values), np.float32)


def cmd_opt(args) -> int:
    from .opt import analyses_json, read_ir, run_opt

    text = read_ir(args.file)
    weights = None
    if args.weights:
        weights = _load_npy(args.weights, "weights")
    elif args.weight_values is not None:
        weights = args.weight_values

    def between(name: str, ir: str) -> None:
        print(f"; *** IR after {name} ***", file=sys.stderr)
        print(ir, file=sys.stderr)

    res = run_opt(text, args.passes, weight_param=args.weight_param, weight_shape=args.weight_shape,
                  weights=weights, print_between=between if args.print_between_passes else None,
                  tables=dict(args.table or []), cpu=args.cpu,
                  output_channels=args.output_channels, output_param=args.output_param,
                  output_stride=args.output_stride)
    out = analyses_json(res.ctx) if args.json else res.text
    if args.output in (None, "-"):
        sys.stdout.write(out if out.endswith("\n") else out + "\n")
    else:
        Path(args.output).write_text(out)
    return 0


def _layer_args(c) -> None:
    c.add_argument("--weights", required=True, help="(K, C, R, S) float .npy file; zeros are pruned")
    c.add_argument("--input-shape", required=True, type=_shape, help="N,C,H,W")
    c.add_argument("--stride", type=int, default=1)
    c.add_argument("--padding", type=int, default=0)
    c.add_argument("--bias", help="(K,) float .npy file")
    c.add_argument("--relu", action="store_true")
    c.add_argument("--group-size", type=int, default=None, help="output channels per code region")
    c.add_argument("--slices", type=int, default=1,
                   help="rows of threads that split each pixel's input channels (default 1)")
    c.add_argument("--tile", type=_pair, default=None, metavar="ROWS,CHUNK",
                   help="the row-tile layout: ROWS output rows a block, CHUNK input channels a tile")
    c.add_argument("--max-registers", type=_budget, default=DEFAULT_MAX_REGISTERS, metavar="N",
                   help=f"register budget for ptxas, 24..255, or 'none' to let ptxas choose "
                        f"(default {DEFAULT_MAX_REGISTERS})")
    c.add_argument("--channel-order", default="natural", choices=("natural", "shared"),
                   help="which output channels share a code region: in order, or grouped by "
                        "the input positions their nonzeros read (irprune.channel_order)")
    c.add_argument("--arch", default="sm_90", help="GPU architecture (default sm_90)")
    c.add_argument("--table", type=_dims, default=None, metavar="TILE_K,SLICES,TILE_P[,THREADS]",
                   help="the table layout (1x1 layers; irprune.table_layout): the weights as "
                        "(offset, weight) tables in the module, TILE_K output channels by "
                        "1/SLICES of the input channels by TILE_P pixels a block of THREADS "
                        "threads (default 512)")


def cmd_inspect(args) -> int:
    from .inspect_report import report

    # Every per-pass stage is wanted here, and the disk cache keeps only the final ones.
    k = _compile_from_args(args, cache=False)
    return report(k, args)


def _results_docs(files) -> list[dict]:
    """The bench documents in ``files`` (results.json), each refused in one line when it is not
    JSON or has no records."""
    docs = []
    for f in files:
        try:
            doc = json.loads(Path(f).read_text())
        except ValueError as exc:
            raise IrpruneError(f"{f} is not JSON ({exc}): give a bench run's results.json",
                               stage="bench") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("records"), list):
            raise IrpruneError(f"{f} has no 'records' list: give a bench run's results.json",
                               stage="bench")
        docs.append(doc)
    return docs


def cmd_bench(args) -> int:
    from .bench.report import markdown, plots, problems, summary
    from .bench.suites import SUITES

    out = Path(args.out)
    if args.gap:
        from .bench.gap import gaps
        from .bench.gap import markdown as gap_markdown
        from .bench.report import merge

        doc = merge(_results_docs(args.gap))
        found = gaps(doc, batch=args.gap_batch, sparsity=args.gap_sparsity,
                     large_nnz=args.large_nnz)
        if not found:
            raise IrpruneError(f"no layer of {', '.join(args.gap)} has irprune and a target's "
                               f"reference timed at batch {args.gap_batch}, sparsity "
                               f"{args.gap_sparsity}: give a bench run's results.json",
                               stage="bench")
        print(gap_markdown(found), end="")
        return 0
    if args.report:
        from .bench.report import merge

        doc = merge(_results_docs(args.report))
    else:
        from .bench.runner import BenchConfig, run, write_json

        from .bench.impls import IMPLS

        bad = [i for i in (args.impls or ()) if i not in IMPLS]
        if bad:
            raise IrpruneError(f"unknown implementation {', '.join(bad)}; choose from {', '.join(IMPLS)}",
                               stage="bench")
        if args.retime_blocks and not args.choices_from:
            raise IrpruneError("--retime-blocks re-times the blocks of replayed choices: give "
                               "--choices-from (a tuning run times every block already)",
                               stage="bench")
        suites = list(SUITES) if args.suite == "all" else [args.suite]
        cfg = BenchConfig(suites=suites, quick=args.quick, layers=list(args.layers) if args.layers else None,
                          batches=args.batches, sparsities=args.sparsities,
                          impls=args.impls or BenchConfig.__dataclass_fields__["impls"].default,
                          jobs=args.jobs or (os.cpu_count() or 1), cache_dir=args.cache_dir,
                          max_weights=args.max_weights, max_nnz=args.max_nnz, commit=args.commit,
                          tune=not args.no_tune,
                          baseline_processes=args.baseline_processes,
                          choices_from=args.choices_from,
                          channel_orders=tuple(args.channel_orders),
                          retime_irprune=not args.irprune_once,
                          retime_blocks=args.retime_blocks)
        try:
            doc = run(cfg, out_json=out / "results.json", log=lambda m: print(m, file=sys.stderr))
        except (KeyError, ValueError) as exc:
            raise IrpruneError(str(exc).strip("'\""), stage="bench") from None
        write_json(doc, out / "results.json")
    pngs = plots(doc, out / "plots")
    (out / "tables.md").write_text(markdown(doc, pngs, rel_to=out))
    if args.report and len(args.report) > 1:
        from .bench.runner import write_json

        write_json(doc, out / "results.json")
    print(summary(doc))
    for p in problems(doc):
        print("  not timed:", p)
    print(f"wrote {out / 'results.json'}, {out / 'tables.md'} and {len(pngs)} plots under {out / 'plots'}")
    return 0


def cmd_cache(args) -> int:
    from .cache import DiskCache

    c = DiskCache()
    if args.action == "clear":
        n, size = c.clear()
        print(f"removed {n} entries ({size / 1e6:.1f} MB) from {c.root}")
    elif args.action == "dir":
        print(c.root)
    else:
        info = c.info()
        print(f"{c.root}")
        for kind, e in sorted(info.items()):
            print(f"  {kind}: {e['entries']} entries, {e['bytes'] / 1e6:.1f} MB")
        if not info:
            print("  empty")
    return 0


def cmd_fuzz(args) -> int:
    import json
    from pathlib import Path

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .fuzz import fuzz, summarize
    from .launch import gpu_available

    device = args.device
    if device == "auto":
        device = "gpu" if gpu_available() else "host"
    if device == "gpu" and not gpu_available():
        raise IrpruneError("--device gpu needs a CUDA GPU; use --device host (the pruned IR run "
                           "on the CPU) or none (structure only)", stage="fuzz")
    failed = []
    with Progress(TextColumn("fuzz"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[f]} failed"),
                  TimeElapsedColumn(), transient=not sys.stderr.isatty()) as bar:
        task = bar.add_task("fuzz", total=args.cases, f=0)

        def step(r):
            if r.status == "failed":
                failed.append(r)
                bar.console.print(f"[red]FAILED[/] {r.case.describe()}: {r.detail.splitlines()[0]}")
            bar.update(task, advance=1, f=len(failed))

        results = fuzz(args.cases, seed=args.seed, device=device, max_weights=args.max_weights,
                       max_pixels=args.max_pixels, assemble=not args.no_ptxas, jobs=args.jobs,
                       progress=step)
    summary = {"device": device, "seed": args.seed, **summarize(results)}
    print(json.dumps(summary))
    if args.out:
        Path(args.out).write_text(json.dumps({"summary": summary,
                                              "results": [r.to_dict() for r in results]}, indent=1))
    return 1 if failed else 0


def cmd_model(args) -> int:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise IrpruneError("irprune model needs PyTorch: pip install torch (the CPU build is enough "
                           "with no GPU)", stage="model") from None
    from .model_run import main as model_main

    return model_main(args)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="irprune", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"irprune {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compile", help="compile a pruned conv2d layer and write one stage")
    _layer_args(c)
    c.add_argument("--emit", choices=STAGES, default="ptx")
    c.add_argument("-o", "--output", help="output file (default: stdout)")
    c.add_argument("--stats", action="store_true", help="print statistics as JSON on stderr")
    c.set_defaults(func=cmd_compile)

    from .bench.impls import IMPLS

    b = sub.add_parser("bench", help="time irprune against cuDNN, cuSPARSE and the dense template (GPU, torch)")
    b.add_argument("--suite", choices=("seed", "resnet50", "mobilenet1x1", "all"), default="seed")
    b.add_argument("--quick", action="store_true", help="a few layers and sparsities (under two minutes)")
    b.add_argument("--layers", type=_csv(str, "names"), help="only these layers of the suite")
    b.add_argument("--batches", type=_dims, help="batch sizes (default: the suite's)")
    b.add_argument("--sparsities", type=_floats, help="default 0.5,0.7,0.8,0.9,0.95,0.98")
    b.add_argument("--impls", type=_csv(str, "names"), help=f"default {','.join(IMPLS)}")
    b.add_argument("--jobs", type=int, help="compile processes (default: CPU count)")
    b.add_argument("--cache-dir", help="compile cache to use (default: a fresh one, so compile times are cold)")
    b.add_argument("--max-nnz", type=_positive_int, default=250_000,
                   help="refuse irprune on a layer and sparsity with more nonzeros than this "
                        "(default 250000: every suite layer at 0.9; compile time grows with them)")
    b.add_argument("--max-weights", type=_positive_int,
                   help="also refuse irprune layers with more dense weights than this")
    b.add_argument("--no-tune", action="store_true",
                   help="compile each layer as irprune.conv2d does untuned (default group size, "
                        "128-thread blocks, register budget 128) instead of timing every "
                        "candidate (irprune.tune)")
    b.add_argument("--baseline-processes", type=_positive_int, default=3, metavar="N",
                   help="time cuDNN, cuSPARSE and irprune's chosen kernels in N processes and "
                        "keep each one's fastest (default 3: times move between processes)")
    b.add_argument("--irprune-once", action="store_true",
                   help="time irprune in the main process only (the baselines still in "
                        "--baseline-processes processes)")
    b.add_argument("--choices-from", metavar="JSON",
                   help="an earlier run's results.json: compile and time only the configuration "
                        "its tuner chose for each layer it has (no tuning, but a choice that "
                        "records no channel order is timed in each of --channel-orders; other "
                        "layers are tuned)")
    b.add_argument("--retime-blocks", action="store_true",
                   help="with --choices-from: time each replayed pixel-layout choice with every "
                        "candidate block that fits it too (64-256 threads, multiples of 32) and "
                        "keep the fastest")
    b.add_argument("--channel-orders", type=_channel_orders, default=("natural", "shared"),
                   metavar="LIST",
                   help="channel orders to compile each configuration in where they change its "
                        "groups, comma-separated (default natural,shared: the tuner keeps the "
                        "faster; also for a --choices-from choice that records no order)")
    b.add_argument("--commit", help="commit to record (default: git rev-parse HEAD)")
    b.add_argument("--out", default="bench-out", help="folder for results.json, tables.md, plots/")
    b.add_argument("--report", metavar="JSON", nargs="+",
                   help="only redraw tables and plots from results.json files (several are merged)")
    b.add_argument("--gap", metavar="JSON", nargs="+",
                   help="only print where the geomean targets' gaps lie in results.json files "
                        "(several are merged): which layers hold each back, and by how much")
    b.add_argument("--gap-batch", type=int, default=1, help="with --gap: the batch (default 1)")
    b.add_argument("--gap-sparsity", type=float, default=0.9,
                   help="with --gap: the sparsity (default 0.9)")
    b.add_argument("--large-nnz", type=int, default=None, metavar="N",
                   help="with --gap: split the layers at N nonzeros (default: the tuner's "
                        "LARGE_NNZ)")
    b.set_defaults(func=cmd_bench)

    cc = sub.add_parser("cache", help="the compile cache: show its size, its folder, or clear it")
    cc.add_argument("action", choices=("info", "dir", "clear"), nargs="?", default="info")
    cc.set_defaults(func=cmd_cache)

    i = sub.add_parser("inspect", help="show a layer's compilation: stages, weight chains, summary, diff")
    _layer_args(i)
    view = i.add_mutually_exclusive_group()
    view.add_argument("--stage", help="print one stage (see --list-stages)")
    view.add_argument("--list-stages", action="store_true", help="list the stages")
    view.add_argument("--print-between-passes", action="store_true", help="the IR after each pass")
    view.add_argument("--weight", type=_dims, help="k,c,r,s: that weight's chain before and after")
    view.add_argument("--channel", type=int, help="every weight chain of output channel K")
    view.add_argument("--diff", action="store_true", help="IR template against pruned IR")
    view.add_argument("--summary", action="store_true", help="the numbers (default view)")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    i.set_defaults(func=cmd_inspect)

    f = sub.add_parser("fuzz", help="random layers against the float64 reference (structure, numerics)")
    f.add_argument("--cases", type=int, default=100)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--device", choices=("auto", "gpu", "host", "none"), default="auto",
                   help="where numerics run: the GPU, the CPU (pruned IR through MCJIT), or not at all")
    f.add_argument("--max-weights", type=int, default=20_000, help="K*C*R*S bound of a case")
    f.add_argument("--max-pixels", type=int, default=1024, help="H*W bound of a case")
    f.add_argument("--jobs", type=int, default=1, help="compile processes")
    f.add_argument("--no-ptxas", action="store_true", help="do not assemble the PTX")
    f.add_argument("--out", help="write every case and result as JSON here")
    f.set_defaults(func=cmd_fuzz)

    mo = sub.add_parser("model", help="a whole pruned CNN (resnet50, mobilenet_v2): convert, check, time "
                                       "(GPU), or compile every layer and print its code (no GPU); needs torch")
    mo.add_argument("name", help="resnet50 or mobilenet_v2 (torchvision's, random weights; own copy without torchvision)")
    mo.add_argument("--sparsity", type=_floats, default=(0.9,),
                    help="global magnitude pruning, one or more: 0.8,0.9,0.95 (default 0.9)")
    mo.add_argument("--threshold", type=float, default=0.5, help="convert layers at least this sparse")
    mo.add_argument("--batches", type=_dims, default=(1, 16), help="batch sizes (default 1,16)")
    mo.add_argument("--jobs", type=int, help="compile processes (default: CPU count)")
    mo.add_argument("--seed", type=int, default=0)
    mo.add_argument("--no-progress", action="store_true")
    mo.add_argument("--no-torch-compile", action="store_true", help="skip the torch.compile baseline")
    mo.add_argument("--no-select", action="store_true",
                    help="skip the run with each layer irprune or PyTorch by measured time")
    mo.add_argument("--compile-only", action="store_true",
                    help="compile every layer (into the cache) and print the code statistics; no timing")
    mo.add_argument("--out", help="write the report and timings as JSON here")
    mo.set_defaults(func=cmd_model)

    o = sub.add_parser("opt", help="run a pass pipeline over an LLVM IR file")
    o.add_argument("file", help="LLVM IR text (.ll)")
    o.add_argument("-p", "--passes", required=True, help="comma-separated pass names")
    o.add_argument("--weight-param", default="%w.4", help="the weight's data-pointer parameter")
    o.add_argument("--weight-shape", type=_dims, help="K,C,R,S")
    o.add_argument("--weights", help="weight values as a .npy file")
    o.add_argument("--weight-values", type=_floats, help="weight values, comma-separated, flat")
    o.add_argument("--table", type=_table, action="append", metavar="PARAM=v1,v2,...",
                   help="a table for embed-tables: its parameter and float32 values (repeatable)")
    o.add_argument("--cpu", default=DEFAULT_CPU,
                   help=f"GPU architecture the IR is compiled for (default {DEFAULT_CPU}); "
                   "grid-dependency-wait does nothing below sm_90")
    o.add_argument("--output-channels", type=_dims, default=None, metavar="K0,K1,...",
                   help="place-output-channels: the layer's channel of each channel the module "
                        "computes, in order")
    o.add_argument("--output-param", default="%y.4", help="the output's data-pointer parameter")
    o.add_argument("--output-stride", type=int, default=None, metavar="BYTES",
                   help="place-output-channels: bytes from one output channel to the next")
    o.add_argument("--print-between-passes", action="store_true", help="IR after each pass on stderr")
    o.add_argument("--json", action="store_true", help="print analyses and statistics as JSON")
    o.add_argument("-o", "--output", help="output file (default: stdout)")
    o.set_defaults(func=cmd_opt)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except IrpruneError as exc:
        print(f"irprune: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"irprune: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
