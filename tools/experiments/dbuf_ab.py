"""Experiment: the row-tile template double-buffered, and its fills as zero-filling cp.async, A/B.

Variants of each row-tile configuration, each compiled into a cache of its own, checked
against float64 and timed one after the other at batch 64 (then twice more, interleaved):

- ``before``: templates/conv2d_rows.py (one buffer, two barriers a chunk, every fill a load,
  a padding select and a shared store through a register);
- ``async1``: the same template with async-copy added to the pipeline, which turns its fills
  into zero-filling ``cp.async`` (``.s``: 0 bytes read where the select picks the padding);
- ``dbuf_sync``: two buffers and one barrier a chunk (``rows_dbuf_template.txt``: the next
  chunk's fill, then this chunk's FMAs; ``DBUF_LATE=1``: ``rows_dbuf_late_template.txt``,
  the FMAs first, then the fill);
- ``after``: the double-buffered template with async-copy;
- ``stage1`` / ``stage2``: two buffers, the fills register-staged (``rows_stage_template.txt``
  with PREFETCH 1 or 2): chunk i + PREFETCH's global loads go out before chunk i's FMAs and
  are stored into the free buffer after them, one barrier a chunk.

Every variant launches with shared memory for two buffers (irprune.row_tile.tile_floats
doubled here; one buffer's kernels leave half of it unused).

    python3 dbuf_ab.py generate   # any machine: the templates into generated/
    python3 dbuf_ab.py host       # any machine: every variant on small layers, on the CPU
    python3 dbuf_ab.py            # on the GPU (source ../gpu_env.sh first): $OUT/dbuf_ab.json
    DBUF_VARIANTS=before,dbuf_sync python3 dbuf_ab.py   # only these variants
"""
import os, sys, tempfile
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "generated"))
from gpu_timing import build_all, check_and_time_by_layer, layer_of

from irprune.geometry import ConvGeometry

CACHE = os.path.join(tempfile.gettempdir(), "dbufab")
BATCH = 64
VARIANTS = tuple(os.environ.get("DBUF_VARIANTS", "before,async1,dbuf_sync,after").split(","))
#: (layer, group size, rows, chunk): the standing's row-tile choices at batch 64, resnet_3x3_28
#: at two more heights, and three layers where the pixel layout won (tile at ~256 threads).
CASES = [
    ("resnet_3x3_28", 32, 9, 1), ("resnet_3x3_28", 32, 7, 1), ("resnet_3x3_28", 32, 9, 2),
    ("lenet5_c1", 20, 5, 1), ("alexnet_cifar_c1", 32, 4, 1), ("vgg16_c1", 64, 1, 2),
    ("alexnet_cifar_c2", 16, 8, 1), ("resnet_3x3_56", 64, 4, 1), ("vgg16_c3", 64, 2, 1),
    ("resnet_3x3_28", 32, 5, 1), ("resnet_3x3_28", 32, 14, 1), ("resnet_3x3_56", 64, 2, 1),
    ("resnet_3x3_56", 64, 8, 1), ("alexnet_cifar_c2", 16, 16, 1), ("alexnet_cifar_c2", 32, 8, 1),
    ("vgg16_c2", 64, 1, 1), ("vgg16_c3", 64, 1, 1), ("resnet_3x3_56", 64, 4, 2),
]


def generate():
    os.makedirs(os.path.join(HERE, "generated"), exist_ok=True)
    for src, dst in (("rows_dbuf_template.txt", "conv2d_rows_dbuf.py"),
                     ("rows_dbuf_late_template.txt", "conv2d_rows_dbuf_late.py")):
        text = open(os.path.join(HERE, src)).read()
        open(os.path.join(HERE, "generated", dst), "w").write(text)
    text = open(os.path.join(HERE, "rows_stage_template.txt")).read()
    for p in (1, 2):
        with open(os.path.join(HERE, "generated", f"conv2d_rows_stage{p}.py"), "w") as f:
            f.write(text.replace("@PREFETCH@", str(p)).replace("@STAGE_FLOATS@", str(32 * p)))


def _two_buffers():
    """irprune.row_tile.tile_floats with room for two buffers (what the launch reserves)."""
    import irprune.row_tile as row_tile
    if getattr(row_tile.tile_floats, "two_buffers", False):
        return
    one = row_tile.tile_floats

    def tile_floats(g, rows, chunk):
        return one(g, rows, chunk) + chunk * ((rows - 1) * g.stride + g.R) * row_tile.tile_pitch(g)
    tile_floats.two_buffers = True
    row_tile.tile_floats = tile_floats


def kernel_template(variant):
    """The row-tile template a variant compiles."""
    if variant in ("before", "async1"):
        from irprune.templates.conv2d_rows import conv2d_rows
    elif variant.startswith("stage"):
        conv2d_rows = __import__(f"conv2d_rows_{variant}").conv2d_rows
    elif os.environ.get("DBUF_LATE"):
        from conv2d_rows_dbuf_late import conv2d_rows
    else:
        from conv2d_rows_dbuf import conv2d_rows
    return conv2d_rows


def check_stage(geo, rows, chunk, max_stage=32):
    """Refuse a case whose fills need more staging registers than the stage template's
    MAX_STAGE (its local array would be indexed past its end: a wrong answer, not an error).
    ``geo``: the layer's irprune.geometry.ConvGeometry; the counts are the template's."""
    threads = rows * geo.OW
    tile_rows = (rows - 1) * geo.stride + geo.R
    tile_cols = (geo.OW - 1) * geo.stride + geo.S
    cols_at_once = min(tile_cols, threads)
    rows_at_once = threads // cols_at_once
    need = chunk * -(-tile_rows // rows_at_once) * -(-tile_cols // cols_at_once)
    if need > max_stage:
        raise SystemExit(f"{geo.describe()}, rows {rows} chunk {chunk}: {need} staged values a "
                         f"thread, over the stage template's MAX_STAGE {max_stage}")
    return need


def kernel(job, assemble=True):
    """(kernel, weights, layer) of ``job`` = (variant, case)."""
    os.environ.setdefault("IRPRUNE_JOBS", "1")
    from irprune.bench.compile_jobs import bench_weights
    from irprune.cache import DiskCache
    from irprune.kernel import compile_conv2d
    from irprune.passes import DEFAULT_PIPELINE
    _two_buffers()
    variant, (name, g, rows, chunk) = job
    conv2d_rows = kernel_template(variant)
    l = layer_of(name)
    w = bench_weights(l, 0.9, 0)
    if variant.startswith("stage"):
        check_stage(ConvGeometry.from_weight(w.shape, (1, l.C, l.H, l.W), l.stride, l.padding),
                    rows, chunk)
    pipeline = DEFAULT_PIPELINE
    if variant in ("async1", "after"):
        pipeline = pipeline.replace("contract-fma,", "contract-fma,async-copy,")
    k = compile_conv2d(conv2d_rows, w, (1, l.C, l.H, l.W), stride=l.stride, padding=l.padding,
                       group_size=g, tile=(rows, chunk), pipeline=pipeline,
                       cache=DiskCache(os.path.join(CACHE, variant)), assemble=assemble)
    return k, w, l


def host():
    """Every variant on small layers (ragged chunks and tiles, stride 2, 5x5), run on the CPU
    by irprune.host_exec against float64: the pipelining's buffer logic, checked anywhere."""
    import numpy as np
    from irprune.host_exec import run_on_host
    from irprune.reference import pruned_reference, prune_random
    from irprune.kernel import compile_conv2d
    _two_buffers()
    small = [((10, 7, 3, 3), (2, 7, 5, 6), 1, 1, 4, (2, 3)), ((8, 5, 3, 3), (1, 5, 9, 9), 2, 1, 8, (2, 2)),
             ((4, 3, 5, 5), (2, 3, 9, 8), 1, 0, 4, (1, 2)), ((6, 9, 3, 3), (1, 9, 6, 6), 1, 1, 3, (3, 1))]
    worst = 0.0
    for v in VARIANTS:
        for wshape, ishape, stride, pad, gs, tile in small:
            rng = np.random.default_rng(0)
            w = prune_random(wshape, 0.5, seed=0)
            b = rng.standard_normal(wshape[0]).astype(np.float32)
            x = rng.standard_normal(ishape).astype(np.float32)
            tmpl = kernel_template(v)
            if v.startswith("stage"):
                check_stage(ConvGeometry.from_weight(wshape, ishape, stride, pad), *tile)
            k = compile_conv2d(tmpl, w, x.shape, bias=b, stride=stride, padding=pad, relu=True,
                               group_size=gs, tile=tile, cache=False)
            y = run_on_host(k, x)
            ref = pruned_reference(x.astype(np.float64), w.astype(np.float64), stride, pad,
                                   bias=b.astype(np.float64), relu=True)
            err = float(np.max(np.abs(y - ref)) / max(1.0, np.max(np.abs(ref))))
            worst = max(worst, err)
            print(v, wshape, ishape, tile, f"{err:.2e}", "ok" if err < 1e-5 else "WRONG")
    if worst >= 1e-5:
        raise SystemExit(f"largest error {worst:.2e}")


def main():
    if sys.argv[1:] == ["generate"]:
        return generate()
    if sys.argv[1:] == ["host"]:
        return host()
    jobs = [(v, c) for c in CASES for v in VARIANTS]
    build_all(kernel, jobs)
    cases = []
    for job in jobs:
        v, (name, g, rows, chunk) = job
        row = {"layer": name, "variant": v, "g": g, "rows": rows, "chunk": chunk}

        def build(row, job=job):
            k = kernel(job)[0]
            row["block"], row["registers"] = k.block, k.registers
            row["shared_bytes"] = k.shared_bytes
            return k
        cases.append((name, row, build))
    check_and_time_by_layer([], cases,
                            lambda name: kernel(next(j for j in jobs if j[1][0] == name))[1],
                            BATCH, "dbuf_ab.json")

if __name__ == "__main__":
    main()
