"""Render the whole-model results (`irprune model ... --out F.json`) as the Markdown tables of docs/performance.md.

    python tools/model_table.py docs/perf/models/*.json            # the summary tables
    python tools/model_table.py --layers docs/perf/models/*.json   # per converted layer: irprune and PyTorch times
"""

from __future__ import annotations

import json
import sys


def rows(paths):
    for p in paths:
        for res in json.load(open(p)):
            for t in res.get("timings", []):
                yield res, t


def main(paths) -> None:
    print("| model | sparsity | batch | layers converted | nnz | eager fp32 | eager TF32 | eager fp32 graph "
          "| torch.compile | irprune | irprune graph | vs eager fp32 | vs eager graph | vs torch.compile "
          "| vs TF32 |")
    print("|" + "---|" * 15)
    for res, t in sorted(rows(paths), key=lambda r: (r[0]["model"], r[1]["batch"], r[0]["sparsity"])):
        ms = lambda k: f"{t[k]:.2f}" if k in t else "-"  # noqa: E731
        x = lambda k: f"**{t[k]:.2f}x**" if t.get(k, 0) >= 1 else (f"{t[k]:.2f}x" if k in t else "-")  # noqa: E731
        print(f"| {res['model']} | {res['sparsity']} | {t['batch']} | {res['converted']}/{res['layers']} "
              f"| {res['nnz_converted']:,} | {ms('eager_fp32_ms')} | {ms('eager_tf32_ms')} "
              f"| {ms('eager_fp32_graph_ms')} | {ms('compile_fp32_ms')} | {ms('irprune_ms')} "
              f"| {ms('irprune_graph_ms')} | {x('speedup_vs_eager_fp32')} | {x('speedup_vs_eager_fp32_graph')} "
              f"| {x('speedup_vs_compile_fp32')} | {x('speedup_vs_eager_tf32')} |")
    fast = [(r, t) for r, t in rows(paths) if "irprune_fastest_graph_ms" in t]
    if fast:
        print()
        print("Each layer irprune or PyTorch, whichever measured faster at that batch "
              "(`irprune.torch_select`), from a CUDA graph:")
        print()
        print("| model | sparsity | batch | layers left to PyTorch | irprune graph | fastest per layer, graph "
              "| vs eager fp32 | vs eager graph | vs torch.compile | vs TF32 | logits vs PyTorch |")
        print("|" + "---|" * 11)
        for res, t in sorted(fast, key=lambda r: (r[0]["model"], r[1]["batch"], r[0]["sparsity"])):
            x = lambda k: f"**{t[k]:.2f}x**" if t.get(k, 0) >= 1 else (f"{t[k]:.2f}x" if k in t else "-")  # noqa: E731
            print(f"| {res['model']} | {res['sparsity']} | {t['batch']} "
                  f"| {t['layers_left_to_pytorch']}/{res['converted']} | {t['irprune_graph_ms']:.2f} "
                  f"| {t['irprune_fastest_graph_ms']:.2f} | {x('speedup_fastest_vs_eager_fp32')} "
                  f"| {x('speedup_fastest_vs_eager_fp32_graph')} | {x('speedup_fastest_vs_compile_fp32')} "
                  f"| {x('speedup_fastest_vs_eager_tf32')} | {t['rel_err_logits_fastest']:.2g} |")
    print()
    print("| model | sparsity | batch | layers checked | with an all-zero input | max layer error vs PyTorch fp32 "
          "| max layer error vs float64 (irprune / PyTorch fp32) | logits vs PyTorch | logits the same for every image |")
    print("|" + "---|" * 9)
    for res, t in sorted(rows(paths), key=lambda r: (r[0]["model"], r[1]["batch"], r[0]["sparsity"])):
        same = t.get("logits_same_for_every_image")
        print(f"| {res['model']} | {res['sparsity']} | {t['batch']} | {t['layers_checked']} "
              f"| {t['layers_zero_input']} | {t['max_layer_rel_err']:.2g} "
              f"| {t['max_layer_rel_err_fp64']:.2g} / {t['max_layer_rel_err_torch_fp64']:.2g} "
              f"| {t['rel_err_logits']:.2g} | {'-' if same is None else ('yes' if same else 'no')} |")


def layers(paths) -> None:
    """Per result: every converted layer's time both ways (microseconds, from CUDA graphs) at each batch."""
    for p in paths:
        for res in json.load(open(p)):
            timed = [t for t in res.get("timings", []) if "layer_us" in t]
            if not timed:
                continue
            print(f"### {res['model']} at sparsity {res['sparsity']}\n")
            head = "".join(f" batch {t['batch']}: irprune us | PyTorch us |" for t in timed)
            print(f"| layer | input | sparsity | nnz |{head}")
            print("|" + "---|" * (4 + 2 * len(timed)))
            for r in res["report"]:
                if r["status"] != "converted":
                    continue
                cells = ""
                for t in timed:
                    irp, pt = t["layer_us"].get(r["name"], (None, None))
                    cells += (f" {'**' if irp < pt else ''}{irp:.1f}{'**' if irp < pt else ''} | {pt:.1f} |"
                              if irp is not None else " - | - |")
                shape = "x".join(map(str, r["input_shape"][1:]))
                print(f"| {r['name']} | {shape} | {r['sparsity']:.3f} | {r['nnz']:,} |{cells}")
            print()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--layers"]:
        layers(sys.argv[2:])
    else:
        main(sys.argv[1:])
