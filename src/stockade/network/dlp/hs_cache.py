"""Compiled Hyperscan databases kept on disk, so a command does not compile the same DLP sensors
again at every start (about 0.1-0.2 s, most of a short command's start-up).

A file is keyed by everything the compiled database depends on: the sensors, the HTTP decoding
triggers, the compile step's own code, the database mode and the hyperscan package's version (it
bundles libhs). It is written atomically (a temporary file renamed into place), holds a digest
of its contents and is used only when it belongs to this user and nobody else can write it; a
file that is unreadable, foreign, corrupt or refused by Hyperscan is ignored and rebuilt.

Directory: ``$STOCKADE_DLP_CACHE`` if set (``off`` disables the cache), else
``$XDG_CACHE_HOME/stockade/dlp`` (default ``~/.cache/stockade/dlp``).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from types import CodeType
from typing import Any

from stockade.model.atomicfile import write_atomically

MAGIC = b"stockade-hsdb 1\n"
ENV = "STOCKADE_DLP_CACHE"

Compiled = tuple[Any, tuple[int, ...]]  # (hyperscan.Database or None, sensors scanned by regex)


def cache_dir() -> Path | None:
    """Where compiled databases are kept; None when the cache is turned off."""
    chosen = os.environ.get(ENV)
    if chosen:
        return None if chosen == "off" else Path(chosen)
    try:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    except RuntimeError:  # no home directory (a service account): compile every time
        return None
    return base / "stockade" / "dlp"


def cache_key(hyperscan: Any, parts: Sequence[object], compile_fn: Callable[..., Any]) -> str:
    """A digest of what the compiled database depends on (``parts``: sensors, triggers, backend)
    and of the compile function's code, so a changed compile scheme never meets an old file."""
    code = getattr(compile_fn, "__func__", compile_fn).__code__
    h = hashlib.blake2b(digest_size=20)
    for part in (hyperscan.__version__, repr(tuple(parts))):
        h.update(part.encode())
        h.update(b"\0")
    _hash_code(h, code)
    return h.hexdigest()


def _hash_code(h: Any, code: CodeType) -> None:
    """The code's bytecode, names and constants, nested functions included (their ``repr``
    holds a memory address, which would make every process's key a new one)."""
    h.update(code.co_code)
    h.update(repr(code.co_names).encode())
    for const in code.co_consts:
        if isinstance(const, CodeType):
            _hash_code(h, const)
        else:
            h.update(repr(const).encode())
        h.update(b"\0")


def _pack(serialized: bytes, fallback: tuple[int, ...], mode: int) -> bytes:
    head = json.dumps({"fallback": list(fallback), "mode": mode, "size": len(serialized)})
    digest = hashlib.blake2b(serialized, digest_size=20).hexdigest()
    return MAGIC + f"{head}\n{digest}\n".encode() + serialized


def _unpack(blob: bytes, mode: int) -> tuple[bytes, tuple[int, ...]] | None:
    if not blob.startswith(MAGIC):
        return None
    try:
        head_line, digest, serialized = blob[len(MAGIC) :].split(b"\n", 2)
        head = json.loads(head_line)
        fallback = tuple(int(i) for i in head["fallback"])
        if head["mode"] != mode or head["size"] != len(serialized):
            return None
    except (ValueError, KeyError, TypeError):
        return None
    if hashlib.blake2b(serialized, digest_size=20).hexdigest().encode() != digest:
        return None
    return serialized, fallback


def _read_own(path: Path) -> bytes | None:
    """The file's bytes if it is a regular file of this user that nobody else may write."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if (
            not stat.S_ISREG(st.st_mode)
            or st.st_uid != os.geteuid()
            or st.st_mode & 0o022
            or st.st_size > 64 * 1024 * 1024
        ):
            return None
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read()
    except OSError:
        return None
    finally:
        os.close(fd)


def _write(path: Path, blob: bytes) -> None:
    """Atomically, mode 0600; any failure leaves the cache as it was (it is only a cache)."""
    with suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomically(path, blob, mode=0o600)


def load_or_compile(
    hyperscan: Any, key: str, mode: int, compile_db: Callable[[], Compiled]
) -> Compiled:
    """The database compiled by ``compile_db`` for ``key``, from the cache when a valid copy is
    there, else compiled now and stored for the next run."""
    directory = cache_dir()
    if directory is None:
        return compile_db()
    path = directory / f"{key}.hsdb"
    blob = _read_own(path)
    unpacked = _unpack(blob, mode) if blob is not None else None
    if unpacked is not None:
        serialized, fallback = unpacked
        try:
            db = hyperscan.loadb(serialized, mode)
            db.scratch = hyperscan.Scratch(db)  # loadb leaves the database without one
            return db, fallback
        except hyperscan.error:
            pass  # another libhs build or a damaged file: rebuild it below
    db, fallback = compile_db()
    if db is not None:
        _write(path, _pack(hyperscan.dumpb(db), fallback, mode))
    return db, fallback
