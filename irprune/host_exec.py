"""Run a kernel's pruned LLVM IR on the CPU: a numerical check that needs no GPU.

The pruned IR (stage ``llvm-pruned``) is plain LLVM: straight-line float
arithmetic, immediates, loads and stores, and the NVPTX special registers
(thread and block indices). Here those registers become globals that the
caller sets, the module is retargeted to the host and JIT-compiled with
llvmlite's MCJIT, and the kernel function is called once per GPU thread of
the launch grid. The result is the convolution the IR computes, before the
NVPTX backend and ptxas: tests compare it with a float64 reference on
machines without a GPU, so a wrong strip, fold or group region fails in CI,
not only on the GPU.

It is a checker, not a fast path: one call per thread. A kernel with block
barriers (``cuda.syncthreads()``) runs each block's threads as OS threads
that meet at a real barrier, so that shared memory written before a barrier
is read after it as on the GPU.
"""

from __future__ import annotations

import ctypes
import itertools
import re
import threading

import llvmlite.binding as llvm
import numpy as np

from .errors import LaunchError
from .ir.textir import parse_module
from .ir.verify import init_llvm

_SREG = "@llvm.nvvm.read.ptx.sreg."
#: Thread indices: extra parameters of the host function (each OS thread passes its own).
_TIDS = ("tid.x", "tid.y", "tid.z")
#: The rest: globals, the same for every thread of a block (blocks run one after the other).
_REGS = ("ntid.x", "ntid.y", "ntid.z", "ctaid.x", "ctaid.y", "ctaid.z",
         "nctaid.x", "nctaid.y", "nctaid.z")
_engines: list = []  # keep JIT engines alive while their functions may be called


#: The block barrier (``cuda.syncthreads()``): on the host a call to
#: ``irp_barrier``, a Python callback that waits for the block's other threads.
_BARRIER = "@llvm.nvvm.barrier.cta.sync.aligned.all"
_HOST_BARRIER = "irp_barrier"
#: Seconds a thread waits at a barrier before the launch is declared stuck.
BARRIER_TIMEOUT = 60.0
_SHARED_RE = re.compile(r"^(@[-\w.$]+) = external (?:local_unnamed_addr )?addrspace\(3\) global "
                        r"\[0 x [^\]\n]+\][^\n]*$", re.M)
#: An asynchronous global-to-shared copy (irprune.passes.async_copy) and its wait: on the host
#: a plain copy (zero where a zero-filling copy reads 0 bytes), and a fence.
_ASYNC_COPY = "@llvm.nvvm.cp.async.ca.shared.global."
_ASYNC_WAIT = "@llvm.nvvm.cp.async.wait.all"
#: The wait for the grid before the kernel (irprune.passes.grid_dependency_wait): on the host
#: the launch before has finished when this one starts, so a fence.
_GRID_WAIT = "@llvm.nvvm.griddepcontrol.wait"
#: The trigger that lets the next kernel launch early (templates/zero_fill.py): on the host the
#: next kernel starts after this one has finished, so it has nothing to do (a fence, as the
#: waits).
_GRID_TRIGGER = "@llvm.nvvm.griddepcontrol.launch.dependents"
#: A thread's end inside a device function (irprune.passes.outline_regions).
_EXIT = "@llvm.nvvm.exit"


def host_module_text(pruned: str, shared_bytes: int = 0) -> tuple[str, str]:
    """The pruned IR rewritten for the host: (text, kernel name).

    Thread-index reads become three extra ``i32`` parameters (one value per
    OS thread), the other special registers loads of globals
    ``@irp.sreg.<reg>``; the kernel loses its PTX calling convention, the
    barrier becomes a call of ``irp_barrier`` (see ``_BARRIER``), dynamic
    shared memory becomes an ordinary global of ``shared_bytes``, and the
    target is the host's.
    """
    mod = parse_module(pruned)
    kernel = mod.function()
    # A large kernel calls device functions that hold its regions (outline-regions): each
    # takes the thread's indices too, and its ``exit`` (the thread ends) is a return here,
    # where the kernel's call returns into a return of its own.
    defined = {"@" + f.name for f in mod.functions}
    barriers = copies = 0
    for fn in mod.functions:
        barriers, copies = _host_function(fn, defined, shared_bytes, barriers, copies)
        header = fn.header.replace("define ptx_kernel ", "define ", 1)
        close = header.rfind(")")  # the end of the parameter list (attributes follow)
        fn.header = header[:close] + "".join(f", i32 %irp.{t}" for t in _TIDS) + header[close:]
    for i, c in enumerate(mod.chunks):
        if isinstance(c, str):
            mod.chunks[i] = re.sub(r"^(attributes #\d+ = \{[^}\n]*?) noreturn\b", r"\1", c,
                                   flags=re.M)
    head = mod.chunks[0]
    head = re.sub(r'^target (datalayout|triple) = .*$', "", head, flags=re.M)
    mod.chunks[0] = head + "\n" + "\n".join(f"@irp.sreg.{r} = global i32 0" for r in _REGS)
    if barriers:
        mod.chunks.append(f"declare void @{_HOST_BARRIER}()")
    text = mod.render()
    floats = max(1, -(-shared_bytes // 4))
    # Every dynamic shared array of a kernel starts at the same address (extern __shared__):
    # on the host the first becomes a buffer and the others names for it.
    shared = _SHARED_RE.findall(text)
    text = _SHARED_RE.sub(lambda m: (f"{m.group(1)} = global [{floats} x float] zeroinitializer"
                                     if m.group(1) == shared[0] else ""), text)
    for name in shared[1:]:
        text = re.sub(re.escape(name) + r"(?![-\w.$])", shared[0], text)
    # Tables in the global address space (irprune.passes.embed_tables): host globals.
    text = text.replace("internal addrspace(1) constant", "internal constant")
    text = re.sub(r"addrspacecast \(ptr addrspace\([13]\) (@[\w.$]+) to ptr\)", r"\1", text)
    text = text.replace("ptr addrspace(3)", "ptr").replace("ptr addrspace(1)", "ptr")
    # casts between address spaces (async-copy's) are now from ptr to ptr: plain copies
    text = re.sub(r"= addrspacecast ptr (\S+) to ptr$", r"= bitcast ptr \1 to ptr", text,
                  flags=re.M)
    return text, kernel.name



def _host_function(fn, defined: set[str], shared_bytes: int, barriers: int,
                   copies: int) -> tuple[int, int]:
    """Rewrite one function of the pruned module for the host (see host_module_text)."""
    exits: set[int] = set()  # the calls of exit, now returns
    for ins in fn.instructions():
        if ins.opcode == "call" and ins.callee and ins.callee.startswith(_SREG):
            reg = ins.callee[len(_SREG):]
            if reg in _TIDS:
                ins.text = f"  {ins.name} = add i32 %irp.{reg}, 0"
                ins.opcode, ins.callee = "add", None
                continue
            if reg not in _REGS:
                raise LaunchError(f"special register {reg} is not simulated on the host",
                                  stage="host")
            ins.text = f"  {ins.name} = load i32, ptr @irp.sreg.{reg}"
            ins.opcode, ins.callee = "load", None
        elif " asm " in ins.text:
            if "%dynamic_smem_size" not in ins.text or ins.name is None:
                raise LaunchError(f"the kernel runs inline PTX (`{ins.text.strip()[:80]}`), "
                                  "which the host check cannot run", stage="host")
            # Numba reads the dynamic shared-memory size to give the array its length.
            ins.text = f"  {ins.name} = add i32 0, {int(shared_bytes)}"
            ins.opcode = "add"
        elif ins.opcode == "call" and ins.callee in (_ASYNC_WAIT, _GRID_WAIT, _GRID_TRIGGER):
            ins.text, ins.opcode, ins.callee = "  fence seq_cst", "fence", None
        elif ins.opcode == "call" and (ins.callee or "").startswith(_ASYNC_COPY):
            args = [a.split()[-1] for a in ins.text[ins.text.index("(") + 1:
                                                    ins.text.rindex(")")].split(",")]
            size, _, zfill = ins.callee[len(_ASYNC_COPY):].partition(".")
            ty = f"i{8 * int(size)}"
            tmp = f"%irp.hostcopy{copies}"
            copies += 1
            dst, src = args[:2]
            if zfill:  # ".s": read args[2] bytes (0 or all of them), zero the rest
                ins.text = (f"  {tmp}.z = icmp eq i32 {args[2]}, 0\n"
                            f"  {tmp}.p = select i1 {tmp}.z, ptr {dst}, ptr {src}\n"
                            f"  {tmp}.v = load {ty}, ptr {tmp}.p\n"
                            f"  {tmp} = select i1 {tmp}.z, {ty} 0, {ty} {tmp}.v\n"
                            f"  store {ty} {tmp}, ptr {dst}")
            else:
                ins.text = f"  {tmp} = load {ty}, ptr {src}\n  store {ty} {tmp}, ptr {dst}"
            ins.opcode, ins.callee = "store", None
        elif ins.opcode == "call" and ins.callee == _BARRIER:
            ins.text = f"  call void @{_HOST_BARRIER}()"
            ins.callee = f"@{_HOST_BARRIER}"
            barriers += 1
        elif ins.opcode == "call" and ins.callee == _EXIT:
            ins.text, ins.opcode, ins.callee = "  ret void", "ret", None
            exits.add(id(ins))
        elif ins.opcode == "call" and ins.callee in defined:
            close = ins.text.rindex(")")
            ins.text = ins.text[:close] + "".join(f", i32 %irp.{t}" for t in _TIDS) + ins.text[close:]
        elif ins.opcode == "call" and ins.callee and not ins.callee.startswith("@llvm."):
            raise LaunchError(f"the kernel calls {ins.callee}, which the host check cannot run",
                              stage="host")
    for b in fn.blocks:  # the ``unreachable`` after an exit, now a return, goes
        b.instructions = [i for k, i in enumerate(b.instructions)
                          if not (i.opcode == "unreachable" and k and id(b.instructions[k - 1]) in exits)]
    return barriers, copies


class _BlockBarrier:
    """``cuda.syncthreads()`` for the OS threads of one block.

    A thread whose kernel returns leaves the barrier, as a GPU thread that
    exits no longer holds the others back. A wait past BARRIER_TIMEOUT (a
    kernel whose threads do not all reach a barrier) breaks the barrier:
    every thread runs on and the launch reports the failure.
    """

    def __init__(self, parties: int):
        self._cond = threading.Condition()
        self._parties = parties
        self._arrived = 0
        self._generation = 0
        self.broken = False

    def wait(self) -> None:
        with self._cond:
            if self.broken:
                return
            gen = self._generation
            self._arrived += 1
            if self._arrived >= self._parties:
                self._release()
                return
            while gen == self._generation and not self.broken:
                if not self._cond.wait(BARRIER_TIMEOUT):
                    self.broken = True
                    self._cond.notify_all()

    def leave(self) -> None:
        with self._cond:
            self._parties -= 1
            if self._parties > 0 and self._arrived >= self._parties:
                self._release()

    def _release(self) -> None:
        self._arrived = 0
        self._generation += 1
        self._cond.notify_all()


_barrier_lock = threading.Lock()
_block_barrier: list = [None]  # the barrier of the block being run (blocks run one at a time)


@ctypes.CFUNCTYPE(None)
def _host_barrier() -> None:
    _block_barrier[0].wait()


class HostKernel:
    """A pruned kernel JIT-compiled for the CPU; call :meth:`launch` with numpy arrays."""

    def __init__(self, pruned: str, shared_bytes: int = 0):
        init_llvm()
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        llvm.add_symbol(_HOST_BARRIER, ctypes.cast(_host_barrier, ctypes.c_void_p).value)
        text, self.name = host_module_text(pruned, shared_bytes)
        self.barriers = f"call void @{_HOST_BARRIER}()" in text
        target = llvm.Target.from_default_triple()
        tm = target.create_target_machine(opt=0)
        mod = llvm.parse_assembly(text)
        mod.triple = target.triple
        mod.data_layout = str(tm.target_data)
        mod.verify()
        self.engine = llvm.create_mcjit_compiler(mod, tm)
        self.engine.finalize_object()
        _engines.append(self.engine)
        self._regs = {r: ctypes.c_int32.from_address(self.engine.get_global_value_address(f"irp.sreg.{r}"))
                      for r in _REGS}
        fn = mod.get_function(self.name)
        # Pointers (the arrays) and integers (the batch size), in order; then the thread index.
        self._argtypes = [ctypes.c_void_p if str(a.type) == "ptr" else ctypes.c_int64
                          for a in list(fn.arguments)[:-len(_TIDS)]]
        self.nargs = len(self._argtypes)
        addr = self.engine.get_function_address(self.name)
        self._fn = ctypes.CFUNCTYPE(None, *self._argtypes, *[ctypes.c_int32] * len(_TIDS))(addr)

    def launch(self, grid: tuple[int, int, int], block: tuple[int, int, int], *args) -> None:
        """Run every thread of ``grid`` x ``block`` (in order) on ``args``: C-contiguous arrays and ints."""
        if len(args) != self.nargs:
            raise LaunchError(f"the kernel takes {self.nargs} arguments; got {len(args)}", stage="host")
        ptrs = [a.ctypes.data_as(ctypes.c_void_p) if t is ctypes.c_void_p else t(int(a))
                for a, t in zip(args, self._argtypes)]
        r = self._regs
        for name, v in zip(("nctaid.x", "nctaid.y", "nctaid.z", "ntid.x", "ntid.y", "ntid.z"),
                           (*grid, *block)):
            r[name].value = v
        threads = list(itertools.product(range(block[0]), range(block[1]), range(block[2])))
        for bz, by, bx in itertools.product(*(range(n) for n in reversed(grid))):
            r["ctaid.z"].value, r["ctaid.y"].value, r["ctaid.x"].value = bz, by, bx
            if not self.barriers:  # no thread waits for another: one after the other
                for t in threads:
                    self._fn(*ptrs, *t)
                continue
            self._run_block(ptrs, threads)

    def _run_block(self, ptrs, threads) -> None:
        """Every thread of one block as an OS thread (ctypes releases the GIL in the call)."""
        with _barrier_lock:  # one block at a time in this process: the callback finds its barrier
            barrier = _block_barrier[0] = _BlockBarrier(len(threads))

            def run(t):
                try:
                    self._fn(*ptrs, *t)
                finally:
                    barrier.leave()

            workers = [threading.Thread(target=run, args=(t,), daemon=True) for t in threads]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            _block_barrier[0] = None
        if barrier.broken:
            raise LaunchError(f"threads of a block waited more than {BARRIER_TIMEOUT:.0f} s at "
                              "a barrier that the others never reached", stage="host")


def run_on_host(kernel, x: np.ndarray) -> np.ndarray:
    """The output of ``kernel`` (a :class:`~irprune.kernel.SparseConvKernel` or
    :class:`~irprune.table_kernel.TableConvKernel`) on input ``x`` (any batch), computed on
    the CPU."""
    from .kernel import part_shared_bytes
    from .validate import check_batch

    g = kernel.geometry
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = check_batch(x.shape, (g.C, g.H, g.W), "input")
    # a kernel whose blocks add into the output has it zeroed by its launch (irprune.launch)
    # or by a zeroing part of its own
    y = np.full((n, g.K, g.OH, g.OW), 0.0 if getattr(kernel, "zero_output", False) else np.nan,
                dtype=np.float32)
    for part, grid, block in kernel.part_launches(n):
        HostKernel(part.llvm, part_shared_bytes(kernel, part)).launch(grid, block, x, y, n)
    return y
