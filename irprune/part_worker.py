"""Worker process of irprune.parts: one pickled PartJob on stdin, its PartResult (or error) on stdout."""

from __future__ import annotations

import pickle
import sys


def main() -> None:
    from .gcpause import gc_paused
    from .parts import compile_part

    job = pickle.loads(sys.stdin.buffer.read())
    try:
        with gc_paused():
            out = compile_part(job)
    except Exception as exc:  # irprune's typed errors travel back to the parent as they are
        out = exc
    sys.stdout.buffer.write(pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL))


if __name__ == "__main__":
    main()
