"""Re-finalization: pruned LLVM IR to PTX (llvmlite's NVPTX backend) and PTX to cubin (ptxas).

libNVVM rejects the opaque-pointer IR that llvmlite prints, so irprune emits
PTX with the NVPTX backend inside llvmlite's own LLVM instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import CodegenError, PtxasError
from .ir.verify import verify_text
from .llvm_opt import DEFAULT_CPU, set_llvm_options, target_machine


#: The NVPTX backend's optimization level. At 2 it emits the same PTX as at 3
#: for irprune's straight-line kernels (same line count on the 64 -> 64 3x3
#: layer) in a third of the time (0.6 s against 1.7 s): level 3's extra
#: machine-level work is what ptxas redoes anyway.
CODEGEN_OPT = 2


def emit_ptx(text: str, cpu: str = DEFAULT_CPU, reads_before_wait: bool = False) -> str:
    """PTX for the module in ``text``, for GPU architecture ``cpu``.

    A module whose kernels wait for the grid before them (irprune.passes.grid_dependency_wait)
    has its PTX checked by :func:`check_grid_wait`; ``reads_before_wait``: its kernel reads
    memory before the wait by design (a table kernel launched after its zeroing kernel)."""
    set_llvm_options()  # the load/store vectorizer off (see llvm_opt)
    mod = verify_text(text, "ptx", reuse=True)
    try:
        ptx = target_machine(cpu, opt=CODEGEN_OPT).emit_assembly(mod)
    except RuntimeError as exc:
        raise CodegenError(f"NVPTX backend failed: {str(exc).splitlines()[0]}",
                           stage="ptx", log=str(exc)) from None
    if "@llvm.nvvm.griddepcontrol.wait" in text:
        check_grid_wait(ptx, reads_before_wait)
    return ptx


#: PTX a kernel may run before its ``griddepcontrol.wait``: parameter loads and register
#: arithmetic. A memory access (other than ``ld.param``), a branch, a call or a label before it
#: could read what the grid before it is still writing, or skip the wait; a trigger
#: (``launch_dependents``) before it would let the next kernel start before this one's input
#: is there.
_BEFORE_WAIT_FORBIDDEN = re.compile(
    r"^\s*(?:@!?%\w+\s+)?(?:(?:ld|st|atom|red|cp|prefetch|prefetchu|multimem|tex|tld4|suld|sust|"
    r"sured|mbarrier|bra|brx|call|ret|exit|bar|barrier)\b(?!\.param)|"
    r"griddepcontrol\.launch_dependents|[$\w]+:)")
#: What a kernel that reads before its wait (``reads_before_wait``) must still not do before
#: it: write global memory (the grid before it may still read or zero it), or trigger; nor
#: call a function or branch indirectly, which the path walk cannot follow.
_WRITE_BEFORE_WAIT = re.compile(
    r"^\s*(?:@!?%\w+\s+)?(?:(?:st|atom|red|multimem|sust|sured)\.(?!shared|local|param)|"
    r"cp\.\S*\.global\.shared|"  # a copy into global memory
    r"griddepcontrol\.launch_dependents|call\b|brx\b)")
_GRID_WAIT = "griddepcontrol.wait;"


def check_grid_wait(ptx: str, reads_before_wait: bool = False) -> None:
    """Raise CodegenError unless every kernel of ``ptx`` runs ``griddepcontrol.wait`` before any
    memory access, branch or label: the wait is what makes launching it early safe.

    With ``reads_before_wait`` (a table kernel launched right after its zeroing kernel, which
    lets it start only after its own wait) loads, branches and loops may come first, but no
    path through the code from its entry may reach a write to global memory or a trigger
    without passing a wait (:func:`writes_before_wait`)."""
    for m in re.finditer(r"^(?:\.visible\s+)?\.entry\s+([\w$]+)", ptx, re.M):
        start = ptx.index("{", m.end())
        body = ptx[start:ptx.find("\n}", start)]
        if _GRID_WAIT not in body:
            bad = "has no griddepcontrol.wait"
        elif reads_before_wait:
            line = writes_before_wait(body.splitlines()[1:])
            bad = line and f"can run `{line}` before its griddepcontrol.wait"
        else:
            head = body[:body.find(_GRID_WAIT)]
            line = next((l.strip() for l in head.splitlines()[1:]
                         if _BEFORE_WAIT_FORBIDDEN.match(l)), None)
            bad = line and f"runs `{line}` before its griddepcontrol.wait"
        if bad:
            raise CodegenError(f"kernel {m.group(1)} {bad}: launched early it could read data "
                               "the kernel before it is still writing", stage="ptx", log=ptx)


_LABEL = re.compile(r"^\s*([$\w]+):")
_BRANCH = re.compile(r"^\s*(@!?%\w+\s+)?bra(?:\.uni)?\s+([$\w]+)\s*;")
_BRX = re.compile(r"^\s*(@!?%\w+\s+)?brx\.idx\S*\s+%\w+,\s*([$\w]+)\s*;")
_END = re.compile(r"^\s*(?:ret|exit|trap)\b")


def _branch_tables(lines: list[str]) -> dict[str, list[str]]:
    """{table label: its target labels} of a body's ``.branchtargets`` lists (``brx.idx``)."""
    tables: dict[str, list[str]] = {}
    cur = None
    for line in lines:
        m = re.match(r"^\s*([$\w]+):\s*\.branchtargets", line)
        if m:
            cur = tables[m.group(1)] = []
            line = line[m.end():]
        if cur is not None:
            cur += re.findall(r"[$\w]+", line.split(";")[0])
            if ";" in line:
                cur = None
    return tables


def reached_before_wait(lines: list[str], pattern: re.Pattern, first: bool = False) -> list[int]:
    """The indices of the lines matching ``pattern`` that some path from the start of a kernel
    body (``lines``, its PTX after the opening brace) reaches without passing a
    ``griddepcontrol.wait`` (sorted; only the first found with ``first``). The blocks reached
    from the entry are walked, through branches, fall-through and ``brx.idx`` tables; a path
    ends at a wait, at a matching line, or at a branch out of the body, which is reported too
    (what the walk cannot follow is refused)."""
    blocks = {m.group(1): i for i, line in enumerate(lines) if (m := _LABEL.match(line))}
    tables = _branch_tables(lines)
    seen: set[int] = set()
    todo, found = [0], []
    while todo and not (first and found):
        i = todo.pop()
        while i < len(lines) and i not in seen:
            seen.add(i)
            line = lines[i]
            if _GRID_WAIT in line:
                break
            if pattern.match(line):
                found.append(i)
                break
            bm, xm = _BRANCH.match(line), _BRX.match(line)
            if bm or xm:
                targets = [bm.group(2)] if bm else tables.get(xm.group(2), [None])
                if any(t not in blocks for t in targets):
                    found.append(i)  # a target outside the body
                    break
                todo += [blocks[t] for t in targets]
                if xm or not bm.group(1):
                    break  # unconditional: no fall-through
            elif _END.match(line):
                break
            i += 1
    return sorted(found)


def writes_before_wait(lines: list[str]) -> str | None:
    """The first global write or trigger that some path from the start of a kernel body
    (``lines``, its PTX after the opening brace) reaches without passing a
    ``griddepcontrol.wait``, or None (:func:`reached_before_wait`; an indirect branch is one
    of the lines refused, not followed)."""
    found = reached_before_wait(lines, _WRITE_BEFORE_WAIT, first=True)
    return lines[found[0]].strip() if found else None


def find_cuda_tool(name: str) -> str | None:
    """Path of a CUDA binary (ptxas, cuobjdump, nvdisasm).

    Looks at $IRPRUNE_<NAME>, then the NVIDIA wheels (nvidia-cuda-nvcc,
    nvidia-cuda-nvdisasm) on sys.path, then PATH, then a CUDA toolkit
    ($CUDA_HOME, /usr/local/cuda).
    """
    env = os.environ.get(f"IRPRUNE_{name.upper()}")
    if env:
        return env
    for base in sys.path:
        for sub in (f"nvidia/cu13/bin/{name}", f"nvidia/cuda_nvcc/bin/{name}"):
            p = Path(base) / sub
            if p.is_file() and os.access(p, os.X_OK):
                return str(p)
    found = shutil.which(name)
    if found:
        return found
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home:
            p = Path(home) / "bin" / name
            if p.is_file() and os.access(p, os.X_OK):
                return str(p)
    return None


def find_ptxas() -> str | None:
    """Path of a ptxas binary: $IRPRUNE_PTXAS, the nvidia-cuda-nvcc wheel, then PATH."""
    return find_cuda_tool("ptxas")


@dataclass(frozen=True)
class PtxasResult:
    """A cubin and ptxas's report of its resources."""

    cubin: bytes
    log: str
    registers: int | None
    spill_stores: int | None
    spill_loads: int | None
    shared_bytes: int | None
    stack_bytes: int | None
    code_bytes: int

    def to_dict(self) -> dict:
        return {"registers": self.registers, "spill_stores": self.spill_stores,
                "spill_loads": self.spill_loads, "shared_bytes": self.shared_bytes,
                "stack_bytes": self.stack_bytes, "cubin_bytes": self.code_bytes}

    @classmethod
    def combine(cls, results: list["PtxasResult"]) -> "PtxasResult":
        """One report for a kernel of several modules: most registers, summed spills and code.

        One result comes back as it is; for several the ``cubin`` is empty
        (each module has its own) and the logs are joined, one header each.
        """
        if len(results) == 1:
            return results[0]

        def total(attr):
            vals = [getattr(r, attr) for r in results if getattr(r, attr) is not None]
            return sum(vals) if vals else None

        def most(attr):
            vals = [getattr(r, attr) for r in results if getattr(r, attr) is not None]
            return max(vals) if vals else None

        log = "".join(f"// ---- part {i} ----\n{r.log}" for i, r in enumerate(results))
        return cls(cubin=b"", log=log, registers=most("registers"),
                   spill_stores=total("spill_stores"), spill_loads=total("spill_loads"),
                   shared_bytes=most("shared_bytes"), stack_bytes=most("stack_bytes"),
                   code_bytes=sum(r.code_bytes for r in results))


def _num(pattern: str, log: str) -> int | None:
    m = re.search(pattern, log)
    return int(m.group(1)) if m else None


#: Seconds one ptxas run may take before it is stopped (``IRPRUNE_PTXAS_TIMEOUT``).
PTXAS_TIMEOUT = 600.0


def ptxas_timeout() -> float:
    return float(os.environ.get("IRPRUNE_PTXAS_TIMEOUT", PTXAS_TIMEOUT))


def run_ptxas_many(ptxs: list[str], cpu: str = DEFAULT_CPU, opt_level: int = 3) -> list[PtxasResult]:
    """Assemble several modules, :func:`irprune.worker.worker_count` ptxas processes at once."""
    if len(ptxs) == 1:
        return [run_ptxas(ptxs[0], cpu, opt_level)]
    from concurrent.futures import ThreadPoolExecutor

    from .worker import worker_count

    with ThreadPoolExecutor(max_workers=max(1, min(len(ptxs), worker_count()))) as pool:
        return list(pool.map(lambda p: run_ptxas(p, cpu, opt_level), ptxs))


#: A device function's definition in PTX (a declaration puts its name alone on the line).
_FUNCTION_DEFINITION = re.compile(r"^\.func\s+[\w$]+\($", re.M)


def device_functions(ptx: str) -> int:
    """How many device functions ``ptx`` defines (irprune.passes.outline_regions makes them)."""
    return len(_FUNCTION_DEFINITION.findall(ptx))


def run_ptxas(ptx: str, cpu: str = DEFAULT_CPU, opt_level: int = 3,
              timeout: float | None = None) -> PtxasResult:
    """Assemble ``ptx`` with ptxas for ``cpu``; raise PtxasError with its log on failure.

    A module whose kernel calls device functions and has a register budget
    (``.maxnreg``) is compiled relocatable (``ptxas -c``), its functions side
    by side (``--split-compile``, one thread a core) under the same budget,
    and linked by nvlink: ptxas's time grows faster than a function, so
    several small ones take a fraction of one large one. Without a budget, or
    without nvlink, the module is compiled whole (ptxas -c gives a function
    the architecture's register maximum, not the few registers it gives a
    kernel of its own choosing: 116 against 44 on resnet_3x3_28).

    ptxas is stopped after ``timeout`` seconds (default :func:`ptxas_timeout`)
    and the error names that limit, so a pathological module never hangs a caller.
    """
    from .register_budget import max_registers_of
    from .worker import worker_count

    timeout = ptxas_timeout() if timeout is None else timeout
    exe = find_ptxas()
    if exe is None:
        raise PtxasError("ptxas not found; `pip install nvidia-cuda-nvcc` or set IRPRUNE_PTXAS",
                         stage="ptxas")
    budget = max_registers_of(ptx)
    functions = device_functions(ptx)
    nvlink = find_cuda_tool("nvlink") if functions and budget is not None else None
    with tempfile.TemporaryDirectory(prefix="irprune-") as d:
        src, out = Path(d) / "k.ptx", Path(d) / "k.cubin"
        src.write_text(ptx)
        cmd = [exe, f"-arch={cpu}", f"-O{opt_level}", "-v", str(src)]
        if nvlink:
            obj = Path(d) / "k.o"
            cmd += ["-c", f"--split-compile={max(1, worker_count())}",
                    f"--device-function-maxrregcount={budget}", "-o", str(obj)]
        else:
            cmd += ["-o", str(out)]
        log = _run_tool(cmd, timeout, "ptxas")
        if nvlink:
            log += _run_tool([nvlink, f"-arch={cpu}", "-v", str(obj), "-o", str(out)], timeout,
                             "nvlink")
        cubin = out.read_bytes()
    # Linked, nvlink reports the kernel (registers, shared memory, stack) and ptxas each
    # function (the kernel itself is a small switch), whose spills add up.
    report = r"nvlink info\s*: used (\d+) registers" if nvlink else r"Used (\d+) registers"
    resource = r"nvlink info\s*: used \d+ registers.*?" if nvlink else ""
    spills = _sum if nvlink else _num
    return PtxasResult(
        cubin=cubin, log=log,
        registers=_num(report, log),
        spill_stores=spills(r"(\d+) bytes spill stores", log),
        spill_loads=spills(r"(\d+) bytes spill loads", log),
        shared_bytes=_num(resource + r"(\d+) bytes smem", log),
        stack_bytes=_num(resource + (r"(\d+) stack" if nvlink else r"(\d+) bytes stack frame"), log),
        code_bytes=len(cubin),
    )


def _run_tool(cmd: list[str], timeout: float, tool: str) -> str:
    """Run ptxas or nvlink; its log, or PtxasError (with the log) on failure or timeout."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise PtxasError(f"{tool} took longer than its limit of {timeout:g} s "
                         "(IRPRUNE_PTXAS_TIMEOUT); compile the layer in smaller parts "
                         "(IRPRUNE_MAX_PART_NNZ) or raise the limit", stage="ptxas") from None
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        first = next((l for l in log.splitlines() if "error" in l.lower()), log.strip()[:200])
        raise PtxasError(f"{tool} failed: {first}", stage="ptxas", log=log)
    return log


def _sum(pattern: str, log: str) -> int | None:
    vals = [int(v) for v in re.findall(pattern, log)]
    return sum(vals) if vals else None
