"""Experiment: where a cluster table kernel's time goes (table_cluster.py found every cluster
slower). On three layers' best configurations, each compiled without the disk cache, checked
against float64, then its call timed:

- ``base``: no cluster;
- ``launch-cN``: the same code launched in clusters of N (the kernel gets ``cluster-dims``
  only; every block still copies its own slice), the cost of cluster scheduling alone;
- ``multicast-cN-kM``: the cluster kernel, its share of the slice sent in M bulk copies a block
  (templates/conv2d_table.py's MULTICAST_CHUNKS).

    python3 table_cluster_parts.py   # GPU; rows in $OUT/table-cluster-parts.json

Needs tools/experiments/table_cluster.patch applied, as table_cluster.py does.
"""
import os, sys
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

PICKS = [("pw_1024_1024_7", 32, 8, 512), ("l4_1x1_512_2048", 16, 1, 512),
         ("l4_down_1024_2048_s2", 128, 8, 1024)]


def variants():
    yield "base", 1, None, None
    for n in (2, 8):
        yield f"launch-c{n}", 1, n, None
    for n in (2, 8):
        for chunks in (1, 4, 32):
            yield f"multicast-c{n}-k{chunks}", n, None, chunks


def main():
    import irprune.passes as passes
    import irprune.table_kernel as tk
    import irprune.templates.conv2d_table as tmpl
    from gpu_timing import check_then_time, layer_case, save_row
    from irprune.table_layout import TableConfig

    pipeline, chunks0 = passes.TABLE_PIPELINE, tmpl.MULTICAST_CHUNKS
    rows = []
    for name, tk_, ns, threads in PICKS:
        l, w, xs, ref, y = layer_case(name)
        g = l.geometry(1)
        for label, cl, launch_cl, chunks in variants():
            row = {"layer": name, "variant": label, "threads": threads}
            passes.TABLE_PIPELINE = pipeline
            tmpl.MULTICAST_CHUNKS = chunks or chunks0
            tk._ir_memo.clear()
            if launch_cl:
                @dataclass(frozen=True)
                class Launch(passes.ClusterDims):
                    name = f"cluster-dims-{launch_cl}"
                    x: int = launch_cl
                passes.PASSES[Launch.name] = Launch
                passes.TABLE_PIPELINE = pipeline + "," + Launch.name
            try:
                k = tk.compile_table_conv2d(w, (1, l.C, l.H, l.W),
                                            TableConfig(tk_, ns, g.OH * g.OW, cl),
                                            stride=l.stride, cache=False, block=threads,
                                            assemble=True)
                row["reqnctapercluster"] = ".reqnctapercluster" in k.asm["ptx"]
                row["err"], row["us"] = check_then_time(lambda i: k(xs[i], out=y), y, ref)
            except Exception as exc:
                row["error"] = str(exc)[:300]
            save_row(rows, row, "table-cluster-parts.json")
    passes.TABLE_PIPELINE, tmpl.MULTICAST_CHUNKS = pipeline, chunks0


if __name__ == "__main__":
    main()
