"""A new SQLite store starts as a copy of one the migrations made before, instead of running
every migration again through SQLAlchemy and Alembic (about 0.25 s of CPU, most of a short
command's run when it creates its database).

The template is the first new database this user's Stockade migrated, copied with SQLite's
backup API. It is keyed by the content of every migration script (and SQLite's version), written
atomically, used only when it belongs to this user, nobody else can write it and SQLite's
``quick_check`` passes; anything else means the normal migrations, which then leave a fresh
template. Directory: ``$XDG_CACHE_HOME/stockade/store`` (default ``~/.cache/stockade/store``).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
from contextlib import suppress
from pathlib import Path

from stockade.model.atomicfile import AtomicFile

MIGRATIONS = Path(__file__).parent / "migrations"


def template_path() -> Path | None:
    """Where the template of the current migrations lives; None without a home directory."""
    try:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    except RuntimeError:
        return None
    h = hashlib.blake2b(sqlite3.sqlite_version.encode(), digest_size=20)
    for path in sorted([MIGRATIONS / "env.py", *(MIGRATIONS / "versions").glob("*.py")]):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return base / "stockade" / "store" / f"{h.hexdigest()}.db"


def _usable(path: Path) -> bool:
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022


def fill(target: Path) -> bool:
    """Copy the template into the new, empty database file ``target``; False (and ``target``
    left empty) when there is no usable template."""
    source = template_path()
    if source is None or not _usable(source):
        return False
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        try:
            if src.execute("PRAGMA quick_check").fetchone() != ("ok",):
                return False
            dst = sqlite3.connect(target)
            try:
                src.backup(dst)
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error:
        os.truncate(target, 0)  # back to a new, empty file: the migrations run as usual
        return False
    return True


def save(migrated: Path) -> None:
    """Keep the freshly migrated database ``migrated`` as the template (best effort; it
    replaces one that could not be used)."""
    dest = template_path()
    if dest is None:
        return
    with suppress(sqlite3.Error, OSError):
        dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with AtomicFile(dest, mode=0o600) as new:  # SQLite fills it by name
            src = sqlite3.connect(f"file:{migrated}?mode=ro", uri=True)
            try:
                out = sqlite3.connect(new.temp)
                try:
                    src.backup(out)
                    out.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
                finally:
                    out.close()
            finally:
                src.close()
