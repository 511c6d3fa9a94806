"""A kernel's register budget: ptxas's ``.maxnreg`` directive in its PTX.

Why a budget at all: left to itself ptxas compiles most of irprune's
straight-line kernels to few registers (32 for a 1x1 layer with four output
channels a thread), and the registers bound how many of a thread's input
loads are in flight at once: about 17, then one more per few FMAs. A
batch-1 thread that sums 80+ input channels then waits on several memory
round trips in a row. Given ``.maxnreg 128`` ptxas schedules the same PTX
with about 80 loads up front (126 registers). Where a layer has few threads
(batch 1) that is up to 1.28x faster; where many threads must be resident
(batch 64) a budget can be slower, so :mod:`irprune.tune` times it
(docs/perf-log.md, "Register budget").

The budget is a directive of the PTX stage, so ``irprune inspect --stage ptx``
shows it and both ways of loading a kernel (the cubin ptxas makes, or the PTX
the driver compiles) honour it.
"""

from __future__ import annotations

import re

from .errors import CodegenError
from .validate import _fail, check_int

#: ptxas raises a smaller budget to 24 (with a warning) on every architecture irprune targets.
MIN_REGISTERS = 24
#: The most registers a thread can have.
MAX_REGISTERS = 255
#: Budgets irprune.tune times for a pixel-layout kernel (None: ptxas's own choice). 64 and
#: 128 took 1x1 layers at batch 1 within 0.4% of the best of 64/128/255 (experiment
#: tools/experiments/maxnreg_ab.py).
CANDIDATES = (None, 64, 128)

#: The budget :func:`irprune.conv2d` (and so the command line and the PyTorch converter) gives
#: an untuned kernel. At the default group size and block it ran a 1x1 layer at batch 1
#: 2.0-2.3x faster (geomean of 17 layers) than ptxas's own choice, the seed suite 1.34x at
#: batch 1 and 1.09x at batch 64; slower on two of 37 rows (vgg16_c2 batch 1, 41 -> 49 us;
#: resnet_3x3_28 batch 64, 164 -> 219 us), which tuning covers (docs/perf-log.md).
DEFAULT_MAX_REGISTERS = 128

_DIRECTIVE = re.compile(r"^[ \t]*\.maxnreg[ \t]+\d+[ \t]*\n", re.M)
# A kernel's entry: `.entry name(` ... `)`; parameters hold no parentheses.
_ENTRY_HEAD = re.compile(r"\.entry\s+[\w$]+\s*\([^()]*\)[ \t]*\n")
_READ = re.compile(r"^[ \t]*\.maxnreg[ \t]+(\d+)", re.M)


def check_max_registers(value) -> int | None:
    """``value`` as a register budget: None (ptxas chooses) or an int in MIN_REGISTERS..MAX_REGISTERS."""
    if value is None:
        return None
    n = check_int(value, "max_registers")
    if not MIN_REGISTERS <= n <= MAX_REGISTERS:
        _fail(f"max_registers must be None or in {MIN_REGISTERS}..{MAX_REGISTERS} "
              f"(ptxas's range for .maxnreg); got {n}")
    return n


def set_max_registers(ptx: str, n: int | None) -> str:
    """``ptx`` with its one kernel's budget set to ``n`` registers (None: no budget).

    A budget already there is replaced. Raises CodegenError when the PTX does
    not hold exactly one kernel entry.
    """
    n = check_max_registers(n)
    text = _DIRECTIVE.sub("", ptx)
    heads = list(_ENTRY_HEAD.finditer(text))
    if len(heads) != 1:
        raise CodegenError(f"cannot set a register budget: the PTX has {len(heads)} kernel "
                           "entries, expected one", stage="ptx", log=ptx[:2000])
    if n is None:
        return text
    end = heads[0].end()
    return f"{text[:end]}.maxnreg {n}\n{text[end:]}"


def max_registers_of(ptx: str) -> int | None:
    """The budget ``ptx`` asks for, or None."""
    m = _READ.search(ptx)
    return int(m.group(1)) if m else None
