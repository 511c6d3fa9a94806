"""Experiment: table kernels whose blocks share their input slice in a thread-block cluster
(irprune.table_layout.TableConfig.cluster: each block of a cluster multicasts 1/cluster of the
slice into all of them) against the same configuration without a cluster.

Every (layer, tile_k, slices, threads) of PICKS is compiled with each cluster size of
CLUSTERS that the layer takes, without the disk cache; each kernel is checked against float64
(irprune's call, output poisoned with NaN; a cluster kernel's multicast or mbarrier gone wrong
shows as NaN or a wrong sum), then its call (with the zeroing, where several slices add) timed
as graph replays over 16 inputs.

    python3 table_cluster.py [LAYER ...]   # GPU; rows in $OUT/table-cluster.json

The cluster kernel is not part of irprune (every cluster ran slower): apply
tools/experiments/table_cluster.patch first (``git apply``), which adds TableConfig.cluster,
the ``cluster-dims`` pass and the template's multicast path.
"""
import os, sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

#: (layer, tile_k, slices, threads): the seven large 1x1 layers' fastest table configurations
#: in the 0642135 bench run (the first of each is its best).
PICKS = [("l4_down_1024_2048_s2", 128, 8, 1024), ("l4_down_1024_2048_s2", 64, 8, 512),
         ("l4_down_1024_2048_s2", 64, 4, 512), ("l4_down_1024_2048_s2", 32, 8, 512),
         ("pw_1024_1024_7", 32, 8, 512), ("pw_1024_1024_7", 16, 8, 512),
         ("pw_1024_1024_7", 64, 8, 512),
         ("l4_1x1_512_2048", 16, 1, 512), ("l4_1x1_512_2048", 32, 2, 512),
         ("l4_1x1_2048_512", 32, 8, 1024), ("l4_1x1_2048_512", 16, 8, 512),
         ("pw_512_1024_7", 16, 2, 512), ("pw_512_1024_7", 16, 4, 512),
         ("l4_1x1_1024_512", 32, 8, 512), ("l3_down_512_1024_s2", 64, 8, 512)]
CLUSTERS = (1, 2, 4, 8)


def main(layers):
    from gpu_timing import check_then_time, layer_case, save_row
    from irprune.table_kernel import compile_table_conv2d
    from irprune.table_layout import TableConfig, table_problem

    rows, cases = [], {}
    for name, tk_, ns, threads in PICKS:
        if layers and name not in layers:
            continue
        if name not in cases:
            cases[name] = layer_case(name)
        l, w, xs, ref, y = cases[name]
        g = l.geometry(1)
        for cl in CLUSTERS:
            config = TableConfig(tk_, ns, g.OH * g.OW, cl)
            if table_problem(g, "sm_90", False, config):
                continue
            row = {"layer": name, "config": config.describe(), "threads": threads,
                   "cluster": cl}
            try:
                k = compile_table_conv2d(w, (1, l.C, l.H, l.W), config, stride=l.stride,
                                         cache=False, block=threads, assemble=True)
                row["shared"] = k.shared_bytes
                row["err"], row["us"] = check_then_time(lambda i: k(xs[i], out=y), y, ref)
            except Exception as exc:
                row["error"] = str(exc)[:300]
            save_row(rows, row, "table-cluster.json")


if __name__ == "__main__":
    main(sys.argv[1:])
