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
WAIT = "@llvm.nvvm.cp.async.wait.all"
WAIT_DECLARE = f"declare void {WAIT}()"
BARRIER_PREFIX = "@llvm.nvvm.barrier"
GLOBAL, SHARED = 1, 3


@dataclass(frozen=True)
class AsyncCopy(ModulePass):
    """Turn 4-, 8- and 16-byte global-to-shared copies into ``cp.async``; wait for them before
    each barrier."""

    name = "async-copy"

    def apply(self, ctx: PassContext, module: Module) -> None:
        copies = waits = 0
        sizes: set[int] = set()
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
                out, dropped = [], set()
                for ins in b.instructions:
                    stored = ins.stored_value()
                    load = defs.get(stored[1]) if stored else None
                    size = COPIES.get(stored[0]) if stored else None
                    if (load is not None and load.opcode == "load" and load.is_pure and size
                            and load.alignment() >= size and ins.alignment() >= size
                            and len(users[load.name]) == 1
                            and load in b.instructions and load.pointer_operand()[0] == "ptr"
                            and ins.pointer_operand()[0] == "ptr"
                            and is_global(load.pointer_operand()[1])
                            and is_shared(ins.pointer_operand()[1])):
                        n = copies
                        dst, src = ins.pointer_operand()[1], load.pointer_operand()[1]
                        out += [Instruction.parse(f"%irp.ac{n}.d = addrspacecast ptr {dst} to "
                                                  "ptr addrspace(3)"),
                                Instruction.parse(f"%irp.ac{n}.s = addrspacecast ptr {src} to "
                                                  "ptr addrspace(1)"),
                                Instruction.parse(f"call void {COPY.format(size)}(ptr "
                                                  f"addrspace(3) %irp.ac{n}.d, ptr addrspace(1) "
                                                  f"%irp.ac{n}.s)")]
                        dropped.add(id(load))
                        sizes.add(size)
                        copies += 1
                        continue
                    out.append(ins)
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
        if copies:
            module.declare(WAIT_DECLARE, WAIT)
        ctx.stats.setdefault(self.name, {}).update({"copies": copies, "waits": waits})
