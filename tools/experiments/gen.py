"""Write the experimental template variants as importable modules under generated/ (git-ignored).

    python gen.py tile NAME TILE                      # TILE adjacent pixels per thread
    python gen.py smem NAME TR CC R S STRIDE OW [PAD] # input tiles in shared memory
    python gen.py rowpad NAME                         # output rows padded to whole warps
    python gen.py smem2 NAME TR CC R S STRIDE OW      # the same, double-buffered

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


def gen_smem(name: str, TR: int, CC: int, R: int, S: int, stride: int, OW: int,
             pad: int = 0) -> str:
    """A block of TR x OW threads fills a shared-memory tile of CC input channels at a time.

    ``pad``: 1 pads each tile row to a pitch P = OW (mod 32), so that the 32 threads of a
    warp (which straddle output rows) read 32 different banks at stride 1.
    """
    IR = (TR - 1) * stride + R
    IW = (OW - 1) * stride + S
    P = IW + (OW - IW) % 32 if pad else IW
    text = open(os.path.join(HERE, "smem_template.txt")).read()
    return _write(name, text.format(TR=TR, CC=CC, P=P, SMEM=CC * IR * P + TR * OW))


def gen_rowpad(name: str) -> str:
    """The built-in template (one row of threads) with each output row padded to a run of
    threads that a warp holds whole: a warp's loads then never straddle two input rows."""
    return _write(name, open(os.path.join(HERE, "rowpad_template.txt")).read())


def gen_smem2(name: str, TR: int, CC: int, R: int, S: int, stride: int, OW: int) -> str:
    """gen_smem with two chunk buffers: the next chunk's loads go out before this chunk's FMAs."""
    IR = (TR - 1) * stride + R
    IW = (OW - 1) * stride + S
    T = TR * OW
    text = open(os.path.join(HERE, "smem2_template.txt")).read()
    return _write(name, text.format(TR=TR, CC=CC, NF=-(-CC * IR * IW // T),
                                    SMEM=2 * (CC * IR * IW + T)))


if __name__ == "__main__":
    kind, name, *nums = sys.argv[1:]
    {"tile": gen_tile, "smem": gen_smem, "smem2": gen_smem2, "rowpad": gen_rowpad}[kind](name, *map(int, nums))
