"""The views of ``irprune inspect``: stages, weight chains, summary and diff of one kernel.

Each view is a plain function returning data (for ``--json``) or text; the
command line decides how to print it. Nothing here needs a GPU.
"""

from __future__ import annotations

import difflib
import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from .errors import ValidationError
from .ir.textir import parse_module
from .kernel import SparseConvKernel


def stage_names(k: SparseConvKernel) -> list[str]:
    """Every stage the kernel can show, in pipeline order."""
    return list(k.asm) + ["ptxas", "sass"]


def stage_text(k: SparseConvKernel, stage: str) -> str:
    """The text of one stage; ``ptxas`` is its resource report, ``sass`` the disassembly."""
    if stage in k.asm:
        return k.asm[stage]
    if stage == "ptxas":
        return k.ptxas().log
    if stage == "sass":
        return sass(k)
    raise ValidationError(f"unknown stage {stage!r}; stages: {', '.join(stage_names(k))}",
                          stage="inspect")


def sass(k: SparseConvKernel) -> str:
    """SASS of the kernel through cuobjdump or nvdisasm, if either can be found."""
    from .codegen import find_cuda_tool

    # nvdisasm does the work (cuobjdump only calls it), so it is the one needed.
    tool = find_cuda_tool("nvdisasm")
    if tool is None:
        raise ValidationError("SASS needs nvdisasm (pip install nvidia-cuda-nvdisasm, "
                              "or a CUDA toolkit on PATH)", stage="inspect")
    k.ptxas()
    texts = []
    for i, part in enumerate(k.parts):
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "k.cubin"
            p.write_bytes(part.cubin)
            proc = subprocess.run([tool, "-c", str(p)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise ValidationError(f"nvdisasm failed: {proc.stderr.strip()[:200]}", stage="sass",
                                  log=proc.stderr)
        head = f"// ---- part {i}: channel groups {part.first_group}..{part.first_group + part.groups - 1} ----\n"
        texts.append(head + proc.stdout if len(k.parts) > 1 else proc.stdout)
    return "".join(texts)


def text_section_bytes(cubin: bytes) -> int:
    """Bytes of machine code in a cubin: the sizes of its ``.text.*`` ELF sections."""
    if cubin[:4] != b"\x7fELF" or cubin[4] != 2:
        return 0
    shoff, = struct.unpack_from("<Q", cubin, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", cubin, 0x3A)
    sections = [struct.unpack_from("<IIQQQQ", cubin, shoff + i * shentsize) for i in range(shnum)]
    stroff = sections[shstrndx][4]
    total = 0
    for name_off, _, _, _, _, size in sections:
        end = cubin.index(b"\0", stroff + name_off)
        if cubin[stroff + name_off:end].startswith(b".text."):
            total += size
    return total


def summary(k: SparseConvKernel, with_ptxas: bool = True) -> dict:
    """Weights, nnz, per-pass removals, loads, FMAs, PTX lines, code bytes, registers (for a
    table kernel: its configuration, table and shared-memory bytes instead of removals)."""
    s = k.stats
    if is_table(k):
        return _table_summary(k, with_ptxas)
    passes = {name: {"removed": st.get("removed", 0), "seconds": st.get("seconds")}
              for name, st in s["passes"].items()}
    tmpl, pruned = k.asm["llvm"], k.asm["llvm-pruned"]
    out = {
        "layer": k.geometry.describe(),
        "weights": s["weights"], "nnz": s["nnz"], "sparsity": round(s["sparsity"], 4),
        "group_size": s["group_size"], "groups": s["groups"], "parts": len(k.parts),
        "instructions_template": s["instructions_template"],
        "instructions_pruned": s["instructions_pruned"],
        "removed_by_pass": passes,
        "loads_template": tmpl.count(" = load "), "loads_pruned": pruned.count(" = load "),
        "fma": s["fma_ptx"], "ptx_lines": s["ptx_lines"],
        "compile_seconds": s["seconds"],
    }
    if with_ptxas:
        r = k.ptxas()
        code = sum(text_section_bytes(c) for c in k.cubins)
        out.update({"registers": r.registers, "spill_bytes": (r.spill_stores or 0) + (r.spill_loads or 0),
                    "code_bytes": code, "code_bytes_per_block": code // max(1, s["groups"]),
                    "cubin_bytes": r.code_bytes})
    return out


def _lines_named(text: str, names: set[str], literal: str) -> list[str]:
    """The instructions called ``names`` and, one step up, the FMA that holds ``literal``.

    LLVM's clean-up keeps names, but may put a select (a padding tap) on top
    of the multiply-add that now carries the weight; showing its operand too
    makes the immediate visible.
    """
    fn = parse_module(text).function()
    defs = fn.definitions()
    out = []
    for i in fn.instructions():
        if i.name in names:
            for op in i.operands():
                d = defs.get(op)
                if d is not None and d.opcode == "call" and literal in d.text:
                    out.append(d.text.strip())
            out.append(i.text.strip())
    return out


def is_table(k) -> bool:
    """Whether ``k`` is a table-layout kernel (irprune.table_kernel): weights as data."""
    from .table_kernel import TableConvKernel

    return isinstance(k, TableConvKernel)


def weight_chain(k: SparseConvKernel, k_: int, c: int, r: int, s: int) -> dict:
    """The chain trace-weight-uses attributes to weight (k, c, r, s), and what is left of it;
    for a table kernel, where the weight's (offset, weight) pair sits in its tables."""
    shape = k.geometry.weight_shape
    idx = (k_, c, r, s)
    if any(not 0 <= i < d for i, d in zip(idx, shape)):
        raise ValidationError(f"weight index {idx} is outside the weight's shape {shape}",
                              stage="inspect")
    if is_table(k):
        from .table_layout import pair_of

        value = float(k.weight.reshape(shape)[idx])
        return {"index": list(idx), "value": value, "pruned": value == 0.0, "layout": "table",
                **pair_of(k.weight, k.config, k_, c)}
    group, prefix, tidx = k.template_index(*idx)
    ragged = group == k.groups - 1 and k.geometry.K % k.group_size
    traces = [] if ragged else k.trace.for_index(*tidx)
    value = float(k.weight.reshape(shape)[idx])
    from .passes.strip_zero_weights import prefixed

    names = {prefixed(i.name, prefix) for t in traces for i in t.accumulates + t.multiplies if i.name}
    from .ir.textir import float_literal

    module = k.part_of(group).llvm
    left = _lines_named(module, names, float_literal(value)) if value != 0.0 else []
    return {"index": list(idx), "value": value, "pruned": value == 0.0, "group": group,
            "template_index": list(tidx),
            "template": [t.to_dict() for t in traces], "after_pruning": left}


def channel_chains(k: SparseConvKernel, k_: int) -> list[dict]:
    """weight_chain for every (c, r, s) of output channel ``k_``."""
    K, C, R, S = k.geometry.weight_shape
    if not 0 <= k_ < K:
        raise ValidationError(f"output channel {k_} is outside 0..{K - 1}", stage="inspect")
    return [weight_chain(k, k_, c, r, s) for c in range(C) for r in range(R) for s in range(S)]


def diff(k: SparseConvKernel, context: int = 1) -> str:
    """Unified diff of the IR template against the pruned IR (its first part's, if split)."""
    # Both through the same printer, so that only the passes' changes show.
    a = parse_module(k.asm["llvm"]).render().splitlines(keepends=True)
    b = parse_module(k.parts[0].llvm).render().splitlines(keepends=True)
    name = "llvm-pruned" if len(k.parts) == 1 else f"llvm-pruned (part 0 of {len(k.parts)})"
    return "".join(difflib.unified_diff(a, b, "llvm (IR template)", name, n=context))


def _table_summary(k, with_ptxas: bool) -> dict:
    s = k.stats
    blocks = (k.geometry.K // k.config.tile_k) * k.config.slices
    out = {"layer": k.geometry.describe(), "layout": "table", "config": k.config.describe(),
           "threads": k.block, "weights": s["weights"], "nnz": s["nnz"], "sparsity": round(s["sparsity"], 4),
           "table_blocks": blocks, "table_bytes": 4 * blocks * (k.words + k.config.tile_k + 1),
           "shared_bytes": k.shared_bytes, "fma": s["fma_ptx"], "ptx_lines": s["ptx_lines"],
           "compile_seconds": s["seconds"]}
    if with_ptxas:
        r = k.ptxas()
        out.update({"registers": r.registers,
                    "spill_bytes": (r.spill_stores or 0) + (r.spill_loads or 0),
                    "code_bytes": sum(text_section_bytes(c) for c in k.cubins),
                    "cubin_bytes": r.code_bytes})
    return out


def nonzero_fraction(w: np.ndarray) -> float:
    return float(np.count_nonzero(w)) / max(1, w.size)
