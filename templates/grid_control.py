"""Programmatic dependent launch from inside a template (sm_90 and newer).

irprune.passes.grid_dependency_wait puts ``griddepcontrol.wait`` first in every kernel; a
template that must place it itself (the table template with a zeroing part before it,
irprune.table_kernel) or that lets the kernel after it launch early calls these. Each is one
call of the LLVM intrinsic of the same name, which the NVPTX backend emits as the PTX
instruction.
"""

from llvmlite import ir
from numba import types
from numba.cuda.extending import intrinsic


def _call_void(builder, name: str) -> None:
    fn = builder.module.declare_intrinsic(name, fnty=ir.FunctionType(ir.VoidType(), []))
    builder.call(fn, [])


@intrinsic
def grid_wait(typingctx):
    """Block until the grids this kernel depends on have completed and their writes are
    visible (``griddepcontrol.wait``; returns at once when the launch was not early)."""
    def codegen(context, builder, signature, args):
        _call_void(builder, "llvm.nvvm.griddepcontrol.wait")
        return context.get_dummy_value()
    return types.void(), codegen


@intrinsic
def launch_dependents(typingctx):
    """Let the kernel launched after this one with programmatic stream serialization start
    once every block of this one has run this (``griddepcontrol.launch_dependents``)."""
    def codegen(context, builder, signature, args):
        _call_void(builder, "llvm.nvvm.griddepcontrol.launch.dependents")
        return context.get_dummy_value()
    return types.void(), codegen
