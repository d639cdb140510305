"""RPM packages from the rpmdb.

- SQLite (RHEL 9, Fedora 33+, ``rpmdb.sqlite``): the file's bytes are opened as an in-memory
  database with ``sqlite3.Connection.deserialize`` (nothing touches the disk), the ``Packages``
  table's header blobs are parsed by :mod:`rpm_header`.
- BerkeleyDB ``Packages`` (RHEL <= 8): the hash pages are read by :mod:`rpm_bdb`, no library.
- NDB ``Packages.db`` (SLES 15, openSUSE Leap 15, SLE Micro): the slot table and blobs are read
  by :mod:`rpm_ndb`, no library.

A database that cannot be read yields a skipped result naming the file, so the gap is visible
instead of a silent "no packages".
"""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import Sequence
from dataclasses import replace

from stockade.scanning.catalogers import rpm_header as h
from stockade.scanning.catalogers.ospurl import os_purl
from stockade.scanning.catalogers.owned import owned
from stockade.scanning.catalogers.rpm_bdb import read_values
from stockade.scanning.catalogers.rpm_ndb import read_blobs
from stockade.scanning.catalogers.skipped import skipped
from stockade.scanning.interface import FileEntry, Package

_DIRS = ("/var/lib/rpm/", "/usr/lib/sysimage/rpm/", "/usr/share/rpm/")
SQLITE = tuple(d + "rpmdb.sqlite" for d in _DIRS)
BDB = tuple(d + "Packages" for d in _DIRS)
NDB = tuple(d + "Packages.db" for d in _DIRS)
_MAX = 1024 * 1024 * 1024
_MAX_ROWS = 200_000


def _open(data: bytes) -> sqlite3.Connection:
    if len(data) < 512 or not data.startswith(b"SQLite format 3\0"):
        raise sqlite3.DatabaseError("no SQLite header")
    buf = bytearray(data)
    if len(buf) >= 20 and buf[18:20] == b"\x02\x02":
        # WAL mode cannot be used on a deserialized image: mark it as a rollback-journal file
        buf[18:20] = b"\x01\x01"
    conn = sqlite3.connect(":memory:")
    conn.deserialize(bytes(buf))
    conn.execute("PRAGMA query_only = ON")
    return conn


def read_sqlite_rpmdb(data: bytes) -> list[dict[int, h.Value]]:
    """Header fields of every package in an rpmdb.sqlite image. Raises ValueError if unreadable."""
    try:
        conn = _open(data)
        try:
            rows = conn.execute(
                "SELECT blob FROM Packages ORDER BY hnum LIMIT ?", (_MAX_ROWS,)
            ).fetchall()
        finally:
            conn.close()
    except (sqlite3.Error, MemoryError, OverflowError) as exc:
        raise ValueError(f"not a readable rpmdb.sqlite: {exc}") from exc
    return [h.parse_header(bytes(blob)) for (blob,) in rows if isinstance(blob, bytes)]


def read_bdb_rpmdb(data: bytes) -> list[dict[int, h.Value]]:
    """Header fields of every package in a BerkeleyDB ``Packages`` file (ValueError if bad)."""
    # key 0 holds a 4-byte counter, not a header
    return [h.parse_header(v) for v in read_values(data) if len(v) >= 8]


def read_ndb_rpmdb(data: bytes) -> list[dict[int, h.Value]]:
    """Header fields of every package in an NDB ``Packages.db`` (ValueError if bad)."""
    return [h.parse_header(blob) for blob in read_blobs(data)]


_READERS = {
    **{p: read_sqlite_rpmdb for p in SQLITE},
    **{p: read_bdb_rpmdb for p in BDB},
    **{p: read_ndb_rpmdb for p in NDB},
}


def _package(fields: dict[int, h.Value], entry: FileEntry) -> Package | None:
    name, ver, rel = fields.get(h.NAME), fields.get(h.VERSION), fields.get(h.RELEASE)
    if not isinstance(name, str) or not isinstance(ver, str) or not name or not ver:
        return None
    if name == "gpg-pubkey":
        return None  # imported signing keys, not software (rpm -qa lists them; syft 1.18 too)
    epoch = fields.get(h.EPOCH)
    version = f"{ver}-{rel}" if isinstance(rel, str) and rel else ver
    if isinstance(epoch, int):
        version = f"{epoch}:{version}"
    srpm = fields.get(h.SOURCERPM)
    source_name = source_version = None
    if isinstance(srpm, str) and srpm.endswith(".src.rpm"):
        # name-version-release.src.rpm: the last two dashes separate version and release
        parts = srpm[: -len(".src.rpm")].rsplit("-", 2)
        if len(parts) == 3:
            source_name, source_version = parts[0], f"{parts[1]}-{parts[2]}"
    license_ = fields.get(h.LICENSE)
    meta = {
        "epoch": str(epoch) if isinstance(epoch, int) else "",
        "sourcerpm": srpm if isinstance(srpm, str) else "",
        "vendor": fields.get(h.VENDOR) if isinstance(fields.get(h.VENDOR), str) else "",
        "modularity-label": fields.get(h.MODULARITYLABEL)
        if isinstance(fields.get(h.MODULARITYLABEL), str)
        else "",
    }
    arch = fields.get(h.ARCH)
    pkg = Package(
        type="rpm",
        name=name,
        version=version,
        licenses=(license_,) if isinstance(license_, str) and license_ else (),
        locations=(entry.path,),
        layer=entry.layer,
        source_name=source_name,
        source_version=source_version,
        arch=arch if isinstance(arch, str) and arch else None,
        metadata=tuple((k, str(v)) for k, v in meta.items() if v),
    )
    return replace(pkg, purl=os_purl(pkg, None))


class RpmCataloger:
    name = "rpm"
    version = 3

    def wants(self, path: str, mode: int, size: int) -> bool:
        return stat.S_ISREG(mode) and size <= _MAX and path in _READERS

    def catalog(self, files: Sequence[FileEntry]) -> list[Package]:
        out: list[Package] = []
        for entry in files:
            reader = _READERS.get(entry.path)
            if reader is None:
                continue
            try:
                headers = reader(entry.data)
            except ValueError as exc:  # HeaderError is a ValueError too
                out.append(skipped(entry, f"{entry.path}: {exc}"))
                continue
            for fields in headers:
                pkg = _package(fields, entry)
                if pkg is not None:
                    out.append(pkg)
                    record = owned(entry, pkg.name, h.file_paths(fields))
                    out.extend([record] if record else [])
        return out
