"""place-output-channels: each output store of a channel group's region to its channel's place.

A kernel compiled in an order other than the natural one (irprune.channel_order) computes, in
region ``i``, the weights' channels ``k0 .. k0 + size - 1`` of that order: the layer's
channels ``order[k0] .. order[k0 + size - 1]``. strip-zero-weights gave the region the output
base pointer of channel ``k0`` (``ctx.channel_strides``), so its stores land where the natural
order puts them. This pass moves the store of the region's ``j``-th channel by
``(order[k0 + j] - k0 - j)`` channels: one constant ``getelementptr`` in front of it, which
llvm-cleanup folds into the address. No index array is read at run time.

Which channel a store writes is read from its address: the stores of a region reach the
output through the same pointer plus constant offsets (the template's store loop unrolled
over the group, ``y[n, k0 + kk, oh, ow]``), ``kk`` channels apart. A region whose output
stores do not split into ``size`` channels that way (another template's address arithmetic)
is refused with a PassError naming the store, never guessed at. Without ``ctx.output_channels``
the pass changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from ..errors import PassError
from ..ir.textir import Block, Function, Instruction, Module, pointer_root
from .base import ModulePass, PassContext, Region
from .strip_zero_weights import DISPATCH_LABEL, dispatch_cases
from .trace_weight_uses import _SIZES, _const_offset


def region_blocks(fn: Function, regions: list[Region]) -> list[tuple[Region, list[Block]]]:
    """Each region of ``fn`` with its blocks: after strip-zero-weights a region runs from its
    switch case's label to the next region's (one region and no switch: every block)."""
    if not fn.blocks or fn.blocks[0].label != DISPATCH_LABEL:
        return [(regions[0], list(fn.blocks))]
    cases = dispatch_cases(fn)
    starts = {label: i for i, label in cases}
    out: list[tuple[Region, list[Block]]] = []
    for b in fn.blocks[1:]:
        if b.label in starts:
            out.append((regions[starts[b.label]], []))
        if out:
            out[-1][1].append(b)
    return out


def _anchor(ptr: str, defs: dict[str, Instruction]) -> tuple[str, int]:
    """(pointer, bytes): ``ptr`` as the last pointer before it that is not a constant offset,
    plus the constant offsets after it."""
    off = 0
    seen = set()
    while ptr in defs and ptr not in seen:
        seen.add(ptr)
        ins = defs[ptr]
        if ins.opcode != "getelementptr":
            break
        base = ins.pointer_operand()[1]
        step = _const_offset(ins, base, _SIZES)
        if step is None:
            break
        off += step
        ptr = base
    return ptr, off


@dataclass(frozen=True)
class PlaceOutputChannels(ModulePass):
    """Move each region's output stores to the places of the channels it computes."""

    name = "place-output-channels"
    region_local = True

    def apply(self, ctx: PassContext, module: Module) -> bool:
        order = ctx.output_channels
        if order is None:
            return False
        if ctx.output_param is None or ctx.output_param not in ctx.channel_strides:
            raise PassError("an output channel order needs the output parameter and its channel "
                            "stride", stage=f"pass:{self.name}")
        stride = ctx.channel_strides[ctx.output_param]
        fn = module.function()
        defs = fn.definitions()
        regions = ctx.regions or [Region(k0=0, size=len(order))]
        moved = 0
        for region, blocks in region_blocks(fn, regions):
            stores = [(b, i, ins) for b in blocks for i, ins in enumerate(b.instructions)
                      if ins.opcode == "store"
                      and pointer_root(fn, ins.pointer_operand()[1], defs) == ctx.output_param]
            by_anchor = defaultdict(list)
            for b, i, ins in stores:
                anchor, off = _anchor(ins.pointer_operand()[1], defs)
                by_anchor[anchor].append((off, b, i, ins))
            edits = []
            for anchor, items in by_anchor.items():
                low = min(off for off, *_ in items)
                chans = defaultdict(list)
                for off, b, i, ins in items:
                    if (off - low) % stride:
                        raise PassError(f"output store `{ins.text.strip()}` is not a whole number "
                                        f"of channels ({stride} bytes) from the region's others",
                                        stage=f"pass:{self.name}")
                    chans[(off - low) // stride].append((b, i, ins))
                counts = {len(v) for v in chans.values()}
                if sorted(chans) != list(range(region.size)) or len(counts) != 1:
                    ins = items[0][3]
                    raise PassError(f"cannot tell which of the {region.size} channels of the region "
                                    f"at channel {region.k0} the output stores through "
                                    f"{anchor} write (offsets in channels: {sorted(chans)}; "
                                    f"e.g. `{ins.text.strip()}`); compile with "
                                    "channel_order='natural'", stage=f"pass:{self.name}")
                for j, sites in chans.items():
                    delta = (int(order[region.k0 + j]) - region.k0 - j) * stride
                    if delta:
                        edits += [(b, i, ins, delta) for b, i, ins in sites]
            # Insert back to front so that each block's earlier indices stay put. The names
            # carry the region's first channel: shares of regions are joined into one module.
            for n, (b, i, ins, delta) in enumerate(sorted(edits, key=lambda e: (id(e[0]), -e[1]))):
                ptr = ins.pointer_operand()[1]
                name = f"%irp.oc{region.k0}.{n}"
                gep = Instruction.parse(f"{name} = getelementptr i8, ptr {ptr}, i64 {delta}")
                head, tail = ins.text.rsplit(f"ptr {ptr}", 1)
                b.instructions[i] = Instruction.parse(f"{head}ptr {name}{tail}")
                b.instructions.insert(i, gep)
                moved += 1
        ctx.stats.setdefault(self.name, {}).update({"stores_moved": moved})
        return moved > 0
