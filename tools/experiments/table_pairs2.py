"""Experiment: the table kernel's pairs read two at a time (one 16-byte shared load).

The table kernel's inner loop reads per nonzero pair one broadcast 8-byte shared load (the
pair) and, per 32 pixels, one 4-byte load of the input (docs/perf-log.md, "The table kernel
taken apart"): on a 49-pixel layer three shared-memory wavefronts a pair. If the loop is bound
by the shared-memory pipe, reading two pairs with one 16-byte load cuts that to two and a half.
Variant ``pairs2`` of templates/conv2d_table.py (its source edited, each edit asserted) does
that: an odd pair first where a row starts on an odd pair, then pairs of pairs through one
128-bit load (``ld.shared.v2.b64``) and the template's ``_accumulate_pair``, then an odd last
one.

For each of the standing's table layers (docs/perf/results.json, their chosen configurations
and threads), ``base`` and ``pairs2`` are compiled without the disk cache, checked against
float64 (the call, output poisoned with NaN), then their calls timed as graph replays over 16
inputs, three times interleaved.

    python3 table_pairs2.py [LAYER ...]       # GPU; rows in $OUT/table-pairs2.json
    python3 table_pairs2.py ptx VARIANT LAYER # CPU: print the variant's PTX
    python3 table_pairs2.py ncu VARIANT LAYER # 32 kernel-only launches, for Nsight Compute
"""
import inspect, os, sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from table_anatomy import chosen, compile_with_template, ncu_launches  # noqa: E402

_LOAD2 = '''

@intrinsic
def _load_pairs2(typingctx, arr, idx):
    """(arr[idx], arr[idx + 1]) of an int64 array as uint64, one 16-byte load (idx even)."""
    def codegen(context, builder, signature, args):
        from numba.cuda import cgutils

        aty = signature.args[0]
        a = context.make_array(aty)(context, builder, args[0])
        p = cgutils.get_item_pointer(context, builder, aty, a, [args[1]], wraparound=False)
        v = builder.load(builder.bitcast(p, ir.IntType(128).as_pointer()), align=16)
        lo = builder.trunc(v, ir.IntType(64))
        hi = builder.trunc(builder.lshr(v, ir.Constant(ir.IntType(128), 64)), ir.IntType(64))
        return context.make_tuple(builder, signature.return_type, [lo, hi])
    return types.UniTuple(types.uint64, 2)(arr, idx), codegen


@cuda.jit
def conv2d_table('''

_LOOP_OLD = '''        for k in range(b, e - ((e - b) & one), uint64(2)):
            _accumulate(acc, smq, smf, k, base, steps)
            _accumulate(acc, smq, smf, k + one, base, steps)
        if (e - b) & one:
            _accumulate(acc, smq, smf, e - one, base, steps)
'''

_LOOP_NEW = '''        k0 = b
        if (b & one) and b < e:  # a row that starts on an odd pair: that one alone
            _accumulate(acc, smq, smf, b, base, steps)
            k0 = b + one
        for k in range(k0, e - ((e - k0) & one), uint64(2)):
            pa, pb = _load_pairs2(smq, k)
            _accumulate_pair(acc, pa, smf, base, steps)
            _accumulate_pair(acc, pb, smf, base, steps)
        if (e - k0) & one:
            _accumulate(acc, smq, smf, e - one, base, steps)
'''


def _sub(src, old, new, count=1):
    n = src.count(old)
    assert n == count, f"edit expects {count} of {old!r}, found {n}"
    return src.replace(old, new)


def variant_source(name: str) -> str:
    """templates/conv2d_table.py's source edited into variant ``name``."""
    import irprune.templates.conv2d_table as T
    src = inspect.getsource(T)
    if name == "pairs2":
        src = _sub(src, "\n\n@cuda.jit\ndef conv2d_table(", _LOAD2)
        src = _sub(src, _LOOP_OLD, _LOOP_NEW)
    return src


VARIANTS = ("base", "pairs2")


def compile_variant(name, layer, config, block):
    """The table kernel of ``layer`` (bench weights at 0.9) in ``config`` from variant ``name``
    of the template."""
    return compile_with_template(variant_source(name), name, layer, config, block)


def main():
    picks = chosen()
    if sys.argv[1:2] == ["ptx"]:
        config, block = picks[sys.argv[3]]
        print(compile_variant(sys.argv[2], sys.argv[3], config, block).asm["ptx"])
        return
    from gpu_timing import check_and_time_all, layer_case
    if sys.argv[1:2] == ["ncu"]:
        config, block = picks[sys.argv[3]]
        l, w, xs, ref, y = layer_case(sys.argv[3])
        ncu_launches(compile_variant(sys.argv[2], sys.argv[3], config, block), xs, y)
        return
    rows = []
    for name in sys.argv[1:] or list(picks):
        config, block = picks[name]
        l, w, xs, ref, y = layer_case(name)

        def build(row, v):
            k = compile_variant(v, name, config, block)
            k.ptxas()
            row["regs"] = k.registers
            return k
        check_and_time_all(rows, [({"layer": name, "config": config.describe(), "block": block,
                                    "variant": v}, lambda row, v=v: build(row, v))
                                  for v in VARIANTS], xs, y, ref, "table-pairs2.json", 3)

if __name__ == "__main__":
    main()
