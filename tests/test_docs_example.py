"""docs/examples/convert_model.py, the walkthrough of docs/pytorch.md, runs from a fresh install (CPU path here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the PyTorch example needs torch (make install adds the CPU build)")

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "convert_model.py"


def test_the_pytorch_example_runs_and_matches_pytorch(tmp_path):
    env = {**os.environ, "IRPRUNE_CACHE_DIR": str(tmp_path), "IRPRUNE_CACHE": "1"}
    out = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, env=env,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("converted") == 4
    assert "batch 4: max relative difference from PyTorch" in out.stdout
    assert any(tmp_path.rglob("*")), "the example did not use the disk cache"
