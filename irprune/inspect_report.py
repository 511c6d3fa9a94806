"""Printing ``irprune inspect``'s views: rich tables and syntax colour in a terminal,
plain text when piped, JSON with ``--json``."""

from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table

from . import inspect_views as views
from .errors import ValidationError


def _console(args) -> Console:
    force = {"always": True, "never": False}.get(args.color)
    return Console(force_terminal=force, no_color=args.color == "never", soft_wrap=True,
                   highlight=False)


def _print_ir(con: Console, text: str, lexer: str = "llvm") -> None:
    if con.is_terminal:
        con.print(Syntax(text, lexer, theme="ansi_dark", word_wrap=False))
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _chain_text(ch: dict) -> str:
    idx = "(" + ", ".join(map(str, ch["index"])) + ")"
    lines = [f"; weight {idx} = {ch['value']!r}" + (" (zero: pruned)" if ch["pruned"] else "")]
    if ch.get("layout") == "table":
        where = (f"block {ch['block']} (grid x {ch['grid'][0]}, y {ch['grid'][1]}), "
                 f"output-channel row {ch['row']}")
        if ch["slot"] is None:
            lines.append(f";   no pair in {where}: a zero weight is not stored")
        else:
            off, bits = ch["words"]
            lines.append(f";   pair {ch['slot']} of {where}: input offset {off}, weight bits "
                         f"{bits & 0xFFFFFFFF:#010x} (embedded by embed-tables)")
        return "\n".join(lines)
    for t in ch["template"]:
        lines.append(";   in the IR template:")
        for key in ("address", "load", "inputs", "multiplies", "accumulates"):
            v = t[key]
            for line in ([v] if isinstance(v, str) else (v or [])):
                lines.append(f"  {line:<90} ; {key}")
        if t["shared_inputs"]:
            lines.append(f";   + {t['shared_inputs']} input value(s) shared with other weights")
    lines.append(";   after pruning:" + ("" if ch["after_pruning"] else " nothing (the whole chain is gone)"
                                        if ch["pruned"] else " folded into its neighbours' code"))
    lines.extend("  " + l for l in ch["after_pruning"])
    return "\n".join(lines)


def report(k, args) -> int:
    """Print the view ``args`` selects for kernel ``k``; return the exit status."""
    con = _console(args)
    if args.list_stages:
        names = views.stage_names(k)
        print(json.dumps(names) if args.json else "\n".join(names))
        return 0
    if args.stage:
        text = views.stage_text(k, args.stage)
        if args.json:
            print(json.dumps({"stage": args.stage, "text": text}))
        else:
            _print_ir(con, text, "llvm" if args.stage not in ("ptx", "ptxas", "sass") else "text")
        return 0
    if args.print_between_passes:
        stages = [n for n in k.asm if n not in ("nvvm", "llvm-pruned", "ptx")]
        if args.json:
            print(json.dumps({n: k.asm[n] for n in stages}))
        for n in stages if not args.json else ():
            con.print(f"; *** IR after {n} ***", style="bold")
            _print_ir(con, k.asm[n])
        return 0
    if args.weight is not None:
        if len(args.weight) != 4:
            raise ValidationError("--weight takes 4 numbers k,c,r,s", stage="inspect")
        ch = views.weight_chain(k, *args.weight)
        print(json.dumps(ch, indent=1)) if args.json else _print_ir(con, _chain_text(ch))
        return 0
    if args.channel is not None:
        chains = views.channel_chains(k, args.channel)
        if args.json:
            print(json.dumps(chains, indent=1))
        else:
            _print_ir(con, "\n".join(_chain_text(c) for c in chains))
        return 0
    if args.diff:
        d = views.diff(k)
        print(json.dumps({"diff": d})) if args.json else _print_ir(con, d, "diff")
        return 0
    s = views.summary(k)
    if args.json:
        print(json.dumps(s, indent=1))
        return 0
    t = Table(title=f"irprune: {s['layer']}", show_header=False)
    t.add_column("what", style="bold")
    t.add_column("value", justify="right")
    # the immediate layout's pass and load counts, or the table layout's tables
    middle = [
        ("layout", f"{s['config']}, {s['threads']} threads a block"),
        ("table blocks / bytes", f"{s['table_blocks']:,} / {s['table_bytes']:,}"),
        ("shared memory a block", f"{s['shared_bytes']:,} bytes"),
    ] if s.get("layout") == "table" else [
        ("channel groups", f"{s['groups']} x {s['group_size']} channels"),
        ("instructions: template -> pruned", f"{s['instructions_template']:,} -> {s['instructions_pruned']:,}"),
        *[(f"  removed by {n}", f"{v['removed']:,}") for n, v in s["removed_by_pass"].items()],
        ("loads: template -> pruned", f"{s['loads_template']:,} -> {s['loads_pruned']:,}"),
    ]
    rows = [
        ("weights / nnz", f"{s['weights']:,} / {s['nnz']:,} ({s['sparsity']:.1%} zero)"),
        *middle,
        ("fma.rn.f32 in PTX", f"{s['fma']:,}"),
        ("PTX lines", f"{s['ptx_lines']:,}"),
        ("registers / spill bytes", f"{s['registers']} / {s['spill_bytes']}"),
        ("code bytes (SASS)", f"{s['code_bytes']:,}"),
    ]
    if "code_bytes_per_block" in s:
        rows.append(("code bytes per thread block", f"{s['code_bytes_per_block']:,}"))
    for r in rows:
        t.add_row(*r)
    con.print(t)
    return 0
