"""Tables and plots from a benchmark's JSON (no GPU needed: ``irprune bench --report FILE``)."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path


#: Columns of the tables, in order, and their headings.
COLUMNS = [("irprune", "irprune"), ("dense_template", "dense tmpl"), ("cudnn_fp32", "cuDNN fp32"),
           ("cudnn_tf32", "cuDNN TF32"), ("cudnn_fp16", "cuDNN fp16"), ("cusparse_csr", "cuSPARSE"),
           ("floor", "floor"), ("code_floor", "code floor"), ("move_floor", "move floor")]

#: The paper's reported ranges (Dong et al. 2020), for the comparison table.
PAPER = {"batch 64 vs cuDNN": "3.1-9.6x", "batch 64 vs cuSPARSE": "5.5-43.2x",
         "batch 1 vs cuDNN": "1.2-4.9x", "batch 1 vs cuSPARSE": "2.4-154.6x",
         "resnet_3x3_56 vs dense template": "1.035x at 0.1 to 2.83x at 0.9"}


def merge(docs: list[dict]) -> dict:
    """One document from several runs (one suite each, say): records joined, runs listed.

    A record of a later document replaces an earlier one of the same (suite, layer, batch,
    sparsity, implementation): a later run that times a layer an earlier one refused
    supersedes it, in the tables and in what is listed as not timed.
    """
    if len(docs) == 1:
        return docs[0]
    runs, records = [], {}
    for d in docs:
        runs += d.get("runs") or [{"suites": d.get("config", {}).get("suites"),
                                   "environment": d["environment"], "config": d.get("config", {})}]
        for r in d["records"]:
            records[(r["suite"], r["layer"], r["batch"], r["sparsity"], r["impl"])] = r
    return {"environment": docs[0]["environment"], "runs": runs, "records": list(records.values())}


def index(doc: dict) -> dict:
    """(suite, layer, batch, sparsity) -> impl -> record."""
    out: dict = defaultdict(dict)
    for r in doc["records"]:
        out[(r["suite"], r["layer"], r["batch"], r["sparsity"])][r["impl"]] = r
    return out


def _t(rec) -> float | None:
    if rec is None or rec.get("status") != "ok" or rec.get("median_us") is None:
        return None
    return float(rec["median_us"])


def speedup(row: dict, base: str, impl: str = "irprune") -> float | None:
    a, b = _t(row.get(impl)), _t(row.get(base))
    return b / a if a and b else None


def geomean(vals) -> float | None:
    vals = [v for v in vals if v]
    return math.exp(sum(math.log(v) for v in vals) / len(vals)) if vals else None


def _cell(rec) -> str:
    if rec is None:
        return ""
    if rec.get("status") != "ok":
        return rec.get("status", "?")
    v = rec["median_us"]
    return f"{v:,.1f}" if v >= 10 else f"{v:.2f}"


def _x(v) -> str:
    return f"{v:.2f}x" if v else "-"


def tables(doc: dict) -> str:
    """Markdown: per suite and batch, time per implementation and irprune's speedups."""
    idx = index(doc)
    groups: dict = defaultdict(list)
    for key in idx:
        groups[(key[0], key[2])].append(key)
    lines = []
    for (suite, batch) in sorted(groups):
        lines += [f"### {suite}, batch {batch} (median us; speedup = baseline time / irprune time)", ""]
        head = ["layer", "sparsity", *[h for _, h in COLUMNS], "vs fp32", "vs TF32", "vs cuSPARSE",
                "vs dense tmpl", "floor / irprune", "code floor / irprune", "move floor / irprune"]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        order = {l: i for i, l in enumerate(dict.fromkeys(k[1] for k in idx))}
        for key in sorted(groups[(suite, batch)], key=lambda k: (order[k[1]], k[3])):
            row = idx[key]
            fl, cf, mf = (speedup(row, f) for f in ("floor", "code_floor", "move_floor"))
            lines.append("| " + " | ".join([key[1], f"{key[3]:.2f}", *[_cell(row.get(i)) for i, _ in COLUMNS],
                                            _x(speedup(row, "cudnn_fp32")), _x(speedup(row, "cudnn_tf32")),
                                            _x(speedup(row, "cusparse_csr")),
                                            _x(speedup(row, "dense_template")),
                                            f"{fl:.2f}" if fl else "-",
                                            f"{cf:.2f}" if cf else "-",
                                            f"{mf:.2f}" if mf else "-"]) + " |")
        lines.append("")
    return "\n".join(lines)


def summary(doc: dict, sparsity: float = 0.9) -> str:
    """Geometric means of irprune's speedups at one sparsity, per suite and batch."""
    idx = index(doc)
    groups: dict = defaultdict(list)
    for key, row in idx.items():
        if abs(key[3] - sparsity) < 1e-9:
            groups[(key[0], key[2])].append(row)
    lines = ["| suite | batch | layers timed | geomean vs cuDNN fp32 | vs TF32 | vs fp16 | vs cuSPARSE "
             "| vs dense template | irprune / floor | irprune / code floor | irprune / move floor "
             "| irprune faster than fp32 and TF32 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (suite, batch), rows in sorted(groups.items()):
        timed = [r for r in rows if _t(r.get("irprune"))]
        wins = sum(1 for r in timed if (speedup(r, "cudnn_fp32") or 0) > 1 and (speedup(r, "cudnn_tf32") or 0) > 1)
        fl = geomean([1 / s for s in (speedup(r, "floor") for r in timed) if s])
        cf = geomean([1 / s for s in (speedup(r, "code_floor") for r in timed) if s])
        mf = geomean([1 / s for s in (speedup(r, "move_floor") for r in timed) if s])
        lines.append("| " + " | ".join([
            suite, str(batch), f"{len(timed)}/{len(rows)}",
            _x(geomean(speedup(r, "cudnn_fp32") for r in timed)),
            _x(geomean(speedup(r, "cudnn_tf32") for r in timed)),
            _x(geomean(speedup(r, "cudnn_fp16") for r in timed)),
            _x(geomean(speedup(r, "cusparse_csr") for r in timed)),
            _x(geomean(speedup(r, "dense_template") for r in timed)),
            _x(fl), _x(cf), _x(mf), f"{wins}/{len(timed)}"]) + " |")
    return "\n".join(lines)


def compile_table(doc: dict) -> str:
    """Compile seconds per layer (cold: lowering, passes, PTX, ptxas; and from the cache)."""
    rows = [r for r in doc["records"] if r["impl"] == "irprune" and r.get("compile")]
    lines = ["| suite | layer | batch | sparsity | nnz | cold s (numba + unroll + passes + PTX + ptxas) | cached s |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        c = r["compile"]
        parts = " + ".join(f"{(c.get(n + '_s') or 0):.1f}" for n in ("numba", "unroll", "passes", "ptx", "ptxas"))
        lines.append(f"| {r['suite']} | {r['layer']} | {r['batch']} | {r['sparsity']:.2f} | {r['nnz']:,} | "
                     f"{c['cold_s']:.1f} ({parts}) | {c['cached_s']:.3f} |")
    return "\n".join(lines)


def problems(doc: dict) -> list[str]:
    """Every record that is not a clean timing, one line each."""
    out = []
    for r in doc["records"]:
        if r.get("status") != "ok":
            out.append(f"{r['suite']}/{r['layer']} b{r['batch']} s{r['sparsity']} {r['impl']}: "
                       f"{r['status']}" + (f" ({r.get('error')})" if r.get("error") else "")
                       + (f", rel err {r['rel_err']:.2e}" if r.get("rel_err") is not None else ""))
    return out


def plots(doc: dict, out_dir: Path) -> list[Path]:
    """One PNG per (suite, batch): speedup over cuDNN fp32 against sparsity, one panel per layer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = index(doc)
    groups: dict = defaultdict(lambda: defaultdict(dict))
    for (suite, layer, batch, sp), row in idx.items():
        groups[(suite, batch)][layer][sp] = row
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    styles = {"irprune": ("C0", "-", "o"), "dense_template": ("C7", ":", None),
              "cudnn_tf32": ("C1", "--", None), "cudnn_fp16": ("C2", "--", None),
              "cusparse_csr": ("C3", "-.", None), "floor": ("k", ":", None),
              "code_floor": ("C5", ":", None), "move_floor": ("C6", ":", None)}
    for (suite, batch), layers in sorted(groups.items()):
        n = len(layers)
        cols = min(4, n)
        rows = -(-n // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
        for ax, (layer, by_sp) in zip(axes.flat, layers.items()):
            sps = sorted(by_sp)
            for impl, (color, ls, marker) in styles.items():
                ys = [speedup(by_sp[s], "cudnn_fp32", impl) for s in sps]  # t_fp32 / t_impl
                pts = [(s, y) for s, y in zip(sps, ys) if y]
                if pts:
                    ax.plot(*zip(*pts), color=color, linestyle=ls, marker=marker, label=impl,
                            linewidth=2 if impl == "irprune" else 1)
            ax.axhline(1.0, color="grey", linewidth=0.8)
            ax.set_yscale("log")
            ax.set_title(layer, fontsize=9)
            ax.set_xlabel("sparsity")
            ax.set_ylabel("speedup over cuDNN fp32")
        for ax in list(axes.flat)[n:]:
            ax.axis("off")
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8)
        fig.suptitle(f"{suite}, batch {batch}: speedup over cuDNN fp32 ({doc['environment'].get('gpu')})")
        fig.tight_layout(rect=(0, 0.05, 1, 0.95))
        p = out_dir / f"{suite}_b{batch}.png"
        fig.savefig(p, dpi=90)
        plt.close(fig)
        paths.append(p)
    return paths


def _processes_note(e: dict) -> str:
    """How many processes timed which implementations (irprune.bench.baseline_processes)."""
    n = e.get("baseline_processes", 1)
    if n <= 1:
        return ""
    if "irprune" in e.get("retimed_in_processes", ()):
        return f"; cuDNN, cuSPARSE and irprune: the fastest of {n} processes"
    return f"; cuDNN and cuSPARSE: the fastest of {n} processes (irprune: one)"


def markdown(doc: dict, plot_paths: list[Path] | None = None, rel_to: Path | None = None) -> str:
    """The whole report: environment, summary at 0.9, the paper's ranges, tables, compile, problems."""
    runs = doc.get("runs") or [{"suites": doc.get("config", {}).get("suites"), "environment": doc["environment"]}]
    lines = ["## Runs", ""]
    for run in runs:
        e = run["environment"]
        lines += [f"- {', '.join(run.get('suites') or [])}: {e.get('date')}, GPU {e.get('gpu')} "
                  f"(sm {e.get('compute_capability')}, {e.get('sms')} SMs), driver {e.get('driver')}, "
                  f"commit {e.get('commit')}; torch {e.get('torch')} (CUDA {e.get('cuda_runtime')}, "
                  f"cuDNN {e.get('cudnn')}), numba-cuda {e.get('numba-cuda')}, llvmlite {e.get('llvmlite')}; "
                  f"empty kernel in a graph {e.get('empty_launch_us')} us, device copy "
                  f"{e.get('copy_bandwidth_GBps')} GB/s (read + write)"
                  + (f", code fetch {e['code_fetch_GBps']} GB/s (distinct code, one stream an SM)"
                     if e.get("code_fetch_GBps") else "")
                  + _processes_note(e)]
    lines += ["", "Each suite's ratios come from its own run: every implementation of a row was "
              "measured side by side in that run.", "",
              "## Summary at sparsity 0.9", "", summary(doc), "",
             "The paper's reported ranges (its GPU and baselines, not measured here): " +
             "; ".join(f"{k}: {v}" for k, v in PAPER.items()) + ".", ""]
    if plot_paths:
        lines += ["## Plots", ""]
        for p in plot_paths:
            rel = Path(p).relative_to(rel_to) if rel_to else p
            lines.append(f"![{Path(p).stem}]({rel})")
        lines.append("")
    lines += ["## All measurements", "", tables(doc), "## Compile time", "", compile_table(doc), ""]
    probs = problems(doc)
    if probs:
        lines += ["## Not timed", "", *[f"- {p}" for p in probs], ""]
    return "\n".join(lines)
