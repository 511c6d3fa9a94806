"""strip-zero-weights: delete the whole instruction chain of every zero weight.

Uses the trace-weight-uses map. For a weight equal to zero (either sign) the
pass drops its address, load and multiply, makes each accumulate read the
running sum it was adding to (so the sum skips the term), and drops the
input-side instructions that no remaining weight needs (input loads, padding
selects, their address arithmetic). A pruned weight therefore contributes
nothing: a NaN or Inf seen only through pruned weights never reaches the
output.

This is irprune's own rewrite, not fast-math flags left for LLVM: without
them LLVM must keep ``x * 0.0`` (x may be NaN or inf).

Channel groups. The IR template is the code of one group of output channels
(group 0: blockIdx.y bound to 0). When ``ctx.regions`` lists the layer's
groups, the pass instantiates one region per group from that template, each
with only the chains of that group's nonzero weights, and a ``switch`` on
the group index in front that sends each block to its group's region (the
index is blockIdx.y * blockDim.z + threadIdx.z: a launch may run several
groups in one block, one per threadIdx.z). A region's
weights, constants and outputs sit a fixed number of bytes further along
their arrays than group 0's (``ctx.channel_strides``: bytes per output
channel), so the region reads them through its own base pointers,
``%rgN.w.4 = getelementptr i8, ptr %w.4, i64 <k0 * stride>`` (group 0
keeps the template's names): the module
after this pass is still a correct kernel that reads its weights from memory,
which fold-weight-constants then turns into immediates. Work per group is
proportional to the template's chain count with small constants (masks and
a liveness sweep over the input slice), and the output module only ever
holds the nonzero chains, so nothing downstream sees the dense layer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..errors import PassError
from ..ir.textir import Block, Function, Instruction, Module, sub_locals
from ..lowering import GROUP_IN_BLOCK_INTRINSIC, GROUP_INDEX_INTRINSIC, GROUPS_PER_BLOCK_INTRINSIC
from .base import ModulePass, PassContext, Region
from .trace_weight_uses import TraceMap

ZERO = "0.000000e+00"
DISPATCH_LABEL = "irp.dispatch"
NOGROUP_LABEL = "irp.nogroup"
_CASE_RE = re.compile(r'i32 (\d+), label (%(?:"[^"]*"|[-a-zA-Z$._0-9]+))')


def region_prefix(index: int, count: int) -> str:
    """The prefix of region ``index``'s value names: group 0 keeps the template's names."""
    return f"rg{index}." if index > 0 and count > 1 else ""


def prefixed(name: str, prefix: str) -> str:
    """``%x`` -> ``%rg3.x`` (quoted names keep their quotes)."""
    if not prefix:
        return name
    if name.startswith('%"'):
        return '%"' + prefix + name[2:]
    return "%" + prefix + name[1:]


class TemplatePlan:
    """What strip needs to know about one IR template, computed once, used per group.

    Every instruction gets a line number. ``owner[l]`` is the template weight
    (flat index) a line exists for (address, load, multiply, owned inputs), or
    -1; accumulates are listed with the weights of their product operands;
    the input slice (instructions that only feed multiplies, shared by
    several weights) gets its users, for a liveness sweep per group.
    """

    def __init__(self, fn: Function, tm: TraceMap):
        self.fn = fn
        self.lines: list[Instruction] = []
        self.block_of: list[int] = []
        for bi, b in enumerate(fn.blocks):
            for ins in b.instructions:
                self.lines.append(ins)
                self.block_of.append(bi)
        line_no = {id(ins): i for i, ins in enumerate(self.lines)}
        self.line_of = {ins.name: i for i, ins in enumerate(self.lines) if ins.name is not None}
        n = len(self.lines)
        owner = np.full(n, -1, dtype=np.int64)
        product_flat: dict[str, int] = {}
        self.fma_calls: list[tuple[int, str, str]] = []  # (line, name, addend) of fma multiplies
        acc_lines: dict[int, Instruction] = {}
        for tr in tm.all():
            for ins in tr.instructions():
                if ins in tr.accumulates:
                    continue
                owner[line_no[id(ins)]] = tr.flat
            for m in tr.multiplies:
                if m.opcode == "call":
                    ops = m.operands()
                    self.fma_calls.append((line_no[id(m)], m.name, ops[-1] if len(ops) == 3 else ZERO))
                else:
                    product_flat[m.name] = tr.flat
            for a in tr.accumulates:
                acc_lines[line_no[id(a)]] = a
        self.owner = owner
        self.fma_flat = np.array([owner[line] for line, _, _ in self.fma_calls], dtype=np.int64)
        # Accumulates: (line, result, [(operand, flat or -1), ...]).
        self.accs = []
        for line, a in sorted(acc_lines.items()):
            ops = a.binary_operands()
            self.accs.append((line, a.name, [(o, product_flat.get(o, -1)) for o in ops]))
        self.acc_line = {line for line, _, _ in self.accs}
        # The shared input slice: pure instructions reached backwards from the
        # multiplies' non-weight operands, not owned by one weight.
        users, defs = tm.maps_for(fn)
        slice_ids: set[int] = set()
        work = []
        for tr in tm.all():
            for m in tr.multiplies:
                ops = m.operands()[:2] if m.opcode == "call" else m.operands()  # fma: not the addend
                work += [o for o in ops if o != tr.load.name]
        while work:
            d = defs.get(work.pop())
            if d is None:
                continue
            li = line_no[id(d)]
            if li in slice_ids or owner[li] >= 0 or not d.is_pure or d.opcode == "phi":
                continue
            slice_ids.add(li)
            work.extend(d.operands())
        # Users of each slice line; a line used by anything outside the slice
        # and the chains, or before its definition, is always kept.
        self.slice_order: list[int] = sorted(slice_ids, reverse=True)
        self.slice_users: dict[int, list[int]] = {}
        self.always: set[int] = set()
        for li in self.slice_order:
            us = [line_no[id(u)] for u in users.get(self.lines[li].name, [])]
            if any(u <= li or (u not in slice_ids and owner[u] < 0) for u in us):
                self.always.add(li)
            self.slice_users[li] = us
        self.flats = int(np.prod(tm.shape))
        self.traced = np.array(sorted(tm.traces), dtype=np.int64)

    def instantiate(self, zero: np.ndarray, prefix: str, params: dict[str, str]) -> tuple[list[Block], dict]:
        """The template's blocks for one group whose weight-is-zero mask is ``zero``.

        ``prefix`` renames every local value and label; ``params`` maps a
        parameter to the value the region reads instead (its shifted base).
        """
        dead = np.zeros(len(self.lines), dtype=bool)
        m = self.owner >= 0
        dead[m] = zero[self.owner[m]]
        subst: dict[str, str] = {}
        for (line, name, addend), f in zip(self.fma_calls, self.fma_flat):
            if zero[f]:
                subst[name] = addend
        stripped_accs = 0
        for line, name, ops in self.accs:
            zeros = [o for o, f in ops if f >= 0 and zero[f]]
            if not zeros:
                continue
            dead[line] = True
            stripped_accs += 1
            rest = [o for o, f in ops if not (f >= 0 and zero[f])]
            subst[name] = rest[0] if rest else ZERO
        dead_list = dead.tolist()
        # A value that replaces a stripped one must stay (it is an addend, so
        # normally not in the input slice at all).
        kept = {self.line_of[v] for v in subst.values() if v in self.line_of}
        inputs_dropped = 0
        for li in self.slice_order:
            if li in self.always or li in kept:
                continue
            if all(dead_list[u] for u in self.slice_users[li]):
                dead_list[li] = True
                inputs_dropped += 1

        cache: dict[str, str] = {}

        def value(tok: str) -> str:
            hit = cache.get(tok)
            if hit is not None:
                return hit
            v, seen = tok, set()
            while v in subst and v not in seen:
                seen.add(v)
                v = subst[v]
            if not v.startswith("%"):
                out = v
            elif v in params:
                out = params[v]
            else:
                out = prefixed(v, prefix)
            cache[tok] = out
            return out

        def sub(mt) -> str:
            return value(mt.group(0))

        blocks = [Block(label=(prefix + b.label) if b.label is not None else None)
                  for b in self.fn.blocks]
        for li, ins in enumerate(self.lines):
            if dead_list[li]:
                continue
            text = sub_locals(sub, ins.text) if "%" in ins.text else ins.text
            name = prefixed(ins.name, prefix) if ins.name is not None else None
            blocks[self.block_of[li]].instructions.append(
                Instruction(text=text, name=name, opcode=ins.opcode, callee=ins.callee))
        stats = {"weights_stripped": int(np.count_nonzero(zero[self.traced])),
                 "accumulates_stripped": stripped_accs, "dead_inputs_erased": inputs_dropped,
                 "used": set(cache.values())}
        return blocks, stats


def dispatch_blocks(cases: list[tuple[int, str]]) -> list[Block]:
    """The blocks in front of the regions: a ``switch`` on the group index to each region's label.

    The group is blockIdx.y * blockDim.z + threadIdx.z: a launch may put
    several groups in one block (their warps then share the input through
    L1); with blockDim.z = 1 this is blockIdx.y. The code is the same for
    every such launch, so it is a launch choice, not a compile one.
    """
    targets = " ".join(f"i32 {i}, label %{label}" for i, label in cases)
    dispatch = Block(label=DISPATCH_LABEL, instructions=[
        Instruction.parse(f"%irp.group.block = tail call i32 {GROUP_INDEX_INTRINSIC}()"),
        Instruction.parse(f"%irp.group.count = tail call i32 {GROUPS_PER_BLOCK_INTRINSIC}()"),
        Instruction.parse(f"%irp.group.lane = tail call i32 {GROUP_IN_BLOCK_INTRINSIC}()"),
        Instruction.parse("%irp.group.first = mul i32 %irp.group.block, %irp.group.count"),
        Instruction.parse("%irp.group = add i32 %irp.group.first, %irp.group.lane"),
        Instruction.parse(f"switch i32 %irp.group, label %{NOGROUP_LABEL} [ {targets} ]"),
    ])
    return [dispatch, Block(label=NOGROUP_LABEL, instructions=[Instruction.parse("ret void")])]


def dispatch_cases(fn: Function) -> list[tuple[int, str]]:
    """The (group, label) cases of the switch that :func:`dispatch_blocks` made in ``fn``."""
    if not fn.blocks or fn.blocks[0].label != DISPATCH_LABEL:
        raise PassError(f"function @{fn.name} does not start with the group switch",
                        stage="join-shares")
    switch = fn.blocks[0].instructions[-1].text
    inner = switch[switch.index("[") + 1:switch.rindex("]")]
    return [(int(group), label[1:]) for group, label in _CASE_RE.findall(inner)]


def _group_zero_mask(ctx: PassContext, region: Region, flats: int) -> np.ndarray:
    """Weight-is-zero per template weight (flat index) for ``region``'s channels."""
    w = ctx.weights.reshape(ctx.weights.shape[0], -1)
    sl = w[region.k0:region.k0 + region.size].reshape(-1)
    zero = np.zeros(flats, dtype=bool)
    zero[:sl.size] = sl == 0.0
    return zero


@dataclass(frozen=True)
class StripZeroWeights(ModulePass):
    """Erase the chains of zero weights; with ctx.regions, one stripped region per channel group."""

    name = "strip-zero-weights"
    requires = ("trace-weight-uses",)
    region_local = True

    def apply(self, ctx: PassContext, module: Module) -> None:
        if ctx.weights is None:
            raise PassError("no weight values were given to strip", stage=f"pass:{self.name}")
        tm: TraceMap = ctx.analyses["trace-weight-uses"]
        fn = module.function()
        regions = ctx.regions or [Region(k0=0, size=ctx.weights.shape[0])]
        plans: dict[int, TemplatePlan] = {}
        blocks: list[Block] = []
        cases = []
        totals = {"weights_stripped": 0, "accumulates_stripped": 0, "dead_inputs_erased": 0}
        first, count = ctx.share or (0, len(regions))
        if not (0 <= first and count >= 1 and first + count <= len(regions)):
            raise PassError(f"share {ctx.share} is outside the {len(regions)} regions",
                            stage=f"pass:{self.name}")
        for i in range(first, first + count):
            reg = regions[i]
            rfn, rtm = (reg.fn, reg.trace) if reg.fn is not None else (fn, tm)
            plan = plans.get(id(rfn))
            if plan is None:
                plan = plans[id(rfn)] = TemplatePlan(rfn, rtm)
            zero = _group_zero_mask(ctx, reg, plan.flats)
            prefix = region_prefix(i, len(regions))
            params = {name: name for _, name in rfn.params()}
            shifts = {}
            offsets = {p: reg.k0 * stride for p, stride in ctx.channel_strides.items()}
            for param, off in (reg.shifts or {}).items():
                offsets[param] = offsets.get(param, 0) + off
            for param, off in offsets.items():
                if off:
                    # A part's first region keeps the template's names but not its channels.
                    params[param] = prefixed(param, prefix or "rg.base.")
                    shifts[param] = off
            rblocks, st = plan.instantiate(zero, prefix, params)
            # A base pointer for each shifted array the region still reads.
            prologue = [Instruction.parse(f"{params[p]} = getelementptr i8, ptr {p}, i64 {off}")
                        for p, off in shifts.items() if params[p] in st["used"]]
            totals["weights_stripped"] += st["weights_stripped"]
            totals["accumulates_stripped"] += st["accumulates_stripped"]
            totals["dead_inputs_erased"] += st["dead_inputs_erased"]
            if len(regions) > 1:
                if rblocks[0].label is None:
                    rblocks[0].label = f"{prefix or 'rg0.'}irp.start"
                cases.append((i, rblocks[0].label))
            rblocks[0].instructions[:0] = prologue
            blocks += rblocks
        if len(regions) > 1:
            blocks = dispatch_blocks(cases) + blocks
            for intrinsic in (GROUP_INDEX_INTRINSIC, GROUPS_PER_BLOCK_INTRINSIC,
                              GROUP_IN_BLOCK_INTRINSIC):
                module.declare(f"declare i32 {intrinsic}()", intrinsic)
        fn.blocks = blocks
        ctx.stats.setdefault(self.name, {}).update({**totals, "regions": count})
