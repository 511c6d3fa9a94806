"""Shared fixtures: the GPU skip, and the layer cases the issue asks for."""

from __future__ import annotations

import os

import pytest

# Tests compile with the disk cache off, so that each compile is a real one and
# no user's cache is touched; tests/test_cache.py turns it on in a temporary folder.
os.environ["IRPRUNE_CACHE"] = "0"

from irprune.codegen import find_ptxas
from irprune.launch import gpu_available

#: name -> (weight shape K,C,R,S; input shape N,C,H,W; stride; padding)
GEOMETRIES = {
    "1x1": ((16, 8, 1, 1), (1, 8, 6, 6), 1, 0),
    "3x3_pad": ((8, 4, 3, 3), (1, 4, 7, 9), 1, 1),
    "5x5": ((6, 3, 5, 5), (1, 3, 10, 10), 1, 2),
    "stride2": ((8, 4, 3, 3), (1, 4, 9, 9), 2, 1),
    "batch3": ((12, 5, 3, 3), (3, 5, 6, 5), 1, 1),
}
SPARSITIES = (0.0, 0.5, 0.9, 0.99, 1.0)


def pytest_collection_modifyitems(config, items):
    if not gpu_available():
        skip = pytest.mark.skip(reason="no CUDA GPU on this machine (GPU tests run on the lent H100/H200)")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
    if find_ptxas() is None:
        skip = pytest.mark.skip(reason="ptxas not found: pip install nvidia-cuda-nvcc")
        for item in items:
            if "ptxas" in item.keywords:
                item.add_marker(skip)
