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

It is a checker, not a fast path: one call per thread.
"""

from __future__ import annotations

import ctypes
import itertools
import re

import llvmlite.binding as llvm
import numpy as np

from .errors import LaunchError
from .ir.textir import parse_module
from .ir.verify import init_llvm

_SREG = "@llvm.nvvm.read.ptx.sreg."
_REGS = ("tid.x", "tid.y", "tid.z", "ntid.x", "ntid.y", "ntid.z",
         "ctaid.x", "ctaid.y", "ctaid.z", "nctaid.x", "nctaid.y", "nctaid.z")
_engines: list = []  # keep JIT engines alive while their functions may be called


#: The block barrier (``cuda.syncthreads()``). On the host it does nothing:
#: :meth:`HostKernel.launch` runs a block's rows of threads last row first,
#: which orders the shared-memory writes of the rows that hand a partial sum
#: to row 0 (threadIdx.y 0) before row 0 reads them, as the built-in
#: template's input-channel slices need.
_BARRIER = "@llvm.nvvm.barrier.cta.sync.aligned.all"
_SHARED_RE = re.compile(r"^(@[-\w.$]+) = external (?:local_unnamed_addr )?addrspace\(3\) global \[0 x float\]",
                        re.M)


def host_module_text(pruned: str, shared_bytes: int = 0) -> tuple[str, str]:
    """The pruned IR rewritten for the host: (text, kernel name).

    Special-register reads become loads of globals ``@irp.sreg.<reg>``, the
    kernel loses its PTX calling convention, the barrier is dropped (see
    ``_BARRIER``), dynamic shared memory becomes an ordinary global of
    ``shared_bytes``, and the target is the host's.
    """
    mod = parse_module(pruned)
    fn = mod.function()
    for ins in fn.instructions():
        if ins.opcode == "call" and ins.callee and ins.callee.startswith(_SREG):
            reg = ins.callee[len(_SREG):]
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
        elif ins.opcode == "call" and ins.callee == _BARRIER:
            ins.text = "  ; barrier (the host runs a block's rows in an order that needs none)"
            ins.opcode, ins.callee = "comment", None
        elif ins.opcode == "call" and ins.callee and not ins.callee.startswith("@llvm."):
            raise LaunchError(f"the kernel calls {ins.callee}, which the host check cannot run",
                              stage="host")
    fn.header = fn.header.replace("define ptx_kernel ", "define ", 1)
    head = mod.chunks[0]
    head = re.sub(r'^target (datalayout|triple) = .*$', "", head, flags=re.M)
    mod.chunks[0] = head + "\n" + "\n".join(f"@irp.sreg.{r} = global i32 0" for r in _REGS)
    text = mod.render()
    floats = max(1, -(-shared_bytes // 4))
    text = _SHARED_RE.sub(lambda m: f"{m.group(1)} = global [{floats} x float] zeroinitializer", text)
    text = re.sub(r"addrspacecast \(ptr addrspace\(3\) (@[\w.$]+) to ptr\)", r"\1", text)
    return text.replace("ptr addrspace(3)", "ptr"), fn.name


class HostKernel:
    """A pruned kernel JIT-compiled for the CPU; call :meth:`launch` with numpy arrays."""

    def __init__(self, pruned: str, shared_bytes: int = 0):
        init_llvm()
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        text, self.name = host_module_text(pruned, shared_bytes)
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
        # Pointers (the arrays) and integers (the batch size), in order.
        self._argtypes = [ctypes.c_void_p if str(a.type) == "ptr" else ctypes.c_int64
                          for a in fn.arguments]
        self.nargs = len(self._argtypes)
        addr = self.engine.get_function_address(self.name)
        self._fn = ctypes.CFUNCTYPE(None, *self._argtypes)(addr)

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
        # Blocks in order; in a block, rows (threadIdx.y) last first (see
        # _BARRIER), each row's threads in order.
        rows = range(block[1] - 1, -1, -1)
        for bz, by, bx in itertools.product(*(range(n) for n in reversed(grid))):
            r["ctaid.z"].value, r["ctaid.y"].value, r["ctaid.x"].value = bz, by, bx
            for tz, ty, tx in itertools.product(range(block[2]), rows, range(block[0])):
                r["tid.z"].value, r["tid.y"].value, r["tid.x"].value = tz, ty, tx
                self._fn(*ptrs)


def run_on_host(kernel, x: np.ndarray) -> np.ndarray:
    """The output of :class:`~irprune.kernel.SparseConvKernel` ``kernel`` on input ``x`` (any batch), computed on the CPU."""
    from .validate import check_batch

    g = kernel.geometry
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = check_batch(x.shape, (g.C, g.H, g.W), "input")
    y = np.full((n, g.K, g.OH, g.OW), np.nan, dtype=np.float32)
    for part, grid, block in kernel.part_launches(n):
        HostKernel(part.llvm, kernel.shared_bytes).launch(grid, block, x, y, n)
    return y
