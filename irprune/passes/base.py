"""Pass protocol, the context passes share, and the pipeline runner.

Modelled on xDSL: a pass is a frozen dataclass with a kebab-case ``name``, its
options as fields and one ``apply(ctx, module)`` method. Analyses store their
result in ``ctx.analyses[name]`` and change nothing; transforms declare the
analyses they need in ``requires`` and the runner runs those first. The
module is re-parsed and verified by LLVM after every transform.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, ClassVar

import numpy as np

from ..errors import IrpruneError, PassError
from ..ir.textir import Module, parse_module
from ..ir.verify import verify_text
from ..llvm_opt import DEFAULT_CPU


@dataclass
class Region:
    """One group of output channels that strip-zero-weights instantiates.

    Channels ``k0 .. k0 + size - 1``. ``fn`` and ``trace`` name the IR
    template the region is made from when it is not the pipeline's module
    (a last group smaller than the others has a template of its own).
    """

    k0: int
    size: int
    fn: object | None = None
    trace: object | None = None
    #: Byte shifts of base pointers beyond ``k0 * channel_strides`` (the input
    #: of a grouped convolution starts at the region's group's channels).
    shifts: dict[str, int] | None = None


@dataclass
class PassContext:
    """What the passes of one compilation share.

    Attributes:
        weight_param: the LLVM parameter holding the weight's data pointer
            (``%w.4`` for Numba's ABI), or None if there is no weight.
        weight_shape: (K, C, R, S).
        weights: the weight values (float32, weight_shape), or None when only
            analyses run (an IR template has no values yet).
        constants: other compile-time arrays, by data-pointer parameter
            (e.g. the bias), folded like weights but never stripped.
        analyses: results of analyses, by pass name.
        stats: per-pass numbers (instructions before/after, removed, ...).
        share: see the attribute's comment.
        regions: the channel groups to instantiate from the IR template (None:
            the module is the whole kernel, one region).
        channel_strides: parameter -> bytes from one output channel's data to
            the next (weight: C*R*S*4, bias: 4, output: OH*OW*4), by which a
            region's base pointers are shifted.
        verify: verify the module after each transform.
        cpu: the GPU architecture the module is compiled for.
        print_between: if set, called as f(pass_name, module_text) after each pass.
    """

    weight_param: str | None = None
    weight_shape: tuple[int, ...] = ()
    weights: np.ndarray | None = None
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    analyses: dict[str, object] = field(default_factory=dict)
    stats: dict[str, dict] = field(default_factory=dict)
    regions: list[Region] | None = None
    channel_strides: dict[str, int] = field(default_factory=dict)
    verify: bool = True
    print_between: Callable[[str, str], None] | None = None
    #: Arrays to embed in the module as constant globals, by data-pointer parameter
    #: (irprune.passes.embed_tables: a table kernel's weights as data).
    tables: dict[str, np.ndarray] = field(default_factory=dict)
    #: ``(first, count)``: instantiate only these of ``regions`` (one share of
    #: a part compiled in several processes, see irprune.region_shares); the
    #: regions keep their part-wide indices, names and switch cases.
    share: tuple[int, int] | None = None
    #: The GPU architecture the module is compiled for (passes that emit instructions only
    #: some architectures have check it, e.g. grid-dependency-wait).
    cpu: str = DEFAULT_CPU
    #: The layer's channel of each channel the weights are given in (irprune.channel_order:
    #: ``weights[j]`` is the layer's channel ``output_channels[j]``), or None for the natural
    #: order; place-output-channels stores each where it belongs.
    output_channels: np.ndarray | None = None
    #: The output's data-pointer parameter (for place-output-channels).
    output_param: str | None = None


class ModulePass:
    """Base of all passes. Subclasses are frozen dataclasses that set ``name``."""

    name: ClassVar[str] = ""
    #: True for analyses: they only fill ctx.analyses.
    is_analysis: ClassVar[bool] = False
    #: Names of analyses that must have run before this pass.
    requires: ClassVar[tuple[str, ...]] = ()
    #: True when what the pass does to one channel-group region depends on
    #: nothing outside it, so that shares of a part's regions can go through
    #: it in separate processes and be joined afterwards (irprune.region_shares).
    region_local: ClassVar[bool] = False

    def apply(self, ctx: PassContext, module: Module) -> bool | None:  # pragma: no cover
        """Transform ``module`` in place. A transform may return False to say it changed
        nothing: the pipeline then keeps the previous stage's text instead of rendering and
        verifying the same module again."""
        raise NotImplementedError


def count_instructions(module: Module) -> int:
    return module.instruction_count()


@dataclass
class PipelineResult:
    """The module after a pipeline and each stage's text."""

    module: Module
    stages: dict[str, str]

    @property
    def text(self) -> str:
        """The module's text: the last transform's stage (nothing edits the module after it),
        rendered only when no transform ran."""
        return _last(self.stages) if self.stages else self.module.render()


def run_pipeline(passes: list[ModulePass], module: Module, ctx: PassContext,
                 registry: dict[str, type] | None = None) -> PipelineResult:
    """Run ``passes`` in order over ``module``, verifying after each transform.

    Required analyses that were not run yet are run first (they must be in
    ``registry``). Returns the module and the text after each transform.
    """
    stages: dict[str, str] = {}
    count = None  # the module's instructions after the last pass (nothing edits it between)
    for p in passes:
        for req in p.requires:
            if req not in ctx.analyses:
                if registry is None or req not in registry:
                    raise PassError(f"pass {p.name} needs analysis {req}, which is not available",
                                    stage=f"pass:{p.name}")
                count = _run_one(registry[req](), module, ctx, stages, count)
        count = _run_one(p, module, ctx, stages, count)
    return PipelineResult(module=module, stages=stages)


def _run_one(p: ModulePass, module: Module, ctx: PassContext, stages: dict[str, str],
             before: int | None = None) -> int:
    """Run ``p`` (``before``: the module's instruction count, when known); return the count after."""
    if before is None:
        before = count_instructions(module)
    t0 = time.perf_counter()
    try:
        changed = p.apply(ctx, module)
    except IrpruneError:
        raise
    except Exception as exc:  # a bug in a pass: keep the stage in the message
        raise PassError(f"{type(exc).__name__}: {exc}", stage=f"pass:{p.name}") from exc
    elapsed = time.perf_counter() - t0
    after = before if p.is_analysis else count_instructions(module)
    st = ctx.stats.setdefault(p.name, {})
    st.update({"instructions_before": before, "instructions_after": after,
               "removed": before - after, "seconds": round(elapsed, 4)})
    if p.is_analysis:
        return after
    if changed is False and stages:
        # Nothing changed: the module is the last stage's text, already verified (a render
        # and an LLVM verify of a large module cost tenths of a second).
        text = _last(stages)
    else:
        text = module.render()
        if ctx.verify and not getattr(p, "verifies_output", False):
            verify_text(text, f"pass:{p.name}")
    stages[p.name] = text
    if ctx.print_between is not None:
        ctx.print_between(p.name, text)
    return after


def _last(stages: dict[str, str]) -> str:
    """The text of the latest stage."""
    return stages[next(reversed(stages))]


def reparse(module: Module, text: str) -> None:
    """Replace ``module``'s contents in place with the module of ``text``, parsed when first
    needed (:meth:`Module.lazy`): a pipeline that ends here renders ``text`` as it is."""
    module.set_text(text)
