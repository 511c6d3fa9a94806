"""Write the experimental template variants as importable modules under generated/ (git-ignored).

    python gen.py tile NAME TILE                      # TILE adjacent pixels per thread
    python gen.py smem NAME TR CC R S STRIDE OW       # input tiles in shared memory

Each variant is the built-in conv2d template with one change, a module constant
per variant (the template's cache key covers module constants).
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "generated")
if OUT not in sys.path:  # the variants import as top-level modules
    sys.path.insert(0, OUT)


def _write(name: str, text: str) -> str:
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, f"{name}.py")
    with open(path, "w") as f:
        f.write(text)
    return path


def gen_tile(name: str, tile: int) -> str:
    """Each thread computes ``tile`` adjacent output pixels of a row (loads shared between them)."""
    return _write(name, open(os.path.join(HERE, "tile_template.txt")).read().format(TILE=tile))


def gen_smem(name: str, TR: int, CC: int, R: int, S: int, stride: int, OW: int) -> str:
    """A block of TR x OW threads fills a shared-memory tile of CC input channels at a time."""
    IR = (TR - 1) * stride + R
    IW = (OW - 1) * stride + S
    text = open(os.path.join(HERE, "smem_template.txt")).read()
    return _write(name, text.format(TR=TR, CC=CC, SMEM=CC * IR * IW + TR * OW))


if __name__ == "__main__":
    kind, name, *nums = sys.argv[1:]
    {"tile": gen_tile, "smem": gen_smem}[kind](name, *map(int, nums))
