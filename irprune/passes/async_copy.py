"""async-copy: global-to-shared copies become ``cp.async``, awaited at the next barrier.

A template stages data into shared memory with plain code (``smem[i] = x[j]``): a load from
global memory whose only use is a store to shared memory. Compiled as it is, every value
passes through a register, so a thread can have only as many copies in flight as it has
registers to hold them, and the block waits for each round. ``cp.async`` (sm_80 and newer)
copies global to shared memory without a register: each such pair becomes one
``llvm.nvvm.cp.async.ca.shared.global.{4,8,16}``, and every barrier of the function is preceded by
``llvm.nvvm.cp.async.wait.all``, so the copies have landed when the barrier releases the
threads that read them. (A thread that read its own staged value before a barrier would see
stale data; staging code never does that, since other threads' values need the barrier
anyway.)

A copy that stores zero in place of the loaded value under a condition (``select i1 %c,
float 0.0, float %v`` between load and store: the padding of an input tile) becomes the
zero-filling form ``llvm.nvvm.cp.async.ca.shared.global.{4,8,16}.s``, whose source size is 0
where the select picks zero (nothing is read, the destination is zeroed) and the copy's size
elsewhere.

Only copies of 4, 8 or 16 bytes (aligned as much, by the IR's ``align``) whose source is a kernel
parameter or a global of the global address space, and whose destination is a global of the
shared address space, are converted; the rest is left as it was. A function without a
barrier is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ir.textir import Instruction, Module, pointer_root, root_address_space
from .base import ModulePass, PassContext

#: The copy intrinsic of each size it converts, by the copied value's LLVM type.
COPIES = {"i32": 4, "float": 4, "i64": 8, "double": 8, "i128": 16}
COPY = "@llvm.nvvm.cp.async.ca.shared.global.{}"
#: The zero-filling form: a third operand, the bytes to read (the rest of the copy is zeroed).
COPY_ZFILL = COPY + ".s"
WAIT = "@llvm.nvvm.cp.async.wait.all"
WAIT_DECLARE = f"declare void {WAIT}()"
BARRIER_PREFIX = "@llvm.nvvm.barrier"
GLOBAL, SHARED = 1, 3


@dataclass(frozen=True)
class AsyncCopy(ModulePass):
    """Turn 4-, 8- and 16-byte global-to-shared copies into ``cp.async``; wait for them before
    each barrier."""

    name = "async-copy"

    def apply(self, ctx: PassContext, module: Module) -> bool:
        copies = waits = zfills = 0
        sizes: set[int] = set()
        zsizes: set[int] = set()
        for fn in module.functions:
            if not any(i.opcode == "call" and (i.callee or "").startswith(BARRIER_PREFIX)
                       for i in fn.instructions()):
                continue
            params = {n for _, n in fn.params()}
            defs = fn.definitions()
            users = fn.users()

            def is_global(ptr: str) -> bool:
                root = pointer_root(fn, ptr, defs)
                return root in params or root_address_space(root) == GLOBAL

            def is_shared(ptr: str) -> bool:
                return root_address_space(pointer_root(fn, ptr, defs)) == SHARED

            for b in fn.blocks:
                here = {id(i) for i in b.instructions}
                out, dropped = [], set()
                for ins in b.instructions:
                    stored = ins.stored_value()
                    size = COPIES.get(stored[0]) if stored else None
                    value = defs.get(stored[1]) if size else None
                    zfill = _zero_fill(value, stored[0]) if value is not None else None
                    load = defs.get(zfill[1]) if zfill else value
                    if (load is None or load.opcode != "load" or not load.is_pure
                            or id(load) not in here or load.alignment() < size
                            or ins.alignment() < size or load.pointer_operand()[0] != "ptr"
                            or ins.pointer_operand()[0] != "ptr"
                            or len(users[load.name]) != 1
                            or (zfill and (id(value) not in here or len(users[value.name]) != 1))
                            or not is_global(load.pointer_operand()[1])
                            or not is_shared(ins.pointer_operand()[1])):
                        out.append(ins)
                        continue
                    n = copies
                    dst, src = ins.pointer_operand()[1], load.pointer_operand()[1]
                    out += [Instruction.parse(f"%irp.ac{n}.d = addrspacecast ptr {dst} to "
                                              "ptr addrspace(3)"),
                            Instruction.parse(f"%irp.ac{n}.s = addrspacecast ptr {src} to "
                                              "ptr addrspace(1)")]
                    args = f"ptr addrspace(3) %irp.ac{n}.d, ptr addrspace(1) %irp.ac{n}.s"
                    if zfill:
                        cond, _, zero_if_true = zfill
                        arms = f"i32 0, i32 {size}" if zero_if_true else f"i32 {size}, i32 0"
                        out += [Instruction.parse(f"%irp.ac{n}.n = select i1 {cond}, {arms}"),
                                Instruction.parse(f"call void {COPY_ZFILL.format(size)}({args}, "
                                                  f"i32 %irp.ac{n}.n)")]
                        dropped.add(id(value))
                        zsizes.add(size)
                        zfills += 1
                    else:
                        out.append(Instruction.parse(f"call void {COPY.format(size)}({args})"))
                        sizes.add(size)
                    dropped.add(id(load))
                    copies += 1
                b.instructions = [i for i in out if id(i) not in dropped]
            if not copies:
                continue
            for b in fn.blocks:
                out = []
                for ins in b.instructions:
                    if ins.opcode == "call" and (ins.callee or "").startswith(BARRIER_PREFIX):
                        out.append(Instruction.parse(f"call void {WAIT}()"))
                        waits += 1
                    out.append(ins)
                b.instructions = out
        for size in sorted(sizes):
            copy = COPY.format(size)
            module.declare(f"declare void {copy}(ptr addrspace(3), ptr addrspace(1))", copy)
        for size in sorted(zsizes):
            copy = COPY_ZFILL.format(size)
            module.declare(f"declare void {copy}(ptr addrspace(3), ptr addrspace(1), i32)", copy)
        if copies:
            module.declare(WAIT_DECLARE, WAIT)
        ctx.stats.setdefault(self.name, {}).update({"copies": copies, "zero_filled": zfills,
                                                    "waits": waits})
        return copies > 0


def _is_zero(literal: str, ty: str) -> bool:
    """Whether ``literal`` is +0 of type ``ty`` (all bits zero, what a zero-filling copy writes)."""
    if literal == "zeroinitializer":
        return True
    if ty in ("float", "double"):
        if literal.startswith("0x"):
            return int(literal, 16) == 0
        try:
            return float(literal) == 0.0 and not literal.startswith("-")
        except ValueError:
            return False
    return literal == "0"


def _zero_fill(ins: Instruction, ty: str) -> tuple[str, str, bool] | None:
    """``(condition, value, zero when the condition holds)`` of ``select i1 %c, T 0, T %v``
    (or with the arms swapped), else None."""
    sel = ins.select_operands()
    if sel is None:
        return None
    cond, (t1, a), (t2, b) = sel
    if t1 != ty or t2 != ty:
        return None
    if _is_zero(a, ty) and b.startswith("%"):
        return cond, b, True
    if _is_zero(b, ty) and a.startswith("%"):
        return cond, a, False
    return None
