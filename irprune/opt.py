"""``irprune opt``: run a pass pipeline over an IR file, like LLVM's opt or xdsl-opt.

So that passes can be tried and tested on small hand-written IR. The weight
the passes work on is named on the command line (its data-pointer parameter,
shape and values) because a plain .ll file does not say which argument holds
weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import validate
from .errors import IrpruneError, ValidationError
from .ir.textir import parse_module
from .ir.verify import verify_text
from .llvm_opt import DEFAULT_CPU
from .passes import PASSES, PassContext, parse_pipeline, run_pipeline


@dataclass
class OptResult:
    text: str
    ctx: PassContext


def run_opt(text: str, pipeline: str, weight_param: str = "%w.4", weight_shape=None, weights=None,
            print_between=None, tables: dict | None = None, cpu: str = DEFAULT_CPU,
            output_channels=None, output_param: str = "%y.4",
            output_stride: int | None = None) -> OptResult:
    """Parse ``text``, run ``pipeline`` over it and return the IR and the pass context.

    ``tables``: data-pointer parameter -> 4-byte values, for embed-tables. ``cpu``: the GPU
    architecture the IR is compiled for (checked: a one-line error for a bad name).
    ``output_channels``, ``output_param``, ``output_stride``: for place-output-channels, the
    layer's channel of each computed one, the output parameter and its bytes per channel (the
    module is one region of all the channels)."""
    passes = parse_pipeline(pipeline)
    verify_text(text, "input")
    shape = tuple(weight_shape) if weight_shape is not None else ()
    w = None
    if weights is not None:
        w = np.asarray(weights, dtype=np.float32)
        if shape and w.size != int(np.prod(shape)):
            raise ValidationError(f"{w.size} weight values given for shape {shape}", stage="opt")
        w = w.reshape(shape or w.shape)
        shape = shape or w.shape
    if any(p.name in ("strip-zero-weights", "fold-weight-constants") for p in passes) and w is None:
        raise ValidationError("this pipeline needs weight values: pass --weights FILE.npy or "
                              "--weight-values v1,v2,...", stage="opt")
    if not shape and any(p.name == "trace-weight-uses" or p.requires for p in passes):
        raise ValidationError("the weight's shape is needed: pass --weight-shape K,C,R,S", stage="opt")
    if len(shape) not in (0, 4):
        raise ValidationError(f"--weight-shape must be 4 numbers K,C,R,S; got {shape}", stage="opt")
    order = None
    strides = {}
    if output_channels is not None:
        order = np.asarray(output_channels, dtype=np.int64)
        if sorted(order.tolist()) != list(range(order.size)):
            raise ValidationError(f"--output-channels must be a permutation of 0..{order.size - 1}, "
                                  f"got {order.tolist()}", stage="opt")
        if not output_stride or output_stride <= 0:
            raise ValidationError("place-output-channels needs the output's bytes per channel: "
                                  "pass --output-stride BYTES", stage="opt")
        strides[output_param] = int(output_stride)
    ctx = PassContext(weight_param=weight_param, weight_shape=shape, weights=w,
                      print_between=print_between, tables=dict(tables or {}),
                      cpu=validate.check_arch(cpu), output_channels=order,
                      output_param=output_param if order is not None else None,
                      channel_strides=strides)
    res = run_pipeline(passes, parse_module(text), ctx, registry=PASSES)
    # Printed by LLVM, as opt prints: canonical form, the input's comments gone.
    return OptResult(text=str(verify_text(res.module.render(), "output")), ctx=ctx)


def analyses_json(ctx: PassContext) -> str:
    """The analyses' results and per-pass statistics as JSON."""
    out = {"stats": ctx.stats,
           "analyses": {k: v.to_dict() for k, v in ctx.analyses.items() if hasattr(v, "to_dict")}}
    return json.dumps(out, indent=1)


def read_ir(path: str) -> str:
    p = Path(path)
    if not p.is_file():
        raise IrpruneError(f"IR file {path} does not exist", stage="opt")
    return p.read_text()


__all__ = ["run_opt", "OptResult", "analyses_json", "read_ir", "PASSES"]
