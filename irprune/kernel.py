"""A compiled sparse conv2d kernel: its stages as text, its statistics, and its launch."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import numpy as np

from .codegen import PtxasResult, emit_ptx, run_ptxas
from .geometry import ConvGeometry, check_weight
from .ir.textir import parse_module
from .llvm_opt import DEFAULT_CPU
from .passes import DEFAULT_PIPELINE, PASSES, PassContext, parse_pipeline, run_pipeline
from .passes.base import count_instructions
from .passes.trace_weight_uses import TraceMap

#: Threads per block along the output pixels.
BLOCK = 128


def _count_fma_ptx(ptx: str) -> int:
    return len(re.findall(r"^\s*fma\.rn\.f32", ptx, flags=re.M))


@dataclass
class SparseConvKernel:
    """A conv2d specialized on one weight tensor, with the weights as immediates.

    Attributes:
        geometry: the layer's shapes.
        asm: stage name -> text: ``"nvvm"`` (numba-cuda's IR), ``"llvm"`` (the
            IR template), one entry per transform pass, ``"llvm-pruned"`` (the
            final IR) and ``"ptx"``.
        stats: weights, nnz, sparsity, instruction counts before and after
            pruning, FMA count, per-pass numbers and compile times.
        trace: the trace-weight-uses map of the IR template.
        weight: the weights it was compiled with (float32, K x C x R x S).
    """

    geometry: ConvGeometry
    group_size: int
    relu: bool
    has_bias: bool
    kernel_name: str
    cpu: str
    asm: dict[str, str]
    stats: dict
    trace: TraceMap
    weight: np.ndarray = field(default=None, repr=False)
    _ptxas: PtxasResult | None = field(default=None, repr=False)
    _loaded: dict = field(default_factory=dict, repr=False)

    @property
    def groups(self) -> int:
        return -(-self.geometry.K // self.group_size)

    @property
    def launch_config(self) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        g = self.geometry
        pixels = g.N * g.OH * g.OW
        return ((-(-pixels // BLOCK), self.groups, 1), (BLOCK, 1, 1))

    def ptxas(self) -> PtxasResult:
        """Assemble the PTX with ptxas (cached): cubin and resource report."""
        if self._ptxas is None:
            self._ptxas = run_ptxas(self.asm["ptx"], cpu=self.cpu)
            self.stats["ptxas"] = self._ptxas.to_dict()
        return self._ptxas

    def __call__(self, x, out=None):
        """Run the kernel on ``x`` (a CUDA array, or numpy, which is copied); return the output."""
        from .launch import launch_conv

        return launch_conv(self, x, out)

    def __repr__(self) -> str:
        s = self.stats
        return (f"<SparseConvKernel {self.geometry.describe()}; nnz {s['nnz']}/{s['weights']} "
                f"({s['sparsity']:.1%} zero), {s['fma_ptx']} FMAs>")


def compile_conv2d(template, weight, input_shape, stride: int = 1, padding: int = 0, bias=None,
                   relu: bool = False, group_size: int | None = None, cpu: str = DEFAULT_CPU,
                   pipeline: str = DEFAULT_PIPELINE) -> SparseConvKernel:
    """Specialize ``template`` on ``weight`` (K, C, R, S) and ``input_shape`` (N, C, H, W)."""
    from .errors import ValidationError
    from .template import check_group_size, default_group_size

    w = check_weight(weight)
    g = ConvGeometry.from_weight(w.shape, input_shape, stride, padding)
    b = None
    if bias is not None:
        b = np.ascontiguousarray(np.asarray(bias), dtype=np.float32).reshape(-1)
        if b.shape != (g.K,):
            raise ValidationError(f"bias must have {g.K} values (one per output channel); "
                                  f"got shape {np.shape(bias)}", stage="validate")
        if not np.all(np.isfinite(b)):
            raise ValidationError("bias holds NaN/Inf values", stage="validate")
    gs = check_group_size(group_size, g) if group_size is not None else default_group_size(g)
    t0 = time.perf_counter()
    irt = template.ir_template(g, gs, relu, b is not None, cpu)
    t1 = time.perf_counter()

    weight_arr = irt.array("weight")[0]
    ctx = PassContext(weight_param=weight_arr.data_param, weight_shape=g.weight_shape, weights=w)
    for c in irt.array("constant"):
        # With no bias the template never reads it, but the parameter must go.
        ctx.constants[c.data_param] = b if b is not None else np.zeros(0, np.float32)
    module = parse_module(irt.text)
    before = count_instructions(module)
    passes = parse_pipeline(pipeline)
    res = run_pipeline(passes, module, ctx, registry=PASSES)
    pruned = res.module.render()
    t2 = time.perf_counter()
    ptx = emit_ptx(pruned, cpu=cpu)
    t3 = time.perf_counter()

    after = count_instructions(res.module)
    nnz = int(np.count_nonzero(w))
    asm = {"nvvm": irt.nvvm, "llvm": irt.text}
    asm.update(res.stages)
    asm["llvm-pruned"] = pruned
    asm["ptx"] = ptx
    tm: TraceMap = ctx.analyses["trace-weight-uses"]
    stats = {
        "weights": g.num_weights, "nnz": nnz, "sparsity": 1.0 - nnz / g.num_weights,
        "group_size": gs, "groups": -(-g.K // gs),
        "instructions_template": before, "instructions_pruned": after,
        "fma_ptx": _count_fma_ptx(ptx), "ptx_lines": ptx.count("\n"),
        "passes": ctx.stats,
        "seconds": {"ir_template": round(t1 - t0, 3), **{k: round(v, 3) for k, v in irt.timings.items()},
                    "passes": round(t2 - t1, 3), "ptx": round(t3 - t2, 3)},
    }
    return SparseConvKernel(geometry=g, group_size=gs, relu=bool(relu), has_bias=b is not None,
                            kernel_name=irt.kernel_name, cpu=cpu, asm=asm, stats=stats, trace=tm,
                            weight=w)
