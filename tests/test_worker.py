"""Worker processes: a call and its result travel through files, and the files go away."""

from __future__ import annotations

import tempfile
import threading
import time

import pytest

from irprune.errors import IrpruneError
from irprune.worker import Worker


@pytest.fixture
def temp_root(tmp_path, monkeypatch):
    """Where the workers' call folders are made, so that leftovers can be counted."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_a_large_call_and_its_result_come_back_whole_and_leave_no_files(temp_root):
    payload = bytes(range(256)) * (8 << 12)  # 8 MiB, as large as a share's IR template
    with Worker() as w:
        out = w.call("builtins", "dict", {"payload": payload})
    assert out == {"payload": payload}
    assert list(temp_root.iterdir()) == []


def test_a_worker_that_dies_gives_a_typed_error_and_leaves_no_files(temp_root):
    with Worker() as w:
        with pytest.raises(IrpruneError, match=r"exit 3"):
            w.call("os", "_exit", {"status": 3})
    assert list(temp_root.iterdir()) == []


def test_an_error_raised_in_the_worker_is_raised_here():
    with Worker() as w:
        with pytest.raises(ModuleNotFoundError, match="no_such_module"):
            w.call("no_such_module", "f", {})


def test_a_large_call_reaches_the_worker_while_this_process_computes(temp_root):
    """The caller's thread computes (its share of the passes) while another thread hands the
    worker ~10 MB. Through the pipes that took seconds (a GIL switch per 4 KiB page); through a
    file, well under one."""
    payload = b"x" * (10 << 20)
    w = Worker()
    time.sleep(1.0)  # let the interpreter start, so only the hand-off is timed
    done = {}

    def hand_off():
        t = time.perf_counter()
        w.call("builtins", "dict", {"p": payload})
        done["s"] = time.perf_counter() - t

    th = threading.Thread(target=hand_off)
    th.start()
    deadline = time.perf_counter() + 20
    n = 0
    while th.is_alive() and time.perf_counter() < deadline:
        n += sum(i * i for i in range(1000))  # pure Python: holds the GIL between switches
    th.join()
    w.close()
    assert done["s"] < 2.0, f"the call took {done['s']:.2f} s with this thread busy"
