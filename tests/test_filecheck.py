"""FileCheck tests: each tests/filecheck/*.ll holds its input IR, RUN lines and CHECK lines.

A RUN line is a shell pipeline; ``%s`` is the file itself, ``irprune`` this
package's command line, ``filecheck`` the Python port of LLVM's FileCheck.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent / "filecheck"
FILES = sorted(HERE.glob("*.ll"))


def run_lines(path: Path) -> list[str]:
    return [l.split("RUN:", 1)[1].strip() for l in path.read_text().splitlines() if l.startswith("; RUN:")]


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_filecheck(path):
    lines = run_lines(path)
    assert lines, f"{path.name} has no RUN line"
    irprune = f"{shlex.quote(sys.executable)} -m irprune.cli"
    filecheck = f"{shlex.quote(sys.executable)} -m filecheck"
    for line in lines:
        cmd = (line.replace("%s", shlex.quote(str(path)))
               .replace("irprune ", irprune + " ", 1).replace("| filecheck", "| " + filecheck))
        p = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True)
        assert p.returncode == 0, f"RUN: {line}\n{p.stdout}\n{p.stderr}"


def test_every_pass_has_a_filecheck_test():
    from irprune.passes import PASSES

    tested = {p.stem.replace("_", "-") for p in FILES}
    assert set(PASSES) <= tested, set(PASSES) - tested
