"""Tuning a converted model: each layer's kernel chosen by timing on the GPU (``convert(..., tune=True)``).

:func:`irprune.torch_convert.convert` compiles every layer at irprune's
default configuration. With ``tune=True`` it then calls :func:`tune_layers`:
every candidate configuration of every layer (irprune.tune: group size,
slices, row tiles, register budgets, channel orders, and the table layout of a large 1x1 layer) is compiled side by side in worker
processes into the disk cache, and :func:`irprune.tune.autotune` then times
each layer's candidates on the GPU, in this process, from that cache. A
layer keeps its fastest kernel for the input shape it was tuned at; the
choice is cached like any autotune choice, so converting the same model
again on the same GPU times nothing.
"""

from __future__ import annotations

import numpy as np


#: Configurations one worker process compiles (a process start costs about a second).
CONFIGS_PER_CALL = 4


def compile_candidates(weight, shape, stride, padding, bias, groups, cpu, configs,
                       cache_dir) -> int:
    """Worker: compile each (group size, slices, tile, channel order, register budgets) of
    ``configs`` for one layer into the disk cache at ``cache_dir`` (for each, first the kernel
    without a budget, which the budgets reuse); return how many kernels that is."""
    from .templates.conv2d import conv2d_nchw
    from .tune import template_for

    n = 0
    for gs, sl, tile, order, caps in configs:
        tmpl = template_for(conv2d_nchw, tile)
        for cap in caps:
            tmpl.compile(weight, shape, stride=stride, padding=padding, bias=bias, groups=groups,
                         cpu=cpu, group_size=gs, slices=sl, tile=tile, max_registers=cap,
                         channel_order=order, cache=cache_dir, assemble=True)
            n += 1
    return n


def compile_table_candidates(weight, shape, stride, bias, cpu, configs, cache_dir) -> int:
    """Worker: compile each table-layout configuration of ``configs`` (irprune.table_layout)
    for one 1x1 layer into the disk cache at ``cache_dir``; return how many that is."""
    from .table_kernel import compile_table_conv2d
    from .table_layout import THREADS

    for c in configs:
        for b in THREADS:  # a table kernel's thread count is a constant of its code
            compile_table_conv2d(weight, shape, c, stride=stride, bias=bias, cpu=cpu,
                                 cache=cache_dir, assemble=True, block=b)
    return len(configs) * len(THREADS)


def tune_layers(layers, cache, progress: bool, jobs: int | None) -> None:
    """Tune each ``(report, module, SparseConv2d, shape)`` of ``layers`` on the current GPU.

    The layer's kernel for ``shape`` becomes the fastest candidate (its block
    set) and ``report.tuned`` says which it is.
    """
    import tempfile
    from contextlib import nullcontext

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from . import worker
    from .cache import DiskCache
    from .geometry import ConvGeometry
    from .kernel import _resolve_cache
    from .templates.conv2d import conv2d_nchw
    from .tune import (_configs, autotune, candidate_channel_orders, candidate_register_caps,
                       candidate_table_configs, choice_key, device_arch, device_id)
    from .validate import check_weight

    cpu = device_arch()
    store = _resolve_cache(cache)
    bar = Progress(TextColumn("irprune: tuning layers"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), transient=True, disable=not progress)
    with bar, (tempfile.TemporaryDirectory(prefix="irprune-tune-") if store is None
               else nullcontext(str(store.root))) as root:
        disk = DiskCache(root)
        dev = device_id()
        calls = []
        # The default kernels' geometries: they resolved "same"/"valid" padding.
        geoms = [layer.kernel_for(shape).geometry for _, _, layer, shape in layers]
        for (_, _, layer, shape), g in zip(layers, geoms):
            w = check_weight(layer.weight_values)
            # The key autotune looks its choice up under (the same geometry it computes).
            gk = ConvGeometry.from_weight(w.shape, shape, g.stride, g.padding, layer.groups)
            if disk.get("tune", choice_key(conv2d_nchw, w, gk, layer.bias_values, False, cpu,
                                           dev)) is not None:
                continue  # tuned before on this GPU: autotune below only loads the choice
            nnz = int(np.count_nonzero(w))
            configs = [(gs, sl, tile, order, candidate_register_caps(tile, nnz))
                       for gs, sl, tile in _configs(conv2d_nchw, g, None, None, None, nnz)
                       for order in candidate_channel_orders(gk, gs, tile)]
            for i in range(0, len(configs), CONFIGS_PER_CALL):
                calls.append(("irprune.torch_tune", "compile_candidates", dict(
                    weight=w, shape=shape, stride=g.stride, padding=g.padding,
                    bias=layer.bias_values, groups=layer.groups, cpu=cpu,
                    configs=configs[i:i + CONFIGS_PER_CALL], cache_dir=root)))
            tables = candidate_table_configs(w, gk, cpu, False, nnz)
            for i in range(0, len(tables), CONFIGS_PER_CALL):
                calls.append(("irprune.torch_tune", "compile_table_candidates", dict(
                    weight=w, shape=shape, stride=g.stride, bias=layer.bias_values, cpu=cpu,
                    configs=tables[i:i + CONFIGS_PER_CALL], cache_dir=root)))
        # The biggest layers' candidates first, so that the last worker is not the slowest.
        calls.sort(key=lambda c: -int(np.count_nonzero(c[2]["weight"])))
        task = bar.add_task("compile", total=len(calls) + len(layers))
        if calls:
            worker.run_in_workers(calls, jobs, env={"IRPRUNE_JOBS": "1", "IRPRUNE_CACHE": "1"},
                                  done=lambda i: bar.advance(task))
        for (rep, _, layer, shape), g in zip(layers, geoms):
            # Every candidate is in the cache now: this compiles nothing and times them all.
            k, _ = autotune(conv2d_nchw, layer.weight_values, shape, stride=g.stride,
                            padding=g.padding, bias=layer.bias_values, groups=layer.groups,
                            cpu=cpu, cache=disk)
            layer.kernels[tuple(shape[1:])] = k
            t = k.stats["tuned"]
            rep.tuned = {key: t[key] for key in ("layout", "group_size", "slices", "tile",
                                                  "max_registers", "block", "groups_per_block",
                                                  "table", "channel_order")}
            bar.advance(task)
