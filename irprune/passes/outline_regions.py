"""outline-regions: a large kernel's channel-group regions moved into device functions it calls.

Not in the default pipeline: it makes ptxas 2.5-3x faster on large kernels and their kernels
slower (below). Add it to a pipeline (``...,llvm-cleanup,outline-regions``) where compile
time matters more than run time.

Why: ptxas's time grows faster than the function it compiles. resnet_3x3_28's batch-1 kernel
(64 regions, 34K PTX instructions in one entry) took 4.3-4.9 s; the same regions as nine
functions, compiled relocatable (``ptxas -c --split-compile``) and linked by nvlink
(irprune.codegen), 1.5-1.9 s on two cores. The regions are self-contained (each starts from
the thread's indices and ends in a return), so they move whole: the kernel keeps the group
switch, and each case calls the function that holds the group's region; that function
switches on the group once more to reach it.

The functions are ``noinline noreturn``: each return in them becomes ``exit``, which ends the
thread as the kernel's return did, and a function that never returns has no caller's
registers to preserve (without it ptxas saved 8-12 registers to the stack on entry). They
read the kernel's pointers as global memory, the read-only ones through ``ld.global.nc``
(see :func:`_piece_function`). Kernels with block barriers stay whole: a row tile with its
barriers in a function ran 2.1x slower on the H200.

What it costs (H200, docs/perf-log.md "Padding without a select a load"): ptxas compiles a
relocatable function's loads less eagerly than a kernel's (27% of a region's loads before its
first FMA against 90%), and the seed suite's linked kernels ran 1.03-3.3x slower (batch 1:
alexnet_cifar_c2 1.75 -> 2.19 us; batch 64: vgg16_c3 424 -> 1389 us). No ptxas option tried
changed that (register usage level, register limits, expensive optimizations).

Kernels smaller than two functions' worth of instructions are left as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import PassError
from ..ir.textir import Block, Function, Instruction, Module, Rewriter, pointer_root
from .base import ModulePass, PassContext
from .grid_dependency_wait import WAIT as GRID_WAIT
from .strip_zero_weights import DISPATCH_LABEL

#: IR instructions (after llvm-cleanup) a function holds at most, roughly: the regions are
#: cut into ceil(instructions / this) functions. resnet_3x3_28 at batch 1 (72K) -> 9.
FUNCTION_INSTRUCTIONS = 8192

EXIT = "@llvm.nvvm.exit"
#: Block barriers (cuda.syncthreads() and its kin).
BARRIER_PREFIX = "@llvm.nvvm.barrier"
_LABEL_REF = re.compile(r'label %("[^"]*"|[-a-zA-Z$._0-9]+)')
_CASE = re.compile(r'i32 (-?\d+), label %("[^"]*"|[-a-zA-Z$._0-9]+)')
_ATTR_ID = re.compile(r"^attributes #(\d+) = ", re.M)
_METADATA_ID = re.compile(r"^!(\d+) = ", re.M)
_PHI_PAIR = re.compile(r"\[\s*([^,\[\]]+?)\s*,\s*%(\"[^\"]*\"|[-a-zA-Z$._0-9]+)\s*\]")


def function_name(kernel: str, first: int, last: int) -> str:
    """The name of the function that holds groups ``first`` .. ``last`` of ``kernel``."""
    return f"{kernel}_groups_{first}_{last}"


@dataclass(frozen=True)
class OutlineRegions(ModulePass):
    """Move the kernel's regions into ``noinline noreturn`` functions of about
    ``instructions`` instructions each (default :data:`FUNCTION_INSTRUCTIONS`), called from
    the kernel's group switch."""

    name = "outline-regions"
    instructions: int | None = None

    def apply(self, ctx: PassContext, module: Module) -> bool:
        st = ctx.stats.setdefault(self.name, {})
        st["functions"] = 0
        kernel = module.function()
        if not kernel.blocks or kernel.blocks[0].label != DISPATCH_LABEL:
            return False  # no group switch: one region (or a table kernel)
        head, default, cases = _dispatch(kernel)
        # The kernel's wait for the grid before it (grid-dependency-wait) stays in the kernel,
        # ahead of the calls: the functions run after it.
        waits = [i for i in head if i.callee == GRID_WAIT]
        head = [i for i in head if i.callee != GRID_WAIT]
        if any(i.callee and i.callee.startswith(BARRIER_PREFIX) for i in kernel.instructions()):
            return False  # see the module's docstring: barriers stay in the kernel
        impure = next((i for i in head if not i.is_pure), None)
        if impure is not None:  # each function recomputes the group: it must be free to
            raise PassError("the group switch's block of @" + kernel.name + " does more than "
                            f"compute the group (`{impure.text.strip()[:60]}`); its regions "
                            "cannot move into functions", stage="pass:outline-regions")
        blocks = {b.label: b for b in kernel.blocks}
        reach = {label: _reachable(blocks, label) for _, label in cases}
        sizes = [sum(len(blocks[b].instructions) for b in reach[label]) for _, label in cases]
        per = self.instructions or FUNCTION_INSTRUCTIONS  # looked up here: tests lower it
        count = min(len(cases), -(-sum(sizes) // max(1, per)))
        if count < 2:
            return False
        params = kernel.params()
        args = ", ".join(f"{_value_type(t)} {n}" for t, n in params)
        attr = _next_attribute_id(module)
        invariant = _next_metadata_id(module)
        new_chunks: list = []
        calls: list[tuple[list[tuple[int, str]], str]] = []
        for piece in _balanced(cases, sizes, count):
            name = function_name(kernel.name, piece[0][0], piece[-1][0])
            fn = _piece_function(kernel, head, piece, reach, blocks, name, attr, params, invariant)
            new_chunks.append(fn)
            calls.append((piece, name))
        # The kernel: the same switch, each case a call of the function holding its region.
        entry = Block(label=DISPATCH_LABEL, instructions=waits + head)
        targets = " ".join(f"i32 {g}, label %irp.call{i}" for i, (piece, _) in enumerate(calls)
                           for g, _ in piece)
        entry.instructions.append(Instruction.parse(
            f"switch i32 %irp.group, label %irp.outside [ {targets} ]"))
        out = [entry, Block(label="irp.outside", instructions=[Instruction.parse("ret void")])]
        for i, (_, name) in enumerate(calls):
            out.append(Block(label=f"irp.call{i}", instructions=[
                Instruction.parse(f"call void @{name}({args})"), Instruction.parse("ret void")]))
        kernel.blocks = out
        # The kernel now calls functions that end the thread: it keeps no promise of returning
        # (its attribute group may say willreturn) and accesses memory through them.
        kernel.header = re.sub(r"\s#\d+\s*\{$", f" #{attr + 1} {{", kernel.header)
        at = module.chunks.index(kernel) + 1
        module.chunks[at:at] = new_chunks
        module.chunks.append(f"attributes #{attr} = {{ noinline noreturn nounwind }}\n"
                             f"attributes #{attr + 1} = {{ nounwind }}\n!{invariant} = !{{}}")
        module.declare(f"declare void {EXIT}() #{attr}", EXIT)
        st["functions"] = len(new_chunks)
        st["largest_instructions"] = max(f.instruction_count() for f in new_chunks)
        return True


def _dispatch(fn: Function) -> tuple[list[Instruction], str, list[tuple[int, str]]]:
    """The group switch's block: (instructions before the switch, default label, cases).

    LLVM prints a switch over several lines, which the parse keeps as one
    instruction a line: the switch is everything from ``switch`` to the block's end.
    """
    ins = fn.blocks[0].instructions
    at = next((i for i, x in enumerate(ins) if x.opcode == "switch"), None)
    if at is None:
        raise PassError(f"the group switch of @{fn.name} is missing", stage="pass:outline-regions")
    text = " ".join(x.text.strip() for x in ins[at:])
    m = re.match(r'switch i32 %irp\.group, label %("[^"]*"|[-a-zA-Z$._0-9]+) \[(.*)\]$', text)
    if m is None:
        raise PassError(f"cannot read the group switch of @{fn.name}: {text[:120]}",
                        stage="pass:outline-regions")
    cases = [(int(g), label) for g, label in _CASE.findall(m.group(2))]
    return ins[:at], m.group(1), sorted(cases)


def _successors(block: Block) -> list[str]:
    return [l for ins in block.instructions for l in _LABEL_REF.findall(ins.text)]


def _reachable(blocks: dict[str, Block], start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in _successors(blocks[todo.pop()]):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _balanced(cases: list, sizes: list[int], count: int) -> list[list]:
    """``cases`` cut into ``count`` runs of consecutive cases of about equal total size."""
    total, out, run, acc = sum(sizes), [], [], 0
    for i, (case, size) in enumerate(zip(cases, sizes)):
        run.append(case)
        acc += size
        left = len(cases) - i - 1  # cases still to place
        runs_left = count - len(out) - 1  # runs after this one
        if runs_left and (acc >= total * (len(out) + 1) / count or left == runs_left):
            out.append(run)
            run = []
    out.append(run)
    return [r for r in out if r]


def _value_type(param_type: str) -> str:
    """A parameter's type without its attributes (``ptr noalias readonly`` -> ``ptr``)."""
    return param_type.split()[0]


def _next_attribute_id(module: Module) -> int:
    ids = [int(m) for c in module.chunks if isinstance(c, str) for m in _ATTR_ID.findall(c)]
    refs = [int(m) for c in module.chunks if isinstance(c, Function)
            for m in re.findall(r"#(\d+)", c.header)]
    return max(ids + refs + [-1]) + 1


def _next_metadata_id(module: Module) -> int:
    ids = [int(m) for c in module.chunks if isinstance(c, str) for m in _METADATA_ID.findall(c)]
    return max(ids + [-1]) + 1


def _piece_function(kernel: Function, head: list[Instruction], piece: list[tuple[int, str]],
                    reach: dict[str, set[str]], blocks: dict[str, Block], name: str, attr: int,
                    params: list[tuple[str, str]], invariant: int) -> Function:
    """A function of ``piece``'s regions: the group switch over them, then their blocks.

    A kernel's pointer parameters are global memory and its ``noalias readonly`` ones do not
    change while it runs, which LLVM knows of a kernel (``ld.global.nc``, the read-only
    path) but not of a device function: there loads and stores would be generic
    (``ld.b32``). So the function takes each pointer as a cast from the global address
    space (the NVPTX backend infers the loads' space from it) and marks the loads of a
    read-only one ``!invariant.load``, which the backend turns into ``ld.global.nc``.
    """
    keep = set().union(*(reach[label] for _, label in piece))
    targets = " ".join(f"i32 {g}, label %{label}" for g, label in piece)
    dispatch = Block(label=DISPATCH_LABEL, instructions=[Instruction.parse(i.text) for i in head])
    dispatch.instructions.append(Instruction.parse(
        f"switch i32 %irp.group, label %irp.outside [ {targets} ]"))
    body = [dispatch, Block(label="irp.outside", instructions=[Instruction.parse("ret void")])]
    for b in kernel.blocks[1:]:
        if b.label in keep:
            body.append(Block(label=b.label, instructions=[_local(i, keep) for i in b.instructions]))
    # A return ends the thread: the kernel's return did, and the function never returns.
    for b in body:
        if b.instructions and b.instructions[-1].text.strip() == "ret void":
            b.instructions[-1:] = [Instruction.parse(f"call void {EXIT}()"),
                                   Instruction.parse("unreachable")]
    fn = Function(header=f"define internal void @{name}("
                         + ", ".join(f"{t} {n}" for t, n in params) + f") #{attr} {{",
                  blocks=body)
    # Each pointer is read through a cast from the global space and back, made first (the
    # uses are redirected before the casts exist, so the casts keep reading the parameter).
    rewrite, casts = Rewriter(fn), []
    for ty, p in params:
        if _value_type(ty) == "ptr":
            g, generic = _suffixed(p, ".global"), _suffixed(p, ".generic")
            rewrite.replace_uses(p, generic)
            casts += [Instruction.parse(f"{g} = addrspacecast ptr {p} to ptr addrspace(1)"),
                      Instruction.parse(f"{generic} = addrspacecast ptr addrspace(1) {g} to ptr")]
    rewrite.commit()
    dispatch.instructions[:0] = casts
    # pointer_root sees through the casts to the parameters
    readonly = {p for ty, p in params if " noalias" in f" {ty}" and " readonly" in f" {ty}"}
    _mark_invariant(fn, readonly, invariant)
    _check_closed(fn, params, name)
    return fn


def _suffixed(name: str, suffix: str) -> str:
    return f'{name[:-1]}{suffix}"' if name.endswith('"') else name + suffix


def _mark_invariant(fn: Function, readonly: set[str], node: int) -> None:
    """Mark every load from a pointer rooted at a ``readonly`` parameter ``!invariant.load``."""
    if not readonly:
        return
    defs = fn.definitions()
    for ins in fn.instructions():
        if ins.opcode == "load" and "!invariant.load" not in ins.text:
            ptr = ins.pointer_operand()
            if ptr is not None and pointer_root(fn, ptr[1], defs) in readonly:
                ins.text = f"{ins.text}, !invariant.load !{node}"


def _local(ins: Instruction, keep: set[str]) -> Instruction:
    """``ins`` for a function holding blocks ``keep``: a phi keeps only their incoming values."""
    if ins.opcode != "phi":
        return Instruction.parse(ins.text)
    head, _, rest = ins.text.partition("[")
    pairs = [(v, b) for v, b in _PHI_PAIR.findall("[" + rest) if b in keep]
    return Instruction.parse(head + ", ".join(f"[ {v}, %{b} ]" for v, b in pairs))


def _check_closed(fn: Function, params: list[tuple[str, str]], name: str) -> None:
    """Raise PassError when a region reads a value defined outside its function (none may)."""
    defined = {n for _, n in params} | {i.name for i in fn.instructions() if i.name}
    labels = {"%" + b.label for b in fn.blocks if b.label}
    for ins in fn.instructions():
        for op in ins.operands():
            if op not in defined and op not in labels:
                raise PassError(f"@{name} reads {op}, defined outside its regions; the regions "
                                "of a kernel must not share values", stage="pass:outline-regions")
