"""A context manager that pauses CPython's cyclic garbage collector."""

from __future__ import annotations

import gc
from contextlib import contextmanager


@contextmanager
def gc_paused():
    """Run the body with the cyclic collector off (restored after, even on error).

    A compilation builds millions of small objects (instructions, operand
    lists, trace records) that all stay alive until it ends; the collector
    would walk them over and over for nothing. Measured on the 128 -> 128 3x3
    layer at 90% zeros (2-core machine): 17.3 s with it, 12.3 s without.
    Reference counting still frees everything as usual.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
