"""Experiment: padding without a select a load, and regions as device functions, A/B.

Two changes to the immediate-weight kernels, timed against the code before them
(templates/conv2d.py at bdbe109, the default pipeline without outline-regions):

- ``tapA``: the template before, with one partial sum per tap and output channel
  (input channels outermost as before); a padded tap's sum is dropped once.
- ``tapB``: the template now (taps outermost; a padded tap's products dropped by
  keeping the sums from before the tap): the same FMAs, one select a tap instead
  of one a load.
- ``tapB_out``: tapB through the default pipeline, whose outline-regions pass moves
  a large kernel's regions into device functions (ptxas -c and nvlink where the
  kernel has a register budget).

Every immediate-weight configuration of the standing (docs/perf/results.json) is
compiled with each variant that changes its PTX (a row tile only gets ``base`` and
``base_out``: its template is not changed), built in 16 processes first; per
configuration each distinct PTX is checked against float64 and timed, then all of
them timed once more in the other order.

    python3 tapsum_ab.py generate          # CPU: the variant templates into generated/
    python3 tapsum_ab.py cpu [LAYER ...]   # CPU: PTX instructions, registers, ptxas time
    python3 tapsum_ab.py [LAYER ...]       # on the GPU; results in $OUT/tapsum_ab.json
"""
import hashlib, json, os, subprocess, sys, time
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "generated"))
from gpu_timing import build_all, config_row, layer_of, print_geomeans, recorded_configs, save_row, time_into

BASE_COMMIT = "bdbe109"
CACHE = "/tmp/tapsumcache"
RESULTS = os.path.join(ROOT, "docs", "perf", "results.json")
OLD_PIPELINE = ("trace-weight-uses,strip-zero-weights,fold-weight-constants,contract-fma,"
                "decompose-rem,llvm-cleanup")

# (old, new) edits of the template at BASE_COMMIT that make tapA; each must occur once.
TAP_A = [
    ("MAX_GROUP = 64\n", "MAX_GROUP = 64\nMAX_TAP_SUMS = 36\n"),
    ("    acc = cuda.local.array(MAX_GROUP, float32)\n",
     "    acc = cuda.local.array(MAX_GROUP, float32)\n"
     "    tap = cuda.local.array(MAX_TAP_SUMS, float32)\n"
     "    tap_sums = padding > 0 and R * S * group_size <= MAX_TAP_SUMS\n"
     "    if tap_sums:\n"
     "        for i in range(R * S * group_size):\n"
     "            tap[i] = float32(-0.0)\n"),
    ("                        if padding > 0 and (ih < 0 or ih >= H or iw < 0 or iw >= W):\n",
     "                        if padding > 0 and not tap_sums and (ih < 0 or ih >= H or iw < 0 or iw >= W):\n"),
    ("                            if k0 + kk < K:\n"
     "                                acc[kk] += v * w[k0 + kk, c, r, s]\n",
     "                            if k0 + kk < K:\n"
     "                                if tap_sums:\n"
     "                                    tap[(r * S + s) * group_size + kk] += v * w[k0 + kk, c, r, s]\n"
     "                                else:\n"
     "                                    acc[kk] += v * w[k0 + kk, c, r, s]\n"),
    ("    if slices > 1:\n        # Slices 1..",
     "    if tap_sums:\n"
     "        for r in range(R):\n"
     "            ih = oh * stride - padding + r\n"
     "            for s in range(S):\n"
     "                iw = ow * stride - padding + s\n"
     "                outside = ih < 0 or ih >= H or iw < 0 or iw >= W\n"
     "                for kk in range(group_size):\n"
     "                    t = tap[(r * S + s) * group_size + kk]\n"
     "                    acc[kk] += float32(-0.0) if outside else t\n"
     "    if slices > 1:\n        # Slices 1.."),
]


def generate():
    base = subprocess.run(["git", "show", f"{BASE_COMMIT}:templates/conv2d.py"], cwd=ROOT,
                          check=True, capture_output=True, text=True).stdout
    a = base
    for old, new in TAP_A:
        if a.count(old) != 1:
            raise SystemExit(f"edit not applicable: {old[:60]!r}")
        a = a.replace(old, new)
    os.makedirs(os.path.join(HERE, "generated"), exist_ok=True)
    for name, text in (("conv2d_base", base), ("conv2d_tapA", a)):
        open(os.path.join(HERE, "generated", name + ".py"), "w").write(text)


def template(name):
    if name == "base":
        from conv2d_base import conv2d_nchw
    elif name == "tapA":
        from conv2d_tapA import conv2d_nchw
    elif name == "tapB":
        from irprune.templates.conv2d import conv2d_nchw
    else:
        raise KeyError(name)
    return conv2d_nchw


#: variant -> (template, pipeline); None: the default pipeline.
VARIANTS = {"base": ("base", OLD_PIPELINE), "tapA": ("tapA", OLD_PIPELINE),
            "tapB": ("tapB", OLD_PIPELINE), "tapB_out": ("tapB", None),
            "rows": ("rows", OLD_PIPELINE), "rows_out": ("rows", None)}


#: The variants this run times (TAPSUM_VARIANTS=base,tapB,...; default all).
WANTED = os.environ.get("TAPSUM_VARIANTS", "base,tapA,tapB,tapB_out").split(",")


def variants_of(cfg):
    if cfg.tile:
        return ("rows", "rows_out")
    if layer_of(cfg.layer).padding == 0 and layer_of(cfg.layer).R == 1:
        return ("base", "tapB_out")  # no tap to drop: only the functions can change the code
    return tuple(v for v in ("base", "tapA", "tapB", "tapB_out") if v in WANTED)


def kernel(variant, cfg, assemble=True):
    os.environ.setdefault("IRPRUNE_JOBS", "1")
    from irprune.bench.compile_jobs import bench_weights
    from irprune.cache import DiskCache
    from irprune.kernel import compile_conv2d
    from irprune.passes import DEFAULT_PIPELINE
    from irprune.tune import template_for
    tname, pipeline = VARIANTS[variant]
    l = layer_of(cfg.layer)
    w = bench_weights(l, 0.9, 0)
    if tname == "rows":
        from irprune.templates.conv2d import conv2d_nchw
        tmpl = template_for(conv2d_nchw, cfg.tile)
    else:
        tmpl = template(tname)
    k = compile_conv2d(tmpl, w, (1, l.C, l.H, l.W), stride=l.stride, padding=l.padding,
                       group_size=cfg.gs, slices=cfg.slices, tile=cfg.tile,
                       pipeline=pipeline or DEFAULT_PIPELINE, cache=DiskCache(CACHE),
                       max_registers=cfg.budget, assemble=assemble)
    return k, w, l


def prebuild(job):
    kernel(*job)


def configs(layers):
    """The standing's immediate-weight configurations (table kernels have no regions or taps);
    ``seed`` or ``1x1`` select a suite, other words layers."""
    table = {(r["layer"], r["batch"]) for r in json.load(open(RESULTS))["records"]
             if r.get("impl") == "irprune" and r.get("layout") == "table"}
    suites = {"seed", "1x1"} & set(layers)
    names = [l for l in layers if l not in suites]
    return [c for c in recorded_configs(RESULTS, layers=names)
            if (c.layer, c.batch) not in table
            and (not suites or ("seed" if c.suite == "seed" else "1x1") in suites)]


def cpu(layers):
    """PTX instructions, registers and ptxas seconds of every variant (no GPU)."""
    import re
    for c in configs(layers):
        row = config_row(c)
        for v in variants_of(c):
            t = time.perf_counter()
            k, _, _ = kernel(v, c, assemble=False)
            t1 = time.perf_counter()
            k.ptxas()
            ptx = "".join(p.ptx for p in k.parts)
            row[v] = {"ptx": len(re.findall(r"^\t[a-z@]", ptx, re.M)),
                      "selp": len(re.findall(r"^\tselp", ptx, re.M)),
                      "regs": k.registers, "ptxas_s": round(time.perf_counter() - t1, 2),
                      "functions": len(re.findall(r"^\.func\s+[\w$]+\($", ptx, re.M))}
        print(json.dumps(row), flush=True)


def main():
    args = sys.argv[1:]
    if args[:1] == ["generate"]:
        return generate()
    if args[:1] == ["cpu"]:
        return cpu(args[1:])
    cfgs = configs(args)
    jobs = [(v, c) for c in cfgs for v in variants_of(c)]
    print(len(jobs), "kernels", flush=True)
    build_all(prebuild, jobs)
    rows = []
    for c in cfgs:
        row = config_row(c)
        try:
            seen, order = {}, []
            for v in variants_of(c):
                k, w, l = kernel(v, c)
                digest = hashlib.sha1("".join(p.ptx for p in k.parts).encode()).hexdigest()
                if digest in seen:  # the same PTX as an earlier variant: not timed again
                    row[v + "_same_as"] = seen[digest]
                    continue
                seen[digest] = v
                order.append(v)
                row[v + "_regs"] = k.registers
                row[v + "_linked"] = "nvlink info" in (k.parts[0]._ptxas.log or "")
            for rnd, vs in enumerate((order, order[::-1])):
                for v in vs:
                    k, w, l = kernel(v, c)
                    time_into(row, f"{v}#{rnd}", k, w, l, c)
            for v in order:
                row[v] = min(row[f"{v}#0"], row[f"{v}#1"])
            first = order[0]
            for v in variants_of(c)[1:]:
                src = row.get(v + "_same_as", v)
                row["speedup_" + v] = round(row[first] / row[src], 3)
        except Exception as exc:
            row["error"] = str(exc)[:300]
        save_row(rows, row, "tapsum_ab.json")
    for v in ("tapA", "tapB", "tapB_out", "rows_out"):
        print(v)
        print_geomeans(rows, "speedup_" + v)


if __name__ == "__main__":
    main()
