"""trace-weight-uses (analysis): which instructions exist because of which weight.

For every load from the weight's data pointer at a constant offset, the
analysis records the weight index (k, c, r, s) and the instruction chain that
hangs off it:

- ``address``: the getelementptr giving the weight's address (None at offset 0),
- ``load``: the weight load,
- ``multiplies``: the fmul (or fma/fmuladd call) consuming the weight,
- ``accumulates``: the fadd adding each product into a sum,
- ``inputs``: the input-side instructions feeding the multiply that nothing
  else uses (input loads, padding selects, address arithmetic): they die with
  the weight. Input values shared with other weights are counted in
  ``shared_inputs`` but not owned.

Any other use of the weight pointer breaks the template contract
(docs/templates.md) and raises TemplateContractError naming the instruction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ..errors import TemplateContractError
from ..ir.textir import Function, Instruction, Module
from .base import ModulePass, PassContext

_GEP_RE = re.compile(
    r"getelementptr\s+(?:inbounds\s+|nuw\s+|nusw\s+|inrange\(\S+\)\s+)*"
    r"(?P<ty>i8|i16|i32|i64|float|double),\s*ptr\s+(?P<base>%\S+),\s*i64\s+(?P<idx>-?\d+)$"
)
_SIZES = {"i8": 1, "i16": 2, "i32": 4, "i64": 8, "float": 4, "double": 8}
_FMA_CALLEES = ("@llvm.fma.f32", "@llvm.fmuladd.f32")


@dataclass(eq=False)
class WeightTrace:
    """The instruction chain of one weight element."""

    index: tuple[int, int, int, int]
    flat: int
    load: Instruction
    address: Instruction | None = None
    multiplies: list[Instruction] = field(default_factory=list)
    accumulates: list[Instruction] = field(default_factory=list)
    inputs: list[Instruction] = field(default_factory=list)
    shared_inputs: int = 0

    def instructions(self) -> list[Instruction]:
        """Every instruction owned by this weight, address first."""
        out = [self.address] if self.address is not None else []
        return out + [self.load] + self.inputs + self.multiplies + self.accumulates

    def to_dict(self) -> dict:
        # Later passes build new instructions and never edit the template's,
        # so these are the IR template's lines.
        t = lambda i: i.text.strip()  # noqa: E731
        return {
            "index": list(self.index), "flat": self.flat,
            "address": t(self.address) if self.address else None,
            "load": t(self.load),
            "inputs": [t(i) for i in self.inputs],
            "multiplies": [t(i) for i in self.multiplies],
            "accumulates": [t(i) for i in self.accumulates],
            "shared_inputs": self.shared_inputs,
        }


@dataclass
class TraceMap:
    """Result of trace-weight-uses: weight flat index -> list of traces.

    A weight read once (the usual case) has one trace; ``missing`` lists the
    flat indices the kernel never reads.
    """

    shape: tuple[int, int, int, int]
    traces: dict[int, list[WeightTrace]]
    #: Output channels the traced code computes: the IR template is one
    #: channel group (the first ``channels`` channels), None for all.
    channels: int | None = None
    #: The traced function's use and definition maps and instruction count, as they were at
    #: the trace: a transform right after it on the unchanged function (strip-zero-weights)
    #: takes them instead of walking 100,000s of instructions again (:meth:`maps_for`).
    uses: tuple | None = field(default=None, repr=False, compare=False)

    def maps_for(self, fn: Function) -> tuple[dict, dict]:
        """(users, definitions) of ``fn``: the trace's own where ``fn`` is the traced function
        with as many instructions as then, else computed now."""
        if self.uses is not None:
            traced, count, users, defs = self.uses
            if traced is fn and count == fn.instruction_count():
                return users, defs
        return fn.users(), fn.definitions()

    @property
    def missing(self) -> list[int]:
        k = self.shape[0] if self.channels is None else self.channels
        n = k * int(np.prod(self.shape[1:]))
        return [i for i in range(n) if i not in self.traces]

    def for_index(self, k: int, c: int, r: int, s: int) -> list[WeightTrace]:
        flat = int(np.ravel_multi_index((k, c, r, s), self.shape))
        return self.traces.get(flat, [])

    def all(self):
        for lst in self.traces.values():
            yield from lst

    def to_dict(self) -> dict:
        return {"shape": list(self.shape), "channels": self.channels,
                "weights": {str(k): [t.to_dict() for t in v] for k, v in sorted(self.traces.items())},
                "missing": self.missing}


def _const_offset(ins: Instruction, base: str, sizes=_SIZES) -> int | None:
    body = ins.text.split("=", 1)[1].strip()
    m = _GEP_RE.search(body)
    if not m or m.group("base") != base:
        return None
    return int(m.group("idx")) * sizes[m.group("ty")]


def constant_offset_loads(fn: Function, param: str, users) -> list[tuple[Instruction, Instruction | None, int]]:
    """(load, gep or None, byte offset) for every float load from ``param`` + constant.

    The address may go through several constant getelementptrs (a channel
    group's region reads through its own shifted base pointer); the offset is
    their sum. Any other use of ``param`` raises TemplateContractError. Used
    for the weight here and by fold-weight-constants for the weight and the
    constant arrays (the bias).
    """
    out = []
    work = [(param, 0, None)]
    while work:
        ptr, base, gep = work.pop(0)
        for u in users.get(ptr, []):
            if u.opcode == "getelementptr":
                off = _const_offset(u, ptr)
                if off is None:
                    raise TemplateContractError(
                        f"weight address is not a compile-time constant after unrolling: "
                        f"`{u.text.strip()}`; index the weight only with loop counters of "
                        "constant-trip-count loops", stage="pass:trace-weight-uses")
                work.append((u.name, base + off, u))
            elif u.opcode == "load" and u.text.split("=", 1)[1].strip().startswith("load float"):
                out.append((u, gep, base))
            elif u.opcode == "load":
                raise TemplateContractError(
                    f"weight pointer used by `{u.text.strip()}`; a template may only "
                    "load float32 weights", stage="pass:trace-weight-uses")
            else:
                raise TemplateContractError(
                    f"weight pointer used by `{u.text.strip()}`; a template may only load "
                    "from the weight, never store to it or pass it on", stage="pass:trace-weight-uses")
    return out


def trace_function(fn: Function, param: str, shape: tuple[int, int, int, int],
                   channels: int | None = None) -> TraceMap:
    """Build the :class:`TraceMap` of weight pointer ``param`` in ``fn``.

    ``channels``: how many output channels ``fn`` computes (an IR template's
    group size), for :attr:`TraceMap.missing`.
    """
    users = fn.users()
    defs = fn.definitions()
    n = int(np.prod(shape))
    _, C, R, S = shape
    traces: dict[int, list[WeightTrace]] = {}
    for load, gep, off in constant_offset_loads(fn, param, users):
        if off % 4 or not 0 <= off // 4 < n:
            raise TemplateContractError(
                f"weight load at byte offset {off} is outside the {shape} float32 weight",
                stage="pass:trace-weight-uses")
        flat = off // 4
        idx = (flat // (C * R * S), flat // (R * S) % C, flat // S % R, flat % S)
        # A getelementptr shared with other loads (a region's base) is not this weight's.
        own_gep = gep if gep is not None and len(users.get(gep.name, [])) == 1 else None
        tr = WeightTrace(index=idx, flat=flat, load=load, address=own_gep)
        chain_ids = {id(load)}
        others: list[str] = []
        for m in users.get(load.name, []):
            ops = m.operands()
            if m.opcode == "fmul":
                tr.multiplies.append(m)
                others += [o for o in ops if o != load.name]
                for a in users.get(m.name, []):
                    if a.opcode == "fadd":
                        tr.accumulates.append(a)
            elif m.opcode == "call" and m.callee in _FMA_CALLEES and load.name in ops[:2]:
                tr.multiplies.append(m)
                others += [o for o in ops[:2] if o != load.name]
            else:
                raise TemplateContractError(
                    f"weight {idx} is used by `{m.text.strip()}`; a template may only "
                    "multiply a weight into a sum (fmul + fadd, or cuda.fma)",
                    stage="pass:trace-weight-uses")
        chain_ids.update(id(i) for i in tr.multiplies)
        # Input-side slice: instructions whose every user is already in the chain.
        work = [defs[o] for o in others if o in defs]
        seen: set[int] = set()
        while work:
            ins = work.pop()
            if id(ins) in seen or not ins.is_pure or ins.opcode == "phi":
                continue
            seen.add(id(ins))
            if all(id(u) in chain_ids for u in users.get(ins.name, [])):
                tr.inputs.append(ins)
                chain_ids.add(id(ins))
                work.extend(defs[o] for o in ins.operands() if o in defs)
            elif ins.opcode in ("load", "select"):
                tr.shared_inputs += 1
        traces.setdefault(flat, []).append(tr)
    return TraceMap(shape=tuple(shape), traces=traces, channels=channels,
                    uses=(fn, fn.instruction_count(), users, defs))


@dataclass(frozen=True)
class TraceWeightUses(ModulePass):
    """Map every weight index (k, c, r, s) to the instructions that exist because of it."""

    name = "trace-weight-uses"
    is_analysis = True
    region_local = True

    def apply(self, ctx: PassContext, module: Module) -> None:
        if ctx.weight_param is None:
            raise TemplateContractError("no weight parameter was named for this module",
                                        stage=f"pass:{self.name}")
        fn = module.function()
        channels = ctx.regions[0].size if ctx.regions else None
        tm = trace_function(fn, ctx.weight_param, ctx.weight_shape, channels)
        ctx.analyses[self.name] = tm
        ctx.stats.setdefault(self.name, {}).update(
            {"weights_traced": len(tm.traces), "missing": len(tm.missing),
             "chains": sum(len(v) for v in tm.traces.values())})
