"""Experiment: what each part of the table kernel costs, and two cheaper inner loops.

table_anatomy.py timed the table kernel's call and its zeroing; Nsight Compute found its SMs
issuing on about half their active cycles, at some 16 warp instructions a nonzero pair where
the loop needs about 8. Here templates/conv2d_table.py is compiled in variants made by editing
its source (each an assertion that the edit matched), for each of the standing's table layers
with the configuration and threads it chose, and each timed as the kernel alone (no zeroing)
in one process, graph replays over 16 inputs:

- ``base``: the template as it is;
- ``const_threads``: the block's thread count a constant (the launch's), so that the strided
  copy loops need no division for their trip counts;
- ``noclamp``: the inner loop without the clamp of a lane's pixel to the tile's last one
  (lanes past it read up to 31 floats past their row, which the shared buffer is padded for;
  their sums are never stored): one address add a pair instead of one a pixel step;
- ``noclamp_const``: both;
- ``empty``: the grid alone (every statement dead), with the same threads and shared memory;
- ``no_input``: ``base`` without the input copy (the loop reads whatever is in shared memory);
- ``no_loop``: ``base`` without the pairs' loop (the sums are zero; copies and adds stay);
- ``no_store``: ``base`` without the atomics or stores (kept alive by a store never taken).

The first four are checked against float64 (the call with its zeroing, output poisoned with
NaN) and their call timed too; the last four are timing only.

Its edits are of the template as it was before ea16398, which built ``const_threads`` and
``noclamp`` into it: run it from a checkout of 3d17df7 (at later commits those edits fail
their assertions).

    python3 table_parts.py [LAYER ...]   # GPU; rows in $OUT/table-parts.json
    python3 table_parts.py ptx VARIANT LAYER   # CPU: print the variant's PTX
"""
import inspect, os, re, sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from table_anatomy import _no_zeroing, chosen, compile_with_template  # noqa: E402

PAD_BYTES = 128  # noclamp: up to 31 floats read past the tile's last row

_ACC = '''

@cuda.jit(device=True, inline=True)
def _accumulate_pad(acc, smq, smf, k, base, steps):
    """acc[j] += weight * input for pair ``k`` at lane pixels ``base + 32 j`` (no clamp)."""
    pair = uint64(smq[k])
    off = pair & uint64(0xFFFFFFFF)
    w = _bits_to_float(uint32(pair >> uint64(32)))
    for j in range(steps):
        acc[j] += w * smf[base + off + uint64(32) * j]


@cuda.jit
def conv2d_table('''


def _sub(src, old, new, count=1):
    n = src.count(old)
    assert n == count, f"edit expects {count} of {old!r}, found {n}"
    return src.replace(old, new)


def variant_source(name: str, threads: int) -> str:
    """templates/conv2d_table.py's source edited into variant ``name``."""
    import irprune.templates.conv2d_table as T
    src = inspect.getsource(T)
    const = name in ("const_threads", "noclamp_const")
    pad = name in ("noclamp", "noclamp_const")
    if const:
        src = _sub(src, "nt = uint64(cuda.blockDim.x)", f"nt = uint64({threads})")
    if pad:
        src = _sub(src, "\n\n@cuda.jit\ndef conv2d_table(", _ACC)
        src, n = re.subn(r"(?<!def )_accumulate\(acc, smq, smf, (.*?), xs, lane, steps, last\)",
                         r"_accumulate_pad(acc, smq, smf, \1, xs + lane, steps)", src)
        assert n == 3, n
    if name == "empty":
        src = _sub(src, "    one = uint64(1)\n", "    one = uint64(1)\n    if channels > 0:\n"
                   "        return\n")
    if name == "no_input":
        src = _sub(src, "range(tid, CS *", "range(tid, uint64(0) * CS *", 4)
    if name == "no_loop":
        src = _sub(src, "e = uint64(smi[rows + o + one])", "e = uint64(smi[rows + o])")
    if name == "no_store":
        src = _sub(src, "                    y[n, ko, p0 + q] = v\n",
                   "                    if v == float32(-1.5e38):\n"
                   "                        y[n, ko, p0 + q] = v\n")
        src = _sub(src, "cuda.atomic.add(y, (n, ko, p0 + q), v)",
                   "if v == float32(-1.5e38):\n                        y[n, ko, p0 + q] = v")
    return src


CHECKED = ("base", "const_threads", "noclamp", "noclamp_const")
VARIANTS = CHECKED + ("empty", "no_input", "no_loop", "no_store")


def compile_variant(name, layer, config, block):
    """The table kernel of ``layer`` (bench weights at 0.9) in ``config``, from variant
    ``name`` of the template (no disk cache: its key would not see the edit)."""
    k = compile_with_template(variant_source(name, block), name, layer, config, block)
    if name in ("noclamp", "noclamp_const"):
        class Padded(type(k)):
            @property
            def shared_bytes(self):
                return super().shared_bytes + PAD_BYTES
        k.__class__ = Padded
    return k


def main():
    from gpu_timing import check_then_time, layer_case, save_row
    from irprune.bench.timing import measure

    picks = chosen()
    if sys.argv[1:2] == ["ptx"]:
        config, block = picks[sys.argv[3]]
        print(compile_variant(sys.argv[2], sys.argv[3], config, block).asm["ptx"])
        return
    rows = []
    for name in sys.argv[1:] or list(picks):
        config, block = picks[name]
        l, w, xs, ref, y = layer_case(name)
        for v in VARIANTS:
            row = {"layer": name, "config": config.describe(), "block": block, "variant": v}
            try:
                k = compile_variant(v, name, config, block)
                k.ptxas()
                row["regs"] = k.registers
                if v in CHECKED:
                    row["err"], row["call_us"] = check_then_time(lambda i: k(xs[i], out=y),
                                                                 y, ref)
                bare = _no_zeroing(k)
                row["kernel_us"] = round(measure(lambda i: bare(xs[i], out=y), rotation=16,
                                                 target_ms=10, repeats=5).median_us, 3)
            except Exception as exc:
                row["error"] = str(exc)[:300]
            save_row(rows, row, "table-parts.json")


if __name__ == "__main__":
    main()
