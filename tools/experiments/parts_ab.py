"""Experiment: a large layer's parts (IRPRUNE_MAX_PART_NNZ) one after the other, side by side on
streams, or one part, A/B.

A layer of more than 32,768 nonzeros compiles as several parts, each its own
module, launched one after the other on the caller's stream (irprune.kernel.
KernelPart). At batch 1 each part's grid is small, so the GPU runs one small
grid after another. Here each configuration a bench run chose for a
multi-part layer is timed three ways in one process: as irprune launches it
("serial"), with its parts on as many side streams forked from and joined
back to the caller's ("streams"; inside the bench's CUDA graph they are
independent nodes), and compiled again as one module ("one", the part limit
raised to 10**7). Each is checked against float64 and timed twice,
interleaved, inputs rotating over 16 sets.

    python3 parts_ab.py RESULTS.json [LAYER ...]   # on the GPU; $OUT/parts_ab.json
    python3 parts_ab.py guess                       # the large 1x1 layers at one configuration

``PARTS_AB_LIMIT=N``: the "serial" kernel is cut into parts of at most N nonzeros (default:
irprune's own limit), e.g. a seed layer in two parts to see what a launch more costs.

``guess``: before any bench run had timed them, the seven 1x1 layers of more than
40,000 nonzeros at group size 2, 4 slices, register budget 128, block 64.
"""
import json, os, sys, time
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gpu_timing import (Config, build_all, compile_layer, config_row, recorded_configs,
                        time_into)

CACHE = "/tmp/partscache"
LARGE_1X1 = [("mobilenet1x1", "pw_512_1024_7"), ("mobilenet1x1", "pw_1024_1024_7"),
             ("resnet50", "l3_down_512_1024_s2"), ("resnet50", "l4_1x1_1024_512"),
             ("resnet50", "l4_1x1_512_2048"), ("resnet50", "l4_down_1024_2048_s2"),
             ("resnet50", "l4_1x1_2048_512")]
ONE_PART = 10 ** 7


def kernel(job):
    """(kernel, w, layer) of ``job`` = (config, part limit or None)."""
    cfg, limit = job
    if limit:
        os.environ["IRPRUNE_MAX_PART_NNZ"] = str(limit)
    else:
        os.environ.pop("IRPRUNE_MAX_PART_NNZ", None)
    # One module runs its region passes over more cores (region shares).
    os.environ["IRPRUNE_JOBS"] = "4" if limit else "1"
    from irprune.templates.conv2d import conv2d_nchw
    t0 = time.perf_counter()
    out = compile_layer(conv2d_nchw, cfg.layer, cfg.gs, cfg.slices, CACHE, cfg.budget,
                        assemble=True)
    out[0].stats["experiment_s"] = round(time.perf_counter() - t0, 1)
    return out


class OnStreams:
    """Calls ``k`` with its parts on side streams forked from, and joined back to, the current one."""

    def __init__(self, k):
        import torch
        self.k = k
        self.streams = [torch.cuda.Stream() for _ in k.parts]

    @property
    def block(self):
        return self.k.block

    @block.setter
    def block(self, b):
        self.k.block = b

    @property
    def groups_per_block(self):
        return self.k.groups_per_block

    @groups_per_block.setter
    def groups_per_block(self, m):
        self.k.groups_per_block = m

    def __call__(self, x, out):
        import torch
        from cuda.core import launch
        from irprune.launch import _launches, _stream
        main = torch.cuda.current_stream()
        fork = torch.cuda.Event()
        fork.record(main)
        for s, (fn, config) in zip(self.streams, _launches(self.k, x.shape[0], x.device.index)):
            s.wait_event(fork)
            launch(_stream(s.cuda_stream), config, fn, x.data_ptr(), out.data_ptr(), x.shape[0])
            done = torch.cuda.Event()
            done.record(s)
            main.wait_event(done)
        return out


def main():
    out = os.environ.get("OUT", ".")
    results, layers = sys.argv[1], sys.argv[2:]
    if results == "guess":
        cfgs = [Config(s, l, 1, 2, 4, None, 128, 64, 1) for s, l in LARGE_1X1
                if not layers or l in layers]
    else:
        cfgs = recorded_configs(results, tiles=False, layers=layers)
    print(len(cfgs), "configurations", flush=True)
    serial_limit = int(os.environ.get("PARTS_AB_LIMIT", 0)) or None
    build_all(kernel, [(c, serial_limit) for c in cfgs] + [(c, ONE_PART) for c in cfgs],
              workers=16)
    rows = []
    for c in cfgs:
        row = config_row(c)
        try:
            serial, w, l = kernel((c, serial_limit))
            one, _, _ = kernel((c, ONE_PART))
            row.update(parts=len(serial.parts), one_regs=one.registers,
                       serial_regs=serial.registers, one_compile_s=one.stats.get("experiment_s"))
            variants = {"serial": serial, "streams": OnStreams(serial), "one": one}
            for rnd in ("", "2"):
                for name, k in variants.items():
                    time_into(row, name + rnd, k, w, l, c)
            best = {n: min(row[n], row[n + "2"]) for n in variants}
            row["streams_speedup"] = round(best["serial"] / best["streams"], 3)
            row["one_speedup"] = round(best["serial"] / best["one"], 3)
        except Exception as exc:
            row["error"] = str(exc)[:300]
        rows.append(row)
        print(row, flush=True)
    json.dump(rows, open(os.path.join(out, "parts_ab.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
