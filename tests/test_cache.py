"""The disk cache: keys, atomic entries, damage detection, concurrent writers, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

import irprune
from irprune.cache import DiskCache, digest
from irprune.reference import prune_random

SHAPE, ISHAPE = (8, 4, 3, 3), (1, 4, 7, 9)


def test_roundtrip_and_kinds(tmp_path):
    c = DiskCache(tmp_path)
    c.put("kernel", "ab" * 32, {"x": np.arange(3)})
    got = c.get("kernel", "ab" * 32)
    assert list(got["x"]) == [0, 1, 2]
    assert c.get("kernel", "cd" * 32) is None
    assert c.info() == {"kernel": {"entries": 1, "bytes": c.path("kernel", "ab" * 32).stat().st_size}}
    assert not list(tmp_path.rglob("*.tmp")), "a temporary file was left behind"


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty", "checksum"])
def test_damaged_entry_is_dropped_and_rebuilt(tmp_path, damage):
    c = DiskCache(tmp_path)
    key = "ef" * 32
    p = c.put("kernel", key, {"payload": b"x" * 5000})
    data = p.read_bytes()
    if damage == "truncate":
        p.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        p.write_bytes(data[:-10] + bytes([data[-10] ^ 0xFF]) + data[-9:])
    elif damage == "garbage":
        p.write_bytes(b"not a cache entry at all")
    elif damage == "checksum":  # a well-formed payload under another payload's checksum
        from irprune.cache import _HEADER, MAGIC

        head = data[len(MAGIC):len(MAGIC) + _HEADER.size]
        length, _ = _HEADER.unpack(head)
        p.write_bytes(MAGIC + _HEADER.pack(length, bytes(32)) + data[len(MAGIC) + _HEADER.size:])
    else:
        p.write_bytes(b"")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert c.get("kernel", key) is None
    assert any("damaged" in str(w.message) for w in caught)
    assert not p.exists(), "the damaged entry was not removed"
    c.put("kernel", key, {"payload": b"y"})
    assert c.get("kernel", key) == {"payload": b"y"}


def test_digest_separates_parts():
    assert digest(b"ab", b"c") != digest(b"a", b"bc")
    assert digest("x", 1) != digest("x", "1")
    assert digest({"a": 1, "b": 2}) == digest({"b": 2, "a": 1})


def test_second_compile_comes_from_the_cache(tmp_path):
    w = prune_random(SHAPE, 0.7, seed=3)
    k1 = irprune.conv2d(w, ISHAPE, padding=1, cache=tmp_path)
    k2 = irprune.conv2d(w, ISHAPE, padding=1, cache=tmp_path)
    assert not k1.stats["cached"] and k2.stats["cached"]
    assert k2.asm["ptx"] == k1.asm["ptx"]
    assert k2.asm["llvm-pruned"] == k1.asm["llvm-pruned"]
    assert k2.asm["llvm"] == k1.asm["llvm"]  # loaded on demand from the IR-template entry
    assert k2.stats["seconds"]["cache_load"] < 0.5
    assert sorted(k2.trace.traces) == sorted(k1.trace.traces)
    np.testing.assert_array_equal(k2.weight, w)
    # Different weights, bias, ReLU or target: a different kernel entry.
    w2 = w.copy()
    w2[w2 != 0] *= 2
    assert not irprune.conv2d(w2, ISHAPE, padding=1, cache=tmp_path).stats["cached"]
    assert not irprune.conv2d(w, ISHAPE, padding=1, relu=True, cache=tmp_path).stats["cached"]
    assert not irprune.conv2d(w, ISHAPE, padding=1, cpu="sm_80", cache=tmp_path).stats["cached"]
    b = np.ones(SHAPE[0], np.float32)
    kb = irprune.conv2d(w, ISHAPE, padding=1, bias=b, cache=tmp_path)
    assert not kb.stats["cached"]
    assert irprune.conv2d(w, ISHAPE, padding=1, bias=b, cache=tmp_path).stats["cached"]
    assert not irprune.conv2d(w, ISHAPE, padding=1, bias=2 * b, cache=tmp_path).stats["cached"]


def test_template_source_is_part_of_the_key():
    from irprune.templates.conv2d import conv2d_nchw
    from tests.user_templates import conv2d_relu6

    g = irprune.ConvGeometry.from_weight(SHAPE, ISHAPE, 1, 1)
    assert conv2d_nchw.ir_template_key(g, 8, False, False) != \
        conv2d_relu6.ir_template_key(g, 8, False, False)
    assert conv2d_nchw.ir_template_key(g, 8, False, False) == \
        conv2d_nchw.ir_template_key(g, 8, False, False)
    assert conv2d_nchw.ir_template_key(g, 8, False, False) != \
        conv2d_nchw.ir_template_key(g, 4, False, False)


@pytest.mark.ptxas
def test_cubin_is_cached_with_the_kernel(tmp_path):
    w = prune_random(SHAPE, 0.5, seed=4)
    k1 = irprune.conv2d(w, ISHAPE, padding=1, cache=tmp_path, assemble=True)
    k2 = irprune.conv2d(w, ISHAPE, padding=1, cache=tmp_path)
    assert k2.stats["cached"] and k2.cubin == k1.cubin and k2.cubin[:4] == b"\x7fELF"


def _compile_in_child(args):
    root, seed = args
    os.environ["IRPRUNE_CACHE"] = "1"
    w = prune_random(SHAPE, 0.8, seed=seed)
    k = irprune.conv2d(w, ISHAPE, padding=1, cache=root)
    return k.asm["ptx"]


def test_two_processes_compiling_the_same_layer_both_succeed(tmp_path):
    import multiprocessing as mp

    with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as ex:
        a, b = list(ex.map(_compile_in_child, [(str(tmp_path), 9), (str(tmp_path), 9)]))
    assert a == b
    k = irprune.conv2d(prune_random(SHAPE, 0.8, seed=9), ISHAPE, padding=1, cache=tmp_path)
    assert k.stats["cached"] and k.asm["ptx"] == a
    assert not list(tmp_path.rglob("*.tmp"))


def test_cache_env_and_cli(tmp_path):
    env = dict(os.environ, IRPRUNE_CACHE_DIR=str(tmp_path), IRPRUNE_CACHE="1")
    np.save(tmp_path / "w.npy", prune_random(SHAPE, 0.9, seed=1))
    run = lambda *a: subprocess.run([sys.executable, "-m", "irprune", *a], env=env,  # noqa: E731
                                    capture_output=True, text=True, check=True).stdout
    run("compile", "--weights", str(tmp_path / "w.npy"), "--input-shape", "1,4,7,9",
        "--padding", "1", "-o", str(tmp_path / "k.ptx"))
    # The kernel without a register budget and the one with the default budget.
    assert "kernel: 2 entries" in run("cache")
    assert run("cache", "dir").strip() == str(tmp_path)
    assert "removed 3 entries" in run("cache", "clear")
    assert "empty" in run("cache")


def test_part_limit_and_irprune_source_are_part_of_the_key(tmp_path, monkeypatch):
    from irprune.cache import source_digest, toolchain_fingerprint

    assert toolchain_fingerprint()["irprune-source"] == source_digest()
    w = prune_random(SHAPE, 0.5, seed=4)
    k1 = irprune.conv2d(w, ISHAPE, padding=1, group_size=2, cache=tmp_path)
    monkeypatch.setenv("IRPRUNE_MAX_PART_NNZ", "20")
    k2 = irprune.conv2d(w, ISHAPE, padding=1, group_size=2, cache=tmp_path)
    assert not k2.stats["cached"] and len(k2.parts) > len(k1.parts) == 1
    assert irprune.conv2d(w, ISHAPE, padding=1, group_size=2, cache=tmp_path).stats["cached"]


def test_the_source_digest_covers_the_code_making_modules_only():
    from irprune.cache import code_sources

    names = {str(p.relative_to(Path(irprune.__file__).parent)) for p in code_sources()}
    for makes_code in ("lowering.py", "kernel.py", "codegen.py", "parts.py", "llvm_opt.py",
                       "passes/strip_zero_weights.py", "ir/textir.py"):
        assert makes_code in names, makes_code
    for runs_only in ("model_run.py", "torch_convert.py", "launch.py", "bench/runner.py"):
        assert runs_only not in names, runs_only
