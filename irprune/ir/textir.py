"""The one IR-mutation mechanism of irprune: a small editable model of LLVM IR text.

llvmlite's ``binding.ValueRef`` is read-only (no erase, no
replace-all-uses), and libNVVM will not take llvmlite's printed IR back, so
every rewrite in irprune works on the text that llvmlite's LLVM prints, and
the result is re-parsed and verified (:mod:`irprune.ir.verify`). This module is
the only place that knows the syntax; passes use its API, never regexes of
their own.

The model is deliberately shallow: a module is a preamble, functions and a
tail; a function is a header line and basic blocks; an instruction is one
line with its result name, opcode and the local values it mentions. That is
enough for use-def walks, erasing instructions and replacing uses, which is
all the passes need.

Every local value must be named for edits to be safe (LLVM renumbers
``%0, %1, ...`` and rejects gaps), so :func:`parse_module` renames numbered
values to ``%irp.N`` first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Iterator

# A local value: %name, %"quoted name", or %123.
LOCAL_RE = re.compile(r'%(?:"[^"]*"|[-a-zA-Z$._0-9]+)')
_NUMBERED_RE = re.compile(r"%(\d+)\b")
#: The two strings of an inline-asm call (``asm sideeffect "mov.u32 $0,
#: %dynamic_smem_size;", "=r"``): the PTX registers named there are not LLVM values.
_ASM_STRINGS_RE = re.compile(r'\basm\b[^"]*("(?:[^"\\]|\\.)*")\s*,\s*("(?:[^"\\]|\\.)*")')


def _asm_span(text: str) -> tuple[int, int] | None:
    if " asm " not in text:
        return None
    m = _ASM_STRINGS_RE.search(text)
    return (m.start(1), m.end(2)) if m else None


def find_locals(text: str) -> list[str]:
    """The local value names in ``text``, in order (not the registers inside an inline-asm string)."""
    span = _asm_span(text)
    if span is None:
        return LOCAL_RE.findall(text)
    return LOCAL_RE.findall(text[:span[0]]) + LOCAL_RE.findall(text[span[1]:])


def sub_locals(repl, text: str) -> str:
    """``LOCAL_RE.sub(repl, text)``, leaving inline-asm strings as they are."""
    span = _asm_span(text)
    if span is None:
        return LOCAL_RE.sub(repl, text)
    return LOCAL_RE.sub(repl, text[:span[0]]) + text[span[0]:span[1]] + LOCAL_RE.sub(repl, text[span[1]:])
_LABEL_RE = re.compile(r'^([-a-zA-Z$._0-9]+|"[^"]*"):')
_RESULT_RE = re.compile(r'^\s*(%(?:"[^"]*"|[-a-zA-Z$._0-9]+))\s*=\s*(.*)$')
_CALLEE_RE = re.compile(r'@(?:"[^"]*"|[-a-zA-Z$._0-9]+)(?=\()')
_CALL_PREFIXES = ("tail", "musttail", "notail")
_ALIGN_RE = re.compile(r", align (\d+)")
_POINTER_RE = re.compile(r"(ptr(?: addrspace\(\d+\))?)\s+(.*)$", re.S)
#: A constant ``addrspacecast`` of a global to a generic pointer: the address space it came from.
_CAST_GLOBAL_RE = re.compile(r"addrspacecast \(ptr addrspace\((\d+)\) @")

#: Opcodes without side effects: an unused result can be deleted.
PURE_OPCODES = frozenset(
    """add sub mul udiv sdiv urem srem shl lshr ashr and or xor fneg fadd fsub
    fmul fdiv frem icmp fcmp select getelementptr trunc zext sext fptrunc
    fpext fptoui fptosi uitofp sitofp ptrtoint inttoptr bitcast addrspacecast
    extractvalue insertvalue extractelement insertelement shufflevector phi
    freeze""".split()
)
#: Intrinsics that only compute (safe to delete when unused).
PURE_CALLEE_PREFIXES = (
    "@llvm.smax", "@llvm.smin", "@llvm.umax", "@llvm.umin", "@llvm.fma",
    "@llvm.fmuladd", "@llvm.maxnum", "@llvm.minnum", "@llvm.fabs",
    "@llvm.nvvm.read.ptx.sreg", "@llvm.abs",
)


def strip_comment(line: str) -> str:
    """Drop a trailing ``; comment`` that is not inside a string or quoted name."""
    if ";" not in line:
        return line
    in_quote = False
    for i, ch in enumerate(line):
        if ch == '"':
            in_quote = not in_quote
        elif ch == ";" and not in_quote:
            return line[:i].rstrip()
    return line


@dataclass(eq=False)
class Instruction:
    """One instruction line. ``name`` is its result (``%x``) or None."""

    text: str
    name: str | None
    opcode: str
    callee: str | None = None

    @classmethod
    def parse(cls, line: str) -> "Instruction":
        body = line.strip()
        name = None
        m = _RESULT_RE.match(body)
        rest = body
        if m:
            name, rest = m.group(1), m.group(2)
        words = rest.split(None, 2)
        opcode = words[0] if words else ""
        if opcode in _CALL_PREFIXES and len(words) > 1:
            opcode = words[1]
        callee = None
        if opcode == "call":
            c = _CALLEE_RE.search(rest)
            callee = c.group(0) if c else None
        return cls(text="  " + body, name=name, opcode=opcode, callee=callee)

    def operands(self) -> list[str]:
        """The local values this instruction reads, in textual order."""
        # Memoized on the text: passes call this for every instruction of
        # large modules several times, and edits replace ``text`` wholesale.
        cached = self.__dict__.get("_ops")
        if cached is not None and cached[0] is self.text:
            return cached[1]
        body = self.text
        if self.name is not None:
            body = body.split("=", 1)[1]
        ops = find_locals(body)
        self.__dict__["_ops"] = (self.text, ops)
        return ops

    def binary_operands(self) -> tuple[str, str]:
        """The two operands (locals or literals) of a binary op like ``fadd float a, b``."""
        body = self.text.split("=", 1)[1] if self.name is not None else self.text
        first, second = _split_top_level(body)[:2]  # "fadd [flags] float a", " b"
        return first.split()[-1], second.split()[0]

    def select_operands(self) -> tuple[str, tuple[str, str], tuple[str, str]] | None:
        """``(condition, (type, value), (type, value))`` of ``select i1 %c, T a, T b`` (no
        flags, an ``i1`` local condition), else None."""
        if self.opcode != "select" or self.name is None:
            return None
        parts = _split_top_level(self.text.split("=", 1)[1])
        cond = parts[0].split() if len(parts) == 3 else []
        if len(cond) != 3 or cond[1] != "i1" or not cond[2].startswith("%"):
            return None
        (t1, a), (t2, b) = (p.strip().rsplit(" ", 1) for p in parts[1:])
        return cond[2], (t1, a), (t2, b)

    def pointer_operand(self) -> tuple[str, str] | None:
        """``(type, value)`` of the address a ``load``, ``store`` or ``getelementptr`` reads
        (``("ptr", "%p")``, ``("ptr addrspace(3)", "@s")``; the value may be a constant
        expression), else None."""
        if self.opcode not in ("load", "store", "getelementptr"):
            return None
        body = self.text.split("=", 1)[1] if self.name is not None else self.text
        parts = _split_top_level(body)
        if len(parts) < 2:
            return None
        m = _POINTER_RE.match(parts[1].strip())
        return (m.group(1), m.group(2).strip()) if m else None

    def alignment(self) -> int:
        """The ``align`` of a load or store (1 where none is written)."""
        m = _ALIGN_RE.search(self.text)
        return int(m.group(1)) if m else 1

    def stored_value(self) -> tuple[str, str] | None:
        """``(type, value)`` that a ``store`` writes, else None."""
        if self.opcode != "store":
            return None
        first = _split_top_level(self.text)[0].split(None, 1)[1]  # "i32 %v" (after "store")
        if first.startswith("volatile "):
            return None
        ty, _, value = first.rpartition(" ")
        return ty, value

    @property
    def is_pure(self) -> bool:
        """True if deleting this instruction (when unused) cannot change behaviour."""
        if self.opcode in PURE_OPCODES:
            return True
        if self.opcode == "load":
            return " volatile " not in self.text and " atomic " not in self.text
        if self.opcode == "call" and self.callee:
            return self.callee.startswith(PURE_CALLEE_PREFIXES)
        return False

    def __getstate__(self) -> dict:
        # The operand memo is rebuilt on demand: a module sent between
        # processes (irprune.region_shares) should not carry it.
        state = dict(self.__dict__)
        state.pop("_ops", None)
        return state

    def __repr__(self) -> str:
        return f"Instruction({self.text.strip()!r})"


@dataclass(eq=False)
class Block:
    """A basic block: its label line (None for an unlabelled entry) and body."""

    label: str | None
    instructions: list[Instruction] = field(default_factory=list)


@dataclass(eq=False)
class Function:
    """A function definition: header (``define ... {``), blocks, and ``}``."""

    header: str
    blocks: list[Block]

    @property
    def name(self) -> str:
        m = re.search(r'@("[^"]*"|[-a-zA-Z$._0-9]+)\(', self.header)
        return m.group(1).strip('"') if m else ""

    def instructions(self) -> Iterator[Instruction]:
        for b in self.blocks:
            yield from b.instructions

    def instruction_count(self) -> int:
        """How many instructions the function has (without walking them one by one)."""
        return sum(len(b.instructions) for b in self.blocks)

    def params(self) -> list[tuple[str, str]]:
        """(type-and-attributes, %name) of each parameter, in order."""
        inner = _param_list(self.header)
        out = []
        for p in _split_top_level(inner):
            toks = LOCAL_RE.findall(p)
            if toks:
                out.append((p[: p.rfind(toks[-1])].strip(), toks[-1]))
        return out

    def set_params(self, params: Iterable[tuple[str, str]]) -> None:
        """Rewrite the parameter list (used to drop parameters that are bound)."""
        inner = _param_list(self.header)
        start = self.header.index("(" + inner + ")") if inner else self.header.index("()")
        new = ", ".join(f"{t} {n}" for t, n in params)
        self.header = self.header[:start] + "(" + new + ")" + self.header[start + len(inner) + 2 :]

    def users(self) -> dict[str, list[Instruction]]:
        """Map each local value to the instructions that read it."""
        out: dict[str, list[Instruction]] = {}
        for ins in self.instructions():
            for op in ins.operands():
                out.setdefault(op, []).append(ins)
        return out

    def definitions(self) -> dict[str, Instruction]:
        """Map each instruction result name to its instruction."""
        return {i.name: i for i in self.instructions() if i.name is not None}

    def render(self) -> str:
        lines = [self.header]
        for b in self.blocks:
            if b.label is not None:
                lines.append(f"{b.label}:")
            lines.extend(i.text for i in b.instructions)
        lines.append("}")
        return "\n".join(lines)


class Module:
    """A module as preamble text, function definitions, and the text after them.

    Text between definitions (declarations, attributes, metadata) is kept in
    order as ``chunks``: each chunk is either a str or a :class:`Function`.

    A module made by :meth:`lazy` holds LLVM's text and parses it only when
    its chunks are first looked at: the last pass of a pipeline (LLVM's
    clean-up) hands its text straight to NVPTX codegen, and parsing the
    megabytes back into chunks only to print them again cost tenths of a
    second. Until then it renders as that text and counts its instructions
    from it.
    """

    def __init__(self, chunks: list | None = None):
        self._chunks = chunks if chunks is not None else []
        self._source: str | None = None

    @classmethod
    def lazy(cls, text: str) -> "Module":
        """The module of LLVM IR ``text``, parsed when first edited or inspected."""
        m = cls()
        m.set_text(text)
        return m

    def set_text(self, text: str) -> None:
        """Make this module (in place) the one in LLVM IR ``text``, parsed when first needed."""
        self._chunks, self._source = None, text

    @property
    def chunks(self) -> list:
        if self._chunks is None:
            self._chunks = parse_module(self._source).chunks
            self._source = None
        return self._chunks

    @chunks.setter
    def chunks(self, value: list) -> None:
        self._chunks, self._source = value, None

    @property
    def parsed(self) -> bool:
        """False while the module is still the unparsed text of :meth:`lazy`."""
        return self._chunks is not None

    def instruction_count(self) -> int:
        """Instructions in its function bodies (from the text while unparsed)."""
        if self._chunks is None:
            return count_text_instructions(self._source)
        return sum(f.instruction_count() for f in self.functions)

    @property
    def functions(self) -> list[Function]:
        return [c for c in self.chunks if isinstance(c, Function)]

    def function(self, name: str | None = None) -> Function:
        """The function called ``name``, or the only/first kernel definition."""
        fns = self.functions
        if name is None:
            kernels = [f for f in fns if "ptx_kernel" in f.header]
            return (kernels or fns)[0]
        for f in fns:
            if f.name == name:
                return f
        raise KeyError(name)

    def render(self) -> str:
        if self._chunks is None:
            return self._source
        parts = [c.render() if isinstance(c, Function) else c for c in self.chunks]
        return "\n".join(parts).rstrip("\n") + "\n"

    def declares(self, symbol: str) -> bool:
        """Whether the module declares or defines global ``symbol`` (``@name``)."""
        pat = re.compile(r"^(?:declare|define)\b[^\n]*" + re.escape(symbol) + r"\(", re.M)
        return any(pat.search(c) if isinstance(c, str) else pat.search(c.header)
                   for c in self.chunks)

    def declare(self, declaration: str, symbol: str) -> None:
        """Append ``declaration`` (a ``declare ...`` line) unless ``symbol`` is declared already."""
        if not self.declares(symbol):
            self.chunks.append(declaration)

    def rename_symbol(self, old: str, new: str) -> None:
        """Rename a global symbol (``@old`` -> ``@new``) everywhere in the module."""
        pat = re.compile(r'@(?:"' + re.escape(old) + r'"|' + re.escape(old) + r")(?![-a-zA-Z$._0-9])")
        for i, c in enumerate(self.chunks):
            if isinstance(c, Function):
                c.header = pat.sub("@" + new, c.header)
                for ins in c.instructions():
                    if "@" in ins.text:
                        ins.text = pat.sub("@" + new, ins.text)
            else:
                self.chunks[i] = pat.sub("@" + new, c)


def _param_list(header: str) -> str:
    """The text between the parentheses of a define line's parameter list."""
    m = re.search(r'@(?:"[^"]*"|[-a-zA-Z$._0-9]+)\(', header)
    if not m:
        return ""
    depth, start = 1, m.end()
    for i in range(start, len(header)):
        ch = header[i]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return header[start:i]
    return header[start:]


_BRACKETS_RE = re.compile(r"[(\[{<]")


def _split_top_level(s: str) -> list[str]:
    if not _BRACKETS_RE.search(s):
        # No nesting (most arithmetic, e.g. ``fadd float %a, %b``): every comma is top level.
        # The character loop below costs 15 us a call, 0.6 s over a 64-channel group's
        # accumulates.
        parts = s.split(",")
        return parts if parts[-1].strip() else parts[:-1]
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch in "([{<":
            depth += 1
        elif ch in ")]}>":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        parts.append("".join(cur))
    return parts


def count_text_instructions(text: str) -> int:
    """The instructions :func:`parse_module` would find in ``text``'s function bodies,
    counted without building them (every body line that is not a label or a comment)."""
    n = 0
    body = False
    for line in text.splitlines():
        if body:
            if line.strip() == "}":
                body = False
                continue
            raw = strip_comment(line)
            if not raw.strip():
                continue
            lm = _LABEL_RE.match(raw)
            if lm and not raw.startswith(" "):
                continue
            n += 1
        elif line.startswith("define "):
            body = True
    return n


def parse_module(text: str) -> Module:
    """Parse LLVM IR text (as printed by LLVM) into an editable :class:`Module`.

    Numbered values and blocks inside function bodies are renamed to
    ``%irp.N`` so that instructions can be erased without renumbering.
    """
    chunks: list = []
    pending: list[str] = []
    lines = text.splitlines()
    # A prefix no existing name uses: text re-parsed after LLVM ran may hold
    # both %irp.N names from an earlier parse and new numbered values.
    gen = 0
    while f"%irp{gen or ''}." in text:
        gen += 1
    prefix = f"irp{gen or ''}."
    numbered = rf"%{prefix}\1"
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("define "):
            if pending:
                chunks.append("\n".join(pending))
                pending = []
            header = _NUMBERED_RE.sub(numbered, strip_comment(line))
            blocks: list[Block] = [Block(label=None)]
            i += 1
            while i < len(lines) and lines[i].strip() != "}":
                raw = strip_comment(lines[i])
                i += 1
                if not raw.strip():
                    continue
                raw = _NUMBERED_RE.sub(numbered, raw)
                lm = _LABEL_RE.match(raw)
                if lm and not raw.startswith(" "):
                    label = lm.group(1)
                    if label.isdigit():
                        label = prefix + label
                    if blocks[-1].label is None and not blocks[-1].instructions:
                        blocks[-1].label = label
                    else:
                        blocks.append(Block(label=label))
                    continue
                blocks[-1].instructions.append(Instruction.parse(raw))
            i += 1  # the closing brace
            chunks.append(Function(header=header, blocks=blocks))
            continue
        pending.append(line)
        i += 1
    if pending:
        chunks.append("\n".join(pending))
    return Module(chunks=chunks)


class Rewriter:
    """Batched edits of one function: erase instructions, replace uses, apply once.

    Edits are collected and applied in a single sweep so that thousands of
    them cost one pass over the function, not one each.
    """

    def __init__(self, fn: Function):
        self.fn = fn
        self._erase: set[int] = set()
        self._subst: dict[str, str] = {}

    def erase(self, ins: Instruction) -> None:
        """Delete ``ins``; its result must have no remaining uses after commit()."""
        self._erase.add(id(ins))

    def replace_uses(self, name: str, value: str) -> None:
        """Make every reader of local ``name`` read ``value`` (a local or a constant)."""
        self._subst[name] = value

    def pending_erasures(self) -> frozenset[int]:
        """The ids of the instructions :meth:`commit` will erase."""
        return frozenset(self._erase)

    def _resolve(self, v: str) -> str:
        seen = set()
        while v in self._subst and v not in seen:
            seen.add(v)
            v = self._subst[v]
        return v

    def commit(self, users: dict[str, list[Instruction]] | None = None) -> int:
        """Apply the edits; return the number of instructions erased.

        ``users``: the function's :meth:`Function.users` map, still true for
        the replaced names (no text edited since it was made). Then only the
        readers of a replaced name are rewritten instead of every instruction:
        the same text, in time proportional to the edits.
        """
        subst = {k: self._resolve(k) for k in self._subst}

        def sub(m: re.Match) -> str:
            return subst.get(m.group(0), m.group(0))

        def rewrite(ins: Instruction) -> None:
            if ins.name is not None:
                lhs, rhs = ins.text.split("=", 1)
                ins.text = lhs + "=" + sub_locals(sub, rhs)
            else:
                ins.text = sub_locals(sub, ins.text)

        erase = self._erase
        if users is not None:
            readers = {id(u): u for k in subst for u in users.get(k, ())}
            for key, ins in readers.items():
                if key not in erase:
                    rewrite(ins)
        erased = 0
        for b in self.fn.blocks:
            n = len(b.instructions)
            if erase:
                b.instructions = [i for i in b.instructions if id(i) not in erase]
                erased += n - len(b.instructions)
            if users is None and subst:
                for ins in b.instructions:
                    if "%" in ins.text:
                        rewrite(ins)
        self._erase = set()
        self._subst = {}
        return erased


def pointer_root(fn: Function, value: str, defs: dict[str, Instruction] | None = None) -> str:
    """Where pointer ``value`` comes from: followed back through ``getelementptr``,
    ``addrspacecast`` and ``bitcast`` to a parameter, a global or a constant expression."""
    defs = fn.definitions() if defs is None else defs
    seen = set()
    while value in defs and value not in seen:
        seen.add(value)
        ins = defs[value]
        if ins.opcode == "getelementptr":
            value = ins.pointer_operand()[1]
        elif ins.opcode in ("addrspacecast", "bitcast"):
            body = ins.text.split("=", 1)[1].split(None, 1)[1]  # "ptr %p to ptr addrspace(3)"
            value = body.rsplit(" to ", 1)[0].split()[-1]
        else:
            break
    return value


def root_address_space(root: str) -> int | None:
    """The address space of a pointer root that is a global seen through a generic cast
    (``addrspacecast (ptr addrspace(3) @s to ptr)`` -> 3), or of a global in
    ``(getelementptr ...)`` of one; None for anything else (a parameter, a local)."""
    m = _CAST_GLOBAL_RE.search(root)
    return int(m.group(1)) if m else None


def erase_dead(fn: Function, candidates: Iterable[Instruction] | None = None,
               users: dict[str, list[Instruction]] | None = None,
               gone: set[int] | None = None) -> int:
    """Delete pure instructions whose results are unused, transitively.

    With ``candidates``, only those instructions and what becomes dead behind
    them are considered (cheap for a targeted clean-up); otherwise the whole
    function. ``users``: a :meth:`Function.users` map made earlier, whose
    readers are all still there except the instructions whose ids are in
    ``gone`` (erased since) and no reader added: it saves building the map
    again. Returns the number of instructions erased.
    """
    defs = fn.definitions()
    if users is None:
        users = fn.users()
    gone = gone or set()
    counts: dict[str, int] = {}  # live readers, counted when first asked

    def count(name: str) -> int:
        c = counts.get(name)
        if c is None:
            c = counts[name] = sum(1 for u in users.get(name, ()) if id(u) not in gone)
        return c

    work = list(candidates) if candidates is not None else list(fn.instructions())
    dead: set[int] = set()
    while work:
        ins = work.pop()
        if id(ins) in dead or ins.name is None or not ins.is_pure:
            continue
        if count(ins.name) > 0:
            continue
        dead.add(id(ins))
        for op in ins.operands():
            counts[op] = count(op) - 1
            d = defs.get(op)
            if d is not None and counts[op] == 0:
                work.append(d)
    if not dead:
        return 0
    for b in fn.blocks:
        b.instructions = [i for i in b.instructions if id(i) not in dead]
    return len(dead)


def float_literal(value: float) -> str:
    """LLVM's exact spelling of a float32 constant (a double in hex notation)."""
    import struct

    (bits,) = struct.unpack("<Q", struct.pack("<d", float(value)))
    return f"0x{bits:016X}"
