"""On-disk cache of IR templates and compiled kernels.

Compiling a layer costs seconds to minutes (lowering, unrolling, passes,
PTX, ptxas); loading it back costs milliseconds. Entries are keyed by a
digest of everything that changes the code: irprune's version, the
template's source, the geometry and options, the weight and bias bytes, the
pass pipeline, the target architecture and the toolchain's versions.

Each entry is one file, written atomically (a temporary file in the same
folder, flushed, then renamed over the final name), so a reader never sees
half an entry and two processes writing the same key both succeed (the last
rename wins; both wrote the same bytes). A file starts with a magic string,
the payload's length and its SHA-256: a truncated or corrupted entry fails
that check, is deleted, and the caller rebuilds it.

The folder is ``$IRPRUNE_CACHE_DIR``, else ``$XDG_CACHE_HOME/irprune``, else
``~/.cache/irprune``. ``IRPRUNE_CACHE=0`` turns the cache off.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import struct
import tempfile
import warnings
import zlib
from functools import lru_cache
from pathlib import Path

MAGIC = b"IRPRUNE-CACHE-1\n"
_HEADER = struct.Struct("<Q32s")  # payload length, sha256 of the payload


def cache_dir() -> Path:
    """The cache folder (not created until something is written)."""
    env = os.environ.get("IRPRUNE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "irprune"


def cache_enabled() -> bool:
    """False when ``IRPRUNE_CACHE`` is ``0``, ``off``, ``false`` or ``no``."""
    return os.environ.get("IRPRUNE_CACHE", "1").strip().lower() not in ("0", "off", "false", "no")


@lru_cache(maxsize=1)
def toolchain_fingerprint() -> dict:
    """Versions of everything between a template and its PTX, irprune's own source included."""
    from importlib.metadata import PackageNotFoundError, version

    import llvmlite.binding as llvm

    from . import __version__

    def ver(dist):
        try:
            return version(dist)
        except PackageNotFoundError:
            return None

    return {"irprune": __version__, "irprune-source": source_digest(),
            "numba": ver("numba"), "numba-cuda": ver("numba-cuda"),
            "llvmlite": ver("llvmlite"), "llvm": ".".join(map(str, llvm.llvm_version_info))}


#: Modules that run, measure or report kernels but do not change their code:
#: left out of :func:`source_digest`, so that editing them keeps the cache.
NOT_CODEGEN = frozenset({
    "__main__.py", "cli.py", "launch.py", "host_exec.py", "fuzz.py", "inspect_report.py",
    "inspect_views.py", "model_run.py", "models.py", "torch_convert.py", "torch_graph.py",
    "torch_select.py",
})


def code_sources() -> list[Path]:
    """irprune's Python sources that take part in making a kernel (all but :data:`NOT_CODEGEN` and bench/)."""
    root = Path(__file__).resolve().parent
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts
                  and p.parts[len(root.parts)] != "bench" and str(p.relative_to(root)) not in NOT_CODEGEN)


@lru_cache(maxsize=1)
def source_digest() -> str:
    """A digest of irprune's sources that make kernels (passes, lowering, codegen, templates, ...).

    The version number does not change with every edit of a pass; this does,
    so a working copy never loads a kernel that older code compiled.
    """
    root = Path(__file__).resolve().parent
    return digest(*[b for p in code_sources() for b in (str(p.relative_to(root)).encode(),
                                                         p.read_bytes())])


def digest(*parts) -> str:
    """A hex digest of ``parts``: bytes are hashed as they are, the rest as JSON."""
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, (bytes, bytearray, memoryview)):
            b = bytes(p)
            h.update(b"B%d:" % len(b))
            h.update(b)
        else:
            s = json.dumps(p, sort_keys=True, default=str).encode()
            h.update(b"J%d:" % len(s))
            h.update(s)
    return h.hexdigest()


class DiskCache:
    """A folder of checksummed, atomically written entries, grouped by kind."""

    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else cache_dir()

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / key[:2] / f"{key}.bin"

    def get(self, kind: str, key: str):
        """The object stored under ``key``, or None (missing, or corrupted and now deleted)."""
        p = self.path(kind, key)
        try:
            data = p.read_bytes()
        except OSError:
            return None
        try:
            return self._decode(data)
        except Exception as exc:  # any damage: drop the entry and let the caller rebuild
            warnings.warn(f"irprune cache: dropping damaged entry {p} ({exc})", RuntimeWarning,
                          stacklevel=2)
            try:
                p.unlink()
            except OSError:
                pass
            return None

    def put(self, kind: str, key: str, obj) -> Path | None:
        """Store ``obj`` under ``key`` atomically. Returns the path, or None if it could not be written."""
        p = self.path(kind, key)
        payload = zlib.compress(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL), 3)
        blob = MAGIC + _HEADER.pack(len(payload), hashlib.sha256(payload).digest()) + payload
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{key[:16]}.", suffix=".tmp", dir=p.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(blob)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, p)  # atomic on POSIX: readers see the old file or the new one
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
        except OSError as exc:  # a read-only or full disk must not fail a compile
            warnings.warn(f"irprune cache: could not write {p} ({exc})", RuntimeWarning, stacklevel=2)
            return None
        return p

    def clear(self) -> tuple[int, int]:
        """Delete every entry. Returns (files removed, bytes freed)."""
        n = size = 0
        if not self.root.exists():
            return 0, 0
        for f in self.root.rglob("*"):
            if f.is_file() and (f.suffix in (".bin", ".tmp")):
                try:
                    size += f.stat().st_size
                    f.unlink()
                    n += 1
                except OSError:
                    pass
        return n, size

    def info(self) -> dict:
        """Entries and bytes per kind."""
        out: dict = {}
        if self.root.exists():
            for f in self.root.rglob("*.bin"):
                kind = f.relative_to(self.root).parts[0]
                e = out.setdefault(kind, {"entries": 0, "bytes": 0})
                e["entries"] += 1
                e["bytes"] += f.stat().st_size
        return out

    @staticmethod
    def _decode(data: bytes):
        if not data.startswith(MAGIC):
            raise ValueError("not an irprune cache entry")
        head = data[len(MAGIC):len(MAGIC) + _HEADER.size]
        if len(head) != _HEADER.size:
            raise ValueError("truncated header")
        length, sha = _HEADER.unpack(head)
        payload = data[len(MAGIC) + _HEADER.size:]
        if len(payload) != length:
            raise ValueError(f"truncated: {len(payload)} of {length} bytes")
        if hashlib.sha256(payload).digest() != sha:
            raise ValueError("checksum mismatch")
        return pickle.loads(zlib.decompress(payload))


def default_cache() -> DiskCache | None:
    """The process's cache at :func:`cache_dir`, or None when turned off."""
    return DiskCache() if cache_enabled() else None
