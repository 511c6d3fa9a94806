"""Experiment: the table kernel's zeroing overlapped with the kernel by programmatic dependent
launch (PDL), instead of a memset before it.

table_anatomy.py found that zeroing the output (a ``cuMemsetD32Async`` node) takes 1.12-1.18
us of a table kernel's call with slices, and a zeroing-free reduction was slower still
(docs/perf-log.md). Here the zeroing is a small kernel of its own that first lets its
dependents start (``griddepcontrol.launch_dependents``), and the table kernel, launched with
programmatic stream serialization, copies its pairs and input and runs its loop while the
zeroing runs, waiting for it (``griddepcontrol.wait``, written into its PTX before each atomic)
only before its first add. For each of the standing's table layers with slices, timed in one
process as graph replays over 16 inputs, each checked against float64 first (output poisoned
with NaN):

- ``call``: irprune's launch path (memset node, then the kernel);
- ``zero_kernel``: the zeroing kernel, then the kernel with the wait, no PDL;
- ``pdl``: the same with PDL;
- ``chain``: the zeroing kernel also waits first and is launched with PDL, so that a call's
  zeroing launches early after the call before it, as every other irprune call does since the
  grid-dependency-wait pass (the run above predates it);
- ``alone_us``: the table kernel without any zeroing (its sums are wrong; timed only).

The table kernel irprune compiles now waits first (grid-dependency-wait); that wait is taken
out here, so that only the waits before the atomics remain.

    python3 table_pdl.py [LAYER ...]    # GPU; rows in $OUT/table-pdl.json

It takes the table kernel as irprune compiled it before a1046ce (one part, the memset launch):
run it from a checkout of 605f197. a1046ce built the ``chain`` variant into irprune
(irprune.zero_part).
"""
import copy, dataclasses, os, re, sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from table_anatomy import _kernel, chosen  # noqa: E402

#: Zero ``n`` floats at ``p``, one per thread, after letting the dependent grid launch.
ZERO_PTX = """
.version 7.8
.target sm_90
.address_size 64
.visible .entry irp_zero(.param .u64 p, .param .u32 n)
{
  .reg .pred %p1;
  .reg .b32 %r<6>;
  .reg .b64 %rd<5>;
  WAIT
  griddepcontrol.launch_dependents;
  ld.param.u64 %rd1, [p];
  ld.param.u32 %r1, [n];
  mov.u32 %r2, %ctaid.x;
  mov.u32 %r3, %ntid.x;
  mov.u32 %r4, %tid.x;
  mad.lo.u32 %r5, %r2, %r3, %r4;
  setp.ge.u32 %p1, %r5, %r1;
  @%p1 bra DONE;
  cvta.to.global.u64 %rd2, %rd1;
  mul.wide.u32 %rd3, %r5, 4;
  add.s64 %rd4, %rd2, %rd3;
  st.global.f32 [%rd4], 0f00000000;
DONE:
  ret;
}
"""


def with_wait(ptx: str) -> str:
    """``ptx`` with a ``griddepcontrol.wait`` before every float atomic (the first one waits for
    the zeroing grid; later ones return at once)."""
    out, n = re.subn(r"^(\s*)(atom\.global\.add\.f32)", r"\1griddepcontrol.wait;\n\1\2", ptx,
                     flags=re.M)
    assert n > 0, "no atomics in the PTX"
    return out


def main():
    import numpy as np
    import torch
    from cuda.core import LaunchConfig, launch
    from gpu_timing import check_then_time, save_row
    from numba import cuda
    from irprune.launch import _functions, _stream

    picks = {k: v for k, v in chosen().items() if v[0].slices > 1}
    zfns = {}
    for wait in (False, True):
        zmod = cuda.current_context().create_module_ptx(
            ZERO_PTX.replace("WAIT", "griddepcontrol.wait;" if wait else ""))
        zfns[wait] = (zmod, zmod.get_function("irp_zero").kernel)
    rows = []
    for name in sys.argv[1:] or list(picks):
        config, block = picks[name]
        k, l, xs, ref, y = _kernel(name, config, block)
        row = {"layer": name, "config": config.describe(), "block": block}
        row["call_err"], row["call_us"] = check_then_time(lambda i: k(xs[i], out=y), y, ref)
        # the same kernel with the waits: a copy whose part is its PTX rewritten (loaded from
        # the PTX: no cubin), with nothing loaded yet
        k2 = copy.copy(k)
        entry_free = k.parts[0].ptx.replace("griddepcontrol.wait;", "", 1)
        k2.parts = [dataclasses.replace(k.parts[0], ptx=with_wait(entry_free), _ptxas=None)]
        k2._loaded, k2._launch_memo = {}, {}
        fn = _functions(k2)[0].kernel
        n = y.numel()
        grid = k2.part_launches(1)[0][1]
        for what, pdl, zpdl in (("zero_kernel", False, False), ("pdl", True, False),
                                ("chain", True, True)):
            cfg = LaunchConfig(grid=grid, block=(block, 1, 1), shmem_size=k2.shared_bytes,
                               programmatic_stream_serialization=pdl)
            zcfg = LaunchConfig(grid=(-(-n // 256), 1, 1), block=(256, 1, 1),
                                programmatic_stream_serialization=zpdl)
            zfn = zfns[zpdl][1]

            def call(i, cfg=cfg, zcfg=zcfg, zfn=zfn):
                s = _stream(int(torch.cuda.current_stream().cuda_stream))
                launch(s, zcfg, zfn, y.data_ptr(), np.uint32(n))
                launch(s, cfg, fn, xs[i].data_ptr(), y.data_ptr(), 1)
            try:
                row[f"{what}_err"], row[f"{what}_us"] = check_then_time(call, y, ref)
            except Exception as exc:
                row[f"{what}_error"] = str(exc)[:200]
        from irprune.bench.timing import measure
        acfg = LaunchConfig(grid=grid, block=(block, 1, 1), shmem_size=k2.shared_bytes,
                            programmatic_stream_serialization=True)
        row["alone_us"] = round(measure(lambda i: launch(
            _stream(int(torch.cuda.current_stream().cuda_stream)), acfg, fn, xs[i].data_ptr(),
            y.data_ptr(), 1), rotation=16, target_ms=10, repeats=5).median_us, 3)
        save_row(rows, row, "table-pdl.json")


if __name__ == "__main__":
    main()
