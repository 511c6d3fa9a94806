"""Linking libdevice: the bodies of the ``__nv_*`` math functions Numba calls.

numba-cuda leaves calls such as ``@__nv_fmaxf`` (Python's ``max`` on floats)
for libNVVM to link from libdevice. irprune bypasses libNVVM, so it links
libdevice itself with llvmlite and keeps only the functions the kernel
reaches; LLVM then inlines them. NVPTX's NVVMReflect pass resolves
libdevice's ``__nvvm_reflect`` queries during optimization.
"""

from __future__ import annotations

import functools
import re

import llvmlite.binding as llvm

from ..errors import IrpruneError
from .textir import Function, Module

_SYMBOL_RE = re.compile(r'@("[^"]*"|[-a-zA-Z$._0-9]+)')


@functools.lru_cache(maxsize=1)
def libdevice_bitcode() -> bytes:
    """libdevice's bitcode, from the wheel numba-cuda uses."""
    from numba.cuda.cudadrv.libs import get_libdevice

    path = get_libdevice()
    if not path:
        raise IrpruneError("libdevice.10.bc not found; install numba-cuda[cu13]", stage="libdevice")
    with open(path, "rb") as fh:
        return fh.read()


def needs_libdevice(text: str) -> bool:
    return re.search(r"^declare .*@\"?__nv_", text, flags=re.M) is not None


def link_libdevice(mod: "llvm.ModuleRef") -> None:
    """Link libdevice into ``mod`` (in place)."""
    lib = llvm.parse_bitcode(libdevice_bitcode())
    lib.triple = mod.triple
    lib.data_layout = mod.data_layout
    mod.link_in(lib)


def drop_unreachable_functions(module: Module, roots: set[str]) -> int:
    """Delete function definitions not reachable from ``roots`` (names without @)."""
    fns = {f.name: f for f in module.functions}
    calls: dict[str, set[str]] = {}
    for name, f in fns.items():
        refs = set()
        for ins in f.instructions():
            if "@" in ins.text:
                refs.update(m.strip('"') for m in _SYMBOL_RE.findall(ins.text))
        calls[name] = refs
    keep, work = set(), [r for r in roots if r in fns]
    while work:
        n = work.pop()
        if n in keep:
            continue
        keep.add(n)
        work.extend(c for c in calls.get(n, ()) if c in fns)
    before = len(module.chunks)
    module.chunks = [c for c in module.chunks if not (isinstance(c, Function) and c.name not in keep)]
    return before - len(module.chunks)
