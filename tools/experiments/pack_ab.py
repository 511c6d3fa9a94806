"""Experiment: the three strided 1x1 layers run as stride-1 layers on a packed input.

A 1x1 layer at stride 2 reads every other value of every other row: a warp's 32 loads of one
channel touch 256 bytes for 128 it uses, and the table kernel stages whole rows for the same
reason. Packed first (x[:, :, ::2, ::2], a quarter of the input), the layer is an ordinary
stride-1 layer on OH x OW pixels. Before building a packing part into irprune, this measures
what it could gain, in one process, against the standing's kernels (docs/perf/results.json):

- ``base``: the recorded configuration as the bench runs it (strided);
- ``pre``: the same configuration compiled for the packed geometry (C x OH x OW, stride 1),
  reading inputs packed before timing: what the main kernel would cost, without the packing;
- ``torch``: the packing done in the call by a PyTorch strided copy into one buffer, then the
  main kernel: a packing kernel that is not chained (the main kernel still launches early
  behind it, as irprune's kernels do);
- ``pdl``: the packing as a kernel chained the way irprune's are (hand-written PTX, one value
  a thread, ``griddepcontrol.wait`` first, launched with programmatic stream serialization
  after the call before it), then the main kernel: what a packing part in irprune would be.
Every variant's output is checked against float64 first; base and variants are timed ROUNDS
times each, interleaved, with the bench's input rotation (gpu_timing.rotation_ab).

    python3 pack_ab.py [LAYER ...]     # on the GPU; rows in $OUT/pack_ab.json
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gpu_timing import layer_of, rotation_ab, save_row  # noqa: E402

CACHE = "/tmp/packcache"
RESULTS = os.path.join(HERE, "..", "..", "docs", "perf", "results.json")
ROUNDS = 3


PACK_THREADS = 256


def pack_ptx(C: int, H: int, W: int, OH: int, OW: int, stride: int) -> str:
    """A chained packing kernel: ``xp[i] = x[c, oh * stride, ow * stride]`` for the i-th value
    (c, oh, ow) of ``n`` (its third parameter: batch x C x OH x OW; the image index folds into
    c), after ``griddepcontrol.wait``."""
    return f""".version 8.0
.target sm_90
.address_size 64
.visible .entry irprune_pack(.param .u64 px, .param .u64 pxp, .param .u64 pn)
{{
  .reg .pred p;
  .reg .b32 r<12>;
  .reg .b64 rd<8>;
  .reg .f32 f1;
  griddepcontrol.wait;
  mov.u32 r1, %ctaid.x;
  mov.u32 r2, %tid.x;
  mad.lo.u32 r3, r1, {PACK_THREADS}, r2;
  ld.param.u64 rd1, [pn];
  cvt.u64.u32 rd2, r3;
  setp.ge.u64 p, rd2, rd1;
  @p ret;
  rem.u32 r4, r3, {OW};
  div.u32 r5, r3, {OW};
  rem.u32 r6, r5, {OH};
  div.u32 r7, r5, {OH};
  mul.lo.u32 r8, r7, {H * W};
  mad.lo.u32 r8, r6, {stride * W}, r8;
  mad.lo.u32 r8, r4, {stride}, r8;
  ld.param.u64 rd3, [px];
  mul.wide.u32 rd4, r8, 4;
  add.u64 rd4, rd3, rd4;
  ld.global.nc.f32 f1, [rd4];
  ld.param.u64 rd5, [pxp];
  mul.wide.u32 rd6, r3, 4;
  add.u64 rd6, rd5, rd6;
  st.global.f32 [rd6], f1;
  ret;
}}
"""


class PackedCall:
    """``call(x, out=y)`` of a stride-1 kernel ``k`` on ``x`` packed at ``stride``: packed once
    per input tensor before any timing (``mode="pre"``), by a strided copy into one buffer in
    every call (``mode="torch"``), or by a chained packing kernel into one buffer
    (``mode="pdl"``)."""

    def __init__(self, k, stride: int, mode: str):
        self.k, self.stride, self.mode = k, stride, mode
        self.registers = k.registers
        self.memo, self.buf = {}, None
        self.pack = None
        if mode == "pdl":
            from cuda.core import LaunchConfig
            from numba import cuda
            g = k.geometry
            ptx = pack_ptx(g.C, g.H * stride, g.W * stride, g.H, g.W, stride)
            self.module = cuda.current_context().create_module_ptx(ptx)
            fn = self.module.get_function("irprune_pack")
            n = g.C * g.H * g.W
            config = LaunchConfig(grid=(-(-n // PACK_THREADS), 1, 1), block=(PACK_THREADS, 1, 1),
                                  programmatic_stream_serialization=True)
            self.pack = (fn.kernel, config, n)

    def _packed(self, x):
        return x[:, :, ::self.stride, ::self.stride]

    def __call__(self, x, out):
        if self.mode == "pre":
            xp = self.memo.get(x.data_ptr())
            if xp is None:
                xp = self.memo[x.data_ptr()] = self._packed(x).contiguous()
        else:
            if self.buf is None:
                self.buf = self._packed(x).contiguous()
            xp = self.buf
            if self.pack is None:
                xp.copy_(self._packed(x))
            else:
                import torch
                from cuda.core import launch
                from irprune.launch import _stream
                fn, config, n = self.pack
                launch(_stream(int(torch.cuda.current_stream().cuda_stream)), config, fn,
                       x.data_ptr(), xp.data_ptr(), n)
        self.k(xp, out=out)


def records(layers):
    import json
    out = []
    for r in json.load(open(RESULTS))["records"]:
        if (r.get("impl") == "irprune" and r.get("status") == "ok" and r["batch"] == 1
                and "s2" in r["shape"].split(",")[2] and "1x1" in r["shape"]
                and (not layers or r["layer"] in layers)):
            out.append(r)
    return out


def compile_record(r, packed: bool):
    """The record's kernel for its own geometry, or (``packed``) for the packed stride-1 one."""
    os.environ.setdefault("IRPRUNE_JOBS", "1")
    from irprune.bench.compile_jobs import bench_weights
    from irprune.cache import DiskCache
    from irprune.table_kernel import compile_table_conv2d
    from irprune.table_layout import TableConfig
    from irprune.templates.conv2d import conv2d_nchw
    l = layer_of(r["layer"])
    w = bench_weights(l, 0.9, 0)
    g = l.geometry(1)
    shape, stride = ((1, l.C, g.OH, g.OW), 1) if packed else ((1, l.C, l.H, l.W), l.stride)
    if r["layout"] == "table":
        t = r["table"]
        k = compile_table_conv2d(w, shape, TableConfig(t["tile_k"], t["slices"], t["tile_p"]),
                                 stride=stride, cache=DiskCache(CACHE), block=r["block"],
                                 assemble=True)
    else:
        k = conv2d_nchw.compile(w, shape, stride=stride, padding=0, group_size=r["group_size"],
                                slices=r["slices"], cache=DiskCache(CACHE),
                                max_registers=r["max_registers"], assemble=True,
                                channel_order=r.get("channel_order") or "natural")
        k.block, k.groups_per_block = r["block"], r["groups_per_block"]
    return k, w, l


def main():
    rows = []
    for r in records(sys.argv[1:]):
        row = {"layer": r["layer"], "layout": r["layout"], "group_size": r["group_size"],
               "table": r["table"], "block": r["block"], "m": r["groups_per_block"],
               "standing_us": r["median_us"]}
        try:
            base, w, l = compile_record(r, packed=False)
            main_k, _, _ = compile_record(r, packed=True)
            kernels = {"base": base, "pre": PackedCall(main_k, l.stride, "pre"),
                       "torch": PackedCall(main_k, l.stride, "torch"),
                       "pdl": PackedCall(main_k, l.stride, "pdl")}
            rotation_ab(row, kernels, w, l, 1, ROUNDS, "base")
        except Exception as exc:
            row["error"] = str(exc)[:300]
        save_row(rows, row, "pack_ab.json")


if __name__ == "__main__":
    main()
