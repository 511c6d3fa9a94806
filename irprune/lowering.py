"""Lowering: an operator template, specialized on one layer's shapes, to the IR template.

Stages (each kept as text):

``nvvm``
    the template as numba-cuda lowers it: NVVM IR in the LLVM 7 dialect with
    Numba's array ABI (7 fields per array: meminfo, parent, nitems, itemsize,
    data, shape..., strides...).
``llvm``
    the IR template: every argument except the arrays' data pointers and the
    batch size (the input's and output's leading dimension, which becomes the
    kernel's last parameter, ``%irp.batch``) bound to its constant value
    (shapes, strides, stride, padding, flags) and
    blockIdx.y bound to 0, then the weight loops fully unrolled
    (:func:`irprune.llvm_opt.run_unroll`). It is the code of one channel group (group 0): each of its
    weight elements is one load at a constant offset from the weight's data
    pointer. It does not depend on weight values, so one IR template serves
    any weights of that geometry, and every channel group of the layer
    (strip-zero-weights instantiates one region per group from it).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

import numpy as np

from .errors import IrpruneError, TemplateContractError
from .ir.libdevice import drop_unreachable_functions, link_libdevice, needs_libdevice
from .ir.textir import Instruction, Rewriter, parse_module
from .ir.verify import verify_text
from .llvm_opt import DEFAULT_CPU, run_o3, run_unroll


@dataclass(frozen=True)
class ArrayArg:
    """An array argument of a template: its name, shape and role."""

    name: str
    shape: tuple[int, ...]
    role: str  # "input", "output", "weight", "constant" or "table"
    #: Another array argument whose memory this one views with another element type (the
    #: table template reads its input as float32 and, for wide copies, as int64): its data
    #: pointer is bound to that array's, so the kernel keeps one parameter for both.
    view_of: str | None = None
    itemsize: int = 4

    @property
    def data_param(self) -> str:
        """The LLVM parameter that carries the data pointer (Numba ABI field 4)."""
        return f"%{self.name}.4"


@dataclass(frozen=True)
class IRTemplate:
    """A template lowered and specialized on one geometry; reusable across weights.

    Attributes:
        text: the IR template (stage ``llvm``).
        nvvm: numba-cuda's NVVM IR for the template (stage ``nvvm``).
        kernel_name: the kernel's symbol in ``text``.
        arrays: the array arguments, in parameter order.
        key: a digest of everything that produced ``text``.
    """

    text: str
    nvvm: str
    kernel_name: str
    arrays: tuple[ArrayArg, ...]
    key: str
    cpu: str = DEFAULT_CPU
    timings: dict = field(default_factory=dict, compare=False)

    def array(self, role: str) -> list[ArrayArg]:
        return [a for a in self.arrays if a.role == role]


#: Arrays whose leading dimension is the batch, which the kernel takes at run time.
BATCHED_ROLES = ("input", "output")
#: The kernel parameter that carries the batch size (i64, after the data pointers).
BATCH_PARAM = "%irp.batch"

#: A shared array's declaration in Numba's IR.
_SHARED_ARRAY_RE = re.compile(r"^@([-a-zA-Z$._0-9]+) = [^\n]*addrspace\(3\) global", re.M)

#: The special register that selects a block's channel group (blockIdx.y).
GROUP_INDEX_INTRINSIC = "@llvm.nvvm.read.ptx.sreg.ctaid.y"
#: With several channel groups in one block (``SparseConvKernel.groups_per_block``),
#: blockDim.z groups share a block and threadIdx.z picks one of them: the group is
#: blockIdx.y * blockDim.z + threadIdx.z.
GROUPS_PER_BLOCK_INTRINSIC = "@llvm.nvvm.read.ptx.sreg.ntid.z"
GROUP_IN_BLOCK_INTRINSIC = "@llvm.nvvm.read.ptx.sreg.tid.z"


def numba_nvvm_ir(py_func, argtypes, cc=(9, 0)) -> str:
    """Lower ``py_func`` as a kernel with Numba's ABI and return its NVVM IR text.

    This is the one place that calls numba-cuda's private kernel-compilation
    entry point (there is no public route to kernel IR before NVVM);
    tests/test_lowering.py checks that it still behaves as assumed.
    """
    from numba.cuda.compiler import _compile_pyfunc_with_fixup

    try:
        lib, _ = _compile_pyfunc_with_fixup(py_func, argtypes, device=False, cc=cc, abi="numba")
    except Exception as exc:  # numba's typing/lowering errors have many types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise IrpruneError(f"numba-cuda could not lower the template: {first}",
                           stage="lowering", log=str(exc)) from None
    return lib.get_llvm_str()


def _strides(shape: tuple[int, ...], itemsize: int = 4) -> tuple[int, ...]:
    out, acc = [], itemsize
    for d in reversed(shape):
        out.append(acc)
        acc *= d
    return tuple(reversed(out))


def bind_arguments(text: str, arrays, scalars: dict[str, tuple[str, int]],
                   group_zero: bool = True) -> tuple[str, str]:
    """Bind every template argument but the arrays' data pointers and the batch to a constant.

    ``arrays`` are :class:`ArrayArg` (C-contiguous float32); ``scalars`` maps a
    scalar argument's name to (LLVM type, value). With ``group_zero`` blockIdx.y is bound to
    0 (the channel group of an immediate-weight template's IR template; a table template
    uses blockIdx.y for itself). Returns the new IR text and
    the kernel's symbol. Data pointers get ``noalias``: irprune never passes
    overlapping arrays, and it lets LLVM reuse input loads across channels
    and read inputs through the read-only cache.
    """
    mod = parse_module(text)
    fn = mod.function()
    consts: dict[str, str] = {}
    for a in arrays:
        batched = a.role in BATCHED_ROLES
        consts[f"%{a.name}.0"] = "null"
        consts[f"%{a.name}.1"] = "null"
        consts[f"%{a.name}.2"] = str(int(np.prod(a.shape)) if a.shape else 1)
        if batched:
            # The element count (x.size) scales with the batch: computed once
            # at entry. Numba builds every array struct with it; LLVM drops
            # it unless the template really reads x.size.
            per_image = int(np.prod(a.shape[1:]))
            consts[f"%{a.name}.2"] = f"%irp.{a.name}.size"
            fn.blocks[0].instructions.insert(0, Instruction.parse(
                f"%irp.{a.name}.size = mul i64 {BATCH_PARAM}, {per_image}"))
        consts[f"%{a.name}.3"] = str(a.itemsize)
        if a.view_of:
            consts[f"%{a.name}.4"] = f"%{a.view_of}.4"
        for i, d in enumerate(a.shape):
            # The leading dimension of the input and output is the batch: it
            # stays a kernel parameter, so one kernel serves every batch size.
            consts[f"%{a.name}.5.{i}"] = BATCH_PARAM if batched and i == 0 else str(d)
        for i, st in enumerate(_strides(a.shape, a.itemsize)):
            consts[f"%{a.name}.6.{i}"] = str(st)
    for name, (_, value) in scalars.items():
        consts[f"%{name}"] = str(int(value))
    rw = Rewriter(fn)
    # The IR template is the code of channel group 0: blockIdx.y (which picks
    # the group) becomes 0, so that every weight and bias offset folds to a
    # constant. strip-zero-weights instantiates the other groups from it by
    # shifting the arrays' base pointers (see passes/strip_zero_weights.py).
    for ins in fn.instructions():
        if group_zero and ins.opcode == "call" and ins.callee == GROUP_INDEX_INTRINSIC:
            rw.replace_uses(ins.name, "0")
            rw.erase(ins)
    kept = []
    for ty, name in fn.params():
        if name in consts:
            rw.replace_uses(name, consts[name])
        else:
            if name.endswith(".4") and "ptr" in ty and "noalias" not in ty:
                ty = ty.replace("ptr", "ptr noalias", 1)
            kept.append((ty, name))
    missing = [n for n in consts if n not in {p for _, p in fn.params()}]
    if missing:
        raise TemplateContractError(
            f"template parameters {missing[:4]} are not in the lowered kernel; "
            "arrays must be C-contiguous float32 and scalars integers", stage="lowering")
    rw.commit()
    fn.set_params(kept + [("i64", BATCH_PARAM)])
    return mod.render(), fn.name


def build_ir_template(py_func, arrays, scalars: dict[str, tuple[str, int]], argtypes,
                      cpu: str = DEFAULT_CPU, symbol: str | None = None,
                      group_zero: bool = True, loops_stay: bool = False) -> IRTemplate:
    """Lower, bind and unroll a template into an :class:`IRTemplate` (``group_zero``: see
    :func:`bind_arguments`).

    ``loops_stay``: a template whose main loop stays a loop (the table layout's) is built by
    LLVM's O1 instead of :func:`irprune.llvm_opt.run_unroll`. Its rolled code is small, so O1
    costs little there, and O1's late loop passes give its loops the shape that its kernels
    were tuned and measured with (run_unroll's differs: 185-429 PTX lines, a few changed).
    """
    import time

    cc = (int(cpu[3:-1]), int(cpu[-1])) if cpu.startswith("sm_") else (9, 0)
    t0 = time.perf_counter()
    nvvm = numba_nvvm_ir(py_func, argtypes, cc=cc)
    t1 = time.perf_counter()
    # llvmlite's LLVM 22 reads Numba's LLVM 7 dialect and prints the modern
    # one; every later stage works on that printed form.
    llmod = verify_text(nvvm, "lowering")
    if needs_libdevice(nvvm):
        link_libdevice(llmod)
    normalized = str(llmod)
    bound, kname = bind_arguments(normalized, arrays, scalars, group_zero)
    key = hashlib.sha256(bound.encode()).hexdigest()[:16]
    mod = parse_module(bound)
    drop_unreachable_functions(mod, {kname})
    if symbol:
        mod.rename_symbol(kname, symbol)
        kname = symbol
    # Numba numbers its shared arrays per compile (@_cudapy_smem_8): give them
    # stable names, so that a ragged group's IR template, lowered separately,
    # names the same array as the main one when both share a module.
    for i, name in enumerate(_SHARED_ARRAY_RE.findall(mod.render())):
        mod.rename_symbol(name, f"irp_shared_{i}")  # PTX names take no dots
    bound = mod.render()
    t2 = time.perf_counter()
    # run_unroll parses and verifies its input: a bad binding fails there, as stage "unroll".
    text = (run_o3(bound, "unroll", cpu=cpu, unroll=True, level=1) if loops_stay
            else run_unroll(bound, "unroll", cpu=cpu))
    t3 = time.perf_counter()
    return IRTemplate(
        text=text, nvvm=nvvm, kernel_name=kname, arrays=tuple(arrays), key=key, cpu=cpu,
        timings={"numba": t1 - t0, "bind": t2 - t1, "unroll": t3 - t2},
    )
